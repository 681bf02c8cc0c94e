"""Checks for chapter 05 (the Twisted reactor).

05.1 countdown(clock, n, say) -> Deferred   -- callLater on the clock it is given
05.2 heartbeat(clock, interval, send) -> stop  -- a beat per interval, no drift
05.3 call_with_timeout(fn, timeout)         -- run fn in the reactor thread, wait

05.1 and 05.2 run against a `twisted.internet.task.Clock`, so they take no real
time and their timelines are exact. 05.3 runs against the notebook's real reactor
thread; every wait there has a timeout, and an answer that blocks is released.
"""

from __future__ import annotations

import threading

from .. import reactor as _reactor
from . import Check, exercise, run_answer

TIMEOUT = 2.0  # the longest any check here waits for the reader's code


def _clock():
    from twisted.internet import task

    return task.Clock()


def _pending(clock):
    return sorted(round(c.getTime(), 6) for c in clock.getDelayedCalls())


def _watch(d):
    """Record what a Deferred fires with; `_state(seen)` reads it."""
    seen = []
    d.addBoth(seen.append)  # also consumes a failure, so it is never logged as unhandled
    return seen


def _state(seen):
    """('pending',), ('result', value) or ('failure', exception type name)."""
    from twisted.python.failure import Failure

    if not seen:
        return ("pending",)
    if isinstance(seen[0], Failure):
        return ("failure", seen[0].type.__name__)
    return ("result", seen[0])


# -- 05.1 -------------------------------------------------------------------


def _start_countdown(fn, n):
    from twisted.internet import defer

    clock, said = _clock(), []
    d = fn(clock, n, lambda value: said.append((clock.seconds(), value)))
    assert isinstance(d, defer.Deferred), (
        f"countdown returned {type(d).__name__}, expected a Deferred"
    )
    assert said == [], f"at t=0 (before any time passed) say() was already called: {said}"
    assert clock.getDelayedCalls(), (
        "nothing was scheduled on the clock you were given (clock.getDelayedCalls() is empty)"
    )
    return clock, said, _watch(d), d


def _counts_down(fn):
    clock, said, _, _ = _start_countdown(fn, 3)
    clock.advance(0.999)
    assert said == [], f"say() was called before t=1: {said}"
    clock.pump([0.001] + [1] * 2)
    expected = [(1.0, 3), (2.0, 2), (3.0, 1)]
    assert said == expected, f"say() calls as (time, value): got {said}, expected {expected}"


def _lifts_off(fn):
    for n in (3, 1):
        clock, said, seen, _ = _start_countdown(fn, n)
        clock.advance(n + 0.999)
        state = _state(seen)
        assert state == ("pending",), f"n={n}: at t={n + 0.999:g} the Deferred was {state}"
        clock.advance(0.001)
        state = _state(seen)
        assert state == ("result", "liftoff"), (
            f"n={n}: at t={n + 1} the Deferred was {state}, expected ('result', 'liftoff')"
        )
        assert clock.getDelayedCalls() == [], (
            f"n={n}: still scheduled after liftoff: {_pending(clock)}"
        )


def _cancel_stops(fn):
    clock, said, seen, d = _start_countdown(fn, 5)
    clock.advance(2.5)
    d.cancel()
    state = _state(seen)
    assert state == ("failure", "CancelledError"), (
        f"after d.cancel() the Deferred was {state}, expected ('failure', 'CancelledError')"
    )
    before = list(said)
    clock.advance(10)
    assert said == before, f"say() was called after cancel(): {said[len(before):]}"
    assert clock.getDelayedCalls() == [], (
        f"cancel() left calls scheduled at t={_pending(clock)}"
    )


