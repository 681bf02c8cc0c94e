"""The exercise framework (what a reader sees, before and after an attempt), and every
reference solution through its checker."""

import gc
import importlib
import json
import re
import threading
import time
from pathlib import Path

import pytest
from twisted.internet import defer, protocol

from helpers import serve
from helpers.exercises import (
    CheckFailed,
    check,
    exercise,
    fail,
    get,
    observation,
    require,
    run_answer,
)
from helpers.exercises.wire import Client

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_MODULES = sorted(p.stem for p in (ROOT / "solutions").glob("ch[0-9][0-9].py"))
# Checked where Twisted runs on asyncio, as in the chapter's kernel (tests/asyncio_reactor/).
ASYNCIO_REACTOR_ONLY = {"ch17"}

EVEN = exercise("99.1", "an even number")


@EVEN.check("positive", "the number is above zero", hint="Think of the number line.")
def _positive(answer):
    n = answer()
    require(n > 0, f"your function returned {n}")


@EVEN.check("even", "the number is even", hint="Look at the last digit.")
def _even(answer):
    n = answer()
    require(n % 2 == 0, f"your function returned {n}, which is odd")


def stub():
    raise NotImplementedError("your code here")


def test_a_right_answer_passes_every_check():
    report = check("99.1", lambda: 4)
    assert report.passed and bool(report) and report.attempted
    assert report.failed == set()
    assert repr(report) == (
        "Exercise 99.1 · an even number: 2 of 2 checks passed\n"
        "  PASS  the number is above zero\n"
        "  PASS  the number is even\n"
        "  All checks pass. Well done."
    )


def test_a_stub_is_not_attempted_and_shows_no_hint():
    report = check("99.1", stub)
    assert not report.passed and not report.attempted
    assert report.failed == {"positive", "even"}
    assert repr(report) == (
        "Exercise 99.1 · an even number: not attempted yet (`stub` still raises"
        " NotImplementedError).\nWrite it in the cell above, run that cell, then run this one"
        " again."
    )
    assert "hint" not in repr(report) and "number line" not in repr(report)


def test_after_an_attempt_only_the_failed_checks_show_what_happened_and_a_hint():
    report = check("99.1", lambda: 3)
    assert report.attempted and report.failed == {"even"}
    assert repr(report) == (
        "Exercise 99.1 · an even number: 1 of 2 checks passed\n"
        "  PASS  the number is above zero\n"
        "  FAIL  the number is even\n"
        "        what happened: your function returned 3, which is odd\n"
        "        hint: Look at the last digit."
    )


def test_an_answer_that_raises_is_reported_with_its_exception():
    def broken():
        return int("x")

    report = check("99.1", broken)
    assert report.attempted
    assert report.results[0].error == (
        "your code raised ValueError: invalid literal for int() with base 10: 'x'"
    )


def test_a_partly_written_answer_is_attempted_and_the_unwritten_part_is_named():
    answers = iter([2])

    def half():  # returns once, then is "not written yet"
        for n in answers:
            return n
        raise NotImplementedError

    report = check("99.1", half)
    assert report.attempted and report.failed == {"even"}
    assert "still raises NotImplementedError here" in repr(report)
    assert "hint: Look at the last digit." in repr(report)


def test_a_check_that_hangs_is_cut_off():
    hangs = exercise("99.2", "hangs")

    @hangs.check("returns", "returns", hint="Do not wait forever.")
    def _wait(answer):
        time.sleep(answer)

    start = time.monotonic()
    report = check("99.2", 3, timeout=0.1)
    assert time.monotonic() - start < 1
    assert report.results[0].error == (
        "the check was still waiting after 0.1 s (is your code blocked?)"
    )


def test_a_check_that_runs_out_of_time_stops_the_readers_code_even_if_it_spins():
    spins = exercise("99.9", "spins")
    stopped = threading.Event()

    @spins.check("returns", "returns", hint="Do not loop forever.")
    def _call(answer):
        answer()

    def spin():  # a reader's loop on recv() returning b"" for ever
        try:
            while True:
                try:
                    pass
                except Exception:  # even one that swallows errors
                    continue
        finally:
            stopped.set()

    report = check("99.9", spin, timeout=0.1)
    assert report.results[0].error.startswith("the check was still waiting after 0.1 s")
    assert stopped.wait(2), "the reader's loop still spins after the check gave up"


def test_preparations_run_before_the_checks_and_outside_their_time_limits():
    ex = exercise("99.8", "prepared")
    ready = threading.Event()

    @ex.prepare
    def _warm_up():  # the checker's own one-time work: slower than a check may take
        time.sleep(0.3)
        ready.set()

    @ex.check("ready", "ready", hint="")
    def _ready(answer):
        assert ready.is_set(), "not prepared"

    report = check("99.8", None, timeout=0.1)
    assert report.passed, repr(report)


def test_a_check_key_is_unique():
    ex = exercise("99.3", "keys")
    ex.check("one", "one", hint="")(lambda answer: None)
    with pytest.raises(ValueError, match="already has a check 'one'"):
        ex.check("one", "again", hint="")


