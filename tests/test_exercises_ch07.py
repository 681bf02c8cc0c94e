"""Chapter 07 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

from collections import deque

import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import connectProtocol
from twisted.internet.protocol import ClientFactory, Factory

from helpers import check
from helpers.exercises import ch07
from solutions.ch07 import KeyValueClient, ReplyFactory, _FirstLine, fetch


@pytest.fixture
def short_timeout(monkeypatch):
    """Answers that never fire are given up on after 0.3 s (2 s in the notebook)."""
    monkeypatch.setattr(ch07, "TIMEOUT", 0.3)


# -- the notebook's stubs ---------------------------------------------------------


class StubReplyFactory(ClientFactory):
    def __init__(self, message):
        raise NotImplementedError("your code here")


def stub_fetch(endpoint, line):
    raise NotImplementedError("your code here")


class StubKeyValueClient(KeyValueClient.__bases__[0]):  # Protocol
    def get(self, key):
        raise NotImplementedError("your code here")


@pytest.mark.parametrize(("exercise_id", "stub"), [
    ("07.1", StubReplyFactory), ("07.2", stub_fetch), ("07.3", StubKeyValueClient)])
def test_the_stub_is_not_attempted_and_shows_no_hint(exercise_id, stub):
    report = check(exercise_id, stub)
    assert not report.attempted, repr(report)
    assert "hint" not in repr(report)


# -- 07.1 -------------------------------------------------------------------------


def factory_with(protocol_class, **methods):
    return type("Answer", (ReplyFactory,), {"protocol": protocol_class, **methods})


def test_a_plain_factory_fails_where_connect_tcp_calls_started_connecting():
    class PlainReplyFactory(Factory):  # the article's mistake, section 1
        protocol = ReplyFactory.protocol

        def __init__(self, message):
            self.message, self.reply, self.result = message, b"", Deferred()

    report = check("07.1", PlainReplyFactory)
    assert report.failed == {"refused", "whole-reply", "sends", "own-result"}
    assert all(r.logged == () for r in report.results)  # the attempt was stopped, quietly
    assert report.message("refused") == (
        "reactor.connectTCP to a dead port, with ReplyFactory(b'hello\\n'): raised"
        " AttributeError: 'PlainReplyFactory' object has no attribute 'startedConnecting'")


def test_firing_on_the_first_chunk_fails():
    class FirstChunk(ReplyFactory.protocol):
        def dataReceived(self, data):
            if not self.factory.result.called:
                self.factory.result.callback(data)

    report = check("07.1", factory_with(FirstChunk, clientConnectionLost=lambda *a: None))
    assert report.failed == {"whole-reply", "own-result"}
    assert report.message("whole-reply") == (
        "the server sent b'HELLO\\nthat was all\\n' in 3 pieces, then closed: when the"
        " connection had ended, factory.result fired with b'HEL', expected it to fire with the"
        " whole reply")


def test_stopping_once_as_many_bytes_came_back_as_were_sent_fails():
    class AsManyAsSent(ReplyFactory.protocol):  # chapter 07's GreetingClient, section 2
        def dataReceived(self, data):
            self.received += data
            if len(self.received) >= len(self.factory.message):
                self.transport.loseConnection()

    report = check("07.1", factory_with(AsManyAsSent))
    assert report.failed == {"whole-reply", "own-result"}
    assert "factory.result fired with b'HELLO\\n', expected" in report.message("whole-reply")


def test_a_silent_connection_failure_fails_at_once():
    report = check("07.1", factory_with(ReplyFactory.protocol,
                                        clientConnectionFailed=lambda *a: None))
    assert report.failed == {"refused"}
    assert report.message("refused") == (
        "connecting to a port where nothing listens: factory.result had not fired, expected"
        " it to fail with ConnectionRefusedError")


def test_one_result_for_every_factory_fails():
    class Shared(ReplyFactory):
        result = Deferred()  # in the class body: one Deferred for every factory

        def __init__(self, message):
            self.message, self.reply = message, b""

    report = check("07.1", Shared)
    assert report.failed == {"whole-reply", "sends", "own-result"}
    assert report.message("own-result") == (
        "ReplyFactory(b'hello\\n') and ReplyFactory(b'again\\n'), connected at the same time:"
        " ReplyFactory(b'hello\\n').result had already fired before anything was connected (is"
        " it shared with an earlier factory?)")


def test_one_buffer_for_every_connection_fails():
    class SharedBuffer(ReplyFactory.protocol):
        received = bytearray()  # in the class body: `+=` extends this one object

        def connectionMade(self):
            self.transport.write(self.factory.message)

    report = check("07.1", factory_with(SharedBuffer))
    assert report.failed == {"own-result"}


def test_firing_the_result_twice_is_reported():
    class Twice(ReplyFactory.protocol):
        def connectionLost(self, reason):
            super().connectionLost(reason)
            self.factory.result.callback(self.received)  # and clientConnectionLost again

    report = check("07.1", factory_with(Twice))
    assert report.failed == {"whole-reply", "own-result"}
    message = report.message("whole-reply")
    assert message.startswith("Twisted logged an error while this check ran; Twisted logged:"
                              " AlreadyCalledError")
    assert message.endswith("(raised in clientConnectionLost)")


def test_sending_a_newline_of_its_own_fails():
    class ExtraNewline(ReplyFactory.protocol):
        def connectionMade(self):
            self.received = b""
            self.transport.write(self.factory.message + b"\n")

    report = check("07.1", factory_with(ExtraNewline))
    assert report.failed == {"sends"}
    assert report.message("sends") == (
        "reactor.connectTCP('127.0.0.1', port, ReplyFactory(b'hello\\n')): the server received"
        " b'hello\\n\\n', expected exactly the message")


def test_a_decoded_result_fails_saying_it_is_a_str():
    report = check("07.1", factory_with(
        ReplyFactory.protocol,
        clientConnectionLost=lambda self, connector, reason: self.result.callback(
            self.reply.decode())))
    assert report.failed == {"whole-reply", "own-result"}
    assert report.message("whole-reply").endswith(
        "factory.result fired with 'HELLO\\nthat was all\\n', expected it to fire with the"
        " whole reply (a str: expected the bytes, as they came)")


def test_an_exception_in_the_protocol_is_the_cause_shown():
    class Broken(ReplyFactory.protocol):
        def dataReceived(self, data):
            raise ValueError("oops")

    report = check("07.1", factory_with(Broken))
    assert "Twisted logged: ValueError: oops (raised in dataReceived)" in report.message(
        "whole-reply")


# -- 07.2 -------------------------------------------------------------------------


def fetch_with(protocol_class):
    def answer(endpoint, line):
        protocol = protocol_class(line)
        return connectProtocol(endpoint, protocol).addCallback(lambda _: protocol.reply)

    return answer


class FirstChunkLine(_FirstLine):
    """The article's client, "fixed" in section 2: the first chunk is the whole reply."""

    def dataReceived(self, data):
        if not self.reply.called:
            self.transport.loseConnection()
            self.reply.callback(data.split(b"\n")[0].decode(errors="replace"))


