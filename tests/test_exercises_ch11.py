"""Chapter 11 exercises: learners' mistakes fail the check that names them, with a message
that names the cause (reference solutions: tests/test_exercises.py). The checks run on a
task.Clock and StringTransports, so every wrong answer here fails at once."""

import re

import pytest
from twisted.internet.protocol import Factory, Protocol, ReconnectingClientFactory
from twisted.protocols.basic import LineReceiver
from twisted.protocols.policies import TimeoutMixin

from helpers import check
from helpers.exercises import get
from solutions.ch11 import (
    IDLE_TIMEOUT,
    LOGIN_TIMEOUT,
    SOLUTIONS,
    LoginThenIdle,
    PerHost,
    PerHostLimit,
    ResettingFactory,
)

# -- the notebook's stubs -----------------------------------------------------------


class IdleStub(Protocol, TimeoutMixin):
    def connectionMade(self):
        raise NotImplementedError("your code here")


class LimitStub(Factory):
    def __init__(self, limit):
        raise NotImplementedError("your code here")


def factory_stub(clock):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize(("exercise_id", "stub"),
                         [("11.1", IdleStub), ("11.2", LimitStub), ("11.3", factory_stub)])
def test_the_stub_is_not_attempted_and_shows_no_hint(exercise_id, stub):
    report = check(exercise_id, stub)
    assert not report.attempted, repr(report)
    assert "hint" not in repr(report)


@pytest.mark.parametrize("exercise_id", sorted(SOLUTIONS))
def test_no_hint_gives_the_code_or_a_setting_away(exercise_id):
    for c in get(exercise_id).checks:
        assert not re.search(r"self\.|=|\w\([^)]|\d\.\d|\\n|\.host", c.hint), (c.key, c.hint)
        names = ("initialDelay", "factor", "maxDelay", "jitter", "maxRetries", "resetDelay",
                 "setTimeout", "resetTimeout", "loseConnection", "abortConnection", "getPeer",
                 "clock")
        assert not re.search(rf"\b({'|'.join(names)})\b", c.hint), (c.key, c.hint)


# -- 11.1 -------------------------------------------------------------------


class ResetsOnBytes(LoginThenIdle):
    def dataReceived(self, data):
        self.resetTimeout()
        super().dataReceived(data)


class OnePeriod(LoginThenIdle):
    """Wrong: keeps the login period after the login."""

    def dataReceived(self, data):
        if b"\n" in data:
            self.logged_in = True
        if self.logged_in:
            self.resetTimeout()


class PeriodNotRestarted(LoginThenIdle):
    """Wrong: changes the period for later, but the running countdown keeps its 1.0 s."""

    def dataReceived(self, data):
        if self.logged_in:
            return self.resetTimeout()
        if b"\n" in data:
            self.logged_in = True
            self.timeOut = IDLE_TIMEOUT


class NoReset(LoginThenIdle):
    def dataReceived(self, data):
        if not self.logged_in:
            super().dataReceived(data)


class LinesOnly(LineReceiver, TimeoutMixin):
    """Wrong: after the login, only whole lines restart the idle timeout."""

    delimiter = b"\n"

    def connectionMade(self):
        self.logged_in = False
        self.setTimeout(LOGIN_TIMEOUT)

    def lineReceived(self, line):
        if not self.logged_in:
            self.logged_in = True
            self.setTimeout(IDLE_TIMEOUT)
        else:
            self.resetTimeout()

    def timeoutConnection(self):
        self.transport.write(b"idle timeout\n" if self.logged_in else b"login timeout\n")
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.setTimeout(None)


class EndsWithNewline(LoginThenIdle):
    """Wrong: a chunk counts as the login line only if it ends with b"\\n"."""

    def dataReceived(self, data):
        if not self.logged_in and data.endswith(b"\n"):
            self.logged_in = True
            self.setTimeout(IDLE_TIMEOUT)
        elif self.logged_in:
            self.resetTimeout()


