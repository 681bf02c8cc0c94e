"""Checks for chapter 08 (Deferreds).

08.1 with_default(d, default) -> Deferred          -- recover from one error type only
08.2 settle(deferreds) -> Deferred                 -- every outcome, in input order
08.3 async fetch_with_timeout(port, text, seconds) -- a request with a timeout, live

08.1 and 08.2 fire Deferreds by hand in the checking thread: no reactor, no time (08.2
also passes Deferreds that fired before the call). A check handles the failures it
creates, except where leaving one unhandled is the reader's mistake (then Twisted logs it,
and the check fails). 08.3 runs the answer in the reactor thread against servers started
for the check: one answers (in two pieces), one never answers, one hangs up; and a port
where nothing listens. It measures how long the answer holds the reactor thread before its
first await (a blocking call is named as the cause), and which timers the answer's code set
are still pending once it returned (they are cancelled, so none fires into a later cell).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from dataclasses import dataclass

from .. import reactor as _reactor
from ..events import EventLog, EventTimeout
from ..servers import serve
from ..twisted_log import logged_exceptions
from . import Outcome, Watch, exercise, fail, observation, require, require_deferred, show
from .answers import run_answer, settle
from .framework import CheckFailed, describe_error
from .wire import dead_port

REPLY_SECONDS = 1.0  # the timeout passed when the server answers at once
SECONDS = 0.3  # the timeout passed when no reply will come
HANG_UP_SECONDS = 2.0  # the timeout passed when the server hangs up (long: it must not count)
SLACK = 1.0  # how much longer than `seconds` the answer may take before a check gives up
CLOSE_TIMEOUT = 1.0  # how long a connection may stay open after the answer returned
BLOCKED = 0.2  # a call that holds the reactor thread this long (s) is said to block it


# -- shared by 08.1 and 08.2 ------------------------------------------------------------


def _failure():
    from twisted.python.failure import Failure

    return Failure


def _called(fn, *args, what):
    """fn(*args) with a deadline; the Deferred it returned, or fail saying what it did."""
    outcome = run_answer(fn, *args, what=what)
    if outcome.kind == "raised":
        raise CheckFailed(f"{what} {outcome}") from outcome.error
    return require_deferred(outcome.value, what)


# -- 08.1 -------------------------------------------------------------------

with_default = exercise("08.1", "Recover from one error type")


class MissingUser(KeyError):
    """A subclass of KeyError, which the default must also cover."""


def _with_default(fn, fire, default):
    """with_default(d, default) on a new Deferred, then fire(d): (what, Outcome)."""
    from twisted.internet import defer

    d = defer.Deferred()
    watch = Watch(_called(fn, d, default, what=f"with_default(d, {default!r})"))
    what = fire(d)
    return what, watch.outcome


def _callback(value):
    def fire(d):
        d.callback(value)
        return f"d.callback({value!r})"

    return fire


def _errback(error):
    def fire(d):
        d.errback(error)
        return f"d.errback({error!r})"

    return fire


@with_default.check("values", "a result goes on unchanged",
                    hint="Of the two lines of a chain, values travel on one and failures on"
                         " the other: which kind of stage is skipped by a value (section 1)?"
                         " And give the caller a Deferred to add its own stages to.")
def _values(fn):
    for value in (5, None, [1, 2]):
        what, outcome = _with_default(fn, _callback(value), "guest")
        require(outcome.kind == "fired" and outcome.value is value,
                f"{what}: the Deferred with_default returned {outcome}, expected it to fire"
                f" with {value!r}, unchanged")


@with_default.check("key-errors", "a KeyError, or a subclass of it, becomes the default",
                    hint="An errback recovers by returning a value; section 3 shows how an"
                         " errback handles one kind of error, subclasses included, and lets"
                         " every other kind go on.")
def _key_errors(fn):
    for error, default in ((KeyError("bob"), "guest"), (MissingUser("carol"), 0),
                           (KeyError("dave"), None)):
        what, outcome = _with_default(fn, _errback(error), default)
        require(outcome.kind == "fired" and outcome.value is default,
                f"with_default(d, {default!r}), then {what}: the Deferred {outcome}, expected"
                f" it to fire with {default!r}")


@with_default.check("other-errors", "every other failure goes on, with the same exception",
                    hint="Returning a value from an errback recovers from whatever it got, and"
                         " raising a new exception replaces the old one: a failure you do not"
                         " handle must go on as it came. Which errors does your test let"
                         " through: KeyError's relatives too?")
def _other_errors(fn):
    for error in (ValueError("bad name"), IndexError("no such item"), RuntimeError("down")):
        what, outcome = _with_default(fn, _errback(error), "guest")
        if outcome.kind == "fired" and outcome.value is error:
            fail(f"{what}: the Deferred with_default returned {outcome}: the exception became"
                 f" the result, a success, and the caller's errbacks never see it; expected"
                 f" the Deferred to fail with that same {type(error).__name__}")
        require(outcome.kind == "failed" and outcome.error is error,
                f"{what}: the Deferred with_default returned {outcome}, expected it to fail"
                f" with that same {type(error).__name__}"
                + (" (a new exception, not the same one)" if outcome.kind == "failed" else ""))


# -- 08.2 -------------------------------------------------------------------

settle_them = exercise("08.2", "Settle them all")


@dataclass
class _Settling:
    inputs: list  # the Deferreds given to settle(), in order
    watch: Watch  # what settle()'s Deferred fired with


def _settle(fn, n):
    from twisted.internet import defer

    inputs = [defer.Deferred() for _ in range(n)]
    return _Settling(inputs, Watch(_called(fn, list(inputs), what=f"settle(<{n} Deferreds>)")))


def _handle_inputs(settling):
    """Handle a failure the answer left in an input: that is the `consumed` check's finding,
    not a reason for every other check to fail too."""
    for d in settling.inputs:
        if d.called and isinstance(getattr(d, "result", None), _failure()):
            d.addErrback(lambda failure: None)


def _raised_in_stages(inputs):
    """What a stage the answer added to an input raised (that input now holds it as its
    failure, where no one sees it), described; or ''."""
    for d in inputs:
        result = getattr(d, "result", None)
        if d.called and isinstance(result, _failure()):
            return describe_error(result.value)
    return ""


def _expect_list(outcome, expected, what):
    require(outcome.kind == "fired", f"{what}: settle's Deferred {outcome}, expected it to fire"
            f" with {show(expected)}")
    got = outcome.value
    require(isinstance(got, list) and len(got) == len(expected),
            f"{what}: settle's Deferred fired with {show(got)}, expected the list"
            f" {show(expected)}")
    for i, (item, want) in enumerate(zip(got, expected, strict=True)):
        same = type(item) is tuple and item == want and (want[0] == "ok" or item[1] is want[1])
        require(same, f"{what}: settle's Deferred fired with a list whose item {i} is"
                f" {show(item)}, expected {show(want)}"
                + (", the very exception that failed the Deferred" if want[0] == "error" else ""))


@settle_them.check("in-order", "fires once all have fired, with the results in input order",
                   hint="Section 5 has a way to wait for every Deferred of a list that keeps"
                        " the list's order, whatever order they fire in.")
def _in_order(fn):
    settling = _settle(fn, 3)
    try:
        inputs, watch = settling.inputs, settling.watch
        for i in (2, 0):
            inputs[i].callback(f"r{i}")
            require(not watch.fired, f"after only Deferreds {'2' if i == 2 else '2 and 0'} of"
                    f" 0, 1, 2 had fired, settle's Deferred {watch.outcome}")
        inputs[1].callback("r1")
        _expect_list(watch.outcome, [("ok", "r0"), ("ok", "r1"), ("ok", "r2")],
                     "Deferreds 0, 1, 2 fired in the order 2, 0, 1")
    finally:
        _handle_inputs(settling)


@settle_them.check("errors-listed", "a failure is listed as ('error', exception); it never"
                   " fails",
                   hint="Of the two ways section 5 waits for several Deferreds, one fails at"
                        " the first error and one never fails. And an errback gets a Failure,"
                        " which is not the exception it carries.")
def _errors_listed(fn):
    settling = _settle(fn, 3)
    try:
        inputs, watch = settling.inputs, settling.watch
        errors = [KeyError("k"), ValueError("v")]
        inputs[1].errback(errors[0])
        require(not watch.fired, f"Deferred 1 of 0, 1, 2 failed with KeyError and settle's"
                f" Deferred {watch.outcome} at once, expected it to wait for the others")
        inputs[2].errback(errors[1])
        inputs[0].callback("r0")
        _expect_list(watch.outcome, [("ok", "r0"), ("error", errors[0]), ("error", errors[1])],
                     "Deferred 0 fired with 'r0', 1 and 2 failed with KeyError and ValueError")
    finally:
        _handle_inputs(settling)
    settling = _settle(fn, 2)
    try:
        errors = [KeyError("a"), KeyError("b")]
        for d, error in zip(settling.inputs, errors, strict=True):
            d.errback(error)
        _expect_list(settling.watch.outcome, [("error", errors[0]), ("error", errors[1])],
                     "both Deferreds failed")
    finally:
        _handle_inputs(settling)


@settle_them.check("consumed", "the failures of the input Deferreds are handled",
                   hint="Waiting on a Deferred copies its failure; the failure also stays in"
                        " that Deferred, unhandled, unless you ask for it to be taken over"
                        " (section 5, at the end).")
def _consumed(fn):
    settling = _settle(fn, 2)
    settling.inputs[0].errback(KeyError("lost"))
    settling.inputs[1].callback("fine")
    left = getattr(settling.inputs[0], "result", None)
    _handle_inputs(settling)
    require(not isinstance(left, _failure()),
            "after settle fired, the input Deferred that failed with KeyError still holds its"
            " Failure: it is logged as 'Unhandled error in Deferred' when garbage-collected")


@settle_them.check("empty", "an empty list gives [] at once",
                   hint="With nothing to wait for, the answer is ready at once: does your code"
                        " ever fire when there is nothing to count?")
def _empty(fn):
    settling = _settle(fn, 0)
    require(settling.watch.fired, "settle([]) returned a Deferred that had not fired,"
            " expected it to have fired with [] already")
    _expect_list(settling.watch.outcome, [], "settle([])")


@settle_them.check("already-fired", "Deferreds that fired before the call are counted too",
                   hint="A stage added to a Deferred that already has its result runs at"
                        " once, while your code is still adding stages: whatever it counts"
                        " and fires must also be right when that happens.")
def _already_fired(fn):
    from twisted.internet import defer

    cases = (  # (the call as shown, the inputs, whether the check fires the last one after)
        ("settle([succeed('a'), succeed('b')])", [defer.succeed("a"), defer.succeed("b")],
         False),
        ("settle([succeed('a'), <a Deferred fired with 'b' after the call>])",
         [defer.succeed("a"), defer.Deferred()], True),
    )
    for call, inputs, fire_last in cases:
        expected = [("ok", "a"), ("ok", "b")]
        try:
            outcome = run_answer(fn, list(inputs), what=call)
            if outcome.kind == "raised":
                said = f"{call} {outcome}"
                if isinstance(outcome.error, defer.AlreadyCalledError):
                    said += (": it fired its Deferred a second time, after the stages run at"
                             " once had fired it already")
                raise CheckFailed(said) from outcome.error
            watch = Watch(require_deferred(outcome.value, call))
            if fire_last:
                require(not watch.fired, f"{call}: settle's Deferred {watch.outcome} before"
                        " the second Deferred had fired")
                inputs[-1].callback("b")
            if not watch.fired:
                raised = _raised_in_stages(inputs)
                fail(f"{call} returned a Deferred that had not fired"
                     + (" after the second one fired" if fire_last else "")
                     + ", expected it to have fired, since every input had"
                     + (f"; a stage your code added to an input raised {raised}" if raised
                        else ""))
            _expect_list(watch.outcome, expected, call)
        finally:
            _handle_inputs(_Settling(inputs, None))


# -- 08.3 -------------------------------------------------------------------

fetch = exercise("08.3", "A request with a timeout, in async def")


def _line_factory(log, reply):
    """A server that records each line and answers with reply(protocol, line), if any."""
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
                reply(self, line)

        def connectionLost(self, reason):
            log.record("server", "connectionLost")

    return protocol.Factory.forProtocol(Lines)


def _upper_in_two_pieces(proto, line):
    """The line in upper case, written in two pieces 50 ms apart, cut inside a character."""
    from twisted.internet import reactor

    reply = line.decode("utf-8", "replace").upper().encode() + b"\n"
    proto.transport.write(reply[:2])  # b"H\xc3": half of the "É"
    reactor.callLater(0.05, proto.transport.write, reply[2:])


SERVERS = {  # what each kind of server does with a line
    "answers": _upper_in_two_pieces,
    "silent": lambda proto, line: None,
    "hangs up": lambda proto, line: proto.transport.loseConnection(),
}
TEXT = {"answers": "héllo, €uro", "silent": "anyone there?", "hangs up": "hello?",
        "refused": "hello?"}


@dataclass(frozen=True)
class _Run:
    call: str  # "fetch_with_timeout(port, 'hello?', 0.3)"
    outcome: Outcome
    lines: list  # the lines the server received
    connected: bool
    closed: bool  # the server saw the connection end, within CLOSE_TIMEOUT of the return
    logged: tuple = ()  # the exceptions Twisted logged meanwhile (the framework shows them)
    blocked: float = 0.0  # how long the call held the reactor thread before its first await
    timers: tuple = ()  # the timers set during the call and still pending once it ended


@observation
def _run(fn, kind, seconds):
    """fetch_with_timeout against a server of this kind (or a refused port), observed."""
    from twisted.internet import defer

    log, text = EventLog(), TEXT[kind]
    call = f"fetch_with_timeout(port, {text!r}, {seconds:g})"
    blocked = []

    def start(port):
        coro = fn(port, text, seconds)
        if not inspect.iscoroutine(coro):
            if isinstance(coro, defer.Deferred):
                coro.addErrback(lambda failure: None)  # it runs on; its failure is not news
            fail(f"{call} returned {show(coro)}, not a coroutine: the exercise asks for an"
                 " `async def` function")
        began = time.monotonic()
        try:  # the coroutine runs here, in the reactor thread, up to its first await
            return defer.Deferred.fromCoroutine(coro)
        finally:
            blocked.append(time.monotonic() - began)

    if kind == "refused":
        with dead_port() as port:
            outcome = settle(lambda: start(port), limit=seconds + SLACK, what=call)
        return _Run(call, outcome, [], False, True)
    server = serve(f"check-08.3-{kind.replace(' ', '-')}", _line_factory(log, SERVERS[kind]))
    try:
        timers_before = _reactor.call(_timers)
        with logged_exceptions() as logged, _timer_origins():
            outcome = settle(lambda: start(server.port), limit=seconds + SLACK, what=call)
            connected = any(e.what == "connectionMade" for e in log)
            if not connected and sum(blocked) >= 0.05:  # held up, the server is catching up
                with contextlib.suppress(EventTimeout):
                    connected = bool(log.wait(1, "connectionMade", timeout=CLOSE_TIMEOUT))
            try:
                if connected:  # and once it ended, every callback of the answer has run
                    log.wait(1, "connectionLost", timeout=CLOSE_TIMEOUT)
                closed = connected
            except EventTimeout:
                closed = False
            timers = _reactor.call(_timers_left, timers_before, fn)
    finally:
        server.stop()
    if outcome.kind == "raised" and isinstance(outcome.error, CheckFailed):
        raise outcome.error  # not a coroutine
    return _Run(call, outcome, [e.details["line"] for e in log if e.what == "line"],
                connected, closed, tuple(logged), sum(blocked), timers)


def _timers():
    """The reactor's pending timers (DelayedCalls); in the reactor thread."""
    from twisted.internet import reactor

    return {call for call in reactor.getDelayedCalls() if call.active()}


