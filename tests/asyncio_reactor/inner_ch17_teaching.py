"""Chapter 17's teaching code on real connections, tried the way a reader's use breaks it:
the lookup server (a Twisted protocol that calls an asyncio client) and LineClient."""

from helpers.reactor import install_asyncio_reactor

LOOP = install_asyncio_reactor()  # before anything installs the default reactor

import asyncio  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from twisted.internet import defer, endpoints, error  # noqa: E402

from helpers import serve, serve_streams  # noqa: E402
from helpers.notebook_code import load  # noqa: E402
from helpers.reactor import call  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "17_twisted_asyncio_interop.ipynb"
lookup = load(NOTEBOOK, "lookup")
bridge = load(NOTEBOOK, "bridge")


@pytest.fixture
def servers():
    backend = asyncio.run(serve_streams("t17-backend", lookup.backend, loop=LOOP))
    front = serve("t17-lookup", lookup.LookupFactory(backend.port))
    yield backend, front
    front.stop()
    backend.stop()


def session(port, data, *, half_close=True, timeout=3):
    """Send data (bytes, or a list of pieces), half-close, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for piece in data if isinstance(data, list) else [data]:
            s.sendall(piece)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got.decode().splitlines()


def test_many_lookups_in_one_write_keep_their_order(servers):
    _, front = servers
    keys = ["alpha", "slow", "beta", "nope", "slow", "alpha"] * 3
    got = session(front.port, "".join(k + "\n" for k in keys).encode())
    want = [f"ERR {k}: KeyError" if k == "nope" else f"{k} = {lookup.VALUES[k]}" for k in keys]
    assert got == want


def test_lines_split_byte_by_byte_are_answered(servers):
    _, front = servers
    data = b"alpha\nbeta\n"
    assert session(front.port, [bytes([b]) for b in data]) == ["alpha = 1", "beta = 2"]


def test_a_half_close_with_a_slow_lookup_pending_still_gets_its_reply(servers):
    _, front = servers
    assert session(front.port, b"slow\n") == ["slow = 3"]


def test_16_mib_on_one_line_is_refused_without_reading_it_all(servers):
    _, front = servers
    with socket.create_connection(("127.0.0.1", front.port), timeout=3) as s:
        s.sendall(b"alpha\n")
        sender_error = []

        def flood():
            try:
                s.sendall(b"x" * (16 << 20))
            except OSError as e:
                sender_error.append(e)

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        sender.join(5)
    assert got == b"alpha = 1\nERR line too long\n"
    assert not sender.is_alive()


def test_a_client_that_vanishes_mid_lookup_does_not_harm_the_next(servers):
    _, front = servers
    s = socket.create_connection(("127.0.0.1", front.port), timeout=3)
    s.sendall(b"slow\nalpha\n")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # a reset, with the slow lookup still running
    assert session(front.port, b"beta\n") == ["beta = 2"]


def test_a_backend_that_is_gone_gives_an_err_line_per_lookup(servers):
    backend, front = servers
    backend.stop()
    assert session(front.port, b"alpha\nbeta\n") == [
        "ERR alpha: ConnectionRefusedError", "ERR beta: ConnectionRefusedError"]


def test_a_backend_that_never_answers_times_out_into_an_err_line():
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        front = serve("t17-lookup-silent", lookup.LookupFactory(silent.getsockname()[1]))
        try:
            assert session(front.port, b"alpha\n") == ["ERR alpha: TimeoutError"]
        finally:
            front.stop()
    finally:
        silent.close()


def test_lineclient_fails_every_waiting_deferred_when_the_connection_is_lost(servers):
    _, front = servers

    def ask_then_drop():
        from twisted.internet import reactor

        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", front.port)

        def connected(client):
            waiting = [client.ask("slow"), client.ask("alpha")]
            client.transport.abortConnection()
            return defer.DeferredList(waiting, consumeErrors=True)

        return endpoints.connectProtocol(endpoint, bridge.LineClient()).addCallback(connected)

    results = call(ask_then_drop)
    assert [ok for ok, _ in results] == [False, False]
    assert all(f.check(error.ConnectionLost, error.ConnectionDone) for _, f in results)


def test_lineclient_ignores_a_reply_nobody_asked_for():
    from twisted.internet.testing import StringTransport

    client = bridge.LineClient()
    client.makeConnection(StringTransport())
    client.dataReceived(b"unasked\n")
    d = client.ask("q")
    client.dataReceived(b"answer\n")
    assert d.result == "answer"
