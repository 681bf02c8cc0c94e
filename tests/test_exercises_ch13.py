"""Chapter 13 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py); and the
chapter's RpcClient (imported from the notebook) retransmits, ignores duplicates, gives
up, and fails fast when the server's port refuses."""

import select
import socket

import pytest
from twisted.internet import defer, error, task
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure

from helpers import check, serve_udp
from helpers.exercises import ch13
from helpers.notebook_code import load
from helpers.reactor import call, start
from solutions.ch13 import SOLUTIONS, Backoff, OnceServer, PeerCounter


@pytest.fixture
def short_timeout(monkeypatch):
    """A reply that never comes is waited for 0.1 s (0.5 s in the notebook)."""
    monkeypatch.setattr(ch13, "REPLY_TIMEOUT", 0.1)


def test_the_stub_is_not_attempted_and_shows_no_hint():
    class StubProtocol(DatagramProtocol):
        def datagramReceived(self, datagram, addr):
            raise NotImplementedError("your code here")

    class StubBackoff:
        def __init__(self, clock, send, timeout, tries):
            self.clock, self.send, self.timeout, self.tries = clock, send, timeout, tries

        def start(self):
            raise NotImplementedError("your code here")

        def replied(self, reply):
            raise NotImplementedError("your code here")

    for exercise_id, answer in [("13.1", StubProtocol), ("13.2", StubBackoff),
                                ("13.3", StubProtocol)]:
        report = check(exercise_id, answer)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)
    assert set(SOLUTIONS) == {"13.1", "13.2", "13.3"}


# -- 13.1 -------------------------------------------------------------------


def test_not_a_datagram_protocol_fails():
    report = check("13.1", object)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("per-peer") == "<class 'object'> is not a DatagramProtocol subclass"


def test_writing_without_the_address_names_the_cause():
    """The issue's 13.1 mistake: Twisted's write() fails with an empty AssertionError."""

    class NoAddress(PeerCounter):
        def datagramReceived(self, datagram, addr):
            self.counts[addr] = self.counts.get(addr, 0) + 1
            self.transport.write(b"%d " % self.counts[addr] + datagram)  # wrong: no addr

    report = check("13.1", NoAddress)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("answers-sender") == (
        "A sent b'hello': your datagramReceived called transport.write() without an"
        " address; a UDP port that is not connected cannot know where to send (Twisted's"
        " write() failed with a bare AssertionError)")


def test_replying_to_the_wrong_address_fails_without_waiting(monkeypatch):
    monkeypatch.setattr(ch13, "REPLY_TIMEOUT", 30)  # were it waited for, the check would time out

    class Nowhere(PeerCounter):
        def datagramReceived(self, datagram, addr):
            super().datagramReceived(datagram, ("127.0.0.1", 9))  # wrong: not the sender

    report = check("13.1", Nowhere)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("answers-sender") == (
        "A sent b'hello': your datagramReceived wrote b'1 hello' to ('127.0.0.1', 9), not to"
        " the sender (the address it was given)")


def test_one_counter_for_everyone_fails():
    class Everyone(DatagramProtocol):
        def __init__(self):
            self.n = 0

        def datagramReceived(self, datagram, addr):
            self.n += 1  # wrong: one count for all peers
            self.transport.write(b"%d " % self.n + datagram, addr)

    report = check("13.1", Everyone)
    assert report.failed == {"per-peer"}
    assert report.message("per-peer") == (
        "peers A and B on 127.0.0.1, and C on 127.0.0.2 with A's port number, took turns:"
        " B's b'b1' got b'3 b1', expected b'1 b1'")


def test_counting_by_host_fails():
    class ByHost(PeerCounter):
        def datagramReceived(self, datagram, addr):
            host = addr[0]  # wrong: every peer here is on 127.0.0.1
            self.counts[host] = self.counts.get(host, 0) + 1
            self.transport.write(b"%d " % self.counts[host] + datagram, addr)

    assert check("13.1", ByHost).failed == {"per-peer"}


