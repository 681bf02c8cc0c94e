"""Checks for chapter 21 (capstone: a Redis-compatible server in Twisted).

Each answer is the chapter's `Command(handler, arity)`: `handler(db, args)` gets the
Keyspace and the arguments after the command's name and returns a reply value (or raises
CommandError); `arity` counts as Redis does (-N: at least N).

21.1 `GETDEL key`: the value, and the key is gone; null for a missing or expired key (an
     empty value is a value); exactly one argument.
21.2 `MGET key [key ...]`: an array with one element per key given, in order (repeats
     included), null for a missing or expired key; at least one key.
21.3 `APPEND key value`: value added at the end, the new length as the reply; a missing
     or expired key counts as empty (and gets no deadline); an existing deadline is
     kept; exactly a key and a value.

Each check serves the chapter's RedisFactory (loaded from the notebook's `# module:
redis_server` cells) with a `task.Clock` and the answer added to a copy of COMMANDS, on
127.0.0.1, and talks to it with the real `redis` client (its default, RESP3). The handler
runs wrapped: an exception it raises, or a value `encode` cannot write, becomes an error
reply that names it (and is noted for the report), so the connection survives.
"""

from __future__ import annotations

from pathlib import Path

import twisted.logger  # noqa: F401  (the framework watches Twisted's log once imported)

from .. import reactor as _reactor
from ..notebook_code import load
from ..servers import serve
from . import exercise, fail, require, show
from .framework import describe_error, note_raised

TIMEOUT = 1.0  # how long the client waits for a reply (loopback: plenty)
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "21_redis_capstone.ipynb"
_loaded = {}


def chapter():
    """The notebook's `redis_server` module (loaded once)."""
    if "m" not in _loaded:
        _loaded["m"] = load(NOTEBOOK, "redis_server")
    return _loaded["m"]


# -- this chapter's harness (a job no other checker has): the answer served, and a client that
#    describes replies


class Session:
    """The chapter's server with `answer` added as command `name`, a task.Clock, and a
    redis client. `run(*words)` returns the reply, or the ResponseError it got."""

    def __init__(self, name: bytes, answer):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        from twisted.internet import task

        m = chapter()
        try:
            handler, arity = answer
        except (TypeError, ValueError):
            fail(f"your answer is {show(answer)}, not a Command(handler, arity)")
        require(callable(handler), f"the handler of your Command is {show(handler)}, "
                                   "not a function")
        if not isinstance(arity, int) or isinstance(arity, bool):
            try:  # a stub, whose arity is not filled in yet, is "not attempted"
                handler(m.Keyspace(task.Clock()), [b"k"])
            except NotImplementedError as exc:
                note_raised(exc)
                raise
            except Exception:  # noqa: S110  (any other outcome: the arity is what is wrong)
                pass
            fail(f"the arity of your Command is {show(arity)}, not an integer")

        def guarded(db, args):
            try:
                value = handler(db, args)
            except m.CommandError:
                raise
            except Exception as exc:
                note_raised(exc)
                return m.CommandError(f"ERR your handler raised {describe_error(exc)}")
            try:
                m.encode(value)
            except TypeError:
                return m.CommandError(f"ERR your handler returned {show(value)}, which has"
                                      " no RESP encoding (bytes, int, None, a list, Simple)")
            return value

        self.redis = redis
        self.clock = task.Clock()
        commands = {**m.COMMANDS, name: m.Command(guarded, arity)}
        self.server = serve("ch21-check", m.RedisFactory(self.clock, commands=commands))
        self.client = redis.Redis(port=self.server.port, retry=Retry(NoBackoff(), 0),
                                  socket_timeout=TIMEOUT)

    def run(self, *words):
        try:
            return self.client.execute_command(*words)
        except self.redis.ResponseError as exc:
            return exc
        except (self.redis.ConnectionError, self.redis.TimeoutError) as exc:
            fail(f"{' '.join(map(str, words))}: no reply ({type(exc).__name__}: {exc})")

    def advance(self, seconds: float) -> None:
        """Move the server's clock on (in the reactor thread)."""
        _reactor.call(self.clock.advance, seconds)

    def close(self):
        self.client.close()
        self.server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def describe(reply) -> str:
    if isinstance(reply, Exception):
        return f"the error {str(reply)!r}"
    return show(reply)


def expect(session, words, want, what=""):
    """Send `words`; fail unless the reply equals `want`."""
    got = session.run(*words)
    if isinstance(got, Exception) or got != want:
        fail(f"{' '.join(words)}{what} replied {describe(got)}, not {show(want)}")


