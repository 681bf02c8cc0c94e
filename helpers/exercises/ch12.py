"""Checks for chapter 12 (flow control: producers and consumers).

12.1 `Numbers`: a Protocol that is its own push producer; registers itself with
     registerProducer(self, True), writes b"1\\n" ... b"COUNT\\n" (COUNT from
     factory.count), one line per write, never while paused; unregisters and closes.
12.2 `send_slices(transport, data, size) -> Deferred`: a pull producer (streaming=False)
     writing at most `size` bytes per resumeProducing; the Deferred fires with len(data)
     once all is written and the producer unregistered, fails on stopProducing.
12.3 `send_file(path, transport) -> Deferred`: FileSender; fires with the SHA-256 hex
     digest of the bytes sent.

Every check serves a protocol with `serve("check-12.k", ...)` on 127.0.0.1 (stopped
before the check returns) and reads with a slow client (it rests READ_PAUSE s after each
read, with small kernel buffers, like the chapter's SlowReader). Every write() on the
server's transport is watched: the bytes waiting after it, and whether the transport had
paused its producer when it came. An exception raised by the reader's code is reported by
the check; one that Twisted logs is collected instead of reaching stderr. A session waits
at most TIMEOUT seconds for the client to see the connection close, then aborts it.
"""

from __future__ import annotations

import gc
import hashlib
import random
import socket
import tempfile
from pathlib import Path

from .. import reactor as _reactor
from ..events import EventLog, EventTimeout
from ..servers import serve
from ..twisted_log import logged_errors
from .legacy import Check, exercise

TIMEOUT = 2.0  # the longest a session waits for the transfer to end
KERNEL_BUFFER = 64 * 1024  # SO_SNDBUF / SO_RCVBUF, as in the chapter
READ_PAUSE = 0.001  # the slow client rests this long after each read
BUFFER_SIZE = 64 * 1024  # FileDescriptor.bufferSize in Twisted


def buffered(transport) -> int:
    """Bytes written to a Twisted TCP transport that the kernel has not accepted yet
    (FileDescriptor's own fields: not a public API)."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


# -- shared machinery ----------------------------------------------------------------


class _Watch:
    """What the server's transport saw: writes, waiting bytes, registrations, errors."""

    def __init__(self):
        self.transport = None
        self.writes = self.paused_writes = self.largest = 0
        # (what was registered: "self" or a type name, streaming); no references are kept,
        # so that nothing of the reader's outlives the session
        self.registered: list[tuple[str, bool]] = []
        self.errors: list[str] = []
        self.log = EventLog()  # what the server protocols of the checks record

    def install(self, transport):
        self.transport = transport
        write, write_sequence = transport.write, transport.writeSequence
        register = transport.registerProducer

        def watched_write(data):
            self._before()
            write(data)
            self._after()

        def watched_write_sequence(chunks):
            self._before()
            write_sequence(chunks)
            self._after()

        def watched_register(producer, streaming):
            what = "self" if producer is transport.protocol else type(producer).__name__
            self.registered.append((what, bool(streaming)))
            register(producer, streaming)

        transport.write, transport.writeSequence = watched_write, watched_write_sequence
        transport.registerProducer = watched_register

    def _before(self):
        t = self.transport
        self.writes += 1
        if t.connected and t.producer is not None and t.streamingProducer and t.producerPaused:
            self.paused_writes += 1

    def _after(self):
        self.largest = max(self.largest, buffered(self.transport))


def _factory(protocol_class, watch, **attributes):
    """A Factory for protocol_class whose protocols' transports are watched; an exception
    raised in connectionMade is kept in watch.errors and the connection aborted."""
    from twisted.internet.protocol import Factory

    class Watched(Factory):
        protocol = protocol_class

        def buildProtocol(self, addr):
            p = super().buildProtocol(addr)
            make = p.makeConnection

            def makeConnection(transport):
                sock = transport.getHandle()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_BUFFER)
                watch.install(transport)
                try:
                    make(transport)
                except AssertionError as exc:  # raised by a check's own protocol
                    watch.errors.append(str(exc))
                    transport.abortConnection()
                except Exception as exc:
                    watch.errors.append(f"{type(exc).__name__}: {exc}")
                    transport.abortConnection()

            p.makeConnection = makeConnection
            return p

    factory = Watched()
    factory.watch = watch
    vars(factory).update(attributes)
    return factory