def _has_127_0_0_2():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not _has_127_0_0_2(), reason="needs 127.0.0.2 (Linux has all of 127/8)")
def test_counting_by_port_fails():
    class ByPort(PeerCounter):
        def datagramReceived(self, datagram, addr):
            port = addr[1]  # wrong: two hosts can use the same port number
            self.counts[port] = self.counts.get(port, 0) + 1
            self.transport.write(b"%d " % self.counts[port] + datagram, addr)

    report = check("13.1", ByPort)
    assert report.failed == {"per-peer"}
    assert report.message("per-peer") == (
        "peers A and B on 127.0.0.1, and C on 127.0.0.2 with A's port number, took turns:"
        " C's b'c1' got b'12 c1', expected b'1 c1'")


def test_counts_in_the_class_fail():
    class Shared(DatagramProtocol):
        counts = {}  # wrong: one dict for every PeerCounter

        def datagramReceived(self, datagram, addr):
            self.counts[addr] = self.counts.get(addr, 0) + 1
            self.transport.write(b"%d " % self.counts[addr] + datagram, addr)

    report = check("13.1", Shared)
    assert report.failed == {"own-counts"}
    assert report.message("own-counts") == (
        "peer A sent two datagrams to port S1, then one to port S2: A's b'z' to S2 got"
        " b'3 z', expected b'1 z'")


def test_counts_in_a_default_argument_fail_with_a_hint_that_names_it():
    class Shared(PeerCounter):
        def __init__(self, counts={}):  # noqa: B006 (wrong: one dict for every PeerCounter)
            self.counts = counts

    report = check("13.1", Shared)
    assert report.failed == {"own-counts"}
    assert report.message("own-counts") == (
        "peer A sent two datagrams to port S1, then one to port S2: A's b'z' to S2 got"
        " b'3 z', expected b'1 z'")
    assert "default argument" in repr(report)


def test_decoding_the_datagram_fails():
    class Text(PeerCounter):
        def datagramReceived(self, datagram, addr):
            self.counts[addr] = self.counts.get(addr, 0) + 1
            text = f"{self.counts[addr]} {datagram.decode()}"  # wrong: not all bytes are text
            self.transport.write(text.encode(), addr)

    report = check("13.1", Text)
    assert report.failed == {"bytes-kept"}
    assert report.message("bytes-kept").startswith(
        "A sent b'\\xff\\xfe not UTF-8': your datagramReceived raised UnicodeDecodeError")


def test_stripping_the_datagram_fails():
    class Strip(PeerCounter):
        def datagramReceived(self, datagram, addr):
            super().datagramReceived(datagram.strip(), addr)  # wrong: changes the bytes

    report = check("13.1", Strip)
    assert report.failed == {"bytes-kept"}
    assert report.message("bytes-kept") == (
        "A's b' two words\\n' got b'2 two words', expected b'2  two words\\n'")


def test_formatting_bytes_into_a_string_fails():
    class Format(PeerCounter):
        def datagramReceived(self, datagram, addr):
            self.counts[addr] = self.counts.get(addr, 0) + 1
            self.transport.write(f"{self.counts[addr]} {datagram}".encode(), addr)  # wrong

    report = check("13.1", Format)
    assert "answers-sender" in report.failed
    assert report.message("answers-sender") == (
        "A's b'hello' got b\"1 b'hello'\", expected b'1 hello'")


def test_a_reply_in_two_datagrams_fails():
    class TwoWrites(PeerCounter):
        def datagramReceived(self, datagram, addr):
            self.counts[addr] = self.counts.get(addr, 0) + 1
            self.transport.write(b"%d " % self.counts[addr], addr)  # wrong: as on TCP
            self.transport.write(datagram, addr)

    report = check("13.1", TwoWrites)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("answers-sender") == (
        "A sent b'hello': it was answered with 2 datagrams, b'1 ', b'hello'; expected one"
        " reply")


