"""Checks for chapter 04 (concurrency models): real sockets on loopback.

04.1 serve_pool(listener, handler, max_workers, stop)  -- an accept loop that serves each
     connection in a bounded pool of threads, and returns once `stop` is set
04.2 idle_echo_loop(sel, listener, wakeup, idle)       -- chapter 04's selectors echo loop,
     closing connections that received nothing for `idle` seconds
04.3 Commands                                          -- a protocol for the chapter's reactor
     (imported from the notebook's `# module: reactor` cells): PING, ECHO, QUIT, line limit

The answers of 04.1 and 04.2 are servers: each runs in a thread of its own for one check,
which stops it as the chapter's servers are stopped (`stop`, `wakeup`) and closes every
socket it gave it, also when the answer is wrong. The two sessions of 04.2 that take `idle`
seconds run at once, each on a loop of its own (`_idle_sessions`), and three checks read
what their clients saw.
"""

from __future__ import annotations

import contextlib
import functools
import selectors
import socket
import threading
import time
from pathlib import Path

from ..notebook_code import load
from . import CheckFailed, exercise, fail, observation, require, show
from .answers import Running
from .framework import describe_error, note_raised
from .wire import Client, Received

TIMEOUT = 1.0  # the longest a check waits for something that must happen
REPLY = 0.5  # how long a client waits for a reply that must come (loopback: < 1 ms)
SILENCE = 0.2  # how long a client waits to show that a reply does NOT come
BIG = 16 * 2**20  # 04.2: bytes a client sends before it reads
SMALL_BUFFER = 64 * 1024  # 04.2: SO_SNDBUF / SO_RCVBUF, so that kernel buffers hold little
IDLE = 0.3  # 04.2: the idle time of the timing checks
LATE = 0.15  # 04.2: how late an idle connection may be closed (a busy machine)
TRANSFER = 3.0  # 04.2: the longest a client reads the echo of BIG bytes
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "04_concurrency_models.ipynb"


def _connect(port, **options) -> Client:
    return Client(port, timeout=REPLY, **options)


def _read(client, n: int, stopped, timeout: float | None = None) -> Received:
    """client.read_exactly(n) within `timeout` (REPLY), but stop waiting as soon as
    stopped() says that nothing more will come (the answer has returned, or raised)."""
    timeout = REPLY if timeout is None else timeout
    start, data = time.monotonic(), b""
    while True:
        left = start + timeout - time.monotonic()
        got = client.read_exactly(n - len(data), timeout=max(0.0, min(0.05, left)))
        data += got.data
        if got.ending != "silent" or left <= 0.05 or stopped():
            return Received(data, got.ending, round(time.monotonic() - start, 1))


def _echoes(client, data: bytes, what: str, answer) -> None:
    """Send data; fail unless exactly data comes back within REPLY."""
    client.send(data, what)
    got = _read(client, len(data), answer.stopped)
    if got.data != data or got.ending != "complete":
        fail(f"{what}: sent {show(data)}, expected the echo but {got}{answer.why()}")


# -- 04.1 serve_pool --------------------------------------------------------------------

pool = exercise("04.1", "A thread pool server")


class _Handlers:
    """The handler a check gives to serve_pool: echo, counting calls and handlers at once."""

    def __init__(self):
        self.lock = threading.Condition()
        self.calls = self.running = self.peak = 0

    def called(self, times, timeout):
        """Whether the handler has been called `times` times, waiting up to `timeout`."""
        with self.lock:
            return self.lock.wait_for(lambda: self.calls >= times, timeout)

    def __call__(self, conn):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.lock.notify_all()
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
        self.before = set(threading.enumerate())
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        # An answer that never looks at `stop` gets a TimeoutError from accept() in the end.
        self.listener.settimeout(3 * TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.clients: list[Client] = []
        self.answer = Running("serve_pool", serve_pool, self.listener, handler, max_workers,
                              self.stop)

    def client(self) -> Client:
        self.clients.append(_connect(self.port))
        return self.clients[-1]

    def threads(self) -> int:
        """Threads started since the answer was, besides the answer's own."""
        return len(set(threading.enumerate()) - self.before - {self.answer.thread})

    def wake(self) -> Client:
        """Set stop, and connect once so that a blocked accept() returns."""
        self.stop.set()
        return self.client()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        with contextlib.suppress(Exception):
            socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT).close()
        for client in self.clients:
            client.close()
        self.answer.finished.wait(TIMEOUT)
        self.listener.close()


@pool.check("concurrent", "serves max_workers clients at the same time",
            hint="Each connection is handled in a worker thread while the accept loop goes"
                 " straight back to accept().")
