"""Checks for chapter 17 (Twisted and asyncio together).

17.1 as_deferred(coro_fn) -> fn returning a Deferred   -- asyncio code callable from Twisted
17.2 async ask_all(port, lines, timeout=2)             -- a Twisted client awaited from asyncio

Both need the kernel of chapter 17: Twisted running on an asyncio loop (its first cell). 17.1
calls the reader's function in the reactor thread, as Twisted code would; 17.2 runs the
reader's coroutine as a task on the reactor's loop, against Twisted line servers that answer
late, never, or hang up part-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from ..reactor import asyncio_loop, installed_reactor
from ..servers import serve
from . import exercise, fail, require, settle, show
from .answers import Outcome, require_deferred
from .framework import describe_error, note_raised


def _reactor_loop():
    """The reactor's asyncio loop; fail plainly when this kernel runs another reactor."""
    if installed_reactor() != "AsyncioSelectorReactor":
        fail(f"this kernel runs Twisted's {installed_reactor() or 'no'} reactor, not the"
             " asyncio one: restart the kernel and run the chapter's first cell first")
    return asyncio_loop()


# -- 17.1 -------------------------------------------------------------------

bridge = exercise("17.1", "asyncio code callable from Twisted")


WAIT = 1.0  # how long a check waits for the reader's Deferred


def _start(answer, coro_fn, *args, then=None):
    """In the reactor thread: answer(coro_fn)(*args), a Deferred; `then(d)` right after.
    Returns the Outcome of that Deferred (waited for WAIT seconds)."""
    from twisted.internet import defer

    _reactor_loop()  # say so plainly in a kernel with another reactor
    what = f"as_deferred({coro_fn.__name__})({', '.join(map(repr, args))})"

    def make():
        d = require_deferred(answer(coro_fn)(*args), what)
        if then is not None:
            then(d)
        # settle() cancels what it waits for at its deadline, and waits for that to fire.
        # fromFuture's Deferred fires on cancel only once its future has finished: a task
        # on a loop that never runs never does. So settle waits on a Deferred of the
        # check's own, which follows the reader's and cancels it, without waiting for it.
        seen = defer.Deferred(lambda _: d.cancel())
        d.addBoth(lambda result: None if seen.called else seen.callback(result))
        return seen

    return settle(make, limit=WAIT, what=what)


@bridge.check("result", "the Deferred fires with the result of a coroutine that awaits asyncio",
              hint="Twisted's own coroutine runner knows only Deferreds. Let asyncio run the"
                   " coroutine (a task on the running loop), and wrap what asyncio gives you.")
def _result(answer):
    async def double(n):
        await asyncio.sleep(0.01)
        return 2 * n

    outcome = _start(answer, double, 21)
    require(outcome.kind == "fired" and outcome.value == 42,
            f"as_deferred(double)(21), where double awaits asyncio.sleep(0.01) and returns"
            f" 2 * n: the Deferred {outcome}, expected it to fire with 42")


@bridge.check("failure", "an exception in the coroutine fails the Deferred with it",
              hint="The exception must reach the Deferred's errbacks, not vanish in a"
                   " callback of the task.")
def _failure(answer):
    async def refuse(key):
        await asyncio.sleep(0)
        raise KeyError(key)

    outcome = _start(answer, refuse, "nope")
    require(outcome.kind == "failed" and isinstance(outcome.value, KeyError),
            f"as_deferred(refuse)('nope'), where refuse raises KeyError('nope'): the Deferred"
            f" {outcome}, expected it to fail with that KeyError")


@bridge.check("reactor-loop", "the coroutine starts at once, on the reactor's loop, in the"
              " reactor thread",
              hint="Code in the reactor thread already has a running asyncio loop: the"
                   " reactor's. No other thread or loop is needed.")
def _reactor_loop_check(answer):
    loop = _reactor_loop()
    seen = []

    async def where():
        seen.append((threading.current_thread().name, asyncio.get_running_loop()))
        return "here"

    reactor_thread = []
    outcome = _start(answer, where, then=lambda d: reactor_thread.append(
        threading.current_thread().name))
    require(seen, f"as_deferred(where)(): the Deferred {outcome}, and the coroutine never"
                  " ran: it was not started on a loop that runs")
    require(outcome.ok, f"as_deferred(where)(): the Deferred {outcome}")
    thread, ran_on = seen[0]
    require(ran_on is loop and thread == reactor_thread[0],
            f"the coroutine ran in thread {thread!r} on"
            f" {'the reactor' if ran_on is loop else 'another'} loop; expected the reactor"
            f" thread {reactor_thread[0]!r} and the reactor's loop")


