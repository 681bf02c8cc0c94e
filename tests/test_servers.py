import socket
import threading

import pytest
from twisted.internet import protocol
from twisted.internet.protocol import DatagramProtocol

from helpers import (
    EventLog,
    serve,
    serve_multicast,
    serve_socket,
    serve_udp,
    server_threads,
    servers,
    stop_all,
)

TIMEOUT = 2


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def echo_handler(conn):
    while data := conn.recv(1024):
        conn.sendall(data)


def round_trip(address, payload=b"ping"):
    with socket.create_connection(address, timeout=TIMEOUT) as client:
        client.sendall(payload)
        return client.recv(1024)


def refused(address):
    try:
        socket.create_connection(address, timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


def start(kind, name):
    if kind == "twisted":
        return serve(name, protocol.Factory.forProtocol(Echo))
    return serve_socket(name, echo_handler)


KINDS = ["twisted", "socket"]


@pytest.mark.parametrize("kind", KINDS)
def test_serves_on_loopback_with_an_ephemeral_port(kind):
    server = start(kind, "echo")
    assert server.host == "127.0.0.1" and server.port > 0
    assert server.address == ("127.0.0.1", server.port)
    assert round_trip(server.address) == b"ping"
    assert repr(server) == f"<{server.kind} 'echo' 127.0.0.1:{server.port}>"
    server.stop()
    assert repr(server) == f"<{server.kind} 'echo' stopped>"
    assert refused(server.address)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org", ""])
def test_refuses_any_interface_but_loopback(kind, host):
    with pytest.raises(ValueError, match="loopback only"):
        if kind == "twisted":
            serve("bad", protocol.Factory.forProtocol(Echo), host=host)
        else:
            serve_socket("bad", echo_handler, host=host)
    assert servers() == []


@pytest.mark.parametrize("kind", KINDS)
def test_stop_closes_a_connected_client_and_waits_for_it(kind):
    server = start(kind, "echo")
    with socket.create_connection(server.address, timeout=TIMEOUT) as client:
        client.sendall(b"hi")
        assert client.recv(10) == b"hi"
        assert server.connections == 1
        server.stop()
        assert server.connections == 0
        assert client.recv(10) == b""  # the server closed its side
    assert refused(server.address)
    assert server_threads() == []


def test_stop_aborts_a_client_that_never_reads():
    """A peer that does not read keeps a graceful close pending; stop() still ends."""
    log = EventLog()

    class Flood(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(b"x" * 20_000_000)

        def connectionLost(self, reason):
            log.record("server", "lost", reason=reason.type.__name__)

    server = serve("flood", protocol.Factory.forProtocol(Flood))
    with socket.create_connection(server.address, timeout=TIMEOUT) as client:
        client.recv(1)
        server.stop(timeout=1)
        assert [e.details["reason"] for e in log.wait(1, "lost")] == ["ConnectionAborted"]


@pytest.mark.parametrize("kind", KINDS)
def test_serving_a_name_again_replaces_the_old_server(kind):
    old = start(kind, "echo")
    new = start(kind, "echo")
    assert old.stopped and not new.stopped
    assert [s.name for s in servers()] == ["echo"]
    assert servers()[0] is new
    assert round_trip(new.address) == b"ping"
    old.stop()  # stopping a replaced handle again is harmless
    assert servers() == [new]
    new.stop()


def test_servers_lists_by_name_and_port():
    b = start("socket", "bravo")
    a = start("twisted", "alpha")
    listing = servers()
    assert [s.name for s in listing] == ["alpha", "bravo"]
    text = repr(listing)
    assert f"alpha                twisted server  127.0.0.1:{a.port}" in text
    assert f"bravo                socket server   127.0.0.1:{b.port}" in text
    stop_all()
    assert repr(servers()) == "No servers running."


def test_stop_all_leaves_no_listening_socket_and_no_server_thread():
    started = [start("twisted", "t1"), start("socket", "s1"), start("socket", "s2")]
    clients = [socket.create_connection(s.address, timeout=TIMEOUT) for s in started]
    for c in clients:
        c.sendall(b"x")
        assert c.recv(1) == b"x"
    assert server_threads()  # accept and connection threads are running
    assert sorted(stop_all()) == ["s1", "s2", "t1"]
    assert servers() == [] and server_threads() == []
    for s in started:
        assert refused(s.address)
    for c in clients:
        assert c.recv(1) == b""
        c.close()


def test_context_manager_stops_the_server():
    with serve_socket("ctx", echo_handler) as server:
        assert round_trip(server.address) == b"ping"
    assert server.stopped and servers() == []


def test_handler_errors_are_kept_not_printed(capsys):
    def broken(conn):
        conn.recv(10)
        raise ValueError("bad request")

    server = serve_socket("broken", broken)
    with socket.create_connection(server.address, timeout=TIMEOUT) as client:
        client.sendall(b"x")
        assert client.recv(10) == b""  # handler failed, connection closed
    server.stop()
    assert [str(e) for e in server.errors] == ["bad request"]
    captured = capsys.readouterr()
    assert "bad request" not in captured.out + captured.err


def test_socket_handler_threads_are_named_after_the_server():
    ready, release = threading.Event(), threading.Event()

    def waiting(conn):
        ready.set()
        release.wait(TIMEOUT)

    with serve_socket("named", waiting) as server:
        client = socket.create_connection(server.address, timeout=TIMEOUT)
        assert ready.wait(TIMEOUT)
        assert server_threads() == ["helpers-server-named-accept", "helpers-server-named-conn1"]
        release.set()
        client.close()


def test_a_stopped_twisted_server_restarts_on_its_old_port():
    first = start("twisted", "restartable")
    port = first.port
    first.stop()
    assert refused(("127.0.0.1", port))
    again = serve("restartable", protocol.Factory.forProtocol(Echo), port=port)
    assert again.port == port
    assert round_trip(again.address) == b"ping"
    again.stop()


class UdpEcho(DatagramProtocol):
    def datagramReceived(self, data, addr):
        self.transport.write(data, addr)


def udp_round_trip(address, payload=b"ping"):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        client.sendto(payload, address)
        return client.recvfrom(70000)[0]


def test_a_udp_server_is_listed_replaced_and_stopped():
    first = serve_udp("udp", UdpEcho())
    assert udp_round_trip(first.address) == b"ping"
    second = serve_udp("udp", UdpEcho(), max_packet_size=65535)
    assert first.stopped and repr(servers()).splitlines()[1].split()[:2] == ["udp", "udp"]
    assert udp_round_trip(second.address, b"x" * 10_000) == b"x" * 10_000
    stop_all()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(second.address)  # the port is free again


def test_the_default_packet_size_cuts_long_datagrams():
    server = serve_udp("udp", UdpEcho())
    assert len(udp_round_trip(server.address, b"x" * 10_000)) == 8192
    server.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10"])
def test_udp_refuses_any_interface_but_loopback(host):
    with pytest.raises(ValueError, match="loopback only"):
        serve_udp("udp", UdpEcho(), host=host)


def test_multicast_ports_bind_a_group_or_loopback_only():
    with pytest.raises(ValueError, match="not a multicast group"):
        serve_multicast("group", UdpEcho(), group="10.0.0.1")
    sender = serve_multicast("sender", UdpEcho())
    listener = serve_multicast("listener", UdpEcho(), group="239.255.13.14")
    assert sender.host == "127.0.0.1" and listener.host == "239.255.13.14"
    assert sorted(s.name for s in servers()) == ["listener", "sender"]
    stop_all()