def _concurrent(serve_pool):
    with _Pool(serve_pool, _Handlers(), 3) as server:
        clients = [server.client() for _ in range(3)]
        for n, client in enumerate(clients, 1):
            _echoes(client, b"hello from %d" % n,
                    f"max_workers=3, three clients connected at once: client {n}",
                    server.answer)


@pool.check("bounded", "never more than max_workers threads and handlers at once",
            hint="A thread per connection, even one that waits for its turn, is what this"
                 " exercise replaces: the connections themselves must wait, in a queue, for"
                 " one of max_workers threads.")
def _bounded(serve_pool):
    handlers = _Handlers()
    with _Pool(serve_pool, handlers, 2) as server:
        c1, c2, c3, c4 = (server.client() for _ in range(4))
        for n, client in [(1, c1), (2, c2)]:
            _echoes(client, b"ping %d" % n, f"max_workers=2: client {n}", server.answer)
        c4.send(b"ping 4")
        c3.send(b"ping 3")
        got = _read(c3, 6, server.answer.stopped, timeout=SILENCE)
        require(not got.data, f"max_workers=2, clients 1 and 2 still connected: client 3 was"
                              f" answered ({show(got.data)}), so {handlers.peak} handlers ran"
                              " at once")
        threads = server.threads()
        require(threads <= 2, f"max_workers=2, four clients connected: serve_pool started"
                              f" {threads} threads")
        c1.close()  # frees a worker: client 3 or 4 is served now
        got3 = _read(c3, 6, server.answer.stopped)
        got4 = Received(b"", "silent") if got3.data == b"ping 3" else \
            _read(c4, 6, server.answer.stopped, timeout=0.1)
        require(got3.data == b"ping 3" or got4.data == b"ping 4",
                "max_workers=2: client 1 left, but neither waiting client was served then"
                f" (client 3 {got3}; client 4 {got4}){server.answer.why()}")
        require(handlers.peak <= 2, f"max_workers=2, but {handlers.peak} handlers ran at once")


class _ReplyOnce(_Handlers):
    """A handler that answers once, upper-cased, then returns without closing (or raises,
    after a b"boom"), counting its calls."""

    def __call__(self, conn):
        with self.lock:
            self.calls += 1
            self.lock.notify_all()
        conn.settimeout(TIMEOUT)
        data = conn.recv(1024)
        conn.sendall(data.upper())
        if data == b"boom":
            raise RuntimeError("this handler fails on purpose")


@pool.check("closes", "closes each connection when its handler returns or raises",
            hint="The handler does not close its connection; whatever runs it must, however"
                 " the handler ends.")
def _closes(serve_pool):
    handler = _ReplyOnce()
    with _Pool(serve_pool, handler, 2) as server:
        # Client 1 alone; then clients 2 and 3 at once, both accepted before either answers
        # (so the latest accepted connection is not the one whose handler ends first).
        clients = [(server.client(), b"hi", "returned", "client 1")]
        _closed_after_reply(server, *clients[0])
        clients = [(server.client(), b"boom", "raised an exception", "client 2"),
                   (server.client(), b"boom", "raised an exception",
                    "client 3 (connected with client 2)")]
        handler.called(3, REPLY)
        for client in clients:
            _closed_after_reply(server, *client)
        _echoes_upper(server.client(), b"after", server, "max_workers=2: after two handlers"
                      " raised, the next client")


def _closed_after_reply(server, client, data, how, who):
    _echoes_upper(client, data, server, f"max_workers=2: {who}")
    end = client.read_to_end(timeout=REPLY)
    require(end.ending in ("closed", "reset") and not end.data,
            f"max_workers=2: the handler of {who} {how} after its reply, but the client then"
            f" {end}: close each connection when its handler is done{server.answer.why()}")


def _echoes_upper(client, data, server, what="a client"):
    client.send(data)
    got = _read(client, len(data), server.answer.stopped)
    if got.data != data.upper():
        early = ": it was closed before its handler answered" \
            if not got.data and got.ending in ("closed", "reset") else ""
        fail(f"{what} sent {data!r}, expected {data.upper()!r} but {got}{early}"
             f"{server.answer.why()}")


@pool.check("stops", "returns after stop is set, once the running handlers have finished",
            hint="Look at stop right after accept() returns: the connection that woke you is"
                 " not a client. Then wait for the handlers that are still running.")
