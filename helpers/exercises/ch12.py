"""Checks for chapter 12 (flow control: producers and consumers).

12.1 `Numbers`: a Protocol that is its own push producer: b"1\\n" ... b"COUNT\\n", one line
     per write(), never while paused, each connection from 1; stops for good on
     stopProducing(); at the end it unregisters and closes the connection.
12.2 `send_slices(transport, data, size) -> Deferred`: a pull producer writing at most
     `size` bytes per resumeProducing(); fires with len(data) once all is written and the
     producer unregistered; fails if the connection is lost first.
12.3 `send_file(path, transport) -> Deferred`: FileSender; fires with the SHA-256 hex
     digest of the bytes sent; the file is closed, whether the transfer ends or fails.

A transfer serves the answer with `serve()` on 127.0.0.1 and reads it with a slow client
(it rests READ_PAUSE s after each read, with small kernel buffers, like the chapter's
SlowReader). Every call the answer makes on the server's transport is recorded, in order:
each write() with the bytes waiting after it (the chapter's `buffered()`, loaded from the
notebook), whether the producer was paused then and whether the write came inside a
resumeProducing() call of the transport; registerProducer, unregisterProducer,
loseConnection; and what the transport asks of the producer. The checks of an exercise
share its transfers (`observation`): one to the end, and one that the client aborts
part-way (12.1: a second connection, which must count from 1 again); 12.2 also sends a
little data with another size, and 12.3 sends the file a second time (a hash that outlives
a call shows then). A transfer in which nothing happens (no call, no read) for TIMEOUT s is
aborted, and so is one still going after LIMIT s.
"""

from __future__ import annotations

import gc
import hashlib
import io
import random
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .. import reactor as _reactor
from ..notebook_code import load
from ..servers import serve
from . import exercise, fail, observation, require, settle, show
from .answers import resource_warnings
from .framework import CheckFailed, describe_error

TIMEOUT = 2.0  # a transfer in which nothing happens for this long is aborted
LIMIT = 4.0  # the longest any transfer may take (a check has 5 s)
KERNEL_BUFFER = 64 * 1024  # SO_SNDBUF / SO_RCVBUF, as in the chapter
READ_PAUSE = 0.001  # the slow client rests this long after each read
BUFFER_SIZE = 64 * 1024  # FileDescriptor.bufferSize in Twisted
AFTER_LOSS = 0.05  # how long a check watches a producer after its connection was lost
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "12_flow_control.ipynb"


# -- this chapter's harness (a job no other checker has): one transfer, every call on the server's
#    transport recorded


class Call(NamedTuple):
    """One call on the server's transport or its producer, in the order they came.

    what: write, register, unregister, lose (loseConnection); pause, resume, stop (the
    transport calling the producer); lost (the server's connectionLost); fired, failed
    (how the answer's Deferred ended, 12.2 and 12.3); "resume again" (12.1's late call).
    (A tuple of plain values, which the garbage collector stops tracking: a transfer
    records tens of thousands of calls.)
    """

    what: str
    data: bytes = b""  # what was written
    waiting: int = 0  # bytes waiting in the transport after this write
    paused: bool = False  # written while the producer was paused
    inside: bool = False  # written inside a resumeProducing() call of the transport
    written: int = 0  # bytes the answer had written before this call
    detail: object = None  # register: (producer, streaming); fired, failed: the value


@dataclass
class Transfer:
    """What one transfer did: the calls, the client's bytes, whether it ended in time."""

    calls: list[Call] = field(default_factory=list)
    received: bytes = b""
    closed: bool = False  # the connection ended, and the client saw it
    stalled: bool = False  # aborted because nothing happened for TIMEOUT s (else: LIMIT)
    last: float = 0.0  # time.monotonic() of the last call or read
    producer: object = None  # the producer the answer registered
    raised: list = field(default_factory=list)  # (where, exception): the first one
    problem: str | None = None  # the answer did something no check can go on from
    unclosed: list[str] = field(default_factory=list)  # 12.3: how the file stayed open
    total: int = 0  # bytes written so far

    def of(self, what):
        return [c for c in self.calls if c.what == what]

    def index(self, what, start=0):
        """The position of the first `what` call at or after `start`, or None."""
        return next((i for i, c in enumerate(self.calls[start:], start) if c.what == what),
                    None)

    def raise_(self, where, exc):
        if not self.raised:
            self.raised.append((where, exc))

    @property
    def stall(self) -> str:
        """Why a transfer that did not end was aborted."""
        if self.stalled:
            return f"nothing more happened for {TIMEOUT:g} s"
        return f"the transfer was still going after {LIMIT:g} s"

    def note(self, what, **details):
        self.last = time.monotonic()
        self.calls.append(Call(what, written=self.total, **details))
        self.total += len(details.get("data", b""))


