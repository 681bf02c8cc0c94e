"""Chapter 12 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import hashlib

import pytest
from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.protocols.basic import FileSender
from zope.interface import implementer

from helpers import check, servers
from helpers.exercises import ch12
from helpers.notebook_code import load
from solutions.ch12 import SOLUTIONS, Numbers, _Slices, send_file


@pytest.fixture
def short_timeout(monkeypatch):
    """A transfer in which nothing happens for 0.3 s is given up on (2 s in the notebook)."""
    monkeypatch.setattr(ch12, "TIMEOUT", 0.3)


def test_the_stub_is_not_attempted_and_shows_no_hint():
    @implementer(IPushProducer)
    class StubNumbers(Protocol):
        def connectionMade(self):
            raise NotImplementedError("your code here")

    def stub(*args):
        raise NotImplementedError("your code here")

    for exercise_id, answer in [("12.1", StubNumbers), ("12.2", stub), ("12.3", stub)]:
        report = check(exercise_id, answer)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)
    assert set(SOLUTIONS) == {"12.1", "12.2", "12.3"}
    assert repr(servers()) == "No servers running."


def test_the_checker_measures_with_the_chapters_buffered():
    """buffered() comes from the notebook's `# module: flow_control` cell, not a copy."""
    from twisted.internet.testing import StringTransport

    class Fields:  # the FileDescriptor fields that buffered() reads
        dataBuffer, offset, _tempDataLen = b"x" * 100, 30, 50

    buffered = load(ch12.NOTEBOOK, "flow_control").buffered
    assert buffered(Fields()) == 120
    assert not hasattr(StringTransport(), "_tempDataLen")  # so the checks use real TCP
    assert not hasattr(ch12, "buffered")


def test_the_count_makes_the_last_write_pause_a_producer():
    """12.1's count ends a batch: a producer that writes until paused is paused by its
    last line, so forgetting unregisterProducer() hangs the close."""
    waiting = sum(len(b"%d\n" % n) for n in range(12_775, ch12.COUNT + 1))
    assert ch12.COUNT == 23_697
    assert waiting > ch12.BUFFER_SIZE >= waiting - len(b"%d\n" % ch12.COUNT)


# -- 12.1 -------------------------------------------------------------------


def test_writing_everything_at_once_without_a_producer_fails():
    class AllAtOnce(Protocol):
        def connectionMade(self):
            for n in range(1, self.factory.count + 1):
                self.transport.write(b"%d\n" % n)
            self.transport.loseConnection()

    report = check("12.1", AllAtOnce)
    assert report.failed == {"registers-push"}
    assert report.message("registers-push") == (
        "your protocol never called registerProducer() on the transport")


def test_ignoring_pause_fails():
    class Deaf(Numbers):
        def pauseProducing(self):
            pass  # wrong: keeps writing

    report = check("12.1", Deaf)
    assert report.failed == {"not-while-paused"}
    assert report.message("not-while-paused").startswith(
        "10,923 of 23,697 write() calls came while the producer was paused")


def test_a_loop_that_never_looks_at_the_pause_fails():
    class Loop(Numbers):
        def resumeProducing(self):
            while self.number < self.factory.count and not self.stopped:  # wrong: no pause
                self.number += 1
                self.transport.write(b"%d\n" % self.number)
            if self.number == self.factory.count and not self.stopped:
                self.stopped = True
                self.transport.unregisterProducer()
                self.transport.loseConnection()

    assert check("12.1", Loop).failed == {"not-while-paused"}


def test_registering_as_pull_fails():
    class Pull(Numbers):
        def connectionMade(self):
            self.number, self.paused, self.stopped = 0, False, False
            self.transport.registerProducer(self, False)  # wrong: pull

    report = check("12.1", Pull)
    assert report.failed == {"registers-push"}
    assert report.message("registers-push") == (
        "registerProducer(self, False) registers a pull producer, which the transport never"
        " pauses: up to 131,076 bytes waited in the transport")


def test_writing_before_registering_fails():
    class WritesFirst(Numbers):
        def connectionMade(self):
            self.number, self.paused, self.stopped = 0, False, False
            self.resumeProducing()  # wrong: no producer is registered yet, nothing pauses it
            self.transport.registerProducer(self, True)

    report = check("12.1", WritesFirst)
    assert report.failed == {"registers-push"}
    assert report.message("registers-push") == (
        "23,697 write() calls (131,076 bytes) came before registerProducer(): the transport"
        " had no producer to pause then, and up to 131,076 bytes waited in it")


