"""Chapter 03 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import random
import re
import socket
import threading
import time

import pytest

from helpers import check
from solutions.ch03 import FRAME, ConnectionClosed, CounterServer, RetriesExhausted, fetch


def stub(*args):
    raise NotImplementedError("your code here")


class StubServer:
    def __init__(self):
        self.lock = threading.Lock()

    def handle(self, conn):
        raise NotImplementedError("your code here")


@pytest.mark.parametrize(("exercise_id", "answer"),
                         [("03.1", stub), ("03.2", stub), ("03.3", StubServer)])
def test_the_stub_is_not_attempted_and_shows_no_hint(exercise_id, answer):
    report = check(exercise_id, answer)
    assert not report.attempted, repr(report)
    assert "hint" not in repr(report)


# -- 03.1 decorrelated jitter ------------------------------------------------------------


def decorrelated(attempts, base, cap, rng, *, previous_of=lambda raw, capped: capped,
                 low=None, first=None):
    """The right formula, with one part replaceable to make a learner's mistake."""
    waits, previous = [], base
    for _ in range(attempts):
        raw = rng.uniform(base if low is None else low, 3 * previous)
        wait = min(cap, raw)
        waits.append(wait)
        previous = previous_of(raw, wait)
    return waits


def test_the_next_draw_from_the_uncapped_previous_wait_fails():
    def uncapped_previous(attempts, base, cap, rng):
        return decorrelated(attempts, base, cap, rng, previous_of=lambda raw, capped: raw)

    report = check("03.1", uncapped_previous)
    assert report.failed == {"after-cap"}
    assert report.message("after-cap").startswith(
        "with base=0.01, cap=0.05, 30 attempts, 50 seeds: of the ")
    assert "were below the cap; drawn between base and 3 × cap, about 29% should be" in (
        report.message("after-cap"))


def test_full_jitter_from_the_chapter_fails():
    def full_jitter(attempts, base, cap, rng):
        return [rng.uniform(0, min(cap, base * 2**k)) for k in range(attempts)]

    report = check("03.1", full_jitter)
    assert {"first", "steps"} <= report.failed
    assert "expected one between base and 3 × base (0.03)" in report.message("first")


def test_drawing_from_zero_instead_of_base_fails():
    def from_zero(attempts, base, cap, rng):
        return decorrelated(attempts, base, cap, rng, low=0)

    report = check("03.1", from_zero)
    assert {"first", "steps"} <= report.failed
    assert "expected between base and min(cap, 3 × previous)" in report.message("steps")


def test_a_first_wait_of_base_itself_fails():
    def appends_before_drawing(attempts, base, cap, rng):
        waits, previous = [], base
        for _ in range(attempts):
            waits.append(previous)  # the first wait is base, not drawn
            previous = min(cap, rng.uniform(base, 3 * previous))
        return waits

    report = check("03.1", appends_before_drawing)
    assert report.failed == {"first"}
    assert report.message("first") == (
        "over 100 seeds the first wait was always between 0.01 and 0.01: it is not drawn"
        " from the whole range [0.01, 0.03]")


def test_waits_that_never_grow_fail():
    def never_grows(attempts, base, cap, rng):
        return [min(cap, rng.uniform(base, 3 * base)) for _ in range(attempts)]

    report = check("03.1", never_grows)
    assert report.failed == {"cap", "after-cap", "grows"}
    assert "the median 8th wait over 200 seeds is" in report.message("grows")


def test_forgetting_the_cap_fails():
    def uncapped(attempts, base, cap, rng):
        return decorrelated(attempts, base, float("inf"), rng)

    report = check("03.1", uncapped)
    assert report.failed == {"steps", "cap", "after-cap"}
    assert report.message("cap").startswith("with cap=0.05: a wait of ")


def test_drawing_from_the_random_module_fails():
    def global_random(attempts, base, cap, rng):
        return decorrelated(attempts, base, cap, random)

    state = random.getstate()
    report = check("03.1", global_random)
    random.setstate(state)
    assert report.failed == {"rng"}
    assert report.message("rng").startswith("two calls with random.Random(5) gave different")