def test_taking_the_first_chunk_as_the_reply_fails():
    report = check("07.2", fetch_with(FirstChunkLine))
    assert report.failed == {"first-line", "any-endpoint", "early-close"}
    assert report.message("first-line").endswith(
        "the Deferred fired with ' CAF\ufffd', expected it to fire with ' CAFÉ CRÈME '")
    assert report.message("any-endpoint").endswith(
        "the Deferred fired with 'HE', expected it to fire with 'HELLO'")


def test_decoding_the_first_chunk_fails_with_the_decode_error():
    class DecodesChunks(_FirstLine):
        def dataReceived(self, data):
            self.buffer += data.decode()  # a str buffer: each chunk decoded on its own
            if "\n" in self.buffer and not self.reply.called:
                self.transport.loseConnection()
                self.reply.callback(self.buffer.split("\n")[0])

        def connectionMade(self):
            self.buffer = ""
            super().connectionMade()

    report = check("07.2", fetch_with(DecodesChunks))
    assert report.failed == {"first-line", "closes"}
    assert report.message("first-line").endswith(
        "Twisted logged: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3 in position"
        " 4: unexpected end of data (raised in dataReceived)")


def test_stripping_the_line_fails():
    class Strips(_FirstLine):
        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer and not self.reply.called:
                self.transport.loseConnection()
                self.reply.callback(self.buffer.decode().split("\n")[0].strip())

    report = check("07.2", fetch_with(Strips))
    assert report.failed == {"first-line"}
    assert report.message("first-line").endswith(
        "the Deferred fired with 'CAFÉ CRÈME', expected it to fire with ' CAFÉ CRÈME '")


