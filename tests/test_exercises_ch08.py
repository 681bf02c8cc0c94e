"""Chapter 08 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import gc
import re
import socket

import pytest
from twisted.internet import defer, endpoints
from twisted.logger import LogLevel, globalLogPublisher

from helpers import check
from helpers.exercises import ch08
from solutions.ch08 import SOLUTIONS, LineClient


@pytest.fixture
def quick(monkeypatch):
    """08.3's checks wait less for answers that wait for a timeout (fast wrong answers)."""
    monkeypatch.setattr(ch08, "REPLY_SECONDS", 0.3)
    monkeypatch.setattr(ch08, "HANG_UP_SECONDS", 0.3)
    monkeypatch.setattr(ch08, "SLACK", 1.0)  # only an answer that never returns waits it out
    monkeypatch.setattr(ch08, "CLOSE_TIMEOUT", 0.3)
    monkeypatch.setattr(ch08, "SECONDS", 0.15)


def test_the_stub_is_not_attempted_and_shows_no_hint():
    def stub(*args):
        raise NotImplementedError("your code here")

    async def async_stub(*args):
        raise NotImplementedError("your code here")

    for exercise_id in sorted(SOLUTIONS):
        report = check(exercise_id, async_stub if exercise_id == "08.3" else stub)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)


# -- 08.1 -------------------------------------------------------------------


def test_errback_that_swallows_every_error_fails():
    def swallow_all(d, default):
        return d.addErrback(lambda failure: default)

    report = check("08.1", swallow_all)
    assert report.failed == {"other-errors"}
    assert report.message("other-errors") == (
        "d.errback(ValueError('bad name')): the Deferred with_default returned fired with"
        " 'guest', expected it to fail with that same ValueError")


def test_errback_that_recovers_only_on_a_match_and_returns_none_otherwise_fails():
    def falls_through(d, default):
        def errback(failure):
            if failure.check(KeyError):
                return default  # anything else: None, a recovery

        return d.addErrback(errback)

    report = check("08.1", falls_through)
    assert report.failed == {"other-errors"}
    assert "fired with None" in report.message("other-errors")


def test_default_for_every_lookup_error_fails():
    def lookup_errors(d, default):
        def errback(failure):
            failure.trap(LookupError)  # IndexError is a LookupError too
            return default

        return d.addErrback(errback)

    report = check("08.1", lookup_errors)
    assert report.failed == {"other-errors"}
    assert report.message("other-errors").startswith("d.errback(IndexError('no such item'))")


def test_exact_type_instead_of_trap_misses_subclasses():
    def exact_type(d, default):
        def errback(failure):
            if failure.type is KeyError:
                return default
            return failure

        return d.addErrback(errback)

    report = check("08.1", exact_type)
    assert report.failed == {"key-errors"}
    assert report.message("key-errors") == (
        "with_default(d, 0), then d.errback(MissingUser('carol')): the Deferred failed with"
        " MissingUser: 'carol', expected it to fire with 0")


def test_and_or_one_liner_fails_for_a_false_default():
    def one_liner(d, default):
        return d.addErrback(lambda failure: failure.check(KeyError) and default or failure)

    report = check("08.1", one_liner)
    assert report.failed == {"key-errors"}
    assert "expected it to fire with 0" in report.message("key-errors")


def test_forgetting_to_return_the_deferred_fails():
    def no_return(d, default):
        d.addErrback(lambda failure: failure.trap(KeyError) and default)

    report = check("08.1", no_return)
    assert report.failed == {"values", "key-errors", "other-errors"}
    assert report.message("values") == (
        "with_default(d, 'guest') returned None (NoneType), expected a Deferred")


def test_callback_instead_of_errback_fails():
    def callback(d, default):
        return d.addCallback(lambda result: default)

    report = check("08.1", callback)
    assert report.failed == {"values", "key-errors"}
    assert report.message("values") == (
        "d.callback(5): the Deferred with_default returned fired with 'guest', expected it to"
        " fire with 5, unchanged")


def test_wrapping_other_errors_fails():
    def wraps(d, default):
        def errback(failure):
            if failure.check(KeyError):
                return default
            raise RuntimeError(f"lookup failed: {failure.getErrorMessage()}")

        return d.addErrback(errback)

    report = check("08.1", wraps)
    assert report.failed == {"other-errors"}
    assert report.message("other-errors").endswith("(a new exception, not the same one)")


