"""Chapter 11 exercises: every reference solution passes its checker, and deliberately
wrong answers fail the check that names their mistake. The checks run on a task.Clock and
StringTransports, so every wrong answer here fails at once."""

import time

from twisted.internet.protocol import Factory, Protocol, ReconnectingClientFactory
from twisted.protocols.policies import TimeoutMixin

from helpers import check
from solutions.ch11 import LoginThenIdle, PerHost, PerHostLimit, ResettingFactory


def test_stubs_fail_with_not_implemented():
    class IdleStub(Protocol, TimeoutMixin):
        def connectionMade(self):
            raise NotImplementedError("your code here")

    class LimitStub(Factory):
        def __init__(self, limit):
            raise NotImplementedError("your code here")

    def factory_stub(clock):
        raise NotImplementedError("your code here")

    for exercise_id, answer in [("11.1", IdleStub), ("11.2", LimitStub),
                                ("11.3", factory_stub)]:
        report = check(exercise_id, answer)
        assert not report.passed
        assert "NotImplementedError: your code here" in repr(report)


def test_wrong_answers_fail_fast():
    start = time.monotonic()
    test_login_that_resets_on_every_byte_fails()
    test_limit_that_counts_refused_connections_fails()
    test_factory_without_reset_delay_fails()
    assert time.monotonic() - start < 2.0  # no waiting at all: about 0.01 s


# -- 11.1 -------------------------------------------------------------------


def test_login_that_resets_on_every_byte_fails():
    class ResetsOnBytes(LoginThenIdle):
        def dataReceived(self, data):
            self.resetTimeout()
            super().dataReceived(data)

    report = check("11.1", ResetsOnBytes)
    assert report.failed == {"bytes without a whole line do not extend the deadline"}
    assert "must not extend the login deadline" in repr(report)


def test_login_that_keeps_the_short_timeout_fails():
    class OnePeriod(LoginThenIdle):
        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer:
                self.logged_in = True
            if self.logged_in:
                self.resetTimeout()

    report = check("11.1", OnePeriod)
    assert report.failed == {"after the first line: 4.0 s idle timeout, restarted by input"}
    assert "closed at t=4 s: logged in at t=0.5 s" in repr(report)


def test_idle_without_reset_fails():
    class NoReset(LoginThenIdle):
        def dataReceived(self, data):
            if not self.logged_in:
                super().dataReceived(data)

    report = check("11.1", NoReset)
    assert report.failed == {"after the first line: 4.0 s idle timeout, restarted by input"}
    assert "input at t=4 s restarts the idle timeout" in repr(report)


def test_idle_without_cancel_fails():
    class NoCancel(LoginThenIdle):
        def connectionLost(self, reason):
            pass

    report = check("11.1", NoCancel)
    assert report.failed == {"connectionLost cancels the countdown"}
    assert "left a countdown scheduled (t=1)" in repr(report)


def test_idle_with_abort_fails():
    class Aborts(LoginThenIdle):
        def timeoutConnection(self):
            self.transport.write(b"idle timeout\n" if self.logged_in else b"login timeout\n")
            self.transport.abortConnection()

    report = check("11.1", Aborts)
    assert report.failed == {"closes gracefully (the goodbye is delivered)"}


def test_one_goodbye_for_both_fails():
    class SameGoodbye(LoginThenIdle):
        def timeoutConnection(self):
            self.transport.write(b"login timeout\n")
            self.transport.loseConnection()

    report = check("11.1", SameGoodbye)
    assert report.failed == {"after the first line: 4.0 s idle timeout, restarted by input"}
    assert "expected b'idle timeout\\n'" in repr(report)


def test_idle_without_timeout_mixin_fails():
    class Plain(Protocol):
        pass

    report = check("11.1", Plain)
    assert "a Protocol with TimeoutMixin" in report.failed
    assert "does not inherit TimeoutMixin" in repr(report)


# -- 11.2 -------------------------------------------------------------------


def test_limit_that_counts_refused_connections_fails():
    class CountsRefused(PerHost):
        def connectionLost(self, reason):
            self.factory.per_host[self.host] = self.factory.per_host.get(self.host, 0) - 1

    class Limit(PerHostLimit):
        protocol = CountsRefused

    report = check("11.2", Limit)
    assert report.failed == {"a refused connection never held a slot"}


def test_limit_keyed_by_host_and_port_fails():
    class ByAddress(PerHost):
        def connectionMade(self):
            peer = self.transport.getPeer()
            self.transport.getPeer = lambda: type(peer)("TCP", f"{peer.host}:{peer.port}", 0)
            super().connectionMade()

    class Limit(PerHostLimit):
        protocol = ByAddress

    report = check("11.2", Limit)
    assert {"at most `limit` connections from one host",
            "hosts are counted separately"} <= report.failed


def test_limit_that_never_frees_fails():
    class NeverFrees(PerHost):
        def connectionLost(self, reason):
            pass

    class Limit(PerHostLimit):
        protocol = NeverFrees

    report = check("11.2", Limit)
    assert report.failed == {"a closed connection frees its slot"}


def test_refusing_in_build_protocol_fails():
    class Silent(PerHostLimit):
        def buildProtocol(self, addr):
            return None

    report = check("11.2", Silent)
    assert not any(r.passed for r in report.results)
    assert "closed without a word" in repr(report)


# -- 11.3 -------------------------------------------------------------------


def _configured(cls=ResettingFactory, reset=True, jitter=0, retries=5, clock=True):
    def make(c):
        factory = cls()
        factory.protocol = Protocol
        factory.initialDelay, factory.factor, factory.maxDelay = 0.5, 2, 4
        factory.jitter, factory.maxRetries = jitter, retries
        if clock:
            factory.clock = c
        if reset:
            factory.resetDelay()
        return factory

    return make


def test_factory_without_reset_delay_fails():
    report = check("11.3", _configured(cls=ReconnectingClientFactory))
    assert report.failed == {"a connection starts the schedule and the count again"}


def test_factory_with_delay_left_at_one_second_fails():
    report = check("11.3", _configured(reset=False))
    assert "waits 0.5, 1, 2, 4, 4 s, exactly" in report.failed
    assert "setting initialDelay does not change it" in repr(report)


def test_factory_with_jitter_fails():
    report = check("11.3", _configured(jitter=0.1))
    assert "waits 0.5, 1, 2, 4, 4 s, exactly" in report.failed
    assert "is jitter 0?" in repr(report)


def test_factory_that_never_gives_up_fails():
    report = check("11.3", _configured(retries=None))
    assert "gives up after 5 retries in a row" in report.failed
    assert "was still retrying" in repr(report)


def test_factory_on_the_reactor_fails():
    report = check("11.3", _configured(clock=False))
    assert not any(r.passed for r in report.results)
    assert "its retries would be scheduled on the reactor" in repr(report)
