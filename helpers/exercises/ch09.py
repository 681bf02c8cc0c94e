"""Checks for chapter 09 (Framing with Twisted).

09.1 Reverser(LineReceiver)       -- lines reversed, MAX_LENGTH 32, ERR then close if longer
09.2 Upload(LineReceiver)         -- SIZE <n> then n raw bytes; OK <n> <newlines>
09.3 (Divide, Calculator)         -- an AMP command with a declared ZeroDivisionError

09.1 and 09.3 serve the answer on 127.0.0.1 and talk to it; 09.2 drives it through a
StringTransport. Errors Twisted logs while a check runs (an exception in the reader's
protocol, an undeclared AMP error) are collected and named in the report, never printed.
"""

from __future__ import annotations

import socket

from .. import reactor as _reactor
from ..servers import serve
from ..twisted_log import logged_errors
from .legacy import Check, exercise

TIMEOUT = 1.0  # the longest a check waits for a reply that should come at once
CLOSE_TIMEOUT = 0.5  # how long a connection may stay open after the last expected byte


def _guarded(answer, raised):
    """A subclass of `answer` whose exceptions in dataReceived are kept in `raised`, not
    logged by Twisted; the connection is aborted, as Twisted would close it."""

    class Guarded(answer):
        def dataReceived(self, data):
            try:
                super().dataReceived(data)
            except Exception as e:
                raised.append(f"{type(e).__name__}: {e}")
                self.transport.abortConnection()

    return Guarded


def _served(name, answer, body):
    """Run body(server) against `answer` served fresh; name what it raised, if it did."""
    from twisted.internet.protocol import Factory

    raised = []
    with logged_errors() as errors:
        server = serve(name, Factory.forProtocol(_guarded(answer, raised)))
        try:
            body(server)
        except AssertionError as e:
            if raised:
                raise AssertionError(f"{e}; your code raised {raised[0]}") from None
            if errors:
                logged = errors[0].error or errors[0].message
                raise AssertionError(f"{e}; the server logged {logged}") from None
            raise
        finally:
            server.stop()


# -- 09.1 -------------------------------------------------------------------


def _recv(sock, sent, received, timeout=TIMEOUT):
    sock.settimeout(timeout)
    try:
        return sock.recv(4096)
    except ConnectionResetError:
        return b""
    except TimeoutError:
        raise AssertionError(
            f"sent {sent!r}: got {received!r}, then nothing for {timeout:g} s"
            + (" (the connection stayed open)" if received else "")
        ) from None


def _talk(server, data, expected, *, closes):
    """Send data; the reply must be `expected` (checked byte by byte), then a close if
    `closes`."""
    with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
        sock.sendall(data)
        received = b""
        while received != expected:
            chunk = _recv(sock, data, received)
            if not chunk:
                raise AssertionError(
                    f"sent {data!r}: got {received!r}, then the connection closed;"
                    f" expected {expected!r}"
                )
            received += chunk
            if not expected.startswith(received):
                raise AssertionError(f"sent {data!r}: got {received!r}, expected {expected!r}")
        if closes:
            rest = _recv(sock, data, received, CLOSE_TIMEOUT)
            if rest:
                raise AssertionError(
                    f"sent {data!r}: after {expected!r} got {rest!r}, expected the connection"
                    " to close"
                )


def _line_check(data, expected, closes=False):
    def run(answer):
        delimiter = getattr(answer, "delimiter", None)
        if delimiter != b"\n":  # the server would wait for its delimiter: fail now instead
            raise AssertionError(f"{answer.__name__}.delimiter is {delimiter!r}, not b'\\n'")
        limit = getattr(answer, "MAX_LENGTH", None)
        if closes and not (isinstance(limit, int) and 32 <= limit < 40):
            raise AssertionError(f"{answer.__name__}.MAX_LENGTH is {limit!r}, not 32")
        _served("check-09.1", answer, lambda server: _talk(server, data, expected, closes=closes))

    return run


exercise(
    "09.1",
    "Reversed lines, with a limit",
    Check(
        "answers each line, reversed",
        _line_check(b"abc\nhello\n", b"cba\nolleh\n"),
        "delimiter = b'\\n'; in lineReceived, self.sendLine(line[::-1])",
    ),
    Check(
        "a 32-byte line is accepted",
        _line_check(b"0123456789abcdef0123456789ABCDEF\n", b"FEDCBA9876543210fedcba9876543210\n"),
        "MAX_LENGTH = 32: the longest line accepted, without the delimiter",
    ),
    Check(
        "a 33-byte line gets ERR after the line before it, then a close",
        _line_check(b"ok\n" + b"x" * 33 + b"\n", b"ko\nERR line too long\n", closes=True),
        "MAX_LENGTH = 32, and override lineLengthExceeded(self, line): sendLine(b'ERR line too"
        " long'), then self.transport.loseConnection()",
    ),
    Check(
        "40 bytes without a newline get ERR, then a close",
        _line_check(b"y" * 40, b"ERR line too long\n", closes=True),
        "LineReceiver calls lineLengthExceeded once MAX_LENGTH + len(delimiter) bytes have"
        " no delimiter: the same override handles it",
    ),
)

