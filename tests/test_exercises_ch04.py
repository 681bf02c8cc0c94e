"""Chapter 04 exercises: learners' mistakes fail the check that names them, with a message
that names the cause (reference solutions: tests/test_exercises.py)."""

import contextlib
import selectors
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import check
from solutions.ch04 import Client, Commands, Protocol


def no_answer_threads_left():
    """The answers under test run in threads named helpers-check-answer; all must end."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name == "helpers-check-answer"]:
            return True
        time.sleep(0.01)
    return False


def stub(*args, **kwargs):
    raise NotImplementedError("your code here")


class StubCommands(Protocol):
    def data_received(self, data):
        raise NotImplementedError("your code here")


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    """The wrong answers here fail sooner than in the notebook. On loopback a reply comes
    within a millisecond: one that must come is waited for 0.3 s (REPLY, 0.5 s in the
    notebook), one that must not 0.1 s (SILENCE, 0.2 s), and what must happen 0.5 s
    (TIMEOUT, 1 s). TRANSFER (3 s) stays: only an echo of BIG bytes that is still flowing
    waits for it, and none of these answers does."""
    from helpers.exercises import ch04

    monkeypatch.setattr(ch04, "REPLY", 0.3)
    monkeypatch.setattr(ch04, "SILENCE", 0.1)
    monkeypatch.setattr(ch04, "TIMEOUT", 0.5)


@pytest.mark.parametrize(("exercise_id", "answer"),
                         [("04.1", stub), ("04.2", stub), ("04.3", StubCommands)])
def test_the_stub_is_not_attempted_and_shows_no_hint(exercise_id, answer):
    started = time.monotonic()
    report = check(exercise_id, answer)
    assert not report.attempted, repr(report)
    assert "hint" not in repr(report)
    assert time.monotonic() - started < 2.0  # the notebook runs these checks
    assert no_answer_threads_left()


# -- 04.1 -------------------------------------------------------------------------


def pool_server(listener, handler, max_workers, stop, *, mistake=None):
    """serve_pool, right unless `mistake` names one."""

    def serve(conn):
        if mistake == "closes only on return":
            handler(conn)
            conn.close()
            return
        with conn:
            handler(conn)

    with ThreadPoolExecutor(max_workers) as pool:
        while mistake != "stop before accept" or not stop.is_set():
            conn, _ = listener.accept()
            if stop.is_set() and mistake != "stop before accept":
                conn.close()
                return
            if mistake == "never closes":
                pool.submit(handler, conn)
            elif mistake == "closed in the accept thread":
                with conn:
                    pool.submit(serve, conn)
            elif mistake == "executor per connection":
                with ThreadPoolExecutor(max_workers) as own:
                    own.submit(serve, conn)
            else:
                pool.submit(serve, conn)


def mistaken(mistake):
    def answer(listener, handler, max_workers, stop):
        return pool_server(listener, handler, max_workers, stop, mistake=mistake)

    return answer


def does_not_wait(listener, handler, max_workers, stop):
    """Wrong: returns at once on stop, handlers still running."""

    def serve(conn):
        with conn:
            handler(conn)

    pool = ThreadPoolExecutor(max_workers)
    while True:
        conn, _ = listener.accept()
        if stop.is_set():
            conn.close()
            pool.shutdown(wait=False)
            return
        pool.submit(serve, conn)


def test_returning_before_the_handlers_have_finished_fails():
    report = check("04.1", does_not_wait)
    assert report.failed == {"stops"}
    assert report.message("stops") == (
        "serve_pool returned while a handler was still serving a client")


def iterative(listener, handler, max_workers, stop):
    """Wrong: one connection at a time, like section 1."""
    while True:
        conn, _ = listener.accept()
        with conn:
            if stop.is_set():
                return
            handler(conn)


def unbounded(listener, handler, max_workers, stop, *, wait_for_turn=False):
    """Wrong: a thread per connection (waiting for one of max_workers turns, if asked)."""
    turns, workers = threading.Semaphore(max_workers), []

    def serve(conn):
        with conn, contextlib.suppress(Exception):  # no traceback from a test thread
            if wait_for_turn:
                with turns:
                    handler(conn)
            else:
                handler(conn)

    while True:
        conn, _ = listener.accept()
        if stop.is_set():
            conn.close()
            break
        workers.append(threading.Thread(target=serve, args=(conn,)))
        workers[-1].start()
    for worker in workers:
        worker.join()


def test_a_thread_per_connection_fails_the_bound():
    report = check("04.1", unbounded)
    assert report.failed == {"bounded"}
    assert report.message("bounded").startswith(
        "max_workers=2, clients 1 and 2 still connected: client 3 was answered (b'ping 3'),"
        " so ")  # 3 or 4 handlers, as client 4's thread has started or not


def test_a_thread_per_connection_waiting_for_its_turn_fails_the_bound():
    def waiting_threads(listener, handler, max_workers, stop):
        unbounded(listener, handler, max_workers, stop, wait_for_turn=True)

    report = check("04.1", waiting_threads)
    assert report.failed == {"bounded"}
    assert report.message("bounded") == (
        "max_workers=2, four clients connected: serve_pool started 4 threads")


def test_the_iterative_server_fails():
    report = check("04.1", iterative)
    assert {"concurrent", "bounded"} <= report.failed
    assert report.message("concurrent").startswith(
        "max_workers=3, three clients connected at once: client 2: sent b'hello from 2',"
        " expected the echo but got nothing, then nothing more for 0.3 s")


@pytest.mark.parametrize(("mistake", "failed", "message"), [
    ("never closes", {"closes"},
     "max_workers=2: the handler of client 1 returned after its reply, but the client then got"
     " nothing, then nothing more for 0.3 s: close each connection when its handler is done"),
    ("closes only on return", {"closes"},
     # client 2's connection is closed by the garbage collector; client 3's is still the
     # accept loop's `conn`
     "max_workers=2: the handler of client 3 (connected with client 2) raised an exception"
     " after its reply, but the client then got nothing, then nothing more for 0.3 s: close"
     " each connection when its handler is done"),
    ("closed in the accept thread", {"bounded", "closes"},
     "max_workers=2: client "),
    ("executor per connection", {"concurrent", "bounded", "stops"},
     "max_workers=3, three clients connected at once: client 2: sent b'hello from 2',"
     " expected the echo but got nothing, then nothing more for 0.3 s"),
    ("stop before accept", {"stops"},
     "stop was set, yet the connection that woke accept() up was given to the handler"),
])
def test_wrong_pool_servers_fail_the_check_that_names_their_mistake(mistake, failed, message):
    report = check("04.1", mistaken(mistake))
    if mistake == "closed in the accept thread":  # a race: "concurrent", "stops" may pass
        assert failed <= report.failed, repr(report)
    else:
        assert report.failed == failed, repr(report)
    key = {"never closes": "closes", "closes only on return": "closes",
           "stop before accept": "stops", "closed in the accept thread": "bounded",
           }.get(mistake, "concurrent")
    if mistake == "stop before accept" and not report.message(key).startswith(message):
        # stop set between two turns of its loop: it then never accepts the waking
        # connection at all, which the check reports as a connection that got nothing
        message = "stop was set and a connection woke accept() up, but that connection got"
    assert report.message(key).startswith(message)
    assert no_answer_threads_left()


def test_closing_the_last_accepted_connection_when_a_handler_is_done_fails():
    def late_binding(listener, handler, max_workers, stop):
        """Wrong: the lambda closes whatever `conn` is when the handler ends, the latest
        connection accepted, not the handler's own."""
        with ThreadPoolExecutor(max_workers) as pool:
            while True:
                conn, _ = listener.accept()
                if stop.is_set():
                    conn.close()
                    return
                done = pool.submit(handler, conn)
                done.add_done_callback(lambda future: conn.close())  # noqa: B023 (the mistake)

    report = check("04.1", late_binding)
    assert report.failed == {"closes"}, repr(report)
    message = report.message("closes")
    assert message.startswith(  # closed or reset: "boom" arrived before the close or not
        "max_workers=2: client 3 (connected with client 2) sent b'boom', expected b'BOOM' but"
        " got nothing, then the connection "), message
    assert message.endswith(": it was closed before its handler answered"), message
    assert no_answer_threads_left()


