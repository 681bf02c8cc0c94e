"""Checks for chapter 08 (Deferreds).

08.1 with_default(d, default) -> Deferred        -- trap one error type, pass the rest on
08.2 settle(deferreds) -> Deferred               -- DeferredList with consumeErrors
08.3 async fetch_with_timeout(port, text, seconds) -- addTimeout against a live server

08.1 and 08.2 fire Deferreds by hand in the checking thread: no reactor, no time. Every
failure a check creates is handled by the check itself, so nothing is logged as an
unhandled error later. 08.3 runs the answer in the reactor thread against two servers
started for the check (one answers, one never does), with short timeouts, and stops them.
"""

from __future__ import annotations

import inspect
import time

from .. import reactor as _reactor
from ..events import EventLog, EventTimeout
from ..servers import serve
from .legacy import Check, exercise

TIMEOUT = 2.0  # the longest any check here waits for the reader's code


def _watch(d):
    """Record what a Deferred fires with (handling a failure); `_state(seen)` reads it."""
    seen = []

    def keep(result):
        seen.append(result)  # returns None: a failure stops here, so it is never logged

    d.addBoth(keep)
    return seen


def _state(seen):
    """('pending',), ('result', value) or ('failure', exception)."""
    from twisted.python.failure import Failure

    if not seen:
        return ("pending",)
    if isinstance(seen[0], Failure):
        return ("failure", seen[0].value)
    return ("result", seen[0])


def _show(state):
    if state[0] == "failure":
        return f"a failure {type(state[1]).__name__}({state[1]})"
    if state[0] == "result":
        return f"the result {state[1]!r}"
    return "still pending"


def _deferred_returned(fn, *args):
    from twisted.internet import defer

    out = fn(*args)
    assert isinstance(out, defer.Deferred), (
        f"returned {type(out).__name__} ({out!r}), expected a Deferred"
    )
    return out


# -- 08.1 -------------------------------------------------------------------


class MissingUser(KeyError):
    """A subclass of KeyError: trap(KeyError) matches it too."""


def _run_with_default(fn, fire):
    """with_default(d, "guest") on a fresh Deferred, fired by `fire(d)`: the final state."""
    from twisted.internet import defer

    d = defer.Deferred()
    out = _deferred_returned(fn, d, "guest")
    seen = _watch(out)
    fire(d)
    if out is not d:
        _watch(d)  # d's own result, if the answer left one there, is handled too
    return _state(seen)


def _values_pass(fn):
    for value in (5, None, "x"):
        state = _run_with_default(fn, lambda d, value=value: d.callback(value))
        assert state == ("result", value), (
            f"d.callback({value!r}): the chain ended with {_show(state)}, expected the"
            f" result {value!r} unchanged"
        )


def _key_errors_recover(fn):
    for error in (KeyError("bob"), MissingUser("carol")):
        state = _run_with_default(fn, lambda d, error=error: d.errback(error))
        assert state == ("result", "guest"), (
            f"d.errback({type(error).__name__}({error})): the chain ended with {_show(state)},"
            " expected the result 'guest'"
        )


def _others_pass(fn):
    for error in (ValueError("bad name"), ZeroDivisionError("division by zero")):
        state = _run_with_default(fn, lambda d, error=error: d.errback(error))
        assert state[0] == "failure", (
            f"d.errback({type(error).__name__}({error})): the chain ended with {_show(state)},"
            f" expected the same {type(error).__name__} failure (only KeyError is recovered)"
        )
        assert state[1] is error, (
            f"d.errback({type(error).__name__}({error})): the chain ended with {_show(state)},"
            f" expected the same {type(error).__name__} instance, unchanged"
        )


exercise(
    "08.1",
    "Recover from one error type",
    Check(
        "a result goes on unchanged",
        _values_pass,
        "add an errback (d.addErrback), not a callback: an errback stage lets values through;"
        " return d",
    ),
    Check(
        "a KeyError (or a subclass) becomes the default",
        _key_errors_recover,
        "in the errback, failure.trap(KeyError), then return the default: returning a value"
        " recovers",
    ),
    Check(
        "any other failure goes on unchanged",
        _others_pass,
        "an errback that returns a value for every failure swallows them all; failure.trap"
        " re-raises what does not match",
    ),
)

