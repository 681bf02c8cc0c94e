"""Checks for chapter 01 (sockets): real sockets on loopback, a few seconds at most.

01.1 recv_exactly(sock, n)      -- loop over recv until n bytes, EOFError on early EOF
01.2 upper_handler(conn)        -- a line server for serve_socket: each line upper-cased
01.3 port_is_open(host, port, timeout) -- True if something accepts, False otherwise
"""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import time
import warnings

from ..events import EventLog
from ..servers import serve_socket
from .legacy import Check, exercise, run_answer

TIMEOUT = 1.0  # every blocking call in these checks gives up after this long
REPLY_TIMEOUT = 0.5  # how long a client waits for a reply on loopback


def _abort(sock):
    """Make a recv() blocked or spinning on `sock` in another thread return."""

    def stop():
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv()
        sock.close()  # a recv() called after this raises OSError

    return stop


def _require(condition, message):
    """Fail the check with `message` (an if, not `assert`: it must work under -O)."""
    if not condition:
        raise AssertionError(message)


def _error(exc):
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _pair():
    """A connected TCP pair on loopback, with timeouts: (reader, writer).

    The reader's receive buffer is small (64 KiB, set on the listener so the
    accepted socket inherits it), so one recv() can never return BIG bytes.
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        writer = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        reader, _ = listener.accept()
    reader.settimeout(TIMEOUT)
    return reader, writer


def _describe(kind, value):
    if kind == "raised":
        return f"it raised {_error(value)}"
    if isinstance(value, bytes) and len(value) > 40:
        return f"it returned {len(value)} bytes"
    return f"it returned {value!r}"


# -- 01.1 recv_exactly -----------------------------------------------------------

BIG = 4 * 2**20  # far more than the reader's buffer holds: no single recv returns it all


def _check_pieces(recv_exactly):
    reader, writer = _pair()
    data = bytes(range(256)) * (BIG // 256)

    def write():
        for start in range(0, len(data), 65536):  # 64 pieces of 64 KiB
            try:
                writer.sendall(data[start : start + 65536])
            except OSError:
                return  # the reader gave up; the check reports why

    sender = threading.Thread(target=write, name="helpers-check-writer", daemon=True)
    with reader, writer:
        sender.start()
        kind, got, _ = run_answer(recv_exactly, reader, BIG, release=_abort(reader), limit=TIMEOUT)
        reader.close()  # unblocks the writer if the answer stopped early
        sender.join(TIMEOUT)
    _require(
        kind == "ok" and got == data,
        f"recv_exactly(sock, {BIG}) with the data sent in 64 pieces: {_describe(kind, got)}"
        f" (wanted all {BIG} bytes, in order)",
    )


def _check_exact(recv_exactly):
    reader, writer = _pair()
    with reader, writer:
        writer.sendall(b"0123456789")
        kind, first, _ = run_answer(recv_exactly, reader, 4, release=_abort(reader), limit=TIMEOUT)
        _require(
            kind == "ok" and first == b"0123",
            f"10 bytes waiting, recv_exactly(sock, 4): {_describe(kind, first)} (wanted b'0123')",
        )
        kind, rest, _ = run_answer(recv_exactly, reader, 6, release=_abort(reader), limit=TIMEOUT)
        _require(
            kind == "ok" and rest == b"456789",
            f"then recv_exactly(sock, 6): {_describe(kind, rest)} (wanted b'456789': "
            "the bytes after the first 4 must stay in the socket for the next call)",
        )


def _check_zero(recv_exactly):
    reader, writer = _pair()
    with reader, writer:
        writer.sendall(b"abc")
        kind, got, _ = run_answer(recv_exactly, reader, 0, release=_abort(reader), limit=TIMEOUT)
        _require(
            kind == "ok" and got == b"",
            f"recv_exactly(sock, 0): {_describe(kind, got)} (wanted b'')",
        )
        left = reader.recv(16)
        _require(
            left == b"abc",
            f"recv_exactly(sock, 0) consumed data: the socket then held {left!r}, not b'abc'",
        )


def _check_eof(recv_exactly):
    reader, writer = _pair()
    with reader:
        with writer:
            writer.sendall(b"abc")
        # the writer is closed: 3 bytes, then end of stream
        kind, got, _ = run_answer(recv_exactly, reader, 10, release=_abort(reader), limit=TIMEOUT)
    _require(
        kind == "raised" and isinstance(got, EOFError),
        f"the peer sent b'abc' and closed; recv_exactly(sock, 10): {_describe(kind, got)}"
        " (wanted EOFError: 3 bytes are not the 10 asked for)",
    )


exercise(
    "01.1",
    "recv_exactly",
    Check(
        "returns exactly n bytes sent in many pieces",
        _check_pieces,
        "one recv() returns whatever has arrived, at most the size you ask for: "
        "call it in a loop and collect the pieces until you have n bytes",
    ),
    Check(
        "takes n bytes and leaves the rest in the socket",
        _check_exact,
        "ask recv() for at most n - len(received) bytes",
    ),
    Check(
        "n = 0 returns b'' and reads nothing",
        _check_zero,
        "a loop `while len(received) < n` does not run at all for n = 0",
    ),
    Check(
        "raises EOFError when the peer closes early",
        _check_eof,
        "recv() returns b'' at end of stream: raise EOFError then, saying how many "
        "bytes arrived; do not return the partial data and do not loop forever",
    ),
)


# -- 01.2 upper_handler ------------------------------------------------------------


class _StingySocket:
    """A connected socket whose send() takes at most 3 bytes per call.

    A real send() may also take only part of its data (the kernel's buffer is
    full); this makes that happen every time, so code that ignores it shows.
    """

    def __init__(self, conn):
        self._conn = conn

    def send(self, data, *flags):
        return self._conn.send(bytes(data[:3]), *flags)

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._conn.close()


def _recv_until(sock, size):
    """Read from a client socket until `size` bytes or EOF; return what came."""
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except (TimeoutError, ConnectionResetError):
            # no reply in time, or the server closed with data unread (a reset):
            # report both as "what the client got", whichever happened first
            break
        if not chunk:
            break
        data += chunk
    return data


def _client(server):
    return socket.create_connection(server.address, timeout=REPLY_TIMEOUT)


def _serve(handler, *, stingy=False, log=None):
    """Run `handler` with serve_socket; its exceptions are kept in `server.raised`
    before the connection closes, so a check that sees the close also sees why."""

    def run(conn):
        try:
            handler(_StingySocket(conn) if stingy else conn)
        except Exception as exc:
            server.raised.append(exc)
            raise
        finally:
            if log is not None:
                log.record("server", "handler returned")

    server = serve_socket("check-01.2", run)
    server.raised = []
    return server


def _why(server):
    return "".join(f"; the handler raised {_error(e)}" for e in server.raised)


def _send(sock, data: bytes, server):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        raise AssertionError(
            f"sending {data!r}: the server had closed the connection{_why(server)}"
        ) from None


def _expect(sock, want: bytes, what: str, server):
    got = _recv_until(sock, len(want))
    if got != want:
        raise AssertionError(f"{what}: the client got {got!r}, wanted {want!r}{_why(server)}")


def _check_one_line(handler):
    with _serve(handler) as server, _client(server) as sock:
        _send(sock, b"hello\n", server)
        # no shutdown: the reply must come while the connection is still open
        _expect(sock, b"HELLO\n", "sent b'hello\\n' and waited", server)


def _check_lines_and_pieces(handler):
    with _serve(handler) as server, _client(server) as sock:
        _send(sock, b"ab\ncd\nef", server)
        _expect(sock, b"AB\nCD\n", "sent b'ab\\ncd\\nef' (two lines and a half)", server)
        _send(sock, b"gh\n", server)
        _expect(sock, b"EFGH\n", "then sent b'gh\\n' to finish the third line", server)


def _check_split_utf8(handler):
    text = "première\n"
    data = text.encode("utf-8")
    cut = data.index("è".encode()) + 1  # between the two bytes of "è"
    with _serve(handler) as server, _client(server) as sock:
        _send(sock, b"ok\n" + data[:cut], server)
        _expect(sock, b"OK\n", f"sent b'ok\\n' + {data[:cut]!r}", server)
        _send(sock, data[cut:], server)
        _expect(
            sock,
            text.upper().encode("utf-8"),
            f"then sent {data[cut:]!r} (the rest of {text!r}, split inside 'è')",
            server,
        )


def _check_two_clients(handler):
    log = EventLog()
    with _serve(handler, log=log) as server:
        for n, line in enumerate(["first client\n", "second client\n"], 1):
            with _client(server) as sock:
                _send(sock, line.encode(), server)
                _expect(sock, line.upper().encode(), f"client {n} sent {line!r}", server)
                sock.shutdown(socket.SHUT_WR)
                end = _recv_until(sock, 1)
                _require(
                    end == b"",
                    f"client {n} closed its side (shutdown SHUT_WR); the server should then "
                    f"return and close, but the client got {end!r}",
                )
            try:
                log.wait(n, "handler returned", timeout=TIMEOUT)
            except TimeoutError:
                raise AssertionError(
                    f"client {n} closed its side, but the handler did not return within "
                    f"{TIMEOUT:g} s; does it stop when recv() returns b''?"
                ) from None


def _check_partial_send(handler):
    line = "x" * 50 + "\n"
    with _serve(handler, stingy=True) as server, _client(server) as sock:
        _send(sock, line.encode(), server)
        _expect(
            sock,
            line.upper().encode(),
            "with a socket whose send() takes at most 3 bytes per call, sent a 51-byte line",
            server,
        )


exercise(
    "01.2",
    "An upper-casing line server",
    Check(
        "replies to each line at once",
        _check_one_line,
        "reply as soon as a line (ending in b'\\n') is complete, not at end of stream",
    ),
    Check(
        "handles several lines in one recv and a line across two",
        _check_lines_and_pieces,
        "keep a bytes buffer; append each recv() to it; split off complete lines "
        "(buffer.partition(b'\\n')) and keep the unfinished rest for later",
    ),
    Check(
        "decodes UTF-8 split across two recv() calls",
        _check_split_utf8,
        "decode a whole line, never a raw chunk: a chunk can end inside a character",
    ),
    Check(
        "serves two clients in turn and returns at end of stream",
        _check_two_clients,
        "return when recv() returns b''; keep the buffer local to the handler call",
    ),
    Check(
        "sends every byte even when send() takes only part",
        _check_partial_send,
        "use conn.sendall(), which repeats send() until all the data is sent",
    ),
)


# -- 01.3 port_is_open -------------------------------------------------------------


def _check_open(port_is_open):
    log = EventLog()

    def handler(conn):
        log.record("server", "connected")
        while conn.recv(1024):
            pass
        log.record("server", "client closed")

    with serve_socket("check-01.3", handler) as server:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            kind, got, _ = run_answer(port_is_open, "127.0.0.1", server.port, 1.0)
            gc.collect()
        _require(
            kind == "ok" and got is True,
            f"a server is listening; port_is_open: {_describe(kind, got)} (wanted True)",
        )
        ours = f"raddr=('127.0.0.1', {server.port})"  # ignore other sockets' warnings
        leaked = [
            w for w in caught if issubclass(w.category, ResourceWarning) and ours in str(w.message)
        ]
        _require(
            not leaked,
            "port_is_open returned True but left its socket for the garbage collector "
            "to close (ResourceWarning: unclosed socket)",
        )
        try:
            log.wait(1, "connected", timeout=TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                "port_is_open returned True, but no connection reached the server"
            ) from None
        try:
            log.wait(1, "client closed", timeout=TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                f"port_is_open returned, but the server's connection was still open "
                f"{TIMEOUT:g} s later: close the socket before returning"
            ) from None


def _check_closed(port_is_open):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # nothing listens on `port` now: connecting is refused
    kind, got, _ = run_answer(port_is_open, "127.0.0.1", port, 1.0)
    _require(
        kind == "ok" and got is False,
        f"nothing listens on the port; port_is_open: {_describe(kind, got)} (wanted False)",
    )


def _check_silent(port_is_open):
    # A listener whose accept queue is full: the kernel ignores further
    # connection attempts (on Linux), so connect() waits until its timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT):
            started = time.monotonic()
            kind, got, _ = run_answer(
                port_is_open, "127.0.0.1", listener.getsockname()[1], 0.3
            )
            elapsed = time.monotonic() - started
    _require(
        kind == "ok" and got is False,
        f"a port that never answers, timeout=0.3: {_describe(kind, got)} (wanted False)",
    )
    _require(
        elapsed < 1.5,
        f"a port that never answers, timeout=0.3: returned False only after {elapsed:.1f} s",
    )


exercise(
    "01.3",
    "port_is_open",
    Check(
        "True for a listening server, and closes its socket",
        _check_open,
        "socket.create_connection((host, port), timeout=timeout) inside a `with` block",
    ),
    Check(
        "False for a port where nothing listens",
        _check_closed,
        "connect raises ConnectionRefusedError there: catch it (or OSError) and return False",
    ),
    Check(
        "False within the timeout for a port that never answers",
        _check_silent,
        "pass `timeout` to create_connection; TimeoutError is an OSError too",
    ),
)
