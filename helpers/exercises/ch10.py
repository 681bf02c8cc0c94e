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
from . import exercise, require
from .answers import reader_code

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "10_chat_server.ipynb"
BAD_NICK = "! a nickname is 1 to 16 letters, digits or _"
FIRST = "! send your nickname first"


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
        """A new user, joined as `nick` if given; what it heard so far is cleared."""
        from twisted.internet.testing import StringTransport

        with reader_code("a user connected"):
            user = self.factory.buildProtocol(None)
            user.makeConnection(StringTransport())
        if nick:
            self.send(user, nick)
        heard(user)
        return user

    def users(self, *nicks):
        joined = [self.connect(nick) for nick in nicks]
        for user in joined:
            heard(user)  # "* x joined" of the ones after it
        return joined

    @staticmethod
    def send(user, text):
        who = getattr(user, "nick", None) or "a user with no nickname yet"
        with reader_code(f"{who} sent {text!r}"):
            user.dataReceived(text.encode() + b"\n")

    @staticmethod
    def leave(user):
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        who = getattr(user, "nick", None) or "a user with no nickname yet"
        with reader_code(f"{who} left (connectionLost)"):
            user.connectionLost(Failure(ConnectionDone()))


def heard(user):
    """The lines the server wrote to `user` since the last call."""
    lines = user.transport.value().decode().splitlines()
    user.transport.clear()
    return lines


def _name(user):
    return user.nick or "a user with no nickname"


def _expect(user, expected, what, who=None):
    got = heard(user)
    require(got == expected, f"{what}: {who or _name(user)} got {got!r}, expected {expected!r}")


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


def _before_joining(lines, present):
    """A check: each of `lines` from a user with no nickname gets the same error, whatever
    else is wrong with the line (its other errors are for users who have joined); `present`
    hears nothing."""

    def check_before_joining(answer):
        room = _Room(answer)
        (other,) = room.users(present)
        nobody = room.connect()
        for line in lines:
            room.send(nobody, line)
            what = f"{present} is here; a user with no nickname yet sent {line!r}"
            _expect(nobody, [FIRST], what)
            _silent(what, other)

    return check_before_joining


# -- 10.1 --------------------------------------------------------------------------

me = exercise("10.1", "/me")


@me.check("to-others", "'/me ACTION' gives every other user in the room '* NICK ACTION'",
          hint="The room already knows how to send one line to the users who have joined;"
               " the action arrives as the user typed it.")
def _me_to_others(answer):
    room = _Room(answer)
    alice, bob, carol = room.users("alice", "bob", "carol")
    newcomer = room.connect()
    room.send(alice, "/me waves  happily")
    what = "alice sent '/me waves  happily'"
    for user in (bob, carol):
        _expect(user, ["* alice waves  happily"], what)
    _expect(newcomer, [], what, "a user who has not joined yet")


@me.check("not-to-sender", "the sender hears nothing back",
          hint="An action is news for the others, like an ordinary message: see how"
               " ChatUser sends one without echoing it to its author.")
def _me_not_to_sender(answer):
    room = _Room(answer)
    alice, _ = room.users("alice", "bob")
    room.send(alice, "/me waves")
    _expect(alice, [], "alice sent '/me waves'")


@me.check("usage", "'/me' without an action: '! usage: /me ACTION', to the sender only",
          hint="Look at what do_me receives when nothing, or only spaces, follow '/me'; an"
               " error goes to the user who made it, as ChatUser's other '!' lines do.")
def _me_usage(answer):
    _usage(["/me", "/me   "], "! usage: /me ACTION")(answer)


@me.check("no-nick", "no nickname yet: that error before any other, to that user only",
          hint="Until its first line names it, a user has no nickname (see"
               " ChatUser.connectionMade): find that out before anything else.")
def _me_before_joining(answer):
    _before_joining(["/me waves", "/me"], present="alice")(answer)


@me.check("others-work", "after /me, messages and the other commands still work",
          hint="Add one do_ method and leave the rest of ChatUser alone: its textReceived"
               " already finds the command by its name.")
def _others_still_work(answer):
    room = _Room(answer)
    alice, bob = room.users("alice", "bob")
    room.send(alice, "/me waves")
    heard(alice), heard(bob)
    room.send(alice, "/who")
    _expect(alice, ["* here: alice, bob"], "alice sent '/who'")
    room.send(alice, "hello")
    _expect(bob, ["<alice> hello"], "alice sent 'hello'")
    room.send(bob, "/dance")
    _expect(bob, ["! unknown command /dance; try /nick NAME, /who, /quit"], "bob sent '/dance'")
    room.send(bob, "/nick robert")
    _expect(alice, ["* bob is now robert"], "bob sent '/nick robert'")


