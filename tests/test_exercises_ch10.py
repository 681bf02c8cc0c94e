"""Chapter 10 exercises: learners' mistakes fail the check that names them, with a message
that names the cause (reference solutions: tests/test_exercises.py)."""

import re

import pytest

from helpers import check
from helpers.exercises import get
from solutions.ch10 import SOLUTIONS, CaselessRoom, MeUser, MsgUser, chat

# -- the notebook's stubs ---------------------------------------------------------


class StubMe(chat.ChatUser):
    def do_me(self, action):
        raise NotImplementedError("your code here")


class StubMsg(chat.ChatUser):
    def do_msg(self, arg):
        raise NotImplementedError("your code here")


class StubRoom(chat.ChatFactory):
    def rename(self, user, nick):
        raise NotImplementedError("your code here")


@pytest.mark.parametrize(
    ("exercise_id", "stub"), [("10.1", StubMe), ("10.2", StubMsg), ("10.3", StubRoom)]
)
def test_the_stub_is_not_attempted_and_shows_no_hint(exercise_id, stub):
    report = check(exercise_id, stub)
    assert not report.attempted, repr(report)
    assert "hint" not in repr(report)


@pytest.mark.parametrize("exercise_id", sorted(SOLUTIONS))
def test_no_hint_gives_the_code_or_the_answer_lines_away(exercise_id):
    for c in get(exercise_id).checks:
        assert not re.search(r"self\.|=|f'|f\"|\w\([^)]|\{", c.hint), (c.key, c.hint)
        for answer_line in ("* {", "-> you]", "! usage", "is taken", "send your nickname"):
            assert answer_line not in c.hint, (c.key, c.hint)


# -- 10.1 -------------------------------------------------------------------------


class MeToAll(MeUser):
    """Wrong: the sender hears its own action too, and nothing is refused."""

    def do_me(self, action):
        self.factory.broadcast(f"* {self.nick} {action}")


class MeAnyway(MeUser):
    """Wrong: neither an empty action nor a missing nickname is refused."""

    def do_me(self, action):
        self.factory.broadcast(f"* {self.nick} {action}", sender=self)


class MeNoneNick(MeUser):
    """Wrong: refuses an empty action, but not a user who has not joined."""

    def do_me(self, action):
        if not action:
            self.say("! usage: /me ACTION")
        else:
            self.factory.broadcast(f"* {self.nick} {action}", sender=self)


class MeUsageToTheRoom(MeUser):
    """Wrong: the usage error goes to the room instead of the sender."""

    def do_me(self, action):
        if self.nick is not None and not action:
            self.factory.broadcast("! usage: /me ACTION", sender=self)
        else:
            super().do_me(action)


class MeTidied(MeUser):
    """Wrong: 'tidies' the action, squeezing the spaces the user typed."""

    def do_me(self, action):
        super().do_me(" ".join(action.split()))


class MeOnlyDispatch(MeUser):
    """Wrong: handles /me in its own textReceived, and no other command any more."""

    def textReceived(self, text):
        if text.startswith("/me"):
            self.do_me(text[3:].strip())
        elif self.nick is None:
            self.factory.rename(self, text)
        else:
            self.factory.broadcast(f"<{self.nick}> {text}", sender=self)


def test_echoing_the_sender_fails():
    report = check("10.1", MeToAll)
    assert report.failed == {"not-to-sender", "usage", "no-nick"}
    assert report.message("not-to-sender") == (
        "alice sent '/me waves': alice got ['* alice waves'], expected []")


def test_refusing_nothing_fails_usage_and_nickname():
    report = check("10.1", MeAnyway)
    assert report.failed == {"usage", "no-nick"}
    assert report.message("usage") == (
        "alice sent '/me': alice got [], expected ['! usage: /me ACTION']")


def test_an_action_from_a_user_with_no_nickname_fails():
    report = check("10.1", MeNoneNick)
    assert report.failed == {"no-nick"}
    assert report.message("no-nick") == (
        "alice is here; a user with no nickname yet sent '/me waves': a user with no nickname"
        " got [], expected ['! send your nickname first']")


