"""Reference solutions for chapter 13 (UDP with Twisted).

Run through the chapter's checkers by tests/test_exercises_ch13.py:
``check("13.1", SOLUTIONS["13.1"]).passed`` is True.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol

# -- 13.1 -------------------------------------------------------------------


class PeerCounter(DatagramProtocol):
    """Answers each datagram with b"N " + datagram, N counting that sender's datagrams.

    UDP has no connections, so there is no protocol instance per client: the one
    protocol keeps the state of every peer, keyed by the peer's address.
    """

    def __init__(self):
        self.counts = {}

    def datagramReceived(self, datagram, addr):
        self.counts[addr] = self.counts.get(addr, 0) + 1
        self.transport.write(b"%d " % self.counts[addr] + datagram, addr)


# -- 13.2 -------------------------------------------------------------------


class Backoff:
    """Send, and send again with exponential backoff until a reply or `tries` sends.

    start() sends at once and returns a Deferred. Attempt k (1, 2, ...) waits
    timeout * 2 ** (k - 1) for a reply; after the last attempt's wait, the Deferred
    fails with TimeoutError. The first replied(reply) fires it and cancels the timer;
    later replies (duplicates, late copies) find it fired and are ignored.
    """

    def __init__(self, clock, send, timeout, tries):
        self.clock, self.send, self.timeout, self.tries = clock, send, timeout, tries
        self.attempts, self.timer, self.result = 0, None, Deferred()

    def start(self):
        self._attempt()
        return self.result

    def _attempt(self):
        self.attempts += 1
        self.send()
        wait = self.timeout * 2 ** (self.attempts - 1)
        self.timer = self.clock.callLater(wait, self._expired)

    def _expired(self):
        if self.attempts < self.tries:
            self._attempt()
        else:
            self.result.errback(TimeoutError(f"no reply after {self.attempts} attempts"))

    def replied(self, reply):
        if self.result.called:
            return
        self.timer.cancel()
        self.result.callback(reply)


# -- 13.3 -------------------------------------------------------------------


class OnceServer(DatagramProtocol):
    """Answers b"ID add N" with b"ID total T"; applies each (peer, ID) only once.

    Request ids are chosen by each client, so a request is named by (address, id).
    The reply is remembered under that name: a retransmitted request gets the same
    reply again, and the total is not changed twice. (A long-running server would
    expire old entries, as chapter 03 says.)
    """

    def __init__(self):
        self.total, self.replies = 0, {}

    def datagramReceived(self, datagram, addr):
        request_id, _, command = datagram.partition(b" ")
        key = (addr, request_id)
        if key not in self.replies:
            self.total += int(command.split()[1])
            self.replies[key] = request_id + b" total %d" % self.total
        self.transport.write(self.replies[key], addr)


SOLUTIONS = {
    "13.1": PeerCounter,
    "13.2": Backoff,
    "13.3": OnceServer,
}