class _Producer:
    """Stands in for the registered producer: notes what the transport asks of it."""

    def __init__(self, real, watch):
        self.real, self.watch = real, watch

    def _forward(self, what, name):
        watch = self.watch
        watch.transfer.note(what)
        if what == "resume":
            watch.paused, watch.inside = False, watch.inside + 1
        elif what == "pause":
            watch.paused = True
        try:
            getattr(self.real, name)()
        except Exception as exc:  # reported by every check, and the transfer ends here
            watch.transfer.raise_(f"the producer's {name}()", exc)
            if what != "stop":
                watch.transport.abortConnection()
        finally:
            if what == "resume":
                watch.inside -= 1

    def resumeProducing(self):
        self._forward("resume", "resumeProducing")

    def pauseProducing(self):
        self._forward("pause", "pauseProducing")

    def stopProducing(self):
        self._forward("stop", "stopProducing")


class _Watch:
    """Replaces the server transport's methods with ones that note each call."""

    def __init__(self, transfer, buffered, after_write=None):
        self.transfer, self.buffered, self.after_write = transfer, buffered, after_write
        self.paused, self.inside, self.transport, self.lost = False, 0, None, None

    def install(self, transport):
        from twisted.internet.defer import Deferred

        self.transport, self.lost, t = transport, Deferred(), self.transfer
        write, write_sequence = transport.write, transport.writeSequence
        register, unregister = transport.registerProducer, transport.unregisterProducer
        lose = transport.loseConnection

        def written(send, data):
            if not isinstance(data, (bytes, list)) and t.problem is None:
                t.problem = f"write() was given {show(data)} ({type(data).__name__}), not bytes"
            paused, inside = self.paused, self.inside > 0
            send(data)
            t.note("write", data=bytes(b"".join(data) if isinstance(data, list) else data),
                   waiting=self.buffered(transport) if transport.connected else 0,
                   paused=paused, inside=inside)
            if self.after_write is not None:
                self.after_write(t)

        def watched_register(producer, streaming):
            t.producer = producer
            t.note("register", detail=(_describe(producer, transport), bool(streaming)))
            self.paused = False
            register(_Producer(producer, self), streaming)

        transport.write = lambda data: written(write, data)
        transport.writeSequence = lambda chunks: written(write_sequence, list(chunks))
        transport.registerProducer = watched_register
        transport.unregisterProducer = lambda: (t.note("unregister"), unregister())[1]
        transport.loseConnection = lambda: (t.note("lose", paused=self.paused), lose())[1]

    def connection_lost(self):
        self.transfer.note("lost")
        self.lost.callback(None)


def _factory(protocol_class, watch, **attributes):
    """A Factory for protocol_class whose transports `watch` records. If the answer's
    code raises in connectionMade, it is kept and the connection aborted (Twisted would
    log it and leave the connection open)."""
    from twisted.internet.protocol import Factory

    class Watched(Factory):
        protocol = protocol_class

        def buildProtocol(self, addr):
            p = super().buildProtocol(addr)
            make, lost = p.makeConnection, p.connectionLost

            def makeConnection(transport):
                transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                 KERNEL_BUFFER)
                watch.install(transport)
                try:
                    make(transport)
                except Exception as exc:
                    watch.transfer.raise_("your connectionMade()", exc)
                    transport.abortConnection()

            def connectionLost(reason):
                try:
                    lost(reason)
                finally:
                    watch.connection_lost()

            p.makeConnection, p.connectionLost = makeConnection, connectionLost
            return p

    factory = Watched()
    factory.transfer = watch.transfer
    vars(factory).update(attributes)
    return factory