class SharedBuffer(LoginThenIdle):
    """Wrong: the buffer is a bytearray in the class body, shared by every connection."""

    buffer = bytearray()

    def connectionMade(self):
        self.logged_in = False
        self.setTimeout(LOGIN_TIMEOUT)

    def dataReceived(self, data):
        if self.logged_in:
            return self.resetTimeout()
        self.buffer += data
        if b"\n" in self.buffer:
            self.logged_in = True
            self.setTimeout(IDLE_TIMEOUT)


class NoCancel(LoginThenIdle):
    def connectionLost(self, reason):
        pass


class Aborts(LoginThenIdle):
    def timeoutConnection(self):
        self.transport.write(b"idle timeout\n" if self.logged_in else b"login timeout\n")
        self.transport.abortConnection()


class SameGoodbye(LoginThenIdle):
    def timeoutConnection(self):
        self.transport.write(b"login timeout\n")
        self.transport.loseConnection()


def test_login_that_resets_on_every_byte_fails():
    report = check("11.1", ResetsOnBytes)
    assert report.failed == {"dribble"}
    assert report.message("dribble") == (
        "still open at t=1 s: bytes b'al', b'i', b'ce' came before the deadline, but no whole"
        " line: they must not extend the login deadline")


def test_login_that_keeps_the_short_timeout_fails():
    report = check("11.1", OnePeriod)
    assert report.failed == {"idle", "first-line"}
    assert report.message("idle") == (
        "closed at t=4 s: logged in at t=0.5 s, so the idle timeout (4.0 s) applies from there")


def test_login_that_changes_the_period_without_restarting_fails():
    report = check("11.1", PeriodNotRestarted)
    assert report.failed == {"idle", "first-line", "independent"}
    assert report.message("first-line") == (
        "closed at t=1 s: b'ali' at t=0.3 s, then b'ce\\nhel' at t=0.6 s: the first line was"
        " complete, so the login deadline no longer applies")


def test_idle_without_reset_fails():
    report = check("11.1", NoReset)
    assert report.failed == {"idle"}
    assert report.message("idle") == (
        "closed at t=4.5 s: b'x' (not a whole line) at t=4 s restarts the idle timeout of"
        " 4.0 s")


def test_idle_restarted_only_by_whole_lines_fails():
    report = check("11.1", LinesOnly)
    assert report.failed == {"idle"}
    assert report.message("idle").startswith("closed at t=4.5 s: b'x' (not a whole line)")


def test_a_login_line_looked_for_at_the_end_of_a_chunk_fails():
    report = check("11.1", EndsWithNewline)
    assert report.failed == {"first-line"}
    assert report.message("first-line").startswith("closed at t=1 s: b'ali' at t=0.3 s")


def test_a_buffer_shared_by_every_connection_fails():
    report = check("11.1", SharedBuffer)
    assert "independent" in report.failed
    assert report.message("independent") == (
        "still open at t=1.5 s: one connection at t=0 s sent b'al' and then b'ice\\n' at"
        " t=0.5 s; another, made at t=0.5 s, sent b'b', and no line from the second")


def test_idle_without_cancel_fails():
    report = check("11.1", NoCancel)
    assert report.failed == {"cancelled"}
    assert report.message("cancelled") == (
        "connectionLost at t=0.5 s (before the login line) left a countdown scheduled (t=1):"
        " it would still run timeoutConnection on the closed connection")


def test_idle_with_abort_fails():
    report = check("11.1", Aborts)
    assert report.failed == {"graceful"}
    assert report.message("graceful") == (
        "the login timeout closed with abortConnection(), which throws away the goodbye"
        " still queued")


def test_one_goodbye_for_both_fails():
    report = check("11.1", SameGoodbye)
    assert report.failed == {"idle"}
    assert report.message("idle") == (
        "at t=8 s (4.0 s after the last input at t=4 s) it had written b'login timeout\\n',"
        " expected b'idle timeout\\n'")


