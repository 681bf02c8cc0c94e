"""Checks for chapter 13 (UDP with Twisted).

13.1 `PeerCounter`: a DatagramProtocol that answers every datagram, to its sender, with
     b"N " + the datagram, N counting the datagrams from that sender (1, 2, ...).
     Checked live: the answer listens with listenUDP on 127.0.0.1 (closed before the
     check returns) and two plain sockets talk to it.
13.2 `Backoff(clock, send, timeout, tries)`: start() sends at once and returns a
     Deferred; no reply: send again after timeout, 2 x timeout, 4 x timeout, ...;
     after `tries` sends and one more wait, fail with TimeoutError("no reply after N
     attempts"). The first replied(reply) fires the Deferred and cancels the timer;
     later replies are ignored. Checked with a task.Clock: no network, no real time.
13.3 `OnceServer`: answers b"ID add N" with b"ID total T" (T the running total); a
     request repeated by the same peer (same ID) is not applied again and gets the reply it
     got the first time; the same ID from another peer is another request. Checked live,
     like 13.1.
"""

from __future__ import annotations

import contextlib
import socket

from .. import reactor as _reactor
from ..events import EventLog, EventTimeout
from .legacy import Check, exercise

REPLY_TIMEOUT = 0.5  # how long 13.1 waits for a reply the answer has already sent


# -- 13.1 -------------------------------------------------------------------


@contextlib.contextmanager
def _listening(answer):
    """Open the answer's protocol on 127.0.0.1; yield (port number, log); close it.

    The protocol's datagramReceived is wrapped: each call records "returned", or
    "raised" with the exception, so a check knows at once when the datagram was handled.
    """
    from twisted.internet.protocol import DatagramProtocol

    if not (isinstance(answer, type) and issubclass(answer, DatagramProtocol)):
        raise AssertionError(f"{answer!r} is not a DatagramProtocol subclass")
    log = EventLog()
    protocol = answer()
    handle = protocol.datagramReceived
    name = f"{answer.__name__}.datagramReceived"

    def watched(datagram, addr):
        try:
            handle(datagram, addr)
        except Exception as exc:
            log.record("answer", "raised", error=f"{name} raised {type(exc).__name__}: {exc}")
        else:
            log.record("answer", "returned")

    protocol.datagramReceived = watched

    def listen():
        from twisted.internet import reactor

        return reactor.listenUDP(0, protocol, interface="127.0.0.1")

    port = _reactor.call(listen)
    try:
        yield port.getHost().port, log
    finally:
        _reactor.call(port.stopListening)


def _exchange(sock, port, log, datagram):
    """Send `datagram` from `sock`, wait until the answer handled it, return the reply."""
    handled = len(log) + 1
    sock.sendto(datagram, ("127.0.0.1", port))
    try:
        event = log.wait(handled, timeout=2.0)[-1]
    except EventTimeout:
        raise AssertionError(f"datagramReceived was not called for {datagram!r}") from None
    if event.what == "raised":
        raise AssertionError(event.details["error"])
    try:
        return sock.recv(2048)
    except TimeoutError:
        raise AssertionError(
            f"sent {datagram!r}: no reply came back to the sender within {REPLY_TIMEOUT:g} s"
        ) from None


def _udp_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(REPLY_TIMEOUT)
    return sock


def _answers_sender(answer):
    with _listening(answer) as (port, log), _udp_socket() as sock:
        reply = _exchange(sock, port, log, b"hello")
        assert reply == b"1 hello", (
            f"sent b'hello' from a new peer: got {reply!r}, expected b'1 hello'"
        )


def _counts_per_peer(answer):
    with _listening(answer) as (port, log), _udp_socket() as a, _udp_socket() as b:
        script = [(a, "A", b"a", b"1 a"), (a, "A", b"b", b"2 b"), (b, "B", b"x", b"1 x"),
                  (a, "A", b"c", b"3 c"), (b, "B", b"y", b"2 y")]
        for sock, who, datagram, expected in script:
            reply = _exchange(sock, port, log, datagram)
            assert reply == expected, (
                f"peers A and B sent a, b (A), x (B), c (A), y (B): {who}'s {datagram!r} got"
                f" {reply!r}, expected {expected!r}"
            )


exercise(
    "13.1",
    "A counter per peer",
    Check(
        "answers the sender with b'1 ' + the datagram",
        _answers_sender,
        "self.transport.write(b'%d ' % n + datagram, addr): reply to `addr`, the sender",
    ),
    Check(
        "counts the datagrams of each peer separately",
        _counts_per_peer,
        "keep a dict in the protocol, keyed by the sender's address:"
        " self.counts[addr] = self.counts.get(addr, 0) + 1",
    ),
)


# -- 13.2 -------------------------------------------------------------------

LIMIT = 20  # timer firings 13.2 follows before it decides the answer never stops


class _Run:
    """The answer, started on a task.Clock, with every send and the outcome recorded."""

    def __init__(self, answer, timeout, tries):
        from twisted.internet.defer import Deferred
        from twisted.internet.task import Clock

        self.clock, self.sends, self.outcome = Clock(), [], None
        self.backoff = answer(self.clock, self._send, timeout, tries)
        d = self.backoff.start()
        if not isinstance(d, Deferred):
            raise AssertionError(f"start() returned {d!r}, expected a Deferred")
        d.addBoth(self._settled)

    def _send(self):
        self.sends.append(round(self.clock.seconds(), 6))

    def _settled(self, result):
        from twisted.python.failure import Failure

        at = round(self.clock.seconds(), 6)
        if isinstance(result, Failure):
            self.outcome = ("failed", at, result.value)
        else:
            self.outcome = ("fired", at, result)
        # None: a failure is consumed here, never logged as unhandled

    def run_timers(self):
        """Fire the clock's timers one by one, each at its exact time, until none is left."""
        for _ in range(LIMIT):
            calls = self.clock.getDelayedCalls()
            if not calls:
                return
            self.clock.advance(min(c.getTime() for c in calls) - self.clock.seconds())
        raise AssertionError(f"still sending after {len(self.sends)} sends: {self.sends}")