def test_waiting_to_be_resumed_at_the_start_fails(short_timeout):
    class WaitsToStart(Numbers):
        def connectionMade(self):
            self.number, self.paused, self.stopped = 0, False, False
            self.transport.registerProducer(self, True)  # wrong: nothing starts it

    report = check("12.1", WaitsToStart)
    assert report.failed == {"all-lines", "unregisters-and-closes"}
    assert report.message("all-lines") == (
        "0 of 131,076 bytes arrived; nothing more happened for 0.3 s (the transport had paused"
        " your producer 0 times and resumed it 0 times); your producer was not paused, yet it"
        " never wrote (the transport resumes only a producer that it has paused)")


def test_stopping_one_line_short_names_the_close():
    class OneShort(Numbers):
        def resumeProducing(self):
            self.paused = False
            count = self.factory.count - 1  # wrong: range(1, count) stops before count
            while not (self.paused or self.stopped) and self.number < count:
                self.number += 1
                self.transport.write(b"%d\n" % self.number)
            if self.number == count and not self.stopped:
                self.stopped = True
                self.transport.unregisterProducer()
                self.transport.loseConnection()

    report = check("12.1", OneShort)
    assert report.failed == {"all-lines", "unregisters-and-closes"}
    assert report.message("all-lines") == (
        "131,070 of 131,076 bytes arrived (the last line: b'23696'), then the connection was"
        " closed; the count was 23,697")


def test_a_count_kept_outside_the_protocol_fails():
    sent = {"number": 0}  # wrong: one count for every connection

    class Global(Numbers):
        def resumeProducing(self):
            self.number = sent["number"]
            super().resumeProducing()
            sent["number"] = self.number

    report = check("12.1", Global)
    assert report.failed == {"each-connection"}
    assert report.message("each-connection") == (
        "a second connection, after the first one, received b'23698\\n23699\\n2370' first;"
        " expected b'1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\\n': each connection starts from line 1")


def test_registering_the_transport_fails():
    class Transport(Numbers):
        def connectionMade(self):
            self.number, self.paused, self.stopped = 0, False, False
            self.transport.registerProducer(self.transport, True)  # wrong: not the producer
            self.resumeProducing()

    report = check("12.1", Transport)
    assert "registers-push" in report.failed
    assert report.message("registers-push") == (
        "registerProducer() was given the transport, not the protocol itself")


def test_never_resuming_stalls_and_fails(short_timeout):
    class Stalls(Numbers):
        def resumeProducing(self):
            if self.number == 0:  # wrong: only the first call writes
                super().resumeProducing()

    report = check("12.1", Stalls)
    assert report.failed == {"all-lines", "unregisters-and-closes"}
    assert report.message("all-lines") == (
        "65,538 of 131,076 bytes arrived; nothing more happened for 0.3 s (the transport had"
        " paused your producer 1 times and resumed it 1 times); your producer was not paused,"
        " yet it wrote nothing more (the transport resumes only a producer that it has"
        " paused)")


def test_starting_at_zero_fails():
    class FromZero(Numbers):
        def connectionMade(self):
            super().connectionMade()

        def resumeProducing(self):
            self.paused = False
            while not (self.paused or self.stopped) and self.number < self.factory.count:
                self.transport.write(b"%d\n" % self.number)  # wrong: 0 .. count - 1
                self.number += 1
            if self.number == self.factory.count and not self.stopped:
                self.stopped = True
                self.transport.unregisterProducer()
                self.transport.loseConnection()

    report = check("12.1", FromZero)
    assert report.failed == {"all-lines", "unregisters-and-closes"}
    assert report.message("all-lines").startswith(
        "131,072 bytes arrived, 131,076 expected; from byte 0 on got b'0\\n1\\n2\\n3\\n")


