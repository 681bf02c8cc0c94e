"""Chapter 15 exercises: learners' mistakes fail the check that names them, with a message
that names the cause (reference solutions: tests/test_exercises.py). The answers are tests:
the checkers run them against the chapter's Adder, Idle and LineDecoder and against broken
versions of each."""

import os
import re
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor as global_reactor
from twisted.internet import task
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

import solutions.ch15 as solution  # its TestCase classes stay out of this module's names
from helpers import check
from helpers.exercises import ch15, get
from solutions.ch15 import SOLUTIONS, TAILS, Adder, Idle, framing, read_line

# -- the notebook's stubs -----------------------------------------------------------


def stub_test_case(protocol_class):
    """The notebook's stub of 15.1 and 15.2 (made here, so that pytest does not run it)."""

    def test_it(self):
        raise NotImplementedError("your code here")

    return type("Stub", (SynchronousTestCase,), {"protocol_class": protocol_class,
                                                 "test_it": test_it})


def property_stub(Decoder):
    raise NotImplementedError("your code here")


def tcp_stub(address):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize(("exercise_id", "stub"), [
    ("15.1", Adder), ("15.2", Idle), ("15.3", property_stub), ("15.4", tcp_stub)])
def test_the_stub_is_not_attempted_and_shows_no_hint(exercise_id, stub):
    if isinstance(stub, type):
        stub = stub_test_case(stub)
    report = check(exercise_id, stub)
    assert not report.attempted, repr(report)
    assert "hint" not in repr(report)


@pytest.mark.parametrize("exercise_id", sorted(SOLUTIONS))
def test_no_hint_gives_the_code_away(exercise_id):
    for c in get(exercise_id).checks:
        assert not re.search(r"self\.|=|\w\([^)]|\\n", c.hint), (c.key, c.hint)


ADDER_CATCHES = {"catches-split", "catches-batch", "catches-bad-line", "catches-quit"}
IDLE_CATCHES = {"catches-reset", "catches-delay", "catches-silent", "catches-leak"}
PROPERTY_CATCHES = {"catches-cut-line", "catches-cut-character", "catches-first-line",
                    "catches-lines-before-error"}

# -- 15.1 -------------------------------------------------------------------


def adder_tests(**methods):
    """A TestCase class with the solution's helpers (setUp, answers) and these tests."""
    helpers = {"setUp": solution.AdderTests.setUp, "answers": solution.AdderTests.answers}
    return type("AdderTests", (SynchronousTestCase,),
                {"protocol_class": Adder, **helpers, **methods})


def test_a_test_that_asserts_nothing_catches_nothing():
    def test_adds(self):
        self.adder.dataReceived(b"2 3\n")  # and no assertion

    report = check("15.1", adder_tests(test_adds=test_adds))
    assert report.failed == ADDER_CATCHES
    assert report.message("catches-split") == (
        "your 1 test(s) all passed against an Adder that answers a request only if it arrives"
        " whole, in one dataReceived: none of them noticed")


def test_a_test_that_catches_everything_catches_no_bug():
    def test_everything(self):
        try:
            self.assertEqual(self.answers(b"2 ", b"3\n10 20\n"), b"5\n30\n")
            self.assertEqual(self.answers(b"x\n1 1\n"), b"error: expected two integers\n2\n")
            self.assertEqual(self.answers(b"quit\n"), b"bye\n")
            self.assertTrue(self.adder.transport.disconnecting)
        except Exception:
            pass  # "so that the test never crashes"

    report = check("15.1", adder_tests(test_everything=test_everything))
    assert report.failed == ADDER_CATCHES


def test_tests_that_send_whole_requests_one_at_a_time_miss_the_splits():
    def test_adds(self):
        self.assertEqual(self.answers(b"2 3\n"), b"5\n")

    def test_a_bad_line_then_a_good_one(self):
        self.assertEqual(self.answers(b"x\n"), b"error: expected two integers\n")
        self.assertEqual(self.answers(b"2 3\n"), b"5\n")

    def test_quit(self):
        self.assertEqual(self.answers(b"quit\n"), b"bye\n")
        self.assertTrue(self.adder.transport.disconnecting)

    report = check("15.1", adder_tests(test_adds=test_adds, test_quit=test_quit,
                                       test_a_bad_line_then_a_good_one=test_a_bad_line_then_a_good_one))
    assert report.failed == {"catches-split", "catches-batch"}