def test_a_worker_slot_lost_when_a_handler_raises_fails():
    def leaks_a_slot(listener, handler, max_workers, stop):
        """Wrong: a semaphore bounds the handlers, but a handler that raises never gives
        its turn back: after max_workers exceptions, nothing is served."""
        turns = threading.Semaphore(max_workers)

        def serve(conn):
            with conn:
                handler(conn)
            turns.release()  # skipped when handler() raised

        with ThreadPoolExecutor(max_workers) as pool:
            while True:
                while not turns.acquire(timeout=0.05):  # (so that this test ends)
                    if stop.is_set():
                        return
                conn, _ = listener.accept()
                if stop.is_set():
                    conn.close()
                    return
                pool.submit(serve, conn)

    report = check("04.1", leaks_a_slot)
    assert report.failed == {"closes"}, repr(report)
    assert report.message("closes") == (
        "max_workers=2: after two handlers raised, the next client sent b'after', expected"
        " b'AFTER' but got nothing, then nothing more for 0.3 s")
    assert no_answer_threads_left()


def test_leaving_the_waking_connection_open_fails():
    def keeps_the_waker(listener, handler, max_workers, stop):
        """Wrong: returns on stop, but the connection that woke accept() stays open."""

        def serve(conn):
            with conn:
                handler(conn)

        with ThreadPoolExecutor(max_workers) as pool:
            while True:
                conn, _ = listener.accept()
                if stop.is_set():
                    break  # conn is still referenced until the handlers have finished
                pool.submit(serve, conn)

    report = check("04.1", keeps_the_waker)
    assert report.failed == {"stops"}, repr(report)
    assert report.message("stops") == (
        "stop was set and a connection woke accept() up, but that connection got nothing, then"
        " nothing more for 0.3 s: serve_pool did not close it")
    assert no_answer_threads_left()


