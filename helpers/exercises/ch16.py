"""Checks for chapter 16 (asyncio for Twisted users).

16.1 async shout(reader, writer)          -- a streams handler: lines upper-cased, drain,
                                             close at end of stream (an unfinished last
                                             line unanswered), overlong line refused
16.2 async echo_all(address, messages)    -- one connection per message, all at once

`check()` is synchronous: called from a cell, it blocks the kernel's loop until it returns
(chapter 16, section 3). So the reader's coroutines never run on the kernel's loop here:
each check starts a `LoopThread` (a loop in a background thread, chapter 16, section 6),
serves or runs the reader's code on it, talks to it with blocking sockets from the check's
thread, and stops the loop and its servers before it returns. 16.2's echo server has a loop
thread of its own: an answer that blocks its loop still gets its echoes, and is told so.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import socket
import time

from ..aio import LoopThread, serve_streams
from . import exercise, fail, require, show
from .answers import resource_warnings
from .framework import CheckFailed, describe_error, note_raised
from .wire import Client

LIMIT = 64  # the StreamReader limit the checker serves 16.1 with
DELAY = 0.3  # how long 16.2's echo server waits before each echo
TOTAL = 4 << 20  # what the client of the "drain" check sends without reading
QUEUED = TOTAL // 16  # more queued than this fails; drain() keeps it under 64 KiB and a line
SETTLE = 1.0  # how long a connection may take to close once it should
CALL_LIMIT = 3.0  # how long echo_all may take (each echo comes after about DELAY)


@contextlib.contextmanager
def _loop_thread():
    """A LoopThread for one check. On the way out, what is still pending on it (a server's
    close that a blocked loop never ran, and the handlers it closes) is given a second to
    finish, so that no listening socket outlives the check."""
    lt = LoopThread("helpers-ch16-check")
    try:
        yield lt
    finally:
        loop = lt.loop
        loop.call_soon_threadsafe(loop.stop)
        lt.thread.join(2)
        if not lt.thread.is_alive():  # else the reader's code blocks it: leave it be
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(loop)
                if pending:
                    loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
            loop.close()


def _why(raised) -> str:
    return "".join(f"; your handler raised {describe_error(e)}" for e in raised)


# -- 16.1 -------------------------------------------------------------------

shout_ex = exercise("16.1", "A line server that survives bad input")


@contextlib.contextmanager
def _serving_shout(handler):
    """The reader's handler, served with limit=LIMIT on a loop thread; yields the server,
    with `.raised` (what the handler raised; its connection is then reset) and `.queued`
    (the most any connection had queued to send, noted after each of the handler's writes:
    a handler that never awaits starves any task that would watch)."""
    raised, queued = [], [0]

    async def run(reader, writer):
        sock = writer.get_extra_info("socket")  # small kernel buffers: what the server
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)  # queues shows at once
        write = writer.write

        def noting_write(data):
            write(data)
            queued[0] = max(queued[0], writer.transport.get_write_buffer_size())

        writer.write = noting_write
        try:
            result = handler(reader, writer)
            require(inspect.isawaitable(result), f"shout(reader, writer) returned"
                    f" {show(result)}, not a coroutine: define it with `async def`")
            await result
        except Exception as exc:
            raised.append(exc)
            note_raised(exc)
            writer.transport.abort()

    with _quiet_lost_writes(), _loop_thread() as lt:
        server = lt.run(serve_streams("ch16-check-shout", run, limit=LIMIT, loop=lt.loop))
        server.raised, server.queued = raised, queued
        try:
            yield server
        finally:
            with contextlib.suppress(Exception):
                server.stop(1.0)


@contextlib.contextmanager
def _quiet_lost_writes():
    """Drop asyncio's "socket.send() raised exception." warnings: a handler that does not
    drain goes on writing after the check's client has gone, and asyncio would log one line
    per write (thousands, under the cell). The check reports what the handler did."""

    def keep(record):
        return record.getMessage() != "socket.send() raised exception."

    logger = logging.getLogger("asyncio")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


@shout_ex.check("replies", "each line comes back upper-cased, however the lines arrive",
                hint="Let the StreamReader find the line ends (its readuntil), not chunk by"
                     " chunk: three lines can come in one write, and one line in two.")
def _replies(fn):
    with _serving_shout(fn) as server, Client(server.port) as client:
        client.send(b"hello\nworld\nthree in one\n")
        got = client.read_exactly(len(b"HELLO\nWORLD\nTHREE IN ONE\n"))
        require(got.data == b"HELLO\nWORLD\nTHREE IN ONE\n",
                f"sent b'hello\\nworld\\nthree in one\\n' in one write: {got}, expected"
                f" b'HELLO\\nWORLD\\nTHREE IN ONE\\n'{_why(server.raised)}")
        client.send(b"spl")
        early = client.read_exactly(1, timeout=0.2)
        require(not early.data, f"sent b'spl' (no newline yet): {early}, expected nothing"
                " until the line is complete")
        client.send(b"it\n")
        got = client.read_exactly(6)
        require(got.data == b"SPLIT\n", f"sent b'spl' then b'it\\n': {got}, expected"
                f" b'SPLIT\\n'{_why(server.raised)}")


@shout_ex.check("closes-at-eof", "at the end of the stream the server closes the connection",
                hint="The reading call tells you the stream ended (it raises"
                     " IncompleteReadError); then close the writer: ending only your side of"
                     " the stream (write_eof) leaves the connection open.")
def _closes_at_eof(fn):
    with _serving_shout(fn) as server, Client(server.port) as client:
        client.send(b"last\n")
        client.shutdown_write()
        got = client.read_to_end()
        require(got.data == b"LAST\n" and got.ending == "closed",
                f"sent b'last\\n' and ended the stream: {got}, expected b'LAST\\n', then"
                f" the connection closed{_why(server.raised)}")
        require(_wait_for(lambda: not server.connections, SETTLE),
                "sent b'last\\n' and ended the stream: the client saw the end of the"
                f" stream, but {SETTLE:g} s later the server still held the connection open"
                f" (only its sending side was ended){_why(server.raised)}")


def _wait_for(condition, seconds):
    """True once `condition()` holds, checked every 10 ms for at most `seconds`."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


