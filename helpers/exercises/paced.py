"""A real socket fed in paced pieces, which counts what the reader's code took.

For checks of code that reads a socket with recv() (chapters 01 and 02): `Pieces` sends
each piece only after the reader's code has returned from a recv() since the previous one,
so it really sees short reads; `CountingSocket` counts the calls and bytes it handed over,
so a check can say "took 13 bytes for an 8-byte request", and it ends a loop that keeps
calling recv() after b"".
"""

from __future__ import annotations

import contextlib
import socket
import threading

from .wire import tcp_pair


class KeptReadingAfterEOF(Exception):
    """Raised by `CountingSocket.recv` when the reader's code keeps calling it after b""."""


class CountingSocket(socket.socket):
    """A real connected socket for the reader's code that counts what recv() gave it.

    `.recvs`: calls that returned (or failed); `.taken`: bytes handed over; `.eofs`: b""
    results of a read that asked for at least one byte. After `MAX_EOFS` of those, recv()
    raises KeptReadingAfterEOF, so a loop that ignores b"" ends at once.
    """

    MAX_EOFS = 100

    def __init__(self, sock: socket.socket):
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.recvs = self.taken = self.eofs = 0
        self.changed = threading.Condition()

    def _returned(self, size: int | None, asked: int) -> None:
        with self.changed:
            self.recvs += 1
            self.taken += size or 0
            self.changed.notify_all()
        if size == 0 and asked != 0:
            self.eofs += 1
            if self.eofs > self.MAX_EOFS:
                raise KeptReadingAfterEOF(
                    f"recv() returned b'' (end of stream) {self.eofs} times in a row")

    def recv(self, bufsize, *flags):
        try:
            data = super().recv(bufsize, *flags)
        except OSError:
            self._returned(None, bufsize)
            raise
        self._returned(len(data), bufsize)
        return data

    def recv_into(self, buffer, nbytes=0, *flags):
        asked = nbytes or memoryview(buffer).nbytes
        try:
            size = super().recv_into(buffer, nbytes, *flags)
        except OSError:
            self._returned(None, asked)
            raise
        self._returned(size, asked)
        return size


class Pieces:
    """Send `pieces` to a `CountingSocket`, each one only after the reader's code has
    returned from a recv() since the previous one, so that it sees them apart; then
    half-close if `close`. Use it in a `with`; `.reader` is the socket to read from.

    `.release()` unblocks a reader stuck in recv() (for run_answer).
    """

    def __init__(self, pieces, *, close: bool):
        self.pieces, self.close = list(pieces), close
        reader, self._writer = tcp_pair()
        self.reader = CountingSocket(reader)
        self.reader.settimeout(None)  # a blocked reader is released, never timed out
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._write, name="helpers-check-writer",
                                        daemon=True)

    def _write(self):
        try:
            for piece in self.pieces:
                if self._done.is_set():
                    return
                with self.reader.changed:
                    before = self.reader.recvs
                self._writer.sendall(piece)
                with self.reader.changed:  # until the reader's code has taken something
                    self.reader.changed.wait_for(
                        lambda b=before: self.reader.recvs > b or self._done.is_set(), 5)
            if self.close:
                self._writer.shutdown(socket.SHUT_WR)
        except OSError:  # the reader was released or closed: the check reports why
            pass

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv()
        self.reader.close()  # a recv() called after this raises OSError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        with self.reader.changed:
            self.reader.changed.notify_all()
        self.release()
        self._thread.join(2)
        self._writer.close()


def kept_reading(outcome) -> str | None:
    """The message for an answer stopped by KeptReadingAfterEOF, else None."""
    if outcome.is_error(KeptReadingAfterEOF):
        return f"{outcome.error} and your function kept calling it: it never ends"
    return None


def count(n: int) -> str:
    """"1 byte", "3 bytes"."""
    return "1 byte" if n == 1 else f"{n} bytes"
