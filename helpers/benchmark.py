"""Measure echo servers: each in its own process, the load generator in another (chapter 19).

``with EchoServer("twisted") as server:`` starts one of `echo_servers.KINDS` and stops it
whatever happens; ``load(server.port, ...)`` runs the load generator in a child process and
returns its figures; ``measure(kind, ...)`` does both with a warm-up and repetitions and
adds the server's CPU time per request, read from the kernel (``/proc/PID/stat``).
`running()` names every server process still alive, for a chapter's last cell.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import statistics
import subprocess
import sys
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

from .echo_servers import KINDS

ROOT = Path(__file__).resolve().parent.parent
STORED_RUN = ROOT / "notebooks" / "data" / "benchmark_full_run.json"  # tools/benchmark.py
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
_alive: weakref.WeakSet = weakref.WeakSet()


def _python_env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHON_COLORS="0")
    env.pop("PYTHONSTARTUP", None)
    return env


class EchoServer:
    """One echo server process on 127.0.0.1; stopped when the `with` block ends."""

    def __init__(self, kind: str, *options: str, timeout: float = 15.0):
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}; one of {', '.join(KINDS)}")
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, "-m", "helpers.echo_servers", kind, *options], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_python_env())
        _alive.add(self)
        try:
            self.port = self._read_port(timeout)
        except BaseException:
            self.stop()
            raise

    def _read_port(self, timeout: float) -> int:
        line = _read_line(self.process.stdout, timeout, f"{self.kind} server")
        if not line.strip().isdigit():
            self.process.wait(timeout)
            why = _last_line(self.process.stderr.read().decode(errors="replace"))
            raise RuntimeError(f"{self.kind} server failed: {why}")
        return int(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime

    def rss_bytes(self) -> int:
        """The server process's resident memory."""
        return int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * PAGE

    def sockets(self) -> int:
        """How many sockets the server process has open (its listener included)."""
        fds = Path(f"/proc/{self.pid}/fd")
        count = 0
        for fd in fds.iterdir():
            with contextlib.suppress(FileNotFoundError):  # closed while we looked
                count += os.readlink(fd).startswith("socket:")
        return count

    def stop(self, timeout: float = 5.0) -> None:
        """End the server: close its stdin, then kill it if it lingers."""
        _end(self.process, timeout)
        _alive.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "running" if self.process.poll() is None else "stopped"
        return f"<echo server {self.kind!r} {state}>"


def _end(process: subprocess.Popen, timeout: float) -> None:
    """End a child that stops when its stdin closes: close it, kill the child if it lingers."""
    if process.poll() is None:
        process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    for stream in (process.stdin, process.stdout, process.stderr):
        stream.close()


def _read_line(stream, timeout: float, what: str) -> bytes:
    """The next line of a child's stdout, or TimeoutError after `timeout` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"{what}: not ready within {timeout:g} s")
    return stream.readline()


def stored_run() -> dict:
    """The full run that tools/benchmark.py stored with the series."""
    return json.loads(STORED_RUN.read_text(encoding="utf-8"))


def _last_line(text: str) -> str:
    """The exception line that ends a traceback, or what there is."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no message)"


def running() -> list[str]:
    """The kinds of the echo server processes this process started that still run."""
    return sorted(s.kind for s in list(_alive) if s.process.poll() is None)


def load(port: int, *, connections: int = 10, size: int = 1024, duration: float = 1.0,
         warmup: float = 0.2, rate: float | None = None, nodelay: bool = True,
         timeout: float | None = None) -> dict:
    """Run the load generator against 127.0.0.1:`port` in a child process; its figures."""
    args = [sys.executable, "-m", "helpers.loadgen", str(port), "--connections",
            str(connections), "--size", str(size), "--duration", str(duration),
            "--warmup", str(warmup)]
    if rate:
        args += ["--rate", str(rate)]
    if not nodelay:
        args.append("--no-nodelay")
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=_python_env(),
                          timeout=timeout or duration + warmup + 30)
    if done.returncode:
        raise RuntimeError(f"load generator failed: {_last_line(done.stderr)}")
    return json.loads(done.stdout)