def _slow_client(abort_after, progress):
    from twisted.internet import defer, reactor
    from twisted.internet.protocol import Protocol

    class SlowClient(Protocol):
        def __init__(self):
            self.received, self.done = bytearray(), defer.Deferred()

        def connectionMade(self):
            self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                  KERNEL_BUFFER)

        def dataReceived(self, data):
            self.received += data
            progress()
            if abort_after is not None and len(self.received) >= abort_after:
                self.transport.abortConnection()  # as a crashed client does
                return
            self.transport.pauseProducing()
            reactor.callLater(READ_PAUSE, self.transport.resumeProducing)

        def connectionLost(self, reason):
            if not self.done.called:
                self.done.callback(None)

    return SlowClient()


def transfer(name, protocol_class, *, abort_after=None, after_loss=None, after_write=None,
             **attributes) -> Transfer:
    """Serve protocol_class (factory attributes as given); one slow client reads until the
    server closes, or aborts once it has `abort_after` bytes. `after_loss(transfer)` runs
    in the reactor thread AFTER_LOSS s after the server has seen the connection end;
    `after_write(transfer)` after each write. Fails if the answer raised."""
    from twisted.internet import reactor, task
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    result = Transfer()
    watch = _Watch(result, load(NOTEBOOK, "flow_control").buffered, after_write)
    factory = _factory(protocol_class, watch, **attributes)
    client = _slow_client(abort_after, lambda: setattr(result, "last", time.monotonic()))

    def run(port):
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
        d = connectProtocol(endpoint, client).addCallback(lambda _: client.done)
        d.addCallback(lambda _: watch.lost)  # the server side has seen the end too
        if after_loss is not None:
            d.addCallback(lambda _: task.deferLater(reactor, AFTER_LOSS, after_loss, result))

        def watchdog():
            if time.monotonic() - result.last > TIMEOUT:
                result.stalled = True
                d.cancel()

        result.last, loop = time.monotonic(), task.LoopingCall(watchdog)
        loop.start(TIMEOUT / 10, now=False)
        return d.addBoth(lambda outcome: (loop.stop(), outcome)[1])

    def abort():
        for t in (getattr(client, "transport", None), watch.transport):
            if t is not None and t.connected:
                t.abortConnection()

    with serve(name, factory) as server:
        result.closed = settle(lambda: run(server.port), limit=LIMIT).ok
        if not result.closed:
            _reactor.call(abort)
    result.received, result.producer = bytes(client.received), None
    if result.problem:
        fail(result.problem)
    if result.raised:
        where, exc = result.raised[0]
        raise CheckFailed(f"{where} raised {describe_error(exc)}") from exc
    return result


def _describe(producer, transport) -> str:
    """What was registered as the producer: "self" (the protocol), "the transport", or
    its type (no reference is kept, so that nothing of the answer outlives a check)."""
    if producer is transport.protocol:
        return "self"
    if producer is transport:
        return "the transport"
    return f"a {type(producer).__qualname__} object"


def _first_difference(got: bytes, expected: bytes) -> str:
    i = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
             min(len(got), len(expected)))
    return (f"{len(got):,} bytes arrived, {len(expected):,} expected; from byte {i:,} on"
            f" got {show(got[i:i + 12])}, expected {show(expected[i:i + 12])}")


def _registered(t: Transfer, who: str):
    """(producer, streaming) of the first registerProducer call; fail if there was none."""
    calls = t.of("register")
    if not calls:
        fail(f"{who} never called registerProducer() on the transport")
    return calls[0].detail


def _outside_or_too_big(t: Transfer, limit: int) -> str | None:
    """What broke "write only in resumeProducing(), at most `limit` bytes per call"."""
    per_call, number = 0, 0
    for c in t.calls:
        if c.what == "resume":
            per_call = 0
        elif c.what == "write":
            number += 1
            if not c.inside:
                return (f"write() call {number} ({len(c.data):,} bytes) came outside any"
                        " resumeProducing() call of the transport")
            per_call += len(c.data)
            if per_call > limit:
                return (f"one resumeProducing() call wrote {per_call:,} bytes (by write()"
                        f" call {number}); at most {limit:,} were allowed")
    return None


