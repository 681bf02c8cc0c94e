"""Checks for chapter 11 (connection management).

11.1 `LoginThenIdle`: a Protocol with TimeoutMixin; the first line must arrive within
     LOGIN_TIMEOUT (1.0 s; bytes without a whole line do not extend it), else it writes
     b"login timeout\\n" and closes gracefully; after that line, IDLE_TIMEOUT (4.0 s)
     without input gives b"idle timeout\\n" and a graceful close; connectionLost cancels
     the countdown.
11.2 `PerHostLimit(limit)`: a Factory; at most `limit` connections at a time per peer host,
     b"welcome\\n" for those let in, b"too many connections from your host\\n" and a graceful
     close for the others; a closed connection frees its slot, a refused one never held one.
11.3 `make_factory(clock)`: a ReconnectingClientFactory that waits 0.5, 1, 2, 4, 4 s before
     successive retries (no jitter), gives up after 5 retries in a row, schedules on `clock`,
     and starts again from 0.5 s (and a fresh count) after a successful connection.

Every check runs the answer on a `task.Clock` and `StringTransport`s: no network, no reactor
and no waiting, so a wrong answer fails at once.
"""

from __future__ import annotations

from . import exercise, fail, observation, require, show
from .answers import reader_code

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

login = exercise("11.1", "A login deadline, then an idle timeout")


def _connection(cls, clock=None):
    """(protocol, transport, clock): cls() connected to a StringTransport, on a Clock."""
    from twisted.internet import task
    from twisted.internet.protocol import Protocol
    from twisted.internet.testing import StringTransport
    from twisted.protocols.policies import TimeoutMixin

    require(isinstance(cls, type) and issubclass(cls, Protocol),
            f"expected a Protocol class, got {show(cls)}")
    # Checked before running it: a countdown of its own would be on the real reactor.
    require(issubclass(cls, TimeoutMixin), f"{cls.__name__} does not inherit TimeoutMixin"
            f" (its bases: {[c.__name__ for c in cls.__mro__[1:]]})")
    clock = clock or task.Clock()
    before = set(_reactor_calls())
    proto = cls()
    proto.callLater = clock.callLater  # TimeoutMixin schedules through this method
    wire = StringTransport()
    proto.makeConnection(wire)
    if not clock.getDelayedCalls():
        _no_countdown(before, proto, wire)
    return proto, wire, clock


def _no_countdown(before, proto, wire):
    """Fail: nothing was scheduled on the clock. Say what was scheduled on the reactor
    instead, if anything, and cancel it."""
    # Only calls of this protocol's (or its transport's) methods: in a notebook other
    # servers have their own calls on the reactor, and they must be left alone.
    stray = [c for c in _reactor_calls() if c not in before and _of(c, proto, wire)]
    names = sorted({_called(c) for c in stray})  # before cancel() forgets them
    _cancel(stray)
    if any(name.startswith("TimeoutMixin.") for name in names):
        fail("right after connectionMade nothing was scheduled on the protocol's callLater:"
             " TimeoutMixin's countdown had been started on the reactor, when the protocol"
             " was made, before the connection (and before the checker could point the"
             " protocol's callLater to its clock); the checker cancelled it")
    require(not stray, "right after connectionMade nothing was scheduled on the protocol's"
            f" callLater, but a call of {', '.join(names)} was scheduled on the reactor"
            " itself: a countdown there is not TimeoutMixin's, and the checker's clock cannot"
            " move it (the checker cancelled it)")
    fail("right after connectionMade nothing was scheduled on the protocol's callLater: no"
         " countdown was started")


def _reactor_calls():
    """The reactor's pending calls (a read: safe from any thread)."""
    from twisted.internet import reactor

    return list(reactor.getDelayedCalls())


def _of(call, proto, wire):
    """Whether a reactor call runs a method of `proto` or `wire`, or code of the answer's
    classes (a lambda or a function defined in one of their methods)."""
    func = getattr(call, "func", None)
    if getattr(func, "__self__", None) in (proto, wire):
        return True
    mine = [c.__qualname__ for c in type(proto).__mro__
            if not c.__module__.startswith(("twisted.", "builtins"))]
    return any(getattr(func, "__qualname__", "").startswith(f"{name}.") for name in mine)


