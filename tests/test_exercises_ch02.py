"""Chapter 02 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake."""

import struct

from helpers import check
from solutions.ch02 import (
    BadFrame,
    FrameTooLarge,
    NetstringDecoder,
    recv_exactly,
)


def test_stub_fails_every_check():
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    class StubDecoder:
        def __init__(self, max_length=1024):
            pass

        feed = stub

    for exercise_id, answer in [("02.1", stub), ("02.2", StubDecoder), ("02.3", stub)]:
        report = check(exercise_id, answer)
        assert not any(r.passed for r in report.results), repr(report)
        assert "NotImplementedError: your code here" in repr(report)


# -- 02.1 -------------------------------------------------------------------


def test_netstring_without_comma_fails():
    report = check("02.1", lambda p: b"%d:%s" % (len(p), p))
    assert "b'hello' -> b'5:hello,'" in report.failed


def test_netstring_that_encodes_str_fails():
    def lenient(payload):
        if isinstance(payload, str):
            payload = payload.encode()
        return b"%d:%s," % (len(payload), payload)

    report = check("02.1", lenient)
    assert report.failed == {"a str raises TypeError"}


# -- 02.2 -------------------------------------------------------------------


class OneFeedOneFrame:
    """Wrong: assumes every feed() holds exactly one whole netstring."""

    def __init__(self, max_length=1024):
        self.max_length = max_length

    def feed(self, data):
        if not data:
            return []
        length, _, rest = data.partition(b":")
        return [rest[: int(length)]]


class TrustsInt(NetstringDecoder):
    """Wrong: parses the length with int(), which accepts b"+3", b" 3" and b"3_0"."""

    def _check_length(self, head, frames):
        try:
            length = int(head)
        except ValueError:
            return super()._check_length(head, frames)
        if length > self.max_length:
            return super()._check_length(head, frames)
        return length


class WaitsForColon:
    """Wrong: checks the length only once its b':' has arrived, so an endless
    digit string is buffered forever."""

    def __init__(self, max_length=1024):
        self.max_length = max_length
        self._buffer = b""

    def feed(self, data):
        self._buffer += data
        frames = []
        while (colon := self._buffer.find(b":")) >= 0:
            head = self._buffer[:colon]
            if not head.isdigit():
                raise BadFrame(f"bad length {head!r}", frames)
            if int(head) > self.max_length:
                raise FrameTooLarge(f"length {int(head)}", frames)
            end = colon + 1 + int(head)
            if len(self._buffer) <= end:
                break
            if self._buffer[end : end + 1] != b",":
                raise BadFrame("no comma", frames)
            frames.append(self._buffer[colon + 1 : end])
            self._buffer = self._buffer[end + 1 :]
        return frames


def test_one_feed_one_frame_fails():
    report = check("02.2", OneFeedOneFrame)
    assert {
        "several frames in one feed, including an empty one", "fed byte by byte"
    } <= report.failed


def test_int_parsing_fails_garbage_check():
    report = check("02.2", TrustsInt)
    assert report.failed == {"garbage length rejected, good frame kept"}


def test_waiting_for_colon_fails_endless_length():
    report = check("02.2", WaitsForColon)
    assert "an endless length field is rejected" in report.failed


def test_error_without_frames_fails():
    class Forgetful(NetstringDecoder):
        def feed(self, data):
            try:
                return super().feed(data)
            except ValueError as exc:
                raise ValueError(str(exc)) from None

    report = check("02.2", Forgetful)
    assert "missing comma rejected, good frame kept" in report.failed
    assert "has no .frames attribute" in repr(report)


# -- 02.3 -------------------------------------------------------------------


def single_recv_reader(sock, max_size=65536):
    """Wrong: assumes recv(n) returns n bytes."""
    header = sock.recv(5)
    if not header:
        return None
    _, length = struct.unpack("!BI", header)
    return sock.recv(length) if length else b""


def greedy_reader(sock, max_size=65536):
    """Wrong: reads a big chunk and drops whatever follows the frame."""
    data = sock.recv(65536)
    if not data:
        return None
    while len(data) < 5 or len(data) < 5 + struct.unpack("!BI", data[:5])[1]:
        data += sock.recv(65536)
    return data[5 : 5 + struct.unpack("!BI", data[:5])[1]]


def unbounded_reader(sock, max_size=65536):
    """Wrong: never checks the version or max_size."""
    header = recv_exactly(sock, 5)
    if not header:
        return None
    _, length = struct.unpack("!BI", header)
    return recv_exactly(sock, length)


def test_single_recv_reader_fails():
    report = check("02.3", single_recv_reader)
    assert "a frame sent one byte at a time" in report.failed


def test_greedy_reader_fails():
    report = check("02.3", greedy_reader)
    assert "two frames back to back, one call each" in report.failed


def test_unbounded_reader_fails():
    report = check("02.3", unbounded_reader)
    assert {
        "a wrong version byte raises ValueError",
        "a length above max_size raises at once",
        "EOF inside the payload raises ValueError",
    } <= report.failed