# -- 12.1 -------------------------------------------------------------------


def _count_ending_on_a_pause(batch: int) -> int:
    """The count whose last line ends the `batch`-th batch of a producer that writes lines
    until the transport pauses it: so that last write pauses the producer."""
    n = waiting = 0
    while True:
        n += 1
        waiting += len(b"%d\n" % n)
        if waiting > BUFFER_SIZE:
            batch, waiting = batch - 1, 0
            if batch == 0:
                return n


COUNT = _count_ending_on_a_pause(2)  # 23,697 lines: 130 KiB
NUMBERS = b"".join(b"%d\n" % n for n in range(1, COUNT + 1))
ABORT_AFTER = 1  # 12.1's second transfer: the client aborts when its first bytes arrive
ABORT_COUNT = 3 * COUNT  # ... of this many lines: the producer is still busy then
ABORT_TOTAL = sum(len(b"%d\n" % n) for n in range(1, ABORT_COUNT + 1))

numbers = exercise("12.1", "A push producer of numbered lines")


def _resume_again(t: Transfer):
    """Call the producer's resumeProducing() after stopProducing(), as a late consumer
    would."""
    if t.producer is not None and t.index("stop") is not None:
        t.note("resume again")
        try:
            t.producer.resumeProducing()
        except Exception as exc:
            t.raise_("the producer's resumeProducing(), after stopProducing(),", exc)


@observation
def _numbers(answer, abort):
    if abort:
        return transfer("check-12.1", answer, count=ABORT_COUNT, abort_after=ABORT_AFTER,
                        after_loss=_resume_again)
    return transfer("check-12.1", answer, count=COUNT)


@numbers.check("registers-push", "registers itself as a push producer",
               hint="The producer here is the protocol itself, and a push producer is"
                    " registered as streaming.")
def _registers_push(answer):
    t = _numbers(answer, False)
    producer, streaming = _registered(t, "your protocol")
    require(producer == "self", f"registerProducer() was given {producer}, not the protocol"
            " itself")
    before = t.calls[:t.index("register")]
    early = [c for c in before if c.what == "write"]
    require(not early, f"{len(early):,} write() calls ({sum(len(c.data) for c in early):,}"
            " bytes) came before registerProducer(): the transport had no producer to pause"
            f" then, and up to {max((c.waiting for c in early), default=0):,} bytes waited in"
            " it")
    largest = max((c.waiting for c in t.of("write")), default=0)
    require(streaming, "registerProducer(self, False) registers a pull producer, which the"
            f" transport never pauses: up to {largest:,} bytes waited in the transport")


@numbers.check("all-lines", f"all {COUNT:,} lines arrive, in order",
               hint="After a pause the transport calls resumeProducing(): carry on from the"
                    " line after the last one written, until the count is reached.")
def _all_lines(answer):
    t = _numbers(answer, False)
    if t.received == NUMBERS:
        return
    if NUMBERS.startswith(t.received):
        got = f"{len(t.received):,} of {len(NUMBERS):,} bytes arrived"
        last = t.received.splitlines()[-1] if t.received else None
        if t.closed:
            fail(f"{got} (the last line: {show(last)}), then the connection was closed; the"
                 f" count was {COUNT:,}")
        pauses, resumes = len(t.of("pause")), len(t.of("resume"))
        paused = [c.what for c in t.calls if c.what in ("pause", "resume")][-1:] == ["pause"]
        did = "wrote nothing more" if t.total else "never wrote"
        why = "" if paused else (f"; your producer was not paused, yet it {did} (the transport"
                                 " resumes only a producer that it has paused)")
        fail(f"{got}; {t.stall} (the transport had paused your producer {pauses} times and"
             f" resumed it {resumes} times){why}")
    fail(_first_difference(t.received, NUMBERS))


@numbers.check("each-connection", "each connection counts from 1",
               hint="Two connections are two instances of your protocol: what one of them"
                    " has sent is no business of the other.")
