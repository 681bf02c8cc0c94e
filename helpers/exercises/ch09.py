"""Checks for chapter 09 (Framing with Twisted).

09.1 Reverser(LineReceiver)   -- lines reversed; a line over 32 bytes: ERR, then a close
09.2 Upload(LineReceiver)     -- SIZE <n>, then n raw bytes; OK <n> <newlines>; else ERR
09.3 (Divide, Calculator)     -- an AMP command with a declared ZeroDivisionError

09.1 and 09.3 serve the answer on 127.0.0.1 and talk to it over real connections (09.1
also feeds it one byte at a time through a StringTransport, and drives two connections at
once); 09.2 drives it through StringTransports, in one chunk, in several, byte by byte, and
two connections at once. What the reader's protocol raises in the reactor thread is logged
by Twisted, and the framework reports it as the cause.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from .. import reactor as _reactor
from ..servers import serve
from ..twisted_log import logged_exceptions
from . import exercise, fail, require, show
from .framework import CheckFailed, describe_error
from .wire import Client

TIMEOUT = 1.0  # the longest a client waits for a reply that should come at once
CLOSE_TIMEOUT = 1.0  # how long a connection may stay open after the last expected byte
CALL_TIMEOUT = 2.0  # the longest an AMP call may take (a server always answers or closes)
QUIET = 0.1  # how long a client listens for unexpected bytes after a complete reply


@contextlib.contextmanager
def _served(name, protocol_class):
    """The reader's protocol served on 127.0.0.1 for the length of a `with`."""
    from twisted.internet.protocol import Factory

    server = serve(name, Factory.forProtocol(protocol_class))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class _Fed:
    """What a protocol wrote back when fed bytes through a StringTransport."""

    written: bytes
    closing: bool


def _feed(protocol_class, chunks, what):
    """A new protocol fed `chunks` through a StringTransport; fail, from the reader's
    exception, if it raised."""
    from twisted.internet.testing import StringTransport

    protocol, transport = protocol_class(), StringTransport()
    protocol.makeConnection(transport)
    for chunk in chunks:
        if transport.disconnecting:
            break  # as a real transport would: nothing is read after a close
        try:
            protocol.dataReceived(chunk)
        except Exception as exc:
            written = transport.value()
            after = f" after writing {show(written)}" if written else ""
            raise CheckFailed(f"{what}: your protocol raised {describe_error(exc)}{after}") \
                from exc
    return _Fed(transport.value(), transport.disconnecting)


def _bytewise(data):
    return [data[i : i + 1] for i in range(len(data))]


def _two_connections(protocol_class, steps, expected):
    """Two protocols at once, each on its own StringTransport, fed `steps` ((1 or 2, bytes,
    a note for the message), in order); each must have written what `expected` gives it."""
    from twisted.internet.testing import StringTransport

    protocols, transports = (protocol_class(), protocol_class()), (StringTransport(),
                                                                   StringTransport())
    for protocol, transport in zip(protocols, transports, strict=True):
        protocol.makeConnection(transport)
    what = ", then ".join(f"connection {n} sent {show(data)}{note}" for n, data, note in steps)
    try:
        for n, data, _ in steps:
            protocols[n - 1].dataReceived(data)
    except Exception as exc:
        raise CheckFailed(f"{what}: your protocol raised {describe_error(exc)}") from exc
    got = [t.value() for t in transports]
    require(got == list(expected), f"{what}: connection 1 got {show(got[0])} and connection 2"
            f" got {show(got[1])}, expected {show(expected[0])} and {show(expected[1])}")


# -- 09.1 -------------------------------------------------------------------

reverser = exercise("09.1", "Reversed lines, with a limit")

LINE_32 = b"0123456789abcdef0123456789ABCDEF"
TOO_LONG = b"ERR line too long\n"