# Wrong: an `assert` stands where the refusal should be. Compiled here, not in this file,
# so that pytest does not rewrite the assert: a reader's has no message.
_reader = {"MeUser": MeUser}
exec(compile("""
class MeAsserted(MeUser):
    def do_me(self, action):
        assert self.nick is not None
        super().do_me(action)
""", "<reader's cell>", "exec"), _reader)
MeAsserted = _reader["MeAsserted"]


def test_an_assert_in_the_answer_is_the_answers_error_not_the_checks_verdict():
    report = check("10.1", MeAsserted)
    assert report.failed == {"no-nick"}
    assert report.message("no-nick") == (
        "a user with no nickname yet sent '/me waves': your code raised AssertionError"
        " (an assert in do_me, line 4)")


def test_a_usage_error_told_to_the_room_fails():
    report = check("10.1", MeUsageToTheRoom)
    assert report.failed == {"usage"}
    assert report.message("usage") == (
        "alice sent '/me': alice got [], expected ['! usage: /me ACTION']")


def test_squeezing_the_spaces_of_the_action_fails():
    report = check("10.1", MeTidied)
    assert report.failed == {"to-others"}
    assert report.message("to-others") == (
        "alice sent '/me waves  happily': bob got ['* alice waves happily'], expected"
        " ['* alice waves  happily']")


def test_overriding_text_received_breaks_the_rest():
    report = check("10.1", MeOnlyDispatch)
    assert report.failed == {"others-work"}  # /me still works
    assert report.message("others-work") == (
        "alice sent '/who': alice got [], expected ['* here: alice, bob']")


class MeUsageFirst(MeUser):
    """Wrong: looks at the action before the nickname."""

    def do_me(self, action):
        if not action:
            self.say("! usage: /me ACTION")
        else:
            super().do_me(action)


def test_a_usage_error_before_the_nickname_check_fails():
    report = check("10.1", MeUsageFirst)
    assert report.failed == {"no-nick"}
    assert report.message("no-nick") == (
        "alice is here; a user with no nickname yet sent '/me': a user with no nickname got"
        " ['! usage: /me ACTION'], expected ['! send your nickname first']")


# -- 10.2 -------------------------------------------------------------------------


class MsgToAll(MsgUser):
    """Wrong: a private message broadcast to the whole room."""

    def do_msg(self, arg):
        nick, _, text = arg.partition(" ")
        self.factory.broadcast(f"[{self.nick} -> you] {text}", sender=self)


class MsgUnchecked(MsgUser):
    """Wrong: trusts the nickname and the text to be there."""

    def do_msg(self, arg):
        nick, _, text = arg.partition(" ")
        self.factory.users[nick].say(f"[{self.nick} -> you] {text}")


class MsgSplitOnce(MsgUser):
    """Wrong: `nick, text = arg.split(" ", 1)` raises when there is no text."""

    def do_msg(self, arg):
        if self.nick is None:
            return self.say("! send your nickname first")
        nick, text = arg.split(" ", 1)
        super().do_msg(f"{nick} {text}")


class MsgWords(MsgUser):
    """Wrong: rebuilds the text from its words, squeezing the spaces."""

    def do_msg(self, arg):
        nick, *words = arg.split()
        super().do_msg(" ".join([nick, *words]))


class MsgWithReceipt(MsgUser):
    """Wrong: also tells the sender that the message went out."""

    def do_msg(self, arg):
        super().do_msg(arg)
        nick, _, text = arg.partition(" ")
        if self.nick and nick in self.factory.users and text.strip():
            self.say(f"[you -> {nick}] {text.strip()}")


class MsgNotToSelf(MsgUser):
    """Wrong: leaves the sender out of the lookup, as broadcast does."""

    def do_msg(self, arg):
        nick, _, text = arg.partition(" ")
        if self.factory.users.get(nick) is self and text.strip():
            self.say(f"! no such user: {nick}")
        else:
            super().do_msg(arg)


