"""Checks for chapter 18 (threads and executors).

18.1 make_lookup_factory(lookup) -> factory         -- blocking lookups off the reactor
18.2 async map_in_processes(fn, items, workers=2)   -- a process pool awaited from asyncio

18.1 serves the reader's factory on loopback with a lookup that blocks, talks to it from two
clients while a heartbeat runs in the reactor (several lines in one write, a line cut inside
a UTF-8 character across two writes, a lookup that raises), and records which thread made
each write.
18.2 runs the reader's coroutine on a fresh asyncio loop in the check's thread, with functions
from notebooks/workers18.py and this module's `nap`, while a heartbeat task runs on that loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import itertools
import multiprocessing
import threading
import time

from .. import reactor as _reactor
from ..servers import serve
from . import CheckFailed, exercise, observation, require, show
from .wire import Client


def _longest_gap(beats):
    return max((b - a for a, b in itertools.pairwise(beats)), default=0.0)


# -- 18.1 -------------------------------------------------------------------

lookup_server = exercise("18.1", "A lookup server that never blocks the reactor")

SLOW, QUICK, OTHER = 0.2, 0.02, 0.2  # how long lookups block: "slow" (at least), most, "b"
OVERLAP_WAIT = 1.0  # lookup("slow") waits this long at most for client b's lookup to start
READ_WAIT = 1.0  # how long a client waits for an answer that comes at once (beyond lookups)
CUT = "k\u20ac"  # a key sent in two writes, cut inside its euro sign


class _Lookup:
    """The checker's blocking lookup. lookup("slow") blocks until client b's lookup("b")
    has started (or OVERLAP_WAIT has passed), then until client b has read its answer (or
    OVERLAP_WAIT has passed again), and for SLOW seconds at least: whether the two ran at
    the same time, and whether b's answer waited for a's lookup, are then known without
    timing anything."""

    def __init__(self):
        self.slow_started, self.b_started = threading.Event(), threading.Event()
        self.b_answered = threading.Event()  # set by the check when client b has read
        self.overlapped = self.b_first = False
        self.keys = []  # every key lookup was called with, in order

    def __call__(self, key):
        self.keys.append(key)
        if key == "bad":
            raise LookupError("no such key")
        if key == "b":
            self.b_started.set()
        if key == "slow":
            began = time.monotonic()
            self.slow_started.set()
            self.overlapped = self.b_started.wait(OVERLAP_WAIT)
            self.b_first = self.overlapped and self.b_answered.wait(OVERLAP_WAIT)
            time.sleep(max(0.0, SLOW - (time.monotonic() - began)))
        else:
            time.sleep(OTHER if key == "b" else QUICK)
        return key.upper()


def _recording(factory):
    """Wrap the reader's factory: every write through a transport notes its thread."""
    from twisted.protocols import policies

    class Recorder(policies.ProtocolWrapper):
        def write(self, data):
            self.factory.writers.add(threading.current_thread().name)
            super().write(data)

        def writeSequence(self, data):
            self.factory.writers.add(threading.current_thread().name)
            super().writeSequence(data)

    class Recording(policies.WrappingFactory):
        protocol = Recorder

        def __init__(self, wrapped):
            super().__init__(wrapped)
            self.writers = set()

    return Recording(factory)


def _lines(client, n, timeout):
    got = []
    for _ in range(n):
        received = client.read_until(b"\n", timeout)
        if received.ending != "complete":
            got.append(f"<{received}>")
            break
        got.append(received.data.decode(errors="replace").rstrip("\r\n"))
    return got


