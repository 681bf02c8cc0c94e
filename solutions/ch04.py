"""Reference solutions for chapter 04 (concurrency models).

Run through the chapter's checkers by tests/test_exercises_ch04.py:
``check("04.1", SOLUTIONS["04.1"]).passed`` is True.
"""

from __future__ import annotations

import contextlib
import selectors
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from helpers.notebook_code import load

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_concurrency_models.ipynb"

# -- 04.1 -------------------------------------------------------------------------


def serve_pool(listener, handler, max_workers, stop):
    """Serve each connection with handler(conn) in at most `max_workers` threads at once.

    The executor queues connections beyond `max_workers` until a worker is free.
    Leaving the `with` block waits for the handlers still running.
    """

    def serve(conn):
        with conn:  # closed when the handler returns, also if it raised
            handler(conn)

    with ThreadPoolExecutor(max_workers) as pool:
        while True:
            conn, _ = listener.accept()
            if stop.is_set():  # the connection that woke us up: not a client
                conn.close()
                return
            pool.submit(serve, conn)


# -- 04.2 -------------------------------------------------------------------------


@dataclass
class Client:
    """Per connection: the bytes not yet sent, and whether the client has finished sending."""

    out: bytearray = field(default_factory=bytearray)
    done: bool = False


def idle_echo_loop(sel, listener, wakeup, idle):
    """The chapter's selectors echo loop, closing connections idle for `idle` seconds.

    Each connection has a deadline, now + idle, moved on every recv() that returns
    data. select() sleeps until the earliest deadline (min() over a dict is fine for
    a few connections; a heap of deadlines, as in the chapter's reactor, scales). As in
    the chapter's corrected on_ready, b"" stops the reading, not the sending: the
    connection closes once its output is sent.
    """
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wakeup, selectors.EVENT_READ, "stop")
    deadlines = {}  # connection -> time.monotonic() at which it is closed

    def close(conn):
        sel.unregister(conn)
        conn.close()
        del deadlines[conn]

    try:
        while True:
            timeout = None  # no connection: sleep until something happens
            if deadlines:
                timeout = max(0.0, min(deadlines.values()) - time.monotonic())
            for key, mask in sel.select(timeout):
                if key.data == "stop":
                    return
                if key.data == "accept":
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, Client())
                    deadlines[conn] = time.monotonic() + idle
                    continue
                conn, client = key.fileobj, key.data
                try:
                    if mask & selectors.EVENT_READ:
                        data = conn.recv(65536)
                        if data:
                            deadlines[conn] = time.monotonic() + idle
                            client.out += data
                        else:  # the client has finished sending; it may still read
                            client.done = True
                    del client.out[: conn.send(client.out)]
                except BlockingIOError:
                    pass
                except ConnectionError:
                    close(conn)
                    continue
                if client.done and not client.out:
                    close(conn)
                    continue
                watch = ((0 if client.done else selectors.EVENT_READ)
                         | (selectors.EVENT_WRITE if client.out else 0))
                if watch != key.events:
                    sel.modify(conn, watch, client)
            now = time.monotonic()
            for conn in [c for c, deadline in deadlines.items() if deadline <= now]:
                close(conn)
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()


# -- 04.3 -------------------------------------------------------------------------


Protocol = load(NOTEBOOK, "reactor").Protocol  # the chapter's base class, from the notebook


class Commands(Protocol):
    """PING, ECHO <text> and QUIT, one command per line; lines of at most 1024 bytes."""

    MAX_LINE = 1024

    def __init__(self):
        self.buffer = b""
        self.done = False

    def data_received(self, data):
        if self.done:
            return
        self.buffer += data
        while not self.done and b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if len(line) > self.MAX_LINE:  # it came in one chunk with its newline
                return self.refuse()
            self.line_received(line.removesuffix(b"\r"))
        if not self.done and len(self.buffer) > self.MAX_LINE:  # no newline in sight
            self.refuse()

    def line_received(self, line):
        if line == b"PING":
            self.transport.write(b"PONG\n")
        elif line.startswith(b"ECHO "):
            self.transport.write(line[5:] + b"\n")
        elif line == b"QUIT":
            self.transport.write(b"BYE\n")
            self.finish()
        else:
            self.transport.write(b"ERROR unknown command\n")

    def refuse(self):
        self.transport.write(b"ERROR line too long\n")
        self.finish()

    def finish(self):
        self.done, self.buffer = True, b""
        with contextlib.suppress(Exception):
            self.transport.close()


SOLUTIONS = {"04.1": serve_pool, "04.2": idle_echo_loop, "04.3": Commands}
