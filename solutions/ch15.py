"""Reference solutions for chapter 15 (testing network code).

Run through the chapter's checkers by tests/test_exercises.py:
``check("15.1", SOLUTIONS["15.1"]).passed`` is True.
"""

from __future__ import annotations

import socket
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from helpers.notebook_code import load

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
Adder = load(NOTEBOOKS / "15_testing_network_code.ipynb", "adder").Adder
Idle = load(NOTEBOOKS / "15_testing_network_code.ipynb", "idle").Idle
framing = load(NOTEBOOKS / "02_streams_and_framing.ipynb", "framing")

# -- 15.1 -------------------------------------------------------------------


class AdderTests(SynchronousTestCase):
    """Whole requests, a request cut in two, two requests in one chunk, a bad line between
    good ones, and quit: what each answers, and whether the connection is closing."""

    protocol_class = Adder

    def setUp(self):
        self.adder = self.protocol_class()
        self.adder.makeConnection(StringTransport())

    def answers(self, *chunks):
        """What the adder writes after these chunks, each one dataReceived call."""
        self.adder.transport.clear()
        for chunk in chunks:
            self.adder.dataReceived(chunk)
        return self.adder.transport.value()

    def test_adds(self):
        self.assertEqual(self.answers(b"2 3\n"), b"5\n")
        self.assertEqual(self.answers(b"-7 4\n"), b"-3\n")

    def test_a_request_cut_in_two(self):
        self.assertEqual(self.answers(b"2 ", b"3\n"), b"5\n")
        self.assertEqual(self.answers(b"1", b"0 2", b"0\n"), b"30\n")

    def test_two_requests_in_one_chunk(self):
        self.assertEqual(self.answers(b"2 3\n10 20\n"), b"5\n30\n")

    def test_a_bad_line_is_answered_and_the_connection_carries_on(self):
        self.assertEqual(self.answers(b"two three\n2 3\n"),
                         b"error: expected two integers\n5\n")
        self.assertFalse(self.adder.transport.disconnecting)

    def test_quit_says_bye_and_closes(self):
        self.assertEqual(self.answers(b"quit\n"), b"bye\n")
        self.assertTrue(self.adder.transport.disconnecting)


# -- 15.2 -------------------------------------------------------------------


class IdleTests(SynchronousTestCase):
    """On a task.Clock: both sides of every deadline, and nothing left behind."""

    protocol_class = Idle

    def setUp(self):
        self.clock = task.Clock()
        self.idle = self.protocol_class(self.clock)
        self.idle.makeConnection(StringTransport())

    def test_a_silent_client_is_closed_after_the_timeout(self):
        self.clock.advance(9.9)
        self.assertFalse(self.idle.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.idle.transport.disconnecting)
        self.assertEqual(self.idle.transport.value(), b"idle timeout\n")

    def test_each_input_restarts_the_full_timeout(self):
        for _ in range(5):  # talks every 6 s, for 30 s
            self.clock.advance(6)
            self.idle.dataReceived(b"x")
        self.assertFalse(self.idle.transport.disconnecting)
        self.clock.advance(9.9)
        self.assertFalse(self.idle.transport.disconnecting)
        self.clock.advance(0.1)  # 10 s after the last input
        self.assertTrue(self.idle.transport.disconnecting)
        self.assertEqual(self.idle.transport.value(), b"xxxxxidle timeout\n")

    def test_connection_lost_cancels_the_timer(self):
        self.idle.dataReceived(b"x")
        self.idle.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])


# -- 15.3 -------------------------------------------------------------------

MAX_LINE = 40  # bytes: a line of 10 characters is at most 40 bytes of UTF-8
LINE_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\n")  # no surrogates
TAILS = {b"": None, b"caf\xe9\n": "BadFrame", b"x" * 50: "FrameTooLarge"}


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(lines=st.lists(st.text(LINE_CHARACTERS, max_size=10), max_size=6),
       tail=st.sampled_from(sorted(TAILS)), data=st.data())
def same_lines_for_every_split(Decoder, lines, tail, data):
    """Lines (any text), then nothing or a bad line, cut at up to 6 places anywhere: the
    decoder gives back every line, then the right error."""
    stream = b"".join(line.encode() + b"\n" for line in lines) + tail
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    edges = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    got, error = framing.decode_all(Decoder(max_line=MAX_LINE), chunks)
    assert got == lines, f"lines {got}, expected {lines}"
    assert (error or "").partition(":")[0] == (TAILS[tail] or ""), error


# -- 15.4 -------------------------------------------------------------------


def read_line(sock):
    """Bytes up to and including b"\\n" (or until the peer closes)."""
    line = b""
    while not line.endswith(b"\n") and (byte := sock.recv(1)):
        line += byte
    return line


def adder_over_tcp(address):
    """2 3 -> 5, quit -> bye, then the server closes; the socket is closed in every case."""
    with socket.create_connection(address, timeout=1) as sock:
        sock.sendall(b"2 3\n")
        assert read_line(sock) == b"5\n"
        sock.sendall(b"quit\n")
        assert read_line(sock) == b"bye\n"
        assert sock.recv(1) == b"", "the server did not close the connection after bye"


SOLUTIONS = {
    "15.1": AdderTests,
    "15.2": IdleTests,
    "15.3": same_lines_for_every_split,
    "15.4": adder_over_tcp,
}
