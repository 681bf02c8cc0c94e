"""Checks for chapter 02 (streams and framing).

02.1 encode_netstring(payload) -> bytes
02.2 NetstringDecoder(max_length=1024) with feed(data) -> list[bytes]
02.3 read_frame(sock, max_size=65536) -> bytes | None, for the chapter's frame format:
     version byte 1, 4-byte big-endian length, payload.

The decoder checks feed every split of their test streams. The read_frame checks run on
a live TCP connection on 127.0.0.1 whose writer sends each piece only after the reader's
previous recv() returned (`paced.Pieces`), so the reader really sees short reads.
"""

from __future__ import annotations

import functools
import struct

from .answers import run_answer, show
from .framework import (
    CheckFailed,
    describe_error,
    exercise,
    fail,
    note_raised,
    observation,
    require,
)
from .paced import Pieces, count, kept_reading

TIMEOUT = 1.0  # how long the reader's code may run (or block) before the check gives up


# -- 02.1 -----------------------------------------------------------------

encode = exercise("02.1", "Encode a netstring")


def _encodes(fn, payload, expected):
    outcome = run_answer(fn, payload, limit=TIMEOUT, what=f"encode_netstring({show(payload)})")
    require(outcome.kind == "returned", f"encode_netstring({show(payload)}) {outcome}")
    got = outcome.value
    require(isinstance(got, bytes),
            f"encode_netstring({show(payload)}) returned a {type(got).__name__}, {show(got)},"
            " expected bytes")
    require(got == expected, f"encode_netstring({show(payload)}) returned {show(got)},"
                             f" expected {show(expected)}")


@encode.check("hello", "b'hello' -> b'5:hello,'",
              hint="Four parts: the length written in decimal digits (ASCII), a colon, the"
                   " payload itself, a comma. The result is bytes.")
def _hello(fn):
    _encodes(fn, b"hello", b"5:hello,")


@encode.check("empty", "b'' -> b'0:,'",
              hint="The empty payload still has a length, 0, and still gets its colon and"
                   " comma.")
def _empty(fn):
    _encodes(fn, b"", b"0:,")


@encode.check("any-bytes", "any bytes, colons and commas too, kept byte for byte",
              hint="Never look inside the payload and never decode it: it is bytes, not text.")
def _any_bytes(fn):
    _encodes(fn, b"\x00:,\xff\n", b"5:\x00:,\xff\n,")


@encode.check("length-in-bytes", "the length counts bytes: '€uro' in UTF-8 is 6",
              hint="The length is the number of bytes of the payload, not of characters.")
def _length_in_bytes(fn):
    payload = "€uro".encode()
    _encodes(fn, payload, b"6:" + payload + b",")


@encode.check("multi-digit", "a 1000-byte payload: a four-digit length",
              hint="The length is written out in decimal digits, as many as it needs.")
def _multi_digit(fn):
    _encodes(fn, b"x" * 1000, b"1000:" + b"x" * 1000 + b",")


@encode.check("str-raises", "a str raises TypeError",
              hint="A str has no length in bytes until it is encoded, and only the caller"
                   " knows how. Refuse it rather than guess.")
def _str_raises(fn):
    outcome = run_answer(fn, "héllo", limit=TIMEOUT, what="encode_netstring('héllo')")
    require(outcome.is_error(TypeError), f"encode_netstring('héllo') {outcome}, expected it to"
                                         " raise TypeError")


# -- 02.2 -----------------------------------------------------------------

decoder = exercise("02.2", "Decode netstrings")


def _netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


_GOOD = [b"hello", b"", b"a,b:c", b"12:", b"\x00\xff\n", "€10,00 au café".encode()]
_STREAM = b"".join(map(_netstring, _GOOD))
_HELLO = _netstring(b"hello")


def _splits(stream, three=True, cuts=None):
    """The stream in one chunk, every cut into two (and into three, if `three`), then
    single bytes. `cuts`: cut into two only at the first `cuts` positions."""
    n = len(stream)
    yield [stream]
    yield from ([stream[:i], stream[i:]] for i in range(min(n, cuts or n) + 1))
    if three:
        yield from ([stream[:i], stream[i:j], stream[j:]]
                    for i in range(n + 1) for j in range(i, n + 1))
    yield [stream[k : k + 1] for k in range(n)]


