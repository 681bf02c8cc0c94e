"""Checks for chapter 15 (testing network code).

The answers are tests. Each checker runs the reader's tests against the chapter's correct
implementation, where they must pass, and against broken ones, where they must fail; the
broken ones live here and are never shown.

15.1 `AdderTests`: a unittest TestCase class whose tests make their protocol with
     `self.protocol_class()`. They must pass against the chapter's `Adder`, and fail against
     an adder that answers only requests that arrive whole in one dataReceived, one that
     answers only the first request of each dataReceived, one that closes after a bad line,
     and one that says bye to quit without closing. A trial (asynchronous) TestCase is
     refused unrun: it would run the kernel's reactor.
15.2 `IdleTests`: the same for `Idle(clock)` (echo; 10 s without input: "idle timeout",
     close), on a task.Clock and in well under a second; the broken ones never restart the
     timer, postpone it with `DelayedCall.delay` instead of `reset`, start it only at the
     first input, or leave it scheduled after connectionLost. A run that takes a second
     waited real time.
15.3 `same_lines_for_every_split(Decoder)`: a Hypothesis test of a line decoder class; it
     must hold for chapter 02's `LineDecoder` and fail for decoders that lose a line cut
     across chunks, decode each chunk on its own, return only the first line of a chunk, or
     drop the lines before a bad line. The checker runs it with derandomize=True,
     database=None and at least 200 examples, and counts the decoders it makes from its
     Decoder argument.
15.4 `adder_over_tcp(address)`: a loopback test with a plain socket: it must pass against a
     real Adder server, and against one that sends each answer in two pieces, fail within
     2 s against one that stays open after bye and one that never answers, and leave its
     socket closed when it returns, passing or failing (against either).

The correct `Adder` and `Idle` are the chapter's own, loaded from its `# module: adder` and
`# module: idle` cells; `LineDecoder` is chapter 02's (`# module: framing`).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import sys
import tempfile
import time
import types
import unittest
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import exercise, fail, observation, require, run_answer, show
from .framework import CheckFailed, describe_error, note_raised

NOTEBOOKS = Path(__file__).parent.parent.parent / "notebooks"
TESTS_LIMIT = 2.0  # s: a run of the reader's unit tests (15.1, 15.2) takes milliseconds
CLOCK_SECONDS = 1.0  # s: 15.2, "well under a second": a slower run waits real time
MIN_EXAMPLES = 200  # 15.3: the least number of examples a property is run with
PROPERTY_LIMIT = 4.0  # s: 15.3, one run of the property (a check may take 5 s in all)
TCP_LIMIT = 2.0  # s: 15.4, a loopback test against a server that misbehaves
LINGER = 1.0  # s: 15.4, how long the server may take to see a closed socket close
PIECE_GAP = 0.05  # s: 15.4, between the pieces of an answer sent in two


@functools.cache
def _module(notebook: str, name: str):
    from ..notebook_code import load

    return load(NOTEBOOKS / notebook, name)


def _adder():
    return _module("15_testing_network_code.ipynb", "adder").Adder


def _idle():
    return _module("15_testing_network_code.ipynb", "idle").Idle


def _framing(answer=None):
    """Chapter 02's `framing` module: the one the reader's code uses, if it names one.

    Each `load` makes a new module with its own exception classes, so the decoders the
    checker passes must raise the FramingError that the reader's property catches."""
    inner = getattr(getattr(answer, "hypothesis", None), "inner_test", answer)
    used = getattr(inner, "__globals__", {}).get("framing")
    if isinstance(used, types.ModuleType) and hasattr(used, "LineDecoder"):
        return used
    return sys.modules.get("helpers.notebook_code.framing") or _module(
        "02_streams_and_framing.ipynb", "framing")


# -- running the reader's TestCase ---------------------------------------------------------


class _Result(unittest.TestResult):
    """Keeps each failing test's exception (not just its text)."""

    def __init__(self):
        super().__init__()
        self.problems: dict[str, BaseException] = {}
        self.ran: list[str] = []

    def startTest(self, test):
        super().startTest(test)
        self.ran.append(test._testMethodName)

    def addFailure(self, test, err):
        self.problems[test._testMethodName] = err[1]

    def addError(self, test, err):
        self.problems[test._testMethodName] = err[1]