class ReactorCountdown(Protocol, TimeoutMixin):
    """Wrong: inherits TimeoutMixin, but runs a countdown of its own on the reactor."""

    def connectionMade(self):
        from twisted.internet import reactor

        self.deadline = reactor.callLater(LOGIN_TIMEOUT, self.timeoutConnection)

    def timeoutConnection(self):
        self.transport.write(b"login timeout\n")
        self.transport.loseConnection()


def test_a_countdown_on_the_reactor_is_named_and_cancelled():
    from twisted.internet import reactor

    from helpers.reactor import is_started

    report = check("11.1", ReactorCountdown)
    assert report.failed == {c.key for c in get("11.1").checks}
    assert report.message("login-deadline") == (
        "right after connectionMade nothing was scheduled on the protocol's callLater, but a"
        " call of ReactorCountdown.timeoutConnection was scheduled on the reactor itself: a"
        " countdown there is not TimeoutMixin's, and the checker's clock cannot move it (the"
        " checker cancelled it)")
    if not is_started():  # else cancelled in the reactor thread, a moment later
        assert not [c for c in reactor.getDelayedCalls()
                    if getattr(c.func, "__self__", None).__class__ is ReactorCountdown]


class CountdownFromInit(LoginThenIdle):
    """Wrong: starts the login countdown when the protocol is made, not when it connects."""

    def __init__(self):
        self.buffer, self.logged_in = b"", False
        self.setTimeout(LOGIN_TIMEOUT)

    def connectionMade(self):
        pass


def test_a_countdown_started_before_the_connection_is_named():
    report = check("11.1", CountdownFromInit)
    assert report.failed == {c.key for c in get("11.1").checks}
    assert report.message("login-deadline") == (
        "right after connectionMade nothing was scheduled on the protocol's callLater:"
        " TimeoutMixin's countdown had been started on the reactor, when the protocol was made,"
        " before the connection (and before the checker could point the protocol's callLater"
        " to its clock); the checker cancelled it")


def test_idle_without_timeout_mixin_fails():
    class Plain(Protocol):
        pass

    report = check("11.1", Plain)
    assert report.failed == {c.key for c in get("11.1").checks}
    assert report.message("idle") == (
        "Plain does not inherit TimeoutMixin (its bases: ['Protocol', 'BaseProtocol',"
        " 'object'])")


# -- 11.2 -------------------------------------------------------------------


def limit_with(protocol_class, **attributes):
    return type("Limit", (PerHostLimit,), {"protocol": protocol_class, **attributes})


class CountsRefused(PerHost):
    """Wrong: every connectionLost gives a slot back, taken or not."""

    def connectionLost(self, reason):
        self.factory.per_host[self.host] = self.factory.per_host.get(self.host, 0) - 1


class ByAddress(PerHost):
    """Wrong: keyed by the whole peer address, port included."""

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.transport.getPeer = lambda: type(peer)("TCP", (peer.host, peer.port), peer.port)
        super().connectionMade()


class OffByOne(PerHost):
    """Wrong: `>` instead of `>=`: lets limit + 1 in."""

    def connectionMade(self):
        self.factory.limit += 1
        try:
            super().connectionMade()
        finally:
            self.factory.limit -= 1


class OneCount(PerHost):
    """Wrong: one count for every host."""

    def connectionMade(self):
        self.transport.getPeer = lambda: type("Peer", (), {"host": "everyone"})()
        super().connectionMade()


class NeverFrees(PerHost):
    def connectionLost(self, reason):
        pass


class AbortsRefused(PerHost):
    """Wrong: refuses with abortConnection, which throws the refusal away."""

    def connectionMade(self):
        self.host = self.transport.getPeer().host
        count = self.factory.per_host.get(self.host, 0)
        if count >= self.factory.limit:
            self.transport.write(b"too many connections from your host\n")
            return self.transport.abortConnection()
        self.factory.per_host[self.host] = count + 1
        self.counted = True
        self.transport.write(b"welcome\n")


class StaysOpen(PerHost):
    """Wrong: says it refuses, and keeps the connection open."""

    def connectionMade(self):
        self.transport.loseConnection = lambda: None
        super().connectionMade()