def test_a_quit_test_that_reads_only_the_bytes_misses_the_open_connection():
    def test_quit(self):
        self.assertEqual(self.answers(b"quit\n"), b"bye\n")

    tests = {k: v for k, v in vars(solution.AdderTests).items() if k.startswith("test_")}
    report = check("15.1", adder_tests(**{**tests, "test_quit_says_bye_and_closes": test_quit}))
    assert report.failed == {"catches-quit"}


def test_tests_of_adder_itself_instead_of_protocol_class_fail_everything():
    def test_adds(self):
        adder = Adder()  # not self.protocol_class(): the checker cannot swap it
        adder.makeConnection(StringTransport())
        adder.dataReceived(b"2 ")
        adder.dataReceived(b"3\n1 1\n")
        self.assertEqual(adder.transport.value(), b"5\n2\n")

    report = check("15.1", adder_tests(test_adds=test_adds, setUp=lambda self: None))
    assert report.failed == {"passes"} | ADDER_CATCHES
    assert report.message("passes") == (
        "your tests passed against the correct Adder, but never made a protocol with"
        " self.protocol_class(), so they tested something else")


def test_a_test_that_expects_the_wrong_bytes_fails_against_the_right_adder():
    def test_adds(self):
        self.assertEqual(self.answers(b"2 3\n"), b"5")  # forgot the newline

    report = check("15.1", adder_tests(test_adds=test_adds))
    assert "passes" in report.failed
    assert report.message("passes").startswith(
        "against the correct Adder, 1 of 1 tests failed (test_adds: FailTest: b'5\\n' != b'5')")


def test_a_class_without_tests_is_told_so():
    report = check("15.1", adder_tests())
    assert report.message("passes") == (
        "against the correct Adder, it has no test methods (their names must start with"
        " `test`)")


def test_not_a_test_case_class_is_told_so():
    report = check("15.1", Adder)
    assert report.message("passes") == (
        "expected a TestCase class (such as a SynchronousTestCase), got <class"
        " 'helpers.notebook_code.adder.Adder'>")


def test_a_trial_test_case_is_refused_without_running_it():
    """trial's asynchronous TestCase runs the reactor, which in a kernel is already running:
    its janitor would cancel every timer of the kernel's reactor (section 8)."""
    from twisted.trial.unittest import TestCase

    ran = []

    def test_adds(self):
        ran.append(self)

    report = check("15.1", type("AdderTests", (TestCase,), {"protocol_class": Adder,
                                                           "test_adds": test_adds}))
    assert report.failed == {"passes"} | ADDER_CATCHES
    assert ran == []
    assert report.message("passes") == (
        "AdderTests is a trial TestCase, which runs the reactor itself: in this kernel, where"
        " the reactor already runs, that would break it (section 8), so it was not run; make it"
        " a SynchronousTestCase")


def test_a_test_that_feeds_an_adder_of_its_own_is_named():
    def test_a_request_cut_in_two(self):
        adder = Adder()  # setUp made self.adder; this test makes its own, of the wrong class
        adder.makeConnection(StringTransport())
        adder.dataReceived(b"2 ")
        adder.dataReceived(b"3\n")
        self.assertEqual(adder.transport.value(), b"5\n")

    tests = {k: v for k, v in vars(solution.AdderTests).items() if k.startswith("test_")}
    report = check("15.1", adder_tests(**{**tests,
                                          "test_a_request_cut_in_two": test_a_request_cut_in_two}))
    assert report.failed == {"catches-split"}
    assert report.message("catches-split").endswith(
        "none of them noticed (test_a_request_cut_in_two never fed bytes to a protocol made with"
        " self.protocol_class(), so it could not test this one)")


# -- 15.2 -------------------------------------------------------------------


def idle_tests(**methods):
    return type("IdleTests", (SynchronousTestCase,), {
        "protocol_class": Idle, "setUp": solution.IdleTests.setUp, **methods})


SOLUTION_IDLE_TESTS = {k: v for k, v in vars(solution.IdleTests).items() if k.startswith("test_")}