def _exchange(answer, data, expected, *, then_closed):
    """Send `data` to the answer, served; the reply must be `expected`; then the
    connection must close (then_closed) or stay open."""
    with _served("check-09.1", answer) as server, Client(server.port, timeout=TIMEOUT) as c:
        c.send(data)
        got = c.read_exactly(len(expected))
        require(got.data == expected and got.ending == "complete",
                f"sent {show(data)}: the client expected {show(expected)} but {got}")
        rest = c.read_to_end(timeout=CLOSE_TIMEOUT if then_closed else QUIET)
        if then_closed:
            require(not rest.data and rest.ending in ("closed", "reset"),
                    f"sent {show(data)}: after {show(expected)} the client expected the"
                    f" connection to close, but {rest}")
        else:
            require(not rest.data and rest.ending == "silent",
                    f"sent {show(data)}: after {show(expected)} the client expected nothing"
                    f" more, but {rest}")


@reverser.check("reverses", "answers each line with the line reversed",
                hint="LineReceiver hands each complete line, without its delimiter, to one"
                     " method; and this protocol's delimiter is not LineReceiver's default."
                     " A line is bytes, which need not be text in any encoding.")
def _reverses(answer):
    _exchange(answer, b"abc\nhello\n\n12345\n", b"cba\nolleh\n\n54321\n", then_closed=False)
    _exchange(answer, b"caf\xc3\xa9 \xff\n", b"\xff \xa9\xc3fac\n", then_closed=False)  # bytes


@reverser.check("32-accepted", "a 32-byte line is answered, and the connection stays open",
                hint="The limit counts the bytes of a line without its delimiter, and a line"
                     " of exactly 32 bytes is still allowed.")
def _accepts_32(answer):
    _exchange(answer, LINE_32 + b"\nok\n", LINE_32[::-1] + b"\nko\n", then_closed=False)


@reverser.check("33-refused", "a 33-byte line: the replies before it, then ERR line too"
                " long, then a close",
                hint="LineReceiver has a limit on line length and a method it calls when a line"
                     " is over it (section 1). The reply must be written before the"
                     " connection is closed, and closed in a way that still sends it.")
def _refuses_33(answer):
    _exchange(answer, b"ok\n" + b"x" * 33 + b"\nafter\n", b"ko\n" + TOO_LONG, then_closed=True)


@reverser.check("no-delimiter", "33 bytes without a newline get ERR line too long, then a"
                " close",
                hint="A peer that never sends the delimiter must be stopped too: the limit has"
                     " to apply to what is waiting in the buffer, not only to complete lines"
                     " (section 1, 'A line without an end').")
def _no_delimiter(answer):
    _exchange(answer, b"ok\n" + b"y" * 33, b"ko\n" + TOO_LONG, then_closed=True)


@reverser.check("byte-by-byte", "the same, fed one byte at a time",
                hint="Bytes may arrive one at a time: decide on complete lines, or on all that"
                     " is buffered, never on one chunk.")
def _byte_by_byte(answer):
    data = b"abc\n" + LINE_32 + b"\n" + b"x" * 33 + b"\nafter\n"
    expected = b"cba\n" + LINE_32[::-1] + b"\n" + TOO_LONG
    what = f"fed {show(data)} one byte at a time"
    fed = _feed(answer, _bytewise(data), what)
    require(fed.written == expected and fed.closing,
            f"{what}: it wrote {show(fed.written)}"
            + ("" if fed.closing else " and did not close the connection")
            + f", expected {show(expected)}, then a close")


@reverser.check("independent", "two connections at once keep their lines apart",
                hint="Keep each connection's state on its own protocol instance, not in"
                     " something all instances share.")
def _independent_lines(answer):
    steps = [(1, b"abc", " (half a line)"), (2, b"xyz\n", ""), (1, b"de\n", "")]
    _two_connections(answer, steps, [b"edcba\n", b"zyx\n"])


# -- 09.2 -------------------------------------------------------------------

upload = exercise("09.2", "An upload in raw mode")


