"""Chapter 13 exercises: every reference solution passes its checker, deliberately wrong
answers fail the check that names their mistake, and the chapter's RpcClient (imported
from the notebook) retransmits, ignores duplicates and gives up, on a task.Clock."""

import time

import pytest
from twisted.internet import error, task
from twisted.internet.protocol import DatagramProtocol

from helpers import check
from helpers.exercises import ch13
from helpers.notebook_code import load
from solutions.ch13 import Backoff, OnceServer, PeerCounter


def test_stubs_fail_every_check_fast():
    class StubCounter(DatagramProtocol):
        def datagramReceived(self, datagram, addr):
            raise NotImplementedError("your code here")

    class StubBackoff(Backoff):
        def start(self):
            raise NotImplementedError("your code here")

    started = time.monotonic()
    stubs = [("13.1", StubCounter), ("13.2", StubBackoff), ("13.3", StubCounter)]
    for exercise_id, answer in stubs:
        report = check(exercise_id, answer)
        assert not any(r.passed for r in report.results), repr(report)
        assert all("NotImplementedError: your code here" in r.error for r in report.results)
    assert time.monotonic() - started < 1.0


# -- 13.1 -------------------------------------------------------------------


def test_not_a_datagram_protocol_fails():
    report = check("13.1", object)
    assert report.failed == {r.check.name for r in report.results}
    assert "is not a DatagramProtocol subclass" in repr(report)


def test_one_counter_for_everyone_fails_only_the_per_peer_check():
    class Global(DatagramProtocol):
        n = 0

        def datagramReceived(self, datagram, addr):
            self.n += 1  # wrong: one count for all peers
            self.transport.write(b"%d " % self.n + datagram, addr)

    report = check("13.1", Global)
    assert report.failed == {"counts the datagrams of each peer separately"}
    assert "got b'3 x', expected b'1 x'" in repr(report)


def test_replying_to_the_wrong_address_fails_fast(monkeypatch):
    monkeypatch.setattr(ch13, "REPLY_TIMEOUT", 0.2)

    class Nowhere(PeerCounter):
        def datagramReceived(self, datagram, addr):
            super().datagramReceived(datagram, ("127.0.0.1", 9))  # wrong: not the sender

    started = time.monotonic()
    report = check("13.1", Nowhere)
    assert report.failed == {r.check.name for r in report.results}
    assert "no reply came back to the sender within 0.2 s" in repr(report)
    assert time.monotonic() - started < 1.5


# -- 13.2 -------------------------------------------------------------------


def test_fixed_interval_fails_the_backoff_checks():
    class Fixed(Backoff):
        def _attempt(self):
            self.attempts += 1
            self.send()
            self.timer = self.clock.callLater(self.timeout, self._expired)  # wrong: no doubling

    report = check("13.2", Fixed)
    assert report.failed == {
        "no reply: sends again after timeout, 2 x timeout, 4 x timeout, ...",
        "after `tries` sends and the last wait: TimeoutError naming the attempts",
    }
    assert "sends at [0.0, 0.1, 0.2, 0.3]" in repr(report)


def test_never_giving_up_fails():
    class Forever(Backoff):
        def _expired(self):
            self._attempt()  # wrong: no limit

    report = check("13.2", Forever)
    name = "after `tries` sends and the last wait: TimeoutError naming the attempts"
    assert name in report.failed
    assert "still sending after 21 sends" in repr(report)


def test_timer_left_running_after_the_reply_fails():
    class Leaky(Backoff):
        def replied(self, reply):
            if not self.result.called:
                self.result.callback(reply)  # wrong: the timer keeps running

        def _expired(self):
            if not self.result.called:
                super()._expired()

    report = check("13.2", Leaky)
    assert report.failed == {
        "the first reply fires the Deferred and cancels the timer; later ones are ignored"
    }
    assert "a timer is still scheduled" in repr(report)


def test_second_reply_raising_fails():
    class Twice(Backoff):
        def replied(self, reply):
            if self.timer.active():
                self.timer.cancel()
            self.result.callback(reply)  # wrong: AlreadyCalledError on the duplicate

    report = check("13.2", Twice)
    assert report.failed == {
        "the first reply fires the Deferred and cancels the timer; later ones are ignored"
    }
    assert "AlreadyCalledError" in repr(report)


# -- 13.3 -------------------------------------------------------------------