def _stops(serve_pool):
    handlers = _Handlers()
    with _Pool(serve_pool, handlers, 2) as server:
        client = server.client()
        _echoes(client, b"busy", "a client", server.answer)
        waker = server.wake()  # stop is set; this connection wakes accept() up
        end = waker.read_to_end(timeout=REPLY)
        # a busy machine may start the pool's second thread late: give it time to show up
        wrongly_served = end.ending not in ("closed", "reset") and handlers.called(2, TIMEOUT)
        require(handlers.calls == 1 and not wrongly_served,
                "stop was set, yet the connection that woke accept() up was given to the"
                " handler")
        require(end.ending in ("closed", "reset"),
                f"stop was set and a connection woke accept() up, but that connection {end}"
                f"{server.answer.why() or ': serve_pool did not close it'}")
        server.answer.finished.wait(SILENCE)
        require(not server.answer.finished.is_set() or server.answer.error is not None,
                "serve_pool returned while a handler was still serving a client")
        require(server.answer.error is None, f"after stop was set{server.answer.why()}")
        client.close()  # the last handler ends
        require(server.answer.finished.wait(TIMEOUT),
                f"stop was set and the last client left, but serve_pool had not returned"
                f" {TIMEOUT:g} s later")
        require(server.answer.error is None, f"after stop was set{server.answer.why()}")


# -- 04.2 idle_echo_loop -----------------------------------------------------------------

idle_loop = exercise("04.2", "Close idle connections")