@observation
def _lookup_session(make_factory):
    from twisted.internet import task

    lookup = _Lookup()
    factory = make_factory(lookup)
    require(factory is not None and hasattr(factory, "buildProtocol"),
            f"make_lookup_factory(lookup) returned {show(factory)}, expected a factory")
    recording = _recording(factory)
    reactor = _reactor.start()
    beats = []
    heartbeat = task.LoopingCall(lambda: beats.append(reactor.seconds()))
    _reactor.call(lambda: heartbeat.start(0.02) and None)
    try:
        with serve("ch18-check-lookup", recording) as server, \
                Client(server.port) as a, Client(server.port) as b:
            began = time.monotonic()
            a.send(b"slow\nfast\r\n")
            lookup.slow_started.wait(READ_WAIT / 2)  # b's line comes once a's lookup runs
            b.send(b"b\n")
            try:
                first_b = _lines(b, 1, OVERLAP_WAIT + READ_WAIT)
            finally:
                lookup.b_answered.set()
            first_a = _lines(a, 2, READ_WAIT + SLOW)
            all_three = time.monotonic() - began
            # a failing lookup, the next line, then a key cut inside its euro sign: its
            # first part comes in the same write as the line before, the rest once that
            # line is answered; the first answer missing ends the session
            cut = CUT.encode()
            after_error = []
            for data in (b"bad\n", b"c\n" + cut[:-1], cut[-1:] + b"\n"):
                a.send(data)
                after_error += _lines(a, 1, READ_WAIT)
                if after_error[-1].startswith("<"):
                    break
    finally:
        _reactor.call(heartbeat.stop)
    return dict(a=first_a, b=first_b, seconds=all_three, error=after_error,
                gap=_longest_gap(beats), writers=recording.writers,
                overlapped=lookup.overlapped, b_first=lookup.b_first, keys=lookup.keys)


@lookup_server.check("answers", "KEY=VALUE for each line (\\n or \\r\\n), an error line"
                     " when lookup raises, and the connection stays open",
                     hint="A line may come in several reads, and several in one read; strip"
                          " the line end before calling lookup. An exception in a thread"
                          " arrives as a failure of the Deferred: add an errback that answers.")
def _answers(make_factory):
    seen = _lookup_session(make_factory)
    require(sorted(seen["a"]) == ["fast=FAST", "slow=SLOW"],
            f"one client sent b'slow\\nfast\\r\\n' and read {seen['a']},"
            " expected the lines 'slow=SLOW' and 'fast=FAST'")
    require(seen["b"] == ["b=B"], f"a second client sent b'b\\n' and read {seen['b']},"
            " expected ['b=B']")
    want = ["bad: error: no such key", "c=C", f"{CUT}={CUT.upper()}"]
    cut = CUT.encode()
    first, rest = b"c\n" + cut[:-1], cut[-1:] + b"\n"
    require(seen["error"] == want,
            f"lookup('bad') raises LookupError('no such key'); then the client sent"
            f" {show(first)} and, once answered, the rest of the key {CUT!r} ({show(rest)}):"
            f" it read {seen['error']}, expected {want}")


@lookup_server.check("never-blocks", "the reactor keeps running while lookups block",
                     hint="lookup blocks: call it in a thread (deferToThread), never in"
                          " lineReceived itself.")
def _never_blocks(make_factory):
    seen = _lookup_session(make_factory)
    # A lookup in the reactor thread silences it for SLOW (0.2 s) at least; a loaded machine
    # can delay a heartbeat by tens of milliseconds without anything blocking.
    require(seen["gap"] < 0.9 * SLOW,
            f"a heartbeat in the reactor, due every 20 ms, was silent for"
            f" {seen['gap'] * 1000:.0f} ms while lookups ran: lookup ran in the reactor thread")


@lookup_server.check("concurrent", "lookups for different clients run at the same time, and"
                     " one client's answer never waits for another client's lookup",
                     hint="Each lookup needs a thread of its own; and what keeps the order of"
                          " one connection's answers belongs to that connection alone.")
def _concurrent(make_factory):
    seen = _lookup_session(make_factory)
    require("slow" in seen["keys"] and "b" in seen["keys"],
            f"clients a and b sent b'slow\\nfast\\r\\n' and b'b\\n', but lookup was called"
            f" with {seen['keys']}, never with both 'slow' and 'b': nothing to compare")
    require(seen["overlapped"],
            f"client a sent b'slow\\n', then client b sent b'b\\n'; lookup('slow') blocked,"
            f" waiting up to {OVERLAP_WAIT:g} s for lookup('b') to start beside it, and it"
            " never did: the lookups ran one after the other (all three answers took"
            f" {seen['seconds']:.2f} s)")
    require(seen["b_first"],
            f"client a sent b'slow\\n', then client b sent b'b\\n'; lookup('b') ran beside"
            f" lookup('slow'), which then blocked until client b had its answer, waiting up to"
            f" {OVERLAP_WAIT:g} s: b's answer came only after it, so one client's answer"
            f" waited for another client's lookup (client b read {seen['b']})")


