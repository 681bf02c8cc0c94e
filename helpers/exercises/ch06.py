"""Checks for chapter 06 (protocols and factories).

06.1 `Shout`: a Protocol class that echoes each chunk upper-cased (`bytes.upper()`) and
     keeps everything its connection received in `self.received`.
06.2 `Roster`: a Factory class; its protocol numbers connections 1, 2, 3, ... (never
     reused), greets with b"you are N\\n", and answers any data with the numbers of the
     clients connected now: b"connected: 1 3 4\\n".
06.3 `LineCount`: a Protocol class that reads until the client's EOF (half-close), then
     replies b"<newline bytes> <bytes>\\n" and closes.

Every check serves the answer with `serve("check-06.k", ...)` on 127.0.0.1 and talks to
it with plain sockets (2 s timeouts); the server is stopped before the check returns.
The protocols the factory builds are watched: each Twisted callback is wrapped, so an
exception raised by the reader's code is reported by the check (instead of being logged
from the reactor thread) and that connection is aborted; and a check can wait until the
server has received a chunk before it sends the next one.
"""

from __future__ import annotations

import contextlib
import socket

from ..events import EventLog, EventTimeout
from ..servers import serve
from .legacy import Check, exercise

TIMEOUT = 2.0
CALLBACKS = (
    "connectionMade",
    "dataReceived",
    "readConnectionLost",
    "writeConnectionLost",
    "connectionLost",
)


class _Served:
    """Serve `factory` as `name`, watching every protocol it builds; a context manager.

    On exit the server is stopped; an exception the reader's code raised in the reactor
    thread replaces whatever the check saw (it is the cause), and socket errors become
    AssertionErrors.
    """

    def __init__(self, name, factory):
        self.name, self.factory = name, factory
        self.log = EventLog()
        self.protocols = []
        self.errors = []
        build = factory.buildProtocol

        def buildProtocol(addr):
            try:
                p = build(addr)
            except Exception as exc:
                self._failed(f"{type(factory).__name__}.buildProtocol", exc)
                return None  # Twisted closes the connection
            if p is not None:
                self._watch(p)
            return p

        factory.buildProtocol = buildProtocol

    def _failed(self, where, exc):
        self.errors.append(f"{where} raised {type(exc).__name__}: {exc}")

    def _watch(self, p):
        self.protocols.append(p)
        source = f"connection {len(self.protocols)}"
        for name in CALLBACKS:
            method = getattr(p, name, None)
            if callable(method):
                setattr(p, name, self._wrap(p, source, name, method))

    def _wrap(self, p, source, name, method):
        def watched(*args):
            try:
                method(*args)
            except Exception as exc:
                self._failed(f"{type(p).__name__}.{name}", exc)
                transport = getattr(p, "transport", None)
                if name != "connectionLost" and transport is not None:
                    transport.abortConnection()
            finally:
                nbytes = len(args[0]) if name == "dataReceived" and args else 0
                self.log.record(source, name, nbytes=nbytes)

        return watched

    # -- waiting on the server side ---------------------------------------------

    def received(self, n):
        """Bytes that connection n (1, 2, ...) has passed to dataReceived so far."""
        source = f"connection {n}"
        return sum(e.details["nbytes"] for e in self.log.events if e.source == source)

    def _seen(self, n, what):
        source = f"connection {n}"
        return any(e.source == source and e.what == what for e in self.log.events)

    def _wait(self, done, failure):
        """Wait until done(); stop early if the reader's code raised (the caller's
        AssertionError is then replaced by that error in __exit__)."""
        try:
            self.log.wait_until(lambda _: self.errors or done(), timeout=TIMEOUT)
        except EventTimeout:
            raise AssertionError(failure()) from None
        if self.errors:
            raise AssertionError(self.errors[0])

    def wait_received(self, n, total):
        """Wait until connection n's dataReceived has got `total` bytes in all."""
        self._wait(
            lambda: self.received(n) >= total or self._seen(n, "connectionLost"),
            lambda: f"the server's dataReceived got {self.received(n)} bytes on connection"
            f" {n} within {TIMEOUT:g} s, expected {total}",
        )
        if self.received(n) < total:
            raise AssertionError(
                f"connection {n} was closed after the server received {self.received(n)}"
                f" bytes, expected {total}"
            )

    def wait_for(self, n, what):
        """Wait until Twisted has called `what` (a callback name) of connection n."""
        self._wait(
            lambda: self._seen(n, what),
            lambda: f"Twisted did not call {what}() of connection {n} within {TIMEOUT:g} s",
        )

    # -- the context manager ----------------------------------------------------------

    def __enter__(self):
        self.server = serve(self.name, self.factory)
        return self

    def __exit__(self, kind, exc, tb):
        self.server.stop()
        if self.errors:
            raise AssertionError(self.errors[0]) from None
        if isinstance(exc, OSError):  # a reset, a refused or timed-out socket
            raise AssertionError(f"{type(exc).__name__}: {exc}") from None
        return False