@dataclass
class _Run:
    """What the reader's tests did against one implementation."""

    ran: list[str]
    problems: dict[str, BaseException]
    made: list[tuple] = field(default_factory=list)  # the arguments of each protocol made
    users: set[str] = field(default_factory=set)  # the tests that used one (see _run_tests)
    seconds: float = 0.0  # how long the whole run took

    @property
    def passed(self) -> bool:
        return bool(self.ran) and not self.problems

    def describe(self) -> str:
        if not self.ran:
            return "it has no test methods (their names must start with `test`)"
        if not self.problems:
            return f"all {len(self.ran)} of its tests passed"
        parts = [f"{name}: {describe_error(e).splitlines()[0]}"
                 for name, e in sorted(self.problems.items())]
        return f"{len(self.problems)} of {len(self.ran)} tests failed ({'; '.join(parts)})"


def _counting(impl, made, running=(), use="__init__"):
    """A subclass of `impl` that records the arguments each instance is made with, and in
    its `_users` the tests that called its method `use` (the last name in `running`, the
    tests started so far; with `use="__init__"`, the tests that made one)."""

    def __init__(self, *args, **kwargs):
        made.append((*args, *kwargs.values()))
        if use == "__init__":
            users.add(running[-1] if running else None)
        impl.__init__(self, *args, **kwargs)

    def used(self, *args, **kwargs):
        users.add(running[-1] if running else None)
        return getattr(impl, use)(self, *args, **kwargs)

    users: set = set()
    methods = {"__init__": __init__, "__module__": impl.__module__,
               "__qualname__": impl.__qualname__}
    if use != "__init__":
        methods[use] = used
    counted = type(impl.__name__, (impl,), methods)
    counted._users = users
    return counted


def _test_case(answer):
    from twisted.trial.unittest import TestCase

    require(isinstance(answer, type) and issubclass(answer, unittest.TestCase),
            f"expected a TestCase class (such as a SynchronousTestCase), got {show(answer)}")
    # trial's asynchronous TestCase runs the reactor itself, and its janitor then cancels
    # every timer and removes every socket of the kernel's running reactor: never run it here.
    require(not issubclass(answer, TestCase),
            f"{answer.__name__} is a trial TestCase, which runs the reactor itself: in this"
            " kernel, where the reactor already runs, that would break it (section 8), so it"
            " was not run; make it a SynchronousTestCase")
    return answer


def _run_tests(answer, impl, what, use="__init__") -> _Run:
    """Run every test of `answer` with protocol_class = impl, in a thread, with a limit;
    the run's `users` are the tests that called the protocol's method `use`."""
    made: list[tuple] = []
    result = _Result()  # only methods named test*: no fallback to runTest
    counted = _counting(impl, made, result.ran, use)
    case = type(answer.__name__, (_test_case(answer),), {
        "protocol_class": counted, "__module__": answer.__module__})

    def run():
        names = unittest.defaultTestLoader.getTestCaseNames(case)
        unittest.TestSuite(case(name) for name in names).run(result)
        return result

    outcome = run_answer(run, limit=TESTS_LIMIT, what=f"a run of your tests against {what}")
    if outcome.kind == "raised":
        raise outcome.error
    result = outcome.value
    stubs = [e for e in result.problems.values() if isinstance(e, NotImplementedError)]
    if stubs and len(stubs) == len(result.ran):  # nothing written yet
        note_raised(stubs[0])
        raise stubs[0]
    return _Run(result.ran, result.problems, made, counted._users - {None}, outcome.seconds)


def _passes_against(run: _Run, what: str, hint_made: str):
    require(run.ran, f"against {what}, {run.describe()}")
    require(run.passed, f"against {what}, {run.describe()}: a test must pass when the code"
            " is right")
    require(run.made, f"your tests passed against {what}, but never made a protocol with"
            f" {hint_made}, so they tested something else")


def _catches(run: _Run, what: str, used: str):
    """`used`: what the tests in run.users did that the others did not."""
    idle = [name for name in run.ran if name not in run.users]
    note = (f" ({', '.join(idle)} never {used}, so {'they' if len(idle) > 1 else 'it'} could"
            " not test this one)") if idle else ""
    require(not run.passed, f"your {len(run.ran)} test(s) all passed against {what}:"
            f" none of them noticed{note}")


