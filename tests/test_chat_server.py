"""Unit tests of chapter 10's chat server, without a network.

The classes come straight from the notebook's `# module: chat` cells. Each client is a
protocol connected to its own `StringTransport`, which keeps what the server wrote to it;
`send` hands bytes to the protocol as if they had arrived from the network, and
`disconnect` calls `connectionLost` as the reactor would.
"""

import socket
from pathlib import Path

import pytest
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from helpers import EventLog, serve
from helpers.exercises.wire import Client
from helpers.notebook_code import load
from helpers.reactor import call

chat = load(Path(__file__).parent.parent / "notebooks" / "10_chat_server.ipynb", "chat")


def connect(room, nick=None):
    """A new client of `room`; joined as `nick` if given, with what it heard so far read."""
    user = room.buildProtocol(None)
    user.makeConnection(StringTransport())
    if nick:
        send(user, nick)
    heard(user)
    return user


def send(user, data):
    user.dataReceived(data if isinstance(data, bytes) else data.encode() + b"\n")


def heard(user):
    """The lines the server wrote to this client since the last call."""
    lines = user.transport.value().decode().splitlines()
    user.transport.clear()
    return lines


def disconnect(user, reason=ConnectionDone):
    user.connectionLost(Failure(reason()))


@pytest.fixture
def room():
    return chat.ChatFactory()


@pytest.fixture
def alice(room):
    return connect(room, "alice")


@pytest.fixture
def bob(room, alice):
    user = connect(room, "bob")
    heard(alice)  # * bob joined
    return user


def test_a_new_client_is_greeted(room):
    user = room.buildProtocol(None)
    user.makeConnection(StringTransport())
    assert heard(user) == ["* welcome! send your nickname"]


def test_the_first_line_joins_and_the_others_are_told(room, alice):
    carol = room.buildProtocol(None)
    carol.makeConnection(StringTransport())
    send(carol, "carol")
    assert heard(carol) == ["* welcome! send your nickname", "* you are carol; here: alice, carol"]
    assert heard(alice) == ["* carol joined"]


def test_a_message_goes_to_everyone_but_its_sender(room, alice, bob):
    carol = connect(room, "carol")
    heard(alice), heard(bob)
    send(alice, "hello, everyone")
    assert heard(bob) == heard(carol) == ["<alice> hello, everyone"]
    assert heard(alice) == []


def test_nick_renames_and_tells_the_others(room, alice, bob):
    send(bob, "/nick robert")
    assert heard(bob) == ["* you are now robert"]
    assert heard(alice) == ["* bob is now robert"]
    assert sorted(room.users) == ["alice", "robert"]


@pytest.mark.parametrize("line", ["alice", "/nick alice"])
def test_a_taken_nickname_is_refused_to_that_client_only(room, alice, line):
    carol = connect(room)
    send(carol, line)
    assert heard(carol) == ["! nickname alice is taken"]
    assert heard(alice) == []
    send(carol, "carol")  # and carol can try again
    assert heard(carol) == ["* you are carol; here: alice, carol"]


@pytest.mark.parametrize("nick", ["two words", "x" * 17, "a!"])
def test_a_malformed_nickname_is_refused(room, nick):
    user = connect(room)
    send(user, nick)
    assert heard(user) == ["! a nickname is 1 to 16 letters, digits or _"]
    assert room.users == {}


def test_who_lists_everyone_in_order(room, alice, bob):
    send(bob, "/who")
    assert heard(bob) == ["* here: alice, bob"]
    assert heard(alice) == []


def test_quit_says_bye_closes_and_leaves_on_connection_lost(room, alice, bob):
    send(bob, "/quit")
    assert heard(bob) == ["* bye"]
    assert bob.transport.disconnecting
    assert heard(alice) == []  # not yet: leaving is connectionLost's job
    disconnect(bob)
    assert heard(alice) == ["* bob left"]
    assert list(room.users) == ["alice"]


def test_a_vanished_client_leaves_the_room(room, alice, bob):
    disconnect(bob, ConnectionLost)  # a reset: no /quit, no goodbye
    assert heard(alice) == ["* bob left"]
    send(alice, "/who")
    assert heard(alice) == ["* here: alice"]


def test_a_client_that_never_joined_leaves_silently(room, alice):
    disconnect(connect(room), ConnectionLost)
    assert heard(alice) == []
    assert list(room.users) == ["alice"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\n", "! empty line ignored"),
        (b"   \r\n", "! empty line ignored"),
        (b"caf\xe9\n", "! not UTF-8: line ignored"),  # Latin-1, not UTF-8
        (b"x" * 513 + b"\n", "! line too long (over 512 bytes): ignored"),
        (b"/dance\n", "! unknown command /dance; try /nick NAME, /who, /quit"),
    ],
)
def test_a_bad_line_is_refused_to_its_sender_and_everyone_carries_on(alice, bob, data, error):
    send(alice, b"before\n" + data + b"after\n")
    assert heard(alice) == [error]
    assert heard(bob) == ["<alice> before", "<alice> after"]
    assert not alice.transport.disconnecting