class ClassCounts(PerHostLimit):
    """Wrong: the counts in the class body, shared by every factory."""

    per_host = {}

    def __init__(self, limit):
        self.limit = limit


class ReleasesRefused(PerHost):
    """Wrong: every connectionLost releases a slot, and the refused one finds none."""

    def connectionLost(self, reason):
        left = self.factory.per_host[self.host] - 1
        if left:
            self.factory.per_host[self.host] = left
        else:
            del self.factory.per_host[self.host]


class CountsFirst(PerHost):
    """Wrong: counts every connection, then refuses those over the limit; only the ones let
    in give their slot back."""

    def connectionMade(self):
        self.host = self.transport.getPeer().host
        counts = self.factory.per_host
        counts[self.host] = counts.get(self.host, 0) + 1
        if counts[self.host] > self.factory.limit:
            self.transport.write(b"too many connections from your host\n")
            return self.transport.loseConnection()
        self.counted = True
        self.transport.write(b"welcome\n")


class ServerAddress(PerHost):
    """Wrong: counts by the server's own address (getHost), the same for every client."""

    def connectionMade(self):
        self.transport.getPeer = self.transport.getHost
        super().connectionMade()


def test_refused_connections_that_keep_their_count_fail():
    report = check("11.2", limit_with(CountsFirst))
    assert report.failed == {"refused-holds-nothing"}
    assert report.message("refused-holds-nothing") == (
        "limit 1: one connection let in and four refused from one host, all closed since, then"
        " one more from that host (no connection is open: the refused ones must not have taken"
        " a slot that nothing gives back): got ['refused'], expected ['welcome']")


def test_counting_by_the_servers_address_fails():
    report = check("11.2", limit_with(ServerAddress))
    assert report.failed == {"per-host"}
    assert report.message("per-host").endswith(
        "(as if every connection came from one host)")


def test_releasing_a_refused_connection_fails_saying_which_event_raised():
    report = check("11.2", limit_with(ReleasesRefused))
    assert report.failed == {"refused-holds-nothing"}
    assert report.message("refused-holds-nothing") == (
        "a connection from 10.0.0.1 closed (connectionLost): your code raised KeyError:"
        " '10.0.0.1'")


def test_limit_that_counts_refused_connections_fails():
    report = check("11.2", limit_with(CountsRefused))
    assert report.failed == {"refused-holds-nothing"}
    assert report.message("refused-holds-nothing") == (
        "limit 1: one connection kept open, three refused and closed, then one more from the"
        " same host (the first still holds the slot): got ['welcome', 'refused', 'refused',"
        " 'refused', 'welcome'], expected ['welcome', 'refused', 'refused', 'refused',"
        " 'refused']")


def test_limit_keyed_by_host_and_port_fails():
    report = check("11.2", limit_with(ByAddress))
    assert report.failed == {"limit", "per-host", "refusal-delivered", "refused-holds-nothing"}
    assert report.message("limit") == (
        "limit 2, 3 connections from one host: got ['welcome', 'welcome', 'welcome'],"
        " expected ['welcome', 'welcome', 'refused']")


def test_limit_off_by_one_fails():
    report = check("11.2", limit_with(OffByOne))
    assert report.failed == {"limit", "per-host", "refusal-delivered", "refused-holds-nothing"}
    assert report.message("limit") == (
        "limit 2, 3 connections from one host: got ['welcome', 'welcome', 'welcome'],"
        " expected ['welcome', 'welcome', 'refused']")


def test_one_count_for_every_host_fails():
    report = check("11.2", limit_with(OneCount))
    assert report.failed == {"per-host"}
    assert report.message("per-host") == (
        "limit 2, from hosts .1 .1 .2 .2 .2 .3: got ['welcome', 'welcome', 'refused',"
        " 'refused', 'refused', 'refused'], expected ['welcome', 'welcome', 'welcome',"
        " 'welcome', 'refused', 'welcome'] (as if every connection came from one host)")