# -- 15.1 -----------------------------------------------------------------------------------

adder_tests = exercise("15.1", "Tests that catch the bugs")


@functools.cache
def _broken_adders():
    """The four broken adders, by key: (class, what it does)."""
    adder = _adder()

    class WholeChunks(adder):
        def dataReceived(self, data):  # each chunk taken to be whole lines
            for line in data.split(b"\n"):
                if line and not self.transport.disconnecting:
                    self.lineReceived(line.strip())

    class FirstOnly(adder):
        def dataReceived(self, data):
            lines = (self.buffer + data).split(b"\n")
            self.buffer = lines[-1]
            if len(lines) > 1:
                self.lineReceived(lines[0].strip())  # the others are dropped

    class ClosesOnError(adder):
        def lineReceived(self, line):
            if line == b"quit":
                return super().lineReceived(line)
            try:
                a, b = map(int, line.split())
            except ValueError:
                self.transport.write(b"error: expected two integers\n")
                self.transport.loseConnection()  # gives up on the client
            else:
                self.transport.write(b"%d\n" % (a + b))

    class StaysOpen(adder):
        def lineReceived(self, line):
            if line == b"quit":
                self.transport.write(b"bye\n")  # and no loseConnection()
                return
            super().lineReceived(line)

    return {
        "split": (WholeChunks, "an Adder that answers a request only if it arrives whole,"
                               " in one dataReceived"),
        "batch": (FirstOnly, "an Adder that answers only the first request of each"
                             " dataReceived"),
        "bad-line": (ClosesOnError, "an Adder that closes the connection after a bad line"),
        "quit": (StaysOpen, "an Adder that says bye to quit but never closes the connection"),
    }


@observation
def _adder_run(answer, key):
    if key == "good":
        return _run_tests(answer, _adder(), "the correct Adder", "dataReceived")
    impl, what = _broken_adders()[key]
    return _run_tests(answer, impl, what, "dataReceived")


@adder_tests.check("passes", "your tests pass against the correct Adder",
                   hint="Build each protocol from the class attribute the checker replaces,"
                        " connect it to a StringTransport, feed it bytes, and compare what it"
                        " wrote with the exact bytes Adder writes, line ends included.")
def _adder_passes(answer):
    _passes_against(_adder_run(answer, "good"), "the correct Adder", "self.protocol_class()")


def _adder_catch(key, title, hint):
    @adder_tests.check(f"catches-{key}", title, hint=hint)
    def _catch(answer):
        _catches(_adder_run(answer, key), _broken_adders()[key][1],
                 "fed bytes to a protocol made with self.protocol_class()")

    return _catch


_adder_catch("split", "a test fails when a request split across two dataReceived calls is"
             " not answered",
             hint="TCP may deliver one request in two pieces: feed a line in two calls of"
                  " dataReceived, cut in the middle, and check the answer.")
_adder_catch("batch", "a test fails when the second of two requests in one chunk is dropped",
             hint="TCP may also deliver two requests in one piece: send two lines in one"
                  " dataReceived and check both answers.")
_adder_catch("bad-line", "a test fails when a bad line closes the connection",
             hint="After a bad line, the connection must carry on: check that the transport"
                  " is not disconnecting, and that a good request after it is answered.")
_adder_catch("quit", "a test fails when quit does not close the connection",
             hint="A StringTransport records a close: after quit, check that the transport is"
                  " disconnecting, as well as what was written.")


# -- 15.2 -----------------------------------------------------------------------------------

idle_tests = exercise("15.2", "An idle timeout, tested on a clock")


