"""Checks for chapter 04 (concurrency models): real sockets on loopback, under a second each.

04.1 serve_pool(listener, handler, max_workers, stop) -- an accept loop that serves each
     connection in a bounded pool of threads, and returns once `stop` is set
04.2 idle_echo_loop(sel, listener, wakeup, idle) -- chapter 04's selectors echo loop,
     closing connections that received nothing for `idle` seconds
04.3 Commands -- a protocol class for the chapter's reactor (connection_made,
     data_received, transport.write/close): PING, ECHO <text>, QUIT, line limit

The answer under test runs in a daemon thread of its own; every check stops it
(through `stop`/`wakeup`, as the chapter's servers are stopped) and closes every
socket it opened, also when the answer is wrong.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

from ..servers import serve_socket
from .legacy import Check, exercise

TIMEOUT = 1.0  # the longest any single wait in these checks lasts
REPLY = 0.3  # how long a client waits for a reply that must come (loopback: < 1 ms)
SILENCE = 0.2  # how long a client waits to show that a reply does NOT come


def _require(condition, message):
    """Fail the check with `message` (an if, not `assert`: it must work under -O)."""
    if not condition:
        raise AssertionError(message)


def _error(exc):
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Runner:
    """Run the reader's function in a daemon thread; keep what it raised."""

    def __init__(self, fn, *args):
        self.error = None
        self.finished = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(fn, *args), name="helpers-check-answer", daemon=True
        )
        self.thread.start()

    def _run(self, fn, *args):
        try:
            fn(*args)
        except BaseException as exc:  # reported by the check, never printed
            self.error = exc
        finally:
            self.finished.set()

    def why(self, name):
        """Why the answer is not serving: '' while it runs, else what it did."""
        if not self.finished.is_set():
            return ""
        if self.error is not None:
            return f"; {name} raised {_error(self.error)}"
        return f"; {name} had already returned"


def _read(sock, size, wait, runner=None):
    """Read until `size` bytes, end of stream, or `wait` seconds; (data, True if ended).

    With a `runner`, stop waiting as soon as the answer under test has stopped
    running: nothing more will come.
    """
    deadline = time.monotonic() + wait
    data = b""
    while len(data) < size and (left := deadline - time.monotonic()) > 0:
        dead = runner is not None and runner.finished.is_set()
        sock.settimeout(min(left, 0.005 if dead else 0.05))
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            if dead:
                break
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _rest(sock, wait):
    """Everything that arrives until end of stream or `wait` seconds; (data, True if ended)."""
    return _read(sock, 1 << 30, wait)


def _wait_eof(sock, wait):
    """True if the peer closes the connection within `wait` seconds (reading what comes)."""
    return _rest(sock, wait)[1]


def _connect(address):
    return socket.create_connection(address, timeout=TIMEOUT)


# -- 04.1 serve_pool --------------------------------------------------------------


