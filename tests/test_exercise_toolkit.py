"""The checkers' shared toolkit: answers run with deadlines, Deferred outcomes, and real
sockets whose reads say how they ended."""

import socket
import threading
import time

import pytest
from twisted.internet import defer, protocol, task

from helpers import serve
from helpers.exercises import Outcome, Watch, require_deferred, run_answer, settle, show
from helpers.exercises.wire import Client, dead_port, serving, tcp_pair, why

# -- Outcome and show -------------------------------------------------------------------


def test_outcomes_describe_themselves_in_one_vocabulary():
    assert str(Outcome("returned", 3)) == "returned 3"
    assert str(Outcome("raised", ValueError("bad"))) == "raised ValueError: bad"
    assert str(Outcome("raised", EOFError())) == "raised EOFError"
    assert str(Outcome("fired", "x")) == "fired with 'x'"
    assert str(Outcome("failed", KeyError("k"))) == "failed with KeyError: 'k'"
    assert str(Outcome("pending")) == "had not fired"
    assert str(Outcome("pending", seconds=2)) == "had not fired after 2 s"


def test_an_error_whose_str_fails_is_told_by_its_arguments():
    from twisted.internet.error import DNSLookupError

    error = DNSLookupError(b"nope.example.test")  # as getHostByName makes it
    with pytest.raises(TypeError):
        str(error)
    assert str(Outcome("failed", error)) == "failed with DNSLookupError: b'nope.example.test'"


def test_an_outcome_knows_its_error():
    assert Outcome("failed", KeyError("k")).is_error(LookupError)
    assert not Outcome("returned", KeyError("k")).is_error(KeyError)  # a value, not an error
    assert Outcome("fired", 1).ok and not Outcome("raised", ValueError()).ok


def test_show_shortens_long_values_and_says_their_length():
    assert show(b"abc") == "b'abc'"
    long = show(b"x" * 5000)
    assert long.endswith("(5,000 bytes)") and len(long) < 120


# -- run_answer -------------------------------------------------------------------------


def test_run_answer_returns_or_raises_within_its_deadline():
    assert run_answer(lambda a, b: a + b, 1, 2).value == 3
    outcome = run_answer(lambda: 1 / 0)
    assert outcome.kind == "raised" and isinstance(outcome.value, ZeroDivisionError)


def test_run_answer_releases_a_blocked_answer_and_fails_the_check():
    gate = threading.Event()
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"^blocker was still running after 0.1 s$"):
        run_answer(gate.wait, limit=0.1, release=gate.set, what="blocker")
    assert time.monotonic() - start < 1


def test_run_answer_stops_an_answer_that_spins_without_blocking():
    """The learner's recv() loop that never checks for b"": after the check, it must not
    go on burning a core for the rest of the session, whatever it catches."""
    left = []

    def spins(sock):
        try:
            while True:
                try:
                    sock.recv(10)  # b"" for ever once the peer has gone
                except Exception:  # noqa: S112 - a learner's catch-all does not keep it alive
                    continue
        finally:
            left.append(threading.current_thread())

    a, b = socket.socketpair()
    with a, b:
        b.close()
        with pytest.raises(AssertionError, match=r"^spinner was still running after 0.1 s$"):
            run_answer(spins, a, limit=0.1, what="spinner")
    assert len(left) == 1  # its finally ran: Interrupted ended the loop
    left[0].join(1)
    assert not left[0].is_alive()


# -- Deferreds --------------------------------------------------------------------------


def test_watch_reads_a_deferreds_outcome_and_consumes_its_failure():
    d = defer.Deferred()
    watch = Watch(d)
    assert watch.outcome == Outcome("pending") and not watch.fired
    d.errback(ValueError("late"))
    assert watch.outcome.kind == "failed" and watch.outcome.is_error(ValueError)


def test_require_deferred_names_what_came_instead():
    d = defer.succeed(1)
    assert require_deferred(d, "f()") is d
    with pytest.raises(AssertionError, match=r"^f\(\) returned 3 \(int\), expected a Deferred$"):
        require_deferred(3, "f()")


def test_settle_waits_in_the_reactor_thread_with_a_deadline():
    from twisted.internet import reactor

    assert settle(lambda: task.deferLater(reactor, 0.01, lambda: "x")).value == "x"
    assert settle(lambda: defer.fail(KeyError("k"))).is_error(KeyError)
    assert settle(lambda: 5) == Outcome("returned", 5)
    assert settle(lambda: 1 / 0).is_error(ZeroDivisionError)
    cancelled = []
    outcome = settle(lambda: defer.Deferred(cancelled.append), limit=0.05)
    assert outcome == Outcome("pending", seconds=0.05) and len(cancelled) == 1


def test_settle_reports_a_deferred_that_its_cancellation_leaves_waiting(monkeypatch):
    from helpers.exercises import answers

    monkeypatch.setattr(answers, "SETTLE_GRACE", 0.2)

    def waits_on_after_cancel():  # as Deferred.fromFuture does for a task nothing runs
        d = defer.Deferred(lambda d: d.callback("cancelled"))
        return d.addCallback(lambda _: defer.Deferred())  # ...then waits for ever

    outcome = settle(waits_on_after_cancel, limit=0.1)
    assert outcome.kind == "pending" and str(outcome) == "had not fired after 0.3 s"