def test_lines_in_batches_fail():
    class Batches(Numbers):
        def resumeProducing(self):
            self.paused = False
            count = self.factory.count
            while not (self.paused or self.stopped) and self.number < count:
                last = min(self.number + 10, count)  # wrong: ten lines per write()
                self.transport.write(b"".join(b"%d\n" % n for n in range(self.number + 1,
                                                                        last + 1)))
                self.number = last
            if self.number == count and not self.stopped:
                self.stopped = True
                self.transport.unregisterProducer()
                self.transport.loseConnection()

    report = check("12.1", Batches)
    assert report.failed == {"one-per-write"}
    assert report.message("one-per-write") == (
        "write() call 1 carried b'1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\\n9\\n10\\n': not one line")


def test_never_unregistering_hangs_the_close_and_fails(short_timeout):
    """The issue's 12.1 mistake: the last write pauses the producer, and loseConnection()
    without unregisterProducer() then waits for ever."""

    class Forgetful(Numbers):
        def resumeProducing(self):
            self.paused = False
            count = self.factory.count
            while not (self.paused or self.stopped) and self.number < count:
                self.number += 1
                self.transport.write(b"%d\n" % self.number)
            if self.number == count and not self.stopped:
                self.stopped = True
                self.transport.loseConnection()  # wrong: still registered

    report = check("12.1", Forgetful)
    assert report.failed == {"unregisters-and-closes"}
    assert report.message("unregisters-and-closes") == (
        "after the last line, loseConnection() was called with the producer still"
        " registered (no unregisterProducer()) and paused: the connection stayed open, and"
        " nothing more happened for 0.3 s, the transport waiting for its producer")


@implementer(IPushProducer)
class OneLinePerTurn(Protocol):
    """Like the chapter's PoliteFirehose: one line per reactor turn while not paused."""

    def connectionMade(self):
        self.number, self.paused, self.stopped, self.next = 0, False, False, None
        self.transport.registerProducer(self, True)
        self.next = reactor.callLater(0, self.produce)

    def produce(self):
        self.next = None
        self.number += 1
        self.transport.write(b"%d\n" % self.number)
        if self.number == self.factory.count:
            self.finish()
        elif not self.paused:
            self.next = reactor.callLater(0, self.produce)

    def finish(self):
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        if self.next is None and self.number < self.factory.count and not self.stopped:
            self.next = reactor.callLater(0, self.produce)

    def stopProducing(self):
        self.paused = self.stopped = True
        if self.next is not None:
            self.next.cancel()
            self.next = None


def test_one_line_per_reactor_turn_passes():
    report = check("12.1", OneLinePerTurn)
    assert report.passed, repr(report)


def test_never_unregistering_fails_even_when_the_close_happens_to_work():
    class Forgetful(OneLinePerTurn):
        def finish(self):
            self.transport.loseConnection()  # wrong: still registered

    report = check("12.1", Forgetful)
    assert report.failed == {"unregisters-and-closes"}
    assert report.message("unregisters-and-closes").startswith(
        "after the last line, loseConnection() was called with the producer still"
        " registered (no unregisterProducer())")


def test_ignoring_stop_with_a_timer_fails():
    class Deaf(OneLinePerTurn):
        def stopProducing(self):
            pass  # wrong: the next turn writes again, and so on

    report = check("12.1", Deaf)
    assert report.failed == {"stops"}
    assert report.message("stops").startswith(
        "the client aborted the connection; after stopProducing() your producer still"
        " called write()")


@pytest.mark.parametrize("stop", [lambda self: None, Numbers.pauseProducing],
                         ids=["does-nothing", "only-pauses"])
def test_a_stop_that_a_later_resume_undoes_fails(stop):
    class Forgets(Numbers):
        stopProducing = stop  # wrong: resumeProducing() starts it again

    report = check("12.1", Forgets)
    assert report.failed == {"stops"}
    assert report.message("stops").startswith(
        "after stopProducing(), a later resumeProducing() call made your producer call"
        " write()")


def test_a_producer_method_that_raises_is_named_in_every_check():
    class Typo(Numbers):
        def pauseProducing(self):
            self.pasued = True
            raise AttributeError("'Typo' object has no attribute 'pause'")

    report = check("12.1", Typo)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("all-lines") == (
        "the producer's pauseProducing() raised AttributeError: 'Typo' object has no"
        " attribute 'pause'")


# -- 12.2 -------------------------------------------------------------------


def sending_with(producer_class, streaming=False):
    """An answer to 12.2 like the solution's send_slices, with another producer class."""

    def answer(transport, data, size):
        producer = producer_class(transport, data, size)
        transport.registerProducer(producer, streaming)
        return producer.done

    return answer