class _Client:
    """A socket client with a receive buffer; every read says what it expected."""

    def __init__(self, served):
        self.sock = socket.create_connection(served.server.address, timeout=TIMEOUT)
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _more(self, expecting):
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(
                f"got {self.buffer!r}, then nothing for {TIMEOUT:g} s; expected {expecting}"
            ) from None
        self.buffer += chunk
        return chunk

    def line(self, expecting):
        while b"\n" not in self.buffer:
            if not self._more(expecting):
                raise AssertionError(
                    f"the server closed the connection after {self.buffer!r};"
                    f" expected {expecting}"
                )
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def exactly(self, n, expecting):
        while len(self.buffer) < n:
            if not self._more(expecting):
                raise AssertionError(
                    f"the server closed the connection after {self.buffer!r};"
                    f" expected {expecting}"
                )
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def until_eof(self, expecting):
        while self._more(expecting):
            pass
        data, self.buffer = self.buffer, b""
        return data


def _expect(got, expected, what):
    assert got == expected, f"{what}: got {got!r}, expected {expected!r}"


def _protocol_factory(answer):
    from twisted.internet.protocol import Factory

    return Factory.forProtocol(answer)


# -- 06.1 --------------------------------------------------------------------------


def _shouts(answer):
    with _Served("check-06.1", _protocol_factory(answer)) as served, _Client(served) as c:
        for data in [b"Hello, Twisted 123!\n", b"quiet please"]:
            c.send(data)
            _expect(c.exactly(len(data), "the echo"), data.upper(), f"sent {data!r}")


def _split_character(answer):
    data = "café crème\n".encode()
    first, second = data[:4], data[4:]  # the cut falls inside the two bytes of é
    with _Served("check-06.1", _protocol_factory(answer)) as served, _Client(served) as c:
        c.send(first)
        served.wait_received(1, len(first))
        got = c.exactly(len(first), "the echo of the first chunk")
        c.send(second)
        got += c.exactly(len(second), "the echo of the second chunk")
        _expect(got, data.upper(), f"sent {first!r}, then {second!r}")


def _received_per_connection(answer):
    with _Served("check-06.1", _protocol_factory(answer)) as served:
        with _Client(served) as a:
            served.wait_for(1, "connectionMade")
            with _Client(served) as b:
                for client, data in [(a, b"aaa"), (b, b"bb"), (a, b"a")]:
                    client.send(data)
                    client.exactly(len(data), "the echo")
        served.wait_for(1, "connectionLost")
        served.wait_for(2, "connectionLost")
        first, second = (getattr(p, "received", None) for p in served.protocols[:2])
        for n, got, expected in [(1, first, b"aaaa"), (2, second, b"bb")]:
            assert isinstance(got, bytes | bytearray), (
                f"connection {n}: self.received is {got!r}, expected a bytearray"
            )
            shared = " (one object shared by both connections)" if got is second is first else ""
            assert bytes(got) == expected, (
                f"connection {n} received {expected!r}, but its self.received is"
                f" {bytes(got)!r}{shared}"
            )


