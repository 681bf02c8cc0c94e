"""Reference solutions for chapter 21 (capstone: a Redis-compatible server in Twisted).

Run through the chapter's checkers by tests/test_exercises.py:
``check("21.1", SOLUTIONS["21.1"]).passed`` is True. The handlers use only the
Keyspace's methods (`db.get`, `db.delete`), which honour deadlines.
"""

from __future__ import annotations

from collections import namedtuple

# The chapter's Command, as the notebook defines it (a Command from the notebook works the same).
Command = namedtuple("Command", "handler arity")


def getdel_handler(db, args):
    value = db.get(args[0])  # None if missing or expired
    if value is not None:
        db.delete(args[0])
    return value


def mget_handler(db, args):
    return [db.get(key) for key in args]


def append_handler(db, args):
    key, more = args
    value = (db.get(key) or b"") + more  # db.get: an expired key counts as missing
    db.set(key, value, keep_ttl=True)  # APPEND keeps the deadline, as INCR does
    return len(value)


getdel = Command(getdel_handler, 2)
mget = Command(mget_handler, -2)
append = Command(append_handler, 3)

SOLUTIONS = {"21.1": getdel, "21.2": mget, "21.3": append}
