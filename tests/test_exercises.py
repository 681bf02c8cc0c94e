"""The exercise checker itself, and every reference solution through it."""

import importlib
import json
import re
import time
from pathlib import Path

import pytest

from helpers import check
from helpers.exercises import Check, exercise, get

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_MODULES = sorted(p.stem for p in (ROOT / "solutions").glob("ch[0-9][0-9].py"))


# (raise, not assert: pytest rewrites asserts in test modules, not in helpers/)
def _must_be_positive(answer):
    if not answer > 0:
        raise AssertionError(f"expected a positive number, got {answer!r}")


def _must_be_even(answer):
    if answer % 2:
        raise AssertionError(f"{answer} is odd")


exercise(
    "99.9", "a test exercise",
    Check("positive", _must_be_positive, "Numbers above zero."),
    Check("even", _must_be_even, "Try 2."),
)


def test_a_right_answer_passes_every_check():
    report = check("99.9", 4)
    assert report.passed and bool(report)
    assert repr(report) == (
        "Exercise 99.9 (a test exercise): 2 of 2 checks passed\n"
        "  PASS  positive\n"
        "  PASS  even\n"
        "  All checks pass. Well done."
    )


def test_a_wrong_answer_fails_with_what_was_got_and_a_hint():
    report = check("99.9", 3)
    assert not report.passed
    assert [r.passed for r in report.results] == [True, False]
    assert repr(report) == (
        "Exercise 99.9 (a test exercise): 1 of 2 checks passed\n"
        "  PASS  positive\n"
        "  FAIL  even\n"
        "        got:  3 is odd\n"
        "        hint: Try 2."
    )


def test_an_answer_that_raises_is_reported_not_propagated():
    report = check("99.9", "text")
    assert not report.passed
    assert "TypeError" in report.results[0].error


def test_a_check_that_hangs_is_cut_off():
    def hang(answer):
        time.sleep(answer)

    exercise("99.8", "hangs", Check("returns", hang, "Do not wait forever."))
    start = time.monotonic()
    report = check("99.8", 3, timeout=0.1)
    assert time.monotonic() - start < 1
    assert report.results[0].error == "did not finish within 0.1 s"


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="no exercise '42.1'"):
        get("42.1")


@pytest.mark.parametrize("module", SOLUTION_MODULES)
def test_every_reference_solution_passes_its_checker(module):
    solutions = importlib.import_module(f"solutions.{module}").SOLUTIONS
    assert solutions, f"solutions/{module}.py has no SOLUTIONS"
    for exercise_id, answer in solutions.items():
        report = check(exercise_id, answer)
        assert report.passed, repr(report)


def test_every_exercise_in_a_notebook_has_a_checker_and_a_reference_solution():
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        used = set(re.findall(r'check\("(\d\d\.\d+)"', code))
        chapter = nb.name[:2]
        if not used:
            continue
        solutions = importlib.import_module(f"solutions.ch{chapter}").SOLUTIONS
        registered = {i for i in solutions if get(i)}
        assert used == set(solutions) == registered, nb.name