def test_rstripping_the_line_fails():
    class RStrips(_FirstLine):  # to drop the "\n" (and a "\r"), it drops trailing spaces too
        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer and not self.reply.called:
                self.transport.loseConnection()
                self.reply.callback(self.buffer.split(b"\n", 1)[0].decode().rstrip())

    report = check("07.2", fetch_with(RStrips))
    assert report.failed == {"first-line"}
    assert report.message("first-line").endswith(
        "the Deferred fired with ' CAFÉ CRÈME', expected it to fire with ' CAFÉ CRÈME '")


def test_waiting_for_the_close_to_take_the_first_line_fails(short_timeout):
    class UntilClosed(_FirstLine):
        def dataReceived(self, data):
            self.buffer += data  # the first line is taken when the server closes

        def connectionLost(self, reason):
            if b"\n" in self.buffer:
                self.reply.callback(self.buffer.split(b"\n", 1)[0].decode())
            else:
                self.reply.errback(reason)

    report = check("07.2", fetch_with(UntilClosed))
    assert report.failed == {"first-line", "closes", "any-endpoint"}
    assert report.message("first-line").endswith(
        "a newline and a second line, in pieces, and kept the connection open (it closes when"
        " the client does): the Deferred had not fired after 0.3 s, expected it to fire with"
        " ' CAFÉ CRÈME '")


def test_keeping_the_newline_fails():
    class KeepsNewline(_FirstLine):
        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer and not self.reply.called:
                self.transport.loseConnection()
                self.reply.callback(self.buffer.decode().partition("\n")[0] + "\n")

    report = check("07.2", fetch_with(KeepsNewline))
    assert report.failed == {"first-line", "any-endpoint"}


def test_decoding_as_latin1_fails():
    class Latin1(_FirstLine):
        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer and not self.reply.called:
                self.transport.loseConnection()
                self.reply.callback(self.buffer.split(b"\n")[0].decode("latin-1"))

    report = check("07.2", fetch_with(Latin1))
    assert report.failed == {"first-line"}


def test_sending_the_line_without_a_newline_fails(short_timeout):
    class NoNewline(_FirstLine):
        def connectionMade(self):
            self.transport.write(self.line.encode())

    report = check("07.2", fetch_with(NoNewline))
    assert report.failed == {"first-line", "closes", "any-endpoint", "early-close"}
    assert report.message("first-line") == (
        "fetch(endpoint, ' café crème ') over a TCP4ClientEndpoint: the server answered with"
        " ' CAFÉ CRÈME ' (UTF-8, cut inside a character), a newline and a second line, in"
        " pieces; but the server received b' caf\\xc3\\xa9 cr\\xc3\\xa8me ' and was still waiting"
        " for the end of the line: fetch had not fired after 0.3 s")


def test_a_fetch_that_never_closes_fails_only_the_close_check(short_timeout):
    class StaysOpen(_FirstLine):
        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer and not self.reply.called:
                self.reply.callback(self.buffer.split(b"\n", 1)[0].decode())

    report = check("07.2", fetch_with(StaysOpen))
    assert report.failed == {"closes"}
    assert report.message("closes") == (
        "fetch(endpoint, ' café crème ') fired with the reply line, but the connection was still"
        " open 0.3 s later")