@functools.cache
def _broken_idles():
    idle = _idle()

    class NeverResets(idle):
        def dataReceived(self, data):
            self.transport.write(data)  # no reset: the countdown runs from the connection

    class Postpones(idle):
        def dataReceived(self, data):
            self.timer.delay(self.timeout)  # adds the timeout to the time left
            self.transport.write(data)

    class LateStart(idle):
        def connectionMade(self):
            self.timer = None  # started by the first input only

        def dataReceived(self, data):
            if self.timer is None:
                self.timer = self.clock.callLater(self.timeout, self.idle)
            else:
                self.timer.reset(self.timeout)
            self.transport.write(data)

        def connectionLost(self, reason):
            if self.timer is not None and self.timer.active():
                self.timer.cancel()

    class LeavesTimer(idle):
        def connectionLost(self, reason):
            pass  # the timer stays scheduled

    return {
        "reset": (NeverResets, "an Idle whose timer input never restarts (it closes 10 s"
                               " after connecting, however much the client talks)"),
        "delay": (Postpones, "an Idle whose input adds 10 s to the time left (so a client that"
                             " sent 3 lines is closed 40 s after connecting)"),
        "silent": (LateStart, "an Idle that starts its timer at the first input only (a"
                              " client that never sends anything is never closed)"),
        "leak": (LeavesTimer, "an Idle that leaves its timer scheduled after connectionLost"),
    }


@observation
def _idle_run(answer, key):
    if key == "good":
        return _run_tests(answer, _idle(), "the correct Idle")
    impl, what = _broken_idles()[key]
    return _run_tests(answer, impl, what)


@idle_tests.check("passes", "your tests pass against the correct Idle",
                  hint="Give each protocol a task.Clock of its own, connect it to a"
                       " StringTransport, and move the clock's time by hand.")
def _idle_passes(answer):
    _passes_against(_idle_run(answer, "good"), "the correct Idle", "self.protocol_class(clock)")


@idle_tests.check("on-a-clock", "your tests give Idle a task.Clock, not the real reactor,"
                  " and wait no real time",
                  hint="A test must not wait for real time: give the protocol a task.Clock and"
                       " advance it; nothing else needs to wait.")
def _idle_on_a_clock(answer):
    from twisted.internet import task

    run = _idle_run(answer, "good")
    clocks = [args[0] if args else None for args in run.made]
    require(clocks, "your tests never made an Idle with self.protocol_class(clock)")
    wrong = [c for c in clocks if not isinstance(c, task.Clock)]
    if wrong:
        fail(f"your tests made an Idle with {show(wrong[0])} ({type(wrong[0]).__name__}),"
             " not a task.Clock: on the real reactor, a test waits real seconds")
    if run.seconds >= CLOCK_SECONDS:  # once more, in case the machine was just busy
        run = _run_tests(answer, _idle(), "the correct Idle")
    require(run.seconds < CLOCK_SECONDS,
            f"your {len(run.ran)} test(s) took {run.seconds:.1f} s against the correct Idle:"
            " they waited real time, which a test on a task.Clock never needs (its time moves"
            " only when the test advances it)")


def _idle_catch(key, title, hint):
    @idle_tests.check(f"catches-{key}", title, hint=hint)
    def _catch(answer):
        _catches(_idle_run(answer, key), _broken_idles()[key][1],
                 "made a protocol with self.protocol_class(clock)")

    return _catch


_idle_catch("reset", "a test fails when input does not restart the timer",
            hint="Let the client talk now and then for longer than the timeout, and check that"
                 " it is still connected.")
_idle_catch("delay", "a test fails when input postpones the deadline by a whole timeout",
            hint="After the client's last input, the connection must close exactly one timeout"
                 " later: check just before and at that moment, after several inputs.")
_idle_catch("silent", "a test fails when a client that sends nothing is never closed",
            hint="Connect and send nothing at all: when the timeout has passed, the"
                 " connection must be closing, with its goodbye written.")
_idle_catch("leak", "a test fails when the timer outlives the connection",
            hint="After connectionLost, nothing may be left scheduled on the clock: ask the"
                 " clock what it still has to call.")


# -- 15.3 -----------------------------------------------------------------------------------

line_property = exercise("15.3", "A property of a line decoder")


