"""helpers.load: held connections, resident memory, the open-file limit, wait_until."""

import resource
import socket
import threading

import pytest

from helpers import serve_socket
from helpers.load import (
    FileLimit,
    HeldConnections,
    hold_connections,
    raise_open_file_limit,
    rss_bytes,
    wait_until,
)


def echo(conn):
    while data := conn.recv(1024):
        conn.sendall(data)


def silent(conn):
    while conn.recv(1024):
        pass


def test_hold_connections_opens_pings_and_closes():
    with serve_socket("test-load-echo", echo) as server:
        with hold_connections(server.address, 50, batch=20) as held:
            assert isinstance(held, HeldConnections) and len(held) == 50
            wait_until(lambda: server.connections == 50, what="50 connections")
            assert held.ping(b"hello") == 50
        assert held.sockets == []
        wait_until(lambda: server.connections == 0, what="every connection closed")


def test_hold_connections_without_ping_needs_no_server_reply():
    with (
        socket.create_server(("127.0.0.1", 0), backlog=64) as listener,
        hold_connections(listener.getsockname(), 30, ping=None) as held,
    ):
        assert len(held) == 30
        assert all(s.fileno() != -1 for s in held.sockets)


def test_ping_counts_connections_that_do_not_echo():
    with (
        serve_socket("test-load-silent", silent) as server,
        hold_connections(server.address, 3, ping=None) as held,
    ):
        assert held.ping(b"x", timeout=0.2) == 0


def test_hold_connections_fails_cleanly_when_the_server_does_not_echo():
    with serve_socket("test-load-silent", silent) as server:
        with pytest.raises(RuntimeError, match="only 0 of a batch of 5"):
            hold_connections(server.address, 5, timeout=0.3)
        wait_until(lambda: server.connections == 0, what="the failed batch to be closed")


def test_hold_connections_times_out_on_a_full_backlog():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # nobody accepts: connects beyond the backlog hang on Linux
        with pytest.raises((TimeoutError, OSError)):
            hold_connections(listener.getsockname(), 20, ping=None, timeout=0.3)


def test_rss_bytes_grows_with_memory_in_use():
    before = rss_bytes()
    block = bytearray(64 * 2**20)  # 64 MiB, touched by bytearray's zero-fill
    after = rss_bytes()
    assert before > 2**20
    assert after - before > 32 * 2**20
    del block


def test_raise_open_file_limit_leaves_a_high_enough_limit_alone():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = raise_open_file_limit(64)
    assert limit == FileLimit(64, soft, soft, hard)
    assert "enough: left as it was" in str(limit)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)


def test_raise_open_file_limit_raises_the_soft_limit_within_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip("hard limit too low for this test")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        limit = raise_open_file_limit(600)
        assert (limit.before, limit.after) == (512, 600)
        assert "raised from 512 to 600" in str(limit)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (600, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_raise_open_file_limit_refuses_beyond_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit")
    with pytest.raises(RuntimeError, match="hard limit"):
        raise_open_file_limit(hard + 1)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)


def test_wait_until_returns_the_value_or_names_what_was_missing():
    flag = threading.Event()
    threading.Timer(0.05, flag.set).start()
    assert wait_until(flag.is_set, timeout=2) is True
    with pytest.raises(TimeoutError, match="the impossible"):
        wait_until(lambda: False, timeout=0.05, what="the impossible")