# -- 08.2 -------------------------------------------------------------------


def _settle_check(body):
    """A check of 08.2: body(run) gets `run(fn, n)` -> (inputs, returned, seen).

    Afterwards every input Deferred is handled, so that a wrong answer which left a
    failure in one is reported by its check, not logged as unhandled later.
    """
    from twisted.internet import defer

    def check_(fn):
        made = []

        def run(n):
            ds = [defer.Deferred() for _ in range(n)]
            made.extend(ds)
            out = _deferred_returned(fn, list(ds))
            return ds, out, _watch(out)

        try:
            body(run)
        finally:
            for d in made:
                if d.called:
                    _watch(d)

    return check_


def _expect_list(state, expected, what):
    assert state[0] == "result", f"{what}: the Deferred ended with {_show(state)}"
    got = state[1]
    assert isinstance(got, list), f"{what}: fired with {got!r}, expected a list"
    assert [tuple(x) if isinstance(x, (tuple, list)) else x for x in got] == expected, (
        f"{what}: fired with {got!r}, expected {expected!r}"
    )


@_settle_check
def _in_order(run):
    ds, out, seen = run(3)
    for i in (2, 0):
        ds[i].callback(f"r{i}")
        assert _state(seen) == ("pending",), (
            f"fired after only some of the Deferreds had fired: {_show(_state(seen))}"
        )
    ds[1].callback("r1")
    _expect_list(_state(seen), [("ok", "r0"), ("ok", "r1"), ("ok", "r2")],
                 "three results, fired in the order 2, 0, 1")


@_settle_check
def _errors_listed(run):
    ds, out, seen = run(3)
    errors = [KeyError("k"), ValueError("v")]
    ds[1].errback(errors[0])
    ds[2].errback(errors[1])
    state = _state(seen)
    assert state[0] != "failure", (
        f"one Deferred failed and the result was {_show(state)}: settle never fails"
        " (gatherResults and fireOnOneErrback fail at the first error)"
    )
    ds[0].callback("r0")
    state = _state(seen)
    _expect_list(state, [("ok", "r0"), ("error", errors[0]), ("error", errors[1])],
                 "one result and two failures")
    got = state[1]
    assert got[1][1] is errors[0] and got[2][1] is errors[1], (
        "the errors must be the exceptions themselves (failure.value), not Failures or copies"
    )


@_settle_check
def _consumes(run):
    ds, out, seen = run(2)
    ds[0].errback(KeyError("lost"))
    ds[1].callback("fine")
    left = [_state(_watch(d)) for d in ds]
    assert left[0] == ("result", None), (
        f"after settle, the failed input Deferred still holds {_show(left[0])}: it would be"
        " logged as 'Unhandled error in Deferred' when collected"
    )


@_settle_check
def _empty(run):
    ds, out, seen = run(0)
    _expect_list(_state(seen), [], "settle([])")


exercise(
    "08.2",
    "Settle them all",
    Check(
        "results in input order, once all have fired",
        _in_order,
        "defer.DeferredList(deferreds) fires with (success, result) pairs in input order",
    ),
    Check(
        "failures are listed as ('error', exception); it never fails",
        _errors_listed,
        "a DeferredList (without fireOnOneErrback) never fails; map (False, failure) to"
        " ('error', failure.value) in a callback",
    ),
    Check(
        "the input Deferreds' errors are consumed",
        _consumes,
        "DeferredList(deferreds, consumeErrors=True)",
    ),
    Check(
        "an empty list gives [] at once",
        _empty,
        "DeferredList([]) fires at once with []",
    ),
)

# -- 08.3 -------------------------------------------------------------------


