"""Load for measuring servers: many held client connections, memory, file limits.

Chapter 04 compares what a server costs per connection. These are the tools it
needs and does not teach: open and hold N client connections against an address
(and check that each one is served), read this process's resident memory, raise
the open-file limit so that N connections fit, and wait until a value that no
event announces (a thread count) reaches what is expected.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from dataclasses import dataclass

__all__ = [
    "FileLimit",
    "HeldConnections",
    "hold_connections",
    "raise_open_file_limit",
    "rss_bytes",
    "wait_until",
]


class HeldConnections:
    """Open client connections, held until `close()`; a context manager."""

    def __init__(self, sockets: list[socket.socket]):
        self.sockets = sockets

    def __len__(self):
        return len(self.sockets)

    def ping(self, payload: bytes = b"ping", *, timeout: float = 5.0) -> int:
        """Send `payload` on every connection, then read the reply on each.

        Returns how many connections echoed `payload` exactly. A connection that
        answers nothing within the overall `timeout` counts as not echoing.
        """
        return _ping(self.sockets, payload, time.monotonic() + timeout)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ping(sockets, payload, deadline) -> int:
    for sock in sockets:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.sendall(payload)
    echoed = 0
    for sock in sockets:
        got = b""
        try:
            while len(got) < len(payload):
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(len(payload) - len(got))
                if not chunk:
                    break
                got += chunk
        except (TimeoutError, OSError):
            pass
        echoed += got == payload
    return echoed


def hold_connections(
    address, n: int, *, ping: bytes | None = b"ping", batch: int = 100, timeout: float = 10.0
) -> HeldConnections:
    """Open `n` TCP connections to `address` and return them, held open.

    Connections are opened `batch` at a time. With `ping` (the default), every
    connection of a batch must echo `ping` before the next batch opens: the
    server has then accepted all of them, so a burst never overflows its listen
    backlog (an overflow costs a one-second retransmission on Linux). With
    `ping=None` nothing is sent: the connections may wait in the backlog.
    Raises TimeoutError if it takes longer than `timeout` seconds in all, and
    RuntimeError if a connection does not echo; either way every socket it
    opened is closed first.
    """
    deadline = time.monotonic() + timeout
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < n:
            start = len(sockets)
            for _ in range(min(batch, n - start)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"opened {len(sockets)} of {n} connections in {timeout:g} s")
                sockets.append(socket.create_connection(address, timeout=remaining))
            if ping is not None:
                echoed = _ping(sockets[start:], ping, deadline)
                if echoed != len(sockets) - start:
                    raise RuntimeError(
                        f"only {echoed} of a batch of {len(sockets) - start} connections echoed"
                        f" {ping!r} ({start} opened and echoing before this batch)"
                    )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return HeldConnections(sockets)


def rss_bytes() -> int:
    """This process's resident memory (RSS), in bytes.

    On Linux this is the current value, VmRSS in /proc/self/status. Elsewhere it
    falls back to the peak resident size from getrusage() (`ru_maxrss`: kilobytes
    on Linux, bytes on macOS), which only grows: a difference between two
    readings is then an increase of the peak, still right for memory that is
    being added.
    """
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # the value is in kB
    import resource  # Unix only

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass(frozen=True)
class FileLimit:
    """The soft open-file limit before and after `raise_open_file_limit`, and the hard one."""

    needed: int
    before: int
    after: int
    hard: int

    def __str__(self):
        hard = "unlimited" if self.hard < 0 else f"{self.hard:,}"
        if self.after > self.before:
            what = f"raised from {self.before:,} to {self.after:,}"
        else:
            what = f"{self.before:,}, enough: left as it was"
        return (f"open-file limit (RLIMIT_NOFILE) for {self.needed:,} descriptors: soft {what}"
                f" (hard limit {hard})")


def raise_open_file_limit(needed: int) -> FileLimit:
    """Make sure this process may hold `needed` open file descriptors.

    Raises the soft RLIMIT_NOFILE limit to `needed` if it is lower; an
    unprivileged process may do that up to the hard limit. Never lowers it.
    Raises RuntimeError if the hard limit is below `needed`.
    """
    import resource  # Unix only

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft == infinite or soft >= needed:
        return FileLimit(needed, soft, soft, hard)
    if hard != infinite and hard < needed:
        raise RuntimeError(
            f"{needed:,} open files needed, but the hard limit is {hard:,}: raise it"
            " (ulimit -Hn, or /etc/security/limits.conf) or use fewer connections"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return FileLimit(needed, soft, needed, hard)


def wait_until(condition, *, timeout: float = 5.0, what: str = "condition", interval=0.002):
    """Poll `condition()` until it is true; TimeoutError naming `what` after `timeout`.

    For values no event announces, such as how many threads are alive. Returns
    the last (true) value of `condition()`.
    """
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}; it did not happen")
        time.sleep(interval)
    return value
