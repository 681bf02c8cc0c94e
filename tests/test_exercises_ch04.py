"""Chapter 04 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake."""

import contextlib
import selectors
import socket
import threading
import time

import pytest

from helpers import check
from solutions.ch04 import Commands, Protocol, idle_echo_loop


def no_answer_threads_left():
    """The answers under test run in threads named helpers-check-answer; all must end."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name == "helpers-check-answer"]:
            return True
        time.sleep(0.01)
    return False


def test_stubs_fail_every_check_quickly():
    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    class StubCommands(Protocol):
        def data_received(self, data):
            raise NotImplementedError("your code here")

    started = time.monotonic()
    for exercise_id, answer in [("04.1", stub), ("04.2", stub), ("04.3", StubCommands)]:
        report = check(exercise_id, answer)
        assert not any(r.passed for r in report.results), repr(report)
        assert "NotImplementedError: your code here" in repr(report)
    assert time.monotonic() - started < 2.0  # the notebook runs these checks
    assert no_answer_threads_left()


# -- 04.1 -------------------------------------------------------------------------


def iterative(listener, handler, max_workers, stop):
    """Wrong: one connection at a time, like section 1."""
    while True:
        conn, _ = listener.accept()
        with conn:
            if stop.is_set():
                return
            handler(conn)


def unbounded(listener, handler, max_workers, stop):
    """Wrong: a thread per connection, without a limit."""
    workers = []

    def serve(conn):
        with conn, contextlib.suppress(Exception):  # no traceback from a test thread
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


def never_closes(listener, handler, max_workers, stop):
    """Wrong: the handlers' connections are left open."""
    from concurrent.futures import ThreadPoolExecutor

    kept = []
    with ThreadPoolExecutor(max_workers) as pool:
        while True:
            conn, _ = listener.accept()
            kept.append(conn)
            if stop.is_set():
                break
            pool.submit(handler, conn)
    for conn in kept:
        conn.close()


def does_not_wait(listener, handler, max_workers, stop):
    """Wrong: returns at once on stop, handlers still running."""
    from concurrent.futures import ThreadPoolExecutor

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


CONCURRENT = "serves max_workers clients at the same time"
BOUNDED = "never more than max_workers handlers at once"
CLOSES = "closes each connection when its handler returns or raises"
STOPS = "returns after stop is set, once the running handlers have finished"


@pytest.mark.parametrize(
    ("answer", "mistakes"),
    [
        (iterative, {CONCURRENT, BOUNDED, CLOSES, STOPS}),  # dies when a handler raises
        (unbounded, {BOUNDED}),
        (never_closes, {CLOSES, STOPS}),  # the connection that woke it stays open too
        (does_not_wait, {STOPS}),
    ],
)
def test_wrong_pool_servers_fail_the_checks_that_name_their_mistake(answer, mistakes):
    report = check("04.1", answer)
    assert report.failed == mistakes, repr(report)
    assert no_answer_threads_left()


# -- 04.2 -------------------------------------------------------------------------


def never_idle(sel, listener, wakeup, idle):
    """Wrong: the reference loop with an idle time so long it never applies."""
    idle_echo_loop(sel, listener, wakeup, 3600)


def from_accept_only(sel, listener, wakeup, idle):
    """Wrong: the deadline is set at accept() and never moved."""

    class Frozen(dict):
        def __setitem__(self, conn, deadline):
            if conn not in self:
                super().__setitem__(conn, deadline)

    _loop_with(sel, listener, wakeup, idle, Frozen())


def busy(sel, listener, wakeup, idle):
    """Wrong: polls select() with timeout 0."""

    class Spinning:
        def __getattr__(self, name):
            return getattr(sel, name)

        def select(self, timeout=None):
            return sel.select(0)

    idle_echo_loop(Spinning(), listener, wakeup, idle)


def _loop_with(sel, listener, wakeup, idle, deadlines):
    """A copy of the reference loop with a given deadlines mapping."""
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wakeup, selectors.EVENT_READ, "stop")
    try:
        while True:
            timeout = None
            if deadlines:
                timeout = max(0.0, min(deadlines.values()) - time.monotonic())
            for key, _ in sel.select(timeout):
                if key.data == "stop":
                    return
                if key.data == "accept":
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                    deadlines[conn] = time.monotonic() + idle
                    continue
                conn = key.fileobj
                data = conn.recv(65536)
                if not data:
                    sel.unregister(conn)
                    conn.close()
                    del deadlines[conn]
                    continue
                deadlines[conn] = time.monotonic() + idle
                conn.sendall(data)
            now = time.monotonic()
            for conn in [c for c, d in deadlines.items() if d <= now]:
                sel.unregister(conn)
                conn.close()
                del deadlines[conn]
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()


@pytest.mark.parametrize(
    ("answer", "mistake"),
    [
        (never_idle, "closes a connection that received nothing for `idle` seconds"),
        (from_accept_only, "keeps a connection that keeps sending"),
        (busy, "sleeps in select() while nothing is due (no busy loop)"),
    ],
)
def test_wrong_idle_loops_fail_only_the_check_that_names_their_mistake(answer, mistake):
    report = check("04.2", answer)
    assert report.failed == {mistake}, repr(report)
    assert no_answer_threads_left()


# -- 04.3 -------------------------------------------------------------------------


class ChunkIsALine(Protocol):
    """Wrong: treats every chunk as whole lines."""

    def data_received(self, data):
        for line in data.split(b"\n")[:-1]:
            Commands.line_received(self, line.removesuffix(b"\r"))

    def finish(self):
        self.transport.close()


class GoesOnAfterQuit(Commands):
    """Wrong: closes on QUIT, but still answers the lines already buffered."""

    def finish(self):
        self.transport.close()


class NoLimit(Commands):
    """Wrong: accepts lines of any length."""

    MAX_LINE = 10**9


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


SPLIT = "handles lines split across data_received calls"
QUIT = "QUIT replies BYE, closes, and ignores what follows"
LIMIT = "refuses a line longer than 1024 bytes"


@pytest.mark.parametrize(
    ("answer", "mistakes"),
    [
        (ChunkIsALine, {SPLIT, QUIT, LIMIT}),
        (GoesOnAfterQuit, {QUIT}),
        (NoLimit, {LIMIT}),
        (LimitOnlyWithoutNewline, {LIMIT}),
    ],
)
def test_wrong_protocols_fail_the_checks_that_name_their_mistake(answer, mistakes):
    report = check("04.3", answer)
    assert report.failed == mistakes, repr(report)


def test_reference_commands_on_a_socketpair():
    """The reference protocol, driven by hand: a unit test of the solution itself."""
    a, b = socket.socketpair()

    class Transport:
        closed = False

        def write(self, data):
            a.sendall(data)

        def close(self):
            self.closed = True

    with a, b:
        protocol, transport = Commands(), Transport()
        protocol.connection_made(transport)
        for byte in b"PI":
            protocol.data_received(bytes([byte]))
        protocol.data_received(b"NG\nECHO x\nQUIT\nPING\n")
        b.settimeout(1)
        assert b.recv(100) == b"PONG\nx\nBYE\n"
        assert transport.closed