def _each_connection(answer):
    first = _numbers(answer, False)
    if not (NUMBERS.startswith(first.received[:8]) and first.received):
        return  # the first connection's lines were wrong already (all-lines says how)
    t = _numbers(answer, True)  # the second connection: the client aborts it at once
    expected = b"".join(b"%d\n" % n for n in range(1, ABORT_COUNT + 1))[:len(t.received)]
    require(t.received == expected, f"a second connection, after the first one, received"
            f" {show(t.received[:16])} first; expected {show(expected[:16])}: each connection"
            " starts from line 1")


@numbers.check("one-per-write", "one line per write()",
               hint="A pause can only come between two write() calls: give each call one"
                    " line, so that the producer can stop after any of them.")
def _one_per_write(answer):
    t = _numbers(answer, False)
    for n, c in enumerate(t.of("write"), start=1):
        if c.data.count(b"\n") != 1 or not c.data.endswith(b"\n"):
            fail(f"write() call {n:,} carried {show(c.data)}: not one line")


@numbers.check("not-while-paused", "no write() while paused",
               hint="pauseProducing() is only a request: write() goes on accepting bytes."
                    " Remember that you were paused, and look before every write.")
def _not_while_paused(answer):
    t = _numbers(answer, False)
    writes = t.of("write")
    paused = [c for c in writes if c.paused]
    if paused:
        largest = max(c.waiting for c in writes)
        fail(f"{len(paused):,} of {len(writes):,} write() calls came while the producer was"
             " paused (after pauseProducing(), before resumeProducing()); up to"
             f" {largest:,} bytes waited in the transport (bufferSize is {BUFFER_SIZE:,})")


@numbers.check("unregisters-and-closes", "after the last line it unregisters and closes,"
               " and the connection ends",
               hint="A transport does not close while a producer is registered with it, in"
                    " case the producer has more to say: tell it when yours is done.")
def _unregisters_and_closes(answer):
    t = _numbers(answer, False)
    require(t.received == NUMBERS, "not every line arrived (see above), so the end of the"
            " stream could not be checked")
    last = max(i for i, c in enumerate(t.calls) if c.what == "write")
    lose = t.index("lose", last)
    if lose is None:
        fail("every line arrived, but loseConnection() was never called: the connection"
             f" stayed open, and {t.stall}")
    if t.of("register") and t.index("unregister") is None:
        paused = t.calls[lose].paused
        if t.closed:
            fail("after the last line, loseConnection() was called with the producer still"
                 " registered (no unregisterProducer()); the connection closed only because"
                 " the producer was not paused at that moment")
        fail("after the last line, loseConnection() was called with the producer still"
             f" registered (no unregisterProducer()){' and paused' if paused else ''}: the"
             f" connection stayed open, and {t.stall}, the transport waiting for its"
             " producer")
    require(t.closed, f"after loseConnection() the connection stayed open, and {t.stall}")


@numbers.check("stops", "stopProducing() stops it for good",
               hint="stopProducing() means the consumer is gone: nothing may be written"
                    " after it, even if resumeProducing() is called again.")
def _stops(answer):
    t = _numbers(answer, True)
    stop, what = t.index("stop"), "the client aborted the connection when its first bytes came"
    if stop is None:
        if t.total >= ABORT_TOTAL:
            return  # everything was written before the abort: nothing to stop (checked above)
        if not t.of("register"):
            fail(f"{what}; the transport did not call stopProducing(): no producer was"
                 " registered")
        fail(f"{what}; the transport did not call stopProducing(): your producer had"
             f" unregistered already, after writing {t.total:,} of {ABORT_TOTAL:,} bytes")
    again = t.index("resume again") or len(t.calls)
    early = [c for c in t.calls[stop:again] if c.what == "write"]
    require(not early, "the client aborted the connection; after stopProducing() your"
            f" producer still called write() {len(early):,} times in {AFTER_LOSS * 1000:g} ms")
    late = [c for c in t.calls[again:] if c.what == "write"]
    require(not late, "after stopProducing(), a later resumeProducing() call made your"
            f" producer call write() {len(late):,} times")