# -- 10.2 --------------------------------------------------------------------------

msg = exercise("10.2", "Private messages")


@msg.check("to-nick", "'/msg NICK TEXT' gives NICK '[SENDER -> you] TEXT', the text as typed",
           hint="The argument is 'NICK TEXT': only its first space separates the two, and the"
                " text keeps its own spaces.")
def _msg_to_nick(answer):
    room = _Room(answer)
    alice, bob, _ = room.users("alice", "bob", "carol")
    room.send(alice, "/msg bob meet me at  noon, 5 €")
    _expect(bob, ["[alice -> you] meet me at  noon, 5 €"],
            "alice sent '/msg bob meet me at  noon, 5 €'")


@msg.check("nobody-else", "the sender and everyone else hear nothing",
           hint="A private message is one line written to one user, the one the room knows by"
                " that nickname; nothing goes back to the sender.")
def _msg_nobody_else(answer):
    room = _Room(answer)
    alice, bob, carol = room.users("alice", "bob", "carol")
    newcomer = room.connect()
    room.send(alice, "/msg bob hi")
    what = "alice sent '/msg bob hi'"
    heard(bob)
    _silent(what, alice, carol)
    _expect(newcomer, [], what, "a user who has not joined yet")


@msg.check("to-self", "a message to your own nickname reaches you",
           hint="Find the receiver by the nickname alone: the sender is a user of the room"
                " like any other.")
def _msg_to_self(answer):
    room = _Room(answer)
    alice, bob = room.users("alice", "bob")
    room.send(alice, "/msg alice buy milk")
    _expect(alice, ["[alice -> you] buy milk"], "alice sent '/msg alice buy milk'")
    _silent("alice sent '/msg alice buy milk'", bob)


@msg.check("unknown", "an unknown nickname: '! no such user: NICK' to the sender only",
           hint="Ask the room whether someone has that nickname before writing to them: a"
                " lookup that raises ends the line with an error in the log, not a message.")
def _msg_unknown(answer):
    room = _Room(answer)
    alice, bob = room.users("alice", "bob")
    for nick in ("dave", "bobby", "ali"):  # "ali": part of a nickname is not a nickname
        line = f"/msg {nick} hello"
        room.send(alice, line)
        _expect(alice, [f"! no such user: {nick}"], f"alice sent {line!r}")
        _silent(f"alice sent {line!r}", bob)


@msg.check("usage", "no text: '! usage: /msg NICK TEXT', to the sender only",
           hint="After splitting, look at what is left for the text when the line ends"
                " after the nickname, or has no nickname either.")
def _msg_usage(answer):
    _usage(["/msg bob", "/msg bob   ", "/msg"], "! usage: /msg NICK TEXT")(answer)


@msg.check("no-nick", "no nickname yet: that error before any other, to that user only",
           hint="Until its first line names it, a user has no nickname, and nobody could"
                " answer it: find that out before anything else.")
def _msg_before_joining(answer):
    _before_joining(["/msg bob hi", "/msg dave hi", "/msg"], present="bob")(answer)


@msg.check("follows-nick", "messages follow /nick, for the sender and the receiver",
           hint="Look the receiver up in the room each time, and name the sender by the"
                " nickname it has now, not one remembered earlier.")
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


# -- 10.3 --------------------------------------------------------------------------

caseless = exercise("10.3", "Nicknames ignore case")


@caseless.check("taken", "while 'Alice' is here, 'alice' and 'ALICE' are taken, 'Ali' is not",
                hint="Two nicknames are one when their case-folded forms are equal: fold both"
                     " sides, the new nickname and each one already in the room.")
def _case_taken(answer):
    room = _Room(factory=answer)
    alice, bob = room.users("Alice", "bob")
    newcomer = room.connect()
    for user, line, nick in [(newcomer, "alice", "alice"), (newcomer, "/nick aLiCe", "aLiCe"),
                             (bob, "/nick ALICE", "ALICE")]:
        who = "bob" if user is bob else "the newcomer"
        what = f"Alice and bob are here; {'bob' if user is bob else 'a newcomer'} sent {line!r}"
        room.send(user, line)
        _expect(user, [f"! nickname {nick} is taken"], what, who)
        _silent(what, alice)
    room.send(bob, "/who")
    _expect(bob, ["* here: Alice, bob"], "then bob sent '/who'")
    room.send(newcomer, "Ali")  # a part of a nickname is another nickname
    _expect(newcomer, ["* you are Ali; here: Ali, Alice, bob"],
            "Alice and bob are here; a newcomer sent 'Ali'", "the newcomer")