class _EchoHandlers:
    """The handler the checks give to serve_pool: echo, counting how many run at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = self.peak = 0

    def __call__(self, conn):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            conn.settimeout(2 * TIMEOUT)  # a handler of a broken answer still ends
            while data := conn.recv(1024):
                conn.sendall(data)
        finally:
            with self.lock:
                self.running -= 1


class _Pool:
    """serve_pool(listener, handler, max_workers, stop) running against a fresh listener."""

    def __init__(self, serve_pool, handler, max_workers):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        # An answer that never looks at `stop` gets a TimeoutError from accept() in the
        # end, instead of running forever.
        self.listener.settimeout(3 * TIMEOUT)
        self.address = self.listener.getsockname()
        self.stop = threading.Event()
        self.clients: list[socket.socket] = []
        self.runner = _Runner(serve_pool, self.listener, handler, max_workers, self.stop)

    def client(self):
        sock = _connect(self.address)
        self.clients.append(sock)
        return sock

    def talk(self, sock, data, wait=REPLY):
        """Send data; return what came back (up to len(data) bytes) within `wait`."""
        try:
            sock.sendall(data)
        except OSError as exc:
            raise AssertionError(f"sending {data!r}: {_error(exc)}{self.why()}") from None
        return _read(sock, len(data), wait, self.runner)[0]

    def why(self):
        return self.runner.why("serve_pool")

    def wake(self):
        """Set stop, and connect once so that a blocked accept() returns."""
        self.stop.set()
        return _connect(self.address)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        with contextlib.suppress(OSError), _connect(self.address):
            pass
        for sock in self.clients:
            sock.close()
        self.runner.finished.wait(TIMEOUT)
        self.listener.close()


def _check_concurrent(serve_pool):
    with _Pool(serve_pool, _EchoHandlers(), max_workers=3) as pool:
        clients = [pool.client() for _ in range(3)]
        for n, sock in enumerate(clients, 1):
            got = pool.talk(sock, b"hello from %d" % n)
            _require(
                got == b"hello from %d" % n,
                f"max_workers=3, 3 clients connected and staying connected: client {n} got"
                f" {got!r}, wanted b'hello from {n}'{pool.why()}"
                + (" (are the connections served one at a time?)" if n > 1 and not got else ""),
            )


def _check_bounded(serve_pool):
    handlers = _EchoHandlers()
    with _Pool(serve_pool, handlers, max_workers=2) as pool:
        c1, c2, c3, c4 = (pool.client() for _ in range(4))
        for n, sock in [(1, c1), (2, c2)]:
            got = pool.talk(sock, b"ping %d" % n)
            _require(
                got == b"ping %d" % n,
                f"max_workers=2: client {n} got {got!r}, wanted b'ping {n}'{pool.why()}",
            )
        c4.sendall(b"ping 4")
        got = pool.talk(c3, b"ping 3", wait=SILENCE)
        _require(
            not got,
            f"max_workers=2, clients 1 and 2 still connected: client 3 was answered ({got!r}),"
            f" so {handlers.peak} handlers ran at once",
        )
        c1.close()  # frees a worker: client 3 (or 4) is served now
        got3 = _read(c3, 6, REPLY, pool.runner)[0]
        got4 = b"" if got3 == b"ping 3" else _read(c4, 6, 0.05, pool.runner)[0]
        _require(
            got3 == b"ping 3" or got4 == b"ping 4",
            "max_workers=2: client 1 left, but neither waiting client was served then"
            f" (client 3 got {got3!r}, client 4 got {got4!r}){pool.why()}",
        )
        _require(handlers.peak <= 2, f"max_workers=2, but {handlers.peak} handlers ran at once")


def _reply_once(conn):
    """A handler that answers once, upper-cased, then returns without closing."""
    conn.settimeout(TIMEOUT)
    data = conn.recv(1024)
    conn.sendall(data.upper())
    if data == b"boom":
        raise RuntimeError("this handler fails on purpose")


def _check_closes(serve_pool):
    with _Pool(serve_pool, _reply_once, max_workers=2) as pool:
        for data, what in [(b"hi", "returned"), (b"boom", "raised an exception")]:
            sock = pool.client()
            got = pool.talk(sock, data)
            _require(
                got == data.upper(),
                f"client sent {data!r}: got {got!r}, wanted {data.upper()!r}{pool.why()}",
            )
            _require(
                _wait_eof(sock, REPLY),
                f"the handler {what} after its reply, but the connection stayed open for"
                f" {REPLY:g} s: close each connection when its handler is done{pool.why()}",
            )
        got = pool.talk(pool.client(), b"after")
        _require(
            got == b"AFTER",
            f"after a handler raised, the next client got {got!r}, wanted b'AFTER'{pool.why()}",
        )


def _check_stops(serve_pool):
    with _Pool(serve_pool, _EchoHandlers(), max_workers=2) as pool:
        client = pool.client()
        got = pool.talk(client, b"busy")
        _require(got == b"busy", f"client got {got!r}, wanted b'busy'{pool.why()}")
        with pool.wake() as waker:  # stop is set; this connection wakes accept() up
            _require(
                _wait_eof(waker, REPLY),
                f"stop was set and a connection woke accept() up, but that connection was not"
                f" closed within {REPLY:g} s{pool.why()}",
            )
        pool.runner.finished.wait(SILENCE)
        _require(
            not pool.runner.finished.is_set() or pool.runner.error is not None,
            "serve_pool returned while a handler was still serving a client: wait for the"
            " running handlers before returning",
        )
        _require(pool.runner.error is None, f"after stop was set{pool.why()}")
        client.close()  # the last handler ends
        _require(
            pool.runner.finished.wait(TIMEOUT),
            f"stop was set and the last client left, but serve_pool had not returned"
            f" {TIMEOUT:g} s later",
        )
        _require(pool.runner.error is None, f"after stop was set{pool.why()}")


exercise(
    "04.1",
    "A thread pool server",
    Check(
        "serves max_workers clients at the same time",
        _check_concurrent,
        "run each handler in a worker thread, e.g. pool.submit(...) on a"
        " concurrent.futures.ThreadPoolExecutor(max_workers), and go straight back to accept()",
    ),
    Check(
        "never more than max_workers handlers at once",
        _check_bounded,
        "a thread per connection without a limit is what this exercise replaces: a"
        " ThreadPoolExecutor(max_workers) queues the extra connections until a worker is free",
    ),
    Check(
        "closes each connection when its handler returns or raises",
        _check_closes,
        "submit a small function that does `with conn: handler(conn)`",
    ),
    Check(
        "returns after stop is set, once the running handlers have finished",
        _check_stops,
        "after accept(), `if stop.is_set(): conn.close(); return` inside a"
        " `with ThreadPoolExecutor(...) as pool:` block, which waits for running handlers",
    ),
)


# -- 04.2 idle_echo_loop --------------------------------------------------------------


class _CountingSelector(selectors.DefaultSelector):
    """The system's default selector, counting select() calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def select(self, timeout=None):
        self.calls += 1
        return super().select(timeout)


