"""Checks for chapter 05 (the Twisted reactor).

05.1 countdown(clock, n, say) -> Deferred      -- callLater on the clock it is given
05.2 heartbeat(clock, interval, send) -> stop  -- a beat per interval, no drift
05.3 call_with_timeout(fn, timeout)            -- run fn in the reactor thread, wait

05.1 and 05.2 run against a `task.Clock`, so they take no real time and their timelines
are exact. 05.3 runs against the notebook's real reactor thread; every wait there has a
deadline, and an answer that blocks is released.
"""

from __future__ import annotations

import contextlib
import threading

from .. import reactor as _reactor
from . import CheckFailed, Watch, exercise, fail, require, run_answer
from .answers import reader_code
from .framework import describe_error

TIMEOUT = 2.0  # the longest a check of 05.3 waits for the reader's function


def _clock():
    from twisted.internet import task

    return task.Clock()


def _pending(clock):
    return sorted(round(c.getTime(), 6) for c in clock.getDelayedCalls())


# -- 05.1 -------------------------------------------------------------------

countdown = exercise("05.1", "A countdown with callLater")


def _start_countdown(fn, n, clock=None):
    from twisted.internet import defer

    clock, said = clock or _clock(), []
    d = fn(clock, n, lambda value: said.append((clock.seconds(), value)))
    require(isinstance(d, defer.Deferred),
            f"countdown(clock, {n}, say) returned {d!r}, expected a Deferred")
    require(said == [], f"say() was called at t=0, before any time passed: {said}")
    require(clock.getDelayedCalls(), "nothing was scheduled on the clock passed to countdown"
            " (clock.getDelayedCalls() is empty)")
    return clock, said, d


@countdown.check("counts-down", "say(3), say(2), say(1) at t = 1, 2, 3",
                 hint="Each delay counts from now: the first call is one second away, not"
                      " immediate, and the values go down.")
def _counts_down(fn):
    clock, said, _ = _start_countdown(fn, 3)
    clock.advance(0)  # runs what was scheduled with no delay
    require(said == [], f"say() was called at once, at t=0: {said}")
    clock.advance(0.999)
    require(said == [], f"say() was called before t=1: {said}")
    clock.pump([0.001, 1, 1])
    expected = [(1.0, 3), (2.0, 2), (3.0, 1)]
    require(said == expected, f"say() calls as (time, value): {said}, expected {expected}")


@countdown.check("lifts-off", "the Deferred fires with 'liftoff' one second after say(1)",
                 hint="The Deferred is yours to fire: schedule that too, one second after"
                      " the last say().")
def _lifts_off(fn):
    for n in (3, 1):
        clock, _, d = _start_countdown(fn, n)
        watch = Watch(d)
        # one second at a time: a call that schedules the next one (from clock.seconds())
        # runs at its own time, as on a reactor, not at the end of one long jump
        clock.pump([1] * n + [0.999])
        require(not watch.fired, f"n={n}: at t={n + 0.999:g} the Deferred {watch.outcome},"
                f" but liftoff is due at t={n + 1}")
        clock.advance(0.001)
        require(watch.outcome.kind == "fired" and watch.outcome.value == "liftoff",
                f"n={n}: at t={n + 1} the Deferred {watch.outcome}, expected it to fire"
                " with 'liftoff'")
        require(not clock.getDelayedCalls(),
                f"n={n}: calls still scheduled after liftoff, at t={_pending(clock)}")


@countdown.check("cancel-stops", "cancelling the Deferred stops that countdown, and only it",
                 hint="A Deferred can be given a function to call when it is cancelled;"
                      " that function must undo what countdown scheduled, and nothing else.")
def _cancel_stops(fn):
    clock = _clock()
    _, said, d = _start_countdown(fn, 5, clock)
    _, other, other_d = _start_countdown(fn, 4, clock)
    watch, other_watch = Watch(d), Watch(other_d)
    clock.pump([1, 1, 0.5])  # one second at a time, as in "lifts-off"
    with reader_code("d.cancel() at t=2.5, after say(5) and say(4)"):
        d.cancel()
    require(watch.outcome.kind == "failed" and watch.outcome.is_error(_cancelled()),
            f"after d.cancel() the Deferred {watch.outcome}, expected it to fail with"
            " CancelledError")
    before = list(said)
    try:
        clock.pump([1] * 10)
        late = None
    except Exception as exc:  # a call left scheduled, run by the clock
        late = exc
    require(said == before, f"say() was called after cancel(): {said[len(before):]}")
    if late is not None:
        raise CheckFailed(f"after d.cancel(), a call still scheduled on the clock raised"
                          f" {describe_error(late)}: cancelling must leave nothing of that"
                          " countdown scheduled") from late
    require([v for _, v in other] == [4, 3, 2, 1] and other_watch.outcome.value == "liftoff",
            f"a second countdown(clock, 4, say), on the same clock, said {other} and its"
            f" Deferred {other_watch.outcome}: cancelling one countdown stopped another")
    require(not clock.getDelayedCalls(), f"cancel() left calls scheduled at t={_pending(clock)}")