def test_idle_tests_without_input_miss_the_timer_that_is_never_restarted():
    tests = dict(SOLUTION_IDLE_TESTS)
    del tests["test_each_input_restarts_the_full_timeout"]
    report = check("15.2", idle_tests(**tests))
    assert report.failed == {"catches-reset", "catches-delay"}
    assert report.message("catches-delay") == (
        "your 2 test(s) all passed against an Idle whose input adds 10 s to the time left (so a"
        " client that sent 3 lines is closed 40 s after connecting): none of them noticed")


def test_a_restart_test_that_does_not_check_when_it_closes_misses_delay():
    def test_talking_keeps_it_open(self):
        for _ in range(5):
            self.clock.advance(6)
            self.idle.dataReceived(b"x")
        self.assertFalse(self.idle.transport.disconnecting)

    tests = dict(SOLUTION_IDLE_TESTS, test_each_input_restarts_the_full_timeout=(
        test_talking_keeps_it_open))
    report = check("15.2", idle_tests(**tests))
    assert report.failed == {"catches-delay"}


def test_idle_tests_without_connection_lost_miss_the_leaked_timer():
    tests = dict(SOLUTION_IDLE_TESTS)
    del tests["test_connection_lost_cancels_the_timer"]
    report = check("15.2", idle_tests(**tests))
    assert report.failed == {"catches-leak"}


def test_a_leak_test_that_only_checks_the_transport_misses_the_leak():
    def test_connection_lost(self):
        self.idle.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(self.idle.transport.disconnecting)

    tests = dict(SOLUTION_IDLE_TESTS, test_connection_lost_cancels_the_timer=test_connection_lost)
    report = check("15.2", idle_tests(**tests))
    assert report.failed == {"catches-leak"}


def test_idle_tests_on_the_real_reactor_are_refused():
    """The mistake "a test that depends on real time": the reactor, and a sleep."""

    def setUp(self):
        self.clock = global_reactor
        self.idle = self.protocol_class(global_reactor)

    def test_closes(self):
        self.idle.timeout = 0.01
        self.idle.makeConnection(StringTransport())
        time.sleep(0.05)
        self.idle.connectionLost(Failure(ConnectionDone()))

    report = check("15.2", idle_tests(setUp=setUp, test_closes=test_closes))
    assert "on-a-clock" in report.failed
    assert re.fullmatch(r"your tests made an Idle with <twisted\.internet\.\w+\.\w+Reactor"
                        r" object at 0x\w+> \(\w+Reactor\), not a task\.Clock: on the real"
                        r" reactor, a test waits real seconds", report.message("on-a-clock"))


def test_idle_tests_that_take_real_time_are_cut_off(monkeypatch):
    monkeypatch.setattr(ch15, "TESTS_LIMIT", 0.1)

    def test_waits(self):
        time.sleep(0.3)

    report = check("15.2", idle_tests(test_waits=test_waits))
    assert report.failed == {"passes", "on-a-clock"} | IDLE_CATCHES
    assert report.message("passes") == (
        "a run of your tests against the correct Idle was still running after 0.1 s")


def test_idle_made_directly_instead_of_protocol_class_fails_everything():
    def setUp(self):
        self.clock = task.Clock()
        self.idle = Idle(self.clock)  # the checker cannot swap it
        self.idle.makeConnection(StringTransport())

    tests = dict(SOLUTION_IDLE_TESTS, setUp=setUp)
    report = check("15.2", idle_tests(**tests))
    assert report.failed == {"passes", "on-a-clock"} | IDLE_CATCHES
    assert report.message("on-a-clock") == (
        "your tests never made an Idle with self.protocol_class(clock)")


def test_idle_tests_that_sleep_on_a_clock_waste_real_time(monkeypatch):
    monkeypatch.setattr(ch15, "CLOCK_SECONDS", 0.1)

    def test_each_input_restarts_the_full_timeout(self):
        for _ in range(3):
            self.clock.advance(6)
            time.sleep(0.05)  # "to let the timer see it": a task.Clock never needs this
            self.idle.dataReceived(b"x")
        self.clock.advance(9.9)
        self.assertFalse(self.idle.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.idle.transport.disconnecting)

    tests = dict(SOLUTION_IDLE_TESTS, test_each_input_restarts_the_full_timeout=(
        test_each_input_restarts_the_full_timeout))
    report = check("15.2", idle_tests(**tests))
    assert report.failed == {"on-a-clock"}
    assert re.fullmatch(r"your 3 test\(s\) took \d\.\d s against the correct Idle: they waited"
                        r" real time, which a test on a task\.Clock never needs \(its time moves"
                        r" only when the test advances it\)", report.message("on-a-clock"))