def test_applying_every_copy_fails_only_the_repeat_checks():
    class EveryCopy(DatagramProtocol):
        total = 0

        def datagramReceived(self, datagram, addr):
            request_id, _, command = datagram.partition(b" ")
            self.total += int(command.split()[1])  # wrong: a retransmission is added again
            self.transport.write(request_id + b" total %d" % self.total, addr)

    report = check("13.3", EveryCopy)
    assert report.failed == {
        "a repeated request is not applied again, and gets its first reply",
        "ids are per peer: the same id from another peer is a new request",
    }
    assert "got b'1 total 10', expected b'1 total 5'" in repr(report)


def test_keying_by_id_alone_fails_the_per_peer_check():
    class ByIdOnly(OnceServer):
        def datagramReceived(self, datagram, addr):
            request_id, _, command = datagram.partition(b" ")
            if request_id not in self.replies:  # wrong: each peer picks its own ids
                self.total += int(command.split()[1])
                self.replies[request_id] = request_id + b" total %d" % self.total
            self.transport.write(self.replies[request_id], addr)

    report = check("13.3", ByIdOnly)
    assert report.failed == {"ids are per peer: the same id from another peer is a new request"}
    assert "B's b'1 add 10' got b'1 total 5', expected b'1 total 15'" in repr(report)


def test_answering_the_current_total_fails():
    class CurrentTotal(OnceServer):
        def datagramReceived(self, datagram, addr):
            request_id, _, command = datagram.partition(b" ")
            key = (addr, request_id)
            if key not in self.replies:
                self.total += int(command.split()[1])
                self.replies[key] = True
            self.transport.write(request_id + b" total %d" % self.total, addr)  # wrong

    report = check("13.3", CurrentTotal)
    assert report.failed == {"ids are per peer: the same id from another peer is a new request"}
    assert "A's b'1 add 5' got b'1 total 15', expected b'1 total 5'" in repr(report)


# -- the chapter's RpcClient, on a task.Clock and a fake transport ----------------------


class FakeUdpTransport:
    def __init__(self):
        self.written, self.connected_to = [], None

    def connect(self, host, port):
        self.connected_to = (host, port)

    def write(self, datagram, addr=None):
        self.written.append(datagram)


@pytest.fixture(scope="module")
def udp_rpc():
    return load("notebooks/13_udp.ipynb", "udp_rpc")


def connected_client(udp_rpc, **options):
    clock, transport = task.Clock(), FakeUdpTransport()
    client = udp_rpc.RpcClient(("127.0.0.1", 5353), clock, **options)
    client.makeConnection(transport)
    return client, clock, transport


def test_rpc_client_retransmits_then_gives_up(udp_rpc):
    client, clock, transport = connected_client(udp_rpc, timeout=0.05, tries=3)
    assert transport.connected_to == ("127.0.0.1", 5353)
    d = client.request(b"ping")
    clock.pump([0.05, 0.05])
    assert transport.written == [b"0 ping"] * 3
    clock.advance(0.05)
    failure = []
    d.addErrback(failure.append)
    assert failure[0].check(udp_rpc.RequestTimedOut)
    assert str(failure[0].value) == "no reply after 3 attempts"
    assert not clock.getDelayedCalls()


def test_rpc_client_matches_by_id_and_ignores_duplicates(udp_rpc):
    client, clock, transport = connected_client(udp_rpc)
    first, second = client.request(b"a"), client.request(b"b")
    results = []
    first.addCallback(results.append)
    second.addCallback(results.append)
    client.datagramReceived(b"1 B", ("127.0.0.1", 5353))
    client.datagramReceived(b"1 B", ("127.0.0.1", 5353))  # duplicate: ignored
    client.datagramReceived(b"garbage", ("127.0.0.1", 5353))  # ignored
    client.datagramReceived(b"0 A", ("127.0.0.1", 5353))
    assert results == [b"B", b"A"]
    assert not clock.getDelayedCalls()
    assert transport.written == [b"0 a", b"1 b"]


def test_rpc_client_fails_pending_requests_when_refused_or_closed(udp_rpc):
    client, clock, _ = connected_client(udp_rpc)
    refused, closed = [], []
    client.request(b"a").addErrback(refused.append)
    client.connectionRefused()
    client.request(b"b").addErrback(closed.append)
    client.doStop()
    assert refused[0].check(error.ConnectionRefusedError)
    assert closed[0].check(error.ConnectionClosed)
    assert not clock.getDelayedCalls()