def test_a_new_deferred_that_leaves_the_failure_in_d_fails():
    def forwards(d, default):
        out = defer.Deferred()

        def errback(failure):
            if failure.check(KeyError):
                out.callback(default)
            else:
                out.errback(failure)
            return failure  # "pass it on": but d's chain ends here, with a failure

        d.addCallbacks(out.callback, errback)
        return out

    report = check("08.1", forwards)
    assert report.failed == {"key-errors", "other-errors"}
    assert "Twisted logged: KeyError: 'bob'" in report.message("key-errors")


def test_none_taken_for_no_default_fails():
    def no_default_is_none(d, default=None):
        def errback(failure):
            failure.trap(KeyError)
            if default is None:  # "no default given": but None is a default too
                return failure
            return default

        return d.addErrback(errback)

    report = check("08.1", no_default_is_none)
    assert report.failed == {"key-errors"}
    assert report.message("key-errors") == (
        "with_default(d, None), then d.errback(KeyError('dave')): the Deferred failed with"
        " KeyError: 'dave', expected it to fire with None")


def test_returning_the_other_exception_makes_it_a_result():
    def returns_exception(d, default):
        def errback(failure):
            if failure.check(KeyError):
                return default
            return failure.value  # a value: the chain goes on as a success

        return d.addErrback(errback)

    report = check("08.1", returns_exception)
    assert report.failed == {"other-errors"}
    assert report.message("other-errors") == (
        "d.errback(ValueError('bad name')): the Deferred with_default returned fired with"
        " ValueError('bad name'): the exception became the result, a success, and the"
        " caller's errbacks never see it; expected the Deferred to fail with that same"
        " ValueError")


# -- 08.2 -------------------------------------------------------------------


def outcomes(results):
    return [("ok", r) if ok else ("error", r.value) for ok, r in results]


def test_gather_results_fails_the_never_fails_check():
    def gathered(ds):
        return defer.gatherResults(ds, consumeErrors=True).addCallback(
            lambda results: [("ok", r) for r in results])

    report = check("08.2", gathered)
    assert report.failed == {"errors-listed"}
    assert report.message("errors-listed").startswith(
        "Deferred 1 of 0, 1, 2 failed with KeyError and settle's Deferred failed with"
        " FirstError")


def test_fire_on_one_errback_fails_the_never_fails_check():
    def first_error(ds):
        return defer.DeferredList(ds, fireOnOneErrback=True, consumeErrors=True).addCallback(
            outcomes)

    report = check("08.2", first_error)
    assert report.failed == {"errors-listed"}


def test_deferred_list_without_consume_errors_fails_only_the_consume_check():
    def leaky(ds):
        return defer.DeferredList(ds).addCallback(outcomes)

    report = check("08.2", leaky)
    assert report.failed == {"consumed"}
    assert "'Unhandled error in Deferred'" in report.message("consumed")


def test_failures_instead_of_exceptions_fail():
    def failures(ds):
        return defer.DeferredList(ds, consumeErrors=True).addCallback(
            lambda results: [("ok" if ok else "error", r) for ok, r in results])

    report = check("08.2", failures)
    assert report.failed == {"errors-listed"}
    assert report.message("errors-listed").endswith(
        "item 1 is ('error', <twisted.python.failure.Failure builtins.KeyError: 'k'>), expected"
        " ('error', KeyError('k')), the very exception that failed the Deferred")


def test_error_messages_instead_of_exceptions_fail():
    def messages(ds):
        return defer.DeferredList(ds, consumeErrors=True).addCallback(
            lambda results: [("ok", r) if ok else ("error", r.getErrorMessage())
                             for ok, r in results])

    report = check("08.2", messages)
    assert report.failed == {"errors-listed"}


def test_results_in_the_order_they_fired_fail():
    def as_they_fire(ds):
        results = []
        for d in ds:
            d.addCallbacks(lambda r: results.append(("ok", r)),
                           lambda f: results.append(("error", f.value)))
        return defer.gatherResults(ds).addCallback(lambda _: results)

    report = check("08.2", as_they_fire)
    assert report.failed == {"in-order", "errors-listed"}
    assert report.message("in-order") == (
        "Deferreds 0, 1, 2 fired in the order 2, 0, 1: settle's Deferred fired with a list"
        " whose item 0 is ('ok', 'r2'), expected ('ok', 'r0')")


