"""Running the reader's code with a deadline, and saying what it did.

Every way a check runs the reader's code ends in an `Outcome`, which describes itself
in one vocabulary: "returned 3", "raised ValueError: bad", "fired with 'x'", "failed
with ConnectionRefusedError: ...", "had not fired after 2 s".
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import warnings
from dataclasses import dataclass

from .framework import (
    CheckFailed,
    Interrupted,
    describe_error,
    describe_raised,
    fail,
    interrupt,
    note_raised,
)


def show(value, limit: int = 80) -> str:
    """repr(value), shortened in the middle when long (bytes and str say their length)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value):,} {'bytes' if isinstance(value, bytes) else 'chars'})" \
        if isinstance(value, (bytes, str)) else ""
    return f"{text[: limit // 2]}...{text[-limit // 4:]}{size}"


@dataclass(frozen=True)
class Outcome:
    """What a piece of the reader's code did.

    kind: "returned" or "raised" (a call), "fired", "failed" or "pending" (a Deferred).
    """

    kind: str
    value: object = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind in ("returned", "fired")

    @property
    def error(self) -> BaseException | None:
        return self.value if self.kind in ("raised", "failed") else None

    def is_error(self, exc_type) -> bool:
        """True if it raised or failed with an instance of `exc_type`."""
        return isinstance(self.error, exc_type)

    def __str__(self):
        if self.kind == "returned":
            return f"returned {show(self.value)}"
        if self.kind == "fired":
            return f"fired with {show(self.value)}"
        if self.kind in ("raised", "failed"):
            verb = "raised" if self.kind == "raised" else "failed with"
            return f"{verb} {describe_error(self.value)}"
        if self.kind == "pending":
            return f"had not fired after {self.seconds:g} s" if self.seconds else "had not fired"
        return f"{self.kind} {show(self.value)}"


@contextlib.contextmanager
def reader_code(what: str):
    """Around a direct call of the reader's code (a protocol fed on a StringTransport): an
    exception it raises fails the check, saying what was being done ("alice sent '/msg bob':
    your code raised ValueError: ..."), with the exception as the cause."""
    try:
        yield
    except CheckFailed:
        raise
    except Exception as exc:
        raise CheckFailed(f"{what}: your code raised {describe_raised(exc)}") from exc


class Running:
    """The reader's ``fn(*args)`` in a daemon thread (a server that runs while a check
    talks to it); what it raised is noted for the report and kept in `outcome`."""

    def __init__(self, name: str, fn, *args):
        self.name, self.outcome = name, None
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fn, *args),
                                       name="helpers-check-answer", daemon=True)
        self.thread.start()

    def _run(self, fn, *args):
        start = time.monotonic()
        try:
            try:
                self.outcome = Outcome("returned", fn(*args), time.monotonic() - start)
            except BaseException as exc:  # reported by the check, never printed
                note_raised(exc)
                self.outcome = Outcome("raised", exc, time.monotonic() - start)
        except Interrupted:  # interrupt() came just as fn ended: nothing to report
            pass
        finally:
            self.finished.set()

    @property
    def error(self) -> BaseException | None:
        return self.outcome.error if self.outcome else None

    def stopped(self) -> bool:
        return self.finished.is_set()

    def interrupt(self, wait: float) -> bool:
        """Raise Interrupted in the thread, so that a loop that never blocks (recv()
        returning b"" for ever) ends too (CPython delivers it at the thread's next
        bytecode; a thread blocked in a system call gets it when the call returns).
        True if the thread has finished within `wait` seconds."""
        if not self.finished.is_set():
            interrupt(self.thread)
        return self.finished.wait(wait)

    def why(self) -> str:
        """"" while it runs; else "; NAME raised X" or "; NAME had returned"."""
        if not self.finished.is_set():
            return ""
        if self.error is not None:
            return f"; {self.name} raised {describe_error(self.error)}"
        return f"; {self.name} had returned"


