"""Chapter 03 exercises: the reference solutions pass, typical wrong answers fail."""

import random
import socket
import threading

import pytest

from helpers import check
from solutions.ch03 import FRAME, CounterServer, RetriesExhausted, fetch


def test_stubs_fail_every_check_naming_the_not_implemented_error():
    def stub(*args):
        raise NotImplementedError("your code here")

    class StubServer:
        def handle(self, conn):
            raise NotImplementedError("your code here")

    for exercise_id, answer in [("03.1", stub), ("03.2", stub), ("03.3", StubServer)]:
        report = check(exercise_id, answer)
        assert not any(r.passed for r in report.results), repr(report)
        assert all("NotImplementedError" in r.error for r in report.results), repr(report)


# -- 03.1 decorrelated jitter ------------------------------------------------------------


def full_jitter(attempts, base, cap, rng):
    return [rng.uniform(0, min(cap, base * 2**k)) for k in range(attempts)]


def never_grows(attempts, base, cap, rng):
    return [min(cap, rng.uniform(base, 3 * base)) for _ in range(attempts)]


def uncapped(attempts, base, cap, rng):
    waits, previous = [], base
    for _ in range(attempts):
        previous = rng.uniform(base, 3 * previous)
        waits.append(previous)
    return waits


def global_random(attempts, base, cap, rng):
    waits, previous = [], base
    for _ in range(attempts):
        previous = min(cap, random.uniform(base, 3 * previous))
        waits.append(previous)
    return waits


def test_full_jitter_is_not_decorrelated_jitter():
    report = check("03.1", full_jitter)
    assert "the first wait is between base and 3 × base" in report.failed
    assert "each wait is between base and min(cap, 3 × the previous wait)" in report.failed


def test_waits_that_do_not_grow_fail():
    report = check("03.1", never_grows)
    assert report.failed == {
        "the waits grow up to the cap and never pass it",
        "the waits grow from one attempt to the next",
    }


def test_forgetting_the_cap_fails():
    report = check("03.1", uncapped)
    assert report.failed == {
        "each wait is between base and min(cap, 3 × the previous wait)",
        "the waits grow up to the cap and never pass it",
    }


def test_drawing_from_the_random_module_fails():
    state = random.getstate()
    report = check("03.1", global_random)
    random.setstate(state)
    assert report.failed == {"draws every random number from `rng`"}


# -- 03.2 a download that survives cuts ----------------------------------------------------


def fetch_once(address, size):
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(b"GET %d\n" % size)
        data = bytearray()
        while len(data) < FRAME.size or len(data) < FRAME.size + FRAME.unpack_from(data)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed early")
            data += chunk
        return bytes(data[FRAME.size :])


def no_retries(address, size, attempts, sleep):
    return fetch_once(address, size)


def reads_until_end_of_stream(address, size, attempts, sleep):
    """Takes whatever arrived before b"" for the reply: a FIN mid-reply goes unnoticed."""

    def once():
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(b"GET %d\n" % size)
            data = b"".join(iter(lambda: sock.recv(65536), b""))
            return data[FRAME.size :]

    for attempt in range(1, attempts + 1):
        try:
            return once()
        except ConnectionError as error:
            if attempt == attempts:
                raise RetriesExhausted(attempts, error) from error
            sleep(0.001)


def one_recv(address, size, attempts, sleep):
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(b"GET %d\n" % size)
        return sock.recv(65536)[FRAME.size :]


def retries_without_sleep(address, size, attempts, sleep):
    for attempt in range(1, attempts + 1):
        try:
            return fetch_once(address, size)
        except ConnectionError as error:
            if attempt == attempts:
                raise RetriesExhausted(attempts, error) from error


def raises_the_last_error(address, size, attempts, sleep):
    for attempt in range(1, attempts + 1):
        try:
            return fetch_once(address, size)
        except ConnectionError:
            if attempt == attempts:
                raise
            sleep(0.001)


def test_no_retries_fails_every_fault():
    report = check("03.2", no_retries)
    assert report.failed == {
        "tries again after a reset in the middle of the reply",
        "does not take a close (FIN) in the middle of the reply for its end",
        "tries again while connections are refused, calling sleep between attempts",
        "gives up after `attempts` attempts with RetriesExhausted",
    }


def test_taking_a_fin_for_the_end_of_the_reply_fails():
    report = check("03.2", reads_until_end_of_stream)
    assert report.failed == {"does not take a close (FIN) in the middle of the reply for its end"}
    assert "fetch returned 996 bytes" in repr(report)


def test_a_single_recv_fails_on_a_reply_in_pieces():
    report = check("03.2", one_recv)
    assert "returns the body of a reply that arrives in pieces" in report.failed


def test_retrying_without_calling_sleep_fails():
    report = check("03.2", retries_without_sleep)
    name = "tries again while connections are refused, calling sleep between attempts"
    assert name in report.failed
    assert "without ever calling sleep" in repr(report)


def test_raising_the_raw_error_instead_of_retries_exhausted_fails():
    report = check("03.2", raises_the_last_error)
    assert report.failed == {"gives up after `attempts` attempts with RetriesExhausted"}


def test_the_reference_fetch_gives_up_with_the_last_error_attached():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = probe.getsockname()
    delays = []
    with pytest.raises(RetriesExhausted) as caught:
        fetch(address, 10, 4, delays.append)
    assert caught.value.attempts == 4 and len(delays) == 3
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert str(caught.value).startswith("gave up after 4 attempts; last error: Connection")


# -- 03.3 one record per client ----------------------------------------------------------


class NoDedupe(CounterServer):
    def answer(self, client, seq):
        with self.lock:
            self.value += 1
            return b"%d\n" % self.value


class RemembersEveryRequest(CounterServer):
    """Correct for retries, but keeps a record per request and never says STALE."""

    def __init__(self):
        super().__init__()
        self.replies = {}

    def answer(self, client, seq):
        with self.lock:
            if (client, seq) not in self.replies:
                self.value += 1
                self.replies[client, seq] = b"%d\n" % self.value
            return self.replies[client, seq]


class PerConnectionState:
    """Keeps the counter per connection instead of sharing it."""

    def handle(self, conn):
        server = CounterServer()
        server.handle(conn)


def test_counting_every_request_fails():
    report = check("03.3", NoDedupe)
    assert report.failed == {
        "answers a repeated seq from the record, without counting it",
        "answers an older seq with STALE",
        "a retry after a lost reply gets the first reply and is not counted again",
    }


def test_remembering_every_request_fails_only_on_stale():
    report = check("03.3", RemembersEveryRequest)
    assert report.failed == {"answers an older seq with STALE"}
    assert "'INCR a 1' was answered '1', expected 'STALE'" in repr(report)


def test_state_per_connection_fails():
    report = check("03.3", PerConnectionState)
    assert "counts new requests from several clients on several connections" in report.failed


def test_the_reference_counter_is_safe_under_concurrent_clients():
    server = CounterServer()
    workers = [
        threading.Thread(target=lambda c=c: [server.answer(c, s) for s in range(1, 201)])
        for c in "abcd"
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(5)
    assert server.value == 800 and server.answer("a", 200) == server.last["a"][1]
