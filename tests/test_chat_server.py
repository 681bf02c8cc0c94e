"""Tests of chapter 10's chat server.

The unit tests are the ones chapter 15 teaches: its `# module: chat_tests` cells define
them (SynchronousTestCase classes, each client on a StringTransport, time on a task.Clock),
and pytest runs them from here. The test below them needs a real connection on 127.0.0.1.
"""

import socket
from pathlib import Path

from helpers import EventLog, serve
from helpers.exercises.wire import Client
from helpers.notebook_code import load
from helpers.reactor import call

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
chat = load(NOTEBOOKS / "10_chat_server.ipynb", "chat")
chat_tests = load(NOTEBOOKS / "15_testing_network_code.ipynb", "chat_tests")

# Bound by name so that pytest collects them (not ChatTestCase, their base: no tests).
JoiningTests = chat_tests.JoiningTests
TalkingAndLeavingTests = chat_tests.TalkingAndLeavingTests
BadInputTests = chat_tests.BadInputTests
SlowClientTests = chat_tests.SlowClientTests


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