def _slow_client(abort_after):
    from twisted.internet import defer, reactor
    from twisted.internet.protocol import Protocol

    class SlowClient(Protocol):
        def __init__(self):
            self.received, self.done = bytearray(), defer.Deferred()

        def connectionMade(self):
            sock = self.transport.getHandle()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, KERNEL_BUFFER)

        def dataReceived(self, data):
            self.received += data
            if abort_after is not None and len(self.received) >= abort_after:
                self.transport.abortConnection()
                return
            self.transport.pauseProducing()
            reactor.callLater(READ_PAUSE, self.transport.resumeProducing)

        def connectionLost(self, reason):
            if not self.done.called:
                self.done.callback(None)

    return SlowClient()


class _Session:
    """One transfer: `.closed` (the client saw the connection close within TIMEOUT),
    `.received` (bytes), `.watch` (a _Watch)."""

    def __init__(self, name, protocol_class, *, abort_after=None, **attributes):
        self.watch = _Watch()
        factory = _factory(protocol_class, self.watch, **attributes)
        client = _slow_client(abort_after)
        self.received = b""
        with logged_errors() as logged:
            with serve(name, factory) as server:
                self.closed = _reactor.call(
                    self._run, server.port, client, self.watch, timeout=TIMEOUT + 3
                )
            self.received = bytes(client.received)
            # A Deferred of the reader's that failed unseen is logged when it is collected:
            # here, inside logged_errors, rather than later in some other cell.
            self.watch.transport = client = factory = server = None
            gc.collect()
        self.logged = logged

    @staticmethod
    def _run(port, client, watch):
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
        d = connectProtocol(endpoint, client).addCallback(lambda _: client.done)
        d.addTimeout(TIMEOUT, reactor)

        def settle(result):
            if result is None:
                return True
            # Timed out: abort both ends (a server transport waiting in loseConnection()
            # does not read, so it would not notice the client's abort).
            watch.log.record("checker", "timed out")
            for transport in (client.transport, watch.transport):
                if transport is not None and transport.connected:
                    transport.abortConnection()
            return False

        return d.addBoth(settle)

    def raise_errors(self):
        """The reader's code raised: that is the cause, report it."""
        if self.watch.errors:
            raise AssertionError(self.watch.errors[0])
        if self.logged:
            raise AssertionError(f"Twisted logged an error from your code: {self.logged[0]}")


_last: dict = {}


def _cached(key, make):
    """One session per (exercise, answer, settings), reused by the checks of one exercise."""
    key = (*key, TIMEOUT, READ_PAUSE)
    if _last.get("key") != key or _last.get("answer") is not key[1]:
        _last.clear()
        _last.update(key=key, answer=key[1], value=make())
    return _last["value"]


def _brief(exc) -> str:
    return f"{type(exc).__name__}: {exc}"


def _first_difference(got: bytes, expected: bytes) -> str:
    i = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
             min(len(got), len(expected)))
    return (f"{len(got)} bytes arrived, {len(expected)} expected; they differ from byte {i}:"
            f" got {got[max(0, i - 6):i + 10]!r}, expected {expected[max(0, i - 6):i + 10]!r}")


# -- 12.1 ------------------------------------------------------------------------------

COUNT = 20_000
NUMBERS = b"".join(b"%d\n" % n for n in range(1, COUNT + 1))


def _numbers(answer):
    session = _cached(("12.1", answer), lambda: _Session("check-12.1", answer, count=COUNT))
    session.raise_errors()
    return session


def _registers_push(answer):
    session = _numbers(answer)
    registered = session.watch.registered
    assert registered, "the protocol never called self.transport.registerProducer(...)"
    producer, streaming = registered[0]
    assert producer == "self", (
        f"registerProducer got a {producer}, expected the protocol itself (self)"
    )
    assert streaming, "registerProducer(self, False) registers a pull producer; push is True"


def _all_lines(answer):
    session = _numbers(answer)
    if not session.closed:
        raise AssertionError(
            f"after {TIMEOUT:g} s the client had {len(session.received)} of {len(NUMBERS)}"
            " bytes and the connection was still open: resumeProducing() must carry on"
            " writing, and the end is unregisterProducer() then loseConnection()"
        )
    assert session.received == NUMBERS, _first_difference(session.received, NUMBERS)