def test_one_big_slice_fails():
    class OneSlice(_Slices):
        def __init__(self, consumer, data, size):
            super().__init__(consumer, data, len(data))  # wrong: everything in one write

    report = check("12.2", sending_with(OneSlice))
    assert report.failed == {"slices"}
    assert report.message("slices") == (
        "one resumeProducing() call wrote 200,000 bytes (by write() call 1); at most 4,096"
        " were allowed (size=4096)")


def test_a_fixed_slice_size_fails():
    class Fixed(_Slices):
        def __init__(self, consumer, data, size):
            super().__init__(consumer, data, 4096)  # wrong: size is the caller's

    report = check("12.2", sending_with(Fixed))
    assert report.failed == {"slices"}
    assert report.message("slices") == (
        "sending 10,500 bytes with size=1000: one resumeProducing() call wrote 4,096 bytes (by"
        " write() call 1); at most 1,000 were allowed")


def test_writing_everything_before_registering_fails():
    def answer(transport, data, size):
        transport.write(data)  # wrong: all at once, outside the producer
        producer = _Slices(transport, b"", size)
        transport.registerProducer(producer, False)
        producer.done.addCallback(lambda _: len(data))
        return producer.done

    report = check("12.2", answer)
    assert report.failed == {"slices", "fails-when-lost"}
    assert report.message("slices") == (
        "write() call 1 (200,000 bytes) came outside any resumeProducing() call of the"
        " transport (size=4096)")


def test_slices_written_from_one_resume_call_fail():
    class Loop(_Slices):
        def resumeProducing(self):
            while not self.done.called:  # wrong: every slice in one call
                super().resumeProducing()

    report = check("12.2", sending_with(Loop))
    assert report.failed == {"slices", "fails-when-lost"}
    assert report.message("slices").startswith(
        "one resumeProducing() call wrote 8,192 bytes (by write() call 2)")


def test_forgetting_unregister_fails(short_timeout):
    class Forgetful(_Slices):
        def resumeProducing(self):
            if not self.done.called and self.position >= len(self.data):
                self.done.callback(len(self.data))  # wrong: still registered
                return
            super().resumeProducing()

    report = check("12.2", sending_with(Forgetful))
    assert report.failed == {"arrives", "fires"}
    assert report.message("arrives") == (
        "your Deferred fired and the checker called loseConnection(), but the connection"
        " stayed open (nothing more happened for 0.3 s): the producer was still registered"
        " (no unregisterProducer())")
    assert report.message("fires") == (
        "your Deferred fired while the producer was still registered (no"
        " unregisterProducer())")


def test_firing_before_unregistering_fails():
    class Early(_Slices):
        def resumeProducing(self):
            if not self.done.called and self.position >= len(self.data):
                self.done.callback(len(self.data))  # wrong: fired first
                self.consumer.unregisterProducer()
                return
            super().resumeProducing()

    report = check("12.2", sending_with(Early))
    assert report.failed == {"fires"}
    assert report.message("fires") == (
        "your Deferred fired while the producer was still registered"
        " (unregisterProducer() came after it)")


def test_closing_the_connection_itself_fails():
    class Closes(_Slices):
        def resumeProducing(self):
            if not self.done.called and self.position >= len(self.data):
                self.consumer.unregisterProducer()
                self.consumer.loseConnection()  # wrong: the checker closes it
                self.done.callback(len(self.data))
                return
            super().resumeProducing()

    report = check("12.2", sending_with(Closes))
    assert report.failed == {"arrives"}
    assert report.message("arrives") == (
        "your code called loseConnection() itself; the checker closes the connection when"
        " your Deferred has fired")


def test_firing_with_the_position_fails():
    class Position(_Slices):
        def resumeProducing(self):
            if not self.done.called and self.position >= len(self.data):
                self.consumer.unregisterProducer()
                self.done.callback(self.position)  # wrong: 49 slices of 4096 = 200,704
                return
            super().resumeProducing()

    report = check("12.2", sending_with(Position))
    assert report.failed == {"fires"}
    assert report.message("fires") == (
        "your Deferred fired with 200704, expected 200,000 (len(data))")