@bridge.check("cancel", "cancelling the Deferred cancels the coroutine",
              hint="A Deferred made by hand knows nothing of the task behind it. One of"
                   " the chapter's bridges passes cancel() on to the future it wraps.")
def _cancel(answer):
    from twisted.internet import reactor

    got, ended = [], threading.Event()

    async def waits(seconds):
        got.append("started")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            got.append("was cancelled")
            raise
        except BaseException as exc:
            got.append(f"raised {describe_error(exc)}")
            raise
        finally:
            ended.set()
        got.append("was never cancelled and finished its 0.5 s")
        return "finished"

    def cancel_soon(d):
        reactor.callLater(0.05, d.cancel)

    started = time.monotonic()
    outcome = _start(answer, waits, 0.5, then=cancel_soon)
    ended.wait(WAIT)  # let the coroutine finish, if nothing stopped it
    require(got == ["started", "was cancelled"],
            f"as_deferred(waits)(0.5), cancelled after 0.05 s: the coroutine"
            f" {got[1] if len(got) > 1 else 'never ended' if got else 'never started'}")
    require(outcome.kind == "failed" and time.monotonic() - started < 0.4,
            f"as_deferred(waits)(0.5), cancelled after 0.05 s: the Deferred {outcome},"
            " expected it to fail with a CancelledError at once")


# -- 17.2 -------------------------------------------------------------------

ask = exercise("17.2", "Many questions, one connection, from asyncio")

STEP = 0.05  # the checker's servers answer each line this long after the one before


@contextlib.contextmanager
def _serving_lines(name, *, answer_lines=None, step=STEP):
    """A Twisted line server: each line is answered upper-cased, one every `step`
    seconds, in order; `answer_lines` (if given) answers only that many and then closes,
    or (0) never answers. `.log` records the lines and replies in order; `.closed` is set
    when a connection ends."""
    from twisted.internet import protocol, reactor
    from twisted.protocols import basic

    log, closed = [], threading.Event()

    class Answer(basic.LineReceiver):
        delimiter = b"\n"

        def connectionMade(self):
            self.pending, self.answered, self.timer = [], 0, None

        def lineReceived(self, line):
            log.append(("line", line.decode()))
            self.pending.append(line)
            if self.timer is None and answer_lines != 0:
                self.timer = reactor.callLater(step, self.reply)

        def reply(self):
            self.timer = None
            line = self.pending.pop(0)
            log.append(("reply", line.decode()))
            self.transport.write(line.upper() + b"\n")
            self.answered += 1
            if answer_lines is not None and self.answered >= answer_lines:
                self.transport.loseConnection()
            elif self.pending:
                self.timer = reactor.callLater(step, self.reply)

        def connectionLost(self, reason):
            if self.timer is not None and self.timer.active():
                self.timer.cancel()
            closed.set()

    server = serve(name, protocol.Factory.forProtocol(Answer))
    server.log, server.closed = log, closed
    try:
        yield server
    finally:
        server.stop()


def _ask(answer, port, lines, timeout, limit):
    """Run ask_all(port, lines, timeout) as a task on the reactor's loop: an Outcome."""
    loop = _reactor_loop()
    what = f"ask_all(port, {lines!r}, timeout={timeout})"
    try:
        coro = answer(port, lines, timeout=timeout)
    except Exception as exc:
        note_raised(exc)
        return Outcome("raised", exc), what
    require(asyncio.iscoroutine(coro), f"{what} returned {show(coro)}, expected a coroutine"
                                       " (define it with async def)")
    started = time.monotonic()
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        value = future.result(limit)
    except TimeoutError:
        if not future.done():
            loop.call_soon_threadsafe(future.cancel)
            fail(f"{what} was still running after {limit:g} s")
        return _raised(future, started), what
    except BaseException:
        return _raised(future, started), what
    return Outcome("returned", value, time.monotonic() - started), what


def _raised(future, started):
    exc = future.exception()
    note_raised(exc)
    return Outcome("raised", exc, time.monotonic() - started)


LINES = ["alpha", "beta", "gamma"]


