"""Exercises, their checks, and the report a reader sees.

A chapter's checker module makes an `Exercise` and declares each check beside its code:

    ex = exercise("05.1", "A countdown with callLater")

    @ex.check("counts-down", "say(3), say(2), say(1) at t = 1, 2, 3",
              hint="Count each delay from now; the first call is not immediate.")
    def _counts_down(countdown):
        ...
        require(said == expected, f"say() calls as (time, value): got {said}")

A check fails by raising (`require`, `fail` or any exception). What the reader's code
raised, and every error Twisted logs while a check runs, is kept with the check's result
and shown as the cause: an answer that makes Twisted log an error has not passed.

Before an attempt (every check fails because the answer still raises
NotImplementedError) the report is one line, with no hints. After one, it shows each
failed check with what happened and a hint.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import sys
import threading
import traceback
from dataclasses import dataclass, field

CHECK_TIMEOUT = 5.0  # the longest one check may run

_EXERCISES: dict[str, Exercise] = {}


class CheckFailed(AssertionError):
    """A check's verdict: the answer did not do what the task asks. Any other exception,
    an `assert` in the reader's code included, is the reader's code raising."""


def fail(message: str):
    """Fail the current check, saying what happened."""
    raise CheckFailed(message)


def require(condition, message: str) -> None:
    """Fail the current check with `message` unless `condition` holds (works under -O)."""
    if not condition:
        raise CheckFailed(message)


def describe_raised(exc: BaseException) -> str:
    """`describe_error`, and for an `assert` with no message, where it failed."""
    said = describe_error(exc)
    if isinstance(exc, AssertionError) and not str(exc):
        where = _outside_helpers(exc.__traceback__)
        if where:
            said += f" (an assert in {where})"
    return said


def _outside_helpers(tb) -> str | None:
    """`name, line N` of the innermost frame of `tb` that is not this package's code."""
    import os

    helpers_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    where = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if not os.path.abspath(code.co_filename).startswith(helpers_dir + os.sep):
            where = f"{code.co_name}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return where


def describe_error(exc: BaseException) -> str:
    """``"ValueError: bad"``, or just the type name when the message is empty. An
    exception whose str() itself fails (Twisted's DNSLookupError made from bytes) is told
    by its arguments."""
    try:
        text = str(exc)
    except Exception:
        text = ", ".join(repr(arg) for arg in exc.args)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Interrupted(BaseException):
    """Raised inside the reader's code when a check stops it (a BaseException, so that
    the reader's `except Exception` does not catch it)."""


def interrupt(thread: threading.Thread) -> None:
    """Raise Interrupted in `thread`: CPython delivers it at the thread's next bytecode, so
    a loop that never blocks ends too; a thread blocked in a system call gets it when the
    call returns."""
    if thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(Interrupted))


# -- what one check saw -------------------------------------------------------------


@dataclass
class _Trial:
    """What happened while one check ran: the reader's exceptions and logged errors."""

    raised: list[BaseException] = field(default_factory=list)
    logged: list = field(default_factory=list)  # twisted_log.LoggedError


_lock = threading.Lock()
_trial: _Trial | None = None  # the check running now (checks run one at a time)
_cache: dict | None = None  # observations made during the current `check()` call


def note_raised(exc: BaseException) -> None:
    """Record that the reader's code raised `exc` (called by the toolkit, from any
    thread), so that a stub's NotImplementedError is recognised wherever it surfaced."""
    with _lock:
        if _trial is not None:
            _trial.raised.append(exc)


def observation(fn):
    """Cache ``fn(answer, *args)`` for the rest of one `check()` call.

    Several checks can then read one expensive run of the reader's code (a session
    with a server, say): observe once, check many. An exception is cached too, and
    raised again in every check that asks.
    """

    @functools.wraps(fn)
    def cached(answer, *args):
        key = (fn, id(answer), args)
        store = _cache if _cache is not None else {}
        if key not in store:
            trial = _trial
            before = len(trial.raised) if trial else 0
            try:
                result = (True, fn(answer, *args))
            except Exception as exc:
                result = (False, exc)
            # What the reader's code raised meanwhile, noted again for each later check
            # that reads this observation (so a stub is "not attempted" in all of them).
            store[key] = (*result, trial.raised[before:] if trial else [])
        else:
            for exc in store[key][2]:
                note_raised(exc)
        ok, value, _ = store[key]
        if not ok:
            raise value
        return value

    return cached


