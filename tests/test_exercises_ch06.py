"""Chapter 06 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import codecs
import itertools

import pytest
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from helpers import check, servers
from helpers.exercises import ch06
from solutions.ch06 import LineCount, Member, Roster, Shout


@pytest.fixture
def short_timeout(monkeypatch):
    """Checks give up waiting for bytes after 0.3 s (1 s in the notebook)."""
    monkeypatch.setattr(ch06, "TIMEOUT", 0.3)


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
    def connectionMade(self):
        raise NotImplementedError("your code here")


@pytest.mark.parametrize(("exercise_id", "stub"), [
    ("06.1", StubShout), ("06.2", StubRoster), ("06.3", StubLineCount)])
def test_the_stub_is_not_attempted_and_shows_no_hint(exercise_id, stub):
    report = check(exercise_id, stub)
    assert not report.attempted, repr(report)
    assert "hint" not in repr(report)
    assert not servers()


# -- 06.1 -------------------------------------------------------------------------


def shout_with(upper):
    """A Shout whose echo is upper(data)."""

    class Answer(Shout):
        def dataReceived(self, data):
            self.received += data
            self.transport.write(upper(data))

    return Answer


def test_shared_received_fails_the_per_connection_check():
    class SharedShout(Shout):
        received = bytearray()  # one bytearray in the class body, for every connection

        def connectionMade(self):
            pass

    report = check("06.1", SharedShout)
    assert report.failed == {"received"}
    message = report.message("received")
    assert message.startswith("connection 1 received b'hello again', but its self.received"
                              " is b'Hello, Twisted 123!")  # what the earlier checks sent too
    assert message.endswith("otheragain' (80 bytes) (one object, shared by both connections)")


def test_latin1_decoding_changes_the_euro_sign(short_timeout):
    report = check("06.1", shout_with(lambda d: d.decode("latin-1").upper().encode("latin-1")))
    assert report.failed == {"other-bytes"}
    assert report.message("other-bytes") == (
        "sent b'Cr\\xc3\\xa8me br\\xc3\\xbbl\\xc3\\xa9e: 5 \\xe2\\x82\\xac\\n' as 4 chunks"
        " [b'Cr\\xc3', b'\\xa8me br\\xc3\\xbbl\\xc3\\xa9e: 5 \\xe2', b'\\x82', b'\\xac\\n'],"
        " cut inside è and twice inside €: expected"
        " b'CR\\xc3\\xa8ME BR\\xc3\\xbbL\\xc3\\xa9E: 5 \\xe2\\x82\\xac\\n',"
        " got b'CR\\xc3\\xa8ME BR\\xc3\\xbbL\\xc3\\xa9E: 5 \\xc2\\x82\\xac\\n'")


def test_utf8_decoding_each_chunk_fails_on_the_cut_character():
    class Decoding(Shout):
        def dataReceived(self, data):
            self.received += data
            self.transport.write(data.decode().upper().encode())

    report = check("06.1", Decoding)
    assert report.failed == {"other-bytes"}
    message = report.message("other-bytes")
    assert message.startswith(
        "the check was waiting for connection 1's dataReceived to be given 3 bytes in all"
        " (when your code raised an exception, the checker closed the server's connections"
        " and stopped there); ")
    assert message.endswith(
        "Twisted logged: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3 in position"
        " 2: unexpected end of data (raised in dataReceived)")


def test_decoding_with_errors_ignored_loses_bytes(short_timeout):
    report = check("06.1", shout_with(lambda d: d.decode(errors="ignore").upper().encode()))
    assert report.failed == {"other-bytes"}
    assert "then nothing more for 0.3 s" in report.message("other-bytes")


def test_an_incremental_decoder_with_str_upper_changes_accented_letters(short_timeout):
    class Decoded(Shout):
        def connectionMade(self):
            super().connectionMade()
            self.decoder = codecs.getincrementaldecoder("utf-8")()

        def dataReceived(self, data):
            self.received += data
            self.transport.write(self.decoder.decode(data).upper().encode())

    report = check("06.1", Decoded)
    assert report.failed == {"other-bytes"}
    assert "got b'CR\\xc3\\x88ME" in report.message("other-bytes")  # È, not è


def test_holding_back_a_cut_character_until_it_is_whole_fails(short_timeout):
    class HeldBack(Shout):
        """An incremental decoder and an ASCII-only upper: the right bytes, but late."""

        def connectionMade(self):
            super().connectionMade()
            self.decoder = codecs.getincrementaldecoder("utf-8")()

        def dataReceived(self, data):
            self.received += data
            text = self.decoder.decode(data)
            self.transport.write("".join(c.upper() if "a" <= c <= "z" else c
                                         for c in text).encode())

    report = check("06.1", HeldBack)
    assert report.failed == {"other-bytes"}
    assert report.message("other-bytes").endswith(
        "cut inside è and twice inside €: the echoes held the right bytes in the end, but"
        " chunk 1, b'Cr\\xc3', was not sent straight back: expected b'CR\\xc3', got b'CR',"
        " then nothing more for 0.3 s")


def test_hand_written_upper_with_an_off_by_one_bound_changes_a_brace():
    report = check("06.1", shout_with(
        lambda d: bytes(c - 32 if 97 <= c <= 123 else c for c in d)))  # 123 is "{"
    assert report.failed == {"upper"}
    assert report.message("upper") == (
        "sent b'{edges} `of` @[a-z]~': expected b'{EDGES} `OF` @[A-Z]~',"
        " got b'[EDGES} `OF` @[A-Z]~'")


def test_hand_written_upper_without_a_bound_changes_every_high_byte():
    report = check("06.1", shout_with(lambda d: bytes(c - 32 if c >= 97 else c for c in d)))
    assert report.failed == {"upper", "other-bytes"}


def test_echoing_everything_so_far_fails_every_check():
    class Accumulated(Shout):
        def dataReceived(self, data):
            self.received += data
            self.transport.write(bytes(self.received).upper())

    report = check("06.1", Accumulated)
    assert report.failed == {"upper", "other-bytes", "received"}
    assert report.message("upper") == (
        "sent b'{edges} `of` @[a-z]~': expected b'{EDGES} `OF` @[A-Z]~',"
        " got b'HELLO, TWISTED 123!\\n'")
    assert report.message("received") == "client 1 sent b'again': expected b'AGAIN', got b'HELLO'"


def test_received_replaced_instead_of_added_to_fails():
    class Replaced(Shout):
        def dataReceived(self, data):
            self.received = bytearray(data)
            self.transport.write(data.upper())

    report = check("06.1", Replaced)
    assert report.failed == {"received"}
    assert report.message("received") == (
        "connection 1 received b'hello again', but its self.received is b'again'")


def test_received_emptied_when_the_connection_closes_fails():
    class Tidy(Shout):
        def connectionLost(self, reason):
            self.received = b""  # "cleaning up": the checker reads it after the close

    report = check("06.1", Tidy)
    assert report.failed == {"received"}
    assert report.message("received") == (
        "connection 1 received b'hello again', but its self.received is b''")  # not "shared"


def test_received_kept_upper_cased_fails():
    class KeptUpper(Shout):
        def dataReceived(self, data):
            self.received += data.upper()
            self.transport.write(data.upper())

    report = check("06.1", KeptUpper)
    assert report.failed == {"received"}


def test_received_as_a_list_of_chunks_fails():
    class Chunks(Shout):
        def connectionMade(self):
            self.received = []

        def dataReceived(self, data):
            self.received.append(data)
            self.transport.write(data.upper())

    report = check("06.1", Chunks)
    assert report.failed == {"received"}
    assert report.message("received") == (
        "after connection 1 closed, its self.received is [b'hello ', b'again'], expected"
        " bytes or a bytearray")


def test_received_as_bytes_made_in_init_passes():
    class BytesInInit(Protocol):
        def __init__(self):
            self.received = b""

        def dataReceived(self, data):
            self.received += data
            self.transport.write(data.upper())

    assert check("06.1", BytesInInit).passed


# -- 06.2 -------------------------------------------------------------------------


class ArticleMember(Protocol):
    """The article's section 2.2.1: the count of open connections used as a number."""

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


