"""Checks for chapter 10 (a chat server).

10.1 `MeUser`: a subclass of the chapter's `ChatUser` with `/me ACTION`.
10.2 `MsgUser`: a subclass of the chapter's `ChatUser` with `/msg NICK TEXT`.
10.3 `CaselessRoom`: a subclass of the chapter's `ChatFactory` where nicknames that differ
     only in case (by `str.casefold`) are the same nickname.

Every check builds the chapter's `ChatFactory` (loaded from the notebook's `# module: chat`
cells), makes the reader's class its protocol, and connects users to it, each with its own
`StringTransport`: no network and no server, so a check takes milliseconds.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..notebook_code import load
from .legacy import Check, exercise

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "10_chat_server.ipynb"


@functools.cache
def _chat():
    return load(NOTEBOOK, "chat")


class _Room:
    """A room (the chapter's ChatFactory with the reader's protocol, or the reader's
    factory); its users are connected to StringTransports."""

    def __init__(self, protocol=None, factory=None):
        self.factory = factory() if factory else _chat().ChatFactory()
        if protocol:
            self.factory.protocol = protocol

    def connect(self, nick=None):
        from twisted.internet.testing import StringTransport

        user = self.factory.buildProtocol(None)
        user.makeConnection(StringTransport())
        if nick:
            self.send(user, nick)
        return user

    def users(self, *nicks):
        """Users who joined with these nicknames, with everything they heard so far cleared."""
        joined = [self.connect(nick) for nick in nicks]
        for user in joined:
            heard(user)
        return joined

    @staticmethod
    def send(user, text):
        user.dataReceived(text.encode() + b"\n")


def heard(user):
    """The lines the server wrote to `user` since the last call."""
    lines = user.transport.value().decode().splitlines()
    user.transport.clear()
    return lines


def _expect(user, expected, what):
    got = heard(user)
    who = user.nick or "a user with no nickname"
    assert got == expected, f"{what}: {who} got {got!r}, expected {expected!r}"


def _silent(what, *users):
    for user in users:
        _expect(user, [], what)


def _usage(lines, usage):
    """A check: each of `lines`, sent by alice, gets `usage` back, and bob hears nothing."""

    def check_usage(answer):
        room = _Room(answer)
        alice, bob = room.users("alice", "bob")
        for line in lines:
            room.send(alice, line)
            _expect(alice, [usage], f"alice sent {line!r}")
            _silent(f"alice sent {line!r}", bob)

    return check_usage


def _before_joining(line, present):
    """A check: `line` from a user with no nickname gets an error; `present` hears nothing."""

    def check_before_joining(answer):
        room = _Room(answer)
        (other,) = room.users(present)
        nobody = room.connect()
        heard(nobody)
        room.send(nobody, line)
        what = f"a user with no nickname sent {line!r}"
        _expect(nobody, ["! send your nickname first"], what)
        _silent(what, other)

    return check_before_joining


# -- 10.1 --------------------------------------------------------------------------


def _me_to_others(answer):
    room = _Room(answer)
    alice, bob, carol = room.users("alice", "bob", "carol")
    room.send(alice, "/me waves  happily")
    what = "alice sent '/me waves  happily'"
    for user in (bob, carol):
        _expect(user, ["* alice waves  happily"], what)
    _expect(alice, [], what)


def _others_still_work(answer):
    room = _Room(answer)
    alice, bob = room.users("alice", "bob")
    room.send(alice, "/who")
    _expect(alice, ["* here: alice, bob"], "alice sent '/who'")
    room.send(alice, "hello")
    _expect(bob, ["<alice> hello"], "alice sent 'hello'")
    room.send(bob, "/dance")
    _expect(bob, ["! unknown command /dance; try /nick NAME, /who, /quit"], "bob sent '/dance'")


exercise(
    "10.1",
    "/me",
    Check(
        "'/me ACTION' tells everyone else '* NICK ACTION', not the sender",
        _me_to_others,
        "self.factory.broadcast(f'* {self.nick} {action}', sender=self)",
    ),
    Check(
        "'/me' without an action: usage, to the sender only",
        _usage(["/me", "/me   "], "! usage: /me ACTION"),
        "the command gets its argument already stripped: check `if not action:` first and"
        " self.say('! usage: /me ACTION')",
    ),
    Check(
        "no nickname yet: an error to the sender, nothing to the room",
        _before_joining("/me waves", present="alice"),
        "self.nick is None until the user has joined: self.say('! send your nickname first')",
    ),
    Check(
        "messages and the other commands still work",
        _others_still_work,
        "only add a do_me method; ChatUser.textReceived already dispatches '/me' to it",
    ),
)

# -- 10.2 --------------------------------------------------------------------------


def _msg_to_one(answer):
    room = _Room(answer)
    alice, bob, carol = room.users("alice", "bob", "carol")
    room.send(alice, "/msg bob meet me at  noon")
    what = "alice sent '/msg bob meet me at  noon'"
    _expect(bob, ["[alice -> you] meet me at  noon"], what)
    _silent(what, alice, carol)


def _msg_unknown(answer):
    room = _Room(answer)
    alice, bob = room.users("alice", "bob")
    room.send(alice, "/msg dave hello")
    _expect(alice, ["! no such user: dave"], "alice sent '/msg dave hello'")
    _silent("alice sent '/msg dave hello'", bob)


def _msg_after_rename(answer):
    room = _Room(answer)
    alice, bob = room.users("alice", "bob")
    room.send(bob, "/msg alice hi")
    _expect(alice, ["[bob -> you] hi"], "bob sent '/msg alice hi'")
    room.send(bob, "/nick robert")
    heard(alice), heard(bob)
    room.send(alice, "/msg robert hey")
    _expect(bob, ["[alice -> you] hey"], "bob became robert; alice sent '/msg robert hey'")
    room.send(alice, "/msg bob hey")
    _expect(alice, ["! no such user: bob"], "bob became robert; alice sent '/msg bob hey'")
    room.send(bob, "/msg alice thanks")
    _expect(alice, ["[robert -> you] thanks"], "robert sent '/msg alice thanks'")


exercise(
    "10.2",
    "Private messages",
    Check(
        "'/msg NICK TEXT' reaches NICK only",
        _msg_to_one,
        "split the argument once: nick, _, text = arg.partition(' '); then"
        " self.factory.users[nick].say(f'[{self.nick} -> you] {text}')",
    ),
    Check(
        "an unknown nickname: an error to the sender",
        _msg_unknown,
        "look the nickname up in self.factory.users before using it",
    ),
    Check(
        "no text: usage, to the sender only",
        _usage(["/msg bob", "/msg bob   ", "/msg"], "! usage: /msg NICK TEXT"),
        "after the partition, text.strip() is empty when there is nothing to send",
    ),
    Check(
        "no nickname yet: an error to the sender, nothing to anyone",
        _before_joining("/msg bob hi", present="bob"),
        "self.nick is None until the user has joined: self.say('! send your nickname first')",
    ),
    Check(
        "messages follow /nick",
        _msg_after_rename,
        "look the receiver up in the room (self.factory.users) each time, and name the sender"
        " by self.nick as it is now",
    ),
)

# -- 10.3 --------------------------------------------------------------------------


def _case_taken(answer):
    room = _Room(factory=answer)
    (alice,) = room.users("alice")
    for line in ["Alice", "/nick ALICE"]:
        newcomer = room.connect()
        heard(newcomer)
        room.send(newcomer, line)
        what = f"alice is here; a newcomer sent {line!r}"
        _expect(newcomer, [f"! nickname {line.removeprefix('/nick ')} is taken"], what)
        _silent(what, alice)


def _casefold(answer):
    room = _Room(factory=answer)
    (straße,) = room.users("Straße")
    newcomer = room.connect()
    heard(newcomer)
    room.send(newcomer, "STRASSE")
    _expect(newcomer, ["! nickname STRASSE is taken"], "Straße is here; a newcomer sent 'STRASSE'")


def _own_case(answer):
    room = _Room(factory=answer)
    alice, bob = room.users("alice", "bob")
    room.send(alice, "/nick Alice")
    _expect(alice, ["* you are now Alice"], "alice sent '/nick Alice'")
    _expect(bob, ["* alice is now Alice"], "alice sent '/nick Alice'")
    room.send(bob, "/nick ALICE")
    _expect(bob, ["! nickname ALICE is taken"], "then bob sent '/nick ALICE'")


def _as_typed(answer):
    room = _Room(factory=answer)
    alice, bob = room.users("Alice", "bob")
    room.send(bob, "/who")
    _expect(bob, ["* here: Alice, bob"], "Alice and bob joined; bob sent '/who'")
    room.send(alice, "hi")
    _expect(bob, ["<Alice> hi"], "Alice sent 'hi'")
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    alice.connectionLost(Failure(ConnectionDone()))
    _expect(bob, ["* Alice left"], "Alice's connection was lost")
    carol = room.connect()
    heard(carol)
    room.send(carol, "alice")
    _expect(carol, ["* you are alice; here: alice, bob"], "after that, a newcomer sent 'alice'")


exercise(
    "10.3",
    "Nicknames ignore case",
    Check(
        "'Alice' and 'ALICE' are taken while alice is here",
        _case_taken,
        "compare nick.casefold() with the casefold() of every nickname in self.users",
    ),
    Check(
        "casefold, not lower: 'STRASSE' is taken while 'Straße' is here",
        _casefold,
        "'Straße'.lower() is 'straße', but 'Straße'.casefold() is 'strasse', like"
        " 'STRASSE'.casefold(): casefold() is the comparison Unicode defines for this",
    ),
    Check(
        "a user can change the case of their own nickname",
        _own_case,
        "leave the user's own nickname out of the comparison (self.users[n] is not user)",
    ),
    Check(
        "nicknames are shown as typed; leaving frees them",
        _as_typed,
        "keep self.users keyed by the nickname as typed, and only compare casefolded: then"
        " ChatFactory's who, broadcast and leave work unchanged",
    ),
)