def test_dropping_the_short_last_slice_fails():
    class Whole(_Slices):
        def resumeProducing(self):
            if not self.done.called and self.position + self.size > len(self.data):
                self.consumer.unregisterProducer()  # wrong: the last, short slice is lost
                self.done.callback(len(self.data))
                return
            super().resumeProducing()

    report = check("12.2", sending_with(Whole))
    assert report.failed == {"arrives", "fires"}
    assert report.message("arrives") == (
        "196,608 bytes arrived, 200,000 expected; from byte 196,608 on got b'', expected"
        f" {ch12.show(ch12.DATA[196_608:196_620])}")
    assert report.message("fires") == (
        "your Deferred fired when 196,608 of 200,000 bytes had been written")


def test_registering_as_push_fails(short_timeout):
    report = check("12.2", sending_with(_Slices, streaming=True))  # wrong: never asked
    assert report.failed == {"pull", "slices", "arrives", "fires"}
    assert report.message("pull") == (
        "registerProducer(producer, True) registers a push producer, which the transport"
        " does not ask for data: 0 write() calls came, 0 bytes arrived")


def test_ignoring_stop_fails():
    class Deaf(_Slices):
        def stopProducing(self):
            pass  # wrong: the Deferred never fires

    report = check("12.2", sending_with(Deaf))
    assert report.failed == {"fails-when-lost"}
    assert report.message("fails-when-lost") == (
        "the client aborted the connection after 16,384 bytes, and your Deferred never"
        " fired nor failed")


def test_errback_without_an_exception_fails_naming_it():
    class Bare(_Slices):
        def stopProducing(self):
            self.done.errback()  # wrong: there is no current exception

    report = check("12.2", sending_with(Bare))
    assert report.failed == {"fails-when-lost"}
    assert report.message("fails-when-lost").startswith(
        "the producer's stopProducing() raised NoCurrentExceptionError")


def test_not_returning_a_deferred_fails():
    def answer(transport, data, size):
        sending_with(_Slices)(transport, data, size)  # wrong: the Deferred is dropped

    report = check("12.2", answer)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("pull").startswith(
        "send_slices returned None (NoneType), expected a Deferred")


# -- 12.3 -------------------------------------------------------------------


def with_file(make_deferred):
    """An answer to 12.3 that opens the file, closes it when FileSender's Deferred has an
    outcome, and returns what make_deferred(file, transport) returns."""

    def answer(path, transport):
        file = open(path, "rb")  # noqa: SIM115
        d = make_deferred(file, transport)
        d.addBoth(lambda result: (file.close(), result)[1])
        return d

    return answer


def test_digest_of_the_wrong_thing_fails():
    answer = with_file(lambda f, t: FileSender().beginFileTransfer(f, t))  # the last byte

    report = check("12.3", answer)
    assert report.failed == {"digest"}
    assert report.message("digest").startswith("your Deferred fired with b'")
    assert "expected the SHA-256 hex digest of the bytes sent" in report.message("digest")


def test_digest_of_the_file_read_again_fails():
    def answer(path, transport):
        d = with_file(lambda f, t: FileSender().beginFileTransfer(f, t))(path, transport)
        return d.addCallback(lambda _: hashlib.sha256(path.read_bytes()).hexdigest())  # wrong

    report = check("12.3", answer)
    assert report.failed == {"digest"}
    assert report.message("digest") == (
        "your Deferred fired with the SHA-256 of the file as it was after the transfer; the"
        " checker changed the file while it was being sent, so the bytes sent have another"
        " digest")


def test_digest_of_the_file_read_first_fails():
    def answer(path, transport):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()  # wrong: a second read
        d = with_file(lambda f, t: FileSender().beginFileTransfer(f, t))(path, transport)
        return d.addCallback(lambda _: digest)

    report = check("12.3", answer)
    assert report.failed == {"digest"}
    assert "the file as it was before the transfer" in report.message("digest")


def test_a_hash_shared_between_calls_fails():
    sha = hashlib.sha256()  # wrong: made once, fed by every call of send_file

    def answer(path, transport):
        d = with_file(lambda f, t: FileSender().beginFileTransfer(
            f, t, lambda chunk: (sha.update(chunk), chunk)[1]))(path, transport)
        return d.addCallback(lambda _: sha.hexdigest())

    report = check("12.3", answer)
    assert report.failed == {"digest"}
    assert report.message("digest") == (
        "the checker sent the file a second time: your Deferred fired with the SHA-256 of the"
        " bytes of both transfers; the hash outlived the first call")


