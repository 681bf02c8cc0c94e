"""Checks for chapter 06 (protocols and factories).

06.1 `Shout`: a Protocol class; echoes each chunk with a-z upper-cased and every other
     byte unchanged, and keeps what its own connection received in `self.received`.
06.2 `Roster`: a Factory class; its protocol numbers connections 1, 2, 3, ... (never
     reused), greets with b"you are N\\n", and answers any data with the numbers of the
     clients connected now, in increasing order: b"connected: 3 9 10 11\\n".
06.3 `LineCount`: a Protocol class that reads until the client's end of input
     (half-close), then replies b"<newline bytes> <bytes>\\n" and closes.

Every check serves the answer on 127.0.0.1 (`Served`) and talks to it with `wire.Client`
sockets. The server is stopped before the check returns, so every callback of the answer
has run inside the check: an error Twisted logs is shown as the cause.
"""

from __future__ import annotations

import contextlib
import threading

from .. import reactor as _reactor
from ..events import EventLog, EventTimeout
from ..servers import serve
from . import exercise, fail, require, show
from .framework import CheckFailed, describe_error
from .wire import Client, Received

TIMEOUT = 1.0  # the longest a check waits for bytes, or for the server to do something
STOPPED = ("when your code raised an exception, the checker closed the server's connections"
           " and stopped there")


# -- this chapter's harness (a job no other checker has): the reader's factory served, and what its
#    protocols got


class Served:
    """``serve(name, factory)`` for a `with`, knowing the protocols the factory builds.

    Connection n (1, 2, ... in the order the factory built them) can be waited on:
    `wait_received(n, total)` (its dataReceived has been given `total` bytes) and
    `wait_closed(n)` (its connectionLost has run). Nothing of the reader's is caught:
    Twisted logs what it raises and the framework reports it. But as soon as Twisted logs
    an error, the server's connections are aborted, so that the check stops at once
    instead of waiting for bytes that will never come, and its message says so.
    """

    def __init__(self, name: str, factory, timeout: float):
        self.name, self.timeout = name, timeout
        self.factory, self.protocols, self.log = factory, [], EventLog()
        self.errored = threading.Event()
        self._clients = contextlib.ExitStack()
        build = factory.buildProtocol

        def buildProtocol(addr):
            p = build(addr)
            if p is not None:
                self._trace(p)
            return p

        factory.buildProtocol = buildProtocol

    def _trace(self, p):
        self.protocols.append(p)
        source, received = f"connection {len(self.protocols)}", p.dataReceived

        def dataReceived(data):
            try:
                return received(data)
            finally:
                self.log.record(source, "dataReceived", nbytes=len(data))

        p.dataReceived = dataReceived
        if callable(getattr(p, "readConnectionLost", None)):
            read_lost = p.readConnectionLost

            def readConnectionLost():
                self.log.record(source, "readConnectionLost")
                return read_lost()

            p.readConnectionLost = readConnectionLost

    def _observe(self, event):
        from ..twisted_log import _is_error

        if _is_error(event) and not self.errored.is_set():
            from twisted.internet import reactor

            self.errored.set()
            self.log.record("twisted", "logged an error")
            reactor.callFromThread(self._abort)

    def _abort(self):
        for p in self.protocols:
            transport = getattr(p, "transport", None)
            if transport is not None and transport.connected:
                transport.abortConnection()

    # -- the client side ------------------------------------------------------------------

    def connect(self) -> Client:
        """A new client (closed when the `with` ends)."""
        try:
            client = Client(self.server.port, timeout=self.timeout)
        except OSError as exc:  # reset: the connection was aborted as soon as it was made
            fail(f"the check was connecting a client: {describe_error(exc)}")
        return self._clients.enter_context(client)

    # -- waiting on the server side ----------------------------------------------------------

    def received(self, n: int) -> int:
        return sum(e.details["nbytes"] for e in self.log.events
                   if e.source == f"connection {n}" and e.what == "dataReceived")

    def called(self, n: int, what: str) -> bool:
        return any(e.source == f"connection {n}" and e.what == what for e in self.log.events)

    def _wait(self, done, what: str):
        try:
            self.log.wait_until(lambda _: self.errored.is_set() or done(),
                                timeout=self.timeout, what=what)
        except EventTimeout:
            fail(f"waited {self.timeout:g} s for {what}; it did not happen")
        if self.errored.is_set():
            fail(f"the check was waiting for {what}")

    def wait_received(self, n: int, total: int) -> None:
        self._wait(lambda: self.received(n) >= total,
                   f"connection {n}'s dataReceived to be given {total} bytes in all")

    def wait_closed(self, n: int) -> bool:
        """Wait until connection n's connectionLost has run; False if it had not in time."""
        def watch():
            transport = self.protocols[n - 1].transport  # the helpers' TrackedConnection
            transport.closed.addBoth(lambda r: (self.log.record(f"connection {n}", "lost"), r)[1])

        self._wait(lambda: len(self.protocols) >= n, f"connection {n} to be accepted")
        _reactor.call(watch)
        try:
            self._wait(lambda: self.called(n, "lost"), f"connection {n} to close")
        except CheckFailed:
            if self.errored.is_set():
                raise
            return False
        return True

    # -- the context manager ---------------------------------------------------------------

    def __enter__(self):
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(self._observe)
        try:
            self.server = serve(self.name, self.factory)
        except BaseException:
            globalLogPublisher.removeObserver(self._observe)
            raise
        return self

    def __exit__(self, kind, exc, tb):
        from twisted.logger import globalLogPublisher

        try:
            self._clients.close()
            self.server.stop()  # waits until every connectionLost has run
            # ... and one more turn of the reactor: an exception a connectionLost raised is
            # logged after stop() has heard that the connection closed.
            _reactor.call(lambda: None)
        finally:
            globalLogPublisher.removeObserver(self._observe)
        if isinstance(exc, OSError):  # the checker's own socket, reset or refused
            exc = CheckFailed(f"the client's socket: {describe_error(exc)}")
            if not self.errored.is_set():
                raise exc from None
        if isinstance(exc, CheckFailed) and self.errored.is_set() and STOPPED not in str(exc):
            raise CheckFailed(f"{exc} ({STOPPED})") from None
        return False