@lookup_server.check("in-order", "answers on one connection come in the order of the requests",
                     hint="A later lookup can finish first. Chain each answer after the"
                          " previous one on that connection (keep the last Deferred).")
def _in_order(make_factory):
    seen = _lookup_session(make_factory)
    require(seen["a"] == ["slow=SLOW", "fast=FAST"],
            f"a client sent b'slow\\nfast\\r\\n' in one write (slow takes {SLOW:g} s, fast"
            f" {QUICK:g} s) and read {seen['a']}, expected ['slow=SLOW', 'fast=FAST']")


@lookup_server.check("reactor-writes", "every write happens in the reactor thread",
                     hint="Let the worker return the value; write it in a callback of the"
                          " Deferred (or through reactor.callFromThread), not in the worker.")
def _reactor_writes(make_factory):
    seen = _lookup_session(make_factory)
    others = sorted(seen["writers"] - {"CrochetReactor"})
    require(not others, f"transport.write was called from thread(s) {others}, not only the"
            " reactor thread: Twisted is not thread-safe")


# -- 18.2 -------------------------------------------------------------------

process_map = exercise("18.2", "A process pool from asyncio")

NAP = 0.3  # the first of two jobs blocks this long, the second a third of it
NAPS = [NAP, round(NAP / 3, 3)]
ONE_WORKER_NAP = 0.1  # each of three jobs given a pool of one worker blocks this long


def nap(seconds: float):
    """The checker's job: block `seconds`; return (pid, began, ended) by the monotonic
    clock, which every process of the machine shares (Linux), so spans can be compared."""
    import os

    began = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), began, time.monotonic()


def workers():
    """notebooks/workers18.py: `notebooks.workers18`, importable here and in spawned children
    (the editable install puts the repository on sys.path)."""
    return importlib.import_module("notebooks.workers18")


async def _with_heartbeat(coro, beats):
    loop = asyncio.get_running_loop()

    async def beat():
        while True:
            beats.append(loop.time())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(beat())
    await asyncio.sleep(0)  # the first beat, before the answer runs
    try:
        return await asyncio.wait_for(coro, 4)
    finally:
        beats.append(loop.time())  # the gap up to the end counts too
        ticker.cancel()