def roster_of(member_class):
    class AnswerRoster(Roster):
        protocol = member_class

    return AnswerRoster


def test_the_count_of_open_connections_as_a_number_is_reused():
    report = check("06.2", ArticleRoster)
    assert report.failed == {"never-reuses", "lists"}
    assert report.message("never-reuses") == (
        "clients 1, 2, 3 connected, then 2 left: client 4 expected the greeting"
        " b'you are 4\\n', got b'you are 3\\n'")


def test_state_in_the_factory_class_body_is_shared_by_every_roster():
    class ClassLevelRoster(Factory):
        protocol = Member
        numbers = itertools.count(1)
        live = set()

    report = check("06.2", ClassLevelRoster)
    assert report.failed == {"never-reuses", "lists", "separate"}
    assert report.message("never-reuses") == (
        "a new Roster(): client 1 expected the greeting b'you are 1\\n', got b'you are 4\\n'")


def test_a_number_kept_on_each_protocol_is_always_one():
    class OwnCounter(Member):
        def connectionMade(self):
            self.count = getattr(self, "count", 0) + 1
            self.number = self.count
            self.factory.live.add(self)
            self.transport.write(b"you are %d\n" % self.number)

    report = check("06.2", roster_of(OwnCounter))
    assert report.failed == {"greets", "never-reuses", "lists", "separate"}
    assert report.message("greets") == (
        "a new Roster(): client 2 expected the greeting b'you are 2\\n', got b'you are 1\\n'")