def _upload(answer, data, expected, *, bytewise=False, what=None):
    """Feed `data` (in one chunk, byte by byte, or a list of chunks); the answer must write
    `expected`."""
    what = what or f"fed {show(data, 100)} {'one byte at a time' if bytewise else 'in one chunk'}"
    chunks = data if isinstance(data, list) else _bytewise(data) if bytewise else [data]
    fed = _feed(answer, chunks, what)
    require(fed.written == expected, f"{what}: it wrote {show(fed.written)}, expected"
            f" {show(expected)}")
    require(not fed.closing, f"{what}: it closed the connection")


@upload.check("upload", "one upload: SIZE 11, its body, OK 11 1",
              hint="After the SIZE line, the body's bytes are not lines: LineReceiver has a"
                   " mode in which every byte goes to another method (section 2).")
def _one_upload(answer):
    _upload(answer, b"SIZE 11\nhello\nworld", b"OK 11 1\n")


@upload.check("counts-newlines", "k counts the newline bytes of the body, nothing else",
              hint="Count one byte value; a carriage return is not a newline, and a body's"
                   " last line need not end with one.")
def _counts_newlines(answer):
    for body, k in ((b"a\rb\r\n", 1), (b"\n\n\n", 3), (b"no newline", 0), (b"x\n\ny", 2)):
        _upload(answer, b"SIZE %d\n%s" % (len(body), body), b"OK %d %d\n" % (len(body), k))


@upload.check("body-is-data", "body bytes are data, even when they look like a command",
              hint="In raw mode no lines are parsed: the body ends when n bytes have come,"
                   " whatever they are.")
def _body_is_data(answer):
    _upload(answer, b"SIZE 7\nSIZE 1\n", b"OK 7 1\n")
    _upload(answer, b"SIZE 4\n\x00\xff\rX", b"OK 4 0\n")


@upload.check("sizes", "sizes 1 and 1000 are accepted",
              hint="Both limits are allowed values; and a number of several digits is one"
                   " number.")
def _sizes(answer):
    _upload(answer, b"SIZE 1\n\n", b"OK 1 1\n")
    body = (b"0123456789" * 99 + b"012345678\n")
    _upload(answer, b"SIZE 1000\n" + body, b"OK 1000 1\n")


NEXT = b"SIZE 3\nab\nSIZE 2\n\n\nhello\nSIZE 12\n" + b"\n" * 12
NEXT_REPLIES = b"OK 3 1\nOK 2 2\nERR\nOK 12 12\n"


@upload.check("next-commands", "the lines after a body, in the same chunk, are read as lines",
              hint="The chunk that ends a body may hold the next commands too: keep only the"
                   " body's bytes, and hand the rest back to line mode (section 2).")
def _next_commands(answer):
    _upload(answer, NEXT, NEXT_REPLIES)


@upload.check("body-ends-chunk", "after a body that ends with its chunk, the next chunk is"
              " read as lines",
              hint="When a body is complete, line mode must come back, whether or not other"
                   " bytes came with the body's last ones.")
def _body_ends_chunk(answer):
    chunks = [b"SIZE 2\nhi", b"SIZE 1\nx", b"hello\n"]
    what = "fed " + ", then ".join(show(chunk) for chunk in chunks) + " in 3 chunks"
    _upload(answer, chunks, b"OK 2 0\nOK 1 0\nERR\n", what=what)


@upload.check("byte-by-byte", "the same, fed one byte at a time",
              hint="The body may come in many pieces: count the bytes still missing across"
                   " calls, and keep each upload's counts apart.")
def _byte_by_byte_upload(answer):
    _upload(answer, NEXT, NEXT_REPLIES, bytewise=True)


OTHER_LINES = [b"hello", b"", b"size 5", b"SIZES 5", b"PUT 5", b"SIZE"]


@upload.check("other-lines", "any other line gets ERR, and the next upload still works",
              hint="Every line that is not a SIZE command gets the same short answer, and the"
                   " protocol goes on reading lines.")
def _other_lines(answer):
    for line in OTHER_LINES:
        _upload(answer, line + b"\nSIZE 2\nhi", b"ERR\nOK 2 0\n")