class Held:
    """`count` idle connections to 127.0.0.1:`port`, held by a child process until `close()`."""

    def __init__(self, port: int, count: int, timeout: float = 60.0):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "helpers.loadgen", str(port), "--hold", str(count)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_python_env())
        try:
            line = _read_line(self.process.stdout, timeout, f"{count} connections")
            if not line:
                self.process.wait(timeout)
                raise RuntimeError("holding connections failed: "
                                   + _last_line(self.process.stderr.read().decode()))
            self.count = json.loads(line)["held"]
        except BaseException:
            self.close()
            raise

    def close(self, timeout: float = 10.0) -> None:
        _end(self.process, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def memory_per_connection(kind: str, count: int = 1000) -> float:
    """Bytes of server memory each of `count` idle connections costs (resident, measured)."""
    with EchoServer(kind) as server:
        with Held(server.port, 10):  # warm: the first connections allocate once-only things
            pass
        before = server.rss_bytes()
        with Held(server.port, count):
            during = server.rss_bytes()
    return (during - before) / count


@dataclass
class Result:
    """Medians over repetitions of one server under one load."""

    kind: str
    size: int
    connections: int
    requests_per_s: float
    p50_us: float
    p99_us: float
    cpu_us_per_request: float
    repeats: int

    def row(self) -> dict:
        return asdict(self)


def measure(kind: str, *, size: int = 1024, connections: int = 10, duration: float = 1.0,
            warmup: float = 0.2, repeats: int = 3, options: tuple = ()) -> Result:
    """Start `kind`, load it `repeats` times, and return the medians."""
    rates, p50s, p99s, cpus = [], [], [], []
    with EchoServer(kind, *options) as server:
        for _ in range(repeats):
            load(server.port, connections=connections, size=size, duration=warmup,
                 warmup=0)  # warm-up run: connections, caches, the allocator
            before = server.cpu_seconds()
            figures = load(server.port, connections=connections, size=size,
                           duration=duration, warmup=0)
            used = server.cpu_seconds() - before
            rates.append(figures["requests_per_s"])
            p50s.append(figures["p50_us"])
            p99s.append(figures["p99_us"])
            cpus.append(used / max(1, figures["requests"]) * 1e6)
    return Result(kind, size, connections, statistics.median(rates),
                  statistics.median(p50s), statistics.median(p99s),
                  statistics.median(cpus), repeats)



def reuse_port_split(kind: str = "twisted", processes: int = 2, count: int = 400) -> list[int]:
    """Connections each of `processes` servers sharing one port (SO_REUSEPORT) was given."""
    first = EchoServer(kind, "--reuse-port")
    servers = [first]
    try:
        servers += [EchoServer(kind, "--reuse-port", "--port", str(first.port))
                    for _ in range(processes - 1)]
        baseline = [s.sockets() for s in servers]
        with Held(first.port, count):
            return [s.sockets() - b for s, b in zip(servers, baseline, strict=True)]
    finally:
        for server in servers:
            server.stop()


def loopback_ceiling(duration: float = 0.5, block: int = 256 * 1024) -> float:
    """Bytes per second one TCP connection on loopback carries, one way, with no server
    logic at all: the most any echo server here could move."""
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    listener.close()
    received = 0

    def drain():
        nonlocal received
        buffer = bytearray(block)
        while n := receiver.recv_into(buffer):
            received += n

    reader = threading.Thread(target=drain)
    reader.start()
    data = bytes(block)
    start = time.perf_counter()
    while time.perf_counter() - start < duration:
        sender.sendall(data)
    sender.close()
    reader.join(10)
    seconds = time.perf_counter() - start
    receiver.close()
    return received / seconds