def _serve_class(answer, name: str) -> Served:
    from twisted.internet.protocol import Factory

    return Served(name, Factory.forProtocol(answer), TIMEOUT)


def _expect(client: Client, want: bytes, story: str) -> None:
    """Read len(want) bytes; fail unless they are `want`, saying what came instead."""
    got = client.read_exactly(len(want))
    if got.data != want or got.ending != "complete":
        fail(f"{story}: expected {show(want)}, {got}")


def _leave(served: Served, clients: dict, *numbers: int) -> None:
    for n in numbers:
        clients[n].close()
        require(served.wait_closed(n), f"client {n} closed its socket, but the server's"
                f" connectionLost for it had not run {TIMEOUT:g} s later")


# -- 06.1 -------------------------------------------------------------------------------

shout = exercise("06.1", "Shout, and remember")

ECHOED = [b"Hello, Twisted 123!\n", b"{edges} `of` @[a-z]~", b"z"]
ACCENTED = "Crème brûlée: 5 €\n".encode()


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@shout.check("upper", "echoes each chunk at once, a-z upper-cased, and nothing more",
             hint="Each dataReceived call writes back what it was given, once, with only the"
                  " letters a to z changed; the letters' neighbours in ASCII stay as they are.")
def _upper(answer):
    with _serve_class(answer, "check-06.1") as served:
        client = served.connect()
        for data in ECHOED:
            client.send(data)
            _expect(client, data.upper(), f"sent {show(data)}")
        client.shutdown_write()
        rest = client.read_to_end()
        require(rest.data == b"", f"after the {len(ECHOED)} echoes, the client ended its input"
                f" and {rest}: expected nothing more than the echoes")


