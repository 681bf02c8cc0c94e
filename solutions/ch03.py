"""Reference solutions for chapter 03 (network challenges).

Try the exercises in notebooks/03_network_challenges.ipynb first; the checker
cells there run your answer against live servers behind a fault-injecting proxy.
"""

from __future__ import annotations

import random
import socket
import struct
import threading

FRAME = struct.Struct("!I")  # the download server's length prefix


class ConnectionClosed(ConnectionError):
    """The peer closed the connection before the reply was complete."""


class RetriesExhausted(Exception):
    """Every attempt failed; `attempts` says how many, `last_error` what went wrong last."""

    def __init__(self, attempts, last_error):
        super().__init__(f"gave up after {attempts} attempts; last error: "
                         f"{type(last_error).__name__}: {last_error}")
        self.attempts, self.last_error = attempts, last_error


def backoff_delays(attempts: int, base: float, cap: float, rng: random.Random) -> list[float]:
    """Decorrelated jitter: each wait is drawn between base and 3 × the previous wait.

    The range grows with the previous wait, so the waits grow (by about 1.5 times
    per attempt on average) until the cap; each one is capped, and the capped value
    is the "previous" of the next draw.
    """
    waits, previous = [], base
    for _ in range(attempts):
        previous = min(cap, rng.uniform(base, 3 * previous))
        waits.append(previous)
    return waits


def _fetch_once(address, size: int) -> bytes:
    """One attempt on a new connection: GET, then exactly one framed reply."""
    with socket.create_connection(address, timeout=1) as sock:  # far above a round trip
        sock.sendall(b"GET %d\n" % size)
        data = bytearray()
        while True:
            if len(data) >= FRAME.size:
                (length,) = FRAME.unpack_from(data)
                if len(data) >= FRAME.size + length:
                    return bytes(data[FRAME.size : FRAME.size + length])
            chunk = sock.recv(65536)
            if not chunk:  # a FIN before the whole frame: truncated, not finished
                raise ConnectionClosed(f"connection closed after {len(data)} bytes of the reply")
            data += chunk


def fetch(address, size: int, attempts: int, sleep) -> bytes:
    """GET <size> from the download server, retrying transient failures.

    Refused, reset and timed-out connections, and replies cut short by a FIN
    (ConnectionClosed), are tried again on a new connection after a full-jitter
    wait (1 ms doubling, capped at 100 ms). Anything else is raised at once.
    """
    rng = random.Random()
    for attempt in range(1, attempts + 1):
        try:
            return _fetch_once(address, size)
        except (ConnectionError, TimeoutError) as error:
            if attempt == attempts:
                raise RetriesExhausted(attempts, error) from error
            sleep(rng.uniform(0, min(0.1, 0.001 * 2 ** (attempt - 1))))
    raise ValueError(f"attempts must be at least 1, not {attempts}")


class CounterServer:
    """A shared counter; each client's requests are deduplicated by sequence number.

    Only the last (seq, reply) per client is kept: a repeated seq gets the same
    reply again, an older one gets STALE. Memory grows with the number of clients,
    not with the number of requests.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.value = 0
        self.last: dict[str, tuple[int, bytes]] = {}  # client -> (seq, reply)

    def answer(self, client: str, seq: int) -> bytes:
        with self.lock:  # check and update in one step: a retry may race the original
            if client in self.last:
                last_seq, reply = self.last[client]
                if seq == last_seq:
                    return reply
                if seq < last_seq:
                    return b"STALE\n"
            self.value += 1
            reply = b"%d\n" % self.value
            self.last[client] = (seq, reply)
            return reply

    def handle(self, conn: socket.socket) -> None:
        with conn.makefile("rb") as lines:
            for line in lines:
                _, client, seq = line.decode().split()
                conn.sendall(self.answer(client, int(seq)))


SOLUTIONS = {
    "03.1": backoff_delays,
    "03.2": fetch,
    "03.3": CounterServer,
}