class _Loop:
    """idle_echo_loop(sel, listener, wakeup, idle) running in a thread."""

    def __init__(self, idle_echo_loop, idle):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.address = self.listener.getsockname()
        self.wakeup, self.waker = socket.socketpair()
        self.sel = _CountingSelector()
        self.clients: list[socket.socket] = []
        self.runner = _Runner(idle_echo_loop, self.sel, self.listener, self.wakeup, idle)

    def client(self):
        sock = _connect(self.address)
        self.clients.append(sock)
        return sock

    def why(self):
        return self.runner.why("idle_echo_loop")

    def talk(self, sock, data, what):
        try:
            sock.sendall(data)
        except OSError as exc:
            raise AssertionError(f"{what}: sending: {_error(exc)}{self.why()}") from None
        got, eof = _read(sock, len(data), REPLY, self.runner)
        _require(
            got == data,
            f"{what}: the client got {got!r}{' and end of stream' if eof else ''},"
            f" wanted the echo {data!r}{self.why()}",
        )

    def stop(self):
        with contextlib.suppress(OSError):
            self.waker.send(b"stop")
        return self.runner.finished.wait(TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        for sock in [*self.clients, self.listener, self.wakeup, self.waker]:
            sock.close()
        with contextlib.suppress(Exception):
            self.sel.close()


def _check_echoes(idle_echo_loop):
    with _Loop(idle_echo_loop, idle=5.0) as loop:
        c1, c2 = loop.client(), loop.client()
        loop.talk(c1, b"hello from 1", "client 1")
        loop.talk(c2, b"hello from 2", "client 2, while client 1 is connected")
        loop.talk(c1, b"still here", "client 1 again")


def _check_big(idle_echo_loop):
    payload = bytes(range(256)) * (4 * 2**20 // 256)  # 4 MiB: more than the kernel buffers
    with _Loop(idle_echo_loop, idle=5.0) as loop:
        sock = loop.client()
        loop.talk(sock, b"hi", "a client, before it sends 4 MiB")
        sock.settimeout(2 * TIMEOUT)
        try:
            sock.sendall(payload)  # reads nothing until everything is sent
        except OSError as exc:
            raise AssertionError(
                f"sending 4 MiB without reading: {_error(exc)}{loop.why()}"
            ) from None
        got, eof = _read(sock, len(payload), 2 * TIMEOUT, loop.runner)
        _require(
            got == payload,
            f"a client sent 4 MiB, then read: it got {len(got):,} bytes"
            f"{' and end of stream' if eof else ''}{', not the same bytes' if got else ''}"
            f"{loop.why()}",
        )


def _check_idle_closed(idle_echo_loop):
    idle = 0.15
    with _Loop(idle_echo_loop, idle=idle) as loop:
        silent, connected = loop.client(), time.monotonic()
        talker = loop.client()
        loop.talk(talker, b"hi", "a client that then says nothing")
        answered = time.monotonic()
        for name, sock, since in [("a client that talked once", talker, answered),
                                  ("a silent client", silent, connected)]:
            closed = _wait_eof(sock, 3 * idle)
            elapsed = time.monotonic() - since
            _require(
                closed,
                f"idle={idle:g}: {name} was still connected {elapsed:.2f} s later{loop.why()}",
            )
            _require(
                elapsed > idle * 0.6,
                f"idle={idle:g}: {name} was closed after only {elapsed:.2f} s",
            )


def _check_busy_kept(idle_echo_loop):
    idle, every = 0.2, 0.03
    with _Loop(idle_echo_loop, idle=idle) as loop:
        sock = loop.client()
        started = time.monotonic()
        for n in range(9):  # 0.27 s in all: longer than idle
            loop.talk(sock, b"%d" % n, f"idle={idle:g}: a client sending every {every:g} s, "
                      f"{time.monotonic() - started:.2f} s after it connected")
            time.sleep(every)


def _check_sleeps(idle_echo_loop):
    with _Loop(idle_echo_loop, idle=2.0) as loop:
        sock = loop.client()
        loop.talk(sock, b"hi", "a client")
        before = loop.sel.calls
        time.sleep(0.1)  # nothing happens: the loop should be asleep in select()
        calls = loop.sel.calls - before
        _require(
            calls <= 10,
            f"nothing happened for 0.1 s (one connection, idle=2), but select() was called"
            f" {calls:,} times: do not poll; select(timeout) with the time left until the"
            " earliest deadline sleeps until something is due",
        )


def _check_stop(idle_echo_loop):
    with _Loop(idle_echo_loop, idle=5.0) as loop:
        sock = loop.client()
        loop.talk(sock, b"hi", "a client")
        _require(
            loop.stop(),
            f"the wake-up socket became readable, but idle_echo_loop had not returned"
            f" {TIMEOUT:g} s later",
        )
        _require(loop.runner.error is None, f"after the wake-up{loop.why()}")
        _require(
            _wait_eof(sock, REPLY),
            "idle_echo_loop returned but left a client's connection open: close every socket",
        )
        _require(
            loop.listener.fileno() == -1,
            "idle_echo_loop returned but left the listening socket open: close every socket"
            " it registered, as echo_loop's `finally` does",
        )


exercise(
    "04.2",
    "Close idle connections",
    Check(
        "echoes to several clients at once",
        _check_echoes,
        "start from section 3's echo_loop, on_accept, on_ready and close",
    ),
    Check(
        "echoes 4 MiB to a client that reads only after sending",
        _check_big,
        "keep what send() did not take in a per-connection buffer, and register EVENT_WRITE"
        " while it is not empty (section 3's on_ready)",
    ),
    Check(
        "closes a connection that received nothing for `idle` seconds",
        _check_idle_closed,
        "keep a deadline per connection (now + idle, reset on every recv), pass the time"
        " left until the earliest one as select()'s timeout, then close what is due",
    ),
    Check(
        "keeps a connection that keeps sending",
        _check_busy_kept,
        "move a connection's deadline to now + idle every time recv() returns data",
    ),
    Check(
        "sleeps in select() while nothing is due (no busy loop)",
        _check_sleeps,
        "timeout = max(0, earliest deadline - time.monotonic()), or None with no connection",
    ),
    Check(
        "returns when the wake-up socket is readable, closing its sockets",
        _check_stop,
        "register wakeup for EVENT_READ; when it is ready, return; close every registered"
        " socket in a `finally` block",
    ),
)


# -- 04.3 Commands ----------------------------------------------------------------------


class _Transport:
    """What the protocol gets as self.transport: write() sends, close() ends the connection.

    Writes after close() are not sent (as with the chapter's Transport) but kept in
    `late`, so that a check can say the protocol went on after closing.
    """

    def __init__(self, conn, late):
        self.conn, self.closed, self.late = conn, False, late

    def write(self, data):
        if self.closed:
            self.late.append(bytes(data))
        else:
            self.conn.sendall(bytes(data))

    def close(self):
        self.closed = True


def _serve_protocol(factory, piece_sizes):
    """Serve factory() on loopback; connection k feeds data_received pieces of piece_sizes[k].

    A size of 0 means: each recv() result whole. The server keeps what the protocol
    raised in `server.raised`, before the connection closes.
    """
    sizes = iter(piece_sizes)

    def drive(conn):
        conn.settimeout(TIMEOUT)
        size = next(sizes, 0)
        transport = _Transport(conn, server.late)
        try:
            protocol = factory()
            protocol.connection_made(transport)
            while not transport.closed and (data := conn.recv(4096)):
                step = size or len(data)
                for start in range(0, len(data), step):
                    protocol.data_received(data[start : start + step])
                    if transport.closed:
                        break
            protocol.connection_lost(None)
        except Exception as exc:
            server.raised.append(exc)
            raise
        if transport.closed:  # let the client read everything, then see the end
            conn.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                while conn.recv(4096):
                    pass

    server = serve_socket("check-04.3", drive)
    server.raised, server.late = [], []
    return server


def _why_protocol(server):
    return "".join(f"; the protocol raised {_error(e)}" for e in server.raised[:1])


def _exchange(server, data, want, what, *, closed=False):
    """Send data; expect exactly `want` back, then end of stream if `closed`."""
    with _connect(server.address) as sock:
        sock.sendall(data)
        got, eof = _read(sock, len(want), REPLY)
        if closed and got == want and not eof:
            extra, eof = _rest(sock, REPLY)
            got += extra
        ended = " and end of stream" if eof else ""
        _require(
            got == want and eof == closed,
            f"{what}: sent {_short(data)}, the client got {_short(got)}{ended}; wanted"
            f" {_short(want)}{' and end of stream' if closed else ''}{_why_protocol(server)}",
        )


def _short(data):
    return repr(data) if len(data) <= 60 else f"{data[:40]!r}... ({len(data):,} bytes)"


_COMMANDS = b"PING\nECHO hello world\nNOPE\nPING\r\nECHO  two  spaces \n"
_REPLIES = b"PONG\nhello world\nERROR unknown command\nPONG\n two  spaces \n"


def _check_commands(protocol):
    with _serve_protocol(protocol, [0]) as server:
        _exchange(server, _COMMANDS, _REPLIES, "commands in one chunk")


def _check_pieces(protocol):
    sizes = [1, 2, 3, 5, 8]
    with _serve_protocol(protocol, sizes) as server:
        for size in sizes:
            _exchange(server, _COMMANDS, _REPLIES,
                      f"data_received called with pieces of {size} byte(s)")


def _check_quit(protocol):
    with _serve_protocol(protocol, [0, 1]) as server:
        for how in ["in one chunk", "in pieces of 1 byte"]:
            _exchange(server, b"ECHO a\nQUIT\nPING\n", b"a\nBYE\n",
                      f"QUIT, then PING, {how}", closed=True)
            _require(
                not server.late,
                f"QUIT, then PING, {how}: after transport.close() the protocol still wrote"
                f" {b''.join(server.late)!r}",
            )


def _check_limit(protocol):
    longest = b"ECHO " + b"x" * 1019  # exactly 1024 bytes: allowed
    with _serve_protocol(protocol, [0, 7, 0, 100]) as server:
        _exchange(server, longest + b"\n", b"x" * 1019 + b"\n", "a line of exactly 1024 bytes")
        _exchange(server, longest + b"\n", b"x" * 1019 + b"\n",
                  "a line of exactly 1024 bytes, in pieces of 7 bytes")
        _exchange(server, b"y" * 1500 + b"\n", b"ERROR line too long\n",
                  "a line of 1500 bytes in one chunk", closed=True)
        _exchange(server, b"z" * 1025, b"ERROR line too long\n",
                  "1025 bytes without a newline (and nothing more), in pieces of 100",
                  closed=True)


exercise(
    "04.3",
    "A command protocol for the reactor",
    Check(
        "answers PING, ECHO <text> and unknown commands",
        _check_commands,
        "split complete lines off a buffer, drop a trailing b'\\r', then compare: PING,"
        " a line starting with b'ECHO ', anything else",
    ),
    Check(
        "handles lines split across data_received calls",
        _check_pieces,
        "keep the bytes after the last b'\\n' in self.buffer and prepend them to the next"
        " chunk (chapter 02): never assume a chunk is a whole line",
    ),
    Check(
        "QUIT replies BYE, closes, and ignores what follows",
        _check_quit,
        "after QUIT: write b'BYE\\n', call self.transport.close() and stop handling lines,"
        " also those already in the buffer",
    ),
    Check(
        "refuses a line longer than 1024 bytes",
        _check_limit,
        "check each complete line's length, and the buffer's length when it holds no"
        " newline: over 1024 bytes, write b'ERROR line too long\\n' and close",
    ),
)