@shout.check("other-bytes", "every other byte unchanged, even when a chunk ends inside a"
             " character", hint="A chunk can end in the middle of a character's UTF-8 bytes"
             " (chapter 01); only a to z may change, and each chunk goes back at once, whole:"
             " decoding is the trouble. Some methods of bytes work on the raw bytes.")
def _other_bytes(answer):
    at = ACCENTED.index("€".encode())
    pieces = _pieces(ACCENTED, [3, at + 1, at + 2])  # inside è, twice inside €
    echoed, late = b"", None  # late: the first chunk whose echo did not come back at once
    with _serve_class(answer, "check-06.1") as served:
        client = served.connect()
        for sent, piece in enumerate(pieces, start=1):
            client.send(piece)
            served.wait_received(1, sum(map(len, pieces[:sent])))
            if late is None:  # each echo, read as its chunk's; after a late one, all at the end
                got = client.read_exactly(len(piece))
                echoed += got.data
                late = None if got.ending == "complete" else (sent, piece, got)
        got = client.read_exactly(len(ACCENTED) - len(echoed)) if late else got
        echoed += got.data if late else b""
    story = (f"sent {show(ACCENTED)} as {len(pieces)} chunks {pieces}, cut inside è and twice"
             " inside €")
    if echoed != ACCENTED.upper():
        whole = Received(echoed, got.ending, got.seconds)
        fail(f"{story}: expected {show(ACCENTED.upper())}, {whole}")
    if late:
        n, piece, got = late
        fail(f"{story}: the echoes held the right bytes in the end, but chunk {n}, {show(piece)},"
             f" was not sent straight back: expected {show(piece.upper())}, {got}")


@shout.check("received", "self.received holds everything its own connection received",
             hint="There is one protocol instance per connection: make the container when"
                  " that connection starts, not in the class body (where every connection"
                  " shares it), and add each chunk as it came.")
def _received(answer):
    sends = [(1, b"hello "), (2, b"other"), (1, b"again")]
    with _serve_class(answer, "check-06.1") as served:
        clients = {1: served.connect(), 2: served.connect()}
        for n, data in sends:
            clients[n].send(data)
            _expect(clients[n], data.upper(), f"client {n} sent {show(data)}")
        _leave(served, clients, 1, 2)
        first, second = served.protocols[:2]
        kept = _reactor.call(lambda: [getattr(p, "received", None) for p in (first, second)])
    for n, got in enumerate(kept, start=1):
        want = b"".join(data for m, data in sends if m == n)
        require(isinstance(got, bytes | bytearray), f"after connection {n} closed, its"
                f" self.received is {show(got)}, expected bytes or a bytearray")
        shared = (" (one object, shared by both connections)"
                  if kept[0] is kept[1] and (isinstance(got, bytearray) or got) else "")
        require(bytes(got) == want, f"connection {n} received {show(want)}, but its"
                f" self.received is {show(bytes(got))}{shared}")


# -- 06.2 -------------------------------------------------------------------------------

roster = exercise("06.2", "A roster of connected clients")


def _greeted(served: Served, n: int, story: str) -> Client:
    """Connect client n; fail unless its greeting is b"you are n\\n"."""
    client = served.connect()
    want = b"you are %d\n" % n
    got = client.read_until(b"\n")
    if got.data != want or got.ending != "complete":
        fail(f"{story}: client {n} expected the greeting {show(want)}, {got}")
    return client


UNASKED = 0.02  # how long _listed looks for lines that came unasked, before it asks


def _listed(client: Client, ask: bytes, numbers: list[int], story: str) -> None:
    want = b"connected: %s\n" % " ".join(map(str, numbers)).encode()
    extra = client.read_exactly(1 << 16, timeout=UNASKED)  # already there: nothing, if right
    if extra.data:
        fail(f"{story}; before a client sent {show(ask)}, it had already been sent"
             f" {show(extra.data)}, after the line that answered its greeting or its last data:"
             " expected one line for each, and nothing more")
    client.send(ask)
    got = client.read_until(b"\n")
    if got.data != want or got.ending != "complete":
        fail(f"{story}; then a client sent {show(ask)}: expected {show(want)}, {got}")