def test_raw_digest_fails():
    def answer(path, transport):
        sha = hashlib.sha256()
        d = with_file(lambda f, t: FileSender().beginFileTransfer(
            f, t, lambda chunk: (sha.update(chunk), chunk)[1]))(path, transport)
        return d.addCallback(lambda _: sha.digest())  # wrong: bytes, not hex

    report = check("12.3", answer)
    assert report.failed == {"digest"}
    assert "the raw digest (bytes); expected its hex string" in report.message("digest")


def test_whole_file_in_one_write_fails():
    def answer(path, transport):
        data = path.read_bytes()
        transport.write(data)  # wrong: the whole file waits in memory
        return succeed(hashlib.sha256(data).hexdigest())

    report = check("12.3", answer)
    assert report.failed == {"arrives", "chunks", "digest", "fails-when-lost"}
    assert report.message("arrives") == (
        "the client received the file as it was before the checker changed it, during the"
        " transfer: your code read the whole file before sending it")
    assert report.message("chunks") == "no producer was registered with the transport"


def digest_answer(close):
    """An answer to 12.3 whose digest is right; close(file, d) handles the file."""

    def answer(path, transport):
        sha, file = hashlib.sha256(), open(path, "rb")  # noqa: SIM115
        d = FileSender().beginFileTransfer(file, transport,
                                           lambda chunk: (sha.update(chunk), chunk)[1])
        close(file, d)
        return d.addCallback(lambda _: sha.hexdigest())

    return answer


def test_never_closing_the_file_fails():
    """The issue's 12.3 mistake: CPython closes the dropped file for you, with a
    ResourceWarning."""
    report = check("12.3", digest_answer(lambda file, d: None))  # wrong: never closed
    assert report.failed == {"closes-file"}
    assert report.message("closes-file") == (
        "after the transfer: it was never closed: Python closed it only when it collected"
        " the file object (ResourceWarning: unclosed file)")


def test_keeping_the_file_open_fails():
    kept = []
    report = check("12.3", digest_answer(lambda file, d: kept.append(file)))  # wrong
    assert report.failed == {"closes-file"}
    assert report.message("closes-file") == (
        "after the transfer: an open file object for it still existed")
    for file in kept:
        file.close()


def test_closing_only_on_success_fails():
    report = check("12.3", digest_answer(
        lambda file, d: d.addCallback(lambda r: (file.close(), r)[1])))  # wrong: not on failure
    assert report.failed == {"closes-file"}
    assert report.message("closes-file").startswith(
        "after the connection was lost mid-transfer: it was never closed")


def test_closing_the_file_at_once_fails():
    def answer(path, transport):
        sha = hashlib.sha256()
        with open(path, "rb") as file:  # wrong: closed as soon as send_file returns
            d = FileSender().beginFileTransfer(file, transport,
                                               lambda chunk: (sha.update(chunk), chunk)[1])
        return d.addCallback(lambda _: sha.hexdigest())

    report = check("12.3", answer)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("arrives") == (
        "the producer's resumeProducing() raised ValueError: read of closed file")


def test_a_transform_that_returns_nothing_fails_naming_the_error():
    def answer(path, transport):
        sha = hashlib.sha256()
        d = with_file(lambda f, t: FileSender().beginFileTransfer(f, t, sha.update))(
            path, transport)  # wrong: update() returns None, and None is written
        return d.addCallback(lambda _: sha.hexdigest())

    report = check("12.3", answer)
    assert report.failed == {r.check.key for r in report.results}
    assert report.message("digest") == "write() was given None (NoneType), not bytes"


def test_swallowing_the_failure_fails():
    def answer(path, transport):
        sha = hashlib.sha256()
        d = with_file(lambda f, t: FileSender().beginFileTransfer(
            f, t, lambda chunk: (sha.update(chunk), chunk)[1]))(path, transport)
        return d.addBoth(lambda _: sha.hexdigest())  # wrong: a failure becomes a digest

    report = check("12.3", answer)
    assert report.failed == {"fails-when-lost"}
    assert report.message("fails-when-lost").startswith(
        "the client aborted the connection after 65,536 bytes, and your Deferred fired with")


def test_the_solution_closes_its_file_without_a_network(tmp_path):
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
