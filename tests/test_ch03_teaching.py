"""Chapter 03's own code, run for real: every socket stays on loopback, and the UDP server
refuses a datagram of the wrong shape and goes on serving."""

import socket
from pathlib import Path

from test_ch01_teaching import exposed_sockets

from helpers import EventLog
from helpers.notebook_code import load

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_network_challenges.ipynb"


def test_every_socket_of_the_chapter_stays_on_loopback():
    assert exposed_sockets(NOTEBOOK) == []


def test_the_udp_server_refuses_a_malformed_datagram_and_goes_on():
    log = EventLog()
    server = load(NOTEBOOK, "udp_server").UdpServer(log)
    with server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        replies = []
        for request in (b"hello", b"req", b"req x", b"req 7"):
            sock.sendto(request, server.address)
            replies.append(sock.recv(100))
        assert server.thread.is_alive()
    assert replies == [b"error: expected req N"] * 3 + [b"resp 7"]
    assert [e.what for e in log] == ["refused"] * 3 + ["request"]