def test_the_longest_line_allowed_is_max_length(alice, bob):
    send(alice, b"x" * 512 + b"\n")
    assert heard(bob) == ["<alice> " + "x" * 512]


def test_an_overlong_line_arriving_in_pieces_is_skipped_to_its_end(alice, bob):
    send(alice, b"y" * 600)
    assert heard(alice) == ["! line too long (over 512 bytes): ignored"]
    send(alice, b"y" * 100)
    send(alice, b"y\nafter\n")
    assert heard(bob) == ["<alice> after"]
    assert heard(alice) == []


def test_a_line_split_inside_a_character_is_decoded_whole(alice, bob):
    data = "crème brûlée\r\n".encode()
    for byte in data:  # one byte per dataReceived: the worst split there is
        send(alice, bytes([byte]))
    assert heard(bob) == ["<alice> crème brûlée"]


# -- the slow-client policy (GuardedUser) ------------------------------------------


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def guarded(clock):
    return chat.GuardedChatFactory(grace=10, clock=clock)


def test_a_client_behind_for_the_grace_period_is_dropped(guarded, clock):
    alice, slow = connect(guarded, "alice"), connect(guarded, "slow")
    slow.transport.producer.pauseProducing()  # what the transport does over bufferSize
    clock.advance(9.9)
    assert not slow.transport.disconnecting
    clock.advance(0.1)
    assert slow.transport.disconnecting  # abortConnection()
    disconnect(slow, ConnectionAborted)
    assert heard(alice) == ["* slow joined", "* slow was dropped (not reading)"]


def test_catching_up_within_the_grace_period_cancels_the_drop(guarded, clock):
    user = connect(guarded, "bob")
    user.transport.producer.pauseProducing()
    user.transport.producer.pauseProducing()  # every write while over the limit says so
    user.transport.producer.resumeProducing()  # everything sent
    clock.advance(60)
    assert not user.transport.disconnecting
    assert clock.getDelayedCalls() == []


def test_leaving_during_the_grace_period_cancels_the_timer(guarded, clock):
    user = connect(guarded, "bob")
    user.transport.producer.pauseProducing()
    disconnect(user, ConnectionLost)
    assert clock.getDelayedCalls() == []


def test_quitting_while_behind_unregisters_the_producer(guarded, clock):
    user = connect(guarded, "bob")
    user.transport.producer.pauseProducing()
    send(user, "/quit")
    assert user.transport.disconnecting and user.transport.producer is not None
    user.transport.producer.resumeProducing()  # the backlog has been sent
    assert user.transport.producer is None  # so loseConnection() can finish
    assert clock.getDelayedCalls() == []


# -- the same on a real connection (127.0.0.1) -------------------------------------------


class RecordsQuit(chat.GuardedUser):
    def do_quit(self, arg):
        self.factory.record("quit command", nick=self.nick)
        super().do_quit(arg)


def read_everything(client, quiet=0.5):
    """All that `client` is sent, and how it ended: "closed", or "silent" for `quiet` s."""
    data = b""
    while True:
        got = client.read_to_end(timeout=quiet)
        data += got.data
        if got.ending != "silent" or not got.data:
            return data, got.ending


def test_a_user_who_quits_while_behind_is_closed_once_it_has_read_everything():
    """A paused push producer is resumed, not closed, when its backlog has been sent: with
    Backlog still registered, the quitting user stayed connected and in the room."""
    log = EventLog()
    factory = chat.GuardedChatFactory(log=log, grace=10)
    factory.protocol = RecordsQuit
    with serve("test-chat-quit-behind", factory) as server, \
            Client(server.port, timeout=2) as alice, \
            Client(server.port, timeout=2, rcvbuf=4096) as slow:
        for client, nick in [(alice, b"alice"), (slow, b"slow")]:
            client.read_until()
            client.send(nick + b"\n")
            client.read_until()
        alice.read_until()  # * slow joined
        user = call(factory.users.get, "slow")
        # A fixed send buffer: the kernel cannot grow it and take the backlog on its own.
        call(user.transport.getHandle().setsockopt, socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        try:
            while not any(e.what == "backlog full" for e in log.events):
                alice.send((b"x" * 400 + b"\n") * 50 + b"/who\n")
                alice.read_until()  # the room has handled the burst
            slow.send(b"/quit\n")
            log.wait(1, "quit command")
            data, ending = read_everything(slow)
            assert b"\n* bye\n" in data
            assert ending == "closed"
            log.wait(1, "left")
            alice.send(b"/who\n")
            assert alice.read_until().data == b"* slow left\n"
            assert alice.read_until().data == b"* here: alice\n"
        finally:
            if call(factory.users.get, "slow") is user:  # the ghost, if the test failed
                call(user.transport.abortConnection)