@shout_ex.check("partial-line", "an unfinished last line (no b'\\n' before the end of the"
                " stream) gets no reply",
                hint="A line ends with b'\\n'. At the end of the stream, what is left is not a"
                     " line: readline returns it as if it were one; readuntil does not.")
def _partial_line(fn):
    with _serving_shout(fn) as server, Client(server.port) as client:
        client.send(b"last\nunfinished")
        client.shutdown_write()
        got = client.read_to_end()
        why = (" (b'unfinished' never got its b'\\n': it is not a line)"
               if b"UNFINISHED" in got.data else "")
        require(got.data == b"LAST\n",
                f"sent b'last\\nunfinished' and ended the stream: {got}, expected only"
                f" b'LAST\\n'{why}{_why(server.raised)}")


@shout_ex.check("overlong", f"a line over {LIMIT} bytes gets b'ERR line too long\\n', then"
                " the close; earlier lines keep their replies",
                hint="readuntil raises asyncio.LimitOverrunError past the limit (readline"
                     " turns it into ValueError). Catch it, write the error, and close: the"
                     " rest of the buffer is still the same overlong line.")
def _overlong(fn):
    want = b"OK\nERR line too long\n"
    with _serving_shout(fn) as server, Client(server.port) as client:
        client.send(b"ok\n" + b"x" * (3 * LIMIT) + b"\nafter\n")
        got = client.read_to_end()
        require(got.data == want and got.ending == "closed",
                f"sent b'ok\\n', a {3 * LIMIT}-byte line, then b'after\\n': {got}, expected"
                f" {show(want)}, then the connection closed{_why(server.raised)}")
    # A line that is already too long, its b"\n" not sent yet (maybe never): the server
    # must not wait for the end of a line it will refuse, buffering it meanwhile.
    with _serving_shout(fn) as server, Client(server.port) as client:
        client.send(b"ok\n" + b"x" * (3 * LIMIT))
        got = client.read_to_end()
        require(got.data == want and got.ending == "closed",
                f"sent b'ok\\n', then {3 * LIMIT} bytes of a line whose b'\\n' had not come"
                f" yet: {got}, expected {show(want)} at once, then the connection closed: a"
                f" line already over the limit is refused before its end{_why(server.raised)}")