def _called(call):
    func = getattr(call, "func", None)
    return getattr(func, "__qualname__", None) or show(func)


def _cancel(calls):
    """Cancel calls an answer scheduled on the reactor, in the reactor's thread if it runs."""
    from twisted.internet import reactor

    from ..reactor import is_started

    for call in calls:
        if is_started():
            reactor.callFromThread(lambda c=call: c.active() and c.cancel())
        elif call.active():
            call.cancel()


def _at(clock):
    return f"t={clock.seconds():g} s"


def _open(wire, clock, story):
    require(not wire.disconnecting, f"closed at {_at(clock)}: {story}")


def _closed_with(wire, clock, goodbye, story):
    require(wire.disconnecting, f"still open at {_at(clock)}: {story}")
    require(wire.value() == goodbye, f"at {_at(clock)} ({story}) it had written"
            f" {show(wire.value())}, expected {show(goodbye)}")


@login.check("login-deadline", "no line within 1.0 s: b'login timeout\\n', then closed",
             hint="Start TimeoutMixin's countdown when the connection is made, and say goodbye"
                  " in the method it calls when the countdown runs out, before closing.")
def _login_deadline(cls):
    _, wire, clock = _connection(cls)
    clock.advance(0.999)
    _open(wire, clock, "the login deadline is 1.0 s after connecting")
    clock.advance(0.001)
    _closed_with(wire, clock, LOGIN_GOODBYE, "1.0 s after connecting, and no line sent")


@login.check("dribble", "bytes without a whole line do not extend the deadline",
             hint="Input before the first whole line must not restart the countdown: keep it"
                  " until a line is complete.")
def _dribble(cls):
    proto, wire, clock = _connection(cls)
    for piece in [b"al", b"i", b"ce"]:  # at t = 0.25, 0.5, 0.75: never a whole line
        clock.advance(0.25)
        proto.dataReceived(piece)
    clock.advance(0.25)
    _closed_with(wire, clock, LOGIN_GOODBYE,
                 "bytes b'al', b'i', b'ce' came before the deadline, but no whole line: they"
                 " must not extend the login deadline")


@login.check("first-line", "the first line counts however it is split",
             hint="A line can arrive in pieces, with more bytes behind it in the same piece:"
                  " look for the end of line in everything received so far.")
def _first_line_in_pieces(cls):
    proto, wire, clock = _connection(cls)
    clock.advance(0.3)
    proto.dataReceived(b"ali")
    clock.advance(0.3)
    proto.dataReceived(b"ce\nhel")
    story = "b'ali' at t=0.3 s, then b'ce\\nhel' at t=0.6 s: the first line was complete"
    clock.advance(0.4)
    _open(wire, clock, f"{story}, so the login deadline no longer applies")
    clock.advance(3.599)
    _open(wire, clock, f"{story} at t=0.6 s, so the idle timeout runs to t=4.6 s")


@login.check("idle", "after the first line: a 4.0 s idle timeout, restarted by any input,"
             " then b'idle timeout\\n'",
             hint="Once the first line is complete, change the countdown's period; from then"
                  " on every piece of input restarts it, and the goodbye says which rule ran"
                  " out.")
def _idle_after_login(cls):
    proto, wire, clock = _connection(cls)
    clock.advance(0.5)
    proto.dataReceived(b"alice\n")
    clock.advance(3.5)
    _open(wire, clock, "logged in at t=0.5 s, so the idle timeout (4.0 s) applies from there")
    proto.dataReceived(b"x")
    for step in (0.5, 3.499):
        clock.advance(step)
        _open(wire, clock, "b'x' (not a whole line) at t=4 s restarts the idle timeout of"
              " 4.0 s")
    clock.advance(0.001)
    _closed_with(wire, clock, IDLE_GOODBYE, "4.0 s after the last input at t=4 s")


@login.check("graceful", "both timeouts close gracefully (the goodbye is delivered)",
             hint="One way of closing sends what is queued first; the other throws it away"
                  " (chapter 06).")