def test_lists_instead_of_tuples_fail():
    def lists(ds):
        return defer.DeferredList(ds, consumeErrors=True).addCallback(
            lambda results: [["ok", r] if ok else ["error", r.value] for ok, r in results])

    report = check("08.2", lists)
    assert report.failed == {"in-order", "errors-listed", "already-fired"}


def test_a_counter_that_never_fires_for_an_empty_list_fails():
    def counting(ds):
        out, results = defer.Deferred(), [None] * len(ds)

        def done(result, i, kind):
            results[i] = (kind, result.value if kind == "error" else result)
            if None not in results:
                out.callback(results)

        for i, d in enumerate(ds):
            d.addCallbacks(done, done, callbackArgs=(i, "ok"), errbackArgs=(i, "error"))
        return out

    report = check("08.2", counting)
    assert report.failed == {"empty"}
    assert report.message("empty") == (
        "settle([]) returned a Deferred that had not fired, expected it to have fired with []"
        " already")


def test_a_counter_checked_again_after_the_loop_fires_twice_for_fired_inputs():
    def checks_twice(ds):
        out, results, left = defer.Deferred(), [None] * len(ds), [len(ds)]

        def done(result, i, kind):
            results[i] = (kind, result.value if kind == "error" else result)
            left[0] -= 1
            if left[0] == 0:
                out.callback(results)

        for i, d in enumerate(ds):  # a Deferred that has fired calls done() right here
            d.addCallbacks(done, done, callbackArgs=(i, "ok"), errbackArgs=(i, "error"))
        if left[0] == 0:  # for the empty list: fires again if the loop already did
            out.callback(results)
        return out

    report = check("08.2", checks_twice)
    assert report.failed == {"already-fired"}
    assert report.message("already-fired") == (
        "settle([succeed('a'), succeed('b')]) raised AlreadyCalledError: it fired its Deferred"
        " a second time, after the stages run at once had fired it already")


def test_a_count_set_after_the_loop_is_not_there_for_fired_inputs():
    def counts_late(ds):
        out, results = defer.Deferred(), [None] * len(ds)

        def done(result, i, kind):
            nonlocal remaining
            results[i] = (kind, result.value if kind == "error" else result)
            remaining -= 1
            if remaining == 0:
                out.callback(results)

        for i, d in enumerate(ds):  # a Deferred that has fired calls done() right here
            d.addCallbacks(done, done, callbackArgs=(i, "ok"), errbackArgs=(i, "error"))
        remaining = len(ds)
        if not ds:
            out.callback([])
        return out

    report = check("08.2", counts_late)
    assert report.failed == {"already-fired"}
    assert report.message("already-fired").startswith(
        "settle([succeed('a'), succeed('b')]) returned a Deferred that had not fired, expected"
        " it to have fired, since every input had; a stage your code added to an input raised"
        " NameError: cannot access free variable 'remaining'")


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


def test_wrong_settles_leave_no_unhandled_errors_behind(unhandled_errors):
    """Wrong answers leave failures in the input Deferreds; the checker handles them."""
    test_gather_results_fails_the_never_fails_check()
    test_deferred_list_without_consume_errors_fails_only_the_consume_check()
    test_results_in_the_order_they_fired_fail()
    gc.collect()
    assert unhandled_errors == []


# -- 08.3 -------------------------------------------------------------------


async def _connect(port, client=None):
    from twisted.internet import reactor

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)
    return await endpoints.connectProtocol(endpoint, client or LineClient())


def fetching(client_class=LineClient, catch=defer.TimeoutError, close=True):
    """fetch_with_timeout with this client class, catching `catch`, closing in finally."""

    async def fetch_with_timeout(port, text, seconds):
        from twisted.internet import reactor

        client = await _connect(port, client_class())
        try:
            return await client.request(text).addTimeout(seconds, reactor)
        except catch:
            return None
        finally:
            if close:
                client.transport.loseConnection()

    return fetch_with_timeout


