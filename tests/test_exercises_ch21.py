"""Chapter 21 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import pytest

from helpers import check, servers
from helpers.exercises import ch21
from solutions.ch21 import SOLUTIONS, Command, append_handler, getdel_handler, mget_handler

GETDEL_CHECKS = {"value", "deletes", "missing", "empty", "expired", "arity"}
MGET_CHECKS = {"values", "single", "missing", "repeated", "empty-expired", "arity"}


def stub(db, args):
    raise NotImplementedError("your code here")


def test_the_stub_is_not_attempted_and_shows_no_hint():
    for exercise_id, arity in [("21.1", 2), ("21.2", -2), ("21.3", 3), ("21.1", None),
                               ("21.2", None), ("21.3", None)]:
        report = check(exercise_id, Command(stub, arity))
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)
    assert set(SOLUTIONS) == {"21.1", "21.2", "21.3"}
    assert repr(servers()) == "No servers running."


def test_a_command_from_the_notebook_works_like_the_solutions_tuple():
    chapter_command = ch21.chapter().Command
    assert check("21.1", chapter_command(getdel_handler, 2)).passed
    assert check("21.2", chapter_command(mget_handler, -2)).passed


# -- 21.1 GETDEL ---------------------------------------------------------------------


def assert_fails(report, keys, *words):
    assert report.failed == set(keys), repr(report)
    for key in keys:
        for word in words:
            assert word in report.message(key), (key, report.message(key))


def test_getdel_that_forgets_to_delete():
    report = check("21.1", Command(lambda db, args: db.get(args[0]), 2))
    assert_fails(report, {"deletes", "empty"}, "GET", "not None")


def test_getdel_that_deletes_first_and_then_reads():
    def handler(db, args):
        db.delete(args[0])
        return db.get(args[0])

    report = check("21.1", Command(handler, 2))
    assert_fails(report, {"value", "empty"}, "GETDEL", "replied None")


def test_getdel_that_reads_db_values_directly_returns_expired_keys():
    report = check("21.1", Command(lambda db, args: db.values.pop(args[0], None), 2))
    assert_fails(report, {"expired", "deletes"})  # and the deadline stays behind
    assert "b'old'" in report.message("expired") and "PX 100" in report.message("expired")


def test_getdel_that_deletes_the_value_but_leaves_the_deadline():
    def handler(db, args):
        value = db.get(args[0])
        if value is not None:
            del db.values[args[0]]  # db.deadlines keeps the key's deadline
        return value

    report = check("21.1", Command(handler, 2))
    assert_fails(report, {"deletes"})
    assert report.message("deletes") == (
        "TTL d (after SET d v EX 100, GETDEL d, INCR d) replied 100, not -1: GETDEL removed"
        " d's value but left its deadline behind, and INCR, which keeps a key's deadline, gave"
        " it to the new d")


def test_getdel_that_treats_an_empty_value_as_missing():
    def handler(db, args):
        value = db.get(args[0])
        if value:
            db.delete(args[0])
            return value
        return None

    report = check("21.1", Command(handler, 2))
    assert_fails(report, {"empty"}, "replied None, not b''")


def test_getdel_with_an_arity_that_accepts_extra_keys():
    report = check("21.1", Command(getdel_handler, -2))
    assert_fails(report, {"arity"}, "GETDEL a b", "wrong number of arguments for 'getdel'")


def test_getdel_with_an_arity_that_forgets_the_name():
    report = check("21.1", Command(getdel_handler, 1))
    assert report.failed == GETDEL_CHECKS, repr(report)
    assert "wrong number of arguments for 'getdel'" in report.message("value")


def test_getdel_that_returns_str():
    def handler(db, args):
        value = db.get(args[0])
        db.delete(args[0])
        return None if value is None else value.decode()

    report = check("21.1", Command(handler, 2))
    assert_fails(report, {"value", "empty"}, "no RESP encoding", "your handler returned")


def test_getdel_that_raises_is_named():
    def handler(db, args):
        return db.pop(args[0])

    report = check("21.1", Command(handler, 2))
    assert report.failed == GETDEL_CHECKS
    assert "AttributeError" in report.message("value")


@pytest.mark.parametrize("answer, words", [
    (getdel_handler, "not a Command"),
    (Command(b"GETDEL", 2), "not a function"),
    (Command(getdel_handler, "2"), "not an integer"),
    (Command(getdel_handler, None), "not an integer"),
])
def test_an_answer_that_is_not_a_command_says_so(answer, words):
    report = check("21.1", answer)
    assert report.failed == GETDEL_CHECKS
    assert words in report.message("value")


# -- 21.2 MGET -----------------------------------------------------------------------


def test_mget_that_skips_missing_keys():
    report = check("21.2", Command(lambda db, args: [v for k in args if (v := db.get(k))
                                                     is not None], -2))
    assert_fails(report, {"missing", "repeated", "empty-expired", "arity"}, "MGET")


def test_mget_that_uses_a_set_of_keys():
    report = check("21.2", Command(lambda db, args: [db.get(k) for k in dict.fromkeys(args)],
                                   -2))
    assert_fails(report, {"repeated"}, "[b'1', b'1', None, None]")


def test_mget_that_treats_empty_values_as_missing():
    report = check("21.2", Command(lambda db, args: [db.get(k) or None for k in args], -2))
    assert_fails(report, {"empty-expired"}, "[None, None]", "not [b'', None]")


def test_mget_that_reads_db_values_directly():
    report = check("21.2", Command(lambda db, args: [db.values.get(k) for k in args], -2))
    assert_fails(report, {"empty-expired"}, "b'old'")


def test_mget_that_returns_a_bare_value_for_one_key():
    def handler(db, args):
        values = [db.get(k) for k in args]
        return values[0] if len(values) == 1 else values

    report = check("21.2", Command(handler, -2))
    assert_fails(report, {"single", "arity"}, "MGET")


def test_mget_with_a_fixed_arity():
    report = check("21.2", Command(mget_handler, 2))
    assert report.failed == MGET_CHECKS - {"single"}, repr(report)
    assert "wrong number of arguments for 'mget'" in report.message("values")


def test_mget_with_arity_minus_one_accepts_no_key():
    report = check("21.2", Command(mget_handler, -1))
    assert_fails(report, {"arity"}, "MGET replied []")


def test_mget_that_returns_a_tuple_is_encoded_or_named():
    report = check("21.2", Command(lambda db, args: tuple(db.get(k) for k in args), -2))
    assert report.failed == MGET_CHECKS
    assert "no RESP encoding" in report.message("values")


# -- 21.3 APPEND ---------------------------------------------------------------------

APPEND_CHECKS = {"length", "missing", "keeps-ttl", "expired", "arity"}


def test_append_that_replies_with_the_value_instead_of_its_length():
    def handler(db, args):
        value = (db.get(args[0]) or b"") + args[1]
        db.set(args[0], value, keep_ttl=True)
        return value

    report = check("21.3", Command(handler, 3))
    assert report.failed == APPEND_CHECKS, repr(report)
    assert "replied b'abcde', not 5" in report.message("length")


def test_append_that_counts_characters_instead_of_bytes():
    def handler(db, args):
        value = (db.get(args[0]) or b"").decode() + args[1].decode()
        db.set(args[0], value.encode(), keep_ttl=True)
        return len(value)  # characters: € is one, but 3 bytes

    report = check("21.3", Command(handler, 3))
    assert_fails(report, {"length"})
    assert report.message("length") == (
        "APPEND k € (k holds 7 bytes; € is 3 bytes in UTF-8) replied 8, not 10")


def test_append_that_keeps_the_deadline_in_whole_seconds():
    def handler(db, args):
        value = (db.get(args[0]) or b"") + args[1]
        left = db.ttl(args[0])
        db.set(args[0], value, ttl=None if left is None else int(left))  # 5.5 s becomes 5
        return len(value)

    report = check("21.3", Command(handler, 3))
    assert_fails(report, {"keeps-ttl"}, "TTL t", "replied 5, not 6")


def test_append_that_reads_the_deadline_before_the_key_expires_it():
    def handler(db, args):
        left = db.ttl(args[0])  # read first: an expired key's deadline, in the past
        value = (db.get(args[0]) or b"") + args[1]
        db.set(args[0], value, ttl=left)
        return len(value)

    report = check("21.3", Command(handler, 3))
    assert_fails(report, {"expired"}, "GET t (after APPEND t new;", "replied None, not b'new'",
                 "deadline")


def test_append_that_clears_the_deadline():
    def handler(db, args):
        value = (db.get(args[0]) or b"") + args[1]
        db.set(args[0], value)  # forgets keep_ttl
        return len(value)

    report = check("21.3", Command(handler, 3))
    assert_fails(report, {"keeps-ttl"}, "TTL t", "replied -1, not 6")


def test_append_that_reads_db_values_directly():
    def handler(db, args):
        value = db.values.get(args[0], b"") + args[1]
        db.set(args[0], value, keep_ttl=True)
        return len(value)

    report = check("21.3", Command(handler, 3))
    assert_fails(report, {"expired"}, "APPEND t new", "replied 6, not 3")


def test_append_that_keeps_a_dead_deadline_on_an_expired_key():
    def handler(db, args):
        value = (db.get(args[0]) or b"") + args[1]
        deadline = db.deadlines.get(args[0])
        db.values[args[0]] = value
        if deadline is not None:
            db.deadlines[args[0]] = deadline
        return len(value)

    report = check("21.3", Command(handler, 3))
    assert report.failed == set(), repr(report)  # db.get already dropped the dead deadline


def test_append_that_treats_a_missing_key_as_an_error():
    def handler(db, args):
        value = db.get(args[0]) + args[1]
        db.set(args[0], value, keep_ttl=True)
        return len(value)

    report = check("21.3", Command(handler, 3))
    assert report.failed == {"missing", "expired", "arity"}, repr(report)
    assert "TypeError" in report.message("missing")


def test_append_with_an_arity_that_accepts_more_values():
    report = check("21.3", Command(append_handler, -3))
    assert_fails(report, {"arity"}, "APPEND a 2 3")