ARITY = "wrong number of arguments for '{}' command"


def expect_arity_error(session, words, name):
    got = session.run(*words)
    require(isinstance(got, Exception) and str(got) == ARITY.format(name),
            f"{' '.join(words) or name.upper()} replied {describe(got)}, not Redis's "
            f"\"ERR {ARITY.format(name)}\"")
    expect(session, ["PING"], True, " (after that error)")


# -- 21.1 -------------------------------------------------------------------

getdel = exercise("21.1", "GETDEL")


@getdel.check("value", "GETDEL k replies with k's value",
              hint="Read the value the way GET does, before the key is gone.")
def _getdel_value(answer):
    with Session(b"GETDEL", answer) as s:
        s.run("SET", "k", "v1")
        expect(s, ["GETDEL", "k"], b"v1", " (k holds b'v1')")


@getdel.check("deletes", "after GETDEL k, k is gone",
              hint="Delete through the keyspace (db.delete), after reading the value.")
def _getdel_deletes(answer):
    with Session(b"GETDEL", answer) as s:
        s.run("SET", "k", "v1")
        s.run("SET", "other", "o")
        s.run("GETDEL", "k")
        expect(s, ["GET", "k"], None, " (after GETDEL k)")
        expect(s, ["GET", "other"], b"o", " (after GETDEL k)")
        s.run("SET", "d", "v", "EX", "100")
        s.run("GETDEL", "d")
        expect(s, ["INCR", "d"], 1, " (after SET d v EX 100, then GETDEL d)")
        got = s.run("TTL", "d")
        require(got == -1, f"TTL d (after SET d v EX 100, GETDEL d, INCR d) replied"
                f" {describe(got)}, not -1: GETDEL removed d's value but left its deadline"
                " behind, and INCR, which keeps a key's deadline, gave it to the new d")


@getdel.check("missing", "a missing key: a null, and still no key",
              hint="db.get gives None for a missing key; None is the null reply.")
def _getdel_missing(answer):
    with Session(b"GETDEL", answer) as s:
        expect(s, ["GETDEL", "nope"], None, " (nope does not exist)")
        expect(s, ["GET", "nope"], None, " (after GETDEL nope)")


@getdel.check("empty", "an empty value is a value: b''",
              hint="Test for None, not for truth: b'' is false but it is a value.")
def _getdel_empty(answer):
    with Session(b"GETDEL", answer) as s:
        s.run("SET", "e", "")
        expect(s, ["GETDEL", "e"], b"", " (e holds b'')")
        expect(s, ["GET", "e"], None, " (after GETDEL e)")


@getdel.check("expired", "an expired key: a null",
              hint="Go through db.get, which knows about deadlines; db.values does not.")
def _getdel_expired(answer):
    with Session(b"GETDEL", answer) as s:
        s.run("SET", "t", "old", "PX", "100")
        s.advance(0.1)
        expect(s, ["GETDEL", "t"], None, " (its PX 100 has run out)")
        s.run("SET", "t", "new")
        expect(s, ["TTL", "t"], -1, " (t set again without EX)")


@getdel.check("arity", "GETDEL with no key, or two keys: the arity error",
              hint="Redis counts the command's name in the arity.")
def _getdel_arity(answer):
    with Session(b"GETDEL", answer) as s:
        expect(s, ["GETDEL", "x"], None, " (x does not exist)")
        s.run("SET", "a", "1")
        expect_arity_error(s, ["GETDEL"], "getdel")
        expect_arity_error(s, ["GETDEL", "a", "b"], "getdel")
        expect(s, ["GET", "a"], b"1", " (after GETDEL a b was refused)")


# -- 21.2 -------------------------------------------------------------------

mget = exercise("21.2", "MGET")


@mget.check("values", "MGET a b: the values, in the order asked",
            hint="Build the list in the order of args.")
def _mget_values(answer):
    with Session(b"MGET", answer) as s:
        s.run("SET", "a", "1")
        s.run("SET", "b", "2")
        expect(s, ["MGET", "a", "b"], [b"1", b"2"])
        expect(s, ["MGET", "b", "a"], [b"2", b"1"])


@mget.check("single", "MGET a: an array of one",
            hint="One key still gets an array: a list with one element.")
def _mget_single(answer):
    with Session(b"MGET", answer) as s:
        s.run("SET", "a", "1")
        expect(s, ["MGET", "a"], [b"1"])


@mget.check("missing", "a missing key: a null in its place",
            hint="One element per key asked for: None where there is no value.")