def test_a_fetch_that_hangs_when_the_server_closes_early_fails(short_timeout):
    class Hangs(_FirstLine):
        def connectionLost(self, reason):
            pass  # the reply Deferred is left waiting

    report = check("07.2", fetch_with(Hangs))
    assert report.failed == {"early-close"}
    assert report.message("early-close") == (
        "the server sent b'HE' (no newline) and closed the connection: the Deferred from"
        " fetch() had not fired after 0.3 s, expected it to fail")


def test_a_reply_deferred_failed_twice_is_reported():
    class Twice(_FirstLine):
        def connectionLost(self, reason):
            self.reply.errback(reason)  # even after the line fired it

    report = check("07.2", fetch_with(Twice))
    assert report.failed == {"first-line", "any-endpoint"}
    message = report.message("first-line")
    assert message.startswith("Twisted logged an error while this check ran; Twisted logged:"
                              " AlreadyCalledError")
    assert message.endswith("(raised in connectionLost)")


def test_swallowing_the_connect_failure_fails():
    def swallowing(endpoint, line):
        return fetch(endpoint, line).addErrback(lambda failure: None)

    report = check("07.2", swallowing)
    assert report.failed == {"refused", "early-close"}
    assert report.message("refused") == (
        "connecting to a port where nothing listens: the Deferred from fetch() fired with None,"
        " expected it to fail with ConnectionRefusedError")


def test_returning_the_reply_without_the_connect_deferred_fails(short_timeout):
    def unchained(endpoint, line):
        protocol = _FirstLine(line)
        connectProtocol(endpoint, protocol)  # its failure is never handled
        return protocol.reply

    report = check("07.2", unchained)
    assert report.failed == {"refused"}
    message = report.message("refused")
    assert message.startswith(
        "connecting to a port where nothing listens: the Deferred from fetch() had not fired"
        " after 0.3 s, expected it to fail with ConnectionRefusedError")
    assert "Twisted logged: ConnectionRefusedError" in message


def test_a_tcp_only_fetch_fails_on_the_unix_endpoint():
    def tcp_only(endpoint, line):
        from twisted.internet import reactor

        protocol = _FirstLine(line)

        class Once(ClientFactory):
            def buildProtocol(self, addr):
                return protocol

            def clientConnectionFailed(self, connector, reason):
                protocol.reply.errback(reason)

        reactor.connectTCP(endpoint._host, endpoint._port, Once())
        return protocol.reply

    report = check("07.2", tcp_only)
    assert report.failed == {"any-endpoint"}
    assert report.message("any-endpoint") == (
        "fetch(endpoint, 'hello') over clientFromString(reactor, 'unix:path=...')"
        " (UNIXClientEndpoint): raised AttributeError: 'UNIXClientEndpoint' object has no"
        " attribute '_host'")


# -- 07.3 -------------------------------------------------------------------------


def test_replies_matched_newest_first_fail():
    class Lifo(KeyValueClient):
        def get(self, key):
            d = super().get(key)
            if self.pending:
                self.pending.appendleft(self.pending.pop())  # newest request first
            return d

    report = check("07.3", Lifo)
    assert report.failed == {"pipelined"}


def test_missing_as_a_value_fails():
    class NoKeyError(KeyValueClient):
        def dataReceived(self, data):
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                _, d = self.pending.popleft()
                d.callback(line.decode().partition(" ")[2])  # "missing" as a value

    report = check("07.3", NoKeyError)
    assert report.failed == {"missing", "pipelined"}
    assert report.message("missing") == (
        "the server answered 'get nope' with 'missing nope': get('nope') gave ('fired',"
        " 'nope'), expected ('KeyError', 'nope')")


def test_key_error_of_the_reply_line_fails():
    class WrongKey(KeyValueClient):
        def dataReceived(self, data):
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                _, d = self.pending.popleft()
                kind, _, value = line.decode().partition(" ")
                if kind == "value":
                    d.callback(value)
                else:
                    d.errback(KeyError(line.decode()))

    report = check("07.3", WrongKey)
    assert report.failed == {"missing", "pipelined"}


