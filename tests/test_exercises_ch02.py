"""Chapter 02 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import struct
import threading

import pytest

from helpers import check
from helpers.exercises import ch01, ch02
from solutions.ch02 import BadFrame, FrameTooLarge, NetstringDecoder, read_frame, recv_exactly


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch):
    """A blocked answer is given up on sooner than in the notebook (1 s)."""
    monkeypatch.setattr(ch01, "TIMEOUT", 0.3)
    monkeypatch.setattr(ch02, "TIMEOUT", 0.3)


def test_the_stub_is_not_attempted_and_shows_no_hint():
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    class StubDecoder:  # as in the notebook: __init__ is given, feed() is not
        def __init__(self, max_length=1024):
            self.max_length = max_length

        feed = stub

    for exercise_id, answer in [("02.1", stub), ("02.2", StubDecoder), ("02.3", stub)]:
        report = check(exercise_id, answer)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)


# -- 02.1 -------------------------------------------------------------------


def test_netstring_without_comma_fails():
    report = check("02.1", lambda p: b"%d:%s" % (len(p), p))
    assert report.failed == {"hello", "empty", "any-bytes", "length-in-bytes", "multi-digit"}
    assert report.message("hello") == (
        "encode_netstring(b'hello') returned b'5:hello', expected b'5:hello,'")


def test_netstring_that_encodes_str_fails():
    def lenient(payload):
        if isinstance(payload, str):
            payload = payload.encode()
        return b"%d:%s," % (len(payload), payload)

    report = check("02.1", lenient)
    assert report.failed == {"str-raises"}
    assert report.message("str-raises") == (
        "encode_netstring('héllo') returned b'6:h\\xc3\\xa9llo,', expected it to raise"
        " TypeError")


def test_counting_characters_instead_of_bytes_fails():
    def characters(payload):
        text = payload.decode()
        return f"{len(text)}:{text},".encode()

    report = check("02.1", characters)
    assert report.failed == {"any-bytes", "length-in-bytes", "str-raises"}
    assert report.message("length-in-bytes") == (
        "encode_netstring(b'\\xe2\\x82\\xacuro') returned b'4:\\xe2\\x82\\xacuro,', expected"
        " b'6:\\xe2\\x82\\xacuro,'")


def test_formatting_bytes_into_a_str_fails():
    report = check("02.1", lambda p: f"{len(p)}:{p},".encode())
    assert "hello" in report.failed
    assert report.message("hello") == (
        "encode_netstring(b'hello') returned b\"5:b'hello',\", expected b'5:hello,'")


def test_a_length_byte_instead_of_digits_fails():
    report = check("02.1", lambda p: bytes([len(p)]) + b":" + p + b",")
    assert report.failed == {"hello", "empty", "any-bytes", "length-in-bytes", "multi-digit"}


def test_a_bytearray_is_not_bytes():
    report = check("02.1", lambda p: bytearray(b"%d:%s," % (len(p), p)))
    assert report.message("hello") == (
        "encode_netstring(b'hello') returned a bytearray, bytearray(b'5:hello,'), expected"
        " bytes")


def test_the_wrong_exception_for_a_str_fails():
    def value_error(payload):
        if not isinstance(payload, bytes):
            raise ValueError("bytes please")
        return b"%d:%s," % (len(payload), payload)

    report = check("02.1", value_error)
    assert report.failed == {"str-raises"}
    assert report.message("str-raises") == (
        "encode_netstring('héllo') raised ValueError: bytes please, expected it to raise"
        " TypeError")


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


class SearchesForTheComma:
    """Wrong: ends a payload at the next b',' instead of counting its bytes."""

    def __init__(self, max_length=1024):
        self._buffer = b""

    def feed(self, data):
        self._buffer += data
        frames = []
        while b"," in self._buffer:
            item, _, self._buffer = self._buffer.partition(b",")
            frames.append(item.partition(b":")[2])
        return frames


class TrustsInt(NetstringDecoder):
    """Wrong: parses the length with int(), which accepts b"+3", b" 3", b"3 " and b"3_0"."""

    def _check_length(self, head, frames):
        try:
            length = int(head)
        except ValueError:
            return super()._check_length(head, frames)
        if length > self.max_length:
            return super()._check_length(head, frames)
        return length


class TextDigits(NetstringDecoder):
    """Wrong: checks the length as text, where str.isdigit() and int() take any Unicode
    digit, a full-width '３' included."""

    def _check_length(self, head, frames):
        text = head.decode("utf-8")  # UnicodeDecodeError is a ValueError too
        if not text.isdigit() or (len(text) > 1 and text.startswith("0")):
            raise BadFrame(f"bad length {head!r}", frames)
        if len(head) > self._digits or int(text) > self.max_length:
            raise FrameTooLarge(f"length {text}", frames)
        return int(text)


class AcceptsLeadingZeros(NetstringDecoder):
    """Wrong: digits only, but b"03" is taken for 3."""

    def _check_length(self, head, frames):
        if head.isdigit() and len(head) <= self._digits and int(head) <= self.max_length:
            return int(head)
        return super()._check_length(head, frames)


class WaitsForColon:
    """Wrong: checks the length only once its b':' has arrived, so an endless digit
    string is buffered forever."""

    def __init__(self, max_length=1024):
        self.max_length = max_length
        self._buffer = b""

    def _complete(self, frames):
        colon = self._buffer.find(b":")
        head = self._buffer[:colon]
        if not head.isdigit() or (len(head) > 1 and head.startswith(b"0")):
            raise BadFrame(f"bad length {head!r}", frames)
        return colon, int(head)

    def feed(self, data):
        self._buffer += data
        frames = []
        while b":" in self._buffer:
            colon, length = self._complete(frames)
            if length > self.max_length:
                raise FrameTooLarge(f"length {length}", frames)
            end = colon + 1 + length
            if len(self._buffer) <= end:
                break
            if self._buffer[end : end + 1] != b",":
                raise BadFrame("no comma", frames)
            frames.append(self._buffer[colon + 1 : end])
            self._buffer = self._buffer[end + 1 :]
        return frames


class OneDigitTooMany(WaitsForColon):
    """Wrong: bounds the length field, but one digit too late."""

    def feed(self, data):
        frames = super().feed(data)
        if b":" not in self._buffer and len(self._buffer) > len(str(self.max_length)) + 1:
            raise FrameTooLarge("length field too long", frames)
        return frames


class LimitAfterThePayload(WaitsForColon):
    """Wrong: checks max_length only once the whole frame is buffered."""

    def feed(self, data):
        self._buffer += data
        frames = []
        while b":" in self._buffer:
            colon, length = self._complete(frames)
            end = colon + 1 + length
            if len(self._buffer) <= end:
                break
            if length > self.max_length:
                raise FrameTooLarge(f"length {length}", frames)
            if self._buffer[end : end + 1] != b",":
                raise BadFrame("no comma", frames)
            frames.append(self._buffer[colon + 1 : end])
            self._buffer = self._buffer[end + 1 :]
        if b":" not in self._buffer and len(self._buffer) > len(str(self.max_length)):
            raise FrameTooLarge("length field too long", frames)
        return frames


class ComparesAsText(NetstringDecoder):
    """Wrong: compares the length field with max_length as bytes, so b"5" > b"1024"."""

    def _check_length(self, head, frames):
        if head.isdigit() and head > str(self.max_length).encode():
            raise FrameTooLarge(f"length {head!r}", frames)
        return super()._check_length(head, frames)


class IgnoresMaxLength(NetstringDecoder):
    def __init__(self, max_length=1024):
        super().__init__(1024)


class RefusesMaxLength(NetstringDecoder):
    """Wrong: the limit taken as exclusive."""

    def _check_length(self, head, frames):
        length = super()._check_length(head, frames)
        if length >= self.max_length:
            raise FrameTooLarge(f"length {length}", frames)
        return length


class ForgetsFrames(NetstringDecoder):
    def feed(self, data):
        try:
            return super().feed(data)
        except ValueError as exc:
            raise ValueError(str(exc)) from None


class EmptiesFrames(NetstringDecoder):
    def feed(self, data):
        try:
            return super().feed(data)
        except ValueError as exc:
            exc.frames = []
            raise


class RaisesOnTheNextCall(NetstringDecoder):
    """Wrong: returns the good frames and keeps the error for the next feed() (which may
    never come)."""

    def __init__(self, max_length=1024):
        super().__init__(max_length)
        self._pending = None

    def feed(self, data):
        if self._pending:
            raise self._pending
        try:
            return super().feed(data)
        except ValueError as exc:
            self._pending = exc
            return exc.frames


class ClassBuffer(NetstringDecoder):
    """Wrong: one bytearray, made once for the class, shared by every decoder."""

    shared = bytearray()

    def __init__(self, max_length=1024):
        super().__init__(max_length)
        self._buffer = self.shared


class DefaultBuffer(NetstringDecoder):
    """Wrong: a mutable default argument, made once, shared by every decoder."""

    def __init__(self, max_length=1024, buffer=bytearray()):  # noqa: B006, B008
        super().__init__(max_length)
        self._buffer = buffer


class BytearrayFrames(NetstringDecoder):
    def feed(self, data):
        return [bytearray(frame) for frame in super().feed(data)]


class AssertsTheComma(NetstringDecoder):
    """Wrong: an assert for bad input raises AssertionError, not a ValueError."""

    def feed(self, data):
        try:
            return super().feed(data)
        except BadFrame as exc:
            if "expected b','" in str(exc):
                raise AssertionError("no comma") from None  # as `assert` would
            raise


STOP = threading.Event()


class LoopsWhileIncomplete(NetstringDecoder):
    """Wrong: `continue` where it should `break`, so an incomplete frame loops forever
    (until STOP, so that the test leaves no thread spinning)."""

    def feed(self, data):
        self._buffer += data
        frames = []
        while self._buffer and not STOP.is_set():
            colon = self._buffer.find(b":")
            if colon < 0:
                continue
            end = colon + 1 + int(self._buffer[:colon])
            if len(self._buffer) <= end:
                continue
            frames.append(bytes(self._buffer[colon + 1 : end]))
            del self._buffer[: end + 1]
        return frames


EVERY_CHECK = {"one-frame", "many-in-one-feed", "byte-by-byte", "every-split", "max-length",
               "garbage-length", "missing-comma", "too-long-at-colon", "endless-length",
               "keeps-frames", "independent"}


def test_one_feed_one_frame_fails():
    report = check("02.2", OneFeedOneFrame)
    assert {"many-in-one-feed", "byte-by-byte", "every-split"} <= report.failed
    assert report.message("many-in-one-feed").endswith(
        "got frames [b'hello'], expected [b'hello', b'', b'a,b:c', b'12:',"
        " b'\\x00...,00 au caf\\xc3\\xa9']")


def test_searching_for_the_comma_fails_on_a_payload_with_a_comma():
    report = check("02.2", SearchesForTheComma)
    assert {"many-in-one-feed", "garbage-length", "missing-comma"} <= report.failed
    assert "got frames [b'hello', b'', b'a', b'c', b'12:'" in report.message("many-in-one-feed")


def test_parsing_the_length_with_int_fails_the_garbage_check():
    report = check("02.2", TrustsInt)
    assert report.failed == {"garbage-length"}
    assert report.message("garbage-length") == (
        "fed [b'5:hello,+3:abc,']: no error, frames [b'hello', b'abc']; b'+3' is not digits"
        " only (int() accepts it)")


def test_unicode_digits_accepted_fail_the_garbage_check():
    report = check("02.2", TextDigits)
    assert report.failed == {"garbage-length"}
    assert report.message("garbage-length") == (
        "fed [b'5:hello,\\xef\\xbc\\x93:abc,']: no error, frames [b'hello', b'abc']; a"
        " full-width 3 ('３' in UTF-8) is not an ASCII digit (str.isdigit() and int() accept"
        " it)")


def test_a_leading_zero_accepted_fails_the_garbage_check():
    report = check("02.2", AcceptsLeadingZeros)
    assert report.failed == {"garbage-length"}
    assert report.message("garbage-length") == (
        "fed [b'5:hello,03:abc,']: no error, frames [b'hello', b'abc']; a length with a"
        " leading zero (b'03') is forbidden")


def test_waiting_for_the_colon_fails_the_endless_length_check():
    report = check("02.2", WaitsForColon)
    assert report.failed == {"endless-length"}
    assert report.message("endless-length").startswith(
        "fed [b'5:hello,99999999999999999999999999999...999999999999999999']: no error, frames"
        " [b'hello']; 1000 digits and no colon, with max_length=100")


def test_bounding_the_length_field_one_digit_too_late_fails():
    report = check("02.2", OneDigitTooMany)
    assert report.failed == {"endless-length"}
    assert report.message("endless-length") == (
        "fed b'9' four times with max_length=100: no error, but a 4-digit length is above 100"
        " whatever follows: the decoder keeps buffering digits")


def test_checking_the_limit_after_buffering_the_payload_fails():
    report = check("02.2", LimitAfterThePayload)
    assert report.failed == {"too-long-at-colon"}
    assert report.message("too-long-at-colon") == (
        "fed [b'5:hello,101:']: no error, frames [b'hello']; a length of 101 is above"
        " max_length=100: reject it at its colon, without waiting for the payload")


def test_comparing_the_length_as_text_fails():
    report = check("02.2", ComparesAsText)
    assert {"one-frame", "many-in-one-feed", "byte-by-byte"} <= report.failed
    assert report.message("one-frame") == (
        "fed b'5:hello,': feed() raised FrameTooLarge: length b'5'")


def test_ignoring_max_length_fails():
    report = check("02.2", IgnoresMaxLength)
    assert report.failed == {"too-long-at-colon"}


def test_an_exclusive_limit_fails():
    report = check("02.2", RefusesMaxLength)
    assert report.failed == {"max-length"}
    assert report.message("max-length").endswith("raised FrameTooLarge: length 100, expected"
                                                 " frames [b'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
                                                 "...mmmmmmmmmmmmmmmmmm']")


def test_an_error_without_frames_fails():
    report = check("02.2", ForgetsFrames)
    assert report.failed == {"keeps-frames"}
    assert report.message("keeps-frames") == (
        "fed [b'5:hello,x:abc,']: feed() raised ValueError: netstring length must be ASCII"
        " digits, got b'x', whose .frames is None, expected a list of the frames decoded in"
        " that call")


def test_an_error_with_the_frames_emptied_fails():
    report = check("02.2", EmptiesFrames)
    assert report.failed == {"keeps-frames"}
    assert report.message("keeps-frames") == (
        "fed [b'5:hello,x:abc,']: feed() returned [], then raised BadFrame with .frames [];"
        " expected [b'hello'] in all, once")


def test_raising_on_the_next_call_fails():
    report = check("02.2", RaisesOnTheNextCall)
    assert report.failed == {"garbage-length", "missing-comma", "too-long-at-colon",
                             "endless-length"}
    assert report.message("garbage-length") == (
        "fed [b'5:hello,x:abc,']: no error, frames [b'hello']; a length of b'x' is not digits")


@pytest.mark.parametrize("answer", [ClassBuffer, DefaultBuffer])
def test_one_buffer_for_every_decoder_fails(answer):
    answer.shared = bytearray()
    report = check("02.2", answer)
    assert "independent" in report.failed
    assert report.message("independent").startswith(
        "one.feed(b'5:hel'), two.feed(b'3:abc,'), one.feed(b'lo,') on two new decoders raised")


def test_bytearray_frames_fail():
    report = check("02.2", BytearrayFrames)
    assert report.failed == {"one-frame"}
    assert report.message("one-frame") == (
        "fed b'5:hello,': feed() returned a frame of type bytearray, expected bytes")


def test_an_assert_is_not_a_value_error():
    report = check("02.2", AssertsTheComma)
    assert report.failed == {"missing-comma"}
    assert report.message("missing-comma") == (
        "fed [b'5:hello,3:abcX']: feed(b'5:hello,3:abcX') raised AssertionError: no comma,"
        " which is not a ValueError")


def test_a_feed_that_never_returns_fails_every_check_at_once():
    try:
        report = check("02.2", LoopsWhileIncomplete)
    finally:
        STOP.set()
    assert report.failed == EVERY_CHECK
    assert report.message("one-frame") == (
        "feeding a few good netstrings was still running after 0.3 s: feed(b'5') never"
        " returned (the stream was fed as [b'5', b':', b'h', b'e', b'l', b'l',"
        " b'o...xc3', b'\\xa9', b','])")


# -- 02.3 -------------------------------------------------------------------

TWO = "sent b'\\x01\\x00\\x00\\x00\\x05first\\x01\\x00\\x00\\x00\\x06second'"


def rest_of_frame(sock, header, max_size):
    version, length = struct.unpack("!BI", header)
    if version != 1:
        raise ValueError(f"version {version}")
    if length > max_size:
        raise ValueError(f"length {length}")
    payload = recv_exactly(sock, length)
    if len(payload) < length:
        raise ValueError("truncated payload")
    return payload


def single_recv(sock, max_size=65536):
    """Wrong: assumes recv(n) returns n bytes."""
    header = sock.recv(5)
    if not header:
        return None
    _, length = struct.unpack("!BI", header)
    return sock.recv(length) if length else b""


def short_read_is_truncation(sock, max_size=65536):
    """Wrong: takes a short read for the end of the stream."""
    header = sock.recv(5)
    if not header:
        return None
    if len(header) < 5:
        raise ValueError("stream ended inside the header")
    return rest_of_frame(sock, header, max_size)


def greedy(sock, max_size=65536):
    """Wrong: reads a big chunk and drops whatever follows the frame."""
    data = sock.recv(65536)
    if not data:
        return None
    while len(data) < 5 or len(data) < 5 + struct.unpack("!BI", data[:5])[1]:
        data += sock.recv(65536)
    return data[5 : 5 + struct.unpack("!BI", data[:5])[1]]


def recv_n_every_pass(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n)  # asks for n again, not for what is still missing
        if not chunk:
            break
        data += chunk
    return data


def asks_for_n_every_pass(sock, max_size=65536):
    header = recv_n_every_pass(sock, 5)
    if not header:
        return None
    if len(header) < 5:
        raise ValueError("truncated header")
    return rest_of_frame(sock, header[:5], max_size)


def buffered_file(sock, max_size=65536):
    """Wrong: a new buffered file per call reads ahead into its own buffer."""
    stream = sock.makefile("rb")
    header = stream.read(5)
    if not header:
        return None
    if len(header) < 5:
        raise ValueError("truncated header")
    version, length = struct.unpack("!BI", header)
    if version != 1 or length > max_size:
        raise ValueError("bad header")
    payload = stream.read(length)
    if len(payload) < length:
        raise ValueError("truncated payload")
    return payload


def unchecked(sock, max_size=65536):
    """Wrong: never checks the version, max_size or a short result."""
    header = recv_exactly(sock, 5)
    if not header:
        return None
    _, length = struct.unpack("!BI", header)
    return recv_exactly(sock, length)


def limit_after_the_body(sock, max_size=65536):
    header = recv_exactly(sock, 5)
    if not header:
        return None
    if len(header) < 5:
        raise ValueError("truncated header")
    payload = rest_of_frame(sock, header, 2**32)  # reads the body first...
    if len(payload) > max_size:  # ...then checks the limit
        raise ValueError("too long")
    return payload


def none_for_a_short_header(sock, max_size=65536):
    header = recv_exactly(sock, 5)
    if len(header) < 5:
        return None
    return rest_of_frame(sock, header, max_size)


def struct_error_for_a_short_header(sock, max_size=65536):
    header = recv_exactly(sock, 5)
    if not header:
        return None
    return rest_of_frame(sock, header, max_size)  # unpack raises struct.error


def spins_on_eof(sock, max_size=65536):
    first = sock.recv(1)
    if not first:
        return None
    header = first
    while len(header) < 5:
        header += sock.recv(5 - len(header))  # b"" at end of stream: loops forever
    return rest_of_frame(sock, header, max_size)


def little_endian(sock, max_size=65536):
    """Wrong: the length unpacked in this machine's (little-endian) byte order."""
    header = recv_exactly(sock, 5)
    if not header:
        return None
    if len(header) < 5:
        raise ValueError("truncated header")
    version, length = struct.unpack("<BI", header)
    if version != 1 or length > max_size:
        raise ValueError(f"bad header: version {version}, length {length}")
    payload = recv_exactly(sock, length)
    if len(payload) < length:
        raise ValueError("truncated payload")
    return payload