class MsgRememberingNames(MsgUser):
    """Wrong: names the sender by the nickname it first joined with."""

    def do_msg(self, arg):
        if not hasattr(self, "first_nick"):
            self.first_nick = self.nick
        nick, _, text = arg.partition(" ")
        if nick in self.factory.users and text.strip() and self.nick:
            self.factory.users[nick].say(f"[{self.first_nick} -> you] {text.strip()}")
        else:
            super().do_msg(arg)


def test_broadcasting_a_private_message_fails():
    report = check("10.2", MsgToAll)
    assert report.failed == {"nobody-else", "to-self", "unknown", "usage", "no-nick",
                             "follows-nick"}
    assert report.message("nobody-else") == (
        "alice sent '/msg bob hi': carol got ['[alice -> you] hi'], expected []")


def test_unchecked_lookups_fail_with_the_key_error():
    report = check("10.2", MsgUnchecked)
    assert report.failed == {"unknown", "usage", "no-nick", "follows-nick"}
    assert report.message("unknown") == (
        "alice sent '/msg dave hello': your code raised KeyError: 'dave'")


def test_splitting_into_exactly_two_fails_usage():
    report = check("10.2", MsgSplitOnce)
    assert report.failed == {"usage"}
    assert report.message("usage") == (
        "alice sent '/msg bob': your code raised ValueError: not enough values to unpack"
        " (expected 2, got 1)")


def test_squeezing_the_spaces_of_the_text_fails():
    report = check("10.2", MsgWords)
    assert report.failed == {"to-nick", "usage", "no-nick"}  # '/msg' alone: nothing to unpack
    assert report.message("to-nick") == (
        "alice sent '/msg bob meet me at  noon, 5 €': bob got ['[alice -> you] meet me at"
        " noon, 5 €'], expected ['[alice -> you] meet me at  noon, 5 €']")


def test_a_receipt_to_the_sender_fails():
    report = check("10.2", MsgWithReceipt)
    assert report.failed == {"nobody-else", "to-self", "follows-nick"}
    assert report.message("nobody-else") == (
        "alice sent '/msg bob hi': alice got ['[you -> bob] hi'], expected []")


def test_a_message_to_yourself_refused_fails():
    report = check("10.2", MsgNotToSelf)
    assert report.failed == {"to-self"}
    assert report.message("to-self") == (
        "alice sent '/msg alice buy milk': alice got ['! no such user: alice'], expected"
        " ['[alice -> you] buy milk']")


def test_a_stale_sender_name_fails_after_nick():
    report = check("10.2", MsgRememberingNames)
    assert report.failed == {"follows-nick"}
    assert report.message("follows-nick") == (
        "robert sent '/msg alice thanks': alice got ['[bob -> you] thanks'], expected"
        " ['[robert -> you] thanks']")


class MsgWhoLine(MsgUser):
    """Wrong: looks the nickname up in the room's /who line, a string: 'ali' is in it."""

    def do_msg(self, arg):
        nick, _, text = arg.partition(" ")
        if self.nick and text.strip() and nick in self.factory.who():
            self.factory.users[nick].say(f"[{self.nick} -> you] {text.strip()}")
        else:
            super().do_msg(arg)


class MsgNickCheckedLast(MsgUser):
    """Wrong: the nickname of the sender is checked after the receiver's."""

    def do_msg(self, arg):
        nick, _, text = arg.partition(" ")
        if text.strip() and nick not in self.factory.users:
            self.say(f"! no such user: {nick}")
        else:
            super().do_msg(arg)


def test_a_nickname_found_inside_the_who_line_fails():
    report = check("10.2", MsgWhoLine)
    assert report.failed == {"unknown"}
    assert report.message("unknown") == (
        "alice sent '/msg ali hello': your code raised KeyError: 'ali'")


def test_an_unknown_receiver_before_the_nickname_check_fails():
    report = check("10.2", MsgNickCheckedLast)
    assert report.failed == {"no-nick"}
    assert report.message("no-nick") == (
        "bob is here; a user with no nickname yet sent '/msg dave hi': a user with no nickname"
        " got ['! no such user: dave'], expected ['! send your nickname first']")