def test_no_reply_at_all_fails(short_timeout):
    class Silent(DatagramProtocol):
        def datagramReceived(self, datagram, addr):
            pass  # wrong: UDP needs no reply, but this exercise does

    report = check("13.1", Silent)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("answers-sender") == (
        "A sent b'hello': your datagramReceived returned without writing anything, and no"
        " reply came within 0.1 s")


# -- 13.2 -------------------------------------------------------------------


class Fixed(Backoff):
    def _attempt(self):
        self.attempts += 1
        self.send()
        self.timer = self.clock.callLater(self.timeout, self._expired)  # wrong: no doubling


def test_a_fixed_interval_fails():
    report = check("13.2", Fixed)
    assert report.failed == {"backs-off", "gives-up"}
    assert report.message("backs-off") == (
        "timeout=0.1, tries=4, no reply: sends at t=[0.0, 0.1, 0.2, 0.3], expected"
        " [0.0, 0.1, 0.3, 0.7]")
    assert report.message("gives-up") == (
        "timeout=0.1, tries=4, no reply: at t=1.499 the Deferred failed with TimeoutError:"
        " no reply after 4 attempts, before the last wait was over (t=1.5)")


def test_doubling_from_the_first_wait_fails():
    class TooLong(Backoff):
        def _attempt(self):
            self.attempts += 1
            self.send()
            wait = self.timeout * 2 ** self.attempts  # wrong: the first wait is 2 x timeout
            self.timer = self.clock.callLater(wait, self._expired)

    report = check("13.2", TooLong)
    assert report.failed == {"backs-off", "gives-up"}
    assert report.message("backs-off").startswith(
        "timeout=0.1, tries=4, no reply: sends at t=[0.0, 0.2, 0.6, 1.4]")


def test_one_attempt_too_many_fails():
    class OneMore(Backoff):
        def _expired(self):
            if self.attempts <= self.tries:  # wrong: off by one
                self._attempt()
            else:
                self.result.errback(TimeoutError(f"no reply after {self.tries} attempts"))

    report = check("13.2", OneMore)
    assert report.failed == {"backs-off", "gives-up"}
    assert report.message("backs-off") == (
        "timeout=0.1, tries=4, no reply: sends at t=[0.0, 0.1, 0.3, 0.7, 1.5], expected"
        " [0.0, 0.1, 0.3, 0.7]")


def test_giving_up_at_the_last_send_fails():
    class NoLastWait(Backoff):
        def _attempt(self):
            super()._attempt()
            if self.attempts == self.tries:  # wrong: the last send gets no wait
                self.timer.cancel()
                self._expired()

    report = check("13.2", NoLastWait)
    assert report.failed == {"gives-up"}
    assert report.message("gives-up").startswith(
        "timeout=0.1, tries=4, no reply: at t=1.499 the Deferred failed with TimeoutError")


def test_never_giving_up_fails():
    class Forever(Backoff):
        def _expired(self):
            self._attempt()  # wrong: no limit

    report = check("13.2", Forever)
    assert report.failed == {"backs-off", "gives-up", "late-reply"}
    assert report.message("late-reply").startswith(
        "timeout=0.1, tries=2, no reply: still sending after 21 sends")
    assert report.message("backs-off").startswith(
        "timeout=0.1, tries=4, no reply: still sending after 21 sends")
    assert report.message("gives-up") == (
        "timeout=0.1, tries=4, no reply: at t=1.5 the Deferred had not fired, expected it to"
        " fail with TimeoutError: no reply after 4 attempts")


@pytest.mark.parametrize("error", [TimeoutError("no reply after 3 retries"),
                                   Exception("no reply after 4 attempts")],
                         ids=["retries-counted", "not-a-TimeoutError"])