BAD_SIZES = [b"SIZE x", b"SIZE 0", b"SIZE 1001", b"SIZE 99999999999999999999", b"SIZE -5",
             b"SIZE +5", b"SIZE 05", b"SIZE  5", b"SIZE 5 ", b"SIZE 1_0", b"SIZE 5\r",
             "SIZE ５".encode(), "SIZE ²".encode(), b"SIZE 0x10", b"SIZE 5 5",
             b"SIZE " + b"9" * 5000]  # int() refuses over 4,300 digits: a ValueError


@upload.check("bad-sizes", "a SIZE line whose number is not 1 to 1000, in plain digits, gets"
              " ERR",
              hint="Whatever follows 'SIZE ' comes from the peer: check that it is the number"
                   " the statement allows, written as it allows, before converting it; int()"
                   " is more lenient than the protocol.")
def _bad_sizes(answer):
    for line in BAD_SIZES:
        _upload(answer, line + b"\nSIZE 2\nhi", b"ERR\nOK 2 0\n")


@upload.check("independent", "two connections at once keep their uploads apart",
              hint="Keep each connection's state on its own protocol instance, not in"
                   " something all instances share.")
def _independent(answer):
    steps = [(1, b"SIZE 4\na\n", " (half its body)"), (2, b"SIZE 3\nxyz", ""), (1, b"b\n", "")]
    _two_connections(answer, steps, [b"OK 4 2\n", b"OK 3 0\n"])


# -- 09.3 -------------------------------------------------------------------

divide = exercise("09.3", "An AMP command with a declared error")


def _statement_divide():
    """Divide as the statement declares it: what any correct client sends and expects."""
    from twisted.protocols import amp

    class Divide(amp.Command):
        arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
        response = [(b"quotient", amp.Float())]
        errors = {ZeroDivisionError: b"ZERO_DIVISION"}

    return Divide


@contextlib.contextmanager
def _connected(answer):
    """The reader's Calculator served; yields an AMP client connected to it, and
    `logged`, the exceptions Twisted logs meanwhile."""
    from twisted.internet import endpoints
    from twisted.protocols import amp

    _, calculator = answer
    with _served("check-09.3", calculator) as server:
        def connect():
            from twisted.internet import reactor

            endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", server.port)
            return endpoints.connectProtocol(endpoint, amp.AMP())

        client = _reactor.call(connect, timeout=CALL_TIMEOUT)
        transport = client.transport  # AMP sets client.transport to None once closed
        try:
            with logged_exceptions() as logged:
                yield client, logged
        finally:
            _reactor.call(transport.loseConnection)


@dataclass(frozen=True)
class _Call:
    """How one Divide call ended, and what Twisted logged meanwhile."""

    kind: str  # "answered", "failed" or "silent" (no answer within CALL_TIMEOUT)
    value: object  # the response dict, or the exception
    logged: tuple = ()  # the exceptions logged during the call (the server's, mostly)

    def __str__(self):
        from twisted.protocols import amp

        if self.kind == "answered":
            return f"answered {self.value!r}"
        if self.kind == "silent":
            return f"got no answer within {CALL_TIMEOUT:g} s"
        said = f"failed with {describe_error(self.value)}"
        if isinstance(self.value, amp.UnhandledCommand):
            said += ": your Calculator has no responder for the command name the caller sent"
        if isinstance(self.value, amp.UnknownRemoteError):
            bad_return = [e for e in self.logged if isinstance(e, amp.BadLocalReturn)]
            if bad_return:
                returned = re.search(r" returned (.*) and .* could not serialize it$",
                                     str(bad_return[0].message), re.DOTALL)
                said += (f": your responder returned {returned[1] if returned else 'a value'},"
                         " which Divide's response cannot encode"
                         f" ({describe_error(bad_return[0].enclosed.value)})")
            elif self.logged:
                said += (f": your responder raised {describe_error(self.logged[0])}, an error"
                         " Divide does not declare")
            else:
                said += ": the server sent an error code the statement does not use"
        return said