@functools.cache
def _broken_decoders(framing):
    LineDecoder, BadFrame = framing.LineDecoder, framing.BadFrame

    class KeepsNoTail(LineDecoder):
        def feed(self, data):
            self._buffer = bytearray()  # forgets the start of a line from the last chunk
            return super().feed(data)

    class ChunkDecoder(LineDecoder):
        def feed(self, data):
            lines = super().feed(data)
            try:
                data.decode("utf-8")  # each chunk decoded on its own, as well
            except UnicodeDecodeError as e:
                raise BadFrame(f"line is not UTF-8: {e.reason}", lines) from None
            return lines

    class FirstLineOnly(LineDecoder):
        def feed(self, data):
            return super().feed(data)[:1]

    class LosesLines(LineDecoder):
        def feed(self, data):
            try:
                return super().feed(data)
            except framing.FramingError as e:
                raise type(e)(str(e)) from None  # without e.frames

    return {
        "cut-line": (KeepsNoTail, "a decoder that loses the start of a line cut across two"
                                  " chunks"),
        "cut-character": (ChunkDecoder, "a decoder that decodes each chunk as UTF-8 on its own"
                                        " (it refuses a character cut in two)"),
        "first-line": (FirstLineOnly, "a decoder that returns only the first line of each"
                                      " chunk"),
        "lines-before-error": (LosesLines, "a decoder that drops the lines before a bad line"
                                           " in the same chunk"),
    }


def _forced_settings(answer, *, shrink):
    """The settings the checker runs a Hypothesis test with (the reader's, adjusted)."""
    from hypothesis import Phase, settings

    current = getattr(answer, "_hypothesis_internal_use_settings", None) or settings.default
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(current, derandomize=True, database=None, deadline=None, phases=phases,
                    max_examples=max(current.max_examples, MIN_EXAMPLES))


@line_property.prepare
@functools.cache
def _warm_up_hypothesis():
    """Build, once per kernel, the tables of characters that `st.characters(codec="utf-8")`
    and `st.text()` draw from: about a second of work, more on a busy machine, that would
    otherwise count against the first run of the reader's property."""
    from hypothesis import strategies as st

    with _hypothesis_home_outside_the_working_folder():
        for strategy in (st.characters(codec="utf-8"), st.text()):
            strategy.validate()