def _not_while_paused(answer):
    session = _numbers(answer)
    assert session.watch.paused_writes == 0, (
        f"{session.watch.paused_writes} of {session.watch.writes} writes came while the"
        " producer was paused (after pauseProducing(), before resumeProducing())"
    )


def _bounded(answer):
    session = _numbers(answer)
    limit = BUFFER_SIZE + 64
    assert session.watch.largest <= limit, (
        f"up to {session.watch.largest} bytes waited in the transport; a push producer that"
        f" stops when paused keeps it under bufferSize + one line ({limit})"
    )


exercise(
    "12.1",
    "A push producer of numbered lines",
    Check(
        "registers itself as a push producer",
        _registers_push,
        "in connectionMade: self.transport.registerProducer(self, True)",
    ),
    Check(
        f"all {COUNT} lines arrive in order, then the connection closes",
        _all_lines,
        "resumeProducing: write lines in a loop while not paused; when the last is sent,"
        " self.transport.unregisterProducer() and self.transport.loseConnection()",
    ),
    Check(
        "no write while paused",
        _not_while_paused,
        "pauseProducing sets self.paused = True; the loop checks it before every write",
    ),
    Check(
        "never more than bufferSize + one line waiting",
        _bounded,
        "write one line per write() call and stop as soon as pauseProducing has been called",
    ),
)


# -- 12.2 ------------------------------------------------------------------------------

DATA = random.Random(1202).randbytes(200_000)
SIZE = 4096


def _slices_protocol(answer):
    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import Protocol
    from twisted.python.failure import Failure

    class SliceServer(Protocol):
        def connectionMade(self):
            d = answer(self.transport, DATA, SIZE)
            if not isinstance(d, Deferred):
                raise AssertionError(
                    f"send_slices(...) returned {type(d).__name__}, expected a Deferred"
                )
            d.addBoth(self.fired)

        def fired(self, result):
            if isinstance(result, Failure):
                self.factory.watch.log.record("server", "failed", error=_brief(result.value))
            else:
                self.factory.watch.log.record("server", "fired", value=result)
            self.transport.loseConnection()

    return SliceServer


def _slices(answer, abort_after=None):
    def make():
        return _Session("check-12.2", _slices_protocol(answer), abort_after=abort_after)

    session = _cached(("12.2", answer, abort_after), make)
    session.raise_errors()
    return session


def _fired(session, limit=0.05):
    """The Deferred's outcome as recorded by the server protocol (by the time a session
    returns, the server side has seen the connection close, so it has fired or never
    will: the wait is short)."""
    try:
        session.watch.log.wait(1, timeout=limit)
    except EventTimeout:
        return None
    first = session.watch.log.events[0]
    return None if first.source == "checker" else first  # fired only after the abort


def _fires_with_length(answer):
    session = _slices(answer)
    event = _fired(session)
    assert event is not None, (
        f"the Deferred from send_slices had not fired when the transfer ended"
        f" ({len(session.received)} of {len(DATA)} bytes arrived)"
    )
    assert event.what == "fired", f"the Deferred failed: {event.details['error']}"
    assert event.details["value"] == len(DATA), (
        f"the Deferred fired with {event.details['value']!r}, expected {len(DATA)}"
    )


def _arrives_and_closes(answer):
    session = _slices(answer)
    if not session.closed:
        event = _fired(session)
        hint = (
            "your Deferred fired and the checker called loseConnection(), but the connection"
            " stayed open: unregisterProducer() before firing" if event is not None else
            "your Deferred never fired: does resumeProducing() write the next slice each time"
            " it is called, and fire the Deferred when nothing is left?"
        )
        raise AssertionError(
            f"after {TIMEOUT:g} s, {len(session.received)} of {len(DATA)} bytes had arrived"
            f" and the connection was open; {hint}"
        )
    assert session.received == DATA, _first_difference(session.received, DATA)


def _one_slice_at_a_time(answer):
    session = _slices(answer)
    registered = session.watch.registered
    assert registered, "send_slices never called transport.registerProducer(...)"
    assert not registered[0][1], (
        "registerProducer(producer, True) registers a push producer; a pull producer is False"
    )
    assert session.watch.largest <= SIZE, (
        f"up to {session.watch.largest} bytes waited in the transport; a pull producer writes"
        f" one slice ({SIZE} bytes) per resumeProducing() call"
    )