@shout_ex.check("drain", "a client that stops reading cannot make the server buffer without"
                " bound",
                hint="writer.write() only queues; the writer's drain is what waits while the"
                     " queue is above its high-water mark.")
def _drain(fn):
    line = b"y" * (LIMIT - 4) + b"\n"
    with _serving_shout(fn) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            sock.connect(server.address)
            sock.setblocking(False)
            chunk, sent, stuck_since = line * 1024, 0, None
            while sent < TOTAL:
                try:
                    sent += sock.send(chunk)
                    stuck_since = None
                except ConnectionError as exc:
                    fail(f"a client sending many lines without reading the replies: after"
                         f" {sent} bytes, {describe_error(exc)}{_why(server.raised)}")
                except BlockingIOError:
                    stuck_since = stuck_since or time.monotonic()
                    if time.monotonic() - stuck_since > 0.3:
                        break
                    time.sleep(0.002)
            queued = _max_queued(server, 2.5 if sent >= TOTAL else 0.1)
        finally:
            sock.close()
        # The check's client closes with replies unread: the reset that a handler still
        # writing then gets is the check's doing, not a cause to report.
        mistakes = [e for e in server.raised if not isinstance(e, ConnectionError)]
        require(queued < QUEUED, f"a client sent {sent / 2**20:.1f} MiB of lines and read"
                f" none of the replies: the server read them all and queued"
                f" {queued / 2**20:.1f} MiB of replies in memory{_why(mistakes)}")


def _max_queued(server, seconds):
    """The most the server queued, watched until it passes QUEUED, or stays the same for
    0.3 s (the server stopped reading, or read it all), or `seconds` pass."""
    end, last, steady_since = time.monotonic() + seconds, None, time.monotonic()
    while time.monotonic() < end and server.queued[0] < QUEUED:
        if server.queued[0] != last:
            last, steady_since = server.queued[0], time.monotonic()
        elif time.monotonic() - steady_since > 0.3:
            break
        time.sleep(0.01)
    return server.queued[0]


@shout_ex.check("concurrent", "a client in the middle of a line does not hold up another",
                hint="Wait only with `await`: a blocking call (time.sleep, a socket's recv)"
                     " stops every connection on the loop.")
def _concurrent(fn):
    with _serving_shout(fn) as server, Client(server.port) as first:
        first.send(b"half a li")
        with Client(server.port) as second:
            second.send(b"second\n")
            got = second.read_exactly(7)
            require(got.data == b"SECOND\n", "while a first client had sent half a line, a"
                    f" second sent b'second\\n': {got}, expected b'SECOND\\n'"
                    f"{_why(server.raised)}")


# -- 16.2 -------------------------------------------------------------------

echo_all_ex = exercise("16.2", "Many echoes at once")