def test_limit_that_never_frees_fails():
    report = check("11.2", limit_with(NeverFrees))
    assert report.failed == {"frees"}
    assert report.message("frees") == (
        "limit 1: a connection from a host, closed, then another from that host: got"
        " ['welcome', 'refused'], expected ['welcome', 'welcome']")


def test_refusing_with_abort_fails():
    report = check("11.2", limit_with(AbortsRefused))
    assert report.failed == {"refusal-delivered"}
    assert report.message("refusal-delivered") == (
        "limit 1, a second connection from one host was closed with abortConnection(), which"
        " throws away the refusal still queued")


def test_refusing_without_closing_fails():
    report = check("11.2", limit_with(StaysOpen))
    assert report.failed == {"limit", "per-host", "refusal-delivered", "refused-holds-nothing"}
    assert report.message("refusal-delivered") == (
        "limit 1, a second connection from one host: wrote b'too many connections from your"
        " host\\n' and stayed open")


def test_counts_shared_by_every_factory_fail():
    report = check("11.2", ClassCounts)
    assert "own-counts" in report.failed
    assert report.message("own-counts").startswith(
        "limit 1, two factories (two servers), one connection to each from one host: got"
        " ['refused', 'refused']")  # the first factory too: earlier checks' connections


def test_refusing_in_build_protocol_fails():
    class Silent(PerHostLimit):
        def buildProtocol(self, addr):
            return None

    report = check("11.2", Silent)
    assert report.failed == {c.key for c in get("11.2").checks}
    assert report.message("limit") == (
        "buildProtocol returned None for a connection from 10.0.0.1: the client is closed"
        " without a word")


# -- 11.3 -------------------------------------------------------------------


def configured(cls=ResettingFactory, reset=True, clock=True, **settings):
    def make(c):
        factory = cls()
        factory.protocol = Protocol
        factory.initialDelay, factory.factor, factory.maxDelay = 0.5, 2, 4
        factory.jitter, factory.maxRetries = 0, 5
        for name, value in settings.items():
            setattr(factory, name, value)
        if clock:
            factory.clock = c
        if reset:
            factory.resetDelay()
        return factory

    return make


class ResetOnEveryAttempt(ReconnectingClientFactory):
    """Wrong: resets when each attempt starts, not when one succeeds."""

    def startedConnecting(self, connector):
        self.resetDelay()


class DelayOnlyReset(ReconnectingClientFactory):
    """Wrong: after a connection, the delay goes back but the retry count does not."""

    def buildProtocol(self, addr):
        self.delay = self.initialDelay
        return super().buildProtocol(addr)


class ResetInsteadOfRetry(ReconnectingClientFactory):
    """Wrong: resets when a connection is lost, without the retry the class would make."""

    def clientConnectionLost(self, connector, reason):
        self.resetDelay()


class ResetAfterRetry(ReconnectingClientFactory):
    """Wrong: resets when a connection is lost, after the retry is already scheduled."""

    def clientConnectionLost(self, connector, reason):
        super().clientConnectionLost(connector, reason)
        self.resetDelay()


def only_the_next_wait(clock):
    """Wrong: sets the next wait to 0.5 s, not the first wait the factory starts from."""
    factory = ResettingFactory()
    factory.factor, factory.maxDelay, factory.jitter, factory.maxRetries = 2, 4, 0, 5
    factory.delay, factory.clock = 0.5, clock
    return factory


def test_factory_that_stops_retrying_after_a_connection_fails():
    report = check("11.3", configured(cls=ResetInsteadOfRetry))
    assert report.failed == {"reset"}
    assert report.message("reset").endswith(
        "it waited [0.5, 1.0, 2.0], expected [0.5, 1.0, 2.0, 0.5, 1.0, 2.0, 4.0, 4.0] (after the"
        " connection was lost, no retry was scheduled at all)")


def test_factory_that_resets_after_scheduling_the_retry_fails():
    report = check("11.3", configured(cls=ResetAfterRetry))
    assert report.failed == {"reset"}
    assert report.message("reset").endswith(
        "it waited [0.5, 1.0, 2.0, 4.0, 0.5, 1.0, 2.0, 4.0, 4.0], expected [0.5, 1.0, 2.0, 0.5,"
        " 1.0, 2.0, 4.0, 4.0] (the first wait after the connection was 4 s: the waits did not"
        " start again from 0.5 s)")