# -- 04.2 -------------------------------------------------------------------------


def idle_loop(sel, listener, wakeup, idle, *, mistake=None):
    """idle_echo_loop, right unless `mistake` names one."""
    if mistake == "own selector":
        sel = selectors.DefaultSelector()
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wakeup, selectors.EVENT_READ, "stop")
    deadlines = {}
    last = {"byte": None}  # "one deadline": when any connection last received a byte

    def close(conn):
        if mistake != "no unregister":
            sel.unregister(conn)
        conn.close()
        deadlines.pop(conn, None)

    try:
        while True:
            timeout = None
            if deadlines:
                earliest = min(deadlines.values())
                if mistake == "first deadline":  # the first connection's: not the earliest
                    earliest = next(iter(deadlines.values()))
                elif mistake == "one deadline" and last["byte"] is not None:
                    earliest = last["byte"] + idle
                timeout = max(0.0, earliest - time.monotonic())
            elif mistake == "idle when empty":
                timeout = idle
            if mistake == "busy":
                timeout = 0
            elif mistake == "fixed timeout":
                timeout = idle
            elif mistake == "never idle":
                timeout = None
            elif mistake == "ticks":
                timeout = 0.1  # wakes up 10 times a second to look at the deadlines
            for key, mask in sel.select(timeout):
                if key.data == "stop":
                    if mistake == "leaves sockets open":
                        sel.close()
                        return
                    return
                if key.data == "accept":
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, Client())
                    deadlines[conn] = time.monotonic() + idle
                    continue
                conn, client = key.fileobj, key.data
                try:
                    if mask & selectors.EVENT_READ:
                        data = conn.recv(65536)
                        if not data and mistake == "closes at end of stream":
                            close(conn)
                            continue
                        if data:
                            last["byte"] = time.monotonic()
                            if mistake != "deadline from accept only":
                                deadlines[conn] = time.monotonic() + idle
                            if mistake == "sendall":  # raises once the buffers are full
                                conn.sendall(data)  # non-blocking: what did it send?
                            else:
                                client.out += data
                        else:
                            client.done = True
                            if mistake == "no deadline once done":
                                del deadlines[conn]  # "it sends nothing more anyway"
                    sent = conn.send(client.out)
                    if sent and mistake == "sending counts":
                        deadlines[conn] = time.monotonic() + idle
                    del client.out[:sent]
                except BlockingIOError:
                    pass  # as the chapter's on_ready does: here it loses what sendall kept
                except ConnectionError:
                    close(conn)
                    continue
                if client.done and not client.out:
                    close(conn)
                    continue
                reading = not client.done or mistake == "reads at end of stream"
                watch = ((selectors.EVENT_READ if reading else 0)
                         | (selectors.EVENT_WRITE if client.out else 0))
                if watch != key.events:
                    sel.modify(conn, watch, client)
            now = time.monotonic()
            if mistake == "one deadline":
                if last["byte"] is not None and last["byte"] + idle <= now:
                    for conn in list(deadlines):
                        close(conn)
                continue
            for conn in [c for c, d in deadlines.items() if d <= now]:
                if mistake == "spares the sending" and sel.get_key(conn).data.out:
                    continue  # "not while its echo is still going out"
                close(conn)
    finally:
        if mistake != "leaves sockets open":
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()