# -- 15.3 -------------------------------------------------------------------

SAME = settings(derandomize=True, database=None, deadline=None, max_examples=200)
any_line = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=10)


def chunks_of(stream, cuts):
    edges = [0, *sorted(cuts), len(stream)]
    return [stream[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@SAME
@given(lines=st.lists(any_line, max_size=6), tail=st.sampled_from(sorted(TAILS)))
def whole_stream_only(Decoder, lines, tail):
    stream = b"".join(line.encode() + b"\n" for line in lines) + tail
    got, error = framing.decode_all(Decoder(max_line=40), [stream])
    assert got == lines
    assert (error or "").partition(":")[0] == (TAILS[tail] or "")


@SAME
@given(lines=st.lists(any_line, max_size=6), tail=st.sampled_from(sorted(TAILS)))
def one_byte_at_a_time_only(Decoder, lines, tail):
    stream = b"".join(line.encode() + b"\n" for line in lines) + tail
    got, error = framing.decode_all(Decoder(max_line=40), [bytes([b]) for b in stream])
    assert got == lines
    assert (error or "").partition(":")[0] == (TAILS[tail] or "")


def any_split(text, tails):
    @SAME
    @given(lines=st.lists(text, max_size=6), tail=st.sampled_from(sorted(tails)), data=st.data())
    def prop(Decoder, lines, tail, data):
        stream = b"".join(line.encode() + b"\n" for line in lines) + tail
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
        got, error = framing.decode_all(Decoder(max_line=40), chunks_of(stream, cuts))
        assert got == lines
        assert (error or "").partition(":")[0] == (tails[tail] or "")

    return prop


def test_a_property_that_feeds_the_whole_stream_at_once_misses_the_cuts():
    report = check("15.3", whole_stream_only)
    assert report.failed == {"catches-cut-line", "catches-cut-character"}
    assert report.message("catches-cut-line") == (
        "your property held for a decoder that loses the start of a line cut across two chunks")


def test_a_property_that_feeds_one_byte_at_a_time_misses_the_chunks_with_many_lines():
    report = check("15.3", one_byte_at_a_time_only)
    assert report.failed == {"catches-first-line", "catches-lines-before-error"}


def test_an_ascii_only_property_misses_the_cut_character():
    ascii_line = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=10)
    report = check("15.3", any_split(ascii_line, {b"": None}))
    assert report.failed == {"catches-cut-character", "catches-lines-before-error"}


def test_a_property_of_good_input_only_misses_the_lost_lines():
    report = check("15.3", any_split(any_line, {b"": None}))
    assert report.failed == {"catches-lines-before-error"}


def test_a_property_that_is_wrong_for_the_right_decoder_shows_the_example():
    report = check("15.3", any_split(st.text(max_size=10), {b"": None}))  # "\n" in a line
    assert "holds" in report.failed
    message = report.message("holds")
    assert message.startswith(
        "for framing.LineDecoder, which is right, your property failed: AssertionError")
    assert message.endswith(  # the example, shrunk: one line that is a newline
        " (Failing test case: prop( Decoder=helpers.notebook_code.framing.LineDecoder,"
        " lines=['\\n'], tail=b'', data=data(...), ))")


def test_a_property_whose_text_cannot_be_encoded_fails_for_the_right_decoder():
    surrogates_too = st.text(st.characters(exclude_characters="\n"), max_size=10)
    report = check("15.3", any_split(surrogates_too, {b"": None}))
    assert "holds" in report.failed
    assert re.match(r"for framing\.LineDecoder, which is right, your property failed:"
                    r" UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud\w\w\w'",
                    report.message("holds"))


def test_a_property_with_few_examples_is_run_with_enough():
    """The checker raises max_examples to at least 200 (and keeps the reader's other
    settings), so a property that would need more than 5 examples still finds the bugs."""
    prop = any_split(any_line, TAILS)
    prop._hypothesis_internal_use_settings = settings(
        prop._hypothesis_internal_use_settings, max_examples=5)
    assert check("15.3", prop).passed


def test_a_property_that_tests_the_chapters_decoder_instead_of_its_argument_is_told_so():
    def prop(Decoder):  # an example, quick to run; the same mistake in a @given test
        cut = "é\nab\nc\n".encode()
        got, error = framing.decode_all(framing.LineDecoder(), [cut[:1], cut[1:5], cut[5:]])
        assert got == ["é", "ab", "c"], got

    report = check("15.3", prop)
    assert report.failed == {"holds"} | PROPERTY_CATCHES
    assert report.message("holds") == (
        "your property held for framing.LineDecoder, but never made a decoder from the Decoder"
        " it was given, so it tested another class")
    assert report.message("catches-cut-line") == (
        "your property held for a decoder that loses the start of a line cut across two chunks:"
        " it never made a decoder from the Decoder it was given, so it tested another class")


def test_a_property_that_returns_false_instead_of_failing_is_told_so():
    def prop(Decoder):
        cut = "é\nab\nc\n".encode()
        got, error = framing.decode_all(Decoder(), [cut[:1], cut[1:5], cut[5:]])
        return got == ["é", "ab", "c"]  # False for a wrong decoder, and nothing fails

    report = check("15.3", prop)
    assert report.failed == PROPERTY_CATCHES  # True for lines-before-error: no bad line
    assert report.message("catches-cut-line") == (
        "your property returned False for a decoder that loses the start of a line cut across"
        " two chunks: a test fails by raising (a failed assert does), and what it returns is"
        " ignored")


# -- 15.4 -------------------------------------------------------------------


@pytest.fixture
def quick(monkeypatch):
    """A hanging test is cut off after 0.5 s here (3 s in the notebook)."""
    monkeypatch.setattr(ch15, "TCP_LIMIT", 0.5)


@pytest.fixture
def short_linger(monkeypatch):
    """A leaked connection is looked for 0.2 s after the test (1 s in the notebook)."""
    monkeypatch.setattr(ch15, "LINGER", 0.2)


def test_a_close_at_the_end_is_skipped_when_an_assertion_fails(short_linger):
    def adder_over_tcp(address):
        sock = socket.create_connection(address, timeout=0.2)
        sock.sendall(b"2 3\n")
        assert read_line(sock) == b"5\n"
        sock.sendall(b"quit\n")
        assert read_line(sock) == b"bye\n"
        assert sock.recv(1) == b""
        sock.close()  # not reached when an assertion fails

    report = check("15.4", adder_over_tcp)
    assert report.failed == {"closed-failing"}
    assert report.message("closed-failing") == (
        "your test failed against an Adder server that says bye to quit but never closes"
        " (raised TimeoutError: timed out), and 0.2 s later its connection to the server was"
        " still open: when it failed, its socket was not closed (a close() after a failed assert"
        " never runs; a file from makefile() keeps the socket open until it is closed too)")


def test_a_socket_never_closed_is_found_passing_and_failing(short_linger):
    def adder_over_tcp(address):
        sock = socket.create_connection(address, timeout=0.2)
        sock.sendall(b"2 3\n")
        assert read_line(sock) == b"5\n"
        sock.sendall(b"quit\n")
        assert read_line(sock) == b"bye\n"
        assert sock.recv(1) == b""

    report = check("15.4", adder_over_tcp)
    assert report.failed == {"closed-passing", "closed-failing"}
    assert re.fullmatch(r"your test returned without closing its socket \(Python warned:"
                        r" ResourceWarning: unclosed <socket\.socket .*>\)",
                        report.message("closed-passing"))


def test_a_test_that_does_not_wait_for_the_close_misses_the_open_server():
    def adder_over_tcp(address):
        with socket.create_connection(address, timeout=0.2) as sock:
            sock.sendall(b"2 3\n")
            assert read_line(sock) == b"5\n"
            sock.sendall(b"quit\n")
            assert read_line(sock) == b"bye\n"

    report = check("15.4", adder_over_tcp)
    assert report.failed == {"catches-open"}  # closed-failing: checked against the silent one
    assert report.message("catches-open") == (
        "your test passed against an Adder server that says bye to quit but never closes")


def test_a_socket_without_a_timeout_hangs_and_is_cut_off(quick, short_linger):
    def adder_over_tcp(address):
        with socket.create_connection(address) as sock:  # no timeout: reads wait for ever
            sock.sendall(b"2 3\n")
            assert read_line(sock) == b"5\n"
            sock.sendall(b"quit\n")
            assert read_line(sock) == b"bye\n"
            assert sock.recv(1) == b""

    report = check("15.4", adder_over_tcp)
    assert report.failed == {"catches-open", "catches-silent", "closed-failing"}
    assert report.message("catches-silent") == (
        "your test, against a server that never answers, was still running after 0.5 s")
    assert report.message("closed-failing") == (
        "your test never failed within 0.5 s, against the server that stays open or the one"
        " that never answers, so this was not checked")


def test_a_test_that_reads_one_recv_for_two_answers_fails_against_the_right_server():
    def adder_over_tcp(address):
        with socket.create_connection(address, timeout=0.2) as sock:
            sock.sendall(b"2 3\nquit\n")
            assert sock.recv(1024) == b"5\nbye\n"  # TCP may deliver it in pieces; and:
            assert sock.recv(1024) == b"x"  # a wrong expectation

    report = check("15.4", adder_over_tcp)
    assert "passes" in report.failed
    assert report.message("passes").startswith("against a correct Adder server, your test"
                                               " raised AssertionError")


def test_one_recv_per_answer_fails_when_an_answer_comes_in_pieces():
    def adder_over_tcp(address):
        with socket.create_connection(address, timeout=0.2) as sock:
            sock.sendall(b"2 3\n")
            assert sock.recv(1024) == b"5\n"  # what one recv returns: maybe b"5" only
            sock.sendall(b"quit\n")
            assert sock.recv(1024) == b"bye\n"
            assert sock.recv(1024) == b""

    report = check("15.4", adder_over_tcp)
    assert report.failed == {"pieces"}
    assert report.message("pieces").startswith(  # pytest's assert rewriting says more
        "against a correct Adder server that sends each answer in two pieces, 50 ms apart"
        " (b'5', then b'\\n'), as TCP may deliver it, your test raised AssertionError")


def test_both_answers_in_one_recv_fail_when_they_come_in_pieces():
    def adder_over_tcp(address):
        with socket.create_connection(address, timeout=0.2) as sock:
            sock.sendall(b"2 3\nquit\n")
            assert sock.recv(1024) == b"5\nbye\n"
            assert sock.recv(1024) == b""

    report = check("15.4", adder_over_tcp)
    assert report.failed == {"pieces"}
    assert report.message("pieces").startswith(
        "against a correct Adder server that sends each answer in two pieces")


def test_a_close_only_around_the_quit_leaves_the_socket_open_against_a_silent_server(
        short_linger):
    def adder_over_tcp(address):
        sock = socket.create_connection(address, timeout=0.2)
        sock.sendall(b"2 3\n")
        assert read_line(sock) == b"5\n"  # against the silent server, it fails here
        try:
            sock.sendall(b"quit\n")
            assert read_line(sock) == b"bye\n"
            assert sock.recv(1) == b""
        finally:
            sock.close()

    report = check("15.4", adder_over_tcp)
    assert report.failed == {"closed-failing"}
    assert report.message("closed-failing").startswith(
        "your test failed against a server that never answers (raised TimeoutError: timed"
        " out), and 0.2 s later its connection to the server was still open")


def test_a_file_from_makefile_keeps_the_socket_open_when_the_test_fails(short_linger):
    def adder_over_tcp(address):
        with socket.create_connection(address, timeout=0.2) as sock:
            lines = sock.makefile("rb")  # never closed: the socket stays open while it lives
            sock.sendall(b"2 3\n")
            assert lines.readline() == b"5\n"
            sock.sendall(b"quit\n")
            assert lines.readline() == b"bye\n"
            assert lines.read(1) == b""

    report = check("15.4", adder_over_tcp)
    assert report.failed == {"closed-failing"}
    assert "a file from makefile() keeps the socket open" in report.message("closed-failing")


def test_the_checks_write_nothing_into_the_working_folder(tmp_path):
    """Hypothesis caches into `.hypothesis/` of the working folder, database=None or not; a
    fresh kernel (or one after the chapter's clean-up cell) runs the checks from the
    reader's folder."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from helpers.exercises import check\n"
            "from solutions.ch15 import SOLUTIONS\n"
            "assert check('15.3', SOLUTIONS['15.3']).passed\n")
    subprocess.run([sys.executable, "-c", code, str(root)], cwd=tmp_path, check=True,
                   timeout=120, env={**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": ""})
    assert list(tmp_path.iterdir()) == []
