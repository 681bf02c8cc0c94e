"""Chapter 12 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake."""

import hashlib

import pytest
from twisted.internet.defer import succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.protocols.basic import FileSender
from zope.interface import implementer

from helpers import check, servers
from helpers.exercises import ch12
from solutions.ch12 import Numbers, _Slices, send_file, send_slices


@pytest.fixture
def short_timeout(monkeypatch):
    """Transfers that stall are given up on after 0.3 s (2 s in the notebook)."""
    monkeypatch.setattr(ch12, "TIMEOUT", 0.3)


def sending_with(producer_class, streaming=False):
    """An answer to 12.2 like the solution's send_slices, with another producer class."""

    def answer(transport, data, size):
        producer = producer_class(transport, data, size)
        transport.registerProducer(producer, streaming)
        return producer.done

    return answer


def test_stubs_fail_every_check():
    @implementer(IPushProducer)
    class StubNumbers(Protocol):
        def connectionMade(self):
            raise NotImplementedError("your code here")

    def stub(*args):
        raise NotImplementedError("your code here")

    for exercise_id, answer in [("12.1", StubNumbers), ("12.2", stub), ("12.3", stub)]:
        report = check(exercise_id, answer)
        assert not any(r.passed for r in report.results), repr(report)
        assert all(r.error == "NotImplementedError: your code here" for r in report.results), (
            repr(report)
        )
    assert repr(servers()) == "No servers running."


def test_buffered_counts_what_waits():
    from twisted.internet.testing import StringTransport

    class Fields:  # the FileDescriptor fields that buffered() reads
        dataBuffer, offset, _tempDataLen = b"x" * 100, 30, 50

    assert ch12.buffered(Fields()) == 120
    assert not hasattr(StringTransport(), "_tempDataLen")  # so it is TCP-only


# -- 12.1 -------------------------------------------------------------------


class AllAtOnce(Protocol):
    """Wrong: no producer, every line written in connectionMade."""

    def connectionMade(self):
        for n in range(1, self.factory.count + 1):
            self.transport.write(b"%d\n" % n)
        self.transport.loseConnection()


def test_writing_everything_at_once_fails():
    report = check("12.1", AllAtOnce)
    assert report.failed == {
        "registers itself as a push producer",
        "never more than bufferSize + one line waiting",
    }
    assert "never called self.transport.registerProducer" in repr(report)


def test_ignoring_pause_fails():
    class Deaf(Numbers):
        def pauseProducing(self):
            pass  # wrong: keeps writing

    report = check("12.1", Deaf)
    assert report.failed == {
        "no write while paused",
        "never more than bufferSize + one line waiting",
    }


def test_registering_as_pull_fails():
    class Pull(Numbers):
        def connectionMade(self):
            self.number, self.paused, self.stopped = 0, False, False
            self.transport.registerProducer(self, False)  # wrong: pull; calls resumeProducing

    report = check("12.1", Pull)
    assert "registers itself as a push producer" in report.failed
    assert "never more than bufferSize + one line waiting" in report.failed
    assert "registerProducer(self, False) registers a pull producer" in repr(report)


def test_never_resuming_stalls_and_fails_fast(short_timeout):
    class Stalls(Numbers):
        def connectionMade(self):
            super().connectionMade()
            self.resumeProducing = lambda: None  # wrong: the transport's resume does nothing

    report = check("12.1", Stalls)
    assert report.failed == {"all 20000 lines arrive in order, then the connection closes"}
    assert "the connection was still open" in repr(report)


# -- 12.2 -------------------------------------------------------------------


def test_one_big_write_fails():
    class OneSlice(_Slices):
        def __init__(self, consumer, data, size):
            super().__init__(consumer, data, len(data))  # wrong: everything in one write

    report = check("12.2", sending_with(OneSlice))
    assert report.failed == {"a pull producer: one slice waiting at a time"}
    assert "up to 200000 bytes waited" in repr(report)


def test_forgetting_unregister_fails(short_timeout):
    class Forgetful(_Slices):
        def resumeProducing(self):
            if not self.done.called and self.position >= len(self.data):
                self.done.callback(len(self.data))  # wrong: still registered
                return
            super().resumeProducing()

    report = check("12.2", sending_with(Forgetful))
    assert report.failed == {"the data arrives whole, and the connection can close"}
    assert "unregisterProducer() before firing" in repr(report)


def test_registering_as_push_fails(short_timeout):
    report = check("12.2", sending_with(_Slices, streaming=True))  # wrong: never asked for a chunk
    assert {
        "the Deferred fires with len(data)",
        "the data arrives whole, and the connection can close",
        "a pull producer: one slice waiting at a time",
    } <= report.failed


def test_ignoring_stop_fails():
    class Deaf(_Slices):
        def stopProducing(self):
            pass  # wrong: the Deferred never fires

    report = check("12.2", sending_with(Deaf))
    assert report.failed == {"a lost connection fails the Deferred"}


def test_not_returning_a_deferred_fails():
    def answer(transport, data, size):
        send_slices(transport, data, size)  # wrong: the Deferred is not returned

    report = check("12.2", answer)
    assert not any(r.passed for r in report.results)
    assert "returned NoneType, expected a Deferred" in repr(report)


# -- 12.3 -------------------------------------------------------------------


def test_digest_of_the_wrong_thing_fails():
    def answer(path, transport):
        file = open(path, "rb")  # noqa: SIM115
        d = FileSender().beginFileTransfer(file, transport)
        d.addBoth(lambda result: (file.close(), result)[1])
        return d  # wrong: fires with the last byte sent

    report = check("12.3", answer)
    assert report.failed == {"the Deferred fires with the SHA-256 hex digest of the file"}, (
        repr(report)
    )
    assert "expected the file's SHA-256 hex digest" in repr(report)


def test_whole_file_in_one_write_fails():
    def answer(path, transport):
        data = path.read_bytes()
        transport.write(data)  # wrong: the whole file waits in memory
        return succeed(hashlib.sha256(data).hexdigest())

    report = check("12.3", answer)
    assert report.failed == {"sent in chunks by FileSender, not all at once"}


def test_solution_closes_its_file(tmp_path):
    """send_file closes the file when the transfer ends (checked without a network)."""
    from twisted.internet.testing import StringTransport

    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 10_000)
    transport = StringTransport()
    d = send_file(path, transport)
    producer = transport.producer
    while transport.producer is not None:
        producer.resumeProducing()
    assert transport.value() == path.read_bytes()
    assert d.result == hashlib.sha256(path.read_bytes()).hexdigest()
    assert producer.file is None  # FileSender let go of it, after send_file closed it