# -- 12.2 -------------------------------------------------------------------

DATA = random.Random(1202).randbytes(200_000)
SIZE = 4096  # DATA is not a multiple of it: the last slice is short
ABORT_SLICES = 4 * SIZE  # 12.2's second transfer: the client aborts after this much
OTHER_SIZE = 1000  # 12.2's third transfer: DATA[:OTHER_DATA] in slices of this size, so
OTHER_DATA = 10 * OTHER_SIZE + 500  # that a size fixed in the answer is seen

slices = exercise("12.2", "Send bytes with a pull producer")


def _deferred_server(call_answer, who):
    """A server protocol that calls the answer when connected, notes how the Deferred it
    returned ends (fired, failed), then closes the connection."""
    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import Protocol
    from twisted.python.failure import Failure

    class Server(Protocol):
        def connectionMade(self):
            try:
                d = call_answer(self.transport)
            except Exception as exc:
                self.factory.transfer.raise_(f"your {who}", exc)
                self.transport.abortConnection()
                return
            if not isinstance(d, Deferred):
                self.factory.transfer.problem = (
                    f"{who} returned {show(d)} ({type(d).__name__}), expected a Deferred")
                self.transport.abortConnection()
                return
            d.addBoth(self.ended)

        def ended(self, result):
            failed = isinstance(result, Failure)
            self.factory.transfer.note("failed" if failed else "fired",
                                       detail=result.value if failed else result)
            self.transport.loseConnection()

    return Server


@observation
def _slices(answer, abort, size=SIZE):
    data = DATA if size == SIZE else DATA[:OTHER_DATA]
    server = _deferred_server(lambda transport: answer(transport, data, size), "send_slices")
    return transfer("check-12.2", server, abort_after=ABORT_SLICES if abort else None)


@slices.check("pull", "registers a pull producer",
              hint="Which kind of producer does the transport ask for data each time its"
                   " buffer is empty? Tell registerProducer() which kind yours is.")
def _pull(answer):
    t = _slices(answer, False)
    _, streaming = _registered(t, "send_slices")
    require(not streaming, "registerProducer(producer, True) registers a push producer,"
            f" which the transport does not ask for data: {len(t.of('write'))} write() calls"
            f" came, {len(t.received):,} bytes arrived")


@slices.check("slices", "writes only in resumeProducing(), at most `size` bytes per call",
              hint="A pull producer waits to be asked: each resumeProducing() call writes the"
                   " next slice, one, and returns.")
def _one_slice_per_call(answer):
    t = _slices(answer, False)
    require(t.of("write"), "nothing was written to the transport")
    wrong = _outside_or_too_big(t, SIZE)
    require(wrong is None, f"{wrong} (size={SIZE})")
    other = _slices(answer, False, OTHER_SIZE)
    wrong = _outside_or_too_big(other, OTHER_SIZE)
    require(wrong is None, f"sending {OTHER_DATA:,} bytes with size={OTHER_SIZE}: {wrong}")


@slices.check("arrives", "the data arrives whole, and the connection can close",
              hint="Once the Deferred has fired, the checker closes the connection: the"
                   " transport must have nothing more to wait for by then.")
def _arrives(answer):
    t = _slices(answer, False)
    if not t.closed:
        if t.index("fired") is None:
            fail(f"{len(t.received):,} of {len(DATA):,} bytes arrived, your Deferred had not"
                 f" fired, and the connection was open; {t.stall}")
        if t.index("unregister") is None:
            fail("your Deferred fired and the checker called loseConnection(), but the"
                 f" connection stayed open ({t.stall}): the producer was still registered"
                 " (no unregisterProducer())")
        fail("your Deferred fired and the checker called loseConnection(), but the"
             f" connection stayed open ({t.stall})")
    require(t.received == DATA, _first_difference(t.received, DATA))
    lose, ended = t.index("lose"), t.index("fired") or t.index("failed")
    require(lose is None or ended is None or ended < lose, "your code called"
            " loseConnection() itself; the checker closes the connection when your Deferred"
            " has fired")