def test_build_protocol_without_factory_fails_with_the_attribute_error():
    class NoFactoryRoster(Roster):
        def buildProtocol(self, addr):
            return Member()  # like the article's EchoFactory

    report = check("06.2", NoFactoryRoster)
    assert report.failed == {"greets", "never-reuses", "lists", "separate"}
    message = report.message("greets")  # it stopped as the client connected, or read
    assert "(when your code raised an exception, the checker closed the server's connections"\
        " and stopped there); Twisted logged: AttributeError: 'NoneType' object has no"\
        " attribute 'numbers' (raised in connectionMade)" in message


def test_forgetting_departures_fails_the_list():
    class Forgetful(Member):
        def connectionLost(self, reason):
            pass

    report = check("06.2", roster_of(Forgetful))
    assert report.failed == {"lists"}
    assert report.message("lists") == (
        "clients 1 to 3 came, 2 left, 4 came; then a client sent b'?': expected"
        " b'connected: 1 3 4\\n', got b'connected: 1 2 3 4\\n'")


def test_numbers_sorted_as_strings_fail_the_list():
    class AsStrings(Member):
        def dataReceived(self, data):
            numbers = sorted(str(member.number) for member in self.factory.live)
            self.transport.write(b"connected: %s\n" % " ".join(numbers).encode())

    report = check("06.2", roster_of(AsStrings))
    assert report.failed == {"lists"}
    assert report.message("lists") == (
        "clients 1 to 11 came, 1, 2 and 4 to 8 left; then a client sent b'list': expected"
        " b'connected: 3 9 10 11\\n', got b'connected: 10 11 3 9\\n'")