class _CountingSelector(selectors.DefaultSelector):
    """The system's default selector, counting select() calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.timeouts: list = []  # the timeout of every select() call, in order
        self.readable: list | None = None  # while a list: what select() reported readable
        self.called = threading.Condition()

    def select(self, timeout=None):
        with self.called:
            self.calls += 1
            self.timeouts.append(timeout)
            self.called.notify_all()
        ready = super().select(timeout)
        if self.readable is not None:
            self.readable += [key.fileobj for key, mask in ready if mask & selectors.EVENT_READ]
        return ready

    def wait_called(self, times: int, timeout: float) -> bool:
        """Whether select() has been called `times` times, waiting up to `timeout`."""
        with self.called:
            return self.called.wait_for(lambda: self.calls >= times, timeout)


class _Loop:
    """idle_echo_loop(sel, listener, wakeup, idle) running in a thread. The listener's
    small buffers are inherited by every connection it accepts."""

    def __init__(self, idle_echo_loop, idle):
        self.listener = socket.socket()
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            self.listener.setsockopt(socket.SOL_SOCKET, option, SMALL_BUFFER)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.wakeup, self.waker = socket.socketpair()
        self.sel = _CountingSelector()
        self.clients: list[Client] = []
        self.answer = Running("idle_echo_loop", idle_echo_loop, self.sel, self.listener,
                              self.wakeup, idle)

    def client(self, **options) -> Client:
        self.clients.append(_connect(self.port, **options))
        return self.clients[-1]

    def stop(self) -> bool:
        with contextlib.suppress(OSError):
            self.waker.send(b"stop")
        return self.answer.finished.wait(TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        for sock in [*(c.sock for c in self.clients), self.listener, self.wakeup, self.waker]:
            sock.close()
        with contextlib.suppress(Exception):
            self.sel.close()


@idle_loop.check("echoes", "echoes to several clients at once",
                 hint="Start from section 3's echo_loop, on_accept, on_ready and close.")
def _echoes_to_several(idle_echo_loop):
    with _Loop(idle_echo_loop, idle=5.0) as loop:
        c1, c2 = loop.client(), loop.client()
        _echoes(c1, b"hello from 1", "client 1", loop.answer)
        _echoes(c2, b"hello from 2", "client 2, while client 1 is connected", loop.answer)
        _echoes(c1, b"still here", "client 1 again", loop.answer)


_PAYLOAD = bytes(range(256)) * (BIG // 256)


def _transfer(loop, half_close: bool) -> Received:
    """A client sends BIG bytes without reading (then half-closes if asked), then reads
    for at most TRANSFER s: all of it, or, after a half-close, to the end."""
    client = loop.client(rcvbuf=SMALL_BUFFER)
    _echoes(client, b"hi", "a client, before it sends 16 MiB", loop.answer)
    client.sock.settimeout(2 * TIMEOUT)
    try:
        client.sock.sendall(_PAYLOAD)  # reads nothing until everything is sent
    except TimeoutError:
        fail("a client sending 16 MiB without reading could not send for"
             f" {2 * TIMEOUT:g} s: the server stopped reading{loop.answer.why()}")
    except OSError as exc:
        fail(f"a client sending 16 MiB without reading: {describe_error(exc)}"
             f"{loop.answer.why()}")
    if half_close:
        client.shutdown_write()
        return client.read_to_end(TRANSFER, silence=2 * TIMEOUT)
    return client.read_exactly(BIG, TRANSFER, silence=2 * TIMEOUT)


def _said(got: Received) -> str:
    """What the client got, counted (16 MiB do not print), and how its read ended."""
    intact = got.data == _PAYLOAD[: len(got.data)]
    ended = str(Received(b"", got.ending, got.seconds)).removeprefix("got nothing")
    return (f"it got {len(got.data):,} bytes{'' if intact else ' (not the bytes it sent)'}"
            f"{ended}")


@idle_loop.check("big", "echoes 16 MiB to a client that reads only after sending",
                 hint="A non-blocking socket's send() takes what fits and may refuse the"
                      " rest: keep what it did not take, and send it when the socket is"
                      " writable again.")
def _big(idle_echo_loop):
    with _Loop(idle_echo_loop, idle=5.0) as loop:
        got = _transfer(loop, half_close=False)
        require(got.data == _PAYLOAD,
                f"a client sent 16 MiB without reading, then read: {_said(got)}"
                f"{loop.answer.why()}")


@idle_loop.check("half-close", "echoes everything to a client that stops sending, then reads",
                 hint="recv() returning b'' says that the client will send nothing more, not"
                      " that it stopped reading.")
def _half_close(idle_echo_loop):
    with _Loop(idle_echo_loop, idle=5.0) as loop:
        got = _transfer(loop, half_close=True)
        require(got.data == _PAYLOAD and got.ending == "closed",
                "a client sent 16 MiB, shut down its sending side (shutdown(SHUT_WR)), then"
                f" read: {_said(got)}; expected all 16 MiB, then the connection"
                f" closed{loop.answer.why()}")


def _closed_at(client, since: float, wait: float) -> tuple[Received, float]:
    """Read until the connection ends or `wait` passes: how, and when (s after since)."""
    got = client.read_to_end(timeout=wait)
    return got, time.monotonic() - since


@idle_loop.check("closes-idle", "closes a connection `idle` seconds after its last byte",
                 hint="Keep a deadline per connection; select() can wait until the earliest"
                      " one, and then the loop closes what is due.")
def _closes_idle(idle_echo_loop):
    _seen(idle_echo_loop, "quiet")


def _quiet_session(idle_echo_loop):
    """idle=IDLE: a silent client, and one that says b"hi" just before the silent one's
    deadline, then nothing; both are closed in time, and a new client is served after."""
    with _Loop(idle_echo_loop, idle=IDLE) as loop:
        # the talker connects first: its deadline, moved later, is then not the earliest
        talker = loop.client()
        silent, connected = loop.client(), time.monotonic()
        # the test condition: the talker sends just before the deadline (unless the answer
        # has already returned or raised: then nothing will echo, and the check says so)
        loop.answer.finished.wait(0.8 * IDLE)
        _echoes(talker, b"hi", "a client that then says nothing", loop.answer)
        talked = time.monotonic()
        with socket.socket() as spare:  # made now, so that the server's next accept() may
            _idle_closed(loop, silent, connected, talker, talked)  # get a closed one's number
            client = loop.client(sock=spare)
            what = "a new client, after the idle ones were closed"
            client.send(b"anyone?", what)
            got = client.read_exactly(7)
            require(got.data == b"anyone?", f"{what}: sent b'anyone?', expected it back but"
                                            f" {got}{loop.answer.why()}")
        # The new client got another number (another session's sockets, or the garbage
        # collector, freed a lower one): what the selector holds still says it.
        stale = _closed_but_registered(loop.sel)
        require(not stale, f"idle={IDLE:g}: the idle connections were closed, but the selector"
                           f" still had {stale} closed socket(s) registered: the next"
                           " connection given one of their numbers cannot be registered")


def _closed_but_registered(sel) -> int:
    """How many closed sockets are still registered on `sel` (0 if it cannot tell)."""
    with contextlib.suppress(Exception):  # the loop's thread may change the map meanwhile
        return sum(1 for key in list(sel.get_map().values())
                   if isinstance(key.fileobj, socket.socket) and key.fileobj.fileno() == -1)
    return 0


def _idle_closed(loop, silent, connected, talker, talked):
    """Both clients are closed `idle` seconds after their last byte, give or take LATE."""
    clients = [("a silent client", silent, connected),
               (f"a client that sent b'hi' {talked - connected:.2f} s later", talker, talked)]
    ends = []
    for name, client, since in clients:
        got, after = _closed_at(client, since, IDLE + LATE + TIMEOUT)
        require(got.ending in ("closed", "reset"),
                f"idle={IDLE:g}: {name} {got}{loop.answer.why()}")
        require(after >= 0.9 * IDLE,
                f"idle={IDLE:g}: {name} was closed only {after:.2f} s after its last byte")
        ends.append((name, since + after, after))
    (silent_name, silent_closed, silent_after), (talker_name, talker_closed, _) = ends
    if silent_after > IDLE + LATE and abs(talker_closed - silent_closed) < LATE / 2:
        fail(f"idle={IDLE:g}: {silent_name} was closed {silent_after:.2f} s after its last"
             f" byte, not {IDLE:g} s: select() slept past its deadline, until that of"
             f" {talker_name} (closed at the same time)")
    for name, _, after in ends:
        require(after <= IDLE + LATE,
                f"idle={IDLE:g}: {name} was closed {after:.2f} s after its last byte, not"
                f" {IDLE:g} s: select() slept past its deadline")


_HALF = _PAYLOAD[: 4 * 2**20]  # what the half-closing client of the busy session sends
_SLOW = 16 * 1024, 0.02  # how it reads its echo: 16 KiB every 20 ms (800 KB/s)


@observation
def _idle_sessions(idle_echo_loop) -> dict:
    """The sessions whose timing takes `idle` seconds, each on a loop of its own, run at
    once: the quiet one of closes-idle, and a busy one, idle=IDLE, with two clients for
    0.6 s (twice `idle`): one that sends every 50 ms, and one that sends 4 MiB, shuts down
    its sending side and reads its echo slowly. What each client saw: None, or a failure
    message, or what it observed."""
    seen: dict = {}

    def run(name, part, *args):
        try:
            seen[name] = part(*args)
        except CheckFailed as exc:
            seen[name] = str(exc)
        except Exception as exc:  # raised again by the check that reads it
            seen[name] = exc

    def busy_session():
        with _Loop(idle_echo_loop, idle=IDLE) as loop:
            half = threading.Thread(target=run, args=("half", _slow_reader, loop), daemon=True)
            half.start()
            run("busy", _busy, loop)
            half.join(3 * TIMEOUT + IDLE + LATE)
            seen["why"] = loop.answer.why()

    busy = threading.Thread(target=run, args=("busy-session", busy_session), daemon=True)
    busy.start()
    run("quiet", _quiet_session, idle_echo_loop)
    busy.join(6 * TIMEOUT + IDLE + LATE)
    return seen


def _busy(loop):
    every = 0.05
    client = loop.client()
    started = time.monotonic()
    for n in range(12):  # 0.6 s in all: twice `idle`
        _echoes(client, b"%d" % n, f"idle={IDLE:g}: a client sending every {every:g} s,"
                f" {time.monotonic() - started:.2f} s after it connected", loop.answer)
        time.sleep(every)  # the test condition: a client that sends every 50 ms


def _slow_reader(loop):
    """Send _HALF, shut down writing, read slowly until IDLE + LATE after the last byte, then
    read to the end: (bytes read, how the connection ended, when, s after the last byte)."""
    client = loop.client(rcvbuf=SMALL_BUFFER)
    _send_all(loop, client, _HALF, "a client sending 4 MiB without reading")
    client.shutdown_write()
    sent, got, (size, pause) = time.monotonic(), 0, _SLOW
    client.sock.settimeout(pause)
    while time.monotonic() < sent + IDLE + LATE:
        time.sleep(pause)  # the test condition: a client that reads slowly
        try:
            chunk = client.sock.recv(size)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return got, "reset", time.monotonic() - sent
        if not chunk:
            return got, "closed", time.monotonic() - sent
        got += len(chunk)
    end = client.read_to_end(timeout=TIMEOUT)
    return got + len(end.data), end.ending, time.monotonic() - sent


def _send_all(loop, client, data: bytes, what: str) -> None:
    """client.sock.sendall(data), but fail as soon as the answer has stopped, or when it
    could not send for 2 * TIMEOUT."""
    view, start = memoryview(data), time.monotonic()
    client.sock.settimeout(0.05)
    while view:
        try:
            view = view[client.sock.send(view) :]
        except TimeoutError:
            if loop.answer.stopped() or time.monotonic() - start > 2 * TIMEOUT:
                fail(f"{what}: it could not send for {time.monotonic() - start:.1f} s: the"
                     f" server stopped reading{loop.answer.why()}")
        except OSError as exc:
            fail(f"{what}: {describe_error(exc)}{loop.answer.why()}")


def _seen(idle_echo_loop, name):
    """What the client `name` of _idle_sessions saw; fail with its failure message."""
    seen = _idle_sessions(idle_echo_loop)
    for part in (name, "busy-session"):
        if isinstance(seen.get(part), BaseException):
            raise seen[part]
        if isinstance(seen.get(part), str):
            fail(seen[part])
    if name not in seen:
        fail(f"idle={IDLE:g}: the {name} client had not finished"
             f" {6 * TIMEOUT + IDLE + LATE:g} s later{seen.get('why', '')}")
    return seen[name], seen.get("why", "")


@idle_loop.check("keeps-busy", "keeps a connection that keeps sending",
                 hint="Receiving anything starts a connection's idle time again.")
def _keeps_busy(idle_echo_loop):
    _seen(idle_echo_loop, "busy")


@idle_loop.check("half-closed-idle", "closes a half-closed connection `idle` seconds after its"
                 " last byte, even with its echo still queued",
                 hint="Only receiving moves a connection's deadline: sending it its echo does"
                      " not, and shutting down its sending side does not take the deadline"
                      " away.")
def _half_closed_idle(idle_echo_loop):
    (got, ending, after), why = _seen(idle_echo_loop, "half")
    what = (f"idle={IDLE:g}: a client sent 4 MiB, shut down its sending side and read its"
            f" echo slowly ({_SLOW[0] // 1024} KiB every {_SLOW[1] * 1000:g} ms)")
    closed = ending in ("closed", "reset")
    require(closed and got < len(_HALF),
            f"{what}: {IDLE + LATE:g} s after its last byte its connection was still open;"
            f" it then got {'all' if got == len(_HALF) else f'{got:,} bytes of'} its echo"
            f"{', and the connection closed' if closed else ' and the connection stayed open'}"
            f" {after:.2f} s after its last byte{why}")


@idle_loop.check("sleeps", "sleeps in the given selector's select() while nothing is due",
                 hint="select()'s timeout is how long it may sleep: until the earliest deadline,"
                      " or for ever while there is none. With timeout=0 it returns at once,"
                      " and a socket at the end of its stream is always readable: either way"
                      " a loop around it spins.")
def _sleeps(idle_echo_loop):
    with _Loop(idle_echo_loop, idle=2.0) as loop:
        client = loop.client()
        _echoes(client, b"hi", "a client", loop.answer)
        require(loop.sel.calls > 0,
                "idle_echo_loop echoed without ever calling select() on the selector `sel` it"
                " was given")
        # the first call came before the loop accepted anything (a client may have been
        # waiting in the backlog already: the loop did not know)
        first = loop.sel.timeouts[:1]
        # a client that sends 1 MiB without reading, then shuts down its sending side: the
        # server holds its echo, and that socket is at the end of its stream
        half = loop.client(rcvbuf=SMALL_BUFFER)
        _send_all(loop, half, _PAYLOAD[: 2**20], "a client sending 1 MiB without reading")
        half.shutdown_write()
        # let it read all that, and the end of the stream: until select() is not called
        # for SILENCE / 2 (or is called 200 times: it will not settle)
        start, deadline = loop.sel.calls, time.monotonic() + TIMEOUT
        while loop.sel.calls < start + 200 and time.monotonic() < deadline and \
                loop.sel.wait_called(loop.sel.calls + 1, SILENCE / 2):
            pass
        before, loop.sel.readable = loop.sel.calls, []
        time.sleep(SILENCE)  # nothing happens: the loop should be asleep in select()
        calls, readable = loop.sel.calls - before, loop.sel.readable
        loop.sel.readable = None
        at_end = sum(1 for sock in readable if _peer(sock) == half.sock.getsockname())
        require(at_end <= 3,
                f"a client sent 1 MiB without reading and shut down its sending side; then for"
                f" {SILENCE:g} s select() reported its connection readable {at_end:,} times: the"
                " loop still watches a socket at the end of its stream for reading, and spins")
        require(calls <= 3,
                f"nothing happened for {SILENCE:g} s (two connections, idle=2), but select()"
                f" was called {calls:,} times: the loop is polling")
        require(first == [None],
                f"before it had accepted any connection, select() was called with"
                f" timeout={first[0]!r}: with no connection nothing is due, and the timeout is"
                " None")
        last = loop.sel.timeouts[-1]
        require(last is not None and last >= 1.0,
                f"two connections, idle=2, nothing due for about 2 s, but select() was called"
                f" with timeout={last!r}: its timeout is the time left until the earliest"
                " deadline")


def _peer(sock):
    """The address at the other end of the server's socket (None once it is closed)."""
    try:
        return sock.getpeername()
    except OSError:
        return None