def _call(client, command, numerator, denominator, logged):
    """Divide(numerator, denominator) on `client`, with a deadline."""
    before = len(logged)
    try:
        response = _reactor.call(client.callRemote, command, numerator=numerator,
                                 denominator=denominator, timeout=CALL_TIMEOUT)
        return _Call("answered", response, tuple(logged[before:]))
    except TimeoutError as exc:  # _reactor.call's: the server said nothing (remote errors
        return _Call("silent", exc, tuple(logged[before:]))  # arrive as AMP's own)
    except Exception as exc:
        return _Call("failed", exc, tuple(logged[before:]))


def _require_answers(client, command, numerator, denominator, quotient, logged, who):
    result = _call(client, command, numerator, denominator, logged)
    if result.kind == "answered" and result.value == {"quotient": quotient} \
            and type(result.value["quotient"]) is float:
        return
    raise CheckFailed(f"Divide({numerator}, {denominator}) from {who} {result}, expected"
                         f" {{'quotient': {quotient!r}}}") \
        from (result.value if result.kind == "failed" else None)


STATEMENT_CLIENT = "a client that declares Divide as the statement does"


@divide.check("answers", "Divide(7, 2) answers {'quotient': 3.5}; other divisions their"
              " float quotient",
              hint="The statement gives each argument's name and AMP type, and the response's:"
                   " the wire carries the names, and each type decides how a value is"
                   " written. Float sends floats only.")
def _answers(answer):
    command = _statement_divide()
    with _connected(answer) as (client, logged):
        for numerator, denominator, quotient in ((7, 2, 3.5), (8, 4, 2.0), (-7, 2, -3.5),
                                                 (10**20, 10**19, 10.0)):
            _require_answers(client, command, numerator, denominator, quotient, logged,
                             STATEMENT_CLIENT)


@divide.check("your-divide", "a caller using your Divide passes ints and gets a float",
              hint="Your Divide is also what callers use to encode their arguments and decode"
                   " the answer: an argument type that refuses an int refuses the caller.")
def _your_divide(answer):
    command, _ = answer
    with _connected(answer) as (client, logged):
        _require_answers(client, _statement_divide(), 7, 2, 3.5, logged, STATEMENT_CLIENT)
        _require_answers(client, command, 7, 2, 3.5, logged, "a client using your Divide")
        _require_answers(client, command, 9, 3, 3.0, logged, "a client using your Divide")


def _require_zero_division(client, command, logged, who):
    result = _call(client, command, 1, 0, logged)
    if not (result.kind == "failed" and type(result.value) is ZeroDivisionError):
        raise CheckFailed(f"Divide(1, 0) from {who} {result}, expected it to fail with"
                             " ZeroDivisionError") \
            from (result.value if result.kind == "failed" else None)


@divide.check("zero-division", "Divide(1, 0) fails with ZeroDivisionError at the caller",
              hint="An error reaches the caller as its own class only if the command declares"
                   " that very class, under the code the statement gives; anything else"
                   " arrives as UnknownRemoteError.")
def _zero_division(answer):
    command, _ = answer
    with _connected(answer) as (client, logged):
        _require_zero_division(client, _statement_divide(), logged, STATEMENT_CLIENT)
    with _connected(answer) as (client, logged):
        _require_zero_division(client, command, logged, "a client using your Divide")


@divide.check("stays-open", "after Divide(1, 0), the connection answers the next call",
              hint="AMP has two ways to declare an error, and one of them also closes the"
                   " connection.")
def _stays_open(answer):
    command = _statement_divide()
    with _connected(answer) as (client, logged):
        first = _call(client, command, 1, 0, logged)
        if first.kind != "failed":
            fail(f"Divide(1, 0) from {STATEMENT_CLIENT} {first}, expected it to fail")
        then = _call(client, command, 9, 3, logged)
        require(then.kind == "answered" and then.value == {"quotient": 3.0},
                f"Divide(1, 0) from {STATEMENT_CLIENT} {first}; then Divide(9, 3) on the same"
                f" connection {then}, expected {{'quotient': 3.0}}")
