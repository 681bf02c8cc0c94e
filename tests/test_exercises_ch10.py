"""Chapter 10 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake."""

import pytest

from helpers import check
from solutions.ch10 import CaselessRoom, MeUser, MsgUser, chat

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
def test_stub_fails_naming_the_exception(exercise_id, stub):
    report = check(exercise_id, stub)
    assert not report.passed
    assert "NotImplementedError: your code here" in repr(report)


# -- 10.1 -------------------------------------------------------------------------


class MeToAll(MeUser):
    """Wrong: the sender hears its own action too."""

    def do_me(self, action):
        self.factory.broadcast(f"* {self.nick} {action}")


class MeAnyway(MeUser):
    """Wrong: neither an empty action nor a missing nickname is refused."""

    def do_me(self, action):
        self.factory.broadcast(f"* {self.nick} {action}", sender=self)


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
    assert check("10.1", MeToAll).failed == {
        "'/me ACTION' tells everyone else '* NICK ACTION', not the sender",
        "'/me' without an action: usage, to the sender only",
        "no nickname yet: an error to the sender, nothing to the room",
    }


def test_no_checks_fail_usage_and_nickname():
    assert check("10.1", MeAnyway).failed == {
        "'/me' without an action: usage, to the sender only",
        "no nickname yet: an error to the sender, nothing to the room",
    }


def test_overriding_text_received_breaks_the_rest():
    report = check("10.1", MeOnlyDispatch)
    assert report.failed == {"messages and the other commands still work"}
    assert "alice sent '/who': alice got [], expected ['* here: alice, bob']" in repr(report)


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
    assert "'/msg NICK TEXT' reaches NICK only" in check("10.2", MsgToAll).failed


def test_unchecked_lookups_fail_with_the_key_error():
    report = check("10.2", MsgUnchecked)
    assert report.failed == {
        "an unknown nickname: an error to the sender",
        "no text: usage, to the sender only",
        "no nickname yet: an error to the sender, nothing to anyone",
        "messages follow /nick",
    }
    assert "KeyError: 'dave'" in repr(report)


def test_a_stale_sender_name_fails_after_nick():
    assert check("10.2", MsgRememberingNames).failed == {"messages follow /nick"}


# -- 10.3 -------------------------------------------------------------------------


class LowerRoom(CaselessRoom):
    """Wrong: lower() instead of casefold()."""

    def rename(self, user, nick):
        others = {name.lower() for name, other in self.users.items() if other is not user}
        if nick.lower() in others:
            user.say(f"! nickname {nick} is taken")
        else:
            chat.ChatFactory.rename(self, user, nick)


class SelfBlockingRoom(CaselessRoom):
    """Wrong: the user's own nickname counts as taken too."""

    def rename(self, user, nick):
        if nick.casefold() in {name.casefold() for name in self.users}:
            user.say(f"! nickname {nick} is taken")
        else:
            chat.ChatFactory.rename(self, user, nick)


class FoldedKeysRoom(CaselessRoom):
    """Wrong: stores the casefolded nickname, so everyone sees it folded."""

    def rename(self, user, nick):
        super().rename(user, nick.casefold())


def test_lower_fails_the_casefold_check():
    assert check("10.3", LowerRoom).failed == {
        "casefold, not lower: 'STRASSE' is taken while 'Straße' is here"
    }


def test_blocking_your_own_nickname_fails():
    assert check("10.3", SelfBlockingRoom).failed == {
        "a user can change the case of their own nickname"
    }


def test_folded_nicknames_fail_as_typed():
    report = check("10.3", FoldedKeysRoom)
    assert "nicknames are shown as typed; leaving frees them" in report.failed