def test_requests_ending_in_crlf_fail_on_what_the_server_received():
    class CrLf(KeyValueClient):
        def get(self, key):
            if self.lost is not None:
                return fail(ConnectionError(self.lost))
            d = Deferred()
            self.pending.append((key, d))
            self.transport.write(f"get {key}\r\n".encode())  # the server reads "one\r"
            return d

    report = check("07.3", CrLf)
    assert report.failed == {"one-get", "missing", "pipelined", "separate"}
    assert report.message("one-get") == (
        "get('one'): the server received b'get one\\r\\n', expected exactly b'get one\\n'")


def test_values_taken_with_lstrip_fail():
    class LStrip(KeyValueClient):
        def dataReceived(self, data):
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                key, d = self.pending.popleft()
                text = line.decode()
                if text.startswith("value "):
                    d.callback(text.lstrip("value "))  # strips characters, not a prefix
                else:
                    d.errback(KeyError(key))

    report = check("07.3", LStrip)
    assert report.failed == {"pipelined"}
    assert "('fired', 'ten, 10')], expected" in report.message("pipelined")


def test_one_reply_line_per_data_received_fails_naming_the_last_piece(short_timeout):
    class OneLinePerCall(KeyValueClient):
        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer:  # `if`, not `while`: one line per call
                line, self.buffer = self.buffer.split(b"\n", 1)
                key, d = self.pending.popleft()
                kind, _, value = line.decode().partition(" ")
                d.callback(value) if kind == "value" else d.errback(KeyError(key))

    report = check("07.3", OneLinePerCall)
    assert report.failed == {"pipelined"}
    message = report.message("pipelined")
    assert "then the rest (the end of that reply and 2 whole ones) in one piece" in message
    assert message.endswith("; 2 of 6 Deferreds had not fired after 0.3 s, and the server,"
                            " which answers once all 6 requests have come, had received 6")


def test_pending_requests_in_the_class_body_are_shared_by_every_client():
    class SharedPending(KeyValueClient):
        pending = deque()  # one deque for every connection

        def __init__(self):
            self.buffer, self.lost = b"", None

    report = check("07.3", SharedPending)
    assert report.failed == {"separate"}
    assert report.message("separate") == (
        "two clients, each on its own connection: client 1 sent get('one'), which its server"
        " answers only with a second request; client 2 sent get('six'), answered at once; then"
        " client 1 sent get('one') again: the three gave [('fired', '6'), ('fired', '1'),"
        " ('fired', '1')], expected [('fired', '1'), ('fired', '6'), ('fired', '1')] (client"
        " 1's first request got the reply that came to client 2)")


def test_failing_pending_requests_with_key_error_on_loss_fails():
    class KeyErrorOnLoss(KeyValueClient):
        def connectionLost(self, reason):
            self.lost = reason.getErrorMessage()
            while self.pending:
                key, d = self.pending.popleft()
                d.errback(KeyError(key))  # as if the server had answered "missing"

    report = check("07.3", KeyErrorOnLoss)
    assert report.failed == {"loss-fails-pending"}
    assert report.message("loss-fails-pending") == (
        "the server read 3 requests and closed without answering: the gets gave [('KeyError',"
        " 'one'), ('KeyError', 'two'), ('KeyError', 'three')]: a KeyError says that the server"
        " answered 'missing', and it did not; expected each to fail with another error")


def test_lock_step_requests_fail_the_pipelining_checks(short_timeout):
    class LockStep(KeyValueClient):
        """One request in flight at a time; the others wait for replies."""

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
    assert report.failed == {"pipelined", "loss-fails-pending", "late-fails", "separate"}
    assert report.message("pipelined").endswith(
        "; 6 of 6 Deferreds had not fired after 0.3 s, and the server, which answers once all 6"
        " requests have come, had received 1")
    assert report.message("separate").endswith(
        "; client 1's server, which answers once both its requests have come, had received 1")