def loop_with(mistake):
    def answer(sel, listener, wakeup, idle):
        return idle_loop(sel, listener, wakeup, idle, mistake=mistake)

    return answer


@pytest.mark.parametrize(("mistake", "failed", "key", "message"), [
    ("sendall", {"big", "half-close"}, "big",
     "a client sent 16 MiB without reading, then read: it got "),
    ("closes at end of stream", {"half-close"}, "half-close",
     "a client sent 16 MiB, shut down its sending side (shutdown(SHUT_WR)), then read: it got "),
    ("never idle", {"closes-idle", "sleeps"}, "closes-idle",
     "idle=0.3: a silent client got nothing, then nothing more for 0.95 s"),
    ("fixed timeout", {"closes-idle", "sleeps"}, "closes-idle",
     "idle=0.3: a silent client was closed 0.5"),
    ("first deadline", {"closes-idle"}, "closes-idle",
     "idle=0.3: a silent client was closed 0.5"),
    ("one deadline", {"closes-idle", "half-closed-idle"}, "closes-idle",
     "idle=0.3: a silent client was closed 0.5"),
    ("no unregister", {"closes-idle"}, "closes-idle", ""),
    ("deadline from accept only", {"closes-idle", "keeps-busy"}, "keeps-busy",
     "idle=0.3: a client sending every 0.05 s, 0.3"),
    ("sending counts", {"half-closed-idle"}, "half-closed-idle",
     "idle=0.3: a client sent 4 MiB, shut down its sending side and read its echo slowly (16"
     " KiB every 20 ms): 0.45 s after its last byte its connection was still open; it then got"
     " all its echo, and the connection closed "),
    ("no deadline once done", {"half-closed-idle"}, "half-closed-idle",
     "idle=0.3: a client sent 4 MiB, shut down its sending side and read its echo slowly (16"
     " KiB every 20 ms): 0.45 s after its last byte its connection was still open; it then got"
     " all its echo, and the connection closed "),
    ("spares the sending", {"half-closed-idle"}, "half-closed-idle",
     "idle=0.3: a client sent 4 MiB, shut down its sending side and read its echo slowly (16"
     " KiB every 20 ms): 0.45 s after its last byte its connection was still open; it then got"
     " all its echo, and the connection closed "),
    ("busy", {"sleeps"}, "sleeps",
     "nothing happened for 0.1 s (two connections, idle=2), but select() was called "),
    ("ticks", {"sleeps"}, "sleeps",
     "before it had accepted any connection, select() was called with timeout=0.1: with no"
     " connection nothing is due, and the timeout is None"),
    ("idle when empty", {"sleeps"}, "sleeps",
     "before it had accepted any connection, select() was called with timeout=2.0: with no"
     " connection nothing is due, and the timeout is None"),
    ("reads at end of stream", {"sleeps"}, "sleeps",
     "a client sent 1 MiB without reading and shut down its sending side; then for 0.1 s"
     " select() reported its connection readable "),
    ("own selector", {"sleeps"}, "sleeps",
     "idle_echo_loop echoed without ever calling select() on the selector `sel` it was given"),
    ("leaves sockets open", {"stops"}, "stops",
     "idle_echo_loop returned but left the listening socket open"),
])
def test_wrong_idle_loops_fail_the_check_that_names_their_mistake(mistake, failed, key,
                                                                   message):
    report = check("04.2", loop_with(mistake))
    assert report.failed == failed, repr(report)
    assert report.message(key).startswith(message), report.message(key)
    if mistake == "sendall":  # 16 MiB: the kernel buffers cannot hide what sendall lost
        assert report.message("big").endswith(", then nothing more for 1 s")
        assert report.message("half-close").endswith(
            " bytes (not the bytes it sent), then the connection closed; expected all 16 MiB,"
            " then the connection closed")
    if mistake in ("first deadline", "one deadline", "fixed timeout"):
        # it woke up at the deadline of the client that talked later, not at the earliest
        assert report.message("closes-idle").endswith(
            " s after its last byte, not 0.3 s: select() slept past its deadline, until that"
            " of a client that sent b'hi' 0.24 s later (closed at the same time)"), \
            report.message("closes-idle")
    if mistake == "deadline from accept only":
        assert report.message("closes-idle").startswith(
            "idle=0.3: a client that sent b'hi' 0.2")
        assert " s later was closed only 0.0" in report.message("closes-idle")
    if mistake == "no unregister":
        # the new client is given a closed connection's number (the loop then raises), or
        # another one (the selector still holds the closed ones)
        assert ("is already registered" in report.message("closes-idle")
                or "but the selector still had " in report.message("closes-idle")), \
            report.message("closes-idle")
    if mistake == "reads at end of stream":
        assert report.message("sleeps").endswith(
            " times: the loop still watches a socket at the end of its stream for reading, and"
            " spins")
    assert no_answer_threads_left()