@contextlib.contextmanager
def _timer_origins():
    """Every timer set meanwhile records the stack that set it (`creator`)."""
    from twisted.internet import base

    was, base.DelayedCall.debug = base.DelayedCall.debug, True
    try:
        yield
    finally:
        base.DelayedCall.debug = was


def _timers_left(before, fn):
    """The timers set since `before` from the code of `fn` (directly or through what it
    called) and still pending, described: ('Deferred.cancel in 0.7 s', ...); in the
    reactor thread. Others (the check's server, Twisted's own) are not the answer's.
    They are cancelled, so that none fires later, into whatever cell runs then."""
    from twisted.internet import reactor

    code = getattr(fn, "__code__", None)
    if code is None:
        return ()
    where = f'File "{code.co_filename}"'
    left = sorted((call for call in _timers() - before
                   if any(where in line for line in getattr(call, "creator", None) or ())),
                  key=lambda call: call.getTime())
    said = tuple(f"{getattr(call.func, '__qualname__', show(call.func))} in"
                 f" {max(call.getTime() - reactor.seconds(), 0):.1f} s" for call in left)
    for call in left:
        call.cancel()
    return said


def _said(run: _Run) -> str:
    """What the answer did, with the right name for Twisted's own TimeoutError."""
    from twisted.internet import defer

    outcome = run.outcome
    if outcome.kind == "pending":
        said = f"had not returned after {outcome.seconds:g} s"
    elif outcome.error is None:
        said = f"returned {show(outcome.value)}"
    else:
        said = f"raised {describe_error(outcome.error)}"
        if outcome.is_error(defer.TimeoutError):
            said += " (twisted.internet.defer.TimeoutError, not the built-in TimeoutError)"
    if run.blocked >= BLOCKED:
        said += (f", after holding the reactor thread for {run.blocked:.1f} s before it first"
                 " awaited (a blocking call: meanwhile no connection, not even the server's,"
                 " could run)")
    return said