def test_a_single_recv_fails_on_short_reads():
    report = check("02.3", single_recv)
    assert {"short-reads", "stops-in-pieces", "eof-in-header"} <= report.failed
    assert report.message("short-reads") == (
        "sent b'\\x01\\x00\\x00\\x00\\tin pieces' in 14 pieces, each after your previous recv()"
        " returned, connection left open: read_frame raised struct.error: unpack requires a"
        " buffer of 5 bytes, expected it to return b'in pieces'")


def test_a_short_read_taken_for_the_end_of_the_stream_is_named():
    report = check("02.3", short_read_is_truncation)
    assert report.failed == {"short-reads", "stops-in-pieces"}
    assert report.message("short-reads") == (
        "sent b'\\x01\\x00\\x00\\x00\\tin pieces' in 14 pieces, each after your previous recv()"
        " returned, connection left open: read_frame raised ValueError: stream ended inside"
        " the header, but the frame was good (your function had taken 1 byte of its 14), and"
        " the stream had not ended: a short read is not the end of the stream")


def test_a_greedy_reader_is_named_for_reading_past_its_frame():
    report = check("02.3", greedy)
    assert {"stops-at-frame-end", "stops-in-pieces"} <= report.failed
    assert report.message("stops-at-frame-end") == (
        f"{TWO}, connection left open: call 1: read_frame took 21 bytes from the socket for a"
        " 10-byte frame: it read past the end of its frame, into what the next call must read")


