"""Chapter 04's teaching code on real connections: the selectors echo loop and the reactor,
imported from the notebook's `# module:` cells."""

import socket
from pathlib import Path

import pytest

from helpers import EventLog
from helpers.notebook_code import load

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_concurrency_models.ipynb"
PAYLOAD = bytes(range(256)) * (16 * 2**20 // 256)  # 16 MiB: far more than kernel buffers hold


def selectors_echo():
    module = load(NOTEBOOK, "selectors_echo")
    module.events, module.threads = EventLog(), set()  # the notebook's globals its cells use
    server = module.start_echo_loop()
    server.read_all = lambda: module.events.wait(1, "end of stream", timeout=5)
    return server


def reactor_echo():
    module = load(NOTEBOOK, "reactor")
    server = module.start_reactor(module.Echo, name="test-reactor")
    server.read_all = lambda: None  # nothing to wait for: the client reads at once
    return server


def send_half_close_then_read(server):
    """Send PAYLOAD, shut down writing (chapter 01's pattern), wait until the server has
    read everything, then read to the end. The client's receive buffer is fixed small, so
    that most of the echo is still in the server when it reads the end of the stream."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(5)
        sock.connect(server.address)
        sock.sendall(PAYLOAD)
        sock.shutdown(socket.SHUT_WR)
        server.read_all()
        received = bytearray()
        while chunk := sock.recv(2**20):
            received += chunk
    return bytes(received)


@pytest.mark.parametrize("start", [selectors_echo, reactor_echo])
def test_a_client_that_half_closes_gets_its_whole_echo(start):
    server = start()
    try:
        received = send_half_close_then_read(server)
    finally:
        server.stop()
    assert len(received) == len(PAYLOAD) and received == PAYLOAD


def test_the_selectors_echo_loop_still_closes_when_the_client_leaves():
    server = selectors_echo()
    try:
        with socket.create_connection(server.address, timeout=2) as sock:
            sock.sendall(b"hello")
            assert sock.recv(100) == b"hello"
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(100) == b""  # nothing was waiting: the server closed at once
    finally:
        server.stop()
