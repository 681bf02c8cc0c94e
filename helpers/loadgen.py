"""A load generator for echo servers, run as its own process (chapter 19).

``python -m helpers.loadgen PORT --connections C --size S --duration D`` opens C connections
to 127.0.0.1:PORT; on each, it sends S bytes and waits until all S come back, again and again.
It prints one JSON object: requests completed after the warm-up, the seconds they took, and
latency percentiles in microseconds.

Closed loop (the default): each connection sends its next request as soon as the reply
arrives, so a slow server is asked less often, and the latencies it causes are partly hidden
("coordinated omission"). With ``--rate R`` the requests follow a fixed schedule instead (R
per second in all, spread over the connections) and each latency is measured from the time
the request was due, not from when it could be sent: queueing shows up in the percentiles.
To send on time it spins between due times (epoll sleeps in whole milliseconds), so it
keeps one core busy.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import selectors
import socket
import sys
import time


class Connection:
    """One client connection: its request, how much of the reply came, when it was due."""

    def __init__(self, port: int, payload: bytes, nodelay: bool):
        self.sock = socket.create_connection(("127.0.0.1", port))
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.payload = memoryview(payload)
        self.sent = len(payload)  # nothing outstanding yet
        self.received = len(payload)
        self.due = 0.0

    def start(self, due: float) -> None:
        self.due, self.sent, self.received = due, 0, 0
        self.send()

    def send(self) -> None:
        with contextlib.suppress(BlockingIOError):  # the kernel's buffer is full: later
            self.sent += self.sock.send(self.payload[self.sent:])

    def read(self) -> bool:
        """Read what arrived; True once the whole reply is in."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            raise ConnectionError("the server reset the connection") from None
        if not data:
            raise ConnectionError("the server closed the connection")
        self.received += len(data)
        if self.received > len(self.payload):
            raise ConnectionError(f"{self.received} bytes came back for {len(self.payload)}")
        return self.received == len(self.payload)


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of `latencies` (seconds), in microseconds; NaN for each when
    there are none (a run too short for one reply on a busy machine keeps the same keys)."""
    if not latencies:
        return dict.fromkeys(("p50_us", "p90_us", "p99_us", "max_us"), math.nan)
    ordered = sorted(latencies)

    def at(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

    return {"p50_us": at(0.50), "p90_us": at(0.90), "p99_us": at(0.99),
            "max_us": ordered[-1] * 1e6}


def run(port: int, connections: int = 10, size: int = 1024, duration: float = 1.0,
        warmup: float = 0.2, rate: float | None = None, nodelay: bool = True) -> dict:
    """Drive the echo server on 127.0.0.1:`port`; the figures after `warmup` seconds."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    conns = [Connection(port, payload, nodelay) for _ in range(connections)]
    sel = selectors.DefaultSelector()
    for i, conn in enumerate(conns):
        sel.register(conn.sock, selectors.EVENT_READ, i)
    interval = connections / rate if rate else 0.0
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + duration
    latencies, requests, late = [], 0, 0
    sending = set()  # connections with part of a request still to send
    idle = []  # (due, index) of connections waiting for their next turn (fixed schedule)

    def begin(i, due):
        conns[i].start(due)
        if conns[i].sent < size:
            sending.add(i)

    for i in range(connections):
        if rate:  # a fixed schedule staggers the connections
            heapq.heappush(idle, (start + i * interval / connections, i))
        else:
            begin(i, start)
    now = start
    try:
        while (now := time.perf_counter()) < end:
            while idle and idle[0][0] <= now:
                due, i = heapq.heappop(idle)
                begin(i, due)
            for i in list(sending):
                conns[i].send()
                if conns[i].sent == size:
                    sending.discard(i)
            timeout = 0 if sending else min(0.05, idle[0][0] - now) if idle else 0.05
            if timeout < 0.002:  # epoll sleeps whole milliseconds: spin to send on time
                timeout = 0
            for key, _ in sel.select(timeout=max(0.0, timeout)):
                i = key.data
                conn = conns[i]
                if not conn.read():
                    continue
                done = time.perf_counter()
                if conn.due >= measure_from:
                    latencies.append(done - conn.due)
                    requests += 1
                if rate:
                    due = conn.due + interval
                    late += due < done  # behind schedule: the next one is late already
                    heapq.heappush(idle, (due, i))
                else:
                    begin(i, done)
    finally:
        sel.close()
        for conn in conns:
            conn.sock.close()
    seconds = min(now, end) - measure_from
    return {"connections": connections, "size": size, "requests": requests,
            "seconds": seconds, "requests_per_s": requests / seconds if seconds > 0 else 0,
            "rate": rate, "late": late, **percentiles(latencies)}


def hold(port: int, count: int, *, batch: int = 500) -> list[socket.socket]:
    """Open `count` connections, each proven served by a one-byte echo; return them."""
    held = []
    while len(held) < count:
        group = [socket.create_connection(("127.0.0.1", port), timeout=30)
                 for _ in range(min(batch, count - len(held)))]
        for sock in group:  # a batch in flight at once: the listen backlog must hold it
            sock.sendall(b"x")
        for sock in group:
            if sock.recv(1) != b"x":
                raise ConnectionError("a held connection was not served")
        held += group
    return held


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.2)
    parser.add_argument("--rate", type=float, default=None, help="requests/s, fixed schedule")
    parser.add_argument("--no-nodelay", action="store_true", help="leave Nagle's algorithm on")
    parser.add_argument("--hold", type=int, default=0, metavar="N",
                        help="open N idle connections, print when ready, hold until stdin ends")
    args = parser.parse_args(argv)
    if args.hold:
        from .load import raise_open_file_limit

        raise_open_file_limit(args.hold + 64)
        held = hold(args.port, args.hold)
        print(json.dumps({"held": len(held)}), flush=True)
        sys.stdin.buffer.read()
        for sock in held:
            sock.close()
        return
    result = run(args.port, args.connections, args.size, args.duration, args.warmup,
                 args.rate, nodelay=not args.no_nodelay)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