@idle_loop.check("stops", "returns when the wake-up socket is readable, closing its sockets",
                 hint="The wake-up socket is one more registered socket; echo_loop shows what"
                      " to do when it is ready, and what to close on the way out.")
def _stops_on_wakeup(idle_echo_loop):
    with _Loop(idle_echo_loop, idle=5.0) as loop:
        client = loop.client()
        _echoes(client, b"hi", "a client", loop.answer)
        require(loop.stop(), f"the wake-up socket became readable, but idle_echo_loop had not"
                             f" returned {TIMEOUT:g} s later")
        require(loop.answer.error is None, f"after the wake-up{loop.answer.why()}")
        end = client.read_to_end(timeout=REPLY)
        require(end.ending in ("closed", "reset"),
                f"idle_echo_loop returned, but a client's connection stayed open: it {end}")
        require(loop.listener.fileno() == -1,
                "idle_echo_loop returned but left the listening socket open")


# -- 04.3 Commands ------------------------------------------------------------------------

commands = exercise("04.3", "A command protocol for the reactor")


@functools.cache
def _reactor():
    """The notebook's reactor module, its Transport noting writes made after close()."""
    module = load(NOTEBOOK, "reactor")

    class NotingTransport(module.Transport):
        def write(self, data):
            if self.closing:
                self.protocol.late.append(bytes(data))
            super().write(data)

    class DeathNotingReactor(module.Reactor):
        def __init__(self):
            super().__init__()
            self.died, self.ended = None, threading.Event()  # what escaped run(); when

        def run(self):
            try:
                super().run()
            except BaseException as exc:
                self.died = exc
                raise
            finally:
                self.ended.set()

    module.Transport = NotingTransport  # what listen_tcp() gives each connection
    module.Reactor = DeathNotingReactor  # what start_reactor() runs
    return module