def test_a_generator_of_its_own_fails():
    def own_generator(attempts, base, cap, rng):
        return decorrelated(attempts, base, cap, random.Random(42))

    report = check("03.1", own_generator)
    assert report.failed == {"first", "rng"}  # the same first wait for every seed
    assert report.message("rng").startswith(
        "random.Random(5) and random.Random(6) gave the same waits")


def test_drawing_from_the_previous_wait_up_fails():
    def from_previous(attempts, base, cap, rng):
        waits, previous = [], base
        for _ in range(attempts):
            previous = min(cap, rng.uniform(previous, 3 * previous))  # from previous, not base
            waits.append(previous)
        return waits

    report = check("03.1", from_previous)
    assert report.failed == {"steps", "after-cap"}
    assert report.message("steps") == (
        "with base=0.01, cap=10, 12 attempts, 100 seeds: 0 of the 1100 waits after the first"
        " were shorter than the wait before them; drawn between base and 3 × previous, about"
        " a third should be: the draws do not start at base")


def test_capping_the_range_instead_of_the_wait_fails():
    def capped_range(attempts, base, cap, rng):
        waits, previous = [], base
        for _ in range(attempts):
            previous = rng.uniform(base, min(cap, 3 * previous))  # never exactly the cap
            waits.append(previous)
        return waits

    report = check("03.1", capped_range)
    assert report.failed == {"after-cap"}
    assert report.message("after-cap") == (
        "with base=0.01, cap=0.05, 30 attempts, 50 seeds: no wait was ever exactly the cap,"
        " though the cap cuts every draw above it down to the cap itself")


def test_one_wait_too_many_fails():
    def one_too_many(attempts, base, cap, rng):
        return decorrelated(attempts + 1, base, cap, rng)

    report = check("03.1", one_too_many)
    assert "count" in report.failed
    assert report.message("count") == (
        "backoff_delays(0, 0.01, 1, random.Random(1)) returned 1 waits, expected 0")


# -- 03.2 a download that survives cuts ----------------------------------------------------
# Wrong answers use a short timeout (0.5 s), so that a silent server costs little here, yet
# long enough that a loaded machine's stall between the pieces of a reply (50 ms apart) is
# not taken for a silent server: at 0.2 s, one run in a few had 03.2's in-pieces fail.


