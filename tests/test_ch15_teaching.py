"""Chapter 15's teaching code, run as the repository's tests: the `who_is_here` client and
its tests (the notebook's `# module: who` cells), and the Hypothesis properties of chapter
02's decoder (`# module: framing_properties`). The chat server's tests of the chapter
(`# module: chat_tests`) run from tests/test_chat_server.py.

The client is also tried here the ways a reader's use would break it: a server that is not a
chat server, nothing listening, a host name, two probes with one nickname, a room whose
nicknames are not ASCII. trial's asynchronous `TestCase` classes of the module (which need a
process whose reactor trial runs) are run by the notebook, in a subprocess.
"""

import socket
import time
from pathlib import Path

import pytest
from hypothesis import given
from twisted.internet import defer, error
from twisted.internet.protocol import Factory, Protocol

from helpers import EventLog, serve
from helpers.exercises.wire import dead_port
from helpers.notebook_code import load
from helpers.reactor import call, start

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "15_testing_network_code.ipynb"
who = load(NOTEBOOK, "who")
properties = load(NOTEBOOK, "framing_properties")
framing = properties.framing

# The chapter's SynchronousTestCase classes: pytest (and trial) run them from here.
WhoClientTests = who.WhoClientTests
WhoClientFailureTests = who.WhoClientFailureTests
WhoOverLoopbackTests = who.WhoOverLoopbackTests
UnderFaultsTests = who.UnderFaultsTests


def who_is_here(host, port, nick="probe", timeout=2.0):
    """The chapter's client, run in the reactor thread (its timeout passed by position)."""
    return call(who.who_is_here, start(), host, port, nick, timeout, timeout=timeout + 2)


# -- the client, used the ways a reader would --------------------------------------------


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def test_a_server_that_is_not_a_chat_server_times_out_and_is_closed():
    with serve("test-ch15-echo", Factory.forProtocol(Echo)) as server:
        with pytest.raises(defer.TimeoutError, match="no answer within 0.2 s"):
            who_is_here(*server.address, timeout=0.2)
        # The client aborted its end before the Deferred failed; the server's end closes
        # when the reset arrives.
        deadline = time.monotonic() + 2
        while server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.connections == 0


def test_nothing_listening_fails_with_connection_refused():
    with dead_port() as port, pytest.raises(error.ConnectionRefusedError):
        who_is_here("127.0.0.1", port)


def test_a_host_name_works_as_well_as_an_address():
    with serve("test-ch15-chat", who.chat.ChatFactory()) as server:
        assert who_is_here("localhost", server.port) == ["probe"]


def test_two_probes_with_one_nickname_both_get_an_answer():
    """The second probe's nickname is taken; /who answers it anyway, without it."""
    log = EventLog()
    with serve("test-ch15-chat", who.chat.ChatFactory(log=log)) as server, \
            socket.create_connection(server.address, timeout=2) as first:
        first.sendall(b"probe\n")
        log.wait(1, "joined")
        assert who_is_here(*server.address) == ["probe"]  # the other one
        log.wait(1, "quit")


def test_nicknames_that_are_not_ascii_come_back_as_sent():
    log = EventLog()
    with serve("test-ch15-chat", who.chat.ChatFactory(log=log)) as server, \
            socket.create_connection(server.address, timeout=2) as zoe:
        zoe.sendall("Zoë\n".encode())
        log.wait(1, "joined")
        assert who_is_here(*server.address, nick="Ünal") == ["Zoë", "Ünal"]


def test_the_deferred_fires_only_after_the_connection_has_closed_at_both_ends():
    log = EventLog()
    with serve("test-ch15-chat", who.chat.ChatFactory(log=log)) as server:
        assert who_is_here(*server.address) == ["probe"]
        assert server.connections == 0
        assert [e.what for e in log.events] == ["joined", "quit", "left"]


# -- the properties, on chapter 02's decoder and on broken ones ----------------------------


def test_chapter_02s_decoder_has_both_properties():
    properties.same_frames_for_every_split(framing.LengthPrefixDecoder)
    properties.bad_input_keeps_the_frames_before_it(framing.LengthPrefixDecoder)


class OneFramePerFeed(framing.LengthPrefixDecoder):
    """Returns the first frame of each chunk and drops the rest of the chunk."""

    def feed(self, data):
        frames = super().feed(data)
        self._buffer.clear()
        return frames[:1]


class LosesFramesOnError(framing.LengthPrefixDecoder):
    def feed(self, data):
        try:
            return super().feed(data)
        except framing.FramingError as e:
            raise type(e)(str(e)) from None  # without e.frames


@pytest.mark.parametrize(("decoder", "prop"), [
    (OneFramePerFeed, properties.same_frames_for_every_split),
    (LosesFramesOnError, properties.bad_input_keeps_the_frames_before_it),
], ids=["one-frame-any-split", "loses-frames-bad-input"])
def test_the_properties_fail_for_a_broken_decoder(decoder, prop):
    with pytest.raises((AssertionError, ExceptionGroup)):  # a group: several distinct bugs
        prop(decoder)


def test_losing_frames_on_error_is_invisible_without_bad_input():
    properties.same_frames_for_every_split(LosesFramesOnError)


def test_the_strategies_make_what_they_promise():
    """Streams cut anywhere (empty chunks too); each bad tail gives its own error."""
    seen = {"empty chunk": False, "cut inside a header": False}

    @properties.SAME_EVERY_RUN
    @given(case=properties.split_streams())
    def cuts(case):
        frames, chunks = case
        assert b"".join(chunks) == b"".join(map(framing.encode_frame, frames))
        seen["empty chunk"] |= b"" in chunks[:-1]
        seen["cut inside a header"] |= any(0 < len(c) < framing.HEADER.size for c in chunks)

    cuts()
    assert all(seen.values()), seen
    for name, tail in properties.BAD_TAILS.items():
        gives_its_own_error(name, tail)()


def gives_its_own_error(name, tail):
    @properties.SAME_EVERY_RUN
    @given(data=tail)
    def gives(data):
        decoder = framing.LengthPrefixDecoder(max_frame=properties.MAX_FRAME)
        _, error = framing.decode_all(decoder, [data])
        assert error.startswith(name + ":"), (data, error)

    return gives
