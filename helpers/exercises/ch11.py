"""Checks for chapter 11 (connection management).

11.1 `LoginThenIdle`: a Protocol with TimeoutMixin; the first line must arrive within
     LOGIN_TIMEOUT (1.0 s; bytes without a whole line do not extend it), else it writes
     b"login timeout\\n" and closes gracefully; after that line, IDLE_TIMEOUT (4.0 s)
     without input gives b"idle timeout\\n" and a graceful close; connectionLost cancels
     the countdown.
11.2 `PerHostLimit(limit)`: a Factory; at most `limit` connections at a time per peer host,
     b"welcome\\n" for those let in, b"too many connections from your host\\n" and a close
     for the others; a closed connection frees its slot, a refused one never held one.
11.3 `make_factory(clock)`: a ReconnectingClientFactory that waits 0.5, 1, 2, 4, 4 s before
     successive retries (no jitter), gives up after 5 retries in a row, schedules on `clock`,
     and starts again from 0.5 s (and a fresh count) after a successful connection.

Every check runs the answer on a `task.Clock` and `StringTransport`s: no network, no reactor
and no waiting, so a wrong answer fails at once.
"""

from __future__ import annotations

from .legacy import Check, exercise

LOGIN_TIMEOUT, IDLE_TIMEOUT = 1.0, 4.0
LOGIN_GOODBYE, IDLE_GOODBYE = b"login timeout\n", b"idle timeout\n"
WELCOME = b"welcome\n"
REFUSAL = b"too many connections from your host\n"
DELAYS = [0.5, 1.0, 2.0, 4.0, 4.0]
MAX_STEPS = 30  # no schedule checked here needs more: a loop that does is cut off


def _done():
    from twisted.internet import error
    from twisted.python.failure import Failure

    return Failure(error.ConnectionDone("closed by the checker"))


# -- 11.1 -------------------------------------------------------------------


def _connection(cls):
    """(protocol, transport, clock): cls() connected to a StringTransport, on a Clock."""
    from twisted.internet import task
    from twisted.internet.testing import StringTransport

    clock = task.Clock()
    proto = cls()
    proto.callLater = clock.callLater  # TimeoutMixin schedules through this method
    wire = StringTransport()
    proto.makeConnection(wire)
    return proto, wire, clock


def _at(clock):
    return f"t={clock.seconds():g} s"


def _open(wire, clock, story):
    assert not wire.disconnecting, f"closed at {_at(clock)}: {story}"


def _closed_with(wire, clock, goodbye, story):
    assert wire.disconnecting, f"still open at {_at(clock)}: {story}"
    assert wire.value() == goodbye, (
        f"at {_at(clock)} ({story}) it had written {wire.value()!r}, expected {goodbye!r}"
    )


def _is_timeout_mixin(cls):
    from twisted.internet.protocol import Protocol
    from twisted.protocols.policies import TimeoutMixin

    assert isinstance(cls, type), f"expected a class, got {cls!r}"
    bases = [c.__name__ for c in cls.__mro__[1:]]
    assert issubclass(cls, Protocol), f"{cls.__name__} is not a Protocol (its bases: {bases})"
    assert issubclass(cls, TimeoutMixin), (
        f"{cls.__name__} does not inherit TimeoutMixin (its bases: {bases})"
    )


def _login_deadline(cls):
    proto, wire, clock = _connection(cls)
    clock.advance(0.5)
    _open(wire, clock, "the login deadline is 1.0 s")
    clock.advance(0.5)
    _closed_with(wire, clock, LOGIN_GOODBYE, "1.0 s after connecting, and no line sent")


def _dribble(cls):
    proto, wire, clock = _connection(cls)
    for piece in [b"al", b"i", b"ce"]:  # at t = 0.25, 0.5, 0.75: never a whole line
        clock.advance(0.25)
        proto.dataReceived(piece)
    clock.advance(0.25)
    _closed_with(wire, clock, LOGIN_GOODBYE,
                 "bytes b'al', b'i', b'ce' came before the deadline, but no whole line: they"
                 " must not extend the login deadline")


def _idle_after_login(cls):
    proto, wire, clock = _connection(cls)
    clock.advance(0.5)
    proto.dataReceived(b"alice\n")
    clock.advance(3.5)
    _open(wire, clock, "logged in at t=0.5 s, so the idle timeout (4.0 s) applies from there")
    proto.dataReceived(b"x")
    clock.advance(3.5)
    _open(wire, clock, "input at t=4 s restarts the idle timeout of 4.0 s")
    clock.advance(0.5)
    _closed_with(wire, clock, IDLE_GOODBYE, "4.0 s after the last input at t=4 s")


