"""Chapter 19 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import contextlib
import socket

from twisted.internet.protocol import Protocol

from helpers import check
from helpers.exercises import ch19
from solutions.ch19 import SOLUTIONS, FastTotal, ask


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
    assert "the first got" in report.message("per-connection")


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


def test_a_buffer_that_is_never_trimmed_fails_on_cost():
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


# -- 19.2 -----------------------------------------------------------------------------------


def two_writes(sock, header, body, reply_size=2):
    sock.sendall(header)
    sock.sendall(body)
    return ask_reply(sock, reply_size)


def ask_reply(sock, reply_size):
    reply = b""
    while len(reply) < reply_size:
        reply += sock.recv(reply_size - len(reply))
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


def test_send_instead_of_sendall_loses_a_large_body():
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
    assert report.failed == {"reply"}, repr(report)
    assert "ask() returned b'AB'" in report.message("reply")


def test_reading_more_than_the_reply_fails():
    def greedy(sock, header, body, reply_size=2):
        sock.sendall(header + body)
        reply = b""
        while len(reply) < reply_size:
            reply += sock.recv(1024)
        return reply

    report = check("19.2", greedy)
    assert "reply" in report.failed, repr(report)


def test_the_solutions_pass():
    assert check("19.1", FastTotal).passed and check("19.2", ask).passed
    assert set(SOLUTIONS) == {"19.1", "19.2"}
