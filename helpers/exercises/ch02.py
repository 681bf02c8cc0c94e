"""Checks for chapter 02 (streams and framing).

02.1 `encode_netstring(payload) -> bytes`
02.2 `NetstringDecoder(max_length=1024)` with `feed(data) -> list[bytes]`
02.3 `read_frame(sock, max_size=65536) -> bytes | None` for the chapter's frame
     format: version byte 1, 4-byte big-endian length, payload.

The decoder checks feed every split of their test streams; the read_frame checks
run on a live TCP connection on 127.0.0.1, whose writer sends each piece only after
the reader's previous recv() returned, so the reader really sees short reads.
"""

from __future__ import annotations

import socket
import struct
import threading

from .legacy import Check, exercise

# -- 02.1 -----------------------------------------------------------------


def _expect_encoding(fn, payload, expected):
    got = fn(payload)
    assert isinstance(got, bytes), f"returned {type(got).__name__} {got!r}, expected bytes"
    assert got == expected, f"encode_netstring({payload!r}) returned {got!r}, expected {expected!r}"


def _rejects_str(fn):
    try:
        got = fn("héllo")
    except TypeError:
        return
    except Exception as exc:
        raise AssertionError(
            f"encode_netstring('héllo') raised {type(exc).__name__}: {exc}, expected TypeError"
        ) from None
    raise AssertionError(f"encode_netstring('héllo') returned {got!r}, expected TypeError")


exercise(
    "02.1",
    "Encode a netstring",
    Check(
        "b'hello' -> b'5:hello,'",
        lambda fn: _expect_encoding(fn, b"hello", b"5:hello,"),
        "length in ASCII decimal digits, then b':', the payload, b','",
    ),
    Check(
        "empty payload -> b'0:,'",
        lambda fn: _expect_encoding(fn, b"", b"0:,"),
        "the empty payload still has a length (0), a colon and a comma",
    ),
    Check(
        "binary payload, kept byte for byte",
        lambda fn: _expect_encoding(fn, b"\x00:,\xff\n", b"5:\x00:,\xff\n,"),
        "never look inside the payload: colons, commas and any byte are allowed",
    ),
    Check(
        "a 1000-byte payload (multi-digit length)",
        lambda fn: _expect_encoding(fn, b"x" * 1000, b"1000:" + b"x" * 1000 + b","),
        "write the length in decimal: str(len(payload)).encode('ascii')",
    ),
    Check(
        "a str raises TypeError",
        _rejects_str,
        "only bytes have a length in bytes; do not encode a str for the caller",
    ),
)

# -- 02.2 -----------------------------------------------------------------

_GOOD = [b"hello", b"", b"a,b:c", b"12:", b"\x00\xff\n"]
_STREAM = b"".join(b"%d:%s," % (len(p), p) for p in _GOOD)


def _chunkings(stream, three=True):
    """Every cut into two chunks (or three, if `three`), then single bytes."""
    n = len(stream)
    for i in range(n + 1):
        for j in range(i, n + 1) if three else [n]:
            yield [stream[:i], stream[i:j], stream[j:]]
    yield [stream[k : k + 1] for k in range(n)]


def _decode(cls, chunks, **kwargs):
    """Feed `chunks` to a new decoder; return (frames, error) with the error's .frames added."""
    decoder = cls(**kwargs)
    frames = []
    for chunk in chunks:
        try:
            got = decoder.feed(chunk)
        except ValueError as exc:
            if not hasattr(exc, "frames"):
                raise AssertionError(
                    f"{type(exc).__name__}: {exc} has no .frames attribute (the frames"
                    " decoded earlier in the same feed() call)"
                ) from None
            return frames + list(exc.frames), exc
        assert isinstance(got, list), f"feed() returned {type(got).__name__}, expected a list"
        frames += got
    return frames, None


def _same_frames(cls, chunkings, expected, **kwargs):
    for chunks in chunkings:
        frames, error = _decode(cls, chunks, **kwargs)
        assert error is None, (
            f"fed {chunks!r}: raised {type(error).__name__}: {error}, expected frames {expected!r}"
        )
        assert frames == expected, f"fed {chunks!r}: got frames {frames!r}, expected {expected!r}"


def _rejected(cls, stream, good, what, **kwargs):
    """Every split of `stream` must raise a ValueError and deliver exactly `good` first."""
    for chunks in _chunkings(stream, three=False):
        frames, error = _decode(cls, chunks, **kwargs)
        assert error is not None, (
            f"fed {chunks!r}: no error, frames {frames!r}; {what} must be rejected"
        )
        assert frames == good, (
            f"fed {chunks!r}: raised {type(error).__name__}: {error}, but the good frames"
            f" before it were {frames!r}, expected {good!r}"
        )