def test_asking_for_n_on_every_pass_reads_past_the_frame():
    report = check("02.3", asks_for_n_every_pass)
    assert report.failed == {"stops-in-pieces"}
    assert report.message("stops-in-pieces") == (
        f"{TWO} in 2 pieces, each after your previous recv() returned, connection left open:"
        " call 1: read_frame took 11 bytes from the socket for a 10-byte frame: it read past"
        " the end of its frame, into what the next call must read")


def test_a_buffered_file_per_call_reads_past_the_frame():
    report = check("02.3", buffered_file)
    assert report.failed == {"stops-at-frame-end", "stops-in-pieces"}


def test_a_reader_that_checks_nothing_fails():
    report = check("02.3", unchecked)
    assert report.failed == {"bad-version", "too-large-at-once", "eof-in-header",
                             "eof-in-payload"}
    assert report.message("bad-version") == (
        "sent b'\\x02\\x00\\x00\\x00\\x05hello', then closed: read_frame returned b'hello',"
        " expected a ValueError: the version byte is 2, not 1")
    assert report.message("eof-in-payload") == (
        "sent b'\\x01\\x00\\x00\\x00\\n012', then closed: read_frame returned b'012', expected a"
        " ValueError: the stream ended 3 bytes into a 10-byte payload")


def test_checking_the_limit_after_reading_the_body_fails():
    report = check("02.3", limit_after_the_body)
    assert report.failed == {"too-large-at-once"}
    assert report.message("too-large-at-once") == (
        "sent a header announcing 101 bytes, connection left open: read_frame(sock,"
        " max_size=100) was still running after 0.3 s; it had taken 5 bytes from the socket")