def _graceful(cls):
    for logged_in in (False, True):
        proto, wire, clock = _connection(cls)
        if logged_in:
            proto.dataReceived(b"alice\n")
        clock.advance(IDLE_TIMEOUT)
        which = "idle" if logged_in else "login"
        require(wire.disconnecting, f"still open at {_at(clock)}, after the {which} timeout")
        require(not getattr(wire, "disconnected", False),  # StringTransport's abortConnection
                f"the {which} timeout closed with abortConnection(), which throws away the"
                " goodbye still queued")


@login.check("cancelled", "connectionLost cancels the countdown",
             hint="A countdown still scheduled after connectionLost fires on a closed"
                  " connection; TimeoutMixin has a way to stop it.")
def _cancelled(cls):
    for logged_in in (False, True):
        proto, wire, clock = _connection(cls)
        if logged_in:
            proto.dataReceived(b"alice\n")
        clock.advance(0.5)
        proto.connectionLost(_done())
        left = [f"t={c.getTime():g}" for c in clock.getDelayedCalls()]
        require(not left, f"connectionLost at t=0.5 s ({'after' if logged_in else 'before'}"
                f" the login line) left a countdown scheduled ({', '.join(left)}): it would"
                " still run timeoutConnection on the closed connection")


@login.check("independent", "each connection has its own deadline and its own input",
             hint="Keep each connection's state on its own protocol, made when it connects,"
                  " not in the class body where every connection shares it.")
def _independent(cls):
    first, first_wire, clock = _connection(cls)
    first.dataReceived(b"al")
    clock.advance(0.5)
    second, second_wire, _ = _connection(cls, clock)
    first.dataReceived(b"ice\n")
    second.dataReceived(b"b")
    story = ("one connection at t=0 s sent b'al' and then b'ice\\n' at t=0.5 s; another,"
             " made at t=0.5 s, sent b'b'")
    clock.advance(0.5)
    _open(first_wire, clock, f"{story}: the first one had logged in")
    _open(second_wire, clock, f"{story}: the second one's login deadline is t=1.5 s")
    clock.advance(0.5)
    _closed_with(second_wire, clock, LOGIN_GOODBYE, f"{story}, and no line from the second")


# -- 11.2 -------------------------------------------------------------------

per_host = exercise("11.2", "A limit per client host")


class _Conn:
    """One connection from `host` to the answer's factory, on a StringTransport."""

    ports = iter(range(40000, 60000))

    def __init__(self, factory, host):
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        self.host = host
        addr = IPv4Address("TCP", host, next(self.ports))
        with reader_code(f"a connection from {host}: buildProtocol"):
            self.proto = factory.buildProtocol(addr)
        require(self.proto is not None, f"buildProtocol returned None for a connection from"
                f" {host}: the client is closed without a word")
        self.wire = StringTransport(peerAddress=addr,
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 7000))
        with reader_code(f"a connection from {host} was made"):
            self.proto.makeConnection(self.wire)

    def state(self):
        data, closing = self.wire.value(), self.wire.disconnecting
        if data == WELCOME and not closing:
            return "welcome"
        if data == REFUSAL and closing:
            return "refused"
        return f"wrote {data!r} and {'closed' if closing else 'stayed open'}"

    def lose(self):
        with reader_code(f"a connection from {self.host} closed (connectionLost)"):
            self.proto.connectionLost(_done())


def _factory(cls, limit):
    factory = cls(limit)
    factory.doStart()  # as listenTCP does: startFactory runs once
    return factory


def _expect(conns, expected, story, why=""):
    got = [c.state() for c in conns]
    require(got == expected, f"{story}: got {got}, expected {expected}{why}")


@per_host.check("limit", "at most `limit` connections from one host",
                hint="Count each host's connections in the factory and decide, as each one is"
                     " made, whether it still fits: mind the off-by-one.")
def _limit_per_host(cls):
    for limit in (2, 3):
        factory = _factory(cls, limit)
        conns = [_Conn(factory, "10.0.0.1") for _ in range(limit + 1)]
        _expect(conns, ["welcome"] * limit + ["refused"],
                f"limit {limit}, {limit + 1} connections from one host")