# -- 09.2 -------------------------------------------------------------------


def _drive(answer, chunks):
    """What the answer writes back when fed `chunks` through a StringTransport."""
    from twisted.internet.testing import StringTransport

    protocol, transport = answer(), StringTransport()
    protocol.makeConnection(transport)
    for chunk in chunks:
        protocol.dataReceived(chunk)
    return transport.value()


def _upload_check(stream, expected, bytewise=False):
    def run(answer):
        chunks = [stream[i : i + 1] for i in range(len(stream))] if bytewise else [stream]
        got = _drive(answer, chunks)
        how = "one byte at a time" if bytewise else "in one chunk"
        assert got == expected, f"fed {stream!r} {how}: wrote {got!r}, expected {expected!r}"

    return run


NEXT_COMMAND = b"SIZE 3\nab\nSIZE 2\n\n\nhello\n"
NEXT_REPLIES = b"OK 3 1\nOK 2 2\nERR\n"

exercise(
    "09.2",
    "An upload in raw mode",
    Check(
        "one upload, in one chunk",
        _upload_check(b"SIZE 11\nhello\nworld", b"OK 11 1\n"),
        "delimiter = b'\\n'; on a SIZE line keep n, then self.setRawMode(); count the body in"
        " rawDataReceived",
    ),
    Check(
        "body bytes are data, even when they look like a command",
        _upload_check(b"SIZE 7\nSIZE 1\n", b"OK 7 1\n"),
        "in raw mode every byte goes to rawDataReceived; no lines are parsed until"
        " setLineMode",
    ),
    Check(
        "the next commands in the same chunk are lines again",
        _upload_check(NEXT_COMMAND, NEXT_REPLIES),
        "rawDataReceived may get more than the body: keep data[:remaining], and pass the rest"
        " to self.setLineMode(rest)",
    ),
    Check(
        "the same, fed one byte at a time",
        _upload_check(NEXT_COMMAND, NEXT_REPLIES, bytewise=True),
        "count the bytes still missing across rawDataReceived calls; the body may come in"
        " many pieces",
    ),
)

# -- 09.3 -------------------------------------------------------------------


def _declared(items):
    """{name (bytes): argument type's name} for a Command's arguments or response."""
    return {(n.encode() if isinstance(n, str) else n): type(a).__name__ for n, a in items or ()}


def _declaration(answer):
    divide, _ = answer
    args, response = _declared(divide.arguments), _declared(divide.response)
    want = {b"numerator": "Integer", b"denominator": "Integer"}
    assert args == want, f"Divide.arguments declares {args}, expected {want}"
    want = {b"quotient": "Float"}
    assert response == want, f"Divide.response declares {response}, expected {want}"


def _calls(body):
    """A check that serves the Calculator and runs body(divide, client) on a connection."""

    def run(answer):
        from twisted.internet import endpoints
        from twisted.protocols import amp

        divide, calculator = answer

        def connected(server):
            def connect():
                from twisted.internet import reactor

                endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", server.port)
                return endpoints.connectProtocol(endpoint, amp.AMP())

            client = _reactor.call(connect, timeout=TIMEOUT)
            transport = client.transport  # AMP sets client.transport to None once closed
            try:
                body(divide, client)
            finally:
                _reactor.call(transport.loseConnection)

        _served("check-09.3", calculator, connected)

    return run


def _divide(divide, client, numerator, denominator):
    from twisted.protocols import amp

    try:
        return _reactor.call(client.callRemote, divide, numerator=numerator,
                             denominator=denominator, timeout=TIMEOUT)
    except amp.UnknownRemoteError as e:
        raise AssertionError(
            f"Divide({numerator}, {denominator}) failed with UnknownRemoteError ({e}):"
            " the responder raised an error that Divide does not declare"
        ) from None


@_calls
def _seven_halves(divide, client):
    got = _divide(divide, client, 7, 2)
    assert got == {"quotient": 3.5}, f"Divide(7, 2) answered {got!r}, expected {{'quotient': 3.5}}"


@_calls
def _by_zero(divide, client):
    try:
        got = _divide(divide, client, 1, 0)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError(f"Divide(1, 0) answered {got!r}, expected a ZeroDivisionError")
    got = _divide(divide, client, 8, 4)
    assert got == {"quotient": 2.0}, f"after it, Divide(8, 4) answered {got!r}"


exercise(
    "09.3",
    "An AMP command with a declared error",
    Check(
        "Divide declares Integer arguments and a Float response",
        _declaration,
        "arguments = [(b'numerator', amp.Integer()), (b'denominator', amp.Integer())];"
        " response = [(b'quotient', amp.Float())]",
    ),
    Check(
        "Divide(7, 2) returns {'quotient': 3.5}",
        _seven_halves,
        "@Divide.responder on a Calculator method that returns {'quotient': numerator /"
        " denominator}",
    ),
    Check(
        "Divide(1, 0) raises ZeroDivisionError at the caller; the connection stays open",
        _by_zero,
        "errors = {ZeroDivisionError: b'ZERO_DIVISION'} in Divide: declared errors cross the"
        " wire as their class, and do not close the connection",
    ),
)