def test_factory_that_restarts_from_the_class_first_wait_fails():
    report = check("11.3", only_the_next_wait)
    assert report.failed == {"reset"}
    assert report.message("reset").endswith(
        "it waited [0.5, 1.0, 2.0, 1.0, 2.0, 4.0, 4.0, 4.0], expected [0.5, 1.0, 2.0, 0.5, 1.0,"
        " 2.0, 4.0, 4.0] (the first wait after the connection was 1 s: the waits started again,"
        " but from the class's own first wait, not from 0.5 s)")


def test_factory_without_reset_delay_fails():
    report = check("11.3", configured(cls=ReconnectingClientFactory))
    assert report.failed == {"reset"}
    assert report.message("reset") == (
        "refused 3 times, then connected (and closed by the server), then refused again and"
        " again: it waited [0.5, 1.0, 2.0, 4.0, 4.0], expected [0.5, 1.0, 2.0, 0.5, 1.0, 2.0,"
        " 4.0, 4.0] (the first wait after the connection was 4 s: the waits did not start"
        " again from 0.5 s)")


def test_factory_that_resets_on_every_attempt_fails():
    report = check("11.3", configured(cls=ResetOnEveryAttempt))
    assert report.failed == {"delays", "gives-up", "reset"}
    assert report.message("gives-up") == (
        "with every attempt refused it retried 30 times and was still retrying, expected 5"
        " retries and then nothing")


def test_factory_that_resets_the_delay_but_not_the_count_fails():
    report = check("11.3", configured(cls=DelayOnlyReset))
    assert report.failed == {"reset"}
    assert report.message("reset").endswith(
        "it waited [0.5, 1.0, 2.0, 0.5, 1.0], expected [0.5, 1.0, 2.0, 0.5, 1.0, 2.0, 4.0, 4.0]"
        " (after the connection it gave up after 2 retries: the count of retries did not start"
        " again)")


def test_factory_with_delay_left_at_one_second_fails():
    report = check("11.3", configured(reset=False))
    assert report.failed == {"delays", "reset"}
    assert report.message("delays") == (
        "with every attempt refused it waited [1.0, 2.0, 4.0, 4.0, 4.0], expected [0.5, 1.0,"
        " 2.0, 4.0, 4.0] (the first wait is factory.delay, which the class sets to 1.0:"
        " setting initialDelay alone does not change it)")


def test_factory_with_jitter_fails():
    report = check("11.3", configured(jitter=0.1))
    assert "delays" in report.failed
    assert "(they are not round: is there randomness left?)" in report.message("delays")


def test_factory_with_the_default_factor_fails():
    report = check("11.3", configured(factor=ReconnectingClientFactory.factor))
    assert report.failed == {"delays", "reset"}
    assert report.message("delays").startswith(
        "with every attempt refused it waited [0.5, 1.359, 3.695, 4.0, 4.0]")


def test_factory_with_a_larger_cap_fails():
    report = check("11.3", configured(maxDelay=8))
    assert report.failed == {"delays", "reset"}
    assert report.message("delays").startswith(
        "with every attempt refused it waited [0.5, 1.0, 2.0, 4.0, 8.0]")


@pytest.mark.parametrize("retries", [4, 6, None])
def test_factory_that_gives_up_too_early_or_too_late_fails(retries):
    report = check("11.3", configured(maxRetries=retries))
    assert "gives-up" in report.failed
    assert report.message("gives-up").startswith(
        f"with every attempt refused it retried {retries or 30} times")


def test_factory_on_the_reactor_fails():
    report = check("11.3", configured(clock=False))
    assert report.failed == {c.key for c in get("11.3").checks}
    assert report.message("on-clock").endswith(
        "not the `clock` passed in: its retries would be scheduled on the reactor")
