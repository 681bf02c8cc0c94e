"""Exercise checkers: ``check("05.1", answer)`` runs an exercise's checks on the answer.

One toolkit serves every chapter's checker (`helpers/exercises/chNN.py`):
- framework: `exercise`, `Exercise.check` (a check, its title and hint beside its code),
  `require`/`fail`, `observation` (observe once, check many), the report;
- answers: `run_answer` (a call with a deadline), `settle` (a Deferred in the reactor
  thread, with a deadline), `Watch` (a Deferred's outcome), `Outcome`, `show`;
- wire: `Client` (a socket whose reads have deadlines), `Received`, `dead_port`,
  `tcp_pair`, `serving` (the reader's plain-socket handler on a real port).
"""

from __future__ import annotations

from . import legacy
from .answers import Outcome, Watch, require_deferred, run_answer, settle, show
from .framework import Check, Exercise, Report, exercise, fail, observation, require
from .framework import check as _check
from .framework import get as _get

__all__ = [
    "Check", "Exercise", "Outcome", "Report", "Watch", "check", "exercise", "fail", "get",
    "observation", "require", "require_deferred", "run_answer", "settle", "show",
]


def get(exercise_id: str):
    """The exercise registered under this id ("01.2"), loading its chapter's checks."""
    try:
        return _get(exercise_id)
    except KeyError:
        if exercise_id in legacy._EXERCISES:
            return legacy._EXERCISES[exercise_id]
        raise


def check(exercise_id: str, answer, **options):
    """Run every check of an exercise against `answer`; return the report."""
    if isinstance(get(exercise_id), legacy.Exercise):
        return legacy.check(exercise_id, answer, **options)
    return _check(exercise_id, answer, **options)