@per_host.check("per-host", "hosts are counted separately",
                hint="Two connections from one host differ in their port: count by what they"
                     " share.")
def _hosts_separate(cls):
    factory = _factory(cls, 2)
    conns = [_Conn(factory, host) for host in ["10.0.0.1", "10.0.0.1", "10.0.0.2",
                                               "10.0.0.2", "10.0.0.2", "10.0.0.3"]]
    got = [c.state() for c in conns]
    one_count = ["welcome", "welcome", "refused", "refused", "refused", "refused"]
    why = " (as if every connection came from one host)" if got == one_count else ""
    _expect(conns, ["welcome", "welcome", "welcome", "welcome", "refused", "welcome"],
            "limit 2, from hosts .1 .1 .2 .2 .2 .3", why)


@per_host.check("refusal-delivered", "the refusal is delivered before the close",
                hint="The refused client should read why: close in the way that sends what is"
                     " queued first (chapter 06).")
def _refusal_delivered(cls):
    factory = _factory(cls, 1)
    _Conn(factory, "10.0.0.1")
    refused = _Conn(factory, "10.0.0.1")
    require(refused.wire.disconnecting, f"limit 1, a second connection from one host:"
            f" {refused.state()}")
    require(not getattr(refused.wire, "disconnected", False),
            "limit 1, a second connection from one host was closed with abortConnection(),"
            " which throws away the refusal still queued")


@per_host.check("frees", "a closed connection frees its slot",
                hint="A slot is taken when a connection is let in, and given back when that"
                     " connection is lost.")
def _closed_frees(cls):
    factory = _factory(cls, 1)
    first = _Conn(factory, "10.0.0.1")
    first.lose()
    again = _Conn(factory, "10.0.0.1")
    _expect([first, again], ["welcome", "welcome"],
            "limit 1: a connection from a host, closed, then another from that host")


@per_host.check("refused-holds-nothing", "a refused connection never held a slot",
                hint="A refused connection takes no slot, and it is lost too: give back only"
                     " a slot that this connection took.")
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
    late.lose()
    kept.lose()
    fresh = _Conn(factory, "10.0.0.1")
    if fresh.state() != "welcome" and not _closing_frees(cls):
        return  # no closed connection frees its slot: the check "frees" says so
    _expect([fresh], ["welcome"],
            "limit 1: one connection let in and four refused from one host, all closed"
            " since, then one more from that host (no connection is open: the refused ones"
            " must not have taken a slot that nothing gives back)")


def _closing_frees(cls):
    factory = _factory(cls, 1)
    _Conn(factory, "10.0.0.2").lose()
    return _Conn(factory, "10.0.0.2").state() == "welcome"


@per_host.check("own-counts", "each factory keeps its own counts",
                hint="The counts belong to one factory: make them when the factory is made,"
                     " not in the class body, where every factory shares them.")
def _own_counts(cls):
    first, second = _factory(cls, 1), _factory(cls, 1)
    a = _Conn(first, "10.0.0.1")
    b = _Conn(second, "10.0.0.1")
    _expect([a, b], ["welcome", "welcome"],
            "limit 1, two factories (two servers), one connection to each from one host")


# -- 11.3 -------------------------------------------------------------------

reconnecting = exercise("11.3", "A reconnecting factory, configured")


class _Connector:
    """Stands in for connectTCP's connector; each attempt fails or connects as scripted.

    Like the real one, it calls startedConnecting at each attempt. A successful attempt
    builds the protocol, connects it to a StringTransport, and then loses the connection at
    once, as a server that closes would.
    """

    def __init__(self, factory, script):
        self.factory, self.script, self.attempts = factory, list(script), 0

    def connect(self):
        from twisted.internet import error
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport
        from twisted.python.failure import Failure

        self.attempts += 1
        self.factory.startedConnecting(self)
        if (self.script.pop(0) if self.script else "fail") == "fail":
            self.factory.clientConnectionFailed(self, Failure(error.ConnectionRefusedError()))
            return
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 7000))
        require(proto is not None, "buildProtocol returned None for a successful connection")
        proto.makeConnection(StringTransport())
        proto.connectionLost(_done())
        self.factory.clientConnectionLost(self, _done())

    def stopConnecting(self):
        pass

    def disconnect(self):
        pass


