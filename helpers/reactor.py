"""The kernel's one Twisted reactor, run in a background thread by crochet.

The reactor is started on first use, once per process, and never restarted
(Twisted reactors cannot be). Cells never block without a timeout: `call`
runs a function in the reactor thread and waits for its result, or for the
result of the Deferred it returns, for at most `timeout` seconds.
"""

from __future__ import annotations

import contextlib
import threading

DEFAULT_TIMEOUT = 5.0

_started = False
_lock = threading.Lock()


def start():
    """Start the reactor thread if it is not running yet; return the reactor."""
    global _started
    with _lock:
        if not _started:
            import crochet

            crochet.setup()
            _started = True
    from twisted.internet import reactor

    return reactor


def is_started() -> bool:
    """True once `start` has run in this process."""
    return _started


def call(fn, *args, timeout: float = DEFAULT_TIMEOUT, **kwargs):
    """Run ``fn(*args, **kwargs)`` in the reactor thread and return its result.

    If fn returns a Deferred, wait for it to fire. Raises TimeoutError, naming
    fn, if nothing arrives within `timeout` seconds; the Deferred is cancelled.
    """
    start()
    import crochet

    eventual = crochet.run_in_reactor(fn)(*args, **kwargs)
    try:
        return eventual.wait(timeout)
    except crochet.TimeoutError:
        eventual.cancel()
        # Collect the CancelledError: a result nobody reads is logged by crochet
        # later, from its own thread, into whatever cell happens to be running.
        with contextlib.suppress(Exception):
            eventual.wait(1.0)
        name = getattr(fn, "__qualname__", repr(fn))
        raise TimeoutError(f"{name} did not finish within {timeout:g} s") from None