def _garbage_lengths(cls):
    for bad in [b"x:abc,", b":abc,", b"+3:abc,", b" 3:abc,", b"3_0:abc,", b"-1:,"]:
        _rejected(cls, b"5:hello," + bad, [b"hello"], f"the length field in {bad!r}")


def _missing_comma(cls):
    for bad in [b"3:abcX", b"3:abc:", b"3:abcd,"]:
        _rejected(cls, b"5:hello," + bad, [b"hello"], f"{bad!r} (no b',' after the payload)")


def _too_long_at_header(cls):
    _rejected(cls, b"5:hello,101:", [b"hello"], "a length of 101 (max_length=100)", max_length=100)


def _endless_length(cls):
    decoder = cls(max_length=100)
    try:
        frames = decoder.feed(b"5:hello," + b"9" * 1000)
    except ValueError as exc:
        assert getattr(exc, "frames", None) == [b"hello"], (
            f"raised {type(exc).__name__}: {exc} with .frames"
            f" {getattr(exc, 'frames', None)!r}, expected [b'hello']"
        )
        return
    raise AssertionError(
        f"fed 1000 digits and no b':' with max_length=100: feed() returned {frames!r} and"
        " kept buffering (unbounded memory)"
    )


def _max_length_accepted(cls):
    payload = b"m" * 100
    _same_frames(cls, _chunkings(b"100:" + payload + b",", three=False), [payload], max_length=100)


exercise(
    "02.2",
    "Decode netstrings",
    Check(
        "one frame in one feed",
        lambda cls: _same_frames(cls, [[b"5:hello,"]], [b"hello"]),
        "read digits up to b':', then that many payload bytes, then expect b','",
    ),
    Check(
        "several frames in one feed, including an empty one",
        lambda cls: _same_frames(cls, [[_STREAM]], _GOOD),
        "loop: after one frame, look for the next in what is left of the buffer",
    ),
    Check(
        "fed byte by byte",
        lambda cls: _same_frames(cls, [[bytes([b]) for b in _STREAM]], _GOOD),
        "keep the incomplete tail in a buffer (self._buffer) between feed() calls",
    ),
    Check(
        f"every split into three chunks ({(len(_STREAM) + 1) * (len(_STREAM) + 2) // 2})",
        lambda cls: _same_frames(cls, _chunkings(_STREAM), _GOOD),
        "a frame may start, end, or be cut anywhere; an empty chunk must return []",
    ),
    Check(
        "a payload of exactly max_length is accepted",
        _max_length_accepted,
        "the limit is inclusive: reject only lengths > max_length",
    ),
    Check(
        "garbage length rejected, good frame kept",
        _garbage_lengths,
        "the length must be one or more ASCII digits (bytes.isdigit()); int() accepts more;"
        " raise a ValueError subclass carrying .frames",
    ),
    Check(
        "missing comma rejected, good frame kept",
        _missing_comma,
        "the byte right after the payload must be b','",
    ),
    Check(
        "length above max_length rejected at the header",
        _too_long_at_header,
        "check the length as soon as the b':' arrives, before waiting for the payload",
    ),
    Check(
        "an endless length field is rejected",
        _endless_length,
        "a length needs at most len(str(max_length)) digits; reject more before the b':'",
    ),
)

# -- 02.3 -----------------------------------------------------------------

_HEADER = struct.Struct("!BI")


def _frame(payload: bytes, version: int = 1) -> bytes:
    return _HEADER.pack(version, len(payload)) + payload


class _ReaderSocket(socket.socket):
    """A socket that counts its recv calls, so the writer can wait for each one,
    and stops a reader that keeps calling recv after the end of the stream."""

    MAX_EOF_READS = 100

    def __init__(self, sock: socket.socket):
        super().__init__(fileno=sock.detach())
        self.recvs = self.eof_reads = 0
        self.changed = threading.Condition()

    def _returned(self, size):
        with self.changed:
            self.recvs += 1
            self.changed.notify_all()
        if size == 0:
            self.eof_reads += 1
            if self.eof_reads > self.MAX_EOF_READS:
                raise AssertionError(
                    f"recv() returned b'' (end of stream) {self.eof_reads} times and"
                    " read_frame kept calling it: stop at b''"
                )

    def recv(self, *args):
        try:
            data = super().recv(*args)
        except OSError:  # a timeout, or the socket closed under the reader
            self._returned(None)
            raise
        self._returned(len(data))
        return data

    def recv_into(self, *args):
        try:
            size = super().recv_into(*args)
        except OSError:
            self._returned(None)
            raise
        self._returned(size)
        return size