def test_answering_only_whole_lines_fails(short_timeout):
    class WholeLines(Member):
        def connectionMade(self):
            super().connectionMade()
            self.buffer = b""

        def dataReceived(self, data):
            self.buffer += data
            while b"\n" in self.buffer:
                _, self.buffer = self.buffer.split(b"\n", 1)
                super().dataReceived(b"")

    report = check("06.2", roster_of(WholeLines))
    assert report.failed == {"lists", "separate"}
    assert report.message("lists") == (
        "clients 1 to 3 came, 2 left, 4 came; then a client sent b'?': expected"
        " b'connected: 1 3 4\\n', got nothing, then nothing more for 0.3 s")


def test_answering_each_piece_of_a_split_fails_on_the_extra_line():
    class PerPiece(Member):
        def dataReceived(self, data):
            for _ in data.split(b"\n"):  # b"who is there?\n" gives two pieces
                super().dataReceived(data)

    report = check("06.2", roster_of(PerPiece))
    assert report.failed == {"lists"}
    assert report.message("lists") == (
        "clients 1 to 11 came, 1, 2 and 4 to 8 left; before a client sent b'list', it had"
        " already been sent b'connected: 3 4\\n', after the line that answered its greeting"
        " or its last data: expected one line for each, and nothing more")


# -- 06.3 -------------------------------------------------------------------------


class NotHalfCloseable(Protocol):
    """No IHalfCloseableProtocol: it learns of the end of input in connectionLost."""

    connectionMade = LineCount.connectionMade
    dataReceived = LineCount.dataReceived

    def connectionLost(self, reason):
        self.transport.write(b"%d %d\n" % (self.lines, self.size))  # too late: dropped


def test_without_half_close_there_is_no_reply():
    report = check("06.3", NotHalfCloseable)
    assert report.failed == {"reply", "closes", "chunks", "empty", "separate"}
    assert report.message("separate").endswith(
        "expected b'2 5\\n', got nothing, then the connection closed: Twisted closed the whole"
        " connection at the end of the client's input, before the protocol could reply")
    assert report.message("reply") == (
        "sent b'one\\ntwo\\n', then ended the input (shutdown SHUT_WR): expected the line"
        " b'2 8\\n' and nothing else, got nothing, then the connection closed: Twisted closed"
        " the whole connection at the end of the client's input, before the protocol could"
        " reply")


def test_counting_only_the_last_chunk_fails():
    class LastChunkOnly(LineCount):
        def dataReceived(self, data):
            self.lines, self.size = data.count(b"\n"), len(data)

    report = check("06.3", LastChunkOnly)
    assert report.failed == {"chunks"}
    assert report.message("chunks") == (
        "sent 7 chunks, one at a time, b'ab\\nc\\n\\nd\\xe2\\x82\\xac\\n\\n\\n\\n\\n\\n\\n\\nno"
        " newline at the end' in all, then ended the input: expected b'11 39\\n', got"
        " b'0 21\\n'")


@implementer(IHalfCloseableProtocol)
class NeverCloses(LineCount):
    def readConnectionLost(self):
        self.transport.write(b"%d %d\n" % (self.lines, self.size))


def test_replying_without_closing_fails_only_the_close_check(short_timeout):
    report = check("06.3", NeverCloses)
    assert report.failed == {"closes"}
    assert report.message("closes") == (
        "sent b'one\\ntwo\\n', then ended the input: got b'2 8\\n', then nothing more for"
        " 0.3 s; expected the server to close the connection after its reply")


def test_closing_only_the_sending_side_fails_the_close_check(short_timeout):
    @implementer(IHalfCloseableProtocol)
    class HalfClosesOnly(LineCount):
        def readConnectionLost(self):
            self.transport.write(b"%d %d\n" % (self.lines, self.size))
            self.transport.loseWriteConnection()

    report = check("06.3", HalfClosesOnly)
    assert report.failed == {"closes"}
    assert report.message("closes") == (
        "sent b'one\\ntwo\\n', then ended the input: the client read the reply and the end of"
        " the stream, but the server's side of the connection was still open 0.3 s later"
        " (Twisted had not called its connectionLost)")