def test_an_exclusive_max_size_fails():
    def exclusive(sock, max_size=65536):
        return read_frame(sock, max_size - 1)

    report = check("02.3", exclusive)
    assert report.failed == {"max-size-accepted"}
    assert report.message("max-size-accepted") == (
        "sent a frame with a 100-byte payload, connection left open: read_frame raised"
        " FrameTooLarge: header announces 100 bytes, maximum is 99, but the frame was good"
        " (your function had taken 5 bytes of its 105)")


def test_ignoring_max_size_fails():
    report = check("02.3", lambda sock, max_size=65536: read_frame(sock))
    assert report.failed == {"too-large-at-once"}


def test_none_for_a_truncated_header_fails():
    report = check("02.3", none_for_a_short_header)
    assert report.failed == {"eof-in-header"}
    assert report.message("eof-in-header") == (
        "sent b'\\x01\\x00', then closed: read_frame returned None, expected a ValueError: the"
        " stream ended 2 bytes into a 5-byte header")


def test_struct_error_is_not_a_value_error():
    report = check("02.3", struct_error_for_a_short_header)
    assert report.failed == {"eof-in-header"}
    assert report.message("eof-in-header") == (
        "sent b'\\x01\\x00', then closed: read_frame raised struct.error: unpack requires a"
        " buffer of 5 bytes, which is not a ValueError (the stream ended 2 bytes into a"
        " 5-byte header)")