# -- 10.3 -------------------------------------------------------------------------


def taken(room, user, nick):
    """The check every wrong room below shares: taken, or hand over to ChatFactory."""
    user.say(f"! nickname {nick} is taken")


class LowerRoom(CaselessRoom):
    """Wrong: lower() instead of casefold()."""

    def rename(self, user, nick):
        others = {name.lower() for name, other in self.users.items() if other is not user}
        if nick.lower() in others:
            return taken(self, user, nick)
        chat.ChatFactory.rename(self, user, nick)


class SelfBlockingRoom(CaselessRoom):
    """Wrong: the user's own nickname counts as taken too."""

    def rename(self, user, nick):
        if nick.casefold() in {name.casefold() for name in self.users}:
            return taken(self, user, nick)
        chat.ChatFactory.rename(self, user, nick)


class FoldedKeysRoom(CaselessRoom):
    """Wrong: stores the casefolded nickname, so everyone sees it folded."""

    def rename(self, user, nick):
        super().rename(user, nick.casefold())


class RawKeysRoom(CaselessRoom):
    """Wrong: folds the new nickname but compares it with the names as typed."""

    def rename(self, user, nick):
        if nick.casefold() in self.users and self.users[nick.casefold()] is not user:
            return taken(self, user, nick)
        chat.ChatFactory.rename(self, user, nick)


class NewNickUnfoldedRoom(CaselessRoom):
    """Wrong: folds the names in the room, but not the new one."""

    def rename(self, user, nick):
        if nick in {name.casefold() for name, u in self.users.items() if u is not user}:
            return taken(self, user, nick)
        chat.ChatFactory.rename(self, user, nick)


class UnvalidatedRoom(CaselessRoom):
    """Wrong: rename rewritten whole, without ChatFactory's nickname rule."""

    def rename(self, user, nick):
        if nick.casefold() in {n.casefold() for n, u in self.users.items() if u is not user}:
            return taken(self, user, nick)
        if user.nick is None:
            user.nick, self.users[nick] = nick, user
            user.say(f"* you are {nick}; here: {self.who()}")
            self.broadcast(f"* {nick} joined", sender=user)
        else:
            old, user.nick = user.nick, nick
            self.users[nick] = self.users.pop(old)
            user.say(f"* you are now {nick}")
            self.broadcast(f"* {old} is now {nick}", sender=user)


class NamesLineRoom(CaselessRoom):
    """Wrong: looks the folded nickname up in one string of the others' folded names."""

    def rename(self, user, nick):
        others = ", ".join(n.casefold() for n, u in self.users.items() if u is not user)
        if nick.casefold() in others:
            return taken(self, user, nick)
        chat.ChatFactory.rename(self, user, nick)


class FoldedIndexRoom(CaselessRoom):
    """Wrong: an index of folded names that a change of case empties (new added, then old
    removed: the same key)."""

    def __init__(self, log=None):
        super().__init__(log)
        self.folded = {}

    def rename(self, user, nick):
        if self.folded.get(nick.casefold(), user) is not user:
            return taken(self, user, nick)
        old = user.nick
        chat.ChatFactory.rename(self, user, nick)
        if user.nick == nick:
            self.folded[nick.casefold()] = user
            if old:
                del self.folded[old.casefold()]

    def leave(self, user, reason):
        if user.nick:
            self.folded.pop(user.nick.casefold(), None)
        super().leave(user, reason)


class NamesKeptRoom(CaselessRoom):
    """Wrong: keeps a set of folded names of its own, and never takes one out."""

    def __init__(self, log=None):
        super().__init__(log)
        self.folded = set()

    def rename(self, user, nick):
        mine = user.nick.casefold() if user.nick else None
        if nick.casefold() in self.folded - {mine}:
            return taken(self, user, nick)
        chat.ChatFactory.rename(self, user, nick)
        if user.nick == nick:
            self.folded.add(nick.casefold())