class _Fed:
    """What a new decoder did with `chunks`: the frames feed() returned, those plus the
    error's .frames, and the error (None if none). `now` says what is being fed."""

    def __init__(self, cls, chunks, now, **kwargs):
        self.chunks, self.returned, self.error = chunks, [], None
        dec = cls(**kwargs)
        for chunk in chunks:
            now[:] = [chunks, chunk]
            try:
                got = dec.feed(chunk)
            except ValueError as exc:
                self.error = exc
                break
            except Exception as exc:
                note_raised(exc)
                raise CheckFailed(f"fed {show(chunks)}: feed({show(chunk)}) raised"
                                     f" {describe_error(exc)}, which is not a ValueError") from exc
            require(isinstance(got, list), f"fed {show(chunks)}: feed({show(chunk)}) returned"
                                           f" {show(got)}, expected a list")
            self.returned += got
        frames = getattr(self.error, "frames", None)
        self.frames = self.returned + (list(frames) if isinstance(frames, list | tuple) else [])


def _feed_all(cls, streams, what, **kwargs):
    """_Fed for each of `streams` (lists of chunks), run with a deadline."""
    now = []
    try:
        outcome = run_answer(lambda: [_Fed(cls, chunks, now, **kwargs) for chunks in streams],
                             limit=TIMEOUT, what=f"feeding {what}")
    except CheckFailed as exc:
        fail(f"{exc}: feed({show(now[1])}) never returned (the stream was fed as"
             f" {show(now[0])})" if now else str(exc))
    if outcome.kind == "raised":
        raise outcome.error
    return outcome.value


def _same_frames(cls, streams, expected, what, **kwargs):
    for fed in _feed_all(cls, streams, what, **kwargs):
        require(fed.error is None, f"fed {show(fed.chunks)}: feed() raised"
                f" {describe_error(fed.error)}, expected frames {show(expected)}")
        require(fed.frames == expected, f"fed {show(fed.chunks)}: got frames"
                f" {show(fed.frames)}, expected {show(expected)}")


@observation
def _returns(cls):
    """feed() returns, for a simple stream in one piece and byte by byte (an endless loop
    in feed() fails every check at once instead of each after TIMEOUT)."""
    return _feed_all(cls, [[_STREAM], [_STREAM[k : k + 1] for k in range(len(_STREAM))]],
                     "a few good netstrings")


@decoder.check("one-frame", "b'5:hello,' in one feed() -> [b'hello']",
               hint="Read the digits up to the colon, then that many payload bytes, then"
                    " expect the comma. Frames are bytes.")
def _one_frame(cls):
    _returns(cls)
    (fed,) = _feed_all(cls, [[_HELLO]], "b'5:hello,'")
    require(fed.error is None, f"fed b'5:hello,': feed() raised {describe_error(fed.error)}")
    require(fed.frames == [b"hello"], f"fed b'5:hello,': feed() returned {show(fed.frames)},"
                                      " expected [b'hello']")
    require(all(type(f) is bytes for f in fed.frames),
            f"fed b'5:hello,': feed() returned a frame of type {type(fed.frames[0]).__name__},"
            " expected bytes")


@decoder.check("many-in-one-feed", "several frames in one feed(), empty and 17-byte ones too",
               hint="After one frame, look for the next in what is left of the buffer, and"
                    " keep going until no complete frame is left. A length may have several"
                    " digits.")
def _many_in_one_feed(cls):
    _returns(cls)
    _same_frames(cls, [[_STREAM]], _GOOD, "several netstrings in one chunk")


@decoder.check("byte-by-byte", "fed one byte at a time",
               hint="Keep what is not yet a whole frame in the decoder, between feed() calls,"
                    " and return only complete frames.")
def _byte_by_byte(cls):
    _returns(cls)
    _same_frames(cls, [[_STREAM[k : k + 1] for k in range(len(_STREAM))]], _GOOD,
                 "one byte at a time")


@decoder.check("every-split", f"every cut into two or three chunks"
               f" ({sum(1 for _ in _splits(_STREAM))} ways)",
               hint="A chunk may end anywhere: inside the length, right after the colon, inside"
                    " the payload, just before the comma. An empty chunk returns [].")
def _every_split(cls):
    _returns(cls)
    _same_frames(cls, _splits(_STREAM), _GOOD, "every cut into two or three chunks")


@decoder.check("max-length", "a payload of exactly max_length is accepted (100, and 1024 by"
               " default)", hint="The limit is the largest payload allowed, not the first one"
                                 " refused; and use the max_length the decoder was given.")
def _max_length(cls):
    _returns(cls)
    payload = b"m" * 100
    _same_frames(cls, _splits(_netstring(payload), three=False), [payload],
                 "a 100-byte payload, max_length=100", max_length=100)
    payload = b"d" * 1024
    _same_frames(cls, [[_netstring(payload)], [b"1", b"024:" + payload, b","]], [payload],
                 "a 1024-byte payload to NetstringDecoder()")


