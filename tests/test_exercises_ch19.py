"""Chapter 19 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import contextlib
import socket

import pytest
from twisted.internet.protocol import Protocol
from twisted.protocols.basic import LineReceiver

from helpers import check
from helpers.exercises import ch19
from solutions.ch19 import SOLUTIONS, FastTotal, ask


@pytest.fixture(autouse=True)
def short_ask_limit(monkeypatch):
    """An ask() that never returns is stopped after 0.5 s (2 s in the notebook)."""
    monkeypatch.setattr(ch19, "ASK_LIMIT", 0.5)


def test_the_stub_is_not_attempted_and_shows_no_hint():
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    class Stub(Protocol):
        def dataReceived(self, data):
            raise NotImplementedError("your code here")

    for exercise_id, answer in [("19.1", Stub), ("19.2", stub)]:
        report = check(exercise_id, answer)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)


# -- 19.1 -----------------------------------------------------------------------------------


def test_the_chapters_slow_protocol_fails_only_on_cost():
    report = check("19.1", ch19._reference())
    assert report.failed == {"constant-cost"}, repr(report)
    assert "after 10,000 earlier requests took" in report.message("constant-cost")


class SharedTotal(FastTotal):
    """A total on the class: every connection adds to the same one."""

    total = 0

    def connectionMade(self):
        self.buffer = b""

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            command, _, number = line.strip().partition(b" ")
            if command == b"ADD" and number.strip().lstrip(b"-").isdigit():
                SharedTotal.total += int(number)
                self.transport.write(b"%d\n" % SharedTotal.total)
            else:
                self.transport.write(b"ERR expected ADD n\n")


def test_a_total_shared_by_every_connection_fails():
    report = check("19.1", SharedTotal)
    assert "per-connection" in report.failed, repr(report)
    assert "the second answered" in report.message("per-connection")
    assert report.message("per-connection").endswith("it did not start from a total of 0")


class EachReadOnItsOwn(FastTotal):
    """Splits each read on its own: a line cut across reads is lost or garbled."""

    def dataReceived(self, data):
        for line in data.split(b"\n")[:-1]:
            command, _, number = line.strip().partition(b" ")
            try:
                if command != b"ADD":
                    raise ValueError
                self.total += int(number)
            except ValueError:
                self.transport.write(b"ERR expected ADD n\n")
                continue
            self.transport.write(b"%d\n" % self.total)


def test_lines_cut_across_reads_fail_the_answers_check():
    report = check("19.1", EachReadOnItsOwn)
    assert report.failed == {"answers"}, repr(report)
    assert report.message("answers").startswith("a line cut in two reads")


class NeverTrimmed(FastTotal):
    """Keeps every byte received and re-splits all of it on each read: quadratic."""

    def connectionMade(self):
        self.received, self.answered, self.total = b"", 0, 0

    def dataReceived(self, data):
        self.received += data
        lines = self.received.split(b"\n")[:-1]
        for line in lines[self.answered:]:
            command, _, number = line.strip().partition(b" ")
            try:
                if command != b"ADD":
                    raise ValueError
                self.total += int(number)
            except ValueError:
                self.transport.write(b"ERR expected ADD n\n")
                continue
            finally:
                self.answered += 1
            self.transport.write(b"%d\n" % self.total)


def test_a_buffer_that_is_never_trimmed_fails_on_cost(monkeypatch):
    monkeypatch.setattr(ch19, "SLOW", 0.3)  # gives up after 0.3 s of CPU, not 1.5 s
    report = check("19.1", NeverTrimmed)
    assert report.failed == {"constant-cost"}, repr(report)


class ErrorsAddZero(FastTotal):
    """Answers a bad line with the total instead of an error."""

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            _, _, number = line.strip().partition(b" ")
            with contextlib.suppress(ValueError):
                self.total += int(number)
            self.transport.write(b"%d\n" % self.total)


def test_bad_lines_answered_with_the_total_fail():
    report = check("19.1", ErrorsAddZero)
    assert "answers" in report.failed, repr(report)
    assert report.message("answers").startswith("bad lines between good ones")


class SharedBuffer(Protocol):
    """Keeps the unfinished line in a bytearray on the class (no connectionMade): every
    connection appends to the same buffer."""

    buffer = bytearray()

    def dataReceived(self, data):
        self.buffer += data  # in place: the class's bytearray
        while b"\n" in self.buffer:
            line, _, rest = bytes(self.buffer).partition(b"\n")
            self.buffer[:] = rest
            command, _, number = line.strip().partition(b" ")
            try:
                if command != b"ADD":
                    raise ValueError
                self.total = getattr(self, "total", 0) + int(number)
            except ValueError:
                self.transport.write(b"ERR expected ADD n\n")
                continue
            self.transport.write(b"%d\n" % self.total)


def test_an_unfinished_line_shared_by_every_connection_fails_per_connection():
    report = check("19.1", SharedBuffer)
    assert report.failed == {"per-connection"}, repr(report)
    assert report.message("per-connection").endswith(
        "the second answered b'ERR expected ADD n\\n', expected b'2\\n': its line was read"
        " together with bytes the first connection sent")


class Lines(LineReceiver):
    """A LineReceiver: its lines are at most MAX_LENGTH (16,384) bytes, and a longer one
    closes the connection."""

    delimiter = b"\n"

    def connectionMade(self):
        self.total = 0

    def lineReceived(self, line):
        command, _, number = line.strip().partition(b" ")
        try:
            if command != b"ADD":
                raise ValueError
            self.total += int(number)
        except ValueError:
            self.sendLine(b"ERR expected ADD n")
            return
        self.sendLine(b"%d" % self.total)


def test_a_line_receiver_with_its_line_limit_fails_answers():
    report = check("19.1", Lines)
    assert report.failed == {"answers"}, repr(report)
    assert report.message("answers").startswith("a line of 20,000 bytes")
    assert report.message("answers").endswith(
        "RunningTotal answers b'1\\n8\\n9\\n', yours b'1\\n'")


class SplitOnWhitespace(FastTotal):
    """Splits a line on any whitespace and takes the second word: lenient."""

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] == b"ADD" and words[1].lstrip(b"-").isdigit():
                self.total += int(words[1])
                self.transport.write(b"%d\n" % self.total)
            else:
                self.transport.write(b"ERR expected ADD n\n")


def test_splitting_on_any_whitespace_fails_answers():
    report = check("19.1", SplitOnWhitespace)
    assert report.failed == {"answers"}, repr(report)
    assert report.message("answers") == (
        "a tab, a second number (b'ADD 2\\nADD\\t3\\nADD 4 5\\nADD 1\\n'): RunningTotal"
        " answers b'2\\nERR expected ADD n\\nERR expected ADD n\\n3\\n', yours"
        " b'2\\n5\\n9\\n10\\n'")


class DecodesFirst(FastTotal):
    """Decodes each line before parsing it: a byte that is not UTF-8 raises."""

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            command, _, number = line.decode().strip().partition(" ")
            try:
                if command != "ADD":
                    raise ValueError
                self.total += int(number)
            except ValueError:
                self.transport.write(b"ERR expected ADD n\n")
                continue
            self.transport.write(b"%d\n" % self.total)


def test_decoding_lines_fails_answers_on_bytes_that_are_not_utf8():
    report = check("19.1", DecodesFirst)
    assert report.failed == {"answers"}, repr(report)
    message = report.message("answers")
    assert message.startswith("digits that are not ASCII, bytes that are not UTF-8")
    assert "your code raised UnicodeDecodeError" in message


class DecodesInTheTry(FastTotal):
    """Decodes inside the try: int() of a str takes any Unicode digit, as bytes do not."""

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            try:
                command, _, number = line.decode().strip().partition(" ")
                if command != "ADD":
                    raise ValueError
                self.total += int(number)
            except ValueError:
                self.transport.write(b"ERR expected ADD n\n")
                continue
            self.transport.write(b"%d\n" % self.total)


def test_int_of_a_decoded_line_takes_other_digits_and_fails_answers():
    report = check("19.1", DecodesInTheTry)
    assert report.failed == {"answers"}, repr(report)
    assert report.message("answers").endswith(
        "RunningTotal answers b'2\\nERR expected ADD n\\nERR expected ADD n\\n3\\n', yours"
        " b'2\\n5\\nERR expected ADD n\\n6\\n'")


# -- 19.2 -----------------------------------------------------------------------------------


def two_writes(sock, header, body, reply_size=2):
    sock.sendall(header)
    sock.sendall(body)
    return ask_reply(sock, reply_size)


def ask_reply(sock, reply_size):
    reply = b""
    while len(reply) < reply_size:
        chunk = sock.recv(reply_size - len(reply))
        if not chunk:
            raise ConnectionError("closed mid-reply")
        reply += chunk
    return reply


def test_two_writes_meet_nagle_and_fail_only_on_speed():
    report = check("19.2", two_writes)
    assert report.failed == {"fast"}, repr(report)
    assert "median" in report.message("fast")


def test_two_writes_with_nodelay_pass():
    def nodelay(sock, header, body, reply_size=2):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return two_writes(sock, header, body, reply_size)

    assert check("19.2", nodelay).passed


def test_send_instead_of_sendall_loses_a_large_body(monkeypatch):
    monkeypatch.setattr(ch19, "SEND_LIMIT", 0.3)

    def send_once(sock, header, body, reply_size=2):
        sock.send(header + body)
        return ask_reply(sock, reply_size)

    report = check("19.2", send_once)
    assert "sends" in report.failed, repr(report)
    assert "bytes the server got" in report.message("sends")


def test_body_before_header_fails():
    def swapped(sock, header, body, reply_size=2):
        sock.sendall(body + header)
        return ask_reply(sock, reply_size)

    report = check("19.2", swapped)
    assert report.failed == {"sends"}, repr(report)
    assert "in the wrong order" in report.message("sends")


def test_one_recv_gets_part_of_the_reply():
    def one_recv(sock, header, body, reply_size=2):
        sock.sendall(header + body)
        return sock.recv(reply_size)

    report = check("19.2", one_recv)
    assert report.failed == {"reply", "closed"}, repr(report)  # one recv(): a short reply
    assert "ask() returned b'AB'" in report.message("reply")
    assert "returned b'o', expected it to raise" in report.message("closed")


def test_reading_more_than_the_reply_fails():
    def greedy(sock, header, body, reply_size=2):
        sock.sendall(header + body)
        reply = b""
        while len(reply) < reply_size:
            reply += sock.recv(1024)
        return reply

    report = check("19.2", greedy)
    assert "reply" in report.failed, repr(report)


def test_a_buffered_file_that_reads_ahead_fails_reply():
    def buffered(sock, header, body, reply_size=2):
        sock.sendall(header + body)
        reply = sock.makefile("rb").read(reply_size)  # the file reads ahead, then is dropped
        if len(reply) < reply_size:
            raise ConnectionError("closed mid-reply")
        return reply

    report = check("19.2", buffered)
    assert report.failed == {"reply"}, repr(report)
    assert report.message("reply").endswith(
        "the socket then held b'', not b'next': ask() read past its reply and dropped what it"
        " read")


def test_closing_the_socket_fails_kept_and_names_it_in_fast():
    def closes(sock, header, body, reply_size=2):
        with sock:
            return ask(sock, header, body, reply_size)

    report = check("19.2", closes)
    assert report.failed == {"kept", "fast"}, repr(report)
    assert report.message("kept") == (
        "after one request, ask() had closed the socket: the caller cannot make a second"
        " request on it")
    assert report.message("fast").startswith("request 2 of 9 on one connection: ")
    assert report.message("fast").endswith("; ask() had closed the socket")


def test_shutting_down_the_sending_side_fails_kept():
    def half_closes(sock, header, body, reply_size=2):
        sock.sendall(header + body)
        sock.shutdown(socket.SHUT_WR)
        return ask_reply(sock, reply_size)

    report = check("19.2", half_closes)
    assert report.failed == {"kept", "fast"}, repr(report)
    assert "got BrokenPipeError" in report.message("kept")
    assert "ask() left the socket unable to send" in report.message("kept")
    assert report.message("fast").startswith("request 2 of 9 on one connection: ")


def test_changing_the_timeout_fails_kept():
    def blocks_forever(sock, header, body, reply_size=2):
        sock.settimeout(None)
        return ask(sock, header, body, reply_size)

    report = check("19.2", blocks_forever)
    assert report.failed == {"kept"}, repr(report)
    assert report.message("kept").startswith(
        "the socket came with a timeout of 3 s; after ask() it was None")


def test_looping_on_a_closed_connection_fails_closed(monkeypatch):
    monkeypatch.setattr(ch19, "ASK_LIMIT", 0.3)

    def spins(sock, header, body, reply_size=2):
        sock.sendall(header + body)
        reply = b""
        while len(reply) < reply_size:
            reply += sock.recv(reply_size - len(reply))  # b"" forever once the server closed
        return reply

    report = check("19.2", spins)
    assert report.failed == {"closed"}, repr(report)
    assert report.message("closed") == (
        "the server sent b'o' of a 2-byte reply, then closed the connection; ask(sock,"
        " b'HEAD', <8 bytes>, reply_size=2) was still running after 0.3 s: it kept reading a"
        " closed connection")


def test_the_solutions_pass():
    assert check("19.1", FastTotal).passed and check("19.2", ask).passed
    assert set(SOLUTIONS) == {"19.1", "19.2"}