def _starts(answer):
    run = _Run(answer, 0.1, 4)
    assert run.sends == [0.0], f"start() sent {len(run.sends)} times, expected 1 send at once"
    assert run.outcome is None, f"start() returned a Deferred that had already fired: {run.outcome}"


def _describe(outcome):
    if outcome is None:
        return "had not fired"
    kind, at, value = outcome
    what = f"{type(value).__name__}: {value}" if kind == "failed" else repr(value)
    return f"{kind} at {at:g} s with {what}"


def _backs_off(answer):
    for timeout, tries, expected in [(0.1, 4, [0.0, 0.1, 0.3, 0.7]), (0.5, 2, [0.0, 0.5])]:
        run = _Run(answer, timeout, tries)
        run.run_timers()
        assert run.sends == expected, (
            f"timeout={timeout}, tries={tries}, no reply: sends at {run.sends}, expected"
            f" {expected} (each wait twice the one before)"
        )


def _gives_up(answer):
    for timeout, tries, at in [(0.1, 4, 1.5), (0.5, 2, 1.5), (0.2, 1, 0.2)]:
        run = _Run(answer, timeout, tries)
        run.run_timers()
        outcome = run.outcome
        ok = (outcome is not None and outcome[:2] == ("failed", at)
              and isinstance(outcome[2], TimeoutError) and f"{tries} attempts" in str(outcome[2]))
        assert ok, (
            f"timeout={timeout}, tries={tries}, no reply: the Deferred {_describe(outcome)},"
            f" expected it to fail at {at:g} s with TimeoutError('no reply after {tries}"
            " attempts')"
        )


def _reply_wins(answer):
    run = _Run(answer, 0.1, 4)
    run.clock.advance(0.1)  # the second send
    run.clock.advance(0.05)
    run.backoff.replied(b"pong")
    assert run.outcome == ("fired", 0.15, b"pong"), (
        f"replied(b'pong') at 0.15 s: the Deferred {_describe(run.outcome)}, expected it to"
        " fire with b'pong' at once"
    )
    assert not run.clock.getDelayedCalls(), "after the reply, a timer is still scheduled"
    run.backoff.replied(b"late duplicate")
    run.clock.advance(5)
    assert run.sends == [0.0, 0.1], f"sends at {run.sends} although the reply came at 0.15 s"
    assert run.outcome[2] == b"pong", f"a later reply changed the result to {run.outcome[2]!r}"


exercise(
    "13.2",
    "Retransmission with exponential backoff",
    Check(
        "start() sends at once and returns a Deferred",
        _starts,
        "in start(): self.result = Deferred(); self._attempt(); return self.result",
    ),
    Check(
        "no reply: sends again after timeout, 2 x timeout, 4 x timeout, ...",
        _backs_off,
        "each attempt: self.send(); self.timer = self.clock.callLater(self.timeout * 2 **"
        " (attempts - 1), self._expired)",
    ),
    Check(
        "after `tries` sends and the last wait: TimeoutError naming the attempts",
        _gives_up,
        "in the timer callback: if attempts == tries, errback(TimeoutError(f'no reply after"
        " {attempts} attempts')) instead of sending",
    ),
    Check(
        "the first reply fires the Deferred and cancels the timer; later ones are ignored",
        _reply_wins,
        "in replied(): if not self.result.called: self.timer.cancel(); self.result.callback(reply)",
    ),
)


# -- 13.3 -------------------------------------------------------------------


def _script(answer, steps, story):
    """Run (peer, datagram, expected reply) steps against the answer, peers "A" and "B"."""
    with _listening(answer) as (port, log), _udp_socket() as a, _udp_socket() as b:
        peers = {"A": a, "B": b}
        for who, datagram, expected in steps:
            reply = _exchange(peers[who], port, log, datagram)
            assert reply == expected, (
                f"{story}: {who}'s {datagram!r} got {reply!r}, expected {expected!r}"
            )


def _adds(answer):
    _script(answer, [("A", b"1 add 5", b"1 total 5"), ("A", b"2 add 3", b"2 total 8")],
            "A sent 1 add 5, 2 add 3")


def _once(answer):
    _script(answer, [("A", b"1 add 5", b"1 total 5"), ("A", b"1 add 5", b"1 total 5"),
                     ("A", b"2 add 1", b"2 total 6")],
            "A sent 1 add 5, the same again (a retransmission), then 2 add 1")


def _per_peer(answer):
    _script(answer, [("A", b"1 add 5", b"1 total 5"), ("B", b"1 add 10", b"1 total 15"),
                     ("A", b"1 add 5", b"1 total 5")],
            "A sent 1 add 5, B sent 1 add 10, A repeated 1 add 5")


exercise(
    "13.3",
    "Apply each request once",
    Check(
        "adds and answers b'ID total T'",
        _adds,
        "request_id, _, command = datagram.partition(b' '); N = int(command.split()[1])",
    ),
    Check(
        "a repeated request is not applied again, and gets its first reply",
        _once,
        "remember each reply: self.replies[key] = reply; if key is already there, send that",
    ),
    Check(
        "ids are per peer: the same id from another peer is a new request",
        _per_peer,
        "key the remembered replies by (addr, request_id), not by request_id alone",
    ),
)
