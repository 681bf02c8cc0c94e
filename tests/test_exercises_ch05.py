"""Chapter 05 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import math
import threading

import pytest
from twisted.internet import defer, task, threads
from twisted.python.failure import Failure

from helpers import check
from helpers.exercises import ch05
from solutions.ch05 import SOLUTIONS, countdown


@pytest.fixture
def short_timeout(monkeypatch):
    """Checks of 05.3 give a blocked answer this long (2 s in the notebook)."""
    monkeypatch.setattr(ch05, "TIMEOUT", 0.5)


def test_the_stub_is_not_attempted_and_shows_no_hint():
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    for exercise_id in sorted(SOLUTIONS):
        report = check(exercise_id, stub)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)


# -- 05.1 -------------------------------------------------------------------


def test_countdown_that_starts_at_once_fails():
    def at_once(clock, n, say):
        d = defer.Deferred()
        for i in range(n):
            clock.callLater(i, say, n - i)
        clock.callLater(n, d.callback, "liftoff")
        return d

    report = check("05.1", at_once)
    assert {"counts-down", "lifts-off"} <= report.failed
    assert report.message("counts-down") == (
        "say() was called at once, at t=0: [(0.0, 3)]")


def test_countdown_without_canceller_fails_only_the_cancel_check():
    def no_canceller(clock, n, say):
        d = defer.Deferred()  # cancel() errbacks it, but the calls stay scheduled
        for i in range(n):
            clock.callLater(i + 1, say, n - i)
        clock.callLater(n + 1, lambda: d.called or d.callback("liftoff"))
        return d

    report = check("05.1", no_canceller)
    assert report.failed == {"cancel-stops"}
    assert report.message("cancel-stops").startswith("say() was called after cancel()")


def test_countdown_that_fires_liftoff_with_the_last_say_fails():
    def early_liftoff(clock, n, say):
        calls = [clock.callLater(i + 1, say, n - i) for i in range(n)]
        d = defer.Deferred(lambda d: [c.cancel() for c in calls if c.active()])
        calls.append(clock.callLater(n, d.callback, "liftoff"))
        return d

    report = check("05.1", early_liftoff)
    assert report.failed == {"lifts-off"}
    assert report.message("lifts-off") == (
        "n=3: at t=3.999 the Deferred fired with 'liftoff', but liftoff is due at t=4")


def test_countdown_with_one_list_for_every_countdown_fails_the_cancel_check():
    calls = []  # module-level in the learner's cell: shared by every countdown

    def shared_calls(clock, n, say):
        calls.extend(clock.callLater(i + 1, say, n - i) for i in range(n))
        d = defer.Deferred(lambda d: [c.cancel() for c in calls if c.active()])
        calls.append(clock.callLater(n + 1, d.callback, "liftoff"))
        return d

    report = check("05.1", shared_calls)
    assert report.failed == {"cancel-stops"}
    assert "cancelling one countdown stopped another" in report.message("cancel-stops")


def test_countdown_that_schedules_each_call_from_the_previous_one_passes():
    def chained(clock, n, say):
        """Right too: each call schedules the next one, one second after it runs."""
        state = {}
        d = defer.Deferred(lambda d: state["next"].cancel())

        def step(k):
            if k == 0:
                d.callback("liftoff")
                return
            say(k)
            state["next"] = clock.callLater(1, step, k - 1)

        state["next"] = clock.callLater(1, step, n)
        return d

    report = check("05.1", chained)
    assert report.passed, repr(report)


def test_countdown_that_leaves_liftoff_scheduled_fails():
    def liftoff_left(clock, n, say):
        calls = [clock.callLater(i + 1, say, n - i) for i in range(n)]
        d = defer.Deferred(lambda d: [c.cancel() for c in calls if c.active()])
        clock.callLater(n + 1, d.callback, "liftoff")  # not in calls: never cancelled
        return d

    report = check("05.1", liftoff_left)
    assert report.failed == {"cancel-stops"}
    assert report.message("cancel-stops") == (
        "after d.cancel(), a call still scheduled on the clock raised AlreadyCalledError:"
        " cancelling must leave nothing of that countdown scheduled")


def test_countdown_whose_canceller_cancels_calls_already_made_fails():
    def cancels_all(clock, n, say):
        calls = [clock.callLater(i + 1, say, n - i) for i in range(n)]
        d = defer.Deferred(lambda d: [c.cancel() for c in calls])  # say(5) has run already
        calls.append(clock.callLater(n + 1, d.callback, "liftoff"))
        return d

    report = check("05.1", cancels_all)
    assert report.failed == {"cancel-stops"}
    assert report.message("cancel-stops") == (
        "d.cancel() at t=2.5, after say(5) and say(4): your code raised AlreadyCalled: Tried to"
        " cancel an already-called event.")


def test_countdown_on_the_wrong_clock_fails():
    def wrong_clock(clock, n, say):
        return countdown(task.Clock(), n, say)  # never advanced: as if on another reactor

    report = check("05.1", wrong_clock)
    assert report.failed == {"counts-down", "lifts-off", "cancel-stops"}
    assert report.message("counts-down") == (
        "nothing was scheduled on the clock passed to countdown"
        " (clock.getDelayedCalls() is empty)")


# -- 05.2 -------------------------------------------------------------------


def chained(clock, interval, send):
    """Wrong: each beat schedules the next one interval after *now*: it drifts."""
    state = {}

    def beat():
        send()
        state["next"] = clock.callLater(interval, beat)

    beat()
    return lambda: state["next"].cancel()


def catching_up(clock, interval, send):
    """Wrong: on the grid, but makes up every missed beat in a burst."""
    state = {"due": clock.seconds()}

    def beat():
        while state["due"] <= clock.seconds():
            send()
            state["due"] += interval
        state["next"] = clock.callLater(state["due"] - clock.seconds(), beat)

    beat()
    return lambda: state["next"].cancel()


@pytest.mark.parametrize("answer", [chained, catching_up], ids=["chained", "catching_up"])
def test_heartbeat_that_drifts_or_bursts_fails_the_drift_check(answer):
    report = check("05.2", answer)
    assert report.failed == {"no-drift"}


def test_heartbeat_whose_first_beat_waits_an_interval_fails():
    def not_now(clock, interval, send):
        loop = task.LoopingCall(send)
        loop.clock = clock
        loop.start(interval, now=False)
        return loop.stop

    report = check("05.2", not_now)
    assert "on-the-grid" in report.failed
    assert report.message("on-the-grid") == (
        "heartbeat() called at t=0.5: beats at [], expected [0.5]")


def test_heartbeat_on_a_grid_from_t0_fails():
    def grid_from_zero(clock, interval, send):
        """Wrong: its grid is every multiple of interval, not every interval from now."""
        state = {}

        def beat():
            send()
            now = clock.seconds()
            state["next"] = clock.callLater((math.floor(now / interval) + 1) * interval - now,
                                            beat)

        beat()
        return lambda: state["next"].cancel()

    report = check("05.2", grid_from_zero)
    assert report.failed == {"on-the-grid"}
    assert report.message("on-the-grid") == (
        "heartbeat() called at t=0.5, then advancing 0.5 s at a time to t=3.5: beats at"
        " [0.5, 1.0, 2.0, 3.0], expected [0.5, 1.5, 2.5, 3.5]")


def test_heartbeat_whose_clock_is_set_after_start_fails():
    started = []

    def clock_too_late(clock, interval, send):
        loop = task.LoopingCall(send)
        loop.start(interval, now=True)  # scheduled on the global reactor
        loop.clock = clock
        started.append(loop)
        return loop.stop

    report = check("05.2", clock_too_late)
    assert report.failed == {"on-the-grid", "no-drift", "stops", "independent"}
    assert report.message("on-the-grid") == (
        "nothing was scheduled on the clock passed to heartbeat"
        " (clock.getDelayedCalls() is empty)")
    assert started and not any(loop.running for loop in started)  # the checker stopped them


def test_heartbeat_returning_the_deferred_fails():
    def returns_deferred(clock, interval, send):
        loop = task.LoopingCall(send)
        loop.clock = clock
        return loop.start(interval, now=True)

    report = check("05.2", returns_deferred)
    assert "stops" in report.failed
    assert "expected a function that stops it" in report.message("stops")


def test_heartbeat_with_one_global_loop_fails_independence():
    loops = []

    def global_loop(clock, interval, send):
        loops[:] = [task.LoopingCall(send)]
        loops[0].clock = clock
        loops[0].start(interval, now=True)
        return lambda: loops[0].stop()  # stops whichever loop was started last

    report = check("05.2", global_loop)
    assert report.failed == {"independent"}


# -- 05.3 -------------------------------------------------------------------


def test_call_in_the_callers_thread_fails():
    def in_callers_thread(fn, timeout):
        return fn()

    report = check("05.3", in_callers_thread)
    assert "in-reactor" in report.failed
    assert report.message("in-reactor") == (
        "fn = lambda: threading.current_thread().name: call_with_timeout returned"
        " 'helpers-check-answer', expected it to return 'CrochetReactor'")


def test_call_that_does_not_wait_for_deferreds_fails():
    def no_deferred_wait(fn, timeout):
        from twisted.internet import reactor

        done, box = threading.Event(), []

        def run():
            try:
                box.append(("ok", fn()))
            except Exception as exc:
                box.append(("raised", exc))
            done.set()

        reactor.callFromThread(run)
        if not done.wait(timeout):
            raise TimeoutError("fn did not finish")
        kind, value = box[0]
        if kind == "raised":
            raise value
        return value  # a Deferred, when fn returned one

    report = check("05.3", no_deferred_wait)
    assert report.failed == {"waits-for-deferreds", "times-out"}


def test_call_that_returns_the_failure_instead_of_raising_fails(short_timeout):
    def returns_failure(fn, timeout):
        from twisted.internet import reactor

        done, box = threading.Event(), []
        reactor.callFromThread(
            lambda: defer.maybeDeferred(fn).addBoth(lambda r: (box.append(r), done.set())))
        if not done.wait(timeout):
            raise TimeoutError("fn did not finish")
        return box[0]  # a Failure is returned, not raised

    report = check("05.3", returns_failure)
    # times-out too: it never cancels the Deferred that did not fire
    assert report.failed == {"raises", "waits-for-deferreds", "times-out"}
    assert report.message("raises").startswith(
        "fn = lambda: 1 / 0: call_with_timeout returned <twisted.python.failure.Failure")


def test_blocking_call_without_timeout_fails_and_is_released(short_timeout):
    def no_timeout(fn, timeout):
        from twisted.internet import reactor

        return threads.blockingCallFromThread(reactor, fn)

    report = check("05.3", no_timeout)
    assert report.failed == {"times-out"}
    assert report.message("times-out") == "call_with_timeout(fn, 0.2) was still running after 0.5 s"
    left = [t.name for t in threading.enumerate() if t.name == "helpers-check-answer"]
    assert not left, "the checker did not release the blocked answer"


def waits_then(cancel):
    """An answer that waits correctly, then cancels the Deferred with `cancel(d)`."""

    def answer(fn, timeout):
        from twisted.internet import reactor

        done, box = threading.Event(), {}

        def run():
            box["d"] = defer.maybeDeferred(fn)
            box["d"].addBoth(lambda result: (box.setdefault("result", result), done.set()))

        reactor.callFromThread(run)
        if not done.wait(timeout):
            cancel(box["d"])
            raise TimeoutError("gave up waiting")
        if isinstance(box["result"], Failure):
            box["result"].raiseException()
        return box["result"]

    return answer


def test_timeout_without_cancel_fails(short_timeout):
    report = check("05.3", waits_then(lambda d: None))
    assert report.failed == {"times-out"}
    assert report.message("times-out") == (
        "fn returns a Deferred that never fires, timeout=0.2: TimeoutError was raised, but"
        " the Deferred was never cancelled")


def test_timeout_with_twisteds_own_timeout_error_fails():
    def add_timeout(fn, timeout):
        """Wrong: Deferred.addTimeout fails with twisted.internet.defer.TimeoutError."""
        from twisted.internet import reactor

        done, box = threading.Event(), {}

        def run():
            d = defer.maybeDeferred(fn).addTimeout(timeout, reactor)
            d.addBoth(lambda result: (box.setdefault("result", result), done.set()))

        reactor.callFromThread(run)
        done.wait(timeout + 1)
        if isinstance(box["result"], Failure):
            box["result"].raiseException()
        return box["result"]

    report = check("05.3", add_timeout)
    assert report.failed == {"times-out"}
    assert report.message("times-out") == (
        "fn returns a Deferred that never fires, timeout=0.2: call_with_timeout raised"
        " twisted.internet.defer.TimeoutError, not Python's built-in TimeoutError: another"
        " class of the same name")


def test_cancelling_from_the_calling_thread_fails():
    report = check("05.3", waits_then(lambda d: d.cancel()))
    assert report.failed == {"times-out"}
    assert report.message("times-out") == (
        "fn returns a Deferred that never fires, timeout=0.2: the Deferred was cancelled in"
        " thread 'helpers-check-answer', not in the reactor thread: Deferreds are not"
        " thread-safe")


def test_handing_the_work_to_crochet_fails():
    from helpers.reactor import call

    def shortcut(fn, timeout):  # what the exercise asks the reader to build, borrowed
        return call(fn, timeout=timeout)

    report = check("05.3", shortcut)
    assert report.failed == {"in-reactor"}
    assert report.message("in-reactor") == (
        "call_with_timeout handed fn to the reactor through crochet (helpers.reactor.call, or"
        " crochet's wait_for or run_in_reactor): this exercise asks you to do that part"
        " yourself, with reactor.callFromThread and a threading.Event")
