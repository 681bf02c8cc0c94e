"""Reference solutions for chapter 07 (clients and endpoints).

Run through the chapter's checkers by tests/test_exercises_ch07.py:
``check("07.1", SOLUTIONS["07.1"]).passed`` is True.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import connectProtocol
from twisted.internet.protocol import ClientFactory, Protocol

# -- 07.1 -------------------------------------------------------------------


class _Collect(Protocol):
    """Send the factory's message; keep everything the server sends."""

    def connectionMade(self):
        self.received = b""
        self.transport.write(self.factory.message)

    def dataReceived(self, data):
        self.received += data  # the reply may come in any number of pieces

    def connectionLost(self, reason):
        self.factory.reply = self.received  # runs before clientConnectionLost


class ReplyFactory(ClientFactory):
    """Send `message`, collect the reply until the server closes.

    `result` fires with the reply once the connection has closed, or fails with
    the reason the connection could not be made (ConnectionRefusedError, ...).
    """

    protocol = _Collect

    def __init__(self, message):
        self.message = message
        self.reply = b""
        self.result = Deferred()  # one per factory: never a class attribute

    def clientConnectionFailed(self, connector, reason):
        self.result.errback(reason)

    def clientConnectionLost(self, connector, reason):
        self.result.callback(self.reply)


# -- 07.2 -------------------------------------------------------------------


class ClosedBeforeReply(Exception):
    """The connection closed before a whole reply line arrived."""


class _FirstLine(Protocol):
    def __init__(self, line):
        self.line, self.buffer = line, b""
        self.reply = Deferred()

    def connectionMade(self):
        self.transport.write(self.line.encode() + b"\n")

    def dataReceived(self, data):
        self.buffer += data
        if b"\n" in self.buffer and not self.reply.called:
            first = self.buffer.split(b"\n", 1)[0]
            self.transport.loseConnection()
            self.reply.callback(first.decode())

    def connectionLost(self, reason):
        if not self.reply.called:
            self.reply.errback(ClosedBeforeReply(reason.getErrorMessage()))


def fetch(endpoint, line):
    """Send one line over `endpoint`; fire with the first reply line, then close.

    One Deferred carries every outcome: connectProtocol's fails if the connection
    cannot be made; once connected, it is chained to the protocol's `reply`.
    """
    protocol = _FirstLine(line)
    return connectProtocol(endpoint, protocol).addCallback(lambda _: protocol.reply)


# -- 07.3 -------------------------------------------------------------------


class ConnectionLostError(Exception):
    """The connection ended before this request got its reply."""


class KeyValueClient(Protocol):
    """get(key) -> Deferred: fires with the value, or fails with KeyError(key).

    Requests are written at once (pipelined); the server answers in order, so
    each reply line belongs to the oldest request still waiting.
    """

    def __init__(self):
        self.buffer = b""
        self.pending = deque()
        self.lost = None

    def get(self, key):
        if self.lost is not None:
            return fail(ConnectionLostError(f"not connected: {self.lost}"))
        d = Deferred()
        self.pending.append((key, d))
        self.transport.write(f"get {key}\n".encode())
        return d

    def dataReceived(self, data):
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            if not self.pending:  # a reply nobody asked for: out of step
                self.transport.loseConnection()
                return
            key, d = self.pending.popleft()
            kind, _, value = line.decode().partition(" ")
            if kind == "value":
                d.callback(value)
            else:
                d.errback(KeyError(key))

    def connectionLost(self, reason):
        self.lost = reason.getErrorMessage()
        while self.pending:
            _, d = self.pending.popleft()
            d.errback(ConnectionLostError(f"lost before the reply: {self.lost}"))


SOLUTIONS = {
    "07.1": ReplyFactory,
    "07.2": fetch,
    "07.3": KeyValueClient,
}
