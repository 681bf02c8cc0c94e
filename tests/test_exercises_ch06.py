"""Chapter 06 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake."""

import itertools

import pytest
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from helpers import check, servers
from solutions.ch06 import LineCount, Member, Roster, Shout

# -- the notebook's stubs ---------------------------------------------------------


class StubShout(Protocol):
    def dataReceived(self, data):
        raise NotImplementedError("your code here")


class StubMember(Protocol):
    def connectionMade(self):
        raise NotImplementedError("your code here")


class StubRoster(Factory):
    protocol = StubMember


class StubLineCount(Protocol):
    def dataReceived(self, data):
        raise NotImplementedError("your code here")


@pytest.mark.parametrize(
    ("exercise_id", "stub", "where"),
    [
        ("06.1", StubShout, "StubShout.dataReceived"),
        ("06.2", StubRoster, "StubMember.connectionMade"),
        ("06.3", StubLineCount, "StubLineCount.dataReceived"),
    ],
)
def test_stub_fails_every_check_naming_the_method_that_raised(exercise_id, stub, where):
    report = check(exercise_id, stub)
    assert not any(r.passed for r in report.results), repr(report)
    for result in report.results:
        if result.check.name == "empty input gives b'0 0\\n'":  # dataReceived never runs
            assert "IHalfCloseableProtocol" in result.error, repr(report)
        else:
            assert result.error == f"{where} raised NotImplementedError: your code here"
    assert not servers()


# -- 06.1 -------------------------------------------------------------------------


class SharedShout(Shout):
    """Wrong: one bytearray in the class body, shared by every connection."""

    received = bytearray()

    def connectionMade(self):
        pass


class DecodingShout(Shout):
    """Wrong: decodes each chunk, which fails when a chunk ends inside a character."""

    def dataReceived(self, data):
        self.received += data
        self.transport.write(data.decode("utf-8").upper().encode("utf-8"))


class LossyShout(Shout):
    """Wrong: decodes with errors='ignore', which drops the halves of a character."""

    def dataReceived(self, data):
        self.received += data
        self.transport.write(data.decode("utf-8", "ignore").upper().encode("utf-8"))


def test_shared_received_fails_the_per_connection_check():
    SharedShout.received.clear()
    report = check("06.1", SharedShout)
    assert report.failed == {"self.received holds what its own connection received"}
    assert "one object shared by both connections" in repr(report)


def test_decoding_each_chunk_fails_the_split_character_check():
    report = check("06.1", DecodingShout)
    assert "non-ASCII bytes unchanged, even when a chunk ends inside a character" in report.failed
    assert "DecodingShout.dataReceived raised UnicodeDecodeError" in repr(report)


def test_ignoring_decode_errors_fails_the_split_character_check():
    report = check("06.1", LossyShout)
    assert "non-ASCII bytes unchanged, even when a chunk ends inside a character" in report.failed


# -- 06.2 -------------------------------------------------------------------------


class ArticleMember(Protocol):
    """Wrong, like the article's section 2.2.1: the count of open connections as a number."""

    def connectionMade(self):
        self.factory.numProtocols += 1
        self.number = self.factory.numProtocols
        self.factory.live.add(self)
        self.transport.write(b"you are %d\n" % self.number)

    dataReceived = Member.dataReceived

    def connectionLost(self, reason):
        self.factory.numProtocols -= 1
        self.factory.live.discard(self)


class ArticleRoster(Factory):
    protocol = ArticleMember

    def __init__(self):
        self.numProtocols = 0
        self.live = set()


class ClassLevelRoster(Factory):
    """Wrong: the counter and the set in the class body, shared by every Roster()."""

    protocol = Member
    numbers = itertools.count(1)
    live = set()


class NoFactoryRoster(Roster):
    """Wrong, like the article's EchoFactory: buildProtocol does not set p.factory."""

    def buildProtocol(self, addr):
        return Member()


class ForgetfulMember(Member):
    """Wrong: never removes a member that left."""

    def connectionLost(self, reason):
        pass


class ForgetfulRoster(Roster):
    protocol = ForgetfulMember


def test_count_as_number_fails_never_reuses():
    report = check("06.2", ArticleRoster)
    assert report.failed == {
        "never reuses a number",
        "lists the clients connected right now, in increasing order",
    }
    assert "got b'you are 3\\n', expected b'you are 4\\n'" in repr(report)


def test_class_level_state_fails_separate_factories():
    report = check("06.2", ClassLevelRoster)
    assert "two Roster() instances keep separate rosters" in report.failed


def test_missing_factory_fails_with_the_attribute_error():
    report = check("06.2", NoFactoryRoster)
    assert not any(r.passed for r in report.results)
    assert (
        "Member.connectionMade raised AttributeError: 'NoneType' object has no attribute"
        " 'numbers'" in repr(report)
    )


def test_forgetting_departures_fails_the_list():
    report = check("06.2", ForgetfulRoster)
    assert report.failed == {"lists the clients connected right now, in increasing order"}


# -- 06.3 -------------------------------------------------------------------------


class NotHalfCloseable(Protocol):
    """Wrong: no IHalfCloseableProtocol, so it only learns of the EOF in connectionLost."""

    connectionMade = LineCount.connectionMade
    dataReceived = LineCount.dataReceived

    def connectionLost(self, reason):
        self.transport.write(b"%d %d\n" % (self.lines, self.size))  # too late


class LastChunkOnly(LineCount):
    """Wrong: assumes one dataReceived holds all the input."""

    def dataReceived(self, data):
        self.lines, self.size = data.count(b"\n"), len(data)


@implementer(IHalfCloseableProtocol)
class NeverCloses(LineCount):
    """Wrong: replies, but leaves the connection open."""

    def readConnectionLost(self):
        self.transport.write(b"%d %d\n" % (self.lines, self.size))


def test_without_half_close_there_is_no_reply():
    report = check("06.3", NotHalfCloseable)
    assert "replies after the client's EOF, then closes" in report.failed
    assert "IHalfCloseableProtocol" in repr(report)


def test_last_chunk_only_fails_many_chunks():
    report = check("06.3", LastChunkOnly)
    assert report.failed == {"counts input that arrives in many chunks"}


def test_never_closing_fails():
    report = check("06.3", NeverCloses)
    assert "replies after the client's EOF, then closes" in report.failed
    assert "then nothing for 2 s; expected a reply, then the server closing" in repr(report)