@roster.check("greets", "greets clients 1, 2, 3 in the order they connect",
              hint="Give each connection its number when it is made, from something that all"
                   " connections of one Roster share (section 3).")
def _greets(answer):
    with Served("check-06.2", answer(), TIMEOUT) as served:
        for n in (1, 2, 3):
            _greeted(served, n, "a new Roster()")


@roster.check("never-reuses", "never reuses a number, even after clients leave",
              hint="A count of the open connections goes down again, so it repeats numbers"
                   " (the article's counter, section 3): use something that only goes up.")
def _never_reuses(answer):
    with Served("check-06.2", answer(), TIMEOUT) as served:
        clients = {n: _greeted(served, n, "a new Roster()") for n in (1, 2, 3)}
        _leave(served, clients, 2)
        clients[4] = _greeted(served, 4, "clients 1, 2, 3 connected, then 2 left")
        _leave(served, clients, 1, 3, 4)
        _greeted(served, 5, "clients 1 to 4 came, then all of them left")


@roster.check("lists", "answers any data with the numbers connected now, smallest first",
              hint="The factory must know who is connected now: add a connection when it is"
                   " made, remove it when it is lost; compare numbers as numbers.")
def _lists(answer):
    with Served("check-06.2", answer(), TIMEOUT) as served:
        clients = {n: _greeted(served, n, "a new Roster()") for n in (1, 2, 3)}
        _leave(served, clients, 2)
        clients[4] = _greeted(served, 4, "clients 1, 2, 3 connected, then 2 left")
        _listed(clients[1], b"?", [1, 3, 4], "clients 1 to 3 came, 2 left, 4 came")
        _leave(served, clients, 1)
        _listed(clients[3], b"who is there?\n", [3, 4], "then 1 left")
        for n in range(5, 12):
            clients[n] = _greeted(served, n, f"clients 1 to {n - 1} came, 1 and 2 left")
        _leave(served, clients, 4, 5, 6, 7, 8)
        _listed(clients[3], b"list", [3, 9, 10, 11], "clients 1 to 11 came, 1, 2 and 4 to 8 left")


@roster.check("separate", "two Roster() instances keep separate rosters",
              hint="What is created in a class body is shared by every instance of the class:"
                   " each Roster() needs its own.")
def _separate(answer):
    with Served("check-06.2", answer(), TIMEOUT) as a, \
            Served("check-06.2b", answer(), TIMEOUT) as b:
        story = "two Roster() instances, served at once"
        a1, b1 = _greeted(a, 1, f"{story}, the first"), _greeted(b, 1, f"{story}, the second")
        _greeted(a, 2, f"{story}, the first")
        _greeted(b, 2, f"{story}, the second")
        _leave(a, {1: a1}, 1)
        _listed(b1, b"?", [1, 2], f"{story}; each got clients 1 and 2; client 1 of the first"
                " left")


# -- 06.3 -------------------------------------------------------------------------------

line_count = exercise("06.3", "Count until the end of input")

CHUNKS = [b"a", b"b\nc", b"\n\n", "d€".encode()[:2], "d€".encode()[2:] + b"\n", b"\n" * 7,
          b"no newline at the end"]


def _counts(data: bytes) -> bytes:
    return b"%d %d\n" % (data.count(b"\n"), len(data))


def _send_then_end(served: Served, client: Client, n: int, chunks: list[bytes]) -> None:
    """Send each chunk once the server has the previous one, then end the input."""
    for sent, chunk in enumerate(chunks, start=1):
        client.send(chunk)
        served.wait_received(n, sum(map(len, chunks[:sent])))
    client.shutdown_write()


def _no_reply(served: Served, n: int, got) -> str:
    if got.data or got.ending != "closed":
        return ""
    if served.called(n, "readConnectionLost"):
        return ": readConnectionLost ran, but nothing was written"
    return (": Twisted closed the whole connection at the end of the client's input, before"
            " the protocol could reply")