@contextlib.contextmanager
def _hypothesis_home_outside_the_working_folder():
    """Hypothesis caches what it learns in `.hypothesis/` of the working folder (even with
    database=None); while a check runs, that goes to a temporary folder unless the reader
    chose a home of their own (the chapter's section 6 does)."""
    from hypothesis import configuration

    key = "__hypothesis_home_directory"  # the module's global: no public getter
    kept = vars(configuration).get(key)
    if (kept is not None and kept != Path.cwd() / ".hypothesis") or os.getenv(
            "HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="check-15-hypothesis-") as home:
        configuration.set_hypothesis_home_dir(home)
        try:
            yield
        finally:
            configuration.set_hypothesis_home_dir(kept)


@dataclass
class _PropertyRun:
    outcome: object
    made: int  # decoders made from the Decoder the property was given


def _run_property(answer, Decoder, shrink) -> _PropertyRun:
    require(callable(answer), f"expected a function (a Hypothesis test), got {show(answer)}")
    made: list[tuple] = []
    counted = _counting(Decoder, made)
    kept = getattr(answer, "_hypothesis_internal_use_settings", None)
    if hasattr(answer, "hypothesis"):  # a @given test: run it the same way every time
        answer._hypothesis_internal_use_settings = _forced_settings(answer, shrink=shrink)
    try:
        with _hypothesis_home_outside_the_working_folder():
            outcome = run_answer(answer, counted, limit=PROPERTY_LIMIT, what="your property")
    finally:
        if hasattr(answer, "hypothesis"):
            answer._hypothesis_internal_use_settings = kept
    return _PropertyRun(outcome, len(made))


def _failure(outcome) -> str:
    """What a failed run of the property said, with Hypothesis's failing example."""
    notes = [n for n in getattr(outcome.error, "__notes__", []) if "Falsifying" in n
             or "Failing" in n]
    text = describe_error(outcome.error).splitlines()[0] if str(outcome.error) else \
        type(outcome.error).__name__
    return text + (f" ({' '.join(notes[0].split())})" if notes else "")


@observation
def _property_run(answer, key) -> _PropertyRun:
    framing = _framing(answer)
    if key == "good":
        run = _run_property(answer, framing.LineDecoder, shrink=True)
    else:
        run = _run_property(answer, _broken_decoders(framing)[key][0], shrink=False)
    if run.outcome.is_error(NotImplementedError):
        raise run.outcome.error
    return run


def _require_a_failure(run: _PropertyRun, what: str):
    """The property must have failed for `what`; if not, say why it could not."""
    if run.outcome.ok and not run.made:
        fail(f"your property held for {what}: it never made a decoder from the Decoder it was"
             " given, so it tested another class")
    if run.outcome.ok and run.outcome.value is not None:
        fail(f"your property returned {show(run.outcome.value)} for {what}: a test fails by"
             " raising (a failed assert does), and what it returns is ignored")
    require(not run.outcome.ok, f"your property held for {what}")


@line_property.check("holds", "it holds for chapter 02's LineDecoder",
                     hint="Generate lines of text without a newline in them (any text that UTF-8"
                          " can encode), end each with a newline, cut the bytes anywhere, feed"
                          " the chunks to a new decoder, and compare what comes out with the"
                          " lines you made.")
def _holds(answer):
    run = _property_run(answer, "good")
    require(run.outcome.ok, f"for framing.LineDecoder, which is right, your property failed:"
            f" {_failure(run.outcome)}")
    require(run.made, "your property held for framing.LineDecoder, but never made a decoder"
            " from the Decoder it was given, so it tested another class")


def _property_catch(key, title, hint):
    @line_property.check(f"catches-{key}", title, hint=hint)
    def _catch(answer):
        _require_a_failure(_property_run(answer, key), _broken_decoders(_framing(answer))[key][1])

    return _catch


_property_catch("cut-line", "it fails for a decoder that loses a line cut across chunks",
                hint="Feeding the whole stream in one chunk tests one split only: let"
                     " Hypothesis choose where to cut it, several times.")
_property_catch("cut-character", "it fails for a decoder that decodes each chunk on its own",
                hint="ASCII text has no character to cut in two: generate any text, and cut"
                     " its UTF-8 bytes anywhere, not only between characters.")
_property_catch("first-line", "it fails for a decoder that returns one line per chunk",
                hint="One byte per chunk never puts two lines in one chunk: let the chunks be"
                     " any size, the whole stream included.")
_property_catch("lines-before-error", "it fails when lines before a bad line are dropped",
                hint="Test bad input too: good lines, then a line that is not UTF-8 or is too"
                     " long, and check that every good line still comes out (the error's"
                     " .frames, or chapter 02's decode_all).")


# -- 15.4 -----------------------------------------------------------------------------------

loopback = exercise("15.4", "A loopback test that leaves nothing open")


@functools.cache
def _adder_servers():
    from twisted.internet.protocol import Protocol

    adder = _adder()

    class StaysOpen(adder):
        def lineReceived(self, line):
            if line == b"quit":
                self.transport.write(b"bye\n")  # and no loseConnection()
                return
            super().lineReceived(line)

    class Silent(Protocol):
        def dataReceived(self, data):
            pass

    class InPieces(adder):
        def makeConnection(self, transport):
            from twisted.internet import reactor

            super().makeConnection(_TwoPieces(transport, reactor))

        def connectionLost(self, reason):
            self.transport.cancel()
            super().connectionLost(reason)

    return {
        "good": (adder, "a correct Adder server"),
        "pieces": (InPieces, "a correct Adder server that sends each answer in two pieces,"
                             f" {PIECE_GAP * 1000:g} ms apart (b'5', then b'\\n'), as TCP may"
                             " deliver it"),
        "open": (StaysOpen, "an Adder server that says bye to quit but never closes"),
        "silent": (Silent, "a server that never answers"),
    }


class _TwoPieces:
    """A server's transport that sends each write in two pieces, PIECE_GAP apart, in order;
    loseConnection() waits for what is still to be sent."""

    def __init__(self, transport, clock):
        self._transport, self._clock = transport, clock
        self._queue: collections.deque = collections.deque()
        self._call = None
        self.disconnecting = False

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def write(self, data):
        self._queue.extend([data[:1], data[1:]])
        self._send()

    def loseConnection(self):
        self.disconnecting = True
        self._queue.append(None)
        self._send()

    def cancel(self):
        if self._call is not None and self._call.active():
            self._call.cancel()

    def _send(self):
        if self._call is not None and self._call.active():
            return  # the next piece waits for the gap
        self._call = None
        while self._queue:
            piece = self._queue.popleft()
            if piece is None:
                self._transport.loseConnection()
            elif piece:
                self._transport.write(piece)
                self._call = self._clock.callLater(PIECE_GAP, self._send)
                return


@dataclass
class _TcpRun:
    outcome: object
    left_open: int  # connections the server still had LINGER s after the test returned
    unclosed: list[str]  # ResourceWarnings about unclosed sockets to the server


def _connections_after(server, seconds):
    """The server's open connections once they have all closed, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.connections


@observation
def _tcp_run(answer, key) -> _TcpRun:
    from twisted.internet.protocol import Factory

    from ..servers import serve

    require(callable(answer), f"expected a function, got {show(answer)}")
    impl, what = _adder_servers()[key]
    with serve(f"check-15.4-{key}", Factory.forProtocol(impl)) as server, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        outcome = run_answer(answer, server.address, limit=TCP_LIMIT, release=server.stop,
                             what=f"your test, against {what},")
        if outcome.is_error(NotImplementedError):
            raise outcome.error
        left_open = _connections_after(server, LINGER)
        port = f", {server.port})"
        unclosed = [str(w.message) for w in caught
                    if issubclass(w.category, ResourceWarning) and port in str(w.message)]
    return _TcpRun(outcome, left_open, unclosed)


@loopback.check("passes", "it passes against a correct Adder server",
                hint="Connect with a timeout on the socket, send the request, and read until"
                     " you have a whole line: one recv may return less.")
def _tcp_passes(answer):
    run = _tcp_run(answer, "good")
    require(run.outcome.ok, f"against a correct Adder server, your test {run.outcome}")


@loopback.check("pieces", "it passes when the server's answers arrive in pieces",
                hint="TCP may deliver a line in several pieces, a few milliseconds apart: keep"
                     " reading until the line is complete, for each answer.")
def _tcp_pieces(answer):
    run = _tcp_run(answer, "pieces")
    require(run.outcome.ok, f"against {_adder_servers()['pieces'][1]}, your test {run.outcome}")


@loopback.check("catches-open", "it fails, within 2 s, when the server stays open after bye",
                hint="After bye, the server closes the connection: read on, with a timeout on"
                     " the socket, and expect the end of the stream.")
def _tcp_catches_open(answer):
    run = _tcp_run(answer, "open")
    require(not run.outcome.ok, f"your test passed against {_adder_servers()['open'][1]}")


@loopback.check("catches-silent", "it fails, within 2 s, when the server never answers",
                hint="Give the socket a timeout, so that a read that gets nothing fails"
                     " instead of waiting for ever.")
def _tcp_catches_silent(answer):
    run = _tcp_run(answer, "silent")
    require(not run.outcome.ok, f"your test passed against {_adder_servers()['silent'][1]}")


@loopback.check("closed-passing", "its socket is closed when it passes",
                hint="Close the socket in every case: a `with` block does it for you.")
def _tcp_closed_passing(answer):
    run = _tcp_run(answer, "good")
    require(run.outcome.ok, "your test did not pass against a correct Adder server, so this"
            " was not checked")
    require(not run.unclosed, "your test returned without closing its socket (Python warned:"
            f" ResourceWarning: {run.unclosed[0] if run.unclosed else ''})")


@loopback.check("closed-failing", "its socket is closed when it fails",
                hint="When an assertion fails, the lines after it do not run: close the socket,"
                     " and whatever you made from it, with a `with` block (or try/finally), not"
                     " with a close() at the end.")
def _tcp_closed_failing(answer):
    checked = False
    for key in ("open", "silent"):
        try:
            run = _tcp_run(answer, key)
        except CheckFailed:  # still running at the deadline: catches-open or -silent says so
            continue
        if run.outcome.ok:
            continue
        checked = True
        require(run.left_open == 0, f"your test failed against {_adder_servers()[key][1]}"
                f" ({run.outcome}), and {LINGER:g} s later its connection to the server was"
                " still open: when it failed, its socket was not closed (a close() after a"
                " failed assert never runs; a file from makefile() keeps the socket open until"
                " it is closed too)")
    require(checked, f"your test never failed within {TCP_LIMIT:g} s, against the server that"
            " stays open or the one that never answers, so this was not checked")