@caseless.check("casefold", "casefold, not lower: 'Straße' and 'STRASSE' are one name",
                hint="lower() and casefold() differ on a few letters, the German ß among them:"
                     " compare what each gives for 'Straße' and for 'STRASSE'.")
def _casefold(answer):
    for here, new in [("Straße", "STRASSE"), ("strasse", "Straße")]:
        room = _Room(factory=answer)
        room.users(here)
        newcomer = room.connect()
        room.send(newcomer, new)
        _expect(newcomer, [f"! nickname {new} is taken"], f"{here} is here; a newcomer sent"
                f" {new!r}", "the newcomer")


@caseless.check("valid", "malformed nicknames are still refused",
                hint="ChatFactory.rename does more than look for a clash: an override"
                     " must keep every rule it replaces, or leave them to ChatFactory.")
def _still_valid(answer):
    room = _Room(factory=answer)
    (alice,) = room.users("alice")
    newcomer = room.connect()
    for line in ["two words", "x" * 17, "a!", "/nick bad-name"]:
        user = alice if line.startswith("/") else newcomer
        who = "alice" if user is alice else "the newcomer"
        what = f"alice is here; {'alice' if user is alice else 'a newcomer'} sent {line!r}"
        room.send(user, line)
        _expect(user, [BAD_NICK], what, who)
    room.send(alice, "/who")
    _expect(alice, ["* here: alice"], "then alice sent '/who'")


@caseless.check("own-case", "a user can change the case of their own nickname",
                hint="The user's own nickname is not someone else's: leave it out of the"
                     " comparison.")
def _own_case(answer):
    room = _Room(factory=answer)
    alice, bob = room.users("alice", "bob")
    room.send(alice, "/nick Alice")
    _expect(alice, ["* you are now Alice"], "alice sent '/nick Alice'")
    _expect(bob, ["* alice is now Alice"], "alice sent '/nick Alice'")
    room.send(bob, "/nick ALICE")
    _expect(bob, ["! nickname ALICE is taken"], "then bob sent '/nick ALICE'", "bob")


@caseless.check("as-typed", "nicknames are shown as they were typed",
                hint="Fold only to compare: the room can keep its users under the names as"
                     " typed, and then who, broadcast and leave need no change.")
def _as_typed(answer):
    room = _Room(factory=answer)
    alice, bob = room.users("Alice", "bob")
    room.send(bob, "/who")
    _expect(bob, ["* here: Alice, bob"], "Alice and bob joined; bob sent '/who'")
    room.send(alice, "hi")
    _expect(bob, ["<Alice> hi"], "Alice sent 'hi'")
    room.send(bob, "/nick Robert")
    _expect(alice, ["* bob is now Robert"], "bob sent '/nick Robert'")
    _expect(bob, ["* you are now Robert"], "bob sent '/nick Robert'")
    room.leave(alice)
    _expect(bob, ["* Alice left"], "Alice's connection was lost")


@caseless.check("frees", "leaving or renaming frees a name, in any case",
                hint="Whatever you keep about nicknames must change when the room's users do:"
                     " on a rename and when a user leaves.")
def _frees(answer):
    room = _Room(factory=answer)
    alice, bob = room.users("Alice", "bob")
    room.send(bob, "/nick robert")
    heard(alice), heard(bob)
    room.leave(alice)
    heard(bob)
    for line, here in [("alice", "alice, robert"), ("BOB", "BOB, alice, robert")]:
        newcomer = room.connect()
        room.send(newcomer, line)
        _expect(newcomer, [f"* you are {line}; here: {here}"],
                f"Alice left and bob became robert; a newcomer sent {line!r}", "the newcomer")


@caseless.check("own-room", "each room has its own nicknames",
                hint="State that belongs to one room is made in that room's __init__, not in"
                     " the class body, where every room would share it.")
def _own_room(answer):
    first, second = _Room(factory=answer), _Room(factory=answer)
    first.users("alice")
    newcomer = second.connect()
    second.send(newcomer, "ALICE")
    _expect(newcomer, ["* you are ALICE; here: ALICE"],
            "alice joined one room; a newcomer sent 'ALICE' to another room", "the newcomer")