class _Feed:
    """Between the chapter's Transport and the reader's protocol: hands each chunk over in
    pieces of `size` bytes (0: whole), until the protocol has closed the transport."""

    def __init__(self, protocol, size, late):
        self.protocol, self.size, self.late = protocol, size, late

    def connection_made(self, transport):
        self.transport = transport
        self.protocol.connection_made(transport)

    def data_received(self, data):
        step = self.size or len(data)
        for start in range(0, len(data), step):
            if self.transport.closing:
                return
            self.protocol.data_received(data[start : start + step])

    def connection_lost(self, reason):
        self.protocol.connection_lost(reason)


@contextlib.contextmanager
def _serving(cls, sizes):
    """The reader's protocol on the chapter's reactor, in a thread; connection k is fed in
    pieces of sizes[k] bytes (0 or past the end: as they arrive)."""
    module, late, sizes = _reactor(), [], iter(sizes)
    server = module.start_reactor(lambda: _Feed(cls(), next(sizes, 0), late),
                                  name="check-04.3-reactor")
    server.late, server.port = late, server.address[1]

    def settled():
        """Wait until the reactor thread has finished what it was doing."""
        done, ended = threading.Event(), server.reactor.ended
        with contextlib.suppress(OSError):  # its wake-up socket is closed once run() ended
            server.reactor.call_from_thread(done.set)
        deadline = time.monotonic() + TIMEOUT
        while not (done.wait(0.05) or ended.is_set()) and time.monotonic() < deadline:
            pass
        if server.reactor.died is not None:  # its sockets are closed: nothing more to see
            fail(f"the reactor's thread stopped: {describe_error(server.reactor.died)}"
                 " escaped Reactor.run()")

    def why():
        settled()
        for exc in server.reactor.errors:
            note_raised(exc)
        return "".join(f"; your protocol raised {describe_error(e)}"
                       for e in server.reactor.errors[:1])

    server.why, server.settled = why, settled
    server.stopped = lambda: bool(server.reactor.errors)
    try:
        yield server
    finally:
        why()
        server.stop()