exercise(
    "06.1",
    "Shout, and remember",
    Check(
        "echoes each chunk in upper case",
        _shouts,
        "in dataReceived: self.transport.write(data.upper())",
    ),
    Check(
        "non-ASCII bytes unchanged, even when a chunk ends inside a character",
        _split_character,
        "work on bytes: bytes.upper() changes a-z only; decoding one chunk fails when it"
        " ends inside a UTF-8 character (chapter 02)",
    ),
    Check(
        "self.received holds what its own connection received",
        _received_per_connection,
        "create the bytearray in connectionMade (self.received = bytearray()), not in the"
        " class body, where one object would be shared by every connection",
    ),
)

# -- 06.2 --------------------------------------------------------------------------


def _roster(answer):
    return answer()


def _greets_in_order(answer):
    with _Served("check-06.2", _roster(answer)) as served, contextlib.ExitStack() as stack:
        for n in (1, 2, 3):
            client = stack.enter_context(_Client(served))
            _expect(client.line("a greeting"), b"you are %d\n" % n, f"client {n}'s greeting")


def _never_reuses(answer):
    with _Served("check-06.2", _roster(answer)) as served, contextlib.ExitStack() as stack:
        clients = [stack.enter_context(_Client(served)) for _ in range(3)]
        for client in clients:
            client.line("a greeting")
        clients[1].sock.close()
        served.wait_for(2, "connectionLost")  # client 2 has gone
        c4 = stack.enter_context(_Client(served))
        _expect(
            c4.line("a greeting"),
            b"you are 4\n",
            "clients 1, 2, 3 connected, 2 left, a 4th connected; its greeting",
        )


def _lists_connected(answer):
    with _Served("check-06.2", _roster(answer)) as served, contextlib.ExitStack() as stack:
        c1, c2, c3 = (stack.enter_context(_Client(served)) for _ in range(3))
        for client in [c1, c2, c3]:
            client.line("a greeting")
        c2.sock.close()
        served.wait_for(2, "connectionLost")
        c4 = stack.enter_context(_Client(served))
        c4.line("a greeting")
        c1.send(b"?")
        _expect(c1.line("the list"), b"connected: 1 3 4\n", "1, 2, 3 connected, 2 left, 4 came")
        c1.sock.close()
        served.wait_for(1, "connectionLost")
        c3.send(b"who is there?\n")
        _expect(c3.line("the list"), b"connected: 3 4\n", "then 1 left too")
        for n, client in [(3, c3), (4, c4)]:
            client.sock.close()
            served.wait_for(n, "connectionLost")
        c5 = stack.enter_context(_Client(served))
        c5.line("a greeting")
        c5.send(b"?")
        _expect(c5.line("the list"), b"connected: 5\n", "everyone left, then 5 came")


def _separate_factories(answer):
    with (
        _Served("check-06.2", _roster(answer)) as a,
        _Served("check-06.2b", _roster(answer)) as b,
        _Client(a) as ca,
        _Client(b) as cb,
    ):
        _expect(ca.line("a greeting"), b"you are 1\n", "first client of the first Roster()")
        _expect(cb.line("a greeting"), b"you are 1\n", "first client of a second Roster()")
        cb.send(b"?")
        _expect(cb.line("the list"), b"connected: 1\n", "the second Roster() lists")


exercise(
    "06.2",
    "A roster of connected clients",
    Check(
        "greets clients 1, 2, 3 in the order they connect",
        _greets_in_order,
        "take the number from a counter on the factory (self.factory), in connectionMade,"
        " and write b'you are %d\\n'",
    ),
    Check(
        "never reuses a number",
        _never_reuses,
        "a count of open connections is not an identity (the article's 'Protocol N"
        " disconnected' bug): number connections from a counter that only goes up",
    ),
    Check(
        "lists the clients connected right now, in increasing order",
        _lists_connected,
        "keep the live protocols in a set on the factory: add in connectionMade, remove in"
        " connectionLost; answer with their numbers, sorted",
    ),
    Check(
        "two Roster() instances keep separate rosters",
        _separate_factories,
        "create the counter and the set in Roster.__init__, not in the class body, where"
        " every Roster() would share them",
    ),
)