# -- exercises and checks ---------------------------------------------------------


@dataclass(frozen=True)
class Check:
    key: str  # stable identifier, used by tests (`report.failed`)
    title: str  # what the reader sees
    hint: str  # shown only when this check fails after an attempt
    run: object  # callable(answer) -> None; raises when the answer is wrong


class Exercise:
    """One exercise: an id ("05.1"), a title, and its checks in order."""

    def __init__(self, exercise_id: str, title: str):
        self.id, self.title = exercise_id, title
        self.checks: list[Check] = []
        self.preparations: list = []  # callables run before the checks, with no time limit

    def prepare(self, fn):
        """Decorator: run fn() before this exercise's checks, outside their time limits
        (one-time work of the checker's own, which the reader's code must not pay for)."""
        self.preparations.append(fn)
        return fn

    def check(self, key: str, title: str, *, hint: str):
        """Decorator: register the function as this exercise's next check."""
        if any(c.key == key for c in self.checks):
            raise ValueError(f"exercise {self.id} already has a check {key!r}")

        def register(fn):
            self.checks.append(Check(key, title, hint, fn))
            return fn

        return register

    def __repr__(self):
        return f"<Exercise {self.id} {self.title!r}: {len(self.checks)} checks>"


def exercise(exercise_id: str, title: str) -> Exercise:
    """Create and register an exercise (called by the chNN modules)."""
    ex = _EXERCISES[exercise_id] = Exercise(exercise_id, title)
    return ex


def get(exercise_id: str) -> Exercise:
    """The registered exercise with this id ("01.2"), loading its chapter's checks."""
    import importlib
    import importlib.util

    module = f"helpers.exercises.ch{exercise_id.split('.')[0]}"
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)
    if exercise_id not in _EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; known: {sorted(_EXERCISES)}")
    return _EXERCISES[exercise_id]


# -- running checks -----------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    check: Check
    error: str | None  # what happened, None when the check passed
    logged: tuple = ()  # errors Twisted logged during the check
    unwritten: bool = False  # the answer raised NotImplementedError: not written yet
    traceback: str = ""  # where an exception came straight through the check, if one did

    @property
    def passed(self) -> bool:
        return self.error is None and not self.logged


def _chain(exc):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _logging_twisted_errors():
    """`logged_errors()` if Twisted is in use, else a context that collects nothing."""
    if "twisted" not in sys.modules:
        return contextlib.nullcontext([])
    from ..twisted_log import logged_errors

    return logged_errors()


def _reactor_round_trip() -> None:
    """Let the reactor thread finish the turn it is in, so an error a callback logs just
    after the check stopped waiting lands in this check, not the next one."""
    from .. import reactor as _reactor

    if _reactor.is_started():
        with contextlib.suppress(Exception):
            _reactor.call(lambda: None, timeout=1.0)


def _run_one(check_: Check, answer, timeout: float) -> Result:
    global _trial
    trial, outcome, where = _Trial(), [], []

    def target():
        try:
            check_.run(answer)
            outcome.append(None)
        except CheckFailed as exc:
            outcome.append(str(exc) or "the check failed without a message")
            trial.raised.extend(e for e in _chain(exc.__cause__))
        except Exception as exc:  # the reader's code raised straight through the check
            outcome.append(f"your code raised {describe_raised(exc)}")
            where.append("".join(traceback.format_exception(exc)))
            trial.raised.extend(_chain(exc))
        except Interrupted:  # the check ran out of time and was stopped
            pass

    with _lock:
        _trial = trial
    try:
        with _logging_twisted_errors() as logged:
            worker = threading.Thread(target=target, name="helpers-check", daemon=True)
            worker.start()
            worker.join(timeout)
            timed_out = worker.is_alive()
            if timed_out:  # stop it, even if the reader's code spins without blocking
                interrupt(worker)
                worker.join(0.1)
            _reactor_round_trip()
            if "twisted" in sys.modules:
                # A Deferred dropped with a failure logs it when it is collected. The young
                # generations hold what this check made and cost next to nothing; `check`
                # makes one full collection before it calls an answer right.
                gc.collect(1)
            trial.logged = list(logged)
    finally:
        with _lock:
            _trial = None
    if timed_out:
        error = f"the check was still waiting after {timeout:g} s (is your code blocked?)"
    else:
        error = outcome[0]
    # An unhandled failure is logged twice (a message, then the error): keep the error.
    logged = tuple([e for e in trial.logged if e.error] or [e for e in trial.logged if e.message])
    unwritten = any(isinstance(e, NotImplementedError) for e in trial.raised) or any(
        (e.error or "").startswith("NotImplementedError") for e in logged
    )
    if error is None and logged:
        error = "Twisted logged an error while this check ran"
    return Result(check_, error, logged, unwritten and error is not None, "".join(where))


