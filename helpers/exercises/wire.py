"""Real sockets for checks: a client whose every read has a deadline, a port that
refuses, a connected pair, and a plain-socket server for the reader's handler.

What a client read is a `Received`: the bytes, and how the reading ended ("closed",
"reset", "silent" when nothing more came in time), so a check can say exactly what the
reader's server did.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass

from ..servers import serve_socket
from .answers import show
from .framework import describe_error, fail, note_raised

READ_TIMEOUT = 1.0  # how long a client waits for bytes on loopback before giving up


@dataclass(frozen=True)
class Received:
    """Bytes a client read, and why it stopped: "complete" (it had what it wanted),
    "closed" (the peer closed), "reset" (the peer reset), "silent" (nothing came) or
    "open" (bytes kept coming, but the read's time was up with the connection open)."""

    data: bytes
    ending: str
    seconds: float = 0.0

    def __str__(self):
        got = f"got {show(self.data)}" if self.data else "got nothing"
        return {
            "complete": got,
            "closed": f"{got}, then the connection closed",
            "reset": f"{got}, then the connection was reset",
            "silent": f"{got}, then nothing more for {self.seconds:g} s",
            "open": f"{got} in {self.seconds:g} s, and the connection was still open",
        }[self.ending]


class Client:
    """A TCP client on loopback; every read gives up after `timeout` seconds (by default
    READ_TIMEOUT, read when the client is made). `sock` is an unconnected socket made
    earlier to connect with (its file descriptor number taken before the check closed
    others); it is closed with the client."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", timeout: float | None = None,
                 rcvbuf: int | None = None, sock: socket.socket | None = None):
        self.timeout = timeout = READ_TIMEOUT if timeout is None else timeout
        self.sock = socket.socket() if sock is None else sock
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect((host, port))
        except ConnectionRefusedError:
            self.sock.close()
            fail(f"nothing accepted a connection on {host}:{port} (connection refused)")
        self._buffer = bytearray()  # appended to in place: large reads stay linear

    def send(self, data: bytes, what: str | None = None) -> None:
        """sendall(data); fail saying so if the peer has already closed or reset."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            fail(f"sending {what or show(data)}: the server had already closed the"
                 f" connection ({describe_error(exc)})")

    def shutdown_write(self) -> None:
        """Half-close: the peer reads b"" while this side can still read."""
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, deadline: float, silence: float | None) -> str | None:
        """Read once more into the buffer; the ending if the read ended the stream."""
        left = deadline - time.monotonic()
        if left <= 0:
            return "silent" if silence is None else "open"
        self.sock.settimeout(left if silence is None else min(left, silence))
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            if silence is not None and deadline - time.monotonic() <= 0:
                return "open"
            return "silent"
        except ConnectionResetError:
            return "reset"
        if not chunk:
            return "closed"
        self._buffer += chunk
        return None

    def _read(self, done, timeout: float | None, silence: float | None = None) -> Received:
        """Read until done(buffer) says where to cut, or the stream ends, or `timeout`
        passes; with `silence`, a long read whose bytes keep coming ends "open" at
        `timeout`, and "silent" only when nothing came for `silence`."""
        start = time.monotonic()
        wait = self.timeout if timeout is None else timeout
        deadline = start + wait
        ending = None
        while ending is None:
            cut = done(self._buffer)
            if cut is not None:
                data = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                return Received(data, "complete", time.monotonic() - start)
            ending = self._fill(deadline, silence)
        data = bytes(self._buffer)
        self._buffer.clear()
        # "silent" and "open" report the wait given, which a loaded machine cannot stretch
        seconds = {"silent": wait if silence is None else silence, "open": wait}
        return Received(data, ending, seconds.get(ending, round(time.monotonic() - start, 1)))

    def read_until(self, marker: bytes = b"\n", timeout: float | None = None) -> Received:
        """Read up to and including `marker`."""

        def done(buffer):
            at = buffer.find(marker)
            return None if at < 0 else at + len(marker)

        return self._read(done, timeout)

    def read_exactly(self, n: int, timeout: float | None = None, *,
                     silence: float | None = None) -> Received:
        """Read `n` bytes (fewer only if the stream ended or went silent)."""
        return self._read(lambda buffer: n if len(buffer) >= n else None, timeout, silence)

    def read_to_end(self, timeout: float | None = None, *,
                    silence: float | None = None) -> Received:
        """Read until the peer closes or resets (or nothing comes for `timeout`)."""
        return self._read(lambda buffer: None, timeout, silence)

    def expect_line(self, want: bytes, after: str, timeout: float | None = None) -> None:
        """Read one line; fail unless it is `want`, saying what came after `after`."""
        got = self.read_until(b"\n", timeout)
        if got.data != want or got.ending != "complete":
            fail(f"after {after}, the client expected {show(want)} but {got}")

    def abort(self) -> None:
        """Close with a reset (RST), as a crashed client does."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        self.sock.close()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def dead_port():
    """A port on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: nobody else gets it
        yield sock.getsockname()[1]


def tcp_pair(*, rcvbuf: int | None = None, timeout: float = READ_TIMEOUT):
    """A connected TCP pair on loopback, (reader, writer), both with `timeout`.

    `rcvbuf` caps the reader's receive buffer (set before the handshake), so that one
    recv() can return no more than that much.
    """
    with socket.socket() as listener:
        if rcvbuf:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        writer = socket.create_connection(listener.getsockname(), timeout=timeout)
        reader, _ = listener.accept()
    reader.settimeout(timeout)
    return reader, writer


@contextlib.contextmanager
def serving(name: str, handler):
    """serve_socket(name, handler) for the length of a `with`; the handler's exceptions
    are noted for the report and kept in `server.raised`, in the order they happened."""
    def run(conn):
        try:
            handler(conn)
        except Exception as exc:
            server.raised.append(exc)
            note_raised(exc)
            raise

    server = serve_socket(name, run)
    server.raised = []
    with server:
        yield server


def why(server) -> str:
    """"; the handler raised X" for each exception the reader's handler raised."""
    return "".join(f"; your handler raised {describe_error(e)}" for e in server.raised)