def test_an_observation_is_made_once_per_check_call_and_its_error_shared():
    calls = []

    @observation
    def session(answer):
        calls.append(answer)
        if answer == "bad":
            raise ValueError("the session broke")
        return len(calls)

    shared = exercise("99.4", "observed")
    for key in ("a", "b"):
        shared.check(key, key, hint="")(lambda answer: require(session(answer) == 1, "again"))
    assert check("99.4", "good").passed
    assert calls == ["good"]
    report = check("99.4", "bad")
    assert calls == ["good", "bad"]
    broke = "your code raised ValueError: the session broke"
    assert [r.error for r in report.results] == [broke, broke]


def test_a_stub_read_through_an_observation_is_not_attempted_in_every_check():
    @observation
    def run(answer):
        outcome = run_answer(answer)
        return outcome

    shared = exercise("99.8", "observed stub")
    for key in ("a", "b"):
        shared.check(key, key, hint="")(
            lambda answer: require(run(answer).kind == "returned", f"it {run(answer)}"))
    report = check("99.8", stub)
    assert not report.attempted and report.failed == {"a", "b"}


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Faulty(protocol.Protocol):
    def dataReceived(self, data):
        raise ValueError(f"cannot handle {data!r}")


class Unwritten(protocol.Protocol):
    def dataReceived(self, data):
        raise NotImplementedError("your code here")


LOGGED = exercise("99.5", "a server that answers")


@LOGGED.check("answers", "answers a line", hint="Write back what you read.")
def _answers(protocol_class):
    with serve("check-99.5", protocol.Factory.forProtocol(protocol_class)) as server, \
            Client(server.port, timeout=0.5) as client:
        client.send(b"hi\n")
        got = client.read_until(b"\n")
        require(got.data == b"hi\n", f"after b'hi\\n' the client {got}")


def test_an_error_twisted_logs_is_the_cause_shown():
    report = check("99.5", Faulty)
    assert report.failed == {"answers"}
    text = repr(report)
    assert "what happened: after b'hi\\n' the client got nothing, then the connection" in text
    assert "Twisted logged: ValueError: cannot handle b'hi\\n' (raised in dataReceived)" in text


def test_a_check_that_passes_but_makes_twisted_log_an_error_fails():
    def loses_a_failure(answer):
        d = defer.Deferred()
        d.errback(KeyError("nobody looked"))
        del d

    exercise("99.6", "quiet").check("no-errors", "logs nothing", hint="Handle it.")(
        loses_a_failure)
    report = check("99.6", None)
    assert report.failed == {"no-errors"}
    assert "Twisted logged an error while this check ran" in repr(report)
    assert "Twisted logged: KeyError: 'nobody looked'" in repr(report)


def test_a_failure_collected_only_after_the_checks_still_fails_the_answer():
    def leaves_an_old_cycle(answer):
        d = defer.Deferred()
        d.errback(KeyError("found late"))
        box = [d]
        box.append(box)
        gc.collect()  # box and d survive it: now in the oldest generation
        del d, box  # garbage, but only a full collection finds it

    exercise("99.7", "late").check("passes", "passes", hint="")(leaves_an_old_cycle)
    report = check("99.7", None)
    assert report.failed == {"logged-later"}
    assert report.message("logged-later") == (
        "Twisted logged an error after the checks had finished, when a Deferred with an"
        " unhandled failure was garbage-collected; Twisted logged: KeyError: 'found late'")


def test_a_stub_protocol_whose_error_twisted_logs_is_not_attempted():
    report = check("99.5", Unwritten)
    assert not report.attempted and report.failed == {"answers"}


def test_a_working_server_passes():
    assert check("99.5", Echo).passed


def test_unknown_exercise_names_the_known_ones():
    with pytest.raises(KeyError, match="no exercise '42.1'"):
        get("42.1")


def test_fail_and_require_raise_check_failed_even_under_dash_o():
    with pytest.raises(CheckFailed, match="said so"):
        fail("said so")
    with pytest.raises(CheckFailed, match="not true"):
        require(False, "not true")
    require(True, "never raised")


def test_an_assertion_error_from_the_answer_is_not_taken_for_the_checks_verdict():
    # Compiled outside pytest's assert rewriting: a reader's bare assert has no message.
    reader = {}
    exec(compile("def answer():\n    assert 1 + 1 == 3\n", "<reader's cell>", "exec"), reader)
    report = check("99.1", reader["answer"])
    assert report.failed == {"positive", "even"}
    assert report.message("positive") == (
        "your code raised AssertionError (an assert in answer, line 2)")
    report = check("99.1", lambda: (_ for _ in ()).throw(AssertionError("mine")))
    assert report.message("even") == "your code raised AssertionError: mine"


@pytest.mark.parametrize("module", sorted(set(SOLUTION_MODULES) - ASYNCIO_REACTOR_ONLY))
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