def test_aborting_after_the_reply_loses_it():
    @implementer(IHalfCloseableProtocol)
    class Aborts(LineCount):
        def readConnectionLost(self):
            self.transport.write(b"%d %d\n" % (self.lines, self.size))
            self.transport.abortConnection()

    report = check("06.3", Aborts)
    assert report.failed == {"reply", "closes", "chunks", "empty", "separate"}
    assert report.message("empty") == (
        "sent nothing, then ended the input: expected b'0 0\\n', got nothing, then the"
        " connection was reset")


def test_counting_characters_decoded_per_chunk_fails():
    class Characters(LineCount):
        def dataReceived(self, data):
            text = data.decode()
            self.lines += text.count("\n")
            self.size += len(text)

    report = check("06.3", Characters)
    assert report.failed == {"chunks"}
    assert report.message("chunks").endswith(
        "Twisted logged: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe2 in position"
        " 1: unexpected end of data (raised in dataReceived)")


def test_counting_characters_of_the_whole_input_fails():
    @implementer(IHalfCloseableProtocol)
    class DecodedAtTheEnd(Protocol):
        def connectionMade(self):
            self.data = b""

        def dataReceived(self, data):
            self.data += data

        def readConnectionLost(self):
            text = self.data.decode()
            self.transport.write(b"%d %d\n" % (text.count("\n"), len(text)))
            self.transport.loseConnection()

    report = check("06.3", DecodedAtTheEnd)
    assert report.failed == {"chunks"}
    assert report.message("chunks").endswith("expected b'11 39\\n', got b'11 37\\n'")


def test_counting_lines_with_splitlines_fails():
    class SplitLines(LineCount):
        def dataReceived(self, data):
            self.lines += len(data.splitlines())
            self.size += len(data)

    report = check("06.3", SplitLines)
    assert report.failed == {"chunks"}


def test_counts_made_in_data_received_fail_on_empty_input():
    class LazyCounts(LineCount):
        def connectionMade(self):
            pass

        def dataReceived(self, data):
            if not hasattr(self, "lines"):
                self.lines = self.size = 0
            super().dataReceived(data)

    report = check("06.3", LazyCounts)
    assert report.failed == {"empty"}
    assert report.message("empty").endswith(
        "Twisted logged: AttributeError: 'LazyCounts' object has no attribute 'lines' (raised"
        " in readConnectionLost)")


def test_replying_after_every_chunk_fails():
    class Running(LineCount):
        def dataReceived(self, data):
            super().dataReceived(data)
            self.transport.write(b"%d %d\n" % (self.lines, self.size))

    report = check("06.3", Running)
    assert report.failed == {"reply", "chunks"}
    assert report.message("reply") == (
        "sent b'one\\ntwo\\n', then ended the input (shutdown SHUT_WR): expected the line"
        " b'2 8\\n' and nothing else, got b'2 8\\n2 8\\n', then the connection closed")


def test_input_kept_in_a_class_level_buffer_is_shared():
    @implementer(IHalfCloseableProtocol)
    class SharedBuffer(Protocol):
        buffer = bytearray()  # one for every connection (and every check)

        def dataReceived(self, data):
            self.buffer += data

        def readConnectionLost(self):
            self.transport.write(_counts(self.buffer))
            self.transport.loseConnection()

    report = check("06.3", SharedBuffer)
    assert report.failed == {"chunks", "empty", "separate"}


def _counts(data):
    return b"%d %d\n" % (data.count(b"\n"), len(data))


def test_counts_as_class_level_numbers_pass():
    @implementer(IHalfCloseableProtocol)
    class ClassLevelNumbers(Protocol):
        lines = size = 0  # immutable: `+=` stores a new int on the instance

        def dataReceived(self, data):
            self.lines += data.count(b"\n")
            self.size += len(data)

        readConnectionLost = LineCount.readConnectionLost

    assert check("06.3", ClassLevelNumbers).passed