class SharedNamesRoom(NamesKeptRoom):
    """Wrong: that set, in the class body: every room shares it."""

    folded = set()

    def __init__(self, log=None):
        chat.ChatFactory.__init__(self, log)

    def rename(self, user, nick):
        old = user.nick
        super().rename(user, nick)
        if old and user.nick == nick and old.casefold() != nick.casefold():
            self.folded.discard(old.casefold())

    def leave(self, user, reason):
        if user.nick in self.users:
            self.folded.discard(user.nick.casefold())
        super().leave(user, reason)


def test_lower_fails_the_casefold_check():
    report = check("10.3", LowerRoom)
    assert report.failed == {"casefold"}
    assert report.message("casefold") == (
        "Straße is here; a newcomer sent 'STRASSE': the newcomer got ['* you are STRASSE;"
        " here: STRASSE, Straße'], expected ['! nickname STRASSE is taken']")


def test_blocking_your_own_nickname_fails():
    report = check("10.3", SelfBlockingRoom)
    assert report.failed == {"own-case"}
    assert report.message("own-case") == (
        "alice sent '/nick Alice': alice got ['! nickname Alice is taken'], expected"
        " ['* you are now Alice']")


def test_folded_nicknames_fail_as_typed():
    report = check("10.3", FoldedKeysRoom)
    assert report.failed == {"taken", "casefold", "own-case", "as-typed", "frees", "own-room"}
    assert report.message("as-typed") == (
        "Alice and bob joined; bob sent '/who': bob got ['* here: alice, bob'], expected"
        " ['* here: Alice, bob']")


def test_comparing_with_the_names_as_typed_fails():
    report = check("10.3", RawKeysRoom)
    assert report.failed == {"taken", "casefold", "own-case"}
    assert report.message("taken") == (
        "Alice and bob are here; a newcomer sent 'alice': the newcomer got ['* you are alice;"
        " here: Alice, alice, bob'], expected ['! nickname alice is taken']")


def test_folding_one_side_only_fails():
    report = check("10.3", NewNickUnfoldedRoom)
    assert report.failed == {"taken", "casefold", "own-case"}
    assert report.message("taken") == (
        "Alice and bob are here; a newcomer sent '/nick aLiCe': the newcomer got ['* you are"
        " aLiCe; here: Alice, aLiCe, bob'], expected ['! nickname aLiCe is taken']")


def test_rename_without_the_nickname_rule_fails():
    report = check("10.3", UnvalidatedRoom)
    assert report.failed == {"valid"}
    assert report.message("valid") == (
        "alice is here; a newcomer sent 'two words': the newcomer got ['* you are two words;"
        " here: alice, two words'], expected ['! a nickname is 1 to 16 letters, digits or"
        " _']")


def test_names_never_freed_fail():
    report = check("10.3", NamesKeptRoom)
    assert report.failed == {"frees"}
    assert report.message("frees") == (
        "Alice left and bob became robert; a newcomer sent 'alice': the newcomer got"
        " ['! nickname alice is taken'], expected ['* you are alice; here: alice, robert']")


def test_names_shared_by_every_room_fail():
    report = check("10.3", SharedNamesRoom)
    assert "own-room" in report.failed
    assert report.message("own-room") == (
        "alice joined one room; a newcomer sent 'ALICE' to another room: the newcomer got"
        " ['! nickname ALICE is taken'], expected ['* you are ALICE; here: ALICE']")


def test_a_part_of_a_nickname_taken_for_the_whole_fails():
    report = check("10.3", NamesLineRoom)
    assert report.failed == {"taken"}
    assert report.message("taken") == (
        "Alice and bob are here; a newcomer sent 'Ali': the newcomer got ['! nickname Ali is"
        " taken'], expected ['* you are Ali; here: Ali, Alice, bob']")


def test_a_change_of_case_that_frees_the_name_fails():
    report = check("10.3", FoldedIndexRoom)
    assert report.failed == {"own-case"}
    assert report.message("own-case") == (
        "then bob sent '/nick ALICE': bob got ['* you are now ALICE'], expected ['! nickname"
        " ALICE is taken']")