def _echo_server(lt, *, split=False, cut=False, late=()):
    """A delayed echo server on `lt`; `.stats` counts connections (open, most at once,
    total) and the messages echoed in full. A message in `late` waits twice as long."""
    stats = {"open": 0, "most": 0, "total": 0, "echoed": 0}

    async def handler(reader, writer):
        stats["open"] += 1
        stats["total"] += 1
        stats["most"] = max(stats["most"], stats["open"])
        try:
            while data := await reader.read(4096):
                await asyncio.sleep(2 * DELAY if data in late else DELAY)
                if cut:
                    writer.write(data[: len(data) // 2])
                    break
                if split:
                    writer.write(data[:2])
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    data = data[2:]
                writer.write(data)
                await writer.drain()
                stats["echoed"] += 1
        except ConnectionError:
            pass
        finally:
            stats["open"] -= 1
            writer.close()

    server = lt.run(serve_streams("ch16-check-echo", handler, loop=lt.loop))
    server.stats = stats
    return server


async def _heartbeat(stalled):
    """Note in stalled[0] the longest the loop went without running this task (stalled[1]:
    when it last ran)."""
    while True:
        _beat(stalled)
        await asyncio.sleep(0.01)


def _beat(stalled):
    now = time.monotonic()
    if stalled[1] is not None:
        stalled[0] = max(stalled[0], now - stalled[1] - 0.01)
    stalled[1] = now


def _call(fn, lt, server, messages):
    """Run echo_all(server.address, messages) on `lt` (the echo server has a loop of its
    own, so that an answer that blocks its loop still gets its echoes). `lt.stalled` is
    the longest the answer's loop was blocked."""
    result = fn(server.address, messages)
    if not inspect.isawaitable(result):
        fail(f"echo_all(address, messages) returned {show(result)}, not a coroutine: define"
             " it with `async def`")
    lt.stalled = [0.0, None]

    async def run():
        beat = asyncio.ensure_future(_heartbeat(lt.stalled))
        await asyncio.sleep(0)  # the heartbeat starts before the answer's first step
        try:
            return await result
        finally:
            _beat(lt.stalled)  # the answer may have blocked until its very end
            beat.cancel()

    future = asyncio.run_coroutine_threadsafe(run(), lt.loop)
    try:
        got = future.result(CALL_LIMIT)
    except concurrent.futures.TimeoutError:
        stats = dict(server.stats)  # before the cancel lets the answer close its connections
        future.cancel()
        fail(f"echo_all did not return within {CALL_LIMIT:g} s, though the server had"
             f" echoed {stats['echoed']} of the {len(messages)} messages in full; it was"
             f" waiting for more on {stats['open']} open connection(s)")
    except Exception as exc:
        note_raised(exc)
        raise
    return list(got) if isinstance(got, tuple) else got  # "the echoes", in order: any sequence


@contextlib.contextmanager
def _with_echo(**kwargs):
    """(the answer's loop thread, the echo server on a loop thread of its own)"""
    with _loop_thread() as server_lt, _loop_thread() as lt:
        server = _echo_server(server_lt, **kwargs)
        try:
            yield lt, server
        finally:
            with contextlib.suppress(Exception):
                server.stop(1.0)


MESSAGES = [b"alpha\n", b"bravo!\n", b"two\nlines\n", b"charlie\n", b"delta\n",
            "échos\n".encode()]


@echo_all_ex.check("echoes", "returns every echo, in the order of the messages",
                   hint="Return a list: the echo of messages[0] first, and so on, whatever"
                        " order they finished in (asyncio.gather keeps the order). A message"
                        " is bytes, not a line: its echo is as long as it is, newlines or"
                        " not.")
def _echoes(fn):
    with _with_echo(late={MESSAGES[0]}) as (lt, server):
        got = _call(fn, lt, server, MESSAGES)
    what = f"echo_all(address, {MESSAGES}) returned {show(got, 200)}"
    if isinstance(got, list) and len(got) == len(MESSAGES) and got != MESSAGES:
        if sorted(got, key=repr) == sorted(MESSAGES, key=repr):
            fail(f"{what}: the right echoes in another order (the server echoed"
                 f" {MESSAGES[0]!r} last), expected them in the order of the messages")
        wrong = next(i for i, (m, g) in enumerate(zip(MESSAGES, got, strict=True)) if m != g)
        fail(f"{what}: the echo of {MESSAGES[wrong]!r} came back as {show(got[wrong])}")
    require(got == MESSAGES, what)


@echo_all_ex.check("concurrent", "one connection per message, all open at the same time",
                   hint="Start every exchange before waiting for any: one coroutine per"
                        " message, awaited together. A blocking call (a plain socket,"
                        " time.sleep) stops every task on the loop.")
def _concurrent_echoes(fn):
    with _with_echo() as (lt, server):
        start = time.monotonic()
        _call(fn, lt, server, MESSAGES)
        took = time.monotonic() - start
    stats, n = server.stats, len(MESSAGES)
    require(stats["total"] >= n, f"echo_all(address, <{n} messages>) opened"
            f" {stats['total']} connection(s) for {n} messages, expected one per message")
    blocked = (f"; your code blocked its loop for {lt.stalled[0]:.1f} s at a stretch, and"
               " every other task on the loop waited with it" if lt.stalled[0] > DELAY
               else "")
    # All open at once and echoed together: about DELAY. Open at once but one exchange at a
    # time: n x DELAY. The bound between leaves a loaded machine room.
    require(stats["most"] == n and took < 3 * DELAY,
            f"{n} messages, each echoed after {DELAY:g} s: your function took"
            f" {took:.1f} s, with at most {stats['most']} connection(s) open at once (all"
            f" {n} at once would take about {DELAY:g} s){blocked}")


@echo_all_ex.check("whole-echo", "reads each echo in full, however the stream splits it",
                   hint="reader.read(n) returns what has arrived, up to n bytes;"
                        " readexactly(n) waits for all n.")
def _whole_echo(fn):
    # The second echo comes last: a list in the order of the echoes is right here, so
    # that only the "echoes" check tells of the order.
    with _with_echo(split=True, late={MESSAGES[1]}) as (lt, server):
        got = _call(fn, lt, server, MESSAGES[:2])
    require(got == MESSAGES[:2], "the server sent each echo in two pieces, 50 ms apart:"
            f" echo_all returned {show(got, 200)}, expected {MESSAGES[:2]}")


@echo_all_ex.check("closes", "closes every connection it opened",
                   hint="Close each writer (and wait until it is closed) once its echo is in;"
                        " a writer you drop is closed only by the garbage collector.")
def _closes(fn):
    with _with_echo() as (lt, server), resource_warnings("unclosed") as unclosed:
        _call(fn, lt, server, MESSAGES[:3])
        still = server.stats["open"] if lt.run(_settled(server)) else None
    left = len([u for u in unclosed if "StreamWriter" in u or "transport" in u])
    require(not left, f"echo_all returned and left {left} of its 3 connections for the"
            f" garbage collector to close (ResourceWarning: {unclosed[0][:60] if left else ''}...)")
    require(not still, f"{SETTLE:g} s after echo_all returned, {still} of its 3 connections"
            " were still open")


async def _settled(server):
    """True once the echo server has no open connection (at most SETTLE s)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SETTLE):
            while server.stats["open"]:
                await asyncio.sleep(0.005)
    return True


@echo_all_ex.check("incomplete", "a server that closes early makes it raise"
                   " IncompleteReadError",
                   hint="Do not catch the error or return what arrived: readexactly raises"
                        " IncompleteReadError when the stream ends short; let it propagate.")
def _incomplete(fn):
    with _with_echo(cut=True) as (lt, server):
        try:
            got = _call(fn, lt, server, [b"abcdefgh\n"])
        except asyncio.IncompleteReadError:
            return
        except ExceptionGroup as group:  # a TaskGroup's way to let it propagate
            rest = group.subgroup(lambda e: not isinstance(
                e, (asyncio.IncompleteReadError, ExceptionGroup)))
            if rest is None:
                return
            fail(f"the server echoed half of b'abcdefgh\\n' and closed: echo_all raised"
                 f" {describe_error(group)}, with {describe_error(rest.exceptions[0])}"
                 " among its errors; expected IncompleteReadError")
        except CheckFailed:
            raise
        except Exception as exc:
            fail(f"the server echoed half of b'abcdefgh\\n' and closed: echo_all raised"
                 f" {describe_error(exc)}, expected IncompleteReadError")
    fail(f"the server echoed half of b'abcdefgh\\n' and closed: echo_all returned"
         f" {show(got)}, expected it to raise IncompleteReadError")