def _rejects(cls, cases, **kwargs):
    """Each (bad bytes, why) after a good frame: a ValueError for every split. Returns the
    _Fed of every split that raised."""
    raised = []
    for bad, why in cases:
        stream = _HELLO + bad
        # a cut past the first 64 bytes only moves more of _ENDLESS's 1,000 digits into the
        # first chunk (the other cases are shorter): the same test again, 15 times the work
        splits = _splits(stream, three=False, cuts=64)
        for fed in _feed_all(cls, splits, show(stream), **kwargs):
            require(fed.error is not None,
                    f"fed {show(fed.chunks)}: no error, frames {show(fed.returned)}; {why}")
            raised.append(fed)
    return raised


_GARBAGE = [(b"x:abc,", "a length of b'x' is not digits"),
            (b":abc,", "an empty length is not a length"),
            (b"+3:abc,", "b'+3' is not digits only (int() accepts it)"),
            (b" 3:abc,", "b' 3' is not digits only (int() accepts it)"),
            (b"3 :abc,", "b'3 ' is not digits only (int() accepts it)"),
            (b"3_0:" + b"a" * 30 + b",", "b'3_0' is not digits only (int() accepts it)"),
            (b"-1:,", "b'-1' is not digits only"),
            ("３:abc,".encode(), "a full-width 3 ('３' in UTF-8) is not an ASCII digit"
                                 " (str.isdigit() and int() accept it)"),
            (b"03:abc,", "a length with a leading zero (b'03') is forbidden"),
            (b"00:,", "a length with a leading zero (b'00') is forbidden")]
_NO_COMMA = [(b"3:abcX", "b'X' follows the 3-byte payload, not b','"),
             (b"3:abc:", "b':' follows the 3-byte payload, not b','"),
             (b"3:abcd,", "b'd' follows the 3-byte payload, not b','")]
_TOO_LONG = [(b"101:", "a length of 101 is above max_length=100: reject it at its colon,"
                       " without waiting for the payload")]
_ENDLESS = [(b"9" * 1000, "1000 digits and no colon, with max_length=100: a length field"
                          " longer than 3 digits can never be valid")]


@decoder.check("garbage-length", "a length that is not plain digits is rejected",
               hint="Check every byte of the length field yourself: one or more ASCII digits,"
                    " no sign, no space, no underscore, and no leading zero (only the empty"
                    " payload's length starts with 0). int() is more lenient than netstrings.")
def _garbage_length(cls):
    _returns(cls)
    _rejects(cls, _GARBAGE)


@decoder.check("missing-comma", "a payload not followed by b',' is rejected",
               hint="Count the payload's bytes; the byte right after them must be the comma.")
def _missing_comma(cls):
    _returns(cls)
    _rejects(cls, _NO_COMMA)


@decoder.check("too-long-at-colon", "a length above max_length is rejected at its colon",
               hint="You know the length as soon as its colon arrives: compare it with"
                    " max_length then, before any payload.")
def _too_long_at_colon(cls):
    _returns(cls)
    _rejects(cls, _TOO_LONG, max_length=100)
    _rejects(cls, [(b"1025:", "a length of 1025 is above NetstringDecoder()'s max_length"
                              " of 1024")])


@decoder.check("endless-length", "digits without a colon are rejected once there are too many",
               hint="A valid length has at most as many digits as max_length has. Check the"
                    " digits that have arrived even while the colon has not.")
def _endless_length(cls):
    _returns(cls)
    _rejects(cls, _ENDLESS, max_length=100)

    def digit_by_digit():
        dec = cls(max_length=100)
        for k in range(1, 5):
            try:
                dec.feed(b"9")
            except ValueError:
                return k
        return None

    outcome = run_answer(digit_by_digit, limit=TIMEOUT, what="feeding digits one at a time")
    if outcome.kind == "raised":
        raise outcome.error
    require(outcome.value is not None,
            "fed b'9' four times with max_length=100: no error, but a 4-digit length is"
            " above 100 whatever follows: the decoder keeps buffering digits")


@decoder.check("keeps-frames", "the frames before bad bytes are in the error's .frames",
               hint="When a feed() call raises, the frames it had already decoded must not be"
                    " lost: put them on the exception, in a .frames list, and put there only"
                    " the frames of that call.")