exercise(
    "05.1",
    "A countdown with callLater",
    Check(
        "say(3), say(2), say(1) at t = 1, 2, 3",
        _counts_down,
        "clock.callLater(delay, say, value): the first one second from now, not at once",
    ),
    Check(
        "the Deferred fires with 'liftoff' one second after say(1)",
        _lifts_off,
        "create a Deferred, and schedule d.callback('liftoff') at n + 1 seconds",
    ),
    Check(
        "cancelling the Deferred cancels every pending call",
        _cancel_stops,
        "Deferred(canceller): the canceller gets the Deferred; cancel each DelayedCall that"
        " is still .active()",
    ),
)

# -- 05.2 -------------------------------------------------------------------


def _start_heartbeat(fn, clock, interval, beats):
    stop = fn(clock, interval, lambda: beats.append(round(clock.seconds(), 6)))
    assert callable(stop), f"heartbeat returned {stop!r}, expected a function that stops it"
    return stop


def _on_the_grid(fn):
    clock, beats = _clock(), []
    _start_heartbeat(fn, clock, 1.0, beats)
    assert beats == [0.0], f"right after heartbeat(): beats at {beats}, expected [0.0] (at once)"
    clock.pump([0.5] * 6)
    assert beats == [0.0, 1.0, 2.0, 3.0], (
        f"advancing 0.5 s at a time to t=3: beats at {beats}, expected [0.0, 1.0, 2.0, 3.0]"
    )


def _no_drift(fn):
    clock, beats = _clock(), []
    _start_heartbeat(fn, clock, 1.0, beats)
    clock.pump([1, 1, 1])
    clock.advance(2.5)  # as if the reactor thread had been blocked for 2.5 s
    late = [t for t in beats if t > 3]
    assert late == [5.5], (
        f"the clock jumped from t=3 to t=5.5: beats after t=3 at {late}, expected [5.5]"
        " (one late beat; the missed ones at 4 and 5 skipped, not sent in a burst)"
    )
    clock.pump([0.5, 0.5, 0.5])
    expected = [0.0, 1.0, 2.0, 3.0, 5.5, 6.0, 7.0]
    assert beats == expected, (
        f"beats at {beats}, expected {expected}: after a late beat the next one is back on"
        " the grid (6.0), not one interval after the late one (6.5)"
    )


def _stops(fn):
    clock, beats = _clock(), []
    stop = _start_heartbeat(fn, clock, 1.0, beats)
    clock.pump([1, 1])
    stop()
    clock.advance(10)
    assert beats == [0.0, 1.0, 2.0], f"stopped at t=2, beats at {beats}, expected [0.0, 1.0, 2.0]"
    assert clock.getDelayedCalls() == [], f"after stop() still scheduled: {_pending(clock)}"


def _independent(fn):
    clock, fast, slow = _clock(), [], []
    stop_fast = _start_heartbeat(fn, clock, 1.0, fast)
    _start_heartbeat(fn, clock, 1.5, slow)
    clock.pump([0.5] * 4)
    stop_fast()
    clock.pump([0.5] * 6)
    assert fast == [0.0, 1.0, 2.0], f"heartbeat every 1 s, stopped at t=2: beats at {fast}"
    assert slow == [0.0, 1.5, 3.0, 4.5], (
        f"a second heartbeat every 1.5 s on the same clock: beats at {slow},"
        " expected [0.0, 1.5, 3.0, 4.5]"
    )


exercise(
    "05.2",
    "A heartbeat that does not drift",
    Check(
        "a beat at once, then one per interval",
        _on_the_grid,
        "task.LoopingCall(send) with loop.clock = clock; loop.start(interval, now=True)",
    ),
    Check(
        "after a late wake-up: one beat, then back on the grid",
        _no_drift,
        "a chain of callLater(interval) drifts and a catch-up loop bursts; LoopingCall"
        " schedules from its start time and skips missed intervals",
    ),
    Check(
        "stop() stops it and leaves nothing scheduled",
        _stops,
        "return loop.stop (the bound method), not the Deferred that loop.start() returns",
    ),
    Check(
        "two heartbeats on one clock are independent",
        _independent,
        "keep each heartbeat's state in its own LoopingCall, not in a global",
    ),
)

# -- 05.3 -------------------------------------------------------------------