def recv_exactly(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionClosed(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def once(address, size, read=None, timeout=0.5):
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(b"GET %d\n" % size)
        if read:
            return read(sock)
        (length,) = FRAME.unpack(recv_exactly(sock, FRAME.size))
        return recv_exactly(sock, length)


def retrying(attempt_once, retryable=(ConnectionError, TimeoutError), delay=0.001):
    """A fetch built from one attempt, with the retry loop done right."""

    def fetch(address, size, attempts, sleep):
        for attempt in range(1, attempts + 1):
            try:
                return attempt_once(address, size)
            except retryable as error:
                if attempt == attempts:
                    raise RetriesExhausted(attempts, error) from error
                sleep(delay)

    return fetch


def test_a_header_read_with_one_recv_fails_on_a_split_header():
    def header_in_one_recv(sock):
        (length,) = FRAME.unpack(sock.recv(4))
        return recv_exactly(sock, length)

    report = check("03.2", retrying(lambda a, s: once(a, s, header_in_one_recv)))
    assert report.failed == {"in-pieces"}
    assert report.message("in-pieces").endswith(
        "fetch raised error: unpack requires a buffer of 4 bytes")


def test_a_body_read_with_one_recv_fails():
    def one_recv(sock):
        recv_exactly(sock, 4)
        return sock.recv(65536)

    report = check("03.2", retrying(lambda a, s: once(a, s, one_recv)))
    assert "in-pieces" in report.failed
    assert report.message("in-pieces").endswith(
        "fetch returned 996 bytes, expected the 3,000-byte body")


def test_returning_the_header_with_the_body_fails():
    def with_header(sock):
        header = recv_exactly(sock, 4)
        return header + recv_exactly(sock, FRAME.unpack(header)[0])

    report = check("03.2", retrying(lambda a, s: once(a, s, with_header)))
    assert report.failed == {"in-pieces", "reset", "truncated", "silent", "refused"}
    assert report.message("in-pieces").endswith(
        "fetch returned the reply with its 4-byte header; the body is what comes after it")


@pytest.fixture
def short_timeout(monkeypatch):
    """Checks of 03.2 give an answer this long where nothing should be slow (1 s in the
    notebook)."""
    from helpers.exercises import ch03

    monkeypatch.setattr(ch03, "TIMEOUT", 0.5)


def test_reading_until_the_server_closes_fails(monkeypatch):
    # Five attempts that each wait 0.2 s for a close that never comes: still running after
    # TIMEOUT, where the server keeps the connection open (in-pieces, reset, refused)
    from helpers.exercises import ch03

    monkeypatch.setattr(ch03, "TIMEOUT", 0.3)

    def until_closed(sock):
        return b"".join(iter(lambda: sock.recv(65536), b""))[4:]

    report = check("03.2", retrying(lambda a, s: once(a, s, until_closed, timeout=0.2)))
    assert report.failed == {"in-pieces", "reset", "truncated", "silent", "refused", "closes"}
    assert report.message("in-pieces").endswith(
        "the server kept the connection open for another request, as section 3's server"
        " does: fetch(address, 3000, 5, sleep) was still running after 0.3 s")


KEPT = []


def never_closes(address, size):
    sock = socket.create_connection(address, timeout=0.2)
    KEPT.append(sock)  # kept, never closed: the server waits on it for another request
    sock.sendall(b"GET %d\n" % size)
    (length,) = FRAME.unpack(recv_exactly(sock, FRAME.size))
    return recv_exactly(sock, length)


def closes_only_a_success(address, size):
    sock = socket.create_connection(address, timeout=0.2)
    sock.sendall(b"GET %d\n" % size)
    (length,) = FRAME.unpack(recv_exactly(sock, FRAME.size))  # a failure leaves sock open
    body = recv_exactly(sock, length)
    sock.close()
    return body


def test_a_fetch_that_never_closes_its_connection_fails(monkeypatch):
    from helpers.exercises import ch03

    monkeypatch.setattr(ch03, "LINGER", 0.3)
    report = check("03.2", retrying(never_closes))
    while KEPT:
        KEPT.pop().close()
    assert report.failed == {"closes"}
    assert report.message("closes") == (
        "the server replied in full, and kept the connection open for another request: fetch"
        " returned the body, and 0.3 s later the server still had its connection open: the"
        " socket was never closed")


def test_a_fetch_that_closes_only_a_successful_connection_fails():
    report = check("03.2", retrying(closes_only_a_success))
    assert report.failed == {"closes"}
    assert re.fullmatch(
        r"the first connection was reset after 1000 bytes of the reply: fetch returned the"
        r" body, and left a socket for the garbage collector to close \(unclosed"
        r" <socket.socket .*\)", report.message("closes"))


def test_taking_a_fin_for_the_end_of_the_reply_fails():
    def fin_is_the_end(sock):
        header = recv_exactly(sock, 4)
        data = bytearray()
        while len(data) < FRAME.unpack(header)[0] and (chunk := sock.recv(65536)):
            data += chunk
        return bytes(data)

    report = check("03.2", retrying(lambda a, s: once(a, s, fin_is_the_end)))
    assert report.failed == {"truncated"}
    assert report.message("truncated") == (
        "the first connection was closed (FIN) after 1000 bytes of the reply: fetch returned"
        " 996 bytes, expected the 3,000-byte body")


def test_a_truncated_reply_raised_as_eoferror_is_not_retried():
    def eof_error(sock):
        try:
            (length,) = FRAME.unpack(recv_exactly(sock, FRAME.size))
            return recv_exactly(sock, length)
        except ConnectionClosed as e:  # as chapter 01's recv_exactly does
            raise EOFError(str(e)) from None

    report = check("03.2", retrying(lambda a, s: once(a, s, eof_error)))
    assert report.failed == {"truncated"}
    assert report.message("truncated") == (
        "the first connection was closed (FIN) after 1000 bytes of the reply: fetch raised"
        " EOFError: closed after 996 of 3000 bytes")


def test_a_body_loop_that_ignores_end_of_stream_is_stopped_and_fails(short_timeout):
    def spins(sock):
        (length,) = FRAME.unpack(recv_exactly(sock, FRAME.size))
        data = bytearray()
        while len(data) < length:
            data += sock.recv(length - len(data))  # b"" for ever after a FIN
        return bytes(data)

    report = check("03.2", retrying(lambda a, s: once(a, s, spins)))
    assert report.failed == {"truncated"}
    assert report.message("truncated") == (
        "the first connection was closed (FIN) after 1000 bytes of the reply:"
        " fetch(address, 3000, 5, sleep) was still running after 0.5 s")
    assert not [t for t in threading.enumerate() if t.name == "helpers-check-answer"]


def test_retrying_only_connection_errors_fails_on_a_silent_server():
    report = check("03.2", retrying(once, retryable=ConnectionError))
    assert report.failed == {"silent"}
    assert report.message("silent") == (
        "the server read the GET and never replied on the first connection: fetch raised"
        " TimeoutError: timed out")


def test_no_timeout_fails_on_a_silent_server(monkeypatch):
    from helpers.exercises import ch03

    monkeypatch.setattr(ch03, "SILENT_LIMIT", 0.5)
    report = check("03.2", retrying(lambda a, s: once(a, s, timeout=None)))
    assert report.failed == {"silent"}
    assert report.message("silent") == (
        "the server read the GET and never replied on the first connection:"
        " fetch(address, 3000, 5, sleep) was still running after 0.5 s")


def test_no_retries_fails_every_fault():
    report = check("03.2", lambda address, size, attempts, sleep: once(address, size))
    assert report.failed == {"reset", "truncated", "silent", "refused", "gives-up"}
    assert report.message("reset") == (
        "the first connection was reset after 1000 bytes of the reply: fetch raised"
        " ConnectionResetError: [Errno 104] Connection reset by peer")


def test_retrying_without_calling_sleep_fails():
    def no_sleep(address, size, attempts, sleep):
        return retrying(once)(address, size, attempts, lambda delay: None)

    report = check("03.2", no_sleep)
    assert report.failed == {"reset", "truncated", "silent", "refused", "gives-up"}
    assert report.message("refused") == (
        "connections were refused until the second call of sleep: fetch raised"
        " RetriesExhausted: gave up after 5 attempts; last error: ConnectionRefusedError:"
        " [Errno 111] Connection refused without ever calling sleep")


def test_sleeping_too_long_fails():
    report = check("03.2", retrying(once, delay=1.0))
    assert report.failed == {"refused"}
    assert report.message("refused") == (
        "connections were refused until the second call of sleep: sleep was called with"
        " [1.0, 1.0], expected delays between 0 and 0.1 s")


def test_sleeping_before_the_first_attempt_fails():
    def sleeps_first(address, size, attempts, sleep):
        sleep(0.001)
        return retrying(once)(address, size, attempts, sleep)

    report = check("03.2", sleeps_first)
    assert report.failed == {"in-pieces", "reset", "truncated", "silent", "gives-up"}
    assert report.message("in-pieces") == (
        "nothing failed, yet fetch made 1 connections and called sleep 1 times")


def test_sleeping_after_the_last_attempt_fails():
    def sleeps_at_the_end(address, size, attempts, sleep):
        for attempt in range(1, attempts + 1):
            try:
                return once(address, size)
            except (ConnectionError, TimeoutError) as error:
                sleep(0.001)
                if attempt == attempts:
                    raise RetriesExhausted(attempts, error) from error

    report = check("03.2", sleeps_at_the_end)
    assert report.failed == {"gives-up"}
    assert report.message("gives-up") == (
        "nothing listens, so every connection is refused: 3 attempts have 2 waits between"
        " them; sleep was called 3 times")


def test_raising_the_last_error_instead_of_retries_exhausted_fails():
    def raises_last(address, size, attempts, sleep):
        for attempt in range(1, attempts + 1):
            try:
                return once(address, size)
            except (ConnectionError, TimeoutError):
                if attempt == attempts:
                    raise
                sleep(0.001)

    report = check("03.2", raises_last)
    assert report.failed == {"gives-up"}
    assert report.message("gives-up").startswith(
        "nothing listens, so every connection is refused: fetch(..., attempts=3, ...) raised"
        " ConnectionRefusedError: [Errno 111] Connection refused (attempts = None")


def test_counting_attempts_from_zero_fails():
    def zero_based(address, size, attempts, sleep):
        for attempt in range(attempts):
            try:
                return once(address, size)
            except (ConnectionError, TimeoutError) as error:
                if attempt == attempts - 1:
                    raise RetriesExhausted(attempt, error) from error
                sleep(0.001)

    report = check("03.2", zero_based)
    assert report.failed == {"gives-up"}
    assert "(attempts = 2, last_error = ConnectionRefusedError" in report.message("gives-up")


def test_one_connection_for_every_attempt_fails():
    def one_connection(address, size, attempts, sleep):
        sock = socket.create_connection(address, timeout=0.2)
        with sock:
            for attempt in range(1, attempts + 1):
                try:
                    sock.sendall(b"GET %d\n" % size)
                    (length,) = FRAME.unpack(recv_exactly(sock, 4))
                    return recv_exactly(sock, length)
                except (ConnectionError, TimeoutError) as error:
                    if attempt == attempts:
                        raise RetriesExhausted(attempts, error) from error
                    sleep(0.001)

    report = check("03.2", one_connection)
    assert {"reset", "truncated", "refused"} <= report.failed
    assert report.message("refused").startswith(
        "connections were refused until the second call of sleep: fetch raised"
        " ConnectionRefusedError")


def test_a_request_without_its_newline_is_named_by_the_server():
    def no_newline(address, size, attempts, sleep):
        with socket.create_connection(address, timeout=0.2) as sock:
            sock.sendall(b"GET %d" % size)
            return sock.recv(65536)

    report = check("03.2", no_newline)
    assert report.message("in-pieces") == (
        "the server got b'GET 3000', then the connection closed without a newline")


def test_the_reference_fetch_gives_up_with_the_last_error_attached():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = probe.getsockname()
    delays = []
    with pytest.raises(RetriesExhausted) as caught:
        fetch(address, 10, 4, delays.append)
    assert caught.value.attempts == 4 and len(delays) == 3
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


# -- 03.3 one record per client ----------------------------------------------------------


class SeqAsText(CounterServer):
    """Compares sequence numbers as the text they arrive as."""

    def handle(self, conn):
        with conn.makefile("rb") as lines:
            for line in lines:
                _, client, seq = line.decode().split()
                conn.sendall(self.answer(client, seq))


class NoDedupe(CounterServer):
    def answer(self, client, seq):
        with self.lock:
            self.value += 1
            return b"%d\n" % self.value


class RemembersEveryRequest(CounterServer):
    """Right for retries, but keeps a record per request and never says STALE."""

    def __init__(self):
        super().__init__()
        self.replies = {}

    def answer(self, client, seq):
        with self.lock:
            if (client, seq) not in self.replies:
                self.value += 1
                self.replies[client, seq] = b"%d\n" % self.value
            return self.replies[client, seq]


class RepliesTheCurrentValue(CounterServer):
    """A repeated seq is not counted, but gets the counter's value now."""

    def answer(self, client, seq):
        reply = super().answer(client, seq)
        return reply if reply == b"STALE\n" else b"%d\n" % self.value


class OneLastSeqForAll(CounterServer):
    """Remembers one last seq for all clients together."""

    def answer(self, client, seq):
        return super().answer("everyone", seq)


class CounterPerClient(CounterServer):
    def __init__(self):
        super().__init__()
        self.values = {}

    def answer(self, client, seq):
        with self.lock:
            last = self.last.get(client)
            if last and seq == last[0]:
                return last[1]
            if last and seq < last[0]:
                return b"STALE\n"
            self.values[client] = self.values.get(client, 0) + 1
            reply = b"%d\n" % self.values[client]
            self.last[client] = (seq, reply)
            return reply


class RecvIsALine(CounterServer):
    def handle(self, conn):
        while data := conn.recv(1024):
            _, client, seq = data.decode().split()
            conn.sendall(self.answer(client, int(seq)))


class PerConnectionState:
    """Keeps the counter per connection instead of sharing it."""

    def handle(self, conn):
        CounterServer().handle(conn)


class SharedByTheClass(CounterServer):
    """Records kept in the class body: one dict for every instance."""

    shared: dict = {}

    def __init__(self):
        super().__init__()
        self.last = self.shared


def test_comparing_seq_as_text_fails():
    report = check("03.3", SeqAsText)
    assert report.failed == {"numbers"}
    assert report.message("numbers") == (
        "connection 1: 'INCR a 10' was answered 'STALE', expected '2'")


def test_counting_every_request_fails():
    report = check("03.3", NoDedupe)
    assert report.failed == {"repeat", "stale", "numbers", "lost-reply", "racing-retry"}
    assert report.message("repeat") == "connection 2: 'INCR a 1' was answered '3', expected '1'"


def test_remembering_every_request_fails_only_on_stale():
    report = check("03.3", RemembersEveryRequest)
    assert report.failed == {"stale", "numbers"}
    assert report.message("stale") == (
        "connection 1: 'INCR a 1' was answered '1', expected 'STALE'")


def test_answering_a_repeat_with_the_current_value_fails():
    report = check("03.3", RepliesTheCurrentValue)
    # It reads the counter outside the lock too: "concurrent" and "racing-retry" catch that
    # race when it shows.
    assert report.failed - {"concurrent", "racing-retry"} == {"repeat"}
    assert report.message("repeat") == "connection 2: 'INCR a 1' was answered '2', expected '1'"


def test_one_last_seq_for_every_client_fails():
    report = check("03.3", OneLastSeqForAll)
    assert "counts" in report.failed
    assert report.message("counts") == (
        "connection 1: 'INCR b 1' was answered '1', expected '2'")


def test_a_counter_per_client_fails():
    report = check("03.3", CounterPerClient)
    assert "counts" in report.failed
    assert report.message("counts") == (
        "connection 1: 'INCR b 1' was answered '1', expected '2'")


def test_one_recv_taken_for_one_line_fails():
    report = check("03.3", RecvIsALine)
    assert report.failed == {"pipelined", "concurrent"}  # "concurrent" pipelines its requests
    assert report.message("pipelined") == (
        "after sending b'INCR a 1\\nINCR b 1\\nINCR a' in one write, the client expected"
        " b'1\\n' but got nothing, then the connection closed; your handler raised"
        " ValueError: too many values to unpack (expected 3)")


def test_state_per_connection_fails():
    report = check("03.3", PerConnectionState)
    assert {"counts", "repeat", "lost-reply"} <= report.failed
    assert report.message("counts") == "connection 2: 'INCR a 2' was answered '1', expected '3'"


def test_records_in_the_class_body_fail():
    SharedByTheClass.shared.clear()
    report = check("03.3", SharedByTheClass)
    assert "fresh" in report.failed
    assert report.message("fresh") == (
        "a second CounterServer(), after the first had answered 'INCR z 1' and 'INCR z 2':"
        " 'INCR z 1' was answered 'STALE', expected '1'")


class NoLock(CounterServer):
    """Wrong: no lock; read, then write back one more (the thread can switch in between)."""

    def answer(self, client, seq):
        if client in self.last:
            last_seq, reply = self.last[client]
            if seq == last_seq:
                return reply
            if seq < last_seq:
                return b"STALE\n"
        value = self.value
        time.sleep(0)  # any call here (a log line, a lookup) gives other threads a turn
        self.value = value + 1
        reply = b"%d\n" % self.value
        self.last[client] = (seq, reply)
        return reply


def test_a_counter_without_a_lock_fails_under_concurrent_connections():
    report = check("03.3", NoLock)
    # In "racing-retry" its lost update can hide the double count: two copies of a request
    # both counted from the same value get the same reply. That check fails only sometimes.
    assert report.failed - {"racing-retry"} == {"concurrent"}
    assert re.fullmatch(
        r"8 connections at once, each sending 40 requests INCR cN 10 to INCR cN 49 in one"
        r" write: the 320 replies should be 1 to 320, each once; \d+ values came twice"
        r" \(e\.g\. \[.*\]\), so two requests were counted as one", report.message("concurrent"))


class NewLockEveryTime(CounterServer):
    """Wrong: a new lock for every request, which no other thread ever waits for."""

    def answer(self, client, seq):
        with threading.Lock():
            if client in self.last:
                last_seq, reply = self.last[client]
                if seq == last_seq:
                    return reply
                if seq < last_seq:
                    return b"STALE\n"
            self.value += 1
            reply = b"%d\n" % self.value
            self.last[client] = (seq, reply)
            return reply


def test_a_new_lock_for_every_request_fails_under_concurrent_connections():
    report = check("03.3", NewLockEveryTime)
    assert report.failed == {"concurrent", "racing-retry"}
    assert re.fullmatch(
        r"8 connections at once, each sending 40 requests INCR cN 10 to INCR cN 49 in one"
        r" write: the 320 replies should be 1 to 320, each once; \d+ values came twice"
        r" \(e\.g\. \[.*\]\), so two requests were counted as one", report.message("concurrent"))


class LocksOnlyTheCounter(CounterServer):
    """Wrong: the counter under the lock, but the client's record looked up before it and
    written after it, so a retry racing its original is counted again."""

    def answer(self, client, seq):
        if client in self.last:
            last_seq, reply = self.last[client]
            if seq == last_seq:
                return reply
            if seq < last_seq:
                return b"STALE\n"
        with self.lock:
            self.value += 1
            reply = b"%d\n" % self.value
        self.last[client] = (seq, reply)
        return reply


def test_locking_only_the_counter_fails_when_a_retry_races_its_original():
    report = check("03.3", LocksOnlyTheCounter)
    assert report.failed == {"racing-retry"}
    assert re.fullmatch(
        r"two connections sent the same client's requests INCR r 10 to INCR r 49, each request"
        r" on both at the same moment \(as a retry racing its original\): 'INCR r \d+' was"
        r" answered '\d+' on one connection and '\d+' on the other: it was counted twice",
        report.message("racing-retry"))


class LockedForTheWholeConnection(CounterServer):
    """Wrong: holds the lock while it waits for the connection's next line."""

    def handle(self, conn):
        with self.lock, conn.makefile("rb") as lines:
            for line in lines:
                _, client, seq = line.decode().split()
                conn.sendall(self.answer_locked(client, int(seq)))

    def answer_locked(self, client, seq):
        if client in self.last:
            last_seq, reply = self.last[client]
            if seq == last_seq:
                return reply
            if seq < last_seq:
                return b"STALE\n"
        self.value += 1
        reply = b"%d\n" % self.value
        self.last[client] = (seq, reply)
        return reply


def test_a_lock_held_for_a_whole_connection_is_named(monkeypatch):
    from helpers.exercises import ch03

    monkeypatch.setattr(ch03, "REPLY_TIMEOUT", 0.1)
    report = check("03.3", LockedForTheWholeConnection)
    assert report.failed == {"counts", "repeat", "concurrent", "racing-retry", "lost-reply"}
    assert report.message("counts") == (
        "connection 2: sent 'INCR a 2' while connection 1 stayed open, and got no reply for"
        " 0.1 s; once connection 1 closed, the reply b'3\\n' came: one connection held up the"
        " others until it ended")


class IgnoresEndOfStream(CounterServer):
    """Wrong: appends what recv() returns, b"" too, so it never sees the end of the stream."""

    def handle(self, conn):
        buffer = b""
        while True:
            buffer += conn.recv(1024)
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                _, client, seq = line.decode().split()
                conn.sendall(self.answer(client, int(seq)))


def test_a_handler_that_ignores_end_of_stream_is_stopped_and_named():
    report = check("03.3", IgnoresEndOfStream)
    assert report.failed == {"returns-at-eof"}
    assert report.message("returns-at-eof") == (
        "after 'INCR a 1' was answered '1', the client closed its connection: recv() returned"
        " b'' (end of stream) 101 times in a row and your handler kept calling it: it never"
        " ends")


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