# -- sockets ----------------------------------------------------------------------------


class Scripted(protocol.Protocol):
    """Answers "line\\n" with "LINE\\n"; b"close" closes, b"reset" aborts."""

    def dataReceived(self, data):
        if data.startswith(b"close"):
            self.transport.write(b"bye")
            self.transport.loseConnection()
        elif data.startswith(b"reset"):
            self.transport.abortConnection()
        else:
            self.transport.write(data.upper())


@pytest.fixture
def server():
    with serve("toolkit-scripted", protocol.Factory.forProtocol(Scripted)) as running:
        yield running


def test_a_client_read_says_how_it_ended(server):
    with Client(server.port, timeout=0.2) as client:
        client.send(b"hi\nthere\n")
        first, second = client.read_until(b"\n"), client.read_until(b"\n")
        assert [(r.data, r.ending) for r in (first, second)] == [
            (b"HI\n", "complete"), (b"THERE\n", "complete")]
    with Client(server.port, timeout=0.2) as client:
        client.send(b"ab")
        got = client.read_exactly(5)
        assert (got.data, got.ending, str(got)) == (
            b"AB", "silent", "got b'AB', then nothing more for 0.2 s")
        client.send(b"close")
        got = client.read_to_end()
        assert (got.data, str(got)) == (b"bye", "got b'bye', then the connection closed")
    with Client(server.port, timeout=0.5) as client:
        client.send(b"reset")
        got = client.read_to_end()
        assert str(got) == "got nothing, then the connection was reset"


def test_a_long_read_with_silence_ends_open_while_bytes_keep_coming():
    writer_done = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = Client(listener.getsockname()[1], timeout=1.0)
        writer, _ = listener.accept()

    def trickle():  # a byte every 20 ms, for longer than the read may take
        while not writer_done.wait(0.02):
            try:
                writer.sendall(b"x")
            except OSError:
                return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        got = client.read_to_end(0.3, silence=0.2)
        assert got.ending == "open" and got.data
        assert str(got).endswith(" in 0.3 s, and the connection was still open")
        writer_done.set()
        sender.join(1)
        got = client.read_to_end(0.5, silence=0.1)
        assert (got.ending, got.seconds) == ("silent", 0.1)
    finally:
        writer_done.set()
        client.close()
        writer.close()


def test_a_client_connects_a_socket_made_earlier_and_closes_it(server):
    spare = socket.socket()  # a check makes it first, to take a file descriptor number
    number = spare.fileno()
    with Client(server.port, timeout=0.2, sock=spare) as client:
        assert client.sock is spare and spare.fileno() == number
        client.send(b"hi\n")
        assert client.read_until(b"\n").data == b"HI\n"
    assert spare.fileno() == -1


def test_expect_line_fails_with_what_came(server):
    with Client(server.port, timeout=0.2) as client:
        client.send(b"one\n")
        client.expect_line(b"ONE\n", after="b'one\\n'")
        client.send(b"close")
        with pytest.raises(AssertionError, match=r"^after sending close, the client expected"
                                                 r" b'TWO\\n' but got b'bye', then the"
                                                 r" connection closed$"):
            client.expect_line(b"TWO\n", after="sending close")


def test_sending_to_a_closed_peer_fails_the_check(server):
    with Client(server.port, timeout=0.5) as client:
        client.send(b"reset")
        client.read_to_end()
        with pytest.raises(AssertionError, match="the server had already closed the connection"):
            for _ in range(50):  # the first send after a reset may still succeed
                client.send(b"x" * 65536)


def test_a_dead_port_refuses_and_the_client_says_nothing_listens():
    with dead_port() as port:
        with pytest.raises(socket.error):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with pytest.raises(AssertionError, match=f"nothing accepted a connection on"
                                                 f" 127.0.0.1:{port}"):
            Client(port)


def test_tcp_pair_caps_the_readers_buffer():
    reader, writer = tcp_pair(rcvbuf=4096)
    with reader, writer:
        writer.sendall(b"x" * 100_000)  # fits in the writer's send buffer
        assert len(reader.recv(1_000_000)) <= 100_000


def test_serving_keeps_the_handlers_exceptions():
    def handler(conn):
        conn.recv(10)
        raise ValueError("bad input")

    with serving("toolkit-handler", handler) as server, Client(server.port, timeout=1) as client:
        client.send(b"hi")
        assert client.read_to_end().ending in ("closed", "reset")
    assert why(server) == "; your handler raised ValueError: bad input"


def test_reader_code_says_what_was_being_done_and_keeps_the_cause():
    from helpers.exercises import CheckFailed
    from helpers.exercises.answers import reader_code

    expected = r"^bob sent 'x': your code raised KeyError: 'x'$"
    with pytest.raises(CheckFailed, match=expected) as raised, reader_code("bob sent 'x'"):
        {}["x"]
    assert isinstance(raised.value.__cause__, KeyError)
    with pytest.raises(CheckFailed, match="^the check's own$"), reader_code("unused"):
        raise CheckFailed("the check's own")  # a verdict passes through unchanged
