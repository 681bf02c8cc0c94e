"""The first checker API, kept only until every chapter has moved to the framework.

Exercise checkers: ``check("01.2", answer)`` runs an exercise's named checks.

Each chapter's checks live in ``helpers/exercises/chNN.py`` and register
themselves with `exercise`. A check is a function of the reader's answer that
raises AssertionError (or anything else) when the answer is wrong; the report
shows a pass/fail line per check, and a hint under each failure.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import time
from dataclasses import dataclass

_EXERCISES: dict[str, Exercise] = {}


@dataclass(frozen=True)
class Check:
    name: str
    run: object  # callable(answer) -> None, raises when the answer is wrong
    hint: str


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Result:
    check: Check
    error: str | None  # None when the check passed

    @property
    def passed(self) -> bool:
        return self.error is None


class Report:
    """The outcome of one `check` call; shows one line per check."""

    def __init__(self, exercise: Exercise, results: list[Result]):
        self.exercise, self.results = exercise, results

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> set[str]:
        """The names of the checks that failed."""
        return {r.check.name for r in self.results if not r.passed}

    def __bool__(self):
        return self.passed

    def __repr__(self):
        ok = sum(r.passed for r in self.results)
        lines = [f"Exercise {self.exercise.id} ({self.exercise.title}): "
                 f"{ok} of {len(self.results)} checks passed"]
        for r in self.results:
            lines.append(f"  {'PASS' if r.passed else 'FAIL'}  {r.check.name}")
            if not r.passed:
                lines.append(f"        got:  {r.error}")
                lines.append(f"        hint: {r.check.hint}")
        if self.passed:
            lines.append("  All checks pass. Well done.")
        return "\n".join(lines)


def exercise(exercise_id: str, title: str, *checks: Check) -> Exercise:
    """Register an exercise and its checks (called by the chNN modules)."""
    ex = Exercise(exercise_id, title, checks)
    _EXERCISES[exercise_id] = ex
    return ex


def get(exercise_id: str) -> Exercise:
    """The registered exercise with this id ("01.2"), loading its chapter's checks."""
    module = f"helpers.exercises.ch{exercise_id.split('.')[0]}"
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)
    if exercise_id not in _EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; known: {sorted(_EXERCISES)}")
    return _EXERCISES[exercise_id]


def run_answer(fn, *args, limit: float = 1.0, release=None, what: str = "your function"):
    """Run the reader's ``fn(*args)`` in a thread for at most `limit` seconds.

    Returns ``("ok", value, seconds)`` or ``("raised", exception, seconds)``. If fn is
    still running after `limit`, calls ``release()`` (which unblocks it: closes the socket
    it waits on, fires the event it waits for) and fails the check saying so.
    """
    outcome = []

    def target():
        start = time.monotonic()
        try:
            outcome.append(("ok", fn(*args), time.monotonic() - start))
        except BaseException as exc:  # reported by the check, never printed
            outcome.append(("raised", exc, time.monotonic() - start))

    worker = threading.Thread(target=target, name="helpers-check-answer", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        if release is not None:
            release()
            worker.join(limit)
        raise AssertionError(f"{what} did not return within {limit:g} s")
    return outcome[0]


def _run_one(check_: Check, answer, timeout: float) -> Result:
    outcome: list[str | None] = []

    def target():
        try:
            check_.run(answer)
            outcome.append(None)
        except AssertionError as exc:
            outcome.append(str(exc) or "assertion failed")
        except Exception as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=target, name="helpers-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return Result(check_, f"did not finish within {timeout:g} s")
    return Result(check_, outcome[0])


def check(exercise_id: str, answer, *, timeout: float = 5.0) -> Report:
    """Run every check of an exercise against `answer`; return the report."""
    ex = get(exercise_id)
    return Report(ex, [_run_one(c, answer, timeout) for c in ex.checks])