@slices.check("fires", "the Deferred fires with len(data) once all is written and the"
              " producer unregistered",
              hint="Fire it from the producer, at the moment it finds nothing left to send,"
                   " after it has told the transport that it is done.")
def _fires(answer):
    t = _slices(answer, False)
    fired, failed = t.index("fired"), t.index("failed")
    if failed is not None and fired is None:
        fail(f"your Deferred failed with {describe_error(t.calls[failed].detail)}")
    require(fired is not None, f"your Deferred never fired ({len(t.received):,} of"
            f" {len(DATA):,} bytes arrived)")
    c = t.calls[fired]
    require(c.detail == len(DATA), f"your Deferred fired with {show(c.detail)}, expected"
            f" {len(DATA):,} (len(data))")
    require(c.written == len(DATA), f"your Deferred fired when {c.written:,} of"
            f" {len(DATA):,} bytes had been written")
    unregister = t.index("unregister")
    require(unregister is not None and unregister < fired, "your Deferred fired while the"
            " producer was still registered"
            + (" (unregisterProducer() came after it)" if unregister is not None else
               " (no unregisterProducer())"))


@slices.check("fails-when-lost", "a lost connection fails the Deferred",
              hint="When the connection is lost, the transport tells its producer to stop;"
                   " a Deferred can end with an error as well as a result.")
def _fails_when_lost(answer):
    t = _slices(answer, True)
    fired, failed = t.index("fired"), t.index("failed")
    what = f"the client aborted the connection after {ABORT_SLICES:,} bytes"
    if fired is not None:
        fail(f"{what}, and your Deferred fired with {show(t.calls[fired].detail)}; expected"
             " it to fail")
    require(failed is not None, f"{what}, and your Deferred never fired nor failed")


# -- 12.3 -------------------------------------------------------------------

CHUNK_SIZE = 16 * 1024  # FileSender.CHUNK_SIZE
FILE_DATA = random.Random(1203).randbytes(1024 * 1024 + 7)
# After the first chunk has been written, the checker changes the file's first byte (read
# already) and its last byte (not read yet), as if the file were being edited.
SENT = FILE_DATA[:-1] + bytes([FILE_DATA[-1] ^ 0xFF])  # what FileSender reads and sends
CHANGED = bytes([FILE_DATA[0] ^ 0xFF]) + SENT[1:]  # the file after the change
SENT_DIGEST = hashlib.sha256(SENT).hexdigest()
ABORT_FILE = 4 * CHUNK_SIZE  # 12.3's second transfer: the client aborts after this much

send = exercise("12.3", "A file, and its digest")


def _change_file(path):
    def change(t: Transfer):
        if len(t.of("write")) == 1:
            with open(path, "r+b") as f:
                f.write(CHANGED[:1])
                f.seek(len(CHANGED) - 1)
                f.write(CHANGED[-1:])

    return change


def _unclosed(path, warned) -> list[str]:
    """How the file at `path` stayed open: a file object for it is still open, or one was
    closed only by the garbage collector (`warned`: its ResourceWarning)."""
    if any(isinstance(o, io.IOBase) and getattr(o, "name", None) == str(path) and not o.closed
           for o in gc.get_objects()):
        return ["an open file object for it still existed"]
    if warned:
        return ["it was never closed: Python closed it only when it collected the file"
                " object (ResourceWarning: unclosed file)"]
    return []


@observation
def _file_transfer(answer, abort, again=False):
    server = _deferred_server(lambda transport: answer(path, transport), "send_file")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        path = Path(folder) / "check-12.3.bin"
        path.write_bytes(FILE_DATA)
        with resource_warnings(str(path)) as warned:
            t = transfer("check-12.3", server, abort_after=ABORT_FILE if abort else None,
                         after_write=None if abort else _change_file(path))
        t.unclosed = _unclosed(path, warned)
    return t


@send.check("arrives", "the file arrives whole, as FileSender reads it",
            hint="FileSender reads the file one chunk at a time, as the transport asks for"
                 " it; hand it the open file and let it do the reading.")