def _graceful(cls):
    for login in (False, True):
        proto, wire, clock = _connection(cls)
        if login:
            proto.dataReceived(b"alice\n")
        clock.advance(IDLE_TIMEOUT)
        which = "idle" if login else "login"
        assert wire.disconnecting, f"still open at {_at(clock)}, after the {which} timeout"
        assert not getattr(wire, "disconnected", False), (  # StringTransport's abortConnection
            f"the {which} timeout closed with abortConnection(), which throws away the goodbye"
            " still queued; loseConnection() sends it first"
        )


def _cancelled(cls):
    for login in (False, True):
        proto, wire, clock = _connection(cls)
        if login:
            proto.dataReceived(b"alice\n")
        clock.advance(0.5)
        proto.connectionLost(_done())
        left = [f"t={c.getTime():g}" for c in clock.getDelayedCalls()]
        assert not left, (
            f"connectionLost at t=0.5 s ({'after' if login else 'before'} the login line) left"
            f" a countdown scheduled ({', '.join(left)}): it would still run"
            " timeoutConnection on the closed connection"
        )


exercise(
    "11.1",
    "A login deadline, then an idle timeout",
    Check("a Protocol with TimeoutMixin", _is_timeout_mixin,
          "class LoginThenIdle(Protocol, TimeoutMixin)"),
    Check("no line within 1.0 s: b'login timeout\\n' and closed", _login_deadline,
          "self.setTimeout(LOGIN_TIMEOUT) in connectionMade; override timeoutConnection to"
          " write the goodbye, then call TimeoutMixin's"),
    Check("bytes without a whole line do not extend the deadline", _dribble,
          "before the first b'\\n', buffer the input and do not call resetTimeout()"),
    Check("after the first line: 4.0 s idle timeout, restarted by input", _idle_after_login,
          "self.setTimeout(IDLE_TIMEOUT) when the first line is complete; then"
          " self.resetTimeout() on every input; the goodbye is b'idle timeout\\n'"),
    Check("closes gracefully (the goodbye is delivered)", _graceful,
          "transport.loseConnection(), not abortConnection()"),
    Check("connectionLost cancels the countdown", _cancelled,
          "self.setTimeout(None) in connectionLost"),
)


# -- 11.2 -------------------------------------------------------------------


class _Conn:
    """One connection from `host` to the answer's factory, on a StringTransport."""

    ports = iter(range(40000, 60000))

    def __init__(self, factory, host):
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        self.host = host
        addr = IPv4Address("TCP", host, next(self.ports))
        self.proto = factory.buildProtocol(addr)
        assert self.proto is not None, (
            f"buildProtocol returned None for a connection from {host}: the client is"
            " closed without a word; let it in and tell it why it is refused"
        )
        self.wire = StringTransport(peerAddress=addr,
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 7000))
        self.proto.makeConnection(self.wire)

    def state(self):
        data, closing = self.wire.value(), self.wire.disconnecting
        if data == WELCOME and not closing:
            return "welcome"
        if data == REFUSAL and closing:
            return "refused"
        return f"wrote {data!r} and {'closed' if closing else 'stayed open'}"

    def lose(self):
        self.proto.connectionLost(_done())


def _factory(cls, limit):
    factory = cls(limit)
    factory.doStart()  # as listenTCP does: startFactory runs once
    return factory


def _expect(conns, expected, story):
    got = [c.state() for c in conns]
    assert got == expected, f"{story}: got {got}, expected {expected}"


def _limit_per_host(cls):
    for limit in (2, 3):
        factory = _factory(cls, limit)
        conns = [_Conn(factory, "10.0.0.1") for _ in range(limit + 1)]
        _expect(conns, ["welcome"] * limit + ["refused"],
                f"limit {limit}, {limit + 1} connections from one host")


def _hosts_separate(cls):
    factory = _factory(cls, 2)
    conns = [_Conn(factory, host) for host in ["10.0.0.1", "10.0.0.1", "10.0.0.2",
                                               "10.0.0.2", "10.0.0.2", "10.0.0.3"]]
    _expect(conns, ["welcome", "welcome", "welcome", "welcome", "refused", "welcome"],
            "limit 2, from hosts .1 .1 .2 .2 .2 .3")


def _closed_frees(cls):
    factory = _factory(cls, 1)
    first = _Conn(factory, "10.0.0.1")
    first.lose()
    again = _Conn(factory, "10.0.0.1")
    _expect([first, again], ["welcome", "welcome"],
            "limit 1: a connection from a host, closed, then another from that host")


