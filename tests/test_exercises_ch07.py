"""Chapter 07 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake."""

from collections import deque

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory

from helpers import check
from helpers.exercises import ch07
from solutions.ch07 import KeyValueClient, ReplyFactory, _FirstLine, fetch


@pytest.fixture
def short_timeout(monkeypatch):
    """Answers that never fire are given up on after 0.5 s (2 s in the notebook)."""
    monkeypatch.setattr(ch07, "TIMEOUT", 0.5)


def test_stub_fails_every_check():
    class Stub:
        def __init__(self, *args):
            raise NotImplementedError("your code here")

    def stub(*args):
        raise NotImplementedError("your code here")

    class StubClient(KeyValueClient):
        def get(self, key):
            raise NotImplementedError("your code here")

    for exercise_id, answer in [("07.1", Stub), ("07.2", stub), ("07.3", StubClient)]:
        report = check(exercise_id, answer)
        assert not any(r.passed for r in report.results), repr(report)
        assert all(r.error == "NotImplementedError: your code here" for r in report.results), (
            repr(report)
        )


# -- 07.1 -------------------------------------------------------------------


class PlainReplyFactory(Factory):
    """Wrong: the article's mistake, a plain Factory for a client."""

    protocol = ReplyFactory.protocol

    def __init__(self, message):
        self.message, self.reply, self.result = message, b"", Deferred()


def test_plain_factory_fails_naming_startedConnecting():
    report = check("07.1", PlainReplyFactory)
    assert report.failed == {r.check.name for r in report.results}
    assert "is not a ClientFactory" in repr(report)
    assert "no attribute 'startedConnecting'" in repr(report)


def test_firing_on_the_first_chunk_fails():
    class FirstChunk(ReplyFactory.protocol):
        def dataReceived(self, data):
            if not self.factory.result.called:
                self.factory.result.callback(data)  # wrong: the reply may come in pieces

    class FirstChunkFactory(ReplyFactory):
        protocol = FirstChunk

        def clientConnectionLost(self, connector, reason):
            pass

    report = check("07.1", FirstChunkFactory)
    assert report.failed == {"`result` fires with the whole reply, once the server has closed"}
    assert "fired with b'HEL'" in repr(report)


def test_silent_connection_failure_fails(short_timeout):
    class Silent(ReplyFactory):
        def clientConnectionFailed(self, connector, reason):
            pass  # the default: nothing happens, result never fires

    report = check("07.1", Silent)
    assert report.failed == {"`result` fails with ConnectionRefusedError on a dead port"}
    assert "had not fired after 0.5 s" in repr(report)


def test_shared_result_fails():
    class Shared(ReplyFactory):
        result = Deferred()  # wrong: one Deferred for every factory

        def __init__(self, message):
            self.message, self.reply = message, b""

    report = check("07.1", Shared)
    assert "a ClientFactory, with its own `result` Deferred" in report.failed
    assert "share one `result` Deferred" in repr(report)


def test_exception_in_the_protocol_is_reported():
    class Broken(ReplyFactory.protocol):
        def dataReceived(self, data):
            raise ValueError("oops")

    class BrokenFactory(ReplyFactory):
        protocol = Broken

    report = check("07.1", BrokenFactory)
    assert "Broken.dataReceived raised ValueError: oops" in repr(report)


# -- 07.2 -------------------------------------------------------------------


def fetch_with(protocol_class):
    def answer(endpoint, line):
        from twisted.internet.endpoints import connectProtocol

        protocol = protocol_class(line)
        return connectProtocol(endpoint, protocol).addCallback(lambda _: protocol.reply)

    return answer


def test_fetch_firing_on_the_first_chunk_fails():
    class FirstChunk(_FirstLine):
        def dataReceived(self, data):
            if not self.reply.called:
                self.transport.loseConnection()
                self.reply.callback(data.decode())

    report = check("07.2", fetch_with(FirstChunk))
    assert "fires with the first reply line, which arrives in pieces" in report.failed
    assert "fired with 'HE'" in repr(report)


def test_fetch_that_never_closes_fails_only_the_close_check():
    class StaysOpen(_FirstLine):
        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer and not self.reply.called:
                self.reply.callback(self.buffer.split(b"\n", 1)[0].decode())

    report = check("07.2", fetch_with(StaysOpen))
    assert report.failed == {"closes the connection after the reply"}


def test_fetch_that_hangs_on_early_close_fails(short_timeout):
    class Hangs(_FirstLine):
        def connectionLost(self, reason):
            pass  # wrong: the reply Deferred is left waiting

    report = check("07.2", fetch_with(Hangs))
    assert report.failed == {"fails when the server closes before a whole line"}
    assert "had not fired after 0.5 s" in repr(report)


def test_fetch_that_loses_the_connect_failure_fails(short_timeout):
    def swallowing(endpoint, line):
        reply = Deferred()
        protocol = _FirstLine(line)
        protocol.reply = reply
        d = fetch(endpoint, line)
        d.addErrback(lambda failure: None)  # wrong: the failure is swallowed
        return d

    report = check("07.2", swallowing)
    assert "fails with ConnectionRefusedError on a dead port" in report.failed
    assert "fired with None" in repr(report)


# -- 07.3 -------------------------------------------------------------------


def test_replies_matched_last_in_first_out_fail():
    class Lifo(KeyValueClient):
        def get(self, key):
            d = super().get(key)
            self.pending.appendleft(self.pending.pop())  # wrong: newest request first
            return d

    report = check("07.3", Lifo)
    assert "five gets pipelined; values and KeyError matched in order, from pieces" in report.failed


def test_missing_key_as_a_value_fails():
    class NoKeyError(KeyValueClient):
        def dataReceived(self, data):
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                _, d = self.pending.popleft()
                d.callback(line.decode().partition(" ")[2])  # wrong: "missing" as a value

    report = check("07.3", NoKeyError)
    assert report.failed == {
        "five gets pipelined; values and KeyError matched in order, from pieces"
    }


def test_lock_step_client_fails_the_pipelining_check(short_timeout):
    class LockStep(KeyValueClient):
        """Wrong: one request in flight at a time; the rest wait for replies."""

        def __init__(self):
            super().__init__()
            self.queued = deque()

        def get(self, key):
            if self.pending:
                d = Deferred()
                self.queued.append((key, d))
                return d
            return super().get(key)

        def dataReceived(self, data):
            super().dataReceived(data)
            if not self.pending and self.queued:
                key, d = self.queued.popleft()
                super().get(key).chainDeferred(d)

    report = check("07.3", LockStep)
    assert report.failed == {
        "five gets pipelined; values and KeyError matched in order, from pieces",
        "losing the connection fails every pending get",
    }
    assert "write each request at once" in repr(report)
    assert "it received 1" in repr(report)


def test_forgetting_pending_requests_on_loss_fails(short_timeout):
    class Forgetful(KeyValueClient):
        def connectionLost(self, reason):
            self.lost = reason.getErrorMessage()  # wrong: pending Deferreds never fire

    report = check("07.3", Forgetful)
    assert report.failed == {"losing the connection fails every pending get"}
    assert "3 of 3 Deferreds had not fired" in repr(report)


def test_late_request_left_waiting_fails():
    class NoLateFailure(KeyValueClient):
        def get(self, key):
            if self.lost is not None:
                return Deferred()  # wrong: never fires
            return super().get(key)

    report = check("07.3", NoLateFailure)
    assert report.failed == {"a get after the loss fails at once"}
    assert "returned a Deferred that had not fired" in repr(report)