def test_pending_requests_kept_by_key_lose_a_repeated_key(short_timeout):
    class ByKey(KeyValueClient):
        def __init__(self):
            super().__init__()
            self.by_key, self.order = {}, deque()

        def get(self, key):
            self.by_key[key] = d = Deferred()  # a second get(key) replaces the first
            self.order.append(key)
            self.transport.write(f"get {key}\n".encode())
            return d

        def dataReceived(self, data):
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                key = self.order.popleft()
                d = self.by_key.pop(key, None)
                kind, _, value = line.decode().partition(" ")
                if d is not None:
                    d.callback(value) if kind == "value" else d.errback(KeyError(key))

    report = check("07.3", ByKey)
    assert "pipelined" in report.failed
    assert "('pending',)" in report.message("pipelined")


def test_one_reply_per_data_received_fails():
    class NoBuffer(KeyValueClient):
        def dataReceived(self, data):
            key, d = self.pending.popleft()
            kind, _, value = data.decode().rstrip("\n").partition(" ")
            d.callback(value) if kind == "value" else d.errback(KeyError(key))

    report = check("07.3", NoBuffer)
    assert {"one-get", "pipelined"} <= report.failed  # and more, as the pieces happen to come


def test_values_split_on_every_space_fail():
    class SplitValue(KeyValueClient):
        def dataReceived(self, data):
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                key, d = self.pending.popleft()
                words = line.decode().split()
                d.callback(words[1]) if words[0] == "value" else d.errback(KeyError(key))

    report = check("07.3", SplitValue)
    assert report.failed == {"pipelined"}
    assert "('fired', 'two')" in report.message("pipelined")


def test_decoding_each_piece_fails_on_the_euro_sign():
    class DecodesPieces(KeyValueClient):
        def dataReceived(self, data):
            data.decode()  # a piece can end inside "€"
            super().dataReceived(data)

    report = check("07.3", DecodesPieces)
    assert report.failed == {"pipelined"}
    assert "Twisted logged: UnicodeDecodeError" in report.message("pipelined")


def test_forgetting_pending_requests_on_loss_fails(short_timeout):
    class Forgetful(KeyValueClient):
        def connectionLost(self, reason):
            self.lost = reason.getErrorMessage()  # the pending Deferreds never fire

    report = check("07.3", Forgetful)
    assert report.failed == {"loss-fails-pending"}
    assert report.message("loss-fails-pending") == (
        "the server read 3 requests and closed without answering: the gets gave [('pending',),"
        " ('pending',), ('pending',)], expected each to fail")


def test_failing_every_request_ever_made_on_loss_is_reported():
    class EveryRequest(KeyValueClient):
        def __init__(self):
            super().__init__()
            self.made = []

        def get(self, key):
            d = super().get(key)
            self.made.append(d)
            return d

        def connectionLost(self, reason):
            self.lost = reason.getErrorMessage()
            for d in self.made:  # answered ones too: AlreadyCalledError
                d.errback(ConnectionError(self.lost))

    report = check("07.3", EveryRequest)
    assert report.failed == {"one-get", "missing", "pipelined", "separate"}
    message = report.message("one-get")
    assert message.startswith("Twisted logged an error while this check ran; Twisted logged:"
                              " AlreadyCalledError")
    assert message.endswith("(raised in connectionLost)")


def test_a_late_request_left_waiting_fails():
    class NoLateFailure(KeyValueClient):
        def get(self, key):
            if self.lost is not None:
                return Deferred()  # never fires
            return super().get(key)

    report = check("07.3", NoLateFailure)
    assert report.failed == {"late-fails"}
    assert report.message("late-fails") == (
        "get('one') after the connection was lost returned a Deferred that had not fired,"
        " expected one that had already failed")


def test_a_late_request_that_raises_fails():
    class Raises(KeyValueClient):
        def get(self, key):
            if self.lost is not None:
                raise ConnectionError("not connected")
            return super().get(key)

    report = check("07.3", Raises)
    assert report.failed == {"late-fails"}
    assert report.message("late-fails") == (
        "get('one') after the connection was lost: raised ConnectionError: not connected")