def _cancelled():
    from twisted.internet.defer import CancelledError

    return CancelledError


# -- 05.2 -------------------------------------------------------------------

heartbeat = exercise("05.2", "A heartbeat that does not drift")


def _start_heartbeat(fn, clock, interval, beats):
    stop = fn(clock, interval, lambda: beats.append(round(clock.seconds(), 6)))
    require(callable(stop), f"heartbeat returned {stop!r}, expected a function that stops it")
    if not clock.getDelayedCalls():
        with contextlib.suppress(Exception):  # a loop on another clock: do not leave it running
            stop()
        fail("nothing was scheduled on the clock passed to heartbeat"
             " (clock.getDelayedCalls() is empty)")
    return stop


@heartbeat.check("on-the-grid", "a beat at once, then one per interval",
                 hint="Twisted's task module has a helper for calling something repeatedly;"
                      " it can run on any clock and can make its first call at once.")
def _on_the_grid(fn):
    clock, beats = _clock(), []
    clock.advance(0.5)  # the grid starts when heartbeat() is called, not at t=0
    _start_heartbeat(fn, clock, 1.0, beats)
    require(beats == [0.5], f"heartbeat() called at t=0.5: beats at {beats}, expected [0.5]")
    clock.pump([0.5] * 6)
    expected = [0.5, 1.5, 2.5, 3.5]
    require(beats == expected, f"heartbeat() called at t=0.5, then advancing 0.5 s at a time"
            f" to t=3.5: beats at {beats}, expected {expected}")


@heartbeat.check("no-drift", "after a late wake-up: one beat, then back on the grid",
                 hint="Scheduling each beat one interval after the previous one drifts, and"
                      " replaying missed beats sends a burst; schedule from the start time.")
def _no_drift(fn):
    clock, beats = _clock(), []
    _start_heartbeat(fn, clock, 1.0, beats)
    clock.pump([1, 1, 1])
    clock.advance(2.5)  # as if the reactor thread had been blocked for 2.5 s
    late = [t for t in beats if t > 3]
    require(late == [5.5], f"the clock jumped from t=3 to t=5.5: beats after t=3 at {late},"
            " expected [5.5] (one late beat; the missed ones at 4 and 5 skipped)")
    clock.pump([0.5, 0.5, 0.5])
    expected = [0.0, 1.0, 2.0, 3.0, 5.5, 6.0, 7.0]
    require(beats == expected, f"beats at {beats}, expected {expected}: after the late beat"
            " the next one is back on the grid (6.0), not one interval later (6.5)")


@heartbeat.check("stops", "stop() stops it and leaves nothing scheduled",
                 hint="Return something that stops the repetition when called, not what"
                      " starting it returned.")
def _stops(fn):
    clock, beats = _clock(), []
    stop = _start_heartbeat(fn, clock, 1.0, beats)
    clock.pump([1, 1])
    stop()
    clock.advance(10)
    require(beats == [0.0, 1.0, 2.0], f"stopped at t=2, beats at {beats}, expected [0.0, 1.0, 2.0]")
    require(not clock.getDelayedCalls(), f"after stop() still scheduled at t={_pending(clock)}")


@heartbeat.check("independent", "two heartbeats on one clock are independent",
                 hint="Keep each heartbeat's state in that call of heartbeat(), not in"
                      " something shared between calls.")
def _independent(fn):
    clock, fast, slow = _clock(), [], []
    stop_fast = _start_heartbeat(fn, clock, 1.0, fast)
    _start_heartbeat(fn, clock, 1.5, slow)
    clock.pump([0.5] * 4)
    stop_fast()
    clock.pump([0.5] * 6)
    require(fast == [0.0, 1.0, 2.0], f"a heartbeat every 1 s, stopped at t=2: beats at {fast}")
    require(slow == [0.0, 1.5, 3.0, 4.5], f"a second heartbeat every 1.5 s on the same clock:"
            f" beats at {slow}, expected [0.0, 1.5, 3.0, 4.5]")


# -- 05.3 -------------------------------------------------------------------

with_timeout = exercise("05.3", "call_with_timeout with callFromThread and threading.Event")


def _call(fn, job, timeout=1.0, release=None):
    return run_answer(fn, job, timeout, limit=TIMEOUT, release=release,
                      what=f"call_with_timeout(fn, {timeout:g})")


