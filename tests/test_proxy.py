import random
import socket
import threading
import time

import pytest
from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from zope.interface import implementer

from helpers import EventLog, serve, server_threads, servers, stop_all
from helpers.proxy import Faults, serve_proxy

TIMEOUT = 2
LATENCY = 0.05
BIG = 4 * 2**20


class Recorder(protocol.Protocol):
    """Records in the factory's log when it connects and how its connection ended."""

    def connectionMade(self):
        self.factory.log.record("server", "made")

    def connectionLost(self, reason):
        self.factory.log.record("server", "lost", reason=type(reason.value).__name__)


class Echo(Recorder):
    def dataReceived(self, data):
        self.factory.log.record("server", "data", data=data)
        self.transport.write(data)


class Exchange(Recorder):
    """Sends the factory's `down` payload on connect; collects the client's upload."""

    def connectionMade(self):
        super().connectionMade()
        self.transport.write(self.factory.down)

    def dataReceived(self, data):
        self.factory.received.extend(data)
        if len(self.factory.received) >= self.factory.expected:
            self.factory.log.record("server", "received all")


@implementer(IHalfCloseableProtocol)
class UpperOnEnd(Recorder):
    """Answers once the client has finished sending (half-close): its data, upper-cased."""

    def connectionMade(self):
        super().connectionMade()
        self.chunks = []

    def dataReceived(self, data):
        self.chunks.append(data)

    def readConnectionLost(self):
        self.transport.write(b"".join(self.chunks).upper())
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass


def start_server(protocol_class, **attributes):
    factory = protocol.Factory.forProtocol(protocol_class)
    factory.log = EventLog()
    vars(factory).update(attributes)
    return serve("server", factory), factory


@pytest.fixture
def echo():
    server, factory = start_server(Echo)
    yield server, factory.log
    server.stop()


def connect(proxy):
    return socket.create_connection(proxy.address, timeout=TIMEOUT)


def recv_exactly(sock, size):
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, 1 << 16))
        assert chunk, f"connection closed after {got} of {size} bytes"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_to_end(sock):
    """Everything until the peer's close, and how it closed: 'eof' (FIN) or 'reset' (RST)."""
    chunks = []
    try:
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    except ConnectionResetError:
        return b"".join(chunks), "reset"
    return b"".join(chunks), "eof"


def round_trip_seconds(sock, payload=b"ping"):
    started = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - started


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- forwarding -----------------------------------------------------------------


@pytest.mark.parametrize("faults", [{}, {"latency": 0.01, "jitter": 0.01}], ids=["plain", "jitter"])
def test_a_large_random_payload_arrives_complete_and_in_order_both_ways(faults):
    rng = random.Random(3)
    up, down = rng.randbytes(BIG), rng.randbytes(BIG)
    server, factory = start_server(Exchange, down=down, received=bytearray(), expected=BIG)
    proxy = serve_proxy("proxy", server, **faults)
    with connect(proxy) as client:
        sender = threading.Thread(target=client.sendall, args=(up,))
        sender.start()
        assert recv_exactly(client, BIG) == down
        sender.join(TIMEOUT)
        factory.log.wait(1, "received all", timeout=TIMEOUT)
    assert bytes(factory.received) == up
    assert (proxy.bytes_to_server, proxy.bytes_to_client) == (BIG, BIG)
    assert proxy.connections_accepted == 1
    stop_all()


def test_a_half_close_is_passed_on_in_both_directions():
    server, _ = start_server(UpperOnEnd)
    proxy = serve_proxy("proxy", server, latency=0.01)
    with connect(proxy) as client:
        client.sendall(b"hello, ")
        client.sendall(b"proxy")
        client.shutdown(socket.SHUT_WR)
        assert read_to_end(client) == (b"HELLO, PROXY", "eof")
    stop_all()


def test_a_client_of_an_unreachable_target_is_reset():
    proxy = serve_proxy("proxy", ("127.0.0.1", closed_port()))
    # The reset can come so fast that connect() itself reports it.
    with pytest.raises(ConnectionResetError), connect(proxy) as client:
        client.recv(1)
    proxy.stop()


# -- latency and bandwidth -------------------------------------------------------


