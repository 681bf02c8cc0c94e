"""Reference solutions for chapter 02 (streams and framing).

Run through the chapter's checkers by tests/test_exercises_ch02.py:
``check("02.2", SOLUTIONS["02.2"]).passed`` is True.
"""

from __future__ import annotations

import struct


class FramingError(ValueError):
    """The byte stream broke the framing rules; `.frames` holds the good frames
    decoded earlier in the same feed() call."""

    def __init__(self, message, frames=()):
        super().__init__(message)
        self.frames = list(frames)


class FrameTooLarge(FramingError):
    """A frame is longer than the maximum."""


class BadFrame(FramingError):
    """Bytes that cannot be a frame: garbage."""


class TruncatedFrame(FramingError):
    """The stream ended inside a frame."""


# -- 02.1 -------------------------------------------------------------------


def encode_netstring(payload: bytes) -> bytes:
    """b"hello" -> b"5:hello,"; a str raises TypeError (it has no length in bytes)."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    payload = bytes(payload)
    return b"%d:%s," % (len(payload), payload)


# -- 02.2 -------------------------------------------------------------------


class NetstringDecoder:
    """Split a byte stream into netstring payloads; feed() it chunks of any size.

    The length is one or more ASCII digits (leading zeros are forbidden by the
    netstring spec, except for the length 0 itself), checked as each digit arrives,
    so neither a huge length nor an endless digit string is ever buffered.
    """

    def __init__(self, max_length=1024):
        self.max_length = max_length
        self._digits = len(str(max_length))  # the longest valid length field
        self._buffer = bytearray()

    def _check_length(self, head: bytes, frames) -> int:
        if not head.isdigit():  # b"".isdigit() is False: catches an empty length too
            raise BadFrame(f"netstring length must be ASCII digits, got {head!r}", frames)
        if len(head) > 1 and head.startswith(b"0"):
            raise BadFrame(f"netstring length has a leading zero: {head!r}", frames)
        if len(head) > self._digits or int(head) > self.max_length:
            raise FrameTooLarge(
                f"netstring length {head.decode()} is above {self.max_length}", frames
            )
        return int(head)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while self._buffer:
            colon = self._buffer.find(b":", 0, self._digits + 1)
            if colon < 0:  # length field still arriving: check what is there
                self._check_length(bytes(self._buffer[: self._digits + 1]), frames)
                break
            length = self._check_length(bytes(self._buffer[:colon]), frames)
            end = colon + 1 + length  # index of the b"," that must follow
            if len(self._buffer) <= end:
                break  # payload or comma still arriving
            if self._buffer[end] != ord(","):
                got = bytes(self._buffer[end : end + 1])
                raise BadFrame(f"expected b',' after a {length}-byte payload, got {got!r}", frames)
            frames.append(bytes(self._buffer[colon + 1 : end]))
            del self._buffer[: end + 1]
        return frames


# -- 02.3 -------------------------------------------------------------------

HEADER = struct.Struct("!BI")  # version byte (1), payload length, big-endian
VERSION = 1


def recv_exactly(sock, n: int) -> bytes:
    """Read exactly n bytes; fewer only if the stream ended first."""
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)  # never more than this frame still needs
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(sock, max_size=65536):
    """Read one frame from a blocking socket: its payload, or None at a clean EOF."""
    header = recv_exactly(sock, HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        missing = HEADER.size - len(header)
        raise TruncatedFrame(f"stream ended inside a header: {missing} bytes missing")
    version, length = HEADER.unpack(header)
    if version != VERSION:
        raise BadFrame(f"version byte is {version}, expected {VERSION}")
    if length > max_size:
        raise FrameTooLarge(f"header announces {length} bytes, maximum is {max_size}")
    payload = recv_exactly(sock, length)
    if len(payload) < length:
        missing = length - len(payload)
        raise TruncatedFrame(f"stream ended inside a {length}-byte frame: {missing} bytes missing")
    return payload


SOLUTIONS = {
    "02.1": encode_netstring,
    "02.2": NetstringDecoder,
    "02.3": read_frame,
}