def test_none_for_an_empty_payload_fails():
    report = check("02.3", lambda sock, max_size=65536: read_frame(sock, max_size) or None)
    assert report.failed == {"empty-payload"}
    assert report.message("empty-payload") == (
        "sent b'\\x01\\x00\\x00\\x00\\x00', connection left open: read_frame returned None,"
        " expected it to return b''")


def test_a_loop_that_ignores_eof_is_stopped_and_named():
    report = check("02.3", spins_on_eof)
    assert report.failed == {"eof-in-header"}
    assert report.message("eof-in-header") == (
        "sent b'\\x01\\x00', then closed: recv() returned b'' (end of stream) 101 times in a"
        " row and your function kept calling it: it never ends")


def test_a_little_endian_length_is_shown_against_the_header_sent():
    report = check("02.3", little_endian)
    assert report.failed == {"one-piece", "short-reads", "stops-at-frame-end",
                             "stops-in-pieces", "max-size-accepted"}
    assert report.message("one-piece") == (
        "sent b'\\x01\\x00\\x00\\x00\\x05hello' (version byte 1, length 5 as 4 bytes"
        " big-endian, payload b'hello'), connection left open: read_frame raised ValueError:"
        " bad header: version 1, length 83886080, but the frame was good (your function had"
        " taken 5 bytes of its 10)")


def test_a_bytearray_payload_is_not_bytes():
    def as_bytearray(sock, max_size=65536):
        payload = read_frame(sock, max_size)
        return None if payload is None else bytearray(payload)

    report = check("02.3", as_bytearray)
    assert report.failed == {"one-piece", "short-reads", "empty-payload", "stops-at-frame-end",
                             "stops-in-pieces", "max-size-accepted"}
    assert report.message("empty-payload") == (
        "sent b'\\x01\\x00\\x00\\x00\\x00', connection left open: read_frame returned a"
        " bytearray, expected bytes")