def _line_factory(log, answer):
    """A line server: answer(line) -> reply line or None (silent); events go to `log`."""
    from twisted.internet import protocol

    class Lines(protocol.Protocol):
        def connectionMade(self):
            self.buffer = b""
            log.record("server", "connectionMade")

        def dataReceived(self, data):
            self.buffer += data
            *lines, self.buffer = self.buffer.split(b"\n")
            for line in lines:
                log.record("server", "line", line=line)
                reply = answer(line)
                if reply is not None:
                    self.transport.write(reply + b"\n")

        def connectionLost(self, reason):
            log.record("server", "connectionLost")

    return protocol.Factory.forProtocol(Lines)


def _fetch(fn, server, text, seconds):
    """Run fn(port, text, seconds) as a coroutine in the reactor thread: (result, seconds)."""
    from twisted.internet import defer

    assert inspect.iscoroutinefunction(fn), (
        f"{getattr(fn, '__name__', fn)!s} is not an `async def` function"
    )
    start = time.monotonic()
    limit = seconds + TIMEOUT
    try:
        result = _reactor.call(
            lambda: defer.Deferred.fromCoroutine(fn(server.port, text, seconds)), timeout=limit
        )
    except TimeoutError as e:
        if type(e) is TimeoutError and "did not finish within" in str(e):
            raise AssertionError(
                f"fetch_with_timeout(port, {text!r}, {seconds:g}) had not returned after"
                f" {limit:g} s"
            ) from None
        raise
    except defer.TimeoutError as e:
        raise AssertionError(
            f"raised twisted.internet.defer.TimeoutError{e.args}, expected the result None"
            " (it is not the built-in TimeoutError: `except TimeoutError` does not catch it)"
        ) from None
    return result, time.monotonic() - start


def _closed(log, what):
    try:
        log.wait(1, "connectionLost", timeout=1.0)
    except EventTimeout:
        raise AssertionError(f"{what}: the connection was still open 1 s later") from None


def _with_server(name, answer, body):
    log = EventLog()
    server = serve(name, _line_factory(log, answer))
    try:
        body(server, log)
    finally:
        server.stop()


def _reply(fn):
    def body(server, log):
        result, _ = _fetch(fn, server, "ping", 1.0)
        assert result == "PING", (
            f"fetch_with_timeout(port, 'ping', 1) against a server that answers 'PING'"
            f" returned {result!r}, expected 'PING'"
        )
        lines = [e.details["line"] for e in log if e.what == "line"]
        assert lines == [b"ping"], f"the server received the lines {lines}, expected [b'ping']"

    _with_server("check-08.3-answers", lambda line: line.upper(), body)


def _reply_closes(fn):
    def body(server, log):
        _fetch(fn, server, "ping", 1.0)
        _closed(log, "after the reply was returned")

    _with_server("check-08.3-answers", lambda line: line.upper(), body)


def _silent_none(fn):
    def body(server, log):
        result, took = _fetch(fn, server, "anyone?", 0.2)
        assert result is None, (
            f"against a server that never answers it returned {result!r}, expected None"
        )
        assert took >= 0.15, f"returned None after {took:.2f} s, but `seconds` was 0.2"

    _with_server("check-08.3-silent", lambda line: None, body)


def _silent_closes(fn):
    def body(server, log):
        try:
            _fetch(fn, server, "anyone?", 0.2)
        except AssertionError as e:
            if "async def" in str(e):
                raise
            # A wrong result (or none) is the previous check's finding; here only the
            # connection counts.
        _closed(log, "after the timeout")

    _with_server("check-08.3-silent", lambda line: None, body)


exercise(
    "08.3",
    "A request with a timeout, in async def",
    Check(
        "an async def that returns the reply line",
        _reply,
        "client = await connect(port); return await client.request(text)",
    ),
    Check(
        "the connection is closed after a reply",
        _reply_closes,
        "try: ... finally: client.transport.loseConnection()",
    ),
    Check(
        "returns None after `seconds` when no reply comes",
        _silent_none,
        "d = client.request(text).addTimeout(seconds, reactor); await d inside"
        " try/except defer.TimeoutError",
    ),
    Check(
        "the connection is closed after a timeout",
        _silent_closes,
        "a canceller that closes the connection (LineClient has one), or close it in finally",
    ),
)
