"""Reference solutions for chapter 10 (a chat server).

Run through the chapter's checkers by tests/test_exercises.py:
``check("10.1", SOLUTIONS["10.1"]).passed`` is True. `MeUser` and `MsgUser` extend the
chapter's `ChatUser`, `CaselessRoom` its `ChatFactory`, imported from the notebook's
`# module: chat` cells.
"""

from __future__ import annotations

from pathlib import Path

from helpers.notebook_code import load

chat = load(Path(__file__).resolve().parent.parent / "notebooks" / "10_chat_server.ipynb", "chat")


class MeUser(chat.ChatUser):
    """`/me ACTION` tells everyone else `* NICK ACTION`."""

    def do_me(self, action):
        if self.nick is None:
            self.say("! send your nickname first")
        elif not action:  # the argument arrives stripped
            self.say("! usage: /me ACTION")
        else:
            self.factory.broadcast(f"* {self.nick} {action}", sender=self)


class MsgUser(chat.ChatUser):
    """`/msg NICK TEXT` sends TEXT to NICK only."""

    def do_msg(self, arg):
        nick, _, text = arg.partition(" ")
        receiver = self.factory.users.get(nick)  # looked up now: nicknames change
        if self.nick is None:
            self.say("! send your nickname first")
        elif not text.strip():
            self.say("! usage: /msg NICK TEXT")
        elif receiver is None:
            self.say(f"! no such user: {nick}")
        else:
            receiver.say(f"[{self.nick} -> you] {text.strip()}")


class CaselessRoom(chat.ChatFactory):
    """Nicknames that differ only in case are one nickname; they are shown as typed."""

    def rename(self, user, nick):
        others = {name.casefold() for name, other in self.users.items() if other is not user}
        if nick.casefold() in others:
            user.say(f"! nickname {nick} is taken")
        else:
            super().rename(user, nick)  # the users dict stays keyed by the name as typed


SOLUTIONS = {
    "10.1": MeUser,
    "10.2": MsgUser,
    "10.3": CaselessRoom,
}
