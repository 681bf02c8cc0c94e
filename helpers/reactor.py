"""The kernel's one Twisted reactor, run in a background thread by crochet.

The reactor is started on first use, once per process, and never restarted
(Twisted reactors cannot be). Cells never block without a timeout: `call`
runs a function in the reactor thread and waits for its result, or for the
result of the Deferred it returns, for at most `timeout` seconds.
"""

from __future__ import annotations

import contextlib
import sys
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


class ReactorChoiceError(RuntimeError):
    """A reactor was chosen too late, or on a loop it cannot use."""


def installed_reactor() -> str | None:
    """The class name of the reactor installed in this process, or None if none is yet."""
    installed = sys.modules.get("twisted.internet.reactor")
    return None if installed is None else type(installed).__name__


def install_asyncio_reactor(loop=None):
    """Run Twisted on an asyncio loop (asyncioreactor) in the reactor thread; return the loop.

    Must run before anything installs a reactor: a process has one reactor for its whole
    life. `loop` defaults to a new loop; it must not be running (the kernel's own loop is).
    Running it again once the asyncio reactor runs returns the same loop.
    """
    import asyncio

    from twisted.internet import asyncioreactor

    with _lock:
        installed = sys.modules.get("twisted.internet.reactor")
        if isinstance(installed, asyncioreactor.AsyncioSelectorReactor):
            loop = None  # its own: asked for below, in the reactor thread that runs it
        elif installed is not None:
            how = "started by this kernel" if _started else "installed by an import"
            raise ReactorChoiceError(
                f"Twisted's {type(installed).__name__} is already {how}; a process keeps its"
                " first reactor for life. Restart the kernel and run this cell before anything"
                " that uses Twisted.")
        else:
            loop = loop or asyncio.new_event_loop()
            if loop.is_running():
                raise ReactorChoiceError(
                    "that loop is already running (the kernel's own loop is): the reactor"
                    " thread must run a loop of its own; pass asyncio.new_event_loop()")
            asyncioreactor.install(loop)
    start()
    return loop or asyncio_loop()


def asyncio_loop():
    """The asyncio loop that runs the asyncio reactor (it is the running loop of the
    reactor thread)."""
    import asyncio

    return call(asyncio.get_running_loop)


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