def _one_then_end(answer, *, until_closed=False):
    """Send b"one\\ntwo\\n", end the input, read to the end: (what the client got, whether
    the server's connectionLost ran (if `until_closed`), why no reply came)."""
    with _serve_class(answer, "check-06.3") as served:
        client = served.connect()
        _send_then_end(served, client, 1, [b"one\ntwo\n"])
        got = client.read_to_end()
        closed = until_closed and got.ending == "closed" and served.wait_closed(1)
        return got, closed, _no_reply(served, 1, got)


@line_count.check("reply", "replies one line, b'2 8\\n', after b'one\\ntwo\\n' and the end of"
                  " input",
                  hint="By default, the end of the peer's input ends a Twisted connection, and"
                       " the protocol cannot reply any more; section 7 (half-close) shows how a"
                       " protocol asks to be told of it and still write.")
def _reply(answer):
    got, _, why = _one_then_end(answer)
    require(got.data == b"2 8\n", f"sent b'one\\ntwo\\n', then ended the input (shutdown"
            f" SHUT_WR): expected the line b'2 8\\n' and nothing else, {got}{why}")


@line_count.check("closes", "then closes the connection",
                  hint="Once the reply is written, nothing will close the connection unless the"
                       " protocol does; closing only its sending side is a half-close, not a"
                       " close (section 7).")
def _closes(answer):
    got, closed, why = _one_then_end(answer, until_closed=True)
    story = "sent b'one\\ntwo\\n', then ended the input"
    require(got.data, f"{story}: no reply came, so nothing was closed after one{why}")
    require(got.ending == "closed", f"{story}: {got}; expected the server to close the"
            " connection after its reply")
    require(closed, f"{story}: the client read the reply and the end of the stream, but the"
            f" server's side of the connection was still open {TIMEOUT:g} s later (Twisted had"
            " not called its connectionLost)")


@line_count.check("chunks", "counts newline bytes and bytes over many chunks",
                  hint="Each dataReceived call brings one piece of the input, of any size and cut"
                       " anywhere, even inside a character: add up as the pieces come, and count"
                       " bytes.")
def _chunks(answer):
    data = b"".join(CHUNKS)
    with _serve_class(answer, "check-06.3") as served:
        client = served.connect()
        _send_then_end(served, client, 1, CHUNKS)
        got = client.read_until(b"\n")
        require(got.data == _counts(data), f"sent {len(CHUNKS)} chunks, one at a time,"
                f" {show(data)} in all, then ended the input: expected {show(_counts(data))},"
                f" {got}{_no_reply(served, 1, got)}")


@line_count.check("empty", "replies b'0 0\\n' when the input is empty",
                  hint="With no input at all, dataReceived is never called: the counts must"
                       " exist before the first piece arrives.")
def _empty(answer):
    with _serve_class(answer, "check-06.3") as served:
        client = served.connect()
        _send_then_end(served, client, 1, [])
        got = client.read_until(b"\n")
        require(got.data == b"0 0\n", f"sent nothing, then ended the input: expected"
                f" b'0 0\\n', {got}{_no_reply(served, 1, got)}")


@line_count.check("separate", "two connections at once count separately",
                  hint="Each connection has its own protocol instance: keep its counts there,"
                       " not anywhere that connections share.")
def _separate_counts(answer):
    with _serve_class(answer, "check-06.3") as served:
        a, b = served.connect(), served.connect()
        a.send(b"x\n")
        served.wait_received(1, 2)
        _send_then_end(served, b, 2, [b"yy\ny\n"])
        got_b = b.read_until(b"\n")
        a.shutdown_write()
        got_a = a.read_until(b"\n")
    story = "client 1 sent b'x\\n'; client 2, connected at the same time, sent b'yy\\ny\\n'"
    why_b, why_a = _no_reply(served, 2, got_b), _no_reply(served, 1, got_a)
    require(got_b.data == b"2 5\n", f"{story} and ended its input: expected b'2 5\\n',"
            f" {got_b}{why_b}")
    require(got_a.data == b"1 2\n", f"{story}; then client 1 ended its input: expected"
            f" b'1 2\\n', {got_a}{why_a}")
