"""Unit tests of chapter 09's binary protocol, without a network.

The classes come straight from the notebook's `# module: binary_protocol` cells. The
parser must give the same messages however the stream is cut into chunks, reject bad
input without losing a good message before it, and the protocol must write back what
the chapter says: PONG for PING, ERROR and a close for bad bytes.
"""

import pytest
from twisted.internet.testing import StringTransport

from helpers.notebook_code import load

bp = load("notebooks/09_framing_with_twisted.ipynb", "binary_protocol")

MESSAGES = [
    bp.Message(bp.Type.PING, b"hi"),
    bp.Message(bp.Type.PING, b""),
    bp.Message(bp.Type.PONG, b"\x00\r\n" + bytes(range(250, 256))),
    bp.Message(bp.Type.ERROR, "café".encode()),
]
STREAM = b"".join(map(bp.encode, MESSAGES))
PING_HI = bp.encode(bp.Message(bp.Type.PING, b"hi"))


def splits(stream):
    """Every cut of `stream` into two chunks, then the stream byte by byte."""
    yield from ([stream[:i], stream[i:]] for i in range(len(stream) + 1))
    yield [stream[i : i + 1] for i in range(len(stream))]


def feed(chunks, **options):
    """A parser fed every chunk; returns (parser, messages delivered, error or None)."""
    got = []
    parser = bp.MessageParser(got.append, **options)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except bp.ProtocolError as error:
        return parser, got, error
    return parser, got, None


def serve(data):
    """A PingServer fed `data` through a StringTransport: (messages written, closing?)."""
    transport, server = StringTransport(), bp.PingServer()
    server.makeConnection(transport)
    server.dataReceived(data)
    _, written, _ = feed([transport.value()])
    return written, transport.disconnecting


# -- the parser ---------------------------------------------------------------


@pytest.mark.parametrize("chunks", list(splits(STREAM)))
def test_every_split_gives_the_same_messages(chunks):
    parser, got, error = feed(chunks)
    assert (got, error, parser.state) == (MESSAGES, None, bp.State.HEADER)


BAD = {
    "bad version": (bp.HEADER.pack(2, bp.Type.PING, 0), bp.BadVersion),
    "unknown type": (bp.HEADER.pack(1, 9, 0), bp.UnknownType),
    "oversize length": (bp.HEADER.pack(1, bp.Type.PING, 1025), bp.PayloadTooLarge),
    "garbage": (b"GET / HTTP/1.1\r\n", bp.BadVersion),
}


@pytest.mark.parametrize("bad, error_class", BAD.values(), ids=BAD.keys())
def test_bad_input_is_rejected_after_every_good_message(bad, error_class):
    for chunks in splits(STREAM + bad):
        parser, got, error = feed(chunks)
        assert got == MESSAGES
        assert type(error) is error_class and parser.state is bp.State.FAILED


def test_each_header_field_is_checked_as_soon_as_it_arrives():
    assert isinstance(feed([b"\x02"])[2], bp.BadVersion)
    assert isinstance(feed([b"\x01\x09"])[2], bp.UnknownType)


def test_a_failed_parser_ignores_further_input():
    parser, got, _ = feed([bp.HEADER.pack(2, 1, 0)])
    parser.feed(PING_HI)
    assert got == [] and parser.state is bp.State.FAILED


@pytest.mark.parametrize("cut", [1, 6, 7])
def test_a_stream_ending_inside_a_message_is_truncated(cut):
    parser, got, _ = feed([STREAM + PING_HI[:cut]])
    with pytest.raises(bp.Truncated):
        parser.end()
    assert got == MESSAGES


def test_a_stream_ending_between_messages_is_fine():
    parser, _, _ = feed([STREAM])
    parser.end()
    assert parser.error is None


def test_the_limit_is_configurable():
    big = bp.encode(bp.Message(bp.Type.PING, bytes(2000)))
    assert feed([big], max_payload=2000)[1] == [bp.Message(bp.Type.PING, bytes(2000))]


# -- the protocol, through a StringTransport -----------------------------------


def test_ping_is_answered_with_pong_and_the_same_payload():
    assert serve(PING_HI * 2) == ([bp.Message(bp.Type.PONG, b"hi")] * 2, False)


def test_a_message_that_is_not_a_request_gets_an_error_and_stays_open():
    reply = bp.Message(bp.Type.ERROR, b"PONG is not a request")
    assert serve(bp.encode(bp.Message(bp.Type.PONG))) == ([reply], False)


def test_bad_bytes_are_answered_with_error_then_close():
    written, closing = serve(PING_HI + bp.HEADER.pack(2, bp.Type.PING, 0))
    error = bp.Message(bp.Type.ERROR, b"BadVersion: version 2, expected 1")
    assert written == [bp.Message(bp.Type.PONG, b"hi"), error]
    assert closing


def test_truncation_is_reported_to_the_protocol():
    seen = []

    class Watching(bp.PingServer):
        def truncated(self, error):
            seen.append(str(error))

    server = Watching()
    server.makeConnection(StringTransport())
    server.dataReceived(PING_HI[:7])
    server.connectionLost(None)
    assert seen == ["stream ended inside a PING payload, 1 bytes in"]