def _refused_holds_nothing(cls):
    factory = _factory(cls, 1)
    kept = _Conn(factory, "10.0.0.1")
    refused = [_Conn(factory, "10.0.0.1") for _ in range(3)]
    for conn in refused:
        conn.lose()
    late = _Conn(factory, "10.0.0.1")
    _expect([kept, *refused, late], ["welcome", "refused", "refused", "refused", "refused"],
            "limit 1: one connection kept open, three refused and closed, then one more"
            " from the same host (the first still holds the slot)")


exercise(
    "11.2",
    "A limit per client host",
    Check("at most `limit` connections from one host", _limit_per_host,
          "count per host in the factory (a dict); decide in connectionMade from"
          " self.transport.getPeer().host"),
    Check("hosts are counted separately", _hosts_separate,
          "the key is the host only (not host and port: every connection has its own port)"),
    Check("a closed connection frees its slot", _closed_frees,
          "decrement the host's count in connectionLost"),
    Check("a refused connection never held a slot", _refused_holds_nothing,
          "remember on the protocol whether it was counted; only then decrement"),
)


# -- 11.3 -------------------------------------------------------------------


class _Connector:
    """Stands in for connectTCP's connector; each attempt fails or connects as scripted.

    A successful attempt builds the protocol, connects it to a StringTransport, and then
    loses the connection at once, as a server that closes would.
    """

    def __init__(self, factory, script):
        self.factory, self.script, self.attempts = factory, list(script), 0

    def connect(self):
        from twisted.internet import error
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport
        from twisted.python.failure import Failure

        self.attempts += 1
        if (self.script.pop(0) if self.script else "fail") == "fail":
            self.factory.clientConnectionFailed(self, Failure(error.ConnectionRefusedError()))
            return
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 7000))
        proto.makeConnection(StringTransport())
        proto.connectionLost(_done())
        self.factory.clientConnectionLost(self, _done())

    def stopConnecting(self):
        pass

    def disconnect(self):
        pass


def _schedule(make_factory, script=()):
    """Run attempts until the factory stops retrying: the delays it waited, rounded."""
    from twisted.internet import protocol, task

    clock = task.Clock()
    factory = make_factory(clock)
    assert isinstance(factory, protocol.ReconnectingClientFactory), (
        f"make_factory returned {factory!r}, expected a ReconnectingClientFactory"
    )
    # Checked before any attempt, so that a wrong answer never schedules on the real reactor.
    assert factory.clock is clock, (
        f"factory.clock is {factory.clock!r}, not the `clock` passed in: its retries would"
        " be scheduled on the reactor"
    )
    connector = _Connector(factory, script)
    connector.connect()
    delays = []
    while clock.getDelayedCalls() and len(delays) < MAX_STEPS:
        pending = min(clock.getDelayedCalls(), key=lambda c: c.getTime())
        delays.append(pending.getTime() - clock.seconds())
        clock.advance(delays[-1])
    return [round(d, 3) for d in delays], factory


def _uses_clock(make_factory):
    delays, factory = _schedule(make_factory, ["fail"])
    assert delays, "after a refused attempt nothing was scheduled on `clock`"


def _delays(make_factory):
    delays, _ = _schedule(make_factory)
    assert delays[:5] == DELAYS, (
        f"with every attempt refused it waited {delays[:5]}, expected {DELAYS}"
        + (" (random: is jitter 0?)" if any(round(d, 1) != d for d in delays[:5]) else "")
        + (" (the first wait is factory.delay, which the class sets to 1.0: setting"
           " initialDelay does not change it; call resetDelay() after configuring)"
           if delays[:1] == [1.0] else "")
    )


def _gives_up(make_factory):
    delays, _ = _schedule(make_factory)
    more = "" if len(delays) < MAX_STEPS else " and was still retrying"
    assert len(delays) == 5, (
        f"with every attempt refused it retried {len(delays)} times{more}, expected 5 retries"
        " and then nothing"
    )


def _reset(make_factory):
    delays, _ = _schedule(make_factory, ["fail", "fail", "fail", "ok"])
    expected = [0.5, 1.0, 2.0] + DELAYS
    assert delays == expected, (
        f"refused 3 times, then connected (and closed by the server), then refused again:"
        f" it waited {delays}, expected {expected}"
    )


exercise(
    "11.3",
    "A reconnecting factory, configured",
    Check("retries are scheduled on `clock`", _uses_clock, "factory.clock = clock"),
    Check("waits 0.5, 1, 2, 4, 4 s, exactly", _delays,
          "initialDelay = 0.5, factor = 2, maxDelay = 4, jitter = 0, then resetDelay()"),
    Check("gives up after 5 retries in a row", _gives_up, "maxRetries = 5"),
    Check("a connection starts the schedule and the count again", _reset,
          "call self.resetDelay() in buildProtocol (or in the protocol's connectionMade)"),
)