def run_answer(fn, *args, limit: float = 1.0, release=None, what: str = "your function"):
    """Run the reader's ``fn(*args)`` in a thread for at most `limit` seconds: an Outcome.

    If fn is still running after `limit`, the check fails, saying so, and fn is stopped:
    ``release()`` unblocks it (closes the socket it waits on, fires the event it waits
    for), and if it still runs, Interrupted is raised in its thread. No answer is left
    running behind a check, not even one spinning in a loop.
    """
    running = Running(what, fn, *args)
    if not running.finished.wait(limit):
        if release is not None:
            release()
        if not running.finished.wait(min(limit, 0.1)):
            running.interrupt(limit)
        fail(f"{what} was still running after {limit:g} s")
    return running.outcome


class Watch:
    """What a Deferred fires with, read at any time (`.outcome`).

    Adds a callback that keeps the result and returns None, so a failure is consumed
    (never logged as unhandled) and later callbacks of that Deferred see None.
    """

    def __init__(self, d):
        self._seen: list = []
        d.addBoth(self._seen.append)

    @property
    def fired(self) -> bool:
        return bool(self._seen)

    @property
    def outcome(self) -> Outcome:
        from twisted.python.failure import Failure

        if not self._seen:
            return Outcome("pending")
        result = self._seen[0]
        if isinstance(result, Failure):
            return Outcome("failed", result.value)
        return Outcome("fired", result)


def require_deferred(value, what: str):
    """`value` if it is a Deferred; else fail, naming what it was."""
    from twisted.internet.defer import Deferred

    if not isinstance(value, Deferred):
        fail(f"{what} returned {show(value)} ({type(value).__name__}), expected a Deferred")
    return value


SETTLE_GRACE = 3.0  # how long settle waits beyond its limit for a cancelled Deferred


def settle(make, *, limit: float = 2.0, what: str = "your code") -> Outcome:
    """Run ``make()`` in the reactor thread and wait for what it returns.

    A Deferred is waited for at most `limit` seconds (inside the reactor, with
    addTimeout, so it is cancelled, not left behind): "fired", "failed" or "pending"
    ("pending" too if its cancellation does not fire it within SETTLE_GRACE, as a
    Deferred.fromFuture of a task on a loop that nothing runs). Anything else is
    "returned"; an exception from make() is "raised".
    """
    from twisted.internet import defer, reactor

    from .. import reactor as _reactor

    timed_out = object()

    def run():
        start = reactor.seconds()
        try:
            result = make()
        except Exception as exc:  # the reader's code raised
            note_raised(exc)
            return Outcome("raised", exc)
        if not isinstance(result, defer.Deferred):
            return Outcome("returned", result)

        def settled(value):
            from twisted.python.failure import Failure

            if value is timed_out:
                return Outcome("pending", seconds=limit)
            if isinstance(value, Failure):
                return Outcome("failed", value.value, reactor.seconds() - start)
            return Outcome("fired", value, reactor.seconds() - start)

        result.addTimeout(limit, reactor, onTimeoutCancel=lambda value, timeout: timed_out)
        return result.addBoth(settled)

    _reactor.start()
    try:
        return _reactor.call(run, timeout=limit + SETTLE_GRACE)
    except TimeoutError:  # cancelled at `limit`, and its canceller left it waiting still
        return Outcome("pending", seconds=limit + SETTLE_GRACE)


@contextlib.contextmanager
def resource_warnings(about: str = ""):
    """The ResourceWarnings ("unclosed <socket.socket ...>", "unclosed file ...") of what
    was left for the garbage collector to close while the block ran, as messages that
    contain `about`. The list is filled when the block ends (after a collection)."""
    gc.collect()  # what was garbage before does not count
    left: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield left
        gc.collect()
    left += [str(w.message) for w in caught
             if issubclass(w.category, ResourceWarning) and about in str(w.message)]
