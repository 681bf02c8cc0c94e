"""Reference solutions for chapter 11 (connection management).

Run through the chapter's checkers by tests/test_exercises.py:
``check("11.1", SOLUTIONS["11.1"]).passed`` is True.
"""

from __future__ import annotations

from twisted.internet.protocol import Factory, Protocol, ReconnectingClientFactory
from twisted.protocols.policies import TimeoutMixin

# -- 11.1 -------------------------------------------------------------------

LOGIN_TIMEOUT, IDLE_TIMEOUT = 1.0, 4.0


class LoginThenIdle(Protocol, TimeoutMixin):
    """The first line within LOGIN_TIMEOUT; after it, close after IDLE_TIMEOUT without input.

    One countdown serves both: `setTimeout` starts it, and called again while it runs it
    changes the period (and restarts it). Before the first whole line, input does not
    call `resetTimeout`, so a client that sends one byte at a time cannot hold the
    connection open. `setTimeout(None)` cancels the countdown when the connection ends for
    another reason. TimeoutMixin's own `timeoutConnection` closes with loseConnection,
    which sends the goodbye queued just before it.
    """

    def connectionMade(self):
        self.logged_in = False
        self.setTimeout(LOGIN_TIMEOUT)

    def dataReceived(self, data):
        if self.logged_in:
            self.resetTimeout()
        elif b"\n" in data:  # the first line's end; nothing before it is kept
            self.logged_in = True
            self.setTimeout(IDLE_TIMEOUT)

    def timeoutConnection(self):
        self.transport.write(b"idle timeout\n" if self.logged_in else b"login timeout\n")
        super().timeoutConnection()

    def connectionLost(self, reason):
        self.setTimeout(None)


# -- 11.2 -------------------------------------------------------------------


class PerHost(Protocol):
    """Let the connection in if its host is under the limit; otherwise say so and close.

    `counted` records whether this connection took a slot, so that connectionLost gives
    back only slots that were taken.
    """

    counted = False

    def connectionMade(self):
        self.host = self.transport.getPeer().host
        count = self.factory.per_host.get(self.host, 0)
        if count >= self.factory.limit:
            self.transport.write(b"too many connections from your host\n")
            self.transport.loseConnection()
            return
        self.factory.per_host[self.host] = count + 1
        self.counted = True
        self.transport.write(b"welcome\n")

    def connectionLost(self, reason):
        if self.counted:
            self.factory.per_host[self.host] -= 1
            if not self.factory.per_host[self.host]:
                del self.factory.per_host[self.host]  # no empty entries for hosts long gone


class PerHostLimit(Factory):
    """At most `limit` connections at a time from each peer host (the counts live here)."""

    protocol = PerHost

    def __init__(self, limit):
        self.limit = limit
        self.per_host = {}


# -- 11.3 -------------------------------------------------------------------


class ResettingFactory(ReconnectingClientFactory):
    """A connection made: the next outage starts again from initialDelay, with 5 retries."""

    protocol = Protocol

    def buildProtocol(self, addr):
        self.resetDelay()
        return super().buildProtocol(addr)


def make_factory(clock):
    """0.5, 1, 2, 4, 4 s between retries (exactly: no jitter), at most 5 in a row, on `clock`.

    The first wait is `factory.delay`, not `initialDelay`: the class sets `delay` to its own
    initialDelay (1.0), so after changing initialDelay, resetDelay() copies it over.
    """
    factory = ResettingFactory()
    factory.initialDelay, factory.factor, factory.maxDelay = 0.5, 2, 4
    factory.jitter = 0
    factory.maxRetries = 5
    factory.clock = clock
    factory.resetDelay()  # `delay`, the next wait, was set from the class's initialDelay (1.0)
    return factory


SOLUTIONS = {
    "11.1": LoginThenIdle,
    "11.2": PerHostLimit,
    "11.3": make_factory,
}