def test_latency_delays_each_direction(echo):
    proxy = serve_proxy("proxy", echo[0], latency=LATENCY)
    with connect(proxy) as client:
        rtt = round_trip_seconds(client)
    assert 2 * LATENCY <= rtt < 2 * LATENCY + 1.0
    proxy.stop()


def test_jitter_stays_within_latency_plus_or_minus_jitter(echo):
    proxy = serve_proxy("proxy", echo[0], latency=LATENCY, jitter=0.02, seed=1)
    with connect(proxy) as client:
        rtts = [round_trip_seconds(client, b"x%d" % i) for i in range(3)]
    assert all(2 * (LATENCY - 0.02) <= rtt < 2 * (LATENCY + 0.02) + 1.0 for rtt in rtts)
    proxy.stop()


def test_jittered_delays_are_seeded_and_never_negative():
    faults = Faults(latency=0.01, jitter=0.05)
    one, two = random.Random(5), random.Random(5)
    delays = [faults.delay(one) for _ in range(1000)]
    assert delays == [faults.delay(two) for _ in range(1000)]
    assert min(delays) == 0.0 and 0.05 < max(delays) <= 0.06


def test_bandwidth_caps_the_rate():
    size, bandwidth = 200_000, 1_000_000
    server, _ = start_server(Exchange, down=b"d" * size, received=bytearray(), expected=1)
    proxy = serve_proxy("proxy", server, bandwidth=bandwidth)
    started = time.monotonic()
    with connect(proxy) as client:
        recv_exactly(client, size)
    elapsed = time.monotonic() - started
    assert 0.9 * size / bandwidth <= elapsed < size / bandwidth + 1.5
    stop_all()


def test_faults_change_while_connections_run(echo):
    proxy = serve_proxy("proxy", echo[0])
    with connect(proxy) as client:
        assert round_trip_seconds(client) < 1.0
        proxy.set_faults(latency=0.15)
        assert round_trip_seconds(client) >= 0.3
        assert proxy.set_faults(latency=0.0) == Faults()
        assert round_trip_seconds(client) < 0.3
        proxy.set_faults(cut_after=0)  # this connection is past it: its next chunk cuts
        client.sendall(b"abcd")
        assert read_to_end(client) == (b"", "reset")
    proxy.stop()


def test_bad_faults_are_refused_and_change_nothing(echo):
    proxy = serve_proxy("proxy", echo[0], latency=0.01)
    for bad in [{"latency": -1}, {"bandwidth": 0}, {"cut_how": "slam"}, {"cut_direction": "up"}]:
        with pytest.raises(ValueError):
            proxy.set_faults(**bad)
    assert proxy.faults == Faults(latency=0.01)
    with pytest.raises(ValueError, match="how must be one of"):
        proxy.cut("slam")
    proxy.stop()


# -- cutting -------------------------------------------------------------------


@pytest.mark.parametrize(("how", "seen"), [("reset", "reset"), ("close", "eof")])
def test_cut_after_n_bytes_delivers_exactly_n_then_the_cut(how, seen):
    down = random.Random(4).randbytes(1_000_000)
    server, factory = start_server(Exchange, down=down, received=bytearray(), expected=1)
    proxy = serve_proxy("proxy", server, cut_after=100_000, cut_direction="to_client", cut_how=how)
    with connect(proxy) as client:
        assert read_to_end(client) == (down[:100_000], seen)
    [lost] = factory.log.wait(1, "lost", timeout=TIMEOUT)
    if how == "reset":
        assert lost.details["reason"] == "ConnectionLost"
    stop_all()


class SendAndClose(Recorder):
    """Answers any data with the factory's `down` payload and closes at once (FIN behind it)."""

    def dataReceived(self, data):
        self.transport.write(self.factory.down)
        self.transport.loseConnection()


@pytest.mark.parametrize("attempt", range(10))
def test_a_reset_cut_wins_over_the_targets_own_close(attempt):
    server, _ = start_server(SendAndClose, down=b"x" * 5000)
    proxy = serve_proxy("proxy", server, cut_after=5000, cut_direction="to_client")
    with connect(proxy) as client:
        client.sendall(b"go")
        assert read_to_end(client) == (b"x" * 5000, "reset")
    stop_all()


