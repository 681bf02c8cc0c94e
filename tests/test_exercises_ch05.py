"""Chapter 05 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake."""

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


def test_stub_fails_every_check():
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    for exercise_id in sorted(SOLUTIONS):
        report = check(exercise_id, stub)
        assert not any(r.passed for r in report.results), repr(report)
        assert "NotImplementedError: your code here" in repr(report)


# -- 05.1 -------------------------------------------------------------------


def test_countdown_that_starts_at_once_fails():
    def at_once(clock, n, say):
        d = defer.Deferred()
        for i in range(n):
            clock.callLater(i, say, n - i)
        clock.callLater(n, d.callback, "liftoff")
        return d

    report = check("05.1", at_once)
    assert {"say(3), say(2), say(1) at t = 1, 2, 3",
            "the Deferred fires with 'liftoff' one second after say(1)"} <= report.failed
    assert "say() was called before t=1" in repr(report)


def test_countdown_without_canceller_fails_only_the_cancel_check():
    def no_canceller(clock, n, say):
        d = defer.Deferred()  # cancel() errbacks it, but the calls stay scheduled
        for i in range(n):
            clock.callLater(i + 1, say, n - i)
        clock.callLater(n + 1, lambda: d.called or d.callback("liftoff"))
        return d

    report = check("05.1", no_canceller)
    assert report.failed == {"cancelling the Deferred cancels every pending call"}
    assert "say() was called after cancel()" in repr(report)


def test_countdown_on_the_wrong_clock_fails():
    def wrong_clock(clock, n, say):
        return countdown(task.Clock(), n, say)  # never advanced: as if on another reactor

    report = check("05.1", wrong_clock)
    assert not report.passed
    assert "nothing was scheduled on the clock you were given" in repr(report)


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
    state = {"due": 0.0}

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
    assert report.failed == {"after a late wake-up: one beat, then back on the grid"}


def test_heartbeat_returning_the_deferred_fails():
    def returns_deferred(clock, interval, send):
        loop = task.LoopingCall(send)
        loop.clock = clock
        return loop.start(interval, now=True)

    report = check("05.2", returns_deferred)
    assert "stop() stops it and leaves nothing scheduled" in report.failed
    assert "expected a function that stops it" in repr(report)


def test_heartbeat_with_one_global_loop_fails_independence():
    loops = []

    def global_loop(clock, interval, send):
        loops[:] = [task.LoopingCall(send)]
        loops[0].clock = clock
        loops[0].start(interval, now=True)
        return lambda: loops[0].stop()  # stops whichever loop was started last

    report = check("05.2", global_loop)
    assert report.failed == {"two heartbeats on one clock are independent"}


# -- 05.3 -------------------------------------------------------------------


def test_call_in_the_callers_thread_fails():
    def in_callers_thread(fn, timeout):
        return fn()

    report = check("05.3", in_callers_thread)
    assert "returns fn's result, computed in the reactor thread" in report.failed
    assert "'helpers-check-answer', expected 'CrochetReactor'" in repr(report)


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
    assert {"waits for a Deferred that fn returns",
            "raises TimeoutError after `timeout` and cancels the Deferred"} == report.failed


def test_blocking_call_without_timeout_fails_and_is_released(short_timeout):
    def no_timeout(fn, timeout):
        from twisted.internet import reactor

        return threads.blockingCallFromThread(reactor, fn)

    report = check("05.3", no_timeout)
    assert report.failed == {"raises TimeoutError after `timeout` and cancels the Deferred"}
    assert "did not return within 0.5 s" in repr(report)
    left = [t.name for t in threading.enumerate() if t.name == "helpers-check-answer"]
    assert not left, "the checker did not release the blocked answer"


def test_timeout_without_cancel_fails(short_timeout):
    def no_cancel(fn, timeout):
        from twisted.internet import reactor

        done, box = threading.Event(), {}

        def finished(result):
            box["result"] = result
            done.set()

        reactor.callFromThread(lambda: defer.maybeDeferred(fn).addBoth(finished))
        if not done.wait(timeout):
            raise TimeoutError("gave up waiting")  # but the Deferred is left waiting
        if isinstance(box["result"], Failure):
            box["result"].raiseException()
        return box["result"]

    report = check("05.3", no_cancel)
    assert report.failed == {"raises TimeoutError after `timeout` and cancels the Deferred"}
    assert "never cancelled" in repr(report)