def _keeps_frames(cls):
    _returns(cls)
    raised = []
    for cases, kwargs in [(_GARBAGE, {}), (_NO_COMMA, {}), (_TOO_LONG, {"max_length": 100}),
                          (_ENDLESS, {"max_length": 100})]:
        try:
            raised += _rejects(cls, cases, **kwargs)
        except CheckFailed:
            continue  # not rejected at all: the rejection checks say so
    for fed in raised:
        frames = getattr(fed.error, "frames", None)
        require(isinstance(frames, list | tuple),
                f"fed {show(fed.chunks)}: feed() raised {describe_error(fed.error)}, whose"
                f" .frames is {show(frames)}, expected a list of the frames decoded in that"
                " call")
        require(fed.frames == [b"hello"],
                f"fed {show(fed.chunks)}: feed() returned {show(fed.returned)}, then raised"
                f" {type(fed.error).__name__} with .frames {show(frames)}; expected"
                " [b'hello'] in all, once")


@decoder.check("independent", "two decoders fed in turn do not mix their bytes",
               hint="Each decoder needs its own buffer: made in __init__, not shared by the"
                    " class or by a default argument.")
def _independent(cls):
    _returns(cls)

    def interleaved():
        one, two = cls(), cls()
        return one.feed(b"5:hel"), two.feed(b"3:abc,"), one.feed(b"lo,")

    outcome = run_answer(interleaved, limit=TIMEOUT, what="feeding two decoders in turn")
    require(outcome.kind == "returned" and outcome.value == ([], [b"abc"], [b"hello"]),
            "one.feed(b'5:hel'), two.feed(b'3:abc,'), one.feed(b'lo,') on two new decoders"
            f" {outcome}, expected ([], [b'abc'], [b'hello'])")


# -- 02.3 -----------------------------------------------------------------

reader = exercise("02.3", "Read one frame from a socket")

_HEADER = struct.Struct("!BI")


def _frame(payload: bytes, version: int = 1) -> bytes:
    return _HEADER.pack(version, len(payload)) + payload


def _bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def _describe(pieces, close, label=None):
    sent = f"sent {label or show(b''.join(pieces))}" if pieces else "sent nothing"
    if len(pieces) > 1:
        sent += f" in {len(pieces)} pieces, each after your previous recv() returned"
    return f"{sent}{', then closed' if close else ', connection left open'}"


def _call(fn, feed, kwargs):
    """read_frame(feed.reader, **kwargs) with a deadline: its Outcome, or the message of a
    call that was still running."""
    args = "".join(f", {k}={v}" for k, v in kwargs.items())
    try:
        return run_answer(functools.partial(fn, feed.reader, **kwargs), limit=TIMEOUT,
                          release=feed.release, what=f"read_frame(sock{args})")
    except CheckFailed as exc:
        return f"{exc}; it had taken {count(feed.reader.taken)} from the socket"


def _reads(pieces, expected, sizes, label=None, **kwargs):
    """A check: read_frame returns `expected` (one call each), taking `sizes` bytes each."""

    def run(fn):
        what, many = _describe(pieces, False, label), len(expected) > 1
        with Pieces(pieces, close=False) as feed:
            for k, (want, size) in enumerate(zip(expected, sizes, strict=True)):
                call, before = f"call {k + 1}: " if many else "", feed.reader.taken
                outcome = _call(fn, feed, kwargs)
                if isinstance(outcome, str):
                    fail(f"{what}: {call}{outcome}")
                took = feed.reader.taken - before
                if took > size:
                    fail(f"{what}: {call}read_frame took {took} bytes from the socket for a"
                         f" {size}-byte frame: it read past the end of its frame, into what"
                         " the next call must read")
                if outcome.is_error(ValueError):
                    short = (", and the stream had not ended: a short read is not the end of"
                             " the stream") if len(pieces) > 1 and took < size else ""
                    fail(f"{what}: {call}read_frame {_name(outcome)}, but the frame was good"
                         f" (your function had taken {count(took)} of its {size}){short}")
                if outcome.kind == "returned" and isinstance(outcome.value, bytearray | memoryview):
                    fail(f"{what}: {call}read_frame returned a {type(outcome.value).__name__},"
                         " expected bytes")
                require(outcome.kind == "returned" and outcome.value == want
                        and type(outcome.value) is type(want),
                        f"{what}: {call}read_frame {_name(outcome)}, expected it to return"
                        f" {show(want)}")

    return run


def _read_one(fn, pieces, *, close, label=None, **kwargs):
    """(what was sent, the Outcome of one read_frame call); fails if it was still running."""
    what = _describe(pieces, close, label)
    with Pieces(pieces, close=close) as feed:
        outcome = _call(fn, feed, kwargs)
    if isinstance(outcome, str):
        fail(f"{what}: {outcome}")
    if message := kept_reading(outcome):
        fail(f"{what}: {message}")
    return what, outcome