def test_the_wrong_error_fails(error):
    class Wrong(Backoff):
        def _expired(self):
            if self.attempts < self.tries:
                self._attempt()
            else:
                self.result.errback(error)

    report = check("13.2", Wrong)
    assert report.failed == {"gives-up", "late-reply"} - ({"late-reply"} if isinstance(
        error, TimeoutError) else set())
    assert report.message("gives-up").startswith(
        f"timeout=0.1, tries=4, no reply: at t=1.5 the Deferred failed with"
        f" {type(error).__name__}: {error}")


@pytest.mark.parametrize("error_type", [defer.TimeoutError, error.TimeoutError],
                         ids=["defer", "error"])
def test_twisteds_timeout_error_is_named_with_its_module(error_type):
    """Twisted has two TimeoutErrors, neither Python's built-in one: the message must not
    read "failed with TimeoutError ..., expected TimeoutError"."""

    class Twisteds(Backoff):
        def _expired(self):
            if self.attempts < self.tries:
                self._attempt()
            else:  # wrong: an exception of the same name from Twisted
                self.result.errback(error_type(f"no reply after {self.attempts} attempts"))

    report = check("13.2", Twisteds)
    assert report.failed == {"gives-up", "late-reply"}
    assert report.message("gives-up").startswith(
        f"timeout=0.1, tries=4, no reply: at t=1.5 the Deferred failed with"
        f" {error_type.__module__}.TimeoutError: ")
    assert report.message("gives-up").endswith(
        " (not Python's built-in TimeoutError), expected it to fail with TimeoutError: no"
        " reply after 4 attempts")
    assert "(not Python's built-in TimeoutError), expected a TimeoutError" in (
        report.message("late-reply"))


def test_a_timer_left_running_after_the_reply_fails():
    class Leaky(Backoff):
        def replied(self, reply):
            if not self.result.called:
                self.result.callback(reply)  # wrong: the timer keeps running

    report = check("13.2", Leaky)
    assert report.failed == {"reply-wins"}
    assert report.message("reply-wins") == (
        "after replied(b'pong') at t=0.15, a timer was still scheduled on the clock")


def test_a_second_reply_that_raises_fails():
    class Twice(Backoff):
        def replied(self, reply):
            if self.timer.active():
                self.timer.cancel()
            self.result.callback(reply)  # wrong: AlreadyCalledError on the duplicate

    report = check("13.2", Twice)
    assert report.failed == {"reply-wins", "late-reply"}
    assert report.message("reply-wins").startswith(
        "a second replied() call, a duplicate reply, raised AlreadyCalledError")


def test_a_late_reply_that_cancels_a_spent_timer_fails():
    class SpentTimer(Backoff):
        answered = False

        def replied(self, reply):
            if self.answered:
                return
            self.answered = True
            self.timer.cancel()  # wrong: after the TimeoutError the timer has run already
            self.result.callback(reply)

    report = check("13.2", SpentTimer)
    assert report.failed == {"late-reply"}
    assert report.message("late-reply").startswith(
        "timeout=0.1, tries=2: replied(b'too late') after the TimeoutError raised"
        " AlreadyCalled")


def test_scheduling_on_another_clock_fails():
    class OwnClock(Backoff):
        def __init__(self, clock, send, timeout, tries):
            super().__init__(task.Clock(), send, timeout, tries)  # wrong: not the one given

    report = check("13.2", OwnClock)
    assert {"backs-off", "gives-up"} <= report.failed
    assert report.message("backs-off") == (
        "timeout=0.1, tries=4: after start(), nothing was scheduled on the clock given to"
        " Backoff")


def test_a_first_send_that_waits_fails():
    class Later(Backoff):
        def start(self):
            self.timer = self.clock.callLater(self.timeout, self._attempt)  # wrong: not at once
            return self.result

    report = check("13.2", Later)
    assert "starts" in report.failed
    assert report.message("starts") == "start() called send() 0 times, expected once, at once"


def test_start_without_the_deferred_fails():
    class NoDeferred(Backoff):
        def start(self):
            self._attempt()  # wrong: the caller gets None

    report = check("13.2", NoDeferred)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("starts") == (
        "start() returned None (NoneType), expected a Deferred")