LOGGED_LATER = Check(
    "logged-later", "nothing was left for Twisted to log after the checks",
    "A Deferred that can fail needs an errback somewhere: handle its failure, or return it"
    " to code that does.", None)


def _logged_later() -> Result | None:
    """After every check passed: a full collection, for a Deferred whose unhandled failure
    was not garbage yet (30-170 ms in a kernel, so only when it can change the verdict)."""
    if "twisted" not in sys.modules:
        return None
    with _logging_twisted_errors() as logged:
        gc.collect()
    errors = [e for e in logged if e.error]
    if not errors:
        return None
    return Result(LOGGED_LATER, "Twisted logged an error after the checks had finished, when"
                  " a Deferred with an unhandled failure was garbage-collected", tuple(errors))


def check(exercise_id: str, answer, *, timeout: float = CHECK_TIMEOUT) -> Report:
    """Run every check of an exercise against `answer`; return the report."""
    global _cache
    ex = get(exercise_id)
    for prepare in ex.preparations:
        prepare()
    _cache = {}
    try:
        results = [_run_one(c, answer, timeout) for c in ex.checks]
    finally:
        _cache = None
    if all(r.passed for r in results):
        later = _logged_later()
        results += [later] if later else []
    return Report(ex, results, getattr(answer, "__name__", None))


# -- the report -----------------------------------------------------------------------


def _wrap(label: str, text: str, width: int = 92) -> list[str]:
    """`label text` wrapped under an 8-space indent, continuation lines aligned."""
    import textwrap

    first = f"        {label} "
    return textwrap.wrap(text, width, initial_indent=first,
                         subsequent_indent=" " * len(first), break_on_hyphens=False) or [first]


def _logged_line(e) -> str:
    """One line: the error's first line (some carry a whole traceback), and where."""
    where = f" (raised in {e.where})" if e.where else ""
    return f"{e.error.splitlines()[0]}{where}" if e.error else e.message


class Report:
    """The outcome of one `check` call, shown as text in the notebook."""

    def __init__(self, exercise: Exercise, results: list[Result], answer_name: str | None):
        self.exercise, self.results, self.answer_name = exercise, results, answer_name

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> set[str]:
        """The keys of the checks that failed."""
        return {r.check.key for r in self.results if not r.passed}

    def message(self, key: str) -> str | None:
        """What happened in the check `key` (unwrapped), with what Twisted logged; None if
        it passed."""
        result = next(r for r in self.results if r.check.key == key)
        if result.passed:
            return None
        return "; ".join([result.error, *(f"Twisted logged: {_logged_line(e)}"
                                          for e in result.logged)])

    @property
    def attempted(self) -> bool:
        """False while every check fails because the answer is still the stub."""
        return not all(r.unwritten for r in self.results)

    def __bool__(self):
        return self.passed

    def __repr__(self):
        head = f"Exercise {self.exercise.id} · {self.exercise.title}"
        if not self.attempted:
            name = f"`{self.answer_name}`" if self.answer_name else "the answer"
            return (f"{head}: not attempted yet ({name} still raises NotImplementedError)."
                    "\nWrite it in the cell above, run that cell, then run this one again.")
        ok = sum(r.passed for r in self.results)
        lines = [f"{head}: {ok} of {len(self.results)} checks passed"]
        for r in self.results:
            lines.append(f"  {'PASS' if r.passed else 'FAIL'}  {r.check.title}")
            if r.passed:
                continue
            if r.unwritten:
                lines += _wrap("what happened:", "your code still raises NotImplementedError"
                               " here: this part is not written yet")
            else:
                lines += _wrap("what happened:", r.error)
                lines += [line for e in r.logged for line in _wrap("Twisted logged:",
                                                                     _logged_line(e))]
            lines += _wrap("hint:", r.check.hint)
        if self.passed:
            lines.append("  All checks pass. Well done.")
        return "\n".join(lines)