# -- 04.3 -------------------------------------------------------------------------


class ChunkIsALine(Commands):
    """Wrong: treats every chunk as whole lines."""

    def data_received(self, data):
        for line in data.split(b"\n")[:-1]:
            if not self.done:
                self.line_received(line.removesuffix(b"\r"))


class GoesOnAfterQuit(Commands):
    """Wrong: closes on QUIT, but still answers the lines already buffered."""

    def finish(self):
        self.transport.close()


class ByeAfterClose(Commands):
    def line_received(self, line):
        if line == b"QUIT":
            self.finish()
            self.transport.write(b"BYE\n")
        else:
            super().line_received(line)


class NoLimit(Commands):
    MAX_LINE = 10**9


class LimitOffByOne(Commands):
    MAX_LINE = 1023


class LimitOnlyWithoutNewline(Commands):
    """Wrong: checks the buffer, but not a long line that arrived whole."""

    def data_received(self, data):
        if self.done:
            return
        self.buffer += data
        while not self.done and b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.line_received(line.removesuffix(b"\r"))
        if not self.done and len(self.buffer) > self.MAX_LINE:
            self.refuse()


class LimitOnlyOnLines(Commands):
    """Wrong: checks complete lines only; bytes without a newline pile up for ever."""

    def data_received(self, data):
        self.MAX_LINE, limit = 10**9, self.MAX_LINE
        self.buffer += data
        while not self.done and b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if len(line) > limit:
                return self.refuse()
            self.line_received(line.removesuffix(b"\r"))


class StartsWith(Commands):
    def line_received(self, line):
        if line.startswith(b"PING"):
            self.transport.write(b"PONG\n")
        elif line.startswith(b"ECHO"):
            self.transport.write(line[5:] + b"\n")
        else:
            super().line_received(line)


class Strips(Commands):
    def line_received(self, line):
        super().line_received(line.strip())


