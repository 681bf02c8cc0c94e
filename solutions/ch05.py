"""Reference solutions for chapter 05 (the Twisted reactor).

Run through the chapter's checkers by tests/test_exercises_ch05.py:
``check("05.1", SOLUTIONS["05.1"]).passed`` is True.
"""

from __future__ import annotations

import threading

from twisted.internet import defer, task
from twisted.python.failure import Failure

# -- 05.1 -------------------------------------------------------------------


def countdown(clock, n, say):
    """Call say(n), say(n - 1), ..., say(1) one second apart, starting one second
    from now; the returned Deferred fires with "liftoff" one second after say(1).

    Every call is scheduled up front on `clock` (the reactor, or a task.Clock in a
    test). Cancelling the Deferred cancels the calls that have not run yet.
    """
    calls = [clock.callLater(i + 1, say, n - i) for i in range(n)]

    def cancel(d):
        for delayed in calls:
            if delayed.active():
                delayed.cancel()

    done = defer.Deferred(cancel)
    calls.append(clock.callLater(n + 1, done.callback, "liftoff"))
    return done


# -- 05.2 -------------------------------------------------------------------


def heartbeat(clock, interval, send):
    """Call send() now and then every `interval` seconds on `clock`; return stop().

    LoopingCall schedules each run from the time the loop started, so a late run
    (a blocked reactor, a jump of the clock) does not shift the later ones, and
    runs that were missed are skipped rather than made up in a burst.
    """
    loop = task.LoopingCall(send)
    loop.clock = clock
    loop.start(interval, now=True)
    return loop.stop


# -- 05.3 -------------------------------------------------------------------


def call_with_timeout(fn, timeout):
    """Run fn() in the reactor thread; return its result, or the result of the
    Deferred it returns. Raise what fn raised (or the Deferred failed with), or
    TimeoutError after `timeout` seconds, after cancelling the Deferred.

    What crochet's run_in_reactor and EventualResult.wait(timeout) do, by hand.
    """
    from twisted.internet import reactor

    done = threading.Event()
    box = {}  # written in the reactor thread before done.set(), read after done.wait()

    def finished(result):
        box["result"] = result
        done.set()

    def run():  # in the reactor thread
        box["deferred"] = d = defer.maybeDeferred(fn)
        d.addBoth(finished)

    reactor.callFromThread(run)
    if not done.wait(timeout):
        # The Deferred exists by now unless the reactor is badly blocked; cancel it
        # in the reactor thread, which is where Deferreds may be touched.
        reactor.callFromThread(lambda: box["deferred"].cancel() if "deferred" in box else None)
        name = getattr(fn, "__qualname__", repr(fn))
        raise TimeoutError(f"{name} did not finish within {timeout:g} s")
    result = box["result"]
    if isinstance(result, Failure):
        result.raiseException()
    return result


SOLUTIONS = {
    "05.1": countdown,
    "05.2": heartbeat,
    "05.3": call_with_timeout,
}
