"""Reference solutions for chapter 06 (protocols and factories).

Run through the chapter's checkers by tests/test_exercises_ch06.py:
``check("06.1", SOLUTIONS["06.1"]).passed`` is True.
"""

from __future__ import annotations

import itertools

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

# -- 06.1 -------------------------------------------------------------------


class Shout(Protocol):
    """Echo each chunk upper-cased; keep what this connection received."""

    def connectionMade(self):
        self.received = bytearray()  # per connection: created here, not in the class body

    def dataReceived(self, data):
        self.received += data
        self.transport.write(data.upper())  # bytes.upper(): a-z only, any split is fine


# -- 06.2 -------------------------------------------------------------------


class Member(Protocol):
    """One client of a Roster: numbered on arrival, answers any data with the roster."""

    def connectionMade(self):
        self.number = next(self.factory.numbers)  # identity: never reused
        self.factory.live.add(self)
        self.transport.write(b"you are %d\n" % self.number)

    def dataReceived(self, data):
        numbers = sorted(member.number for member in self.factory.live)
        self.transport.write(b"connected: %s\n" % " ".join(map(str, numbers)).encode())

    def connectionLost(self, reason):
        self.factory.live.discard(self)


class Roster(Factory):
    """Shared state of all its connections: the counter and the set of live members."""

    protocol = Member

    def __init__(self):
        self.numbers = itertools.count(1)
        self.live = set()


# -- 06.3 -------------------------------------------------------------------


@implementer(IHalfCloseableProtocol)
class LineCount(Protocol):
    """Like `wc -lc`: count until the client's EOF, then reply and close."""

    def connectionMade(self):
        self.lines = self.size = 0

    def dataReceived(self, data):
        self.lines += data.count(b"\n")
        self.size += len(data)

    def readConnectionLost(self):
        """The client shut down its sending side; ours is still open."""
        self.transport.write(b"%d %d\n" % (self.lines, self.size))
        self.transport.loseConnection()

    def writeConnectionLost(self):
        """Only called after our own loseWriteConnection(), which we never use."""


SOLUTIONS = {
    "06.1": Shout,
    "06.2": Roster,
    "06.3": LineCount,
}