# -- 13.3 -------------------------------------------------------------------


class EveryCopy(DatagramProtocol):
    def __init__(self):
        self.total = 0

    def datagramReceived(self, datagram, addr):
        request_id, _, command = datagram.partition(b" ")
        self.total += int(command.split()[1])  # wrong: a retransmission is added again
        self.transport.write(request_id + b" total %d" % self.total, addr)


def test_applying_every_copy_fails():
    report = check("13.3", EveryCopy)
    assert report.failed == {"once", "first-reply", "per-peer"}
    assert report.message("once") == (
        "A sent 1 add 5, the same again (a retransmission), 2 add 1, 1 add 5 once more (a"
        " late copy, after a newer request), then 3 add 10: A's b'1 add 5' got b'1 total 10',"
        " expected b'1 total 5'")


@pytest.mark.parametrize("key", [lambda addr, request_id: request_id,
                                 lambda addr, request_id: (addr[0], request_id)],
                         ids=["id-only", "host-and-id"])
def test_keying_without_the_whole_address_fails(key):
    class Keyed(OnceServer):
        def datagramReceived(self, datagram, addr):
            request_id, _, command = datagram.partition(b" ")
            k = key(addr, request_id)  # wrong: peers on one host share ids
            if k not in self.replies:
                self.total += int(command.split()[1])
                self.replies[k] = request_id + b" total %d" % self.total
            self.transport.write(self.replies[k], addr)

    report = check("13.3", Keyed)
    assert report.failed == {"per-peer"}
    assert report.message("per-peer") == (
        "A sent 1 add 5, B (also on 127.0.0.1) sent the same datagram, 1 add 5, then both"
        " repeated theirs: B's b'1 add 5' got b'1 total 5', expected b'1 total 10'")


def test_keying_by_the_datagram_fails():
    class ByDatagram(OnceServer):
        def datagramReceived(self, datagram, addr):
            request_id, _, command = datagram.partition(b" ")
            if datagram not in self.replies:  # wrong: another peer may send the same bytes
                self.total += int(command.split()[1])
                self.replies[datagram] = request_id + b" total %d" % self.total
            self.transport.write(self.replies[datagram], addr)

    report = check("13.3", ByDatagram)
    assert report.failed == {"per-peer"}
    assert report.message("per-peer") == (
        "A sent 1 add 5, B (also on 127.0.0.1) sent the same datagram, 1 add 5, then both"
        " repeated theirs: B's b'1 add 5' got b'1 total 5', expected b'1 total 10'")


def test_remembering_only_the_last_request_fails():
    class LastOnly(OnceServer):
        def datagramReceived(self, datagram, addr):
            request_id, _, command = datagram.partition(b" ")
            last = self.replies.get(addr)
            if last is None or last[0] != request_id:  # wrong: an older copy is new again
                self.total += int(command.split()[1])
                last = self.replies[addr] = (request_id, request_id + b" total %d" % self.total)
            self.transport.write(last[1], addr)

    report = check("13.3", LastOnly)
    assert report.failed == {"once"}
    assert report.message("once") == (
        "A sent 1 add 5, the same again (a retransmission), 2 add 1, 1 add 5 once more (a"
        " late copy, after a newer request), then 3 add 10: A's b'1 add 5' got"
        " b'1 total 11', expected b'1 total 5'")


def test_answering_a_repeat_with_the_current_total_fails():
    class CurrentTotal(OnceServer):
        def datagramReceived(self, datagram, addr):
            request_id, _, command = datagram.partition(b" ")
            key = (addr, request_id)
            if key not in self.replies:
                self.total += int(command.split()[1])
                self.replies[key] = True
            self.transport.write(request_id + b" total %d" % self.total, addr)  # wrong

    report = check("13.3", CurrentTotal)
    assert report.failed == {"once", "first-reply", "per-peer"}
    assert report.message("first-reply") == (
        "A sent 1 add 5, B sent 7 add 10, A repeated 1 add 5: A's b'1 add 5' got"
        " b'1 total 15', expected b'1 total 5'")