# -- 06.3 --------------------------------------------------------------------------


def _count_remotely(served, chunks, n, *, until_eof=False):
    """Send chunks on a new connection (each after the server got the previous one),
    shut down the sending side, and return the reply line (or, with `until_eof`,
    everything until the server closes)."""
    with _Client(served) as c:
        sent = 0
        for chunk in chunks:
            c.send(chunk)
            sent += len(chunk)
            served.wait_received(n, sent)
        c.sock.shutdown(socket.SHUT_WR)
        try:
            if until_eof:
                got = c.until_eof("a reply, then the server closing the connection")
            else:
                got = c.line("a reply line")
        except AssertionError:
            if c.buffer:
                raise
            got = b""
    if got == b"":
        seen = {e.what for e in served.log.events if e.source == f"connection {n}"}
        raise AssertionError(
            "the server closed the connection without a reply: "
            + (
                "readConnectionLost() ran but wrote nothing"
                if "readConnectionLost" in seen
                else "Twisted closes the whole connection at the client's EOF, unless the"
                " protocol provides IHalfCloseableProtocol: then it gets"
                " readConnectionLost() instead, and can still write"
            )
        )
    return got


def _expected_count(data):
    return b"%d %d\n" % (data.count(b"\n"), len(data))


def _replies_after_eof(answer):
    with _Served("check-06.3", _protocol_factory(answer)) as served:
        got = _count_remotely(served, [b"one\ntwo\n"], 1, until_eof=True)
        _expect(got, b"2 8\n", "sent b'one\\ntwo\\n' then EOF")
        served.wait_for(1, "connectionLost")


def _many_chunks(answer):
    chunks = [b"a", b"b\nc", b"\n\n", b"de", b"f\n", b"no newline at the end"]
    with _Served("check-06.3", _protocol_factory(answer)) as served:
        got = _count_remotely(served, chunks, 1)
        _expect(got, _expected_count(b"".join(chunks)), f"sent {chunks!r} one by one, then EOF")


def _empty_input(answer):
    with _Served("check-06.3", _protocol_factory(answer)) as served:
        got = _count_remotely(served, [], 1)
        _expect(got, b"0 0\n", "sent nothing, then EOF")


def _two_at_once(answer):
    with _Served("check-06.3", _protocol_factory(answer)) as served:
        with _Client(served) as a:
            a.send(b"x\n")
            served.wait_received(1, 2)
            with _Client(served) as b:
                b.send(b"yy\ny\n")
                served.wait_received(2, 5)
                replies = []
                for client in [b, a]:
                    client.sock.shutdown(socket.SHUT_WR)
                    replies.append(client.line("a reply line"))
        _expect(replies, [b"2 5\n", b"1 2\n"], "two connections at once, replies [second, first]")


exercise(
    "06.3",
    "Count until the end of input",
    Check(
        "replies after the client's EOF, then closes",
        _replies_after_eof,
        "declare @implementer(IHalfCloseableProtocol); in readConnectionLost() write the"
        " reply, then self.transport.loseConnection()",
    ),
    Check(
        "counts input that arrives in many chunks",
        _many_chunks,
        "add up in dataReceived (one call per chunk, any split); reply only at the end",
    ),
    Check(
        "empty input gives b'0 0\\n'",
        _empty_input,
        "with no data, dataReceived never runs: start the counts at 0 in connectionMade, and"
        " reply in readConnectionLost()",
    ),
    Check(
        "two connections at once count separately",
        _two_at_once,
        "keep the counts on the protocol (self), one per connection",
    ),
)
