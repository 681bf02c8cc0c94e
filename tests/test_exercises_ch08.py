"""Chapter 08 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake."""

import gc

import pytest
from twisted.internet import defer, endpoints
from twisted.logger import LogLevel, globalLogPublisher

from helpers import check
from solutions.ch08 import LineClient


@pytest.fixture
def unhandled_errors():
    """Critical Twisted log events ("Unhandled error in Deferred") during the test."""
    caught = []

    def observer(event):
        if event["log_level"] == LogLevel.critical:
            caught.append(event)

    globalLogPublisher.addObserver(observer)
    yield caught
    gc.collect()
    globalLogPublisher.removeObserver(observer)


def test_stubs_fail_every_check():
    def stub(*args):
        raise NotImplementedError("your code here")

    async def async_stub(*args):
        raise NotImplementedError("your code here")

    for exercise_id, answer in [("08.1", stub), ("08.2", stub), ("08.3", async_stub)]:
        report = check(exercise_id, answer)
        assert not any(r.passed for r in report.results), repr(report)
        assert "NotImplementedError: your code here" in repr(report)


def test_checks_leave_no_unhandled_errors(unhandled_errors):
    """Wrong answers leave failures in Deferreds; the checker handles every one."""
    test_errback_that_swallows_every_error_fails()
    test_gather_results_fails_the_never_fails_check()
    test_deferred_list_without_consume_errors_fails_only_the_consume_check()
    gc.collect()
    assert unhandled_errors == []


# -- 08.1 -------------------------------------------------------------------


def test_errback_that_swallows_every_error_fails():
    def swallow_all(d, default):
        return d.addErrback(lambda failure: default)

    report = check("08.1", swallow_all)
    assert report.failed == {"any other failure goes on unchanged"}
    assert "expected the same ValueError failure" in repr(report)


def test_forgetting_to_return_the_deferred_fails():
    def no_return(d, default):
        d.addErrback(lambda failure: failure.trap(KeyError) and default)

    report = check("08.1", no_return)
    assert not any(r.passed for r in report.results)
    assert "returned NoneType (None), expected a Deferred" in repr(report)


def test_callback_instead_of_errback_fails():
    def callback(d, default):
        return d.addCallback(lambda result: default)

    report = check("08.1", callback)
    assert {"a result goes on unchanged",
            "a KeyError (or a subclass) becomes the default"} <= report.failed


def test_wrapping_other_errors_fails():
    def wraps(d, default):
        def errback(failure):
            if failure.check(KeyError):
                return default
            raise RuntimeError(f"lookup failed: {failure.getErrorMessage()}")

        return d.addErrback(errback)

    report = check("08.1", wraps)
    assert report.failed == {"any other failure goes on unchanged"}


# -- 08.2 -------------------------------------------------------------------


def test_gather_results_fails_the_never_fails_check():
    def gathered(ds):
        return defer.gatherResults(ds, consumeErrors=True).addCallback(
            lambda results: [("ok", r) for r in results]
        )

    report = check("08.2", gathered)
    assert "failures are listed as ('error', exception); it never fails" in report.failed
    assert "settle never fails" in repr(report)


def test_deferred_list_without_consume_errors_fails_only_the_consume_check():
    def leaky(ds):
        return defer.DeferredList(ds).addCallback(
            lambda results: [("ok", r) if ok else ("error", r.value) for ok, r in results]
        )

    report = check("08.2", leaky)
    assert report.failed == {"the input Deferreds' errors are consumed"}
    assert "Unhandled error in Deferred" in repr(report)


def test_failures_instead_of_exceptions_fail():
    def failures(ds):
        return defer.DeferredList(ds, consumeErrors=True).addCallback(
            lambda results: [("ok" if ok else "error", r) for ok, r in results]
        )

    report = check("08.2", failures)
    assert report.failed == {"failures are listed as ('error', exception); it never fails"}


# -- 08.3 -------------------------------------------------------------------


async def _connect(port):
    from twisted.internet import reactor

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=1)
    return await endpoints.connectProtocol(endpoint, LineClient())


def test_catching_the_builtin_timeout_error_fails():
    async def builtin_timeout(port, text, seconds):
        from twisted.internet import reactor

        client = await _connect(port)
        try:
            return await client.request(text).addTimeout(seconds, reactor)
        except TimeoutError:  # the built-in one: not defer.TimeoutError
            return None
        finally:
            client.transport.loseConnection()

    report = check("08.3", builtin_timeout)
    assert report.failed == {"returns None after `seconds` when no reply comes"}
    assert "it is not the built-in TimeoutError" in repr(report)


def test_not_closing_after_a_reply_fails():
    async def no_close(port, text, seconds):
        from twisted.internet import reactor

        client = await _connect(port)
        try:
            return await client.request(text).addTimeout(seconds, reactor)
        except defer.TimeoutError:
            return None  # the canceller closed this one; a reply leaves it open

    report = check("08.3", no_close)
    assert report.failed == {"the connection is closed after a reply"}
    assert "still open 1 s later" in repr(report)


def test_timeout_without_canceller_or_close_fails():
    class NoCanceller(LineClient):
        def request(self, text):
            self.waiting = defer.Deferred()  # cancel() fails it, the connection stays
            self.transport.write(text.encode() + b"\n")
            return self.waiting

    async def leaves_open(port, text, seconds):
        from twisted.internet import reactor

        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=1)
        client = await endpoints.connectProtocol(endpoint, NoCanceller())
        try:
            reply = await client.request(text).addTimeout(seconds, reactor)
        except defer.TimeoutError:
            return None
        client.transport.loseConnection()
        return reply

    report = check("08.3", leaves_open)
    assert report.failed == {"the connection is closed after a timeout"}


def test_inline_callbacks_instead_of_async_def_fails():
    @defer.inlineCallbacks
    def generator(port, text, seconds):
        client = yield _connect(port)
        client.transport.loseConnection()
        return "PING"

    report = check("08.3", generator)
    assert not any(r.passed for r in report.results)
    assert "is not an `async def` function" in repr(report)