def _file_arrives(answer):
    t = _file_transfer(answer, False)
    if t.received == FILE_DATA:
        fail("the client received the file as it was before the checker changed it, during"
             " the transfer: your code read the whole file before sending it")
    require(t.received == SENT, _first_difference(t.received, SENT))
    if t.index("fired") is None:
        require(t.closed, "every byte arrived, but your Deferred never fired, so the"
                " checker never closed the connection")
    require(t.closed, "every byte arrived, but the connection stayed open after the checker"
            f" closed it ({t.stall}): was a producer still registered?")


@send.check("chunks", "sent by a producer, one chunk at a time",
            hint="Do not read the file or write to the transport yourself: FileSender"
                 " does both, one chunk at a time, when the transport asks.")
def _file_in_chunks(answer):
    t = _file_transfer(answer, False)
    require(t.of("register"), "no producer was registered with the transport")
    wrong = _outside_or_too_big(t, CHUNK_SIZE)
    require(wrong is None, f"{wrong} (FileSender's chunk is {CHUNK_SIZE:,} bytes)")


@send.check("digest", "the Deferred fires with the SHA-256 hex digest of the bytes sent",
            hint="FileSender's transform sees every chunk on its way out: let it feed a"
                 " hash, and give the Deferred the hash's hex string at the end.")
def _digest(answer):
    t = _file_transfer(answer, False)
    fired, failed = t.index("fired"), t.index("failed")
    if failed is not None and fired is None:
        fail(f"your Deferred failed with {describe_error(t.calls[failed].detail)}")
    require(fired is not None, "your Deferred never fired")
    c = t.calls[fired]
    value, changed = c.detail, "the checker changed the file while it was being sent"
    if value == hashlib.sha256(FILE_DATA).hexdigest():
        fail(f"your Deferred fired with the SHA-256 of the file as it was before the"
             f" transfer; {changed}, so the bytes sent have another digest")
    if value == hashlib.sha256(CHANGED).hexdigest():
        fail(f"your Deferred fired with the SHA-256 of the file as it was after the"
             f" transfer; {changed}, so the bytes sent have another digest")
    if value == hashlib.sha256(SENT).digest():
        fail(f"your Deferred fired with {show(value)}, the raw digest (bytes); expected its"
             " hex string")
    require(value == SENT_DIGEST, f"your Deferred fired with {show(value)}; expected the"
            f" SHA-256 hex digest of the bytes sent, {SENT_DIGEST[:16]}...")
    require(c.written == len(SENT), f"your Deferred fired when {c.written:,} of"
            f" {len(SENT):,} bytes had been written")
    again = _file_transfer(answer, False, True)  # a second call, of the same file
    value = next((c.detail for c in again.calls if c.what == "fired"), None)
    if value == hashlib.sha256(SENT + SENT).hexdigest():
        fail("the checker sent the file a second time: your Deferred fired with the SHA-256"
             " of the bytes of both transfers; the hash outlived the first call")
    require(value == SENT_DIGEST, f"the checker sent the file a second time: your Deferred"
            f" fired with {show(value)}; expected {SENT_DIGEST[:16]}... again")


@send.check("fails-when-lost", "a lost connection fails the Deferred",
            hint="FileSender's Deferred fails when the connection is lost; whatever you add"
                 " to it must let that failure through.")
def _file_fails_when_lost(answer):
    t = _file_transfer(answer, True)
    fired, failed = t.index("fired"), t.index("failed")
    what = f"the client aborted the connection after {ABORT_FILE:,} bytes"
    if fired is not None:
        fail(f"{what}, and your Deferred fired with {show(t.calls[fired].detail)}; expected"
             " it to fail")
    require(failed is not None, f"{what}, and your Deferred never fired nor failed")


@send.check("closes-file", "the file is closed when the transfer ends, or fails",
            hint="The file is yours: close it when FileSender's Deferred has an outcome,"
                 " whichever it is, and not before.")
def _closes_file(answer):
    for abort, when in [(False, "after the transfer"),
                        (True, "after the connection was lost mid-transfer")]:
        t = _file_transfer(answer, abort)
        require(not t.unclosed, f"{when}: {t.unclosed[0] if t.unclosed else ''}")