def _run_reader(read_frame, pieces, calls, *, close=True, max_size=None):
    """Send `pieces` one recv at a time while `read_frame` runs `calls` times.

    Returns the list of results; an exception from read_frame propagates.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        writer = socket.create_connection(listener.getsockname(), timeout=2)
        accepted, _ = listener.accept()
    reader = _ReaderSocket(accepted)
    reader.settimeout(1)
    done = threading.Event()

    def write():
        with writer:
            try:
                for piece in pieces:
                    with reader.changed:
                        before = reader.recvs
                    writer.sendall(piece)
                    with reader.changed:  # wait until the reader has taken something
                        reader.changed.wait_for(
                            lambda b=before: reader.recvs > b or done.is_set(), 1
                        )
                    if done.is_set():
                        return
                if close:
                    writer.shutdown(socket.SHUT_WR)
            except OSError:  # the reader gave up and closed its end
                return
            done.wait(3)

    thread = threading.Thread(target=write, name="check-02.3-writer", daemon=True)
    thread.start()
    kwargs = {} if max_size is None else {"max_size": max_size}
    try:
        with reader:
            return [read_frame(reader, **kwargs) for _ in range(calls)]
    finally:
        done.set()
        with reader.changed:
            reader.changed.notify_all()
        thread.join(3)


def _reads(pieces, expected, **kwargs):
    def run(read_frame):
        got = _run_reader(read_frame, pieces, len(expected), **kwargs)
        assert got == expected, (
            f"sent {pieces!r}: read_frame returned {got!r}, expected {expected!r}"
        )

    return run


def _raises(pieces, what, **kwargs):
    def run(read_frame):
        try:
            got = _run_reader(read_frame, pieces, 1, **kwargs)
        except ValueError:
            return
        except TimeoutError:
            raise AssertionError(
                f"sent {pieces!r}: read_frame blocked until the socket timed out instead of"
                f" raising ValueError ({what})"
            ) from None
        except Exception as exc:
            raise AssertionError(
                f"sent {pieces!r}: raised {_name(exc)}: {exc}, expected ValueError ({what})"
            ) from None
        raise AssertionError(f"sent {pieces!r}: returned {got[0]!r}, expected ValueError ({what})")

    return run


def _name(exc: BaseException) -> str:
    """`struct.error` rather than a bare `error`; builtins keep their plain name."""
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


exercise(
    "02.3",
    "Read one frame from a socket",
    Check(
        "a frame sent in one piece",
        _reads([_frame(b"hello")], [b"hello"]),
        "read the 5-byte header, unpack it with struct ('!BI'), then read the payload",
    ),
    Check(
        "a frame sent one byte at a time",
        _reads(_bytewise(_frame(b"in pieces")), [b"in pieces"]),
        "recv(n) may return fewer than n bytes: loop until you have exactly n",
    ),
    Check(
        "an empty payload is b'', not None",
        _reads([_frame(b"")], [b""]),
        "a length of 0 means an empty payload; None is only for EOF before a frame",
    ),
    Check(
        "two frames back to back, one call each",
        _reads([_frame(b"first") + _frame(b"second")], [b"first", b"second"]),
        "never recv more than the frame still needs: recv(n - len(got))",
    ),
    Check(
        "EOF before a frame returns None",
        _reads([], [None]),
        "if recv returns b'' before the first header byte, return None",
    ),
    Check(
        "EOF inside the header raises ValueError",
        _raises([b"\x01\x00"], "stream ended inside the header"),
        "recv returning b'' in the middle of a frame is an error, not the end",
    ),
    Check(
        "EOF inside the payload raises ValueError",
        _raises([_frame(b"0123456789")[:8]], "stream ended inside the payload"),
        "recv returning b'' in the middle of a frame is an error, not the end",
    ),
    Check(
        "a wrong version byte raises ValueError",
        _raises([_frame(b"hello", version=2)], "version byte 2"),
        "the first header byte must be 1",
    ),
    Check(
        "a length above max_size raises at once",
        _raises([_HEADER.pack(1, 101)], "length 101 with max_size=100", close=False, max_size=100),
        "check the length right after the header, before reading (waiting for) the payload",
    ),
)