def _first_wrong_reply(sent: bytes, want: bytes, got: bytes) -> str:
    """Lines answered with one line each: "; " and which line was answered wrong, and how."""
    lines, wanted, replies = (part.split(b"\n")[:-1] for part in (sent, want, got))
    for n, (line, expected) in enumerate(zip(lines, wanted, strict=False), 1):
        expected += b"\n"
        if n > len(replies):
            return f"; line {n}, {show(line)}, had no reply, expected {show(expected)}"
        reply = replies[n - 1] + b"\n"
        if reply != expected:
            return (f"; the first wrong reply is to line {n}, {show(line)}: {show(reply)},"
                    f" expected {show(expected)}")
    return ""


def _exchange(server, data: bytes, want: bytes, what: str, *, closed=False, lines=False):
    """Send data; expect exactly `want` back, then the end of the connection if `closed`.
    With `lines`, each line sent has one line of reply, and a failure says which is wrong."""
    with _connect(server.port) as client:
        client.send(data)
        got = _read(client, len(want), server.stopped)
        if closed and got.ending == "complete":
            end = client.read_to_end(timeout=REPLY)
            got = Received(got.data + end.data, end.ending, end.seconds)
        ends = ("closed", "reset") if closed else ("complete",)
        if got.data != want or got.ending not in ends:
            wanted = f"{show(want)}, then the end of the connection" if closed else show(want)
            detail = _first_wrong_reply(data, want, got.data) if lines else ""
            fail(f"{what}: sent {show(data)}, expected {wanted} but {got}{detail}"
                 f"{server.why()}")
    server.settled()
    require(not server.late, f"{what}: after transport.close() the protocol still wrote"
                             f" {show(b''.join(server.late))}")