def _fails_when_lost(answer):
    session = _slices(answer, abort_after=4 * SIZE)
    event = _fired(session)
    assert event is not None, (
        "the client aborted the connection mid-transfer and the Deferred never fired:"
        " stopProducing() must errback it"
    )
    assert event.what == "failed", (
        f"the client aborted the connection mid-transfer, and the Deferred fired with"
        f" {event.details['value']!r}; expected it to fail"
    )


exercise(
    "12.2",
    "Send bytes with a pull producer",
    Check(
        "the Deferred fires with len(data)",
        _fires_with_length,
        "in resumeProducing, when nothing is left: unregisterProducer(), then"
        " self.done.callback(len(data))",
    ),
    Check(
        "the data arrives whole, and the connection can close",
        _arrives_and_closes,
        "one slice data[i:i + size] per resumeProducing(); unregisterProducer() at the end,"
        " or loseConnection() waits for ever",
    ),
    Check(
        "a pull producer: one slice waiting at a time",
        _one_slice_at_a_time,
        "transport.registerProducer(producer, False), and write only in resumeProducing",
    ),
    Check(
        "a lost connection fails the Deferred",
        _fails_when_lost,
        "stopProducing(): errback the Deferred (if it has not fired yet)",
    ),
)


# -- 12.3 ------------------------------------------------------------------------------

FILE_DATA = random.Random(1203).randbytes(1024 * 1024 + 7)
FILE_DIGEST = hashlib.sha256(FILE_DATA).hexdigest()


def _file_protocol(answer, path):
    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import Protocol
    from twisted.python.failure import Failure

    class FileServer(Protocol):
        def connectionMade(self):
            d = answer(path, self.transport)
            if not isinstance(d, Deferred):
                raise AssertionError(
                    f"send_file(...) returned {type(d).__name__}, expected a Deferred"
                )
            d.addBoth(self.fired)

        def fired(self, result):
            log = self.factory.watch.log
            if isinstance(result, Failure):
                log.record("server", "failed", error=_brief(result.value))
            else:
                log.record("server", "fired", value=result)
            self.transport.loseConnection()

    return FileServer


def _file_session(answer):
    def make():
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "check-12.3.bin"
            path.write_bytes(FILE_DATA)
            return _Session("check-12.3", _file_protocol(answer, path))

    session = _cached(("12.3", answer), make)
    session.raise_errors()
    return session


def _digest(answer):
    session = _file_session(answer)
    event = _fired(session)
    if event is None:
        raise AssertionError("the Deferred from send_file had not fired when the transfer"
                             " ended")
    assert event.what == "fired", f"the Deferred failed: {event.details['error']}"
    value = event.details["value"]
    assert value == FILE_DIGEST, (
        f"the Deferred fired with {value!r}; expected the file's SHA-256 hex digest,"
        f" {FILE_DIGEST[:16]}..."
    )


def _file_arrives(answer):
    session = _file_session(answer)
    assert session.closed, (
        f"after {TIMEOUT:g} s, {len(session.received)} of {len(FILE_DATA)} bytes had arrived"
        " and the connection was still open"
    )
    got = hashlib.sha256(session.received).hexdigest()
    assert got == FILE_DIGEST, (
        f"{len(session.received)} bytes arrived (of {len(FILE_DATA)}) and their SHA-256 is"
        " not the file's"
    )


def _file_in_chunks(answer):
    session = _file_session(answer)
    assert session.watch.largest <= BUFFER_SIZE, (
        f"up to {session.watch.largest} bytes waited in the transport: was the whole file"
        " written at once? FileSender writes 16 KiB at a time"
    )
    assert session.watch.registered, "no producer was registered: use FileSender"


exercise(
    "12.3",
    "A file, and its digest",
    Check(
        "the Deferred fires with the SHA-256 hex digest of the file",
        _digest,
        "hash = hashlib.sha256(); transform=lambda chunk: (hash.update(chunk), chunk)[1];"
        " then d.addCallback(lambda _: hash.hexdigest())",
    ),
    Check(
        "the file arrives whole",
        _file_arrives,
        "FileSender().beginFileTransfer(open(path, 'rb'), transport, transform)",
    ),
    Check(
        "sent in chunks by FileSender, not all at once",
        _file_in_chunks,
        "do not read the file yourself: FileSender reads and writes one chunk per call",
    ),
)