def test_catching_the_builtin_timeout_error_fails():
    report = check("08.3", fetching(catch=TimeoutError))
    assert report.failed == {"times-out"}
    assert "(twisted.internet.defer.TimeoutError, not the built-in TimeoutError)" in (
        report.message("times-out"))


def test_a_canceller_that_leaves_the_request_pending_fails_with_already_called():
    class Pending(LineClient):
        def request(self, text):  # the canceller aborts, and self.waiting stays set
            self.waiting = defer.Deferred(lambda d: self.transport.abortConnection())
            self.transport.write(text.encode() + b"\n")
            return self.waiting

        def connectionLost(self, reason):
            if self.waiting is not None:  # errbacks the Deferred cancel() already failed
                d, self.waiting = self.waiting, None
                d.errback(reason)

    report = check("08.3", fetching(Pending))
    assert report.failed == {"times-out"}
    assert "Twisted logged: AlreadyCalledError" in report.message("times-out")
    assert "(raised in connectionLost)" in report.message("times-out")


def test_swallowing_every_error_fails(quick):
    async def swallows(port, text, seconds):
        from twisted.internet import reactor

        client = None
        try:
            client = await _connect(port)
            return await client.request(text).addTimeout(seconds, reactor)
        except Exception:  # a timeout, but also a refused or lost connection
            return None
        finally:
            if client is not None:
                client.transport.loseConnection()

    report = check("08.3", swallows)
    assert report.failed == {"errors"}
    assert report.message("errors") == (
        "with nothing listening on the port, fetch_with_timeout(port, 'hello?', 0.15)"
        " returned None, expected the ConnectionRefusedError to reach the caller")


def test_a_client_that_ignores_a_hang_up_fails(quick):
    class Deaf(LineClient):
        def connectionLost(self, reason):
            pass  # the request waits for its timeout

    report = check("08.3", fetching(Deaf))
    assert report.failed == {"errors"}
    assert report.message("errors") == (
        "against a server that closes the connection as soon as it has the line,"
        " fetch_with_timeout(port, 'hello?', 0.3) returned None, expected it to raise the"
        " error of the lost connection at once")


def test_not_closing_after_a_reply_fails(quick):
    report = check("08.3", fetching(close=False))  # the canceller closes on timeout only
    assert report.failed == {"closes-after-reply"}
    assert report.message("closes-after-reply") == (
        "against a server that answers, fetch_with_timeout(port, 'héllo, €uro', 0.3) returned"
        " 'HÉLLO, €URO', and the connection was still open 0.3 s later")


def test_timeout_without_canceller_or_close_fails(quick):
    class NoCanceller(LineClient):
        def request(self, text):
            self.waiting = defer.Deferred()  # cancel() fails it; the connection stays
            self.transport.write(text.encode() + b"\n")
            return self.waiting

    async def leaves_open(port, text, seconds):
        from twisted.internet import reactor

        client = await _connect(port, NoCanceller())
        try:
            reply = await client.request(text).addTimeout(seconds, reactor)
        except defer.TimeoutError:
            return None
        client.transport.loseConnection()
        return reply

    report = check("08.3", leaves_open)
    assert report.failed == {"closes-after-timeout"}


def test_a_reply_taken_from_the_first_chunk_fails(quick):
    class FirstChunk(LineClient):
        def dataReceived(self, data):  # assumes the whole line came in one piece
            d, self.waiting = self.waiting, None
            d.callback(data.decode().rstrip("\n"))

    report = check("08.3", fetching(FirstChunk))
    assert report.failed == {"replies"}
    assert report.message("replies").endswith(
        "Twisted logged: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3 in position"
        " 1: unexpected end of data (raised in dataReceived)")


def test_returning_bytes_fails(quick):
    class Raw(LineClient):
        def dataReceived(self, data):
            self.buffer += data
            if self.waiting is not None and b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                d, self.waiting = self.waiting, None
                d.callback(line)

    report = check("08.3", fetching(Raw))
    assert report.failed == {"replies"}
    assert "returned b'H\\xc3\\x89LLO, \\xe2\\x82\\xacURO', expected it to return" in (
        report.message("replies"))