_COMMANDS = (b"PING\nECHO hello world\nNOPE\nPING\r\nECHO  two  spaces \nECHO a\rb\n"
             b"PINGPONG\nECHOx\n\nECHO prix: 5 \xe2\x82\xac\nPING now\nECHO\n")
_REPLIES = (b"PONG\nhello world\nERROR unknown command\nPONG\n two  spaces \na\rb\n"
            b"ERROR unknown command\nERROR unknown command\nERROR unknown command\n"
            b"prix: 5 \xe2\x82\xac\nERROR unknown command\nERROR unknown command\n")


@commands.check("commands", "answers PING, ECHO <text> and anything else, line by line",
                hint="Compare whole lines: a line that only starts like a command, or goes"
                     " on after it, is not that command; ECHO's text is every byte after"
                     " 'ECHO ', spaces and all. Only '\\n' ends a line.")
def _commands(cls):
    with _serving(cls, [0]) as server:
        _exchange(server, _COMMANDS, _REPLIES, "twelve lines in one write", lines=True)


@commands.check("pieces", "handles lines split across data_received calls",
                hint="A chunk can end anywhere, even inside a character: keep the bytes after"
                     " the last newline for the next call (chapter 02).")
def _pieces(cls):
    sizes = [1, 2, 3, 5, 8]
    with _serving(cls, sizes) as server:
        for size in sizes:
            _exchange(server, _COMMANDS, _REPLIES,
                      f"twelve lines, data_received called with pieces of {size} byte(s)",
                      lines=True)


@commands.check("own-line", "two connections at once, each with its own unfinished line",
                hint="Each connection has its own protocol object: keep its state in that"
                     " object, not in the class.")
def _own_line(cls):
    with _serving(cls, [0, 0]) as server, _connect(server.port) as c1, \
            _connect(server.port) as c2:
        for client, data, want, what in [
            (c1, b"PING\nPI", b"PONG\n", "client 1"),
            (c2, b"PING\nEC", b"PONG\n", "client 2, while client 1's line is unfinished"),
            (c1, b"NG\n", b"PONG\n", "client 1, finishing its line"),
            (c2, b"HO x\n", b"x\n", "client 2, finishing its line"),
        ]:
            client.send(data)
            got = _read(client, len(want), server.stopped)
            if got.data != want:
                fail(f"{what}: sent {show(data)}, expected {show(want)} but {got}{server.why()}")


@commands.check("quit", "QUIT replies BYE, closes, and ignores what follows",
                hint="After QUIT, nothing more is answered: not the lines already received,"
                     " nor anything that comes later.")
def _quit(cls):
    with _serving(cls, [0, 1]) as server:
        for how in ["in one write", "in pieces of 1 byte"]:
            _exchange(server, b"ECHO a\nQUIT\nPING\n", b"a\nBYE\n", f"QUIT, then PING, {how}",
                      closed=True)


@commands.check("limit", "refuses a line longer than 1024 bytes, as soon as it is",
                hint="A line may be long, but not endless: look at the length of complete"
                     " lines, and at what is buffered while no newline has come.")
def _limit(cls):
    longest = b"ECHO " + b"x" * 1019  # exactly 1024 bytes: allowed
    with _serving(cls, [0, 8, 0, 100]) as server:
        _exchange(server, longest + b"\n", b"x" * 1019 + b"\n", "a line of exactly 1024 bytes")
        _exchange(server, longest + b"\n", b"x" * 1019 + b"\n",
                  "a line of exactly 1024 bytes, in pieces of 8 bytes (the newline alone)")
        _exchange(server, b"y" * 1500 + b"\nPING\n", b"ERROR line too long\n",
                  "a line of 1500 bytes and a PING, in one write", closed=True)
        _exchange(server, b"z" * 1025, b"ERROR line too long\n",
                  "1025 bytes without a newline (and nothing more), in pieces of 100",
                  closed=True)