def _fail(run: _Run, message: str):
    """Fail with `message`, from the reader's exception if there was one."""
    raise CheckFailed(message) from run.outcome.error


def _require_error_free(run: _Run, expected: str) -> None:
    """Fail, from the reader's exception, if the answer raised where it should not."""
    if run.outcome.error is not None:
        _fail(run, f"{run.call} {_said(run)}, expected it to {expected}")


@fetch.check("replies", "returns the reply line, as a str",
             hint="A reply may arrive in pieces, and a piece can end inside a character:"
                  " collect bytes until the end of the line, then decode the whole line."
                  " Section 7's client does this.")
def _replies(fn):
    run = _run(fn, "answers", REPLY_SECONDS)
    expected = TEXT["answers"].upper()
    _require_error_free(run, f"return {expected!r}")
    sent = TEXT["answers"].encode()
    require(run.lines == [sent], f"the server received the lines {run.lines}, expected one"
            f" line {sent!r} (the text in UTF-8, then a newline)")
    require(run.outcome.kind in ("returned", "fired") and run.outcome.value == expected
            and type(run.outcome.value) is str,
            f"against a server that answers {expected!r} (in two pieces), {run.call}"
            f" {_said(run)}, expected it to return {expected!r}")


def _require_closed(run: _Run, after: str) -> None:
    if not run.connected:
        _fail(run, f"{run.call} {_said(run)} without connecting to the server")
    require(run.closed, f"{after}, {run.call} {_said(run)}, and the connection was still"
            f" open {CLOSE_TIMEOUT:g} s later")