@ask.check("replies", "returns every reply, in the order of the lines",
           hint="Each ask() gives a Deferred; an asyncio task cannot await a Deferred itself."
                " Section 3 turns one into something it can await.")
def _replies(answer):
    with _serving_lines("ch17-check-replies") as server:
        outcome, what = _ask(answer, server.port, LINES, 2, 3)
        require(outcome.kind == "returned" and outcome.value == [s.upper() for s in LINES],
                f"{what} against a server that answers each line upper-cased: {outcome},"
                f" expected {[s.upper() for s in LINES]!r}")


@ask.check("at-once", "every line is sent before the first reply comes back",
           hint="Ask everything first, and only then wait for the answers, all together.")
def _at_once(answer):
    with _serving_lines("ch17-check-at-once") as server:
        outcome, what = _ask(answer, server.port, LINES, 2, 3)
        require(outcome.ok, f"{what}: {outcome}")
        order = [kind for kind, _ in server.log]
        first_reply = order.index("reply") if "reply" in order else len(order)
        require(order[:first_reply].count("line") == len(LINES),
                f"{what}: the server got {order[:first_reply].count('line')} line(s) before"
                f" its first reply, then the rest one by one: the lines were sent one at a"
                f" time, each after the previous reply ({len(LINES) * STEP:.2f} s instead of"
                f" {STEP:.2f} s)")


@ask.check("closes", "the connection is closed after the replies",
           hint="Whatever happens after connecting, the transport must be closed before the"
                " coroutine ends: think of `finally`.")
def _closes(answer):
    with _serving_lines("ch17-check-closes") as server:
        outcome, what = _ask(answer, server.port, ["one"], 2, 3)
        require(outcome.ok, f"{what}: {outcome}")
        require(server.closed.wait(0.5), f"{what} returned {show(outcome.value)}, and a"
                " half a second later the connection was still open")


@ask.check("timeout", "replies not all in within `timeout` s: TimeoutError, connection closed",
           hint="One deadline for all the replies together, not one per reply; when it"
                " passes, the connection still has to be closed.")
def _timeout(answer):
    with _serving_lines("ch17-check-never", answer_lines=0) as never:
        outcome, what = _ask(answer, never.port, ["hello?"], 0.3, 1.5)
        require(outcome.is_error(TimeoutError),
                f"{what} against a server that never answers: {outcome}, expected"
                f" TimeoutError{_other_timeout(outcome)}")
        require(outcome.seconds < 1.0, f"{what} raised TimeoutError after"
                                       f" {outcome.seconds:.1f} s, expected about 0.3 s")
        require(never.closed.wait(0.5), f"{what} raised TimeoutError and left the"
                " connection open")
    with _serving_lines("ch17-check-slow", step=0.2) as slow:
        outcome, what = _ask(answer, slow.port, ["a", "b", "c", "d"], 0.5, 2)
        require(outcome.is_error(TimeoutError),
                f"{what} against a server that answers one line every 0.2 s (all four after"
                f" 0.8 s): {outcome}, expected TimeoutError at 0.5 s{_other_timeout(outcome)}")


def _other_timeout(outcome):
    """What to add when the answer raised a TimeoutError that is not the built-in one."""
    exc = outcome.error
    if exc is None or isinstance(exc, TimeoutError) or type(exc).__name__ != "TimeoutError":
        return ""
    return (f" (the built-in one, as asyncio raises; this one is"
            f" {type(exc).__module__}.{type(exc).__qualname__}, which `except TimeoutError`"
            " does not catch)")


@ask.check("hang-up", "a server that hangs up part-way: an exception, not a partial list",
           hint="When the connection is lost, LineClient fails every Deferred still waiting;"
                " let that failure reach your caller.")
def _hang_up(answer):
    from twisted.internet import defer, error

    with _serving_lines("ch17-check-hang-up", answer_lines=1, step=0.05) as server:
        outcome, what = _ask(answer, server.port, LINES, 2, 3)
        if isinstance(outcome.error, defer.FirstError):
            fail(f"{what} against a server that answers the first line and hangs up: raised"
                 f" FirstError, which wraps {describe_error(outcome.error.subFailure.value)};"
                 " expected the exception of the lost connection itself")
        require(outcome.is_error((error.ConnectionClosed, ConnectionError)),
                f"{what} against a server that answers the first line and hangs up:"
                f" {outcome}, expected the exception of the lost connection, at once")
