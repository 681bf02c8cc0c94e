"""Show the errors Twisted logs in the cell that caused them, not later on stderr.

Twisted reports some errors by logging them (an exception raised in a protocol callback,
a Deferred garbage-collected with an unhandled failure, an AMP responder that raised).
crochet forwards every log event to Python's `logging` from its own thread, so such an
error would print to stderr at some later moment, in whatever cell is running then.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .events import EventLog


@dataclass(frozen=True)
class LoggedError:
    """One error event: Twisted's message and, if a failure came with it, its exception
    and the function outside Twisted that raised it (`where`)."""

    message: str
    error: str | None
    where: str | None = field(default=None, compare=False)

    def __str__(self):
        return " -> ".join(part for part in (self.message, self.error) if part)


def _is_error(event) -> bool:
    from twisted.logger import LogLevel

    if "log_failure" in event or event.get("isError"):  # new-style, or legacy log.err()
        return True
    return event.get("log_level") in (LogLevel.error, LogLevel.critical)


def _raised_in(failure) -> str | None:
    """The innermost function of the failure's traceback that is not Twisted's own."""
    import twisted

    twisted_dir = str(Path(twisted.__file__).parent)
    names = [name for name, path, *_ in failure.frames if not path.startswith(twisted_dir)]
    return names[-1] if names else None


def _describe(event) -> LoggedError:
    from twisted.logger import formatEvent

    failure = event.get("log_failure") or event.get("failure")  # new-style or legacy
    message = failure.getErrorMessage() if failure else ""
    error = (f"{failure.type.__name__}: {message}" if message else failure.type.__name__) \
        if failure else None
    lines = (formatEvent(event) or "").splitlines()
    return LoggedError(lines[0] if lines else "", error, _raised_in(failure) if failure else None)


@contextlib.contextmanager
def logged_errors(timeout: float = 2.0):
    """While active, collect Twisted's error events into the yielded list, off stderr.

    On exit, waits (up to `timeout`) until crochet's thread has passed on each of them,
    so none of them can reach stderr after the cell.
    """
    from twisted.logger import globalLogPublisher

    caught: list[LoggedError] = []
    forwarded = EventLog()

    def observer(event):
        if _is_error(event):
            caught.append(_describe(event))

    class Forwarded(logging.Handler):
        def emit(self, record):
            forwarded.record("logging", record.levelname)

    handler, logger = Forwarded(level=logging.ERROR), logging.getLogger("twisted")
    logger.addHandler(handler)
    logger.propagate = False
    globalLogPublisher.addObserver(observer)
    try:
        yield caught
    finally:
        globalLogPublisher.removeObserver(observer)
        try:
            forwarded.wait(len(caught), timeout=timeout)
        finally:
            logger.removeHandler(handler)
            logger.propagate = True


@contextlib.contextmanager
def logged_exceptions():
    """While active, collect the exception of every failure Twisted logs, as objects
    (for code that needs the exception itself, say an AMP BadLocalReturn's cause).

    Only observes: unlike `logged_errors` it changes nothing about where errors go, so it
    can be used inside it.
    """
    from twisted.logger import globalLogPublisher

    logged: list[BaseException] = []

    def observer(event):
        failure = event.get("log_failure") or event.get("failure")
        if failure is not None:
            logged.append(failure.value)

    globalLogPublisher.addObserver(observer)
    try:
        yield logged
    finally:
        globalLogPublisher.removeObserver(observer)
