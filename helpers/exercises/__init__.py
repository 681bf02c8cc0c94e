"""Exercise checkers: ``check("05.1", answer)`` runs an exercise's checks on the answer.

One toolkit serves every chapter's checker (`helpers/exercises/chNN.py`):
- framework: `exercise`, `Exercise.check` (a check, its title and hint beside its code),
  `require`/`fail` (they raise `CheckFailed`, a check's verdict), `observation` (observe
  once, check many), the report;
- answers: `run_answer` (a call with a deadline), `Running` (the reader's server in a
  thread while a check talks to it), `settle` (a Deferred in the reactor
  thread, with a deadline), `Watch` (a Deferred's outcome), `Outcome`, `show`,
  `resource_warnings` (what was left for the garbage collector to close);
- wire: `Client` (a socket whose reads have deadlines), `Received`, `dead_port`,
  `tcp_pair`, `serving` (the reader's plain-socket handler on a real port);
- paced: `Pieces` and `CountingSocket` (a recv() loop fed one piece per call, counted).
"""

from __future__ import annotations

from .answers import Outcome, Watch, require_deferred, run_answer, settle, show
from .framework import (
    Check,
    CheckFailed,
    Exercise,
    Report,
    check,
    exercise,
    fail,
    get,
    observation,
    require,
)

__all__ = [
    "Check", "CheckFailed", "Exercise", "Outcome", "Report", "Watch", "check", "exercise",
    "fail", "get", "observation", "require", "require_deferred", "run_answer", "settle", "show",
]
