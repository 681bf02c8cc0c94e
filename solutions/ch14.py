"""Reference solutions for chapter 14 (TLS and security).

Run through the chapter's checkers by tests/test_exercises.py:
``check("14.1", SOLUTIONS["14.1"]).passed`` is True.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

# -- 14.1 -------------------------------------------------------------------


def client_options(hostname, ca_pem):
    """Options for a client that trusts only the CA in `ca_pem` and checks `hostname`.

    optionsForClientTLS verifies the chain up to `trustRoot` (which also checks the dates)
    and, with service_identity, that the certificate names `hostname`. Passing trustRoot
    replaces the system's trust store: no other CA is trusted.
    """
    return optionsForClientTLS(hostname, trustRoot=Certificate.loadPEM(ca_pem))


# -- 14.2 -------------------------------------------------------------------


class StartTLSRefused(Exception):
    """The server, or someone in between, did not let the connection switch to TLS."""


@implementer(IHandshakeListener)
class StartTLSClient(LineReceiver):
    """STARTTLS after the greeting; the command only over a verified TLS connection.

    Refuses to go on in plain text when STARTTLS is refused (stripping), and refuses
    plain text that arrived behind the 220 reply (injection): a real server sends
    nothing there, since the client has not started its handshake yet.
    """

    def __init__(self, options, command):
        self.options, self.command = options, command
        self.result = Deferred()
        self.state = "greeting"

    def lineReceived(self, line):
        if self.state == "greeting":
            if line.startswith(b"220"):
                self.state = "starttls"
                self.sendLine(b"STARTTLS")
        elif self.state == "starttls":
            if not line.startswith(b"220"):
                self.give_up(StartTLSRefused(f"STARTTLS refused: {line!r}"))
            elif self.clearLineBuffer():
                self.give_up(StartTLSRefused("plain text after the 220 reply: injected"))
            else:
                self.state = "handshake"
                self.transport.startTLS(self.options)
        elif self.state == "command":
            self.state = "done"
            self.result.callback(line)
            self.transport.loseConnection()

    def handshakeCompleted(self):
        self.state = "command"
        self.sendLine(self.command)

    def give_up(self, error):
        self.state = "done"
        self.result.errback(error)
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.result.called:
            self.result.errback(reason)


# -- 14.3 -------------------------------------------------------------------


class TokenBucket:
    """A bucket of at most `burst` tokens per peer host, refilled at `rate` per second.

    Buckets are keyed on the host: every connection from one host shares it, whatever
    its port. A full bucket carries no information (it is what a new host gets), so
    full buckets are forgotten, once per refill time: the table only holds hosts that
    were active recently.
    """

    def __init__(self, rate, burst, clock):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets = {}  # host -> (tokens, when they were counted)
        self.swept = clock.seconds()

    def allow(self, peer):
        now = self.clock.seconds()
        if now - self.swept >= self.burst / self.rate:
            self._forget_full(now)
            self.swept = now
        tokens, then = self.buckets.get(peer.host, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        allowed = tokens >= 1
        self.buckets[peer.host] = (tokens - 1 if allowed else tokens, now)
        return allowed

    def _forget_full(self, now):
        full = [host for host, (tokens, then) in self.buckets.items()
                if tokens + (now - then) * self.rate >= self.burst]
        for host in full:
            del self.buckets[host]


SOLUTIONS = {
    "14.1": client_options,
    "14.2": StartTLSClient,
    "14.3": TokenBucket,
}