@fetch.check("closes-after-reply", "after a reply, the connection is closed",
             hint="Closing must happen on every way out of the function, the good one"
                  " included: Python has a statement for that.")
def _closes_after_reply(fn):
    _require_closed(_run(fn, "answers", REPLY_SECONDS), "against a server that answers")


@fetch.check("times-out", "with no reply, returns None after `seconds`",
             hint="addTimeout gives up by cancelling the Deferred, and what it then fails"
                  " with is Twisted's own exception (section 9). A request given up is over:"
                  " the protocol must forget it, so that nothing fires it again.")
def _times_out(fn):
    from twisted.internet import defer

    run = _run(fn, "silent", SECONDS)
    _require_error_free(run, "return None")
    if any(isinstance(e, defer.AlreadyCalledError) for e in run.logged):
        fail(f"against a server that never answers, {run.call} {_said(run)}; then, as the"
             " connection closed, your protocol fired the request's Deferred again, which"
             " addTimeout had already cancelled (AlreadyCalledError)")
    require(run.outcome.kind in ("returned", "fired") and run.outcome.value is None,
            f"against a server that never answers, {run.call} {_said(run)}, expected it to"
            " return None")
    require(run.outcome.seconds >= SECONDS * 0.8,
            f"{run.call} returned None after {run.outcome.seconds:.2f} s, before the"
            f" {SECONDS:g} s were up")