@contextlib.contextmanager
def _pools_kept():
    """Hold every ProcessPoolExecutor made meanwhile: a pool the answer drops without
    shutting it down would otherwise be shut down by the garbage collector, sooner or
    later, and the check would see its workers or not by chance."""
    cls, made = concurrent.futures.ProcessPoolExecutor, []
    original = cls.__init__

    def keep(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    cls.__init__ = keep
    try:
        yield made
    finally:
        cls.__init__ = original


def _run(answer, fn, items, **kwargs):
    """Run the answer on a fresh loop: (outcome, seconds, beats, children left)."""
    from .answers import Outcome

    before = set(multiprocessing.active_children())
    beats, began, left = [], time.monotonic(), []
    with _pools_kept() as pools:
        try:
            coro = answer(fn, items, **kwargs)
            require(asyncio.iscoroutine(coro),
                    f"map_in_processes(...) returned {show(coro)}, expected a coroutine"
                    " (define it with async def)")
            outcome = Outcome("returned", asyncio.run(_with_heartbeat(coro, beats)))
        except CheckFailed:
            raise
        except Exception as exc:
            from .framework import note_raised

            note_raised(exc)
            outcome = Outcome("raised", exc)
        finally:
            seconds = time.monotonic() - began
            left = [p for p in multiprocessing.active_children() if p not in before]
            for pool in pools:  # a pool nobody shut down: end it here
                pool.shutdown(wait=True, cancel_futures=True)
            for p in left:
                p.join(2)
                if p.is_alive():
                    p.terminate()
                    p.join(2)
    return outcome, seconds, _longest_gap(beats), len(left)


@observation
def _naps(answer):
    return _run(answer, nap, NAPS, workers=2)


@process_map.check("results", "fn(item) for every item, in the order of items",
                   hint="Submit every item before awaiting any result, then gather them in"
                        " the order you submitted them.")
def _results(answer):
    outcome, *_ = _naps(answer)  # the first job takes longest: it finishes last
    require(outcome.ok and isinstance(outcome.value, list) and len(outcome.value) == 2,
            f"map_in_processes(nap, {NAPS}, workers=2) {outcome}, expected two results")
    spans = [round(ended - began, 1) for _, began, ended in outcome.value]
    require(spans[0] >= spans[1],
            f"map_in_processes(nap, {NAPS}, workers=2): nap(s) returns (pid, began, ended);"
            f" the results it returned napped {spans} s, in the order the jobs finished, not"
            " in the order of items")
    outcome, *_ = _run(answer, workers().square, [3, 1, 2, 5])
    require(outcome.kind == "returned" and outcome.value == [9, 1, 4, 25],
            f"map_in_processes(square, [3, 1, 2, 5]) {outcome}, expected [9, 1, 4, 25]")


@process_map.check("processes", "the jobs run in `workers` other processes, at the same time",
                   hint="A pool of processes, as many as `workers` says; threads share this"
                        " process (and its GIL).")
def _processes(answer):
    import os

    outcome, _, _, _ = _naps(answer)
    require(outcome.kind == "returned" and isinstance(outcome.value, list)
            and len(outcome.value) == 2,
            f"map_in_processes(nap, {NAPS}, workers=2) {outcome}")
    (pid1, began1, ended1), (pid2, began2, ended2) = outcome.value
    pids = [pid1, pid2]
    require(os.getpid() not in pids, f"the jobs ran in this process (pids {pids}, this"
            f" process is {os.getpid()}): use processes, not threads")
    together = min(ended1, ended2) - max(began1, began2)  # > 0: their naps overlapped
    require(len(set(pids)) == 2 and together > 0,
            f"two jobs of {NAPS} s with workers=2 ran in {len(set(pids))} process(es),"
            f" {'at the same time' if together > 0 else 'one after the other'}; expected two"
            " processes at the same time")
    outcome, *_ = _run(answer, nap, [ONE_WORKER_NAP] * 3, workers=1)
    require(outcome.ok, f"map_in_processes(nap, {[ONE_WORKER_NAP] * 3}, workers=1) {outcome}")
    pids = {pid for pid, _, _ in outcome.value}
    require(len(pids) == 1, f"three jobs of {ONE_WORKER_NAP:g} s with workers=1 ran in"
            f" {len(pids)} processes: the pool had more worker processes than `workers` asked")


@process_map.check("loop-runs", "the event loop keeps running while the jobs run",
                   hint="Waiting on a future or on pool.map blocks the loop; await"
                        " loop.run_in_executor(...) (or asyncio.wrap_future) instead.")
def _loop_runs(answer):
    outcome, _, gap, _ = _naps(answer)
    require(outcome.ok, f"map_in_processes(nap, {NAPS}, workers=2) {outcome}")
    # A blocked loop is silent for a whole nap; forking the pool's workers from the loop
    # thread may pause it for tens of milliseconds on a loaded machine.
    require(gap < 0.8 * NAP, f"a task on the same loop, due every 10 ms, was silent for"
            f" {gap * 1000:.0f} ms while the jobs ran: the coroutine blocked the loop")


@process_map.check("raises", "an exception in fn is raised by the coroutine",
                   hint="Awaiting a job's future raises what fn raised; let it propagate.")
def _raises(answer):
    outcome, _, _, left = _run(answer, workers().check_positive, [1, -2, 3])
    require(outcome.is_error(ValueError) and "negative: -2" in str(outcome.error),
            f"map_in_processes(check_positive, [1, -2, 3]) {outcome}, expected it to raise"
            " ValueError: negative: -2")
    require(left == 0, f"after the exception, {left} worker process(es) were still running:"
            " the pool was not shut down on the way out, or not waited for")


@process_map.check("shut-down", "the pool is shut down when the coroutine returns",
                   hint="Shut the executor down on every way out, and let the shutdown wait"
                        " until its worker processes have ended.")
def _shut_down(answer):
    outcome, _, _, left = _naps(answer)
    require(outcome.ok, f"map_in_processes(nap, {NAPS}, workers=2) {outcome}")
    require(left == 0, f"after map_in_processes returned, {left} worker process(es) of its"
            " pool were still running: the pool was not shut down, or its shutdown did not"
            " wait for them")