def test_answering_a_repeat_twice_fails():
    class NoReturn(OnceServer):
        def datagramReceived(self, datagram, addr):
            request_id, _, command = datagram.partition(b" ")
            key = (addr, request_id)
            if key in self.replies:
                self.transport.write(self.replies[key], addr)  # wrong: no return after it
            self.total += int(command.split()[1])
            self.replies[key] = request_id + b" total %d" % self.total
            self.transport.write(self.replies[key], addr)

    report = check("13.3", NoReturn)
    assert report.failed == {"once", "first-reply", "per-peer"}
    assert report.message("once") == (
        "A sent 1 add 5, the same again (a retransmission), 2 add 1, 1 add 5 once more (a"
        " late copy, after a newer request), then 3 add 10: A sent b'1 add 5': it was answered"
        " with 2 datagrams, b'1 total 5', b'1 total 10'; expected one reply")


def test_reading_one_digit_fails():
    class LastDigit(OnceServer):
        def datagramReceived(self, datagram, addr):
            super().datagramReceived(datagram[:-1].rpartition(b" ")[0] + b" " + datagram[-1:],
                                     addr)  # wrong: only the last digit of N

    report = check("13.3", LastDigit)
    assert "adds" in report.failed
    assert report.message("adds") == (
        "A sent 1 add 5, 2 add 37, 10 add 100: A's b'2 add 37' got b'2 total 12', expected"
        " b'2 total 42'")


def test_remembering_in_the_class_fails():
    class Shared(OnceServer):
        replies = {}  # wrong: one memory for every OnceServer

        def __init__(self):
            self.total = 0

    report = check("13.3", Shared)
    assert report.failed == {"own-state"}
    assert report.message("own-state") == (
        "peer A sent 1 add 5 to port S1, then 1 add 7 to port S2: A's b'1 add 7' to S2 got"
        " b'1 total 5', expected b'1 total 7'")


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


def dead_udp_address():
    """An address on 127.0.0.1 where no UDP port listens (bound once, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()


def test_rpc_client_survives_three_requests_in_one_turn_to_a_dead_port(udp_rpc):
    """On real ports on 127.0.0.1: after the first datagram's ICMP error, the second
    request's write() is refused and calls connectionRefused() before it returns. No
    request may raise or be lost, and once the epoll reactor has closed the port, a new
    request fails at once (the first version raised AttributeError for b and for d)."""
    reactor = start()
    client = udp_rpc.RpcClient(dead_udp_address(), reactor, timeout=1.0, tries=3)
    said = {}

    def ask(payload):
        try:
            d = client.request(payload)
        except Exception as exc:  # the mistake: the caller gets an exception, b is lost
            said[payload] = exc
            return defer.succeed(None)
        return d.addBoth(lambda result: said.update({payload: result}))  # consumed

    def four():
        asked = [ask(b"a")]
        select.select([client.transport.getHandle()], [], [], 1)  # the ICMP error is back
        asked += [ask(b"b"), ask(b"c")]
        d = defer.gatherResults(asked).addTimeout(2, reactor)
        return d.addCallback(lambda _: ask(b"d").addTimeout(2, reactor))

    with serve_udp("test-rpc-dead", client):
        call(four, timeout=5)
    refused, closed = error.ConnectionRefusedError, error.ConnectionClosed
    assert isinstance(said[b"a"], Failure) and said[b"a"].check(refused), said
    assert isinstance(said[b"b"], Failure) and said[b"b"].check(refused), said
    assert isinstance(said[b"c"], Failure) and said[b"c"].check(refused, closed), said
    assert isinstance(said[b"d"], Failure) and said[b"d"].check(refused, closed), said
    assert client.pending == {}