class SplitLines(Commands):
    """Wrong: splitlines() also ends a line at a lone b"\\r"."""

    def data_received(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.splitlines(keepends=True) or [b""]
        if self.buffer.endswith(b"\n"):
            lines.append(self.buffer)
            self.buffer = b""
        for line in lines:
            if not self.done:
                self.line_received(line.rstrip(b"\r\n"))


class DecodesEachChunk(Commands):
    """Wrong: decodes every chunk as UTF-8 before buffering it."""

    def data_received(self, data):
        super().data_received(data.decode("utf-8").encode("utf-8"))


class SharedBuffer(Commands):
    """Wrong: the buffer is a class attribute, one bytearray for every connection."""

    buffer = bytearray()

    def __init__(self):
        self.done = False

    def data_received(self, data):
        self.buffer += data  # in place: the class's bytearray
        while not self.done and b"\n" in self.buffer:
            end = self.buffer.index(b"\n")
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            self.line_received(line.removesuffix(b"\r"))


@pytest.mark.parametrize(("answer", "failed", "key", "message"), [
    (ChunkIsALine, {"pieces", "own-line", "quit", "limit"}, "pieces",
     "twelve lines, data_received called with pieces of 1 byte(s): sent b'PING\\nECHO hello"),
    (GoesOnAfterQuit, {"quit"}, "quit",
     "QUIT, then PING, in one write: after transport.close() the protocol still wrote b'PONG\\n'"),
    (ByeAfterClose, {"quit"}, "quit",
     "QUIT, then PING, in one write: sent b'ECHO a\\nQUIT\\nPING\\n', expected b'a\\nBYE\\n', then"
     " the end of the connection but got b'a\\n', then the connection closed"),
    (NoLimit, {"limit"}, "limit",
     "a line of 1500 bytes and a PING, in one write: sent b'yyyy"),
    (LimitOffByOne, {"limit"}, "limit",
     "a line of exactly 1024 bytes: sent b'ECHO xxx"),
    (LimitOnlyWithoutNewline, {"limit"}, "limit",
     "a line of 1500 bytes and a PING, in one write: sent b'yyyy"),
    (LimitOnlyOnLines, {"limit"}, "limit",
     "1025 bytes without a newline (and nothing more), in pieces of 100: sent b'zzzz"),
    (StartsWith, {"commands", "pieces"}, "commands",
     "twelve lines in one write: sent b'PING\\nECHO hello world"),
    (Strips, {"commands", "pieces"}, "commands", "twelve lines in one write: sent "),
    (SplitLines, {"commands", "pieces", "limit"}, "commands", "twelve lines in one write: sent "),
    (DecodesEachChunk, {"pieces"}, "pieces",
     "twelve lines, data_received called with pieces of 1 byte(s): sent"),
    (SharedBuffer, {"own-line", "quit", "limit"}, "own-line",
     "client 2, while client 1's line is unfinished: sent b'PING\\nEC', expected b'PONG\\n' but"
     " got b'ERROR'"),
])
def test_wrong_protocols_fail_the_check_that_names_their_mistake(answer, failed, key, message):
    SharedBuffer.buffer.clear()
    report = check("04.3", answer)
    assert report.failed == failed, repr(report)
    assert report.message(key).startswith(message), report.message(key)


class Partition(Commands):
    """Wrong: dispatches on the first word, so b"PING now" is a PING and b"ECHO" an ECHO."""

    def line_received(self, line):
        command, _, text = line.partition(b" ")
        if command == b"ECHO":
            self.transport.write(text + b"\n")
        elif command in (b"PING", b"QUIT"):
            super().line_received(command)
        else:
            super().line_received(line)


def test_a_protocol_that_dispatches_on_the_first_word_fails():
    report = check("04.3", Partition)
    assert report.failed == {"commands", "pieces"}, repr(report)
    assert report.message("commands").startswith("twelve lines in one write: sent b'PING\\n")
    assert report.message("commands").endswith(
        "; the first wrong reply is to line 11, b'PING now': b'PONG\\n', expected"
        " b'ERROR unknown command\\n'")


def test_a_protocol_that_raises_is_named():
    class Raises(Commands):
        def line_received(self, line):
            if line == b"NOPE":
                raise ValueError("no such command")
            super().line_received(line)

    report = check("04.3", Raises)
    assert "commands" in report.failed
    assert report.message("commands").endswith("; your protocol raised ValueError: no such command")


class Exits(Commands):
    """Wrong: sys.exit() in a callback ends the reactor's thread, and every connection."""

    def line_received(self, line):
        if line == b"QUIT":
            raise SystemExit(0)
        super().line_received(line)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_protocol_that_ends_the_reactor_thread_is_told_so():
    report = check("04.3", Exits)
    assert "quit" in report.failed, repr(report)
    assert report.message("quit").endswith(
        "the reactor's thread stopped: SystemExit: 0 escaped Reactor.run()"), repr(report)