def _run_answer(fn, job, timeout, release=None):
    """Run the answer fn(job, timeout): ('ok', value, seconds) or ('raised', exc, seconds)."""
    return run_answer(fn, job, timeout, limit=TIMEOUT, release=release,
                      what=f"call_with_timeout(fn, {timeout:g})")


def _expect_value(fn, job, expected, what):
    kind, value, _ = _run_answer(fn, job, 1.0)
    if kind == "raised":
        raise AssertionError(f"{what}: raised {type(value).__name__}: {value}") from None
    assert value == expected, f"{what}: returned {value!r}, expected {expected!r}"


def _expect_raise(fn, job, exc_type, what):
    kind, value, _ = _run_answer(fn, job, 1.0)
    if kind == "ok":
        raise AssertionError(f"{what}: returned {value!r}, expected {exc_type.__name__}")
    assert isinstance(value, exc_type), (
        f"{what}: raised {type(value).__name__}: {value}, expected {exc_type.__name__}"
    )


def _returns_in_reactor_thread(fn):
    _reactor.start()
    _expect_value(
        fn,
        lambda: threading.current_thread().name,
        "CrochetReactor",
        "fn = lambda: threading.current_thread().name",
    )
    _expect_value(fn, lambda: [1, 2, 3], [1, 2, 3], "fn = lambda: [1, 2, 3]")


def _raises_what_fn_raises(fn):
    _reactor.start()
    _expect_raise(fn, lambda: 1 / 0, ZeroDivisionError, "fn = lambda: 1 / 0")


def _waits_for_deferreds(fn):
    from twisted.internet import defer, task

    reactor = _reactor.start()
    _expect_value(
        fn,
        lambda: task.deferLater(reactor, 0.05, lambda: "fired"),
        "fired",
        "fn returns a Deferred that fires with 'fired' after 0.05 s",
    )
    _expect_raise(
        fn,
        lambda: defer.fail(KeyError("missing")),
        KeyError,
        "fn returns a Deferred that fails with KeyError",
    )


def _times_out_and_cancels(fn):
    from twisted.internet import defer

    _reactor.start()
    made, cancelled = [], threading.Event()

    def never():
        d = defer.Deferred(lambda d: cancelled.set())
        made.append(d)
        return d

    def release():  # fire the Deferred, so an answer without a timeout can return
        if made and not made[0].called:
            _reactor.call(made[0].callback, None)

    kind, value, seconds = _run_answer(fn, never, 0.2, release=release)
    if kind == "ok":
        raise AssertionError(
            f"fn returns a Deferred that never fires: returned {value!r}, expected TimeoutError"
        )
    assert isinstance(value, TimeoutError), (
        f"fn returns a Deferred that never fires: raised {type(value).__name__}: {value},"
        " expected TimeoutError"
    )
    assert seconds >= 0.15, f"TimeoutError after {seconds:.2f} s, but the timeout was 0.2 s"
    assert cancelled.wait(TIMEOUT / 2), (
        "TimeoutError was raised, but the Deferred was never cancelled"
    )


exercise(
    "05.3",
    "call_with_timeout with callFromThread and threading.Event",
    Check(
        "returns fn's result, computed in the reactor thread",
        _returns_in_reactor_thread,
        "reactor.callFromThread(run); run() stores fn()'s result and sets a threading.Event",
    ),
    Check(
        "raises the exception fn raised",
        _raises_what_fn_raises,
        "defer.maybeDeferred(fn) turns an exception into a failed Deferred; raise"
        " failure.value in the caller",
    ),
    Check(
        "waits for a Deferred that fn returns",
        _waits_for_deferreds,
        "d.addBoth(store_and_set): the Event is set when the Deferred fires, not when fn returns",
    ),
    Check(
        "raises TimeoutError after `timeout` and cancels the Deferred",
        _times_out_and_cancels,
        "if not event.wait(timeout): reactor.callFromThread(d.cancel), then raise TimeoutError",
    ),
)
