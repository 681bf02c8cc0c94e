"""The chapter 19 harness: echo servers as processes, the load generator, the medians."""

import math
import socket
import threading

import pytest

from helpers import benchmark, loadgen
from helpers.benchmark import EchoServer, load, measure, running
from helpers.echo_servers import KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_every_server_echoes_under_load_and_stops(kind):
    with EchoServer(kind) as server:
        figures = load(server.port, connections=3, size=3000, duration=0.15, warmup=0.05)
        assert figures["requests"] > 20, figures
        assert figures["p50_us"] <= figures["p99_us"] <= figures["max_us"]
        assert server.cpu_seconds() > 0 and server.rss_bytes() > 1 << 20
    assert server.process.returncode is not None and running() == []


def test_large_messages_that_need_several_sends_come_back_whole():
    with EchoServer("asyncio") as server:
        figures = load(server.port, connections=2, size=256 * 1024, duration=0.2, warmup=0)
    assert figures["requests"] > 2


def test_a_server_ends_when_its_stdin_closes_as_when_the_parent_dies():
    server = EchoServer("twisted")
    server.process.stdin.close()
    assert server.process.wait(5) == 0
    server.stop()


def test_an_unknown_kind_and_a_failing_server_are_named():
    with pytest.raises(ValueError, match="unknown server kind 'nginx'"):
        EchoServer("nginx")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="threads server failed: .*Address already in use"):
            EchoServer("threads", "--port", str(port))
    assert running() == []


def test_measure_gives_medians_and_cpu_per_request():
    result = measure("uvloop", duration=0.2, warmup=0.05, repeats=3, connections=2)
    assert result.repeats == 3 and result.requests_per_s > 100
    assert 0 < result.cpu_us_per_request < 1000
    assert set(result.row()) >= {"kind", "p50_us", "p99_us", "cpu_us_per_request"}


class SlowEcho:
    """A server that answers each request `delay` seconds late, or wrongly."""

    def __init__(self, delay=0.0, extra=b""):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.delay, self.extra = delay, extra
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(conn,), daemon=True).start()

    def echo(self, conn):
        with conn:
            try:
                while data := conn.recv(65536):
                    if self.stop.wait(self.delay):
                        return
                    conn.sendall(data + self.extra)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.listener.close()


def test_a_fixed_schedule_counts_queueing_that_a_closed_loop_hides():
    server = SlowEcho(delay=0.02)  # can answer 50 requests/s per connection
    try:
        closed = loadgen.run(server.port, connections=1, size=10, duration=0.5, warmup=0)
        fixed = loadgen.run(server.port, connections=1, size=10, duration=0.5, warmup=0,
                            rate=100)  # twice what the server can do
    finally:
        server.close()
    # each request waits only for its own reply (20 ms; a busy machine added 37 ms once)
    assert closed["p99_us"] < 100_000
    assert fixed["late"] > 5
    assert fixed["p99_us"] > 2 * closed["p99_us"]  # latency measured from when it was due


def test_a_fixed_schedule_keeps_its_rate_when_the_server_keeps_up():
    server = SlowEcho()
    try:
        fixed = loadgen.run(server.port, connections=4, size=10, duration=0.5, warmup=0.1,
                            rate=400)
    finally:
        server.close()
    assert 150 <= fixed["requests"] <= 210, fixed


def test_a_server_that_sends_too_much_or_closes_is_an_error():
    server = SlowEcho(extra=b"!")
    try:
        with pytest.raises(ConnectionError, match="11 bytes came back for 10"):
            loadgen.run(server.port, connections=1, size=10, duration=0.2, warmup=0)
    finally:
        server.close()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def close_one():
            conn, _ = listener.accept()
            conn.recv(10)  # the request read: the close is a clean end of stream
            conn.close()

        threading.Thread(target=close_one, daemon=True).start()
        with pytest.raises(ConnectionError, match="closed the connection"):
            loadgen.run(port, connections=1, size=10, duration=0.5, warmup=0)


def test_percentiles():
    figures = loadgen.percentiles([i / 1e6 for i in range(1, 101)])
    assert figures == {"p50_us": 51.0, "p90_us": 91.0, "p99_us": 100.0, "max_us": 100.0}
    empty = loadgen.percentiles([])
    assert sorted(empty) == sorted(figures) and all(math.isnan(v) for v in empty.values())


def test_load_reports_a_generator_failure():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(RuntimeError, match="load generator failed: .*ConnectionRefusedError"):
        benchmark.load(port, duration=0.1)


def test_held_connections_are_served_counted_and_released():
    with EchoServer("twisted") as server:
        baseline = server.sockets()
        with benchmark.Held(server.port, 300) as held:
            assert held.count == 300
            assert server.sockets() == baseline + 300
        assert held.process.returncode == 0


def test_memory_per_connection_is_measured_for_idle_connections():
    per = benchmark.memory_per_connection("asyncio", 500)
    assert 100 < per < 100_000  # bytes: some, and far less than a thread stack


def test_reuse_port_spreads_connections_over_the_processes():
    split = benchmark.reuse_port_split("asyncio", processes=2, count=200)
    assert sum(split) == 200 and min(split) > 20  # the kernel hashes: roughly half each
    assert running() == []


def test_the_loopback_ceiling_is_measured():
    assert benchmark.loopback_ceiling(0.1) > 50e6  # bytes/s: loopback moves at least this