@observation
def _schedule(make_factory, script=()):
    """Run attempts until the factory stops retrying: the delays it waited, rounded."""
    from twisted.internet import protocol, task

    clock = task.Clock()
    factory = make_factory(clock)
    require(isinstance(factory, protocol.ReconnectingClientFactory),
            f"make_factory returned {show(factory)}, expected a ReconnectingClientFactory")
    # Checked before any attempt, so that a wrong answer never schedules on the real reactor.
    require(factory.clock is clock, f"factory.clock is {show(factory.clock)}, not the `clock`"
            " passed in: its retries would be scheduled on the reactor")
    connector = _Connector(factory, script)
    connector.connect()
    delays = []
    while clock.getDelayedCalls() and len(delays) < MAX_STEPS:
        pending = min(clock.getDelayedCalls(), key=lambda c: c.getTime())
        delays.append(pending.getTime() - clock.seconds())
        clock.advance(delays[-1])
    return [round(d, 3) for d in delays]


@reconnecting.check("on-clock", "retries are scheduled on `clock`",
                    hint="A ReconnectingClientFactory schedules its retries on whatever one of"
                         " its attributes holds; by default, the reactor.")
def _uses_clock(make_factory):
    delays = _schedule(make_factory)
    require(delays, "after a refused attempt nothing was scheduled on `clock`")


@reconnecting.check("delays", "waits 0.5, 1, 2, 4, 4 s, exactly",
                    hint="Four settings shape the waits (the first, the growth, the cap, the"
                         " randomness), and the very first wait comes from an attribute the"
                         " class set before you changed anything (section 4).")
def _delays(make_factory):
    delays = _schedule(make_factory)
    why = ""
    if any(round(d, 1) != d for d in delays[:5]):
        why = " (they are not round: is there randomness left?)"
    elif delays[:1] == [1.0]:
        why = (" (the first wait is factory.delay, which the class sets to 1.0: setting"
               " initialDelay alone does not change it)")
    require(delays[:5] == DELAYS,
            f"with every attempt refused it waited {delays[:5]}, expected {DELAYS}{why}")


@reconnecting.check("gives-up", "gives up after 5 retries in a row",
                    hint="The factory can count retries in a row and stop after so many: find"
                         " the attribute that says how many (section 4).")
def _gives_up(make_factory):
    delays = _schedule(make_factory)
    more = "" if len(delays) < MAX_STEPS else " and was still retrying"
    require(len(delays) == 5, f"with every attempt refused it retried {len(delays)}"
            f" times{more}, expected 5 retries and then nothing")


@reconnecting.check("reset", "a connection starts the waits and the count again",
                    hint="Nothing resets the delay and the retry count for you: do it once a"
                         " connection has succeeded, and only then.")
def _reset(make_factory):
    from twisted.internet.protocol import ReconnectingClientFactory

    delays = _schedule(make_factory, ("fail", "fail", "fail", "ok"))
    expected = [0.5, 1.0, 2.0] + DELAYS
    after = delays[3:]  # the waits after the connection was lost
    why = ""
    if delays[:3] == expected[:3]:
        if not after:
            why = " (after the connection was lost, no retry was scheduled at all)"
        elif after[0] == ReconnectingClientFactory.initialDelay:
            why = (f" (the first wait after the connection was {after[0]:g} s: the waits"
                   " started again, but from the class's own first wait, not from"
                   f" {DELAYS[0]:g} s)")
        elif after[0] != DELAYS[0]:
            why = (f" (the first wait after the connection was {after[0]:g} s: the waits did"
                   f" not start again from {DELAYS[0]:g} s)")
        elif len(after) < len(DELAYS) and after == DELAYS[:len(after)]:
            why = (f" (after the connection it gave up after {len(after)} retries: the count"
                   " of retries did not start again)")
    require(delays == expected, "refused 3 times, then connected (and closed by the server),"
            f" then refused again and again: it waited {delays}, expected {expected}{why}")