def test_cut_after_counts_both_directions_together(echo):
    server, log = echo
    proxy = serve_proxy("proxy", server, cut_after=10)
    with connect(proxy) as client:
        client.sendall(b"abcd")
        assert recv_exactly(client, 4) == b"abcd"  # 8 bytes forwarded so far
        client.sendall(b"efgh")
        assert read_to_end(client) == (b"", "reset")
    log.wait(1, "lost", timeout=TIMEOUT)
    assert b"".join(e.details["data"] for e in log if e.what == "data") == b"abcdef"
    proxy.stop()


@pytest.mark.parametrize(
    ("how", "client_sees", "server_sees"),
    [("reset", "reset", "ConnectionLost"), ("close", "eof", "ConnectionDone")],
)
def test_cut_on_command_ends_every_connection(echo, how, client_sees, server_sees):
    server, log = echo
    proxy = serve_proxy("proxy", server)
    with connect(proxy) as one, connect(proxy) as two:
        round_trip_seconds(one)
        round_trip_seconds(two)
        assert proxy.cut(how) == 2
        assert proxy.connections == 0
        assert read_to_end(one) == (b"", client_sees)
        assert read_to_end(two) == (b"", client_sees)
    lost = log.wait(2, "lost", timeout=TIMEOUT)
    assert [e.details["reason"] for e in lost] == [server_sees] * 2
    with connect(proxy) as three:  # the proxy itself carries on
        round_trip_seconds(three)
    proxy.stop()


# -- refusing -------------------------------------------------------------------


def test_refuse_is_a_real_refusal_and_accepting_again_uses_the_same_port(echo):
    proxy = serve_proxy("proxy", echo[0])
    with connect(proxy) as before:
        proxy.refuse()
        assert proxy.refusing
        with pytest.raises(ConnectionRefusedError):
            connect(proxy)
        round_trip_seconds(before)  # connections already open carry on
        proxy.refuse(False)
    with connect(proxy) as after:
        round_trip_seconds(after)
    assert proxy.connections_accepted == 2
    proxy.stop()


def test_refuse_for_accepts_again_by_itself(echo):
    proxy = serve_proxy("proxy", echo[0])
    proxy.refuse_for(0.2)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.wait_accepting(timeout=TIMEOUT)
    with connect(proxy) as client:
        round_trip_seconds(client)
    proxy.stop()


# -- the registry ------------------------------------------------------------------


def test_stop_with_live_connections_leaves_nothing(echo):
    server, log = echo
    proxy = serve_proxy("proxy", server, latency=0.5)
    with connect(proxy) as one, connect(proxy) as two:
        log.wait(2, "made", timeout=TIMEOUT)  # both connections reach the server
        one.sendall(b"still in flight")
        two.sendall(b"also in flight")
        assert [s.name for s in servers()] == ["proxy", "server"]
        proxy.stop()
        assert proxy.connections == 0
        assert read_to_end(one) == (b"", "eof")
        assert read_to_end(two) == (b"", "eof")
    log.wait(2, "lost", timeout=TIMEOUT)
    assert [s.name for s in servers()] == ["server"]
    assert repr(proxy) == "<tcp proxy 'proxy' stopped>"
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    server.stop()
    assert servers() == [] and server_threads() == []


def test_stop_all_stops_a_refusing_proxy_and_its_pending_reopen(echo):
    proxy = serve_proxy("proxy", echo[0])
    proxy.refuse_for(0.05)
    assert stop_all() == ["proxy", "server"]
    assert servers() == []
    with pytest.raises(TimeoutError):
        proxy.wait_accepting(timeout=0.2)


def test_serving_a_name_again_replaces_the_old_proxy(echo):
    old = serve_proxy("proxy", echo[0])
    new = serve_proxy("proxy", echo[0])
    assert old.stopped and not new.stopped
    assert [s.name for s in servers()] == ["proxy", "server"]
    new.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_refuses_to_listen_anywhere_but_loopback(echo, host):
    with pytest.raises(ValueError, match="loopback only"):
        serve_proxy("proxy", echo[0], host=host)
    assert [s.name for s in servers()] == ["server"]