def test_a_line_sent_without_its_newline_fails(quick):
    class NoNewline(LineClient):
        def request(self, text):
            self.waiting = defer.Deferred(lambda d: self.transport.abortConnection())
            self.transport.write(text.encode())
            return self.waiting

    report = check("08.3", fetching(NoNewline))
    assert report.failed == {"replies", "errors"}
    assert report.message("replies") == (
        "the server received the lines [], expected one line b'h\\xc3\\xa9llo,"
        " \\xe2\\x82\\xacuro' (the text in UTF-8, then a newline)")


def test_latin1_instead_of_utf8_fails(quick):
    class Latin1(LineClient):
        def request(self, text):
            self.waiting = defer.Deferred(lambda d: self.transport.abortConnection())
            self.transport.write(text.encode("latin-1") + b"\n")
            return self.waiting

    report = check("08.3", fetching(Latin1))
    assert report.failed == {"replies"}
    assert "raised UnicodeEncodeError" in report.message("replies")


def test_no_timeout_at_all_is_given_up_on(quick):
    async def no_timeout(port, text, seconds):
        client = await _connect(port)  # seconds only bounds the connect, in some answers
        try:
            return await client.request(text)
        finally:
            client.transport.loseConnection()

    report = check("08.3", no_timeout)
    assert report.failed == {"times-out"}
    assert report.message("times-out") == (
        "against a server that never answers, fetch_with_timeout(port, 'anyone there?', 0.15)"
        " had not returned after 1.15 s, expected it to return None")


def test_a_timer_of_ones_own_left_after_the_reply_fails(quick):
    async def own_timer(port, text, seconds):
        from twisted.internet import reactor

        client = await _connect(port)
        try:
            d = client.request(text)
            reactor.callLater(seconds, d.errback, defer.TimeoutError())  # never called off
            return await d
        except defer.TimeoutError:
            return None
        finally:
            client.transport.loseConnection()

    report = check("08.3", own_timer)
    assert report.failed == {"no-timer-left"}
    assert re.fullmatch(
        r"against a server that answers, fetch_with_timeout\(port, 'héllo, €uro', 0.3\)"
        r" returned 'HÉLLO, €URO', and a timer it had set was still pending: Deferred.errback"
        r" in 0.\d s", report.message("no-timer-left"))


def test_a_blocking_socket_in_the_reactor_thread_is_named(quick):
    async def blocking(port, text, seconds):
        with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
            sock.sendall(text.encode() + b"\n")  # the server runs in this very thread
            reply = b""
            try:
                while b"\n" not in reply:
                    data = sock.recv(1024)
                    if not data:
                        raise ConnectionError("closed")
                    reply += data
            except TimeoutError:
                return None
            return reply.split(b"\n")[0].decode()

    report = check("08.3", blocking)
    assert report.failed == {"replies", "errors"}
    assert re.fullmatch(
        r"against a server that answers 'HÉLLO, €URO' \(in two pieces\),"
        r" fetch_with_timeout\(port, 'héllo, €uro', 0.3\) returned None, after holding the"
        r" reactor thread for 0.\d s before it first awaited \(a blocking call: meanwhile no"
        r" connection, not even the server's, could run\), expected it to return 'HÉLLO, €URO'",
        report.message("replies"))


def test_inline_callbacks_instead_of_async_def_fails():
    @defer.inlineCallbacks
    def generator(port, text, seconds):
        client = yield _connect(port)
        client.transport.loseConnection()
        return "PING"

    report = check("08.3", generator)
    assert report.failed == {"replies", "closes-after-reply", "times-out",
                             "closes-after-timeout", "no-timer-left", "errors"}
    assert report.message("replies").startswith(
        "fetch_with_timeout(port, 'héllo, €uro', 1) returned <Deferred at 0x")
    assert report.message("replies").endswith(
        "not a coroutine: the exercise asks for an `async def` function")


def test_a_timer_set_while_origins_were_not_recorded_is_not_the_answers():
    """A timer set by anyone between the check's first look and DelayedCall.debug going on
    has no creator (None): it once made every check of a run raise TypeError."""
    from twisted.internet import reactor

    from helpers.reactor import call

    async def answer(port, text, seconds):
        return text

    def in_the_reactor():
        before = ch08._timers()
        stray = reactor.callLater(5, lambda: None)  # DelayedCall.debug is off: no creator
        try:
            return ch08._timers_left(before, answer)
        finally:
            stray.cancel()

    assert call(in_the_reactor) == ()