def _mget_missing(answer):
    with Session(b"MGET", answer) as s:
        s.run("SET", "a", "1")
        s.run("SET", "b", "2")
        expect(s, ["MGET", "a", "nope", "b"], [b"1", None, b"2"])


@mget.check("repeated", "a key asked for twice: its value twice",
            hint="Do not collect the keys into a set or a dict.")
def _mget_repeated(answer):
    with Session(b"MGET", answer) as s:
        s.run("SET", "a", "1")
        expect(s, ["MGET", "a", "a", "nope", "nope"], [b"1", b"1", None, None])


@mget.check("empty-expired", "an empty value is b''; an expired key is a null",
            hint="db.get handles deadlines; test for None, not for truth.")
def _mget_empty_expired(answer):
    with Session(b"MGET", answer) as s:
        s.run("SET", "e", "")
        s.run("SET", "t", "old", "EX", "5")
        s.advance(5)
        expect(s, ["MGET", "e", "t"], [b"", None], " (e holds b'', t expired)")


@mget.check("arity", "MGET needs at least one key; any number is fine",
            hint="A negative arity -N means at least N words, the name included.")
def _mget_arity(answer):
    with Session(b"MGET", answer) as s:
        expect(s, ["MGET", "x"], [None], " (x does not exist)")
        expect_arity_error(s, ["MGET"], "mget")
        keys = [f"k{i}" for i in range(5)]
        expect(s, ["MGET", *keys], [None] * 5)


# -- 21.3 -------------------------------------------------------------------

append = exercise("21.3", "APPEND")


@append.check("length", "APPEND k v: v added at the end; the reply is the new length",
              hint="The reply is the new value's length in bytes, as an integer, not the"
                   " value itself; values are bytes, and stay bytes.")
def _append_length(answer):
    with Session(b"APPEND", answer) as s:
        s.run("SET", "k", "abc")
        expect(s, ["APPEND", "k", "de"], 5, " (k holds b'abc')")
        expect(s, ["GET", "k"], b"abcde", " (after APPEND k de)")
        expect(s, ["APPEND", "k", "\r\n"], 7, " (k holds b'abcde')")
        expect(s, ["APPEND", "k", "€"], 10, " (k holds 7 bytes; € is 3 bytes in UTF-8)")
        expect(s, ["GET", "k"], "abcde\r\n€".encode(), " (after APPEND k €)")


@append.check("missing", "a missing key is created with the value",
              hint="A missing key counts as b''.")
def _append_missing(answer):
    with Session(b"APPEND", answer) as s:
        expect(s, ["APPEND", "new", "xy"], 2, " (new does not exist)")
        expect(s, ["GET", "new"], b"xy", " (after APPEND new xy)")
        expect(s, ["TTL", "new"], -1, " (after APPEND new xy)")


@append.check("keeps-ttl", "APPEND keeps the key's deadline",
              hint="db.set clears a deadline unless you ask it to keep it.")
def _append_keeps_ttl(answer):
    with Session(b"APPEND", answer) as s:
        s.run("SET", "t", "a", "EX", "10")
        s.advance(4.5)
        expect(s, ["APPEND", "t", "b"], 2, " (t holds b'a', with EX 10 set 4.5 s ago)")
        expect(s, ["TTL", "t"], 6, " (t had EX 10, 4.5 s ago, then APPEND t b: 5.5 s left,"
               " which TTL rounds)")
        s.advance(5.5)
        expect(s, ["GET", "t"], None, " (10 s after SET t a EX 10, with an APPEND between)")


@append.check("expired", "an expired key counts as missing: no old value, no deadline",
              hint="Read through db.get, which knows about deadlines; db.values does not.")
def _append_expired(answer):
    with Session(b"APPEND", answer) as s:
        s.run("SET", "t", "old", "PX", "100")
        s.advance(0.1)
        expect(s, ["APPEND", "t", "new"], 3, " (t's PX 100 has run out)")
        expect(s, ["GET", "t"], b"new", " (after APPEND t new; the new t does not inherit the"
               " old t's deadline, which had run out)")
        expect(s, ["TTL", "t"], -1, " (after APPEND t new, t having expired before)")


@append.check("arity", "APPEND takes exactly a key and a value",
              hint="Redis counts the command's name in the arity.")
def _append_arity(answer):
    with Session(b"APPEND", answer) as s:
        expect(s, ["APPEND", "a", "1"], 1, " (a does not exist)")
        expect_arity_error(s, ["APPEND", "a"], "append")
        expect_arity_error(s, ["APPEND", "a", "2", "3"], "append")
        expect(s, ["GET", "a"], b"1", " (after the refused APPENDs)")
