"""Chapter 13's own code, run for real: every socket stays on loopback. The multicast
listeners bind the chapter's group address, which receives that group only, joined on
127.0.0.1 (the chapter explains why)."""

from pathlib import Path

from test_ch01_teaching import exposed_sockets

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "13_udp.ipynb"


def test_every_socket_of_the_chapter_stays_on_loopback():
    assert exposed_sockets(NOTEBOOK, groups=("239.255.13.13",)) == []


class _Port:
    """The little of a connected UDP port that RpcClient uses."""

    def __init__(self):
        self.sent = []

    def connect(self, host, port):
        pass

    def write(self, datagram):
        self.sent.append(datagram)


def test_the_rpc_client_ignores_garbage_replies_even_an_id_of_thousands_of_digits():
    from twisted.internet import task

    from helpers.notebook_code import load

    rpc = load(NOTEBOOK, "udp_rpc")
    client, port = rpc.RpcClient(("127.0.0.1", 9), task.Clock()), _Port()
    client.makeConnection(port)
    answered = client.request(b"ping")
    assert port.sent == [b"0 ping"]
    for garbage in [b"", b"x", b"-0 y", b"9" * 5000 + b" z", b"1 nobody asked for 1"]:
        client.datagramReceived(garbage, ("127.0.0.1", 9))  # int() refuses 4,301+ digits
    assert not answered.called
    client.datagramReceived(b"0 pong", ("127.0.0.1", 9))
    assert answered.result == b"pong" and client.pending == {}
