import threading

import pytest
from twisted.internet import defer, task

from helpers import reactor as r


def test_call_runs_in_the_reactor_thread_and_returns_the_result():
    assert r.call(lambda: threading.current_thread().name) == "CrochetReactor"
    assert r.call(lambda x, y: x + y, 2, y=3) == 5


def test_call_waits_for_a_returned_deferred():
    def later():
        from twisted.internet import reactor

        return task.deferLater(reactor, 0.01, lambda: "fired")

    assert r.call(later) == "fired"


def test_call_raises_what_the_deferred_fails_with():
    with pytest.raises(ZeroDivisionError):
        r.call(lambda: defer.maybeDeferred(lambda: 1 / 0))


def test_call_times_out_with_a_clear_error_and_cancels():
    cancelled = []

    def never():
        return defer.Deferred(lambda d: cancelled.append(True))

    with pytest.raises(TimeoutError, match=r"never did not finish within 0.2 s"):
        r.call(never, timeout=0.2)
    assert r.call(lambda: cancelled) == [True]


def test_start_is_idempotent_and_keeps_one_reactor_thread():
    first = r.start()
    assert r.start() is first
    assert r.is_started()
    names = [t.name for t in threading.enumerate()]
    assert names.count("CrochetReactor") == 1


def test_a_timed_out_call_leaves_nothing_to_be_logged_later():
    import gc

    from twisted.logger import globalLogPublisher

    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        with pytest.raises(TimeoutError):
            r.call(defer.Deferred, timeout=0.05)
        gc.collect()
        r.call(lambda: None)  # let the reactor thread run anything pending
    finally:
        globalLogPublisher.removeObserver(seen.append)
    errors = [e for e in seen if getattr(e.get("log_level"), "name", "") in ("error", "critical")]
    assert errors == []