@fetch.check("closes-after-timeout", "after a timeout, the connection is closed",
             hint="Giving up on the reply does not end the connection by itself: a"
                  " Deferred can be given a function to call when it is cancelled, or you"
                  " can close it on the way out.")
def _closes_after_timeout(fn):
    _require_closed(_run(fn, "silent", SECONDS), "against a server that never answers")


@fetch.check("no-timer-left", "once it returned, no timer of the call is left pending",
             hint="A timer set for the timeout is still due when the reply comes first, or the"
                  " connection is lost: it must be called off then, or it fires later on a"
                  " request that is over (section 9's way to add a timeout does this for"
                  " you).")
def _no_timer_left(fn):
    for kind, seconds, against in (("answers", REPLY_SECONDS, "a server that answers"),
                                   ("hangs up", HANG_UP_SECONDS, "a server that hangs up")):
        run = _run(fn, kind, seconds)
        if not run.connected:
            _fail(run, f"{run.call} {_said(run)} without connecting to the server")
        require(not run.timers, f"against {against}, {run.call} {_said(run)}, and a timer it"
                f" had set was still pending: {', '.join(run.timers)}")


@fetch.check("errors", "other failures reach the caller: a refused connection, a hang-up",
             hint="Catch only the exception that means 'timed out'; anything broader turns"
                  " real errors into None. And a connection that ends while a request waits"
                  " must fail that request at once.")
def _errors(fn):
    from twisted.internet import defer, error

    run = _run(fn, "refused", SECONDS)
    if not run.outcome.is_error((error.ConnectionRefusedError, ConnectionRefusedError)):
        _fail(run, f"with nothing listening on the port, {run.call} {_said(run)}, expected"
                   " the ConnectionRefusedError to reach the caller")
    run = _run(fn, "hangs up", HANG_UP_SECONDS)
    if not run.lines:
        _fail(run, f"the server received no line; {run.call} {_said(run)}")
    timed_out = run.outcome.is_error((defer.TimeoutError, defer.CancelledError))
    require(run.outcome.error is not None and not timed_out,
            f"against a server that closes the connection as soon as it has the line,"
            f" {run.call} {_said(run)}, expected it to raise the error of the lost"
            " connection at once")