def _expect_value(fn, job, expected, what):
    outcome = _call(fn, job)
    require(outcome.kind == "returned" and outcome.value == expected,
            f"{what}: call_with_timeout {outcome}, expected it to return {expected!r}")


def _expect_raise(fn, job, exc_type, what):
    outcome = _call(fn, job)
    require(outcome.is_error(exc_type),
            f"{what}: call_with_timeout {outcome}, expected it to raise {exc_type.__name__}")


def _through_crochet() -> bool:
    """Called from fn in the reactor thread: did crochet (helpers.reactor.call, wait_for,
    run_in_reactor) hand fn to the reactor, rather than the answer's own callFromThread?"""
    import sys

    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_name != "runUntilCurrent":
        module = frame.f_globals.get("__name__", "")
        if module.startswith("crochet") or module == _reactor.__name__:
            return True
        frame = frame.f_back
    return False


@with_timeout.check("in-reactor", "returns fn's result, computed in the reactor thread",
                    hint="callFromThread only schedules: the calling thread must wait until the"
                         " reactor thread has run fn and handed the result over.")
def _returns_in_reactor_thread(fn):
    _reactor.start()
    _expect_value(fn, lambda: threading.current_thread().name, "CrochetReactor",
                  "fn = lambda: threading.current_thread().name")
    _expect_value(fn, lambda: [1, 2, 3], [1, 2, 3], "fn = lambda: [1, 2, 3]")
    via = []
    _call(fn, lambda: via.append(_through_crochet()))
    require(via != [True], "call_with_timeout handed fn to the reactor through crochet"
            " (helpers.reactor.call, or crochet's wait_for or run_in_reactor): this exercise"
            " asks you to do that part yourself, with reactor.callFromThread and a"
            " threading.Event")


@with_timeout.check("raises", "raises the exception fn raised",
                    hint="An exception in the reactor thread does not reach the caller by"
                         " itself: catch it there, hand it over, raise it in the caller.")
def _raises_what_fn_raises(fn):
    _reactor.start()
    _expect_raise(fn, lambda: 1 / 0, ZeroDivisionError, "fn = lambda: 1 / 0")


@with_timeout.check("waits-for-deferreds", "waits for a Deferred that fn returns",
                    hint="When fn returns a Deferred, the result is what the Deferred fires"
                         " with, later: set the Event from a callback on it.")
def _waits_for_deferreds(fn):
    from twisted.internet import defer, task

    reactor = _reactor.start()
    _expect_value(fn, lambda: task.deferLater(reactor, 0.05, lambda: "fired"), "fired",
                  "fn returns a Deferred that fires with 'fired' after 0.05 s")
    _expect_raise(fn, lambda: defer.fail(KeyError("missing")), KeyError,
                  "fn returns a Deferred that fails with KeyError")


@with_timeout.check("times-out", "raises TimeoutError after `timeout` and cancels the"
                    " Deferred in the reactor thread",
                    hint="Wait with a timeout; when it runs out, the Deferred still belongs to"
                         " the reactor thread, so ask that thread to cancel it.")
def _times_out_and_cancels(fn):
    from twisted.internet import defer

    _reactor.start()
    made, cancelled_in = [], []
    cancelled = threading.Event()

    def never():
        def canceller(d):
            cancelled_in.append(threading.current_thread().name)
            cancelled.set()

        made.append(defer.Deferred(canceller))
        return made[-1]

    def release():  # fire the Deferred, so an answer without a timeout can return
        if made and not made[0].called:
            _reactor.call(made[0].callback, None)

    outcome = _call(fn, never, 0.2, release=release)
    what = "fn returns a Deferred that never fires, timeout=0.2"
    kind = type(outcome.error)
    if outcome.error is not None and kind.__name__ == "TimeoutError" \
            and not outcome.is_error(TimeoutError):
        fail(f"{what}: call_with_timeout raised {kind.__module__}.{kind.__qualname__}, not"
             " Python's built-in TimeoutError: another class of the same name")
    require(outcome.is_error(TimeoutError),
            f"{what}: call_with_timeout {outcome}, expected it to raise TimeoutError")
    require(outcome.seconds >= 0.15,
            f"{what}: TimeoutError after {outcome.seconds:.2f} s, before the timeout was up")
    if not cancelled.wait(TIMEOUT / 2):
        fail(f"{what}: TimeoutError was raised, but the Deferred was never cancelled")
    require(cancelled_in == ["CrochetReactor"],
            f"{what}: the Deferred was cancelled in thread {cancelled_in[0]!r}, not in the"
            " reactor thread: Deferreds are not thread-safe")