def _raises(pieces, why, *, close=True, label=None, **kwargs):
    """A check: read_frame raises a ValueError."""

    def run(fn):
        what, outcome = _read_one(fn, pieces, close=close, label=label, **kwargs)
        if outcome.kind == "returned":
            fail(f"{what}: read_frame returned {show(outcome.value)}, expected a ValueError:"
                 f" {why}")
        require(isinstance(outcome.error, ValueError),
                f"{what}: read_frame {_name(outcome)}, which is not a ValueError ({why})")

    return run


def _name(outcome) -> str:
    """'raised struct.error: ...': a bare `error` would not say which one."""
    cls = type(outcome.error)
    if outcome.error is None or not cls.__name__.islower():
        return str(outcome)
    return f"raised {cls.__module__}.{cls.__qualname__}: {outcome.error}"


_ONE = _frame(b"hello")
_TWO = _frame(b"first") + _frame(b"second")

reader.check("one-piece", "a frame sent in one piece",
             hint="Read the 5-byte header, unpack it with the struct module, then read the"
                  " payload. A struct format without a byte-order character uses this"
                  " machine's byte order and alignment.")(
    _reads([_ONE], [b"hello"], [len(_ONE)],
           f"{show(_ONE)} (version byte 1, length 5 as 4 bytes big-endian, payload b'hello')"))
reader.check("short-reads", "a frame sent one byte at a time",
             hint="recv(n) returns at most n bytes, and fewer whenever fewer have arrived: a"
                  " short read is not the end of the stream. Loop until you have exactly what"
                  " you need.")(_reads(_bytewise(_frame(b"in pieces")), [b"in pieces"],
                                       [len(_frame(b"in pieces"))]))
reader.check("empty-payload", "an empty payload is b'', not None",
             hint="A length of 0 is a whole frame with an empty payload; None is only for"
                  " the end of the stream before a frame.")(_reads([_frame(b"")], [b""], [5]))
reader.check("stops-at-frame-end", "two frames back to back: one call each, nothing lost",
             hint="Never ask recv() for more than the frame still needs: what follows belongs"
                  " to the next call.")(
    _reads([_TWO], [b"first", b"second"], [10, 11]))
reader.check("stops-in-pieces", "the same two frames, the header cut after its first byte",
             hint="When a read comes back short, ask for what is still missing, not for the"
                  " whole size again.")(
    _reads([_TWO[:1], _TWO[1:]], [b"first", b"second"], [10, 11]))
reader.check("max-size-accepted", "a payload of exactly max_size is accepted",
             hint="max_size is the largest payload allowed, not the first one refused.")(
    _reads([_frame(b"m" * 100)], [b"m" * 100], [105], "a frame with a 100-byte payload",
           max_size=100))


@reader.check("clean-eof", "the end of the stream before a frame returns None",
              hint="recv() returning b'' before the first byte of a frame is a clean end:"
                   " return None.")
def _clean_eof(fn):
    what, outcome = _read_one(fn, [], close=True)
    require(outcome.kind == "returned" and outcome.value is None,
            f"{what}: read_frame {outcome}, expected it to return None")


reader.check("eof-in-header", "the end of the stream inside the header raises ValueError",
             hint="b'' after part of a frame means the frame will never be complete: that is"
                  " an error, not a clean end.")(
    _raises([b"\x01\x00"], "the stream ended 2 bytes into a 5-byte header"))
reader.check("eof-in-payload", "the end of the stream inside the payload raises ValueError",
             hint="Check the length of what you read: fewer bytes than the header announced"
                  " means the stream ended inside the frame.")(
    _raises([_frame(b"0123456789")[:8]], "the stream ended 3 bytes into a 10-byte payload"))
reader.check("bad-version", "a wrong version byte raises ValueError",
             hint="The first byte of every frame must be 1; anything else is not this"
                  " protocol.")(
    _raises([_frame(b"hello", version=2)], "the version byte is 2, not 1"))


@reader.check("too-large-at-once", "a length above max_size raises at once, without the body",
              hint="Check the length as soon as the header is in, before you read (and wait"
                   " for) the payload.")
def _too_large_at_once(fn):
    _raises([_HEADER.pack(1, 101)], "101 bytes announced, max_size=100", close=False,
            label="a header announcing 101 bytes", max_size=100)(fn)
    _raises([_HEADER.pack(1, 65537)], "65537 bytes announced, above the default max_size of"
            " 65536", close=False, label="a header announcing 65537 bytes")(fn)
