"""Checks for chapter 03 (network challenges).

03.1 backoff_delays(attempts, base, cap, rng) -> list  -- decorrelated jitter
03.2 fetch(address, size, attempts, sleep) -> bytes    -- GET through cuts, with retries
03.3 CounterServer, handle(conn)                       -- INCR <client> <seq>, deduplicated

03.1 runs the reader's function on seeded generators. 03.2 and 03.3 run against servers on
127.0.0.1 behind the chapter's fault-injecting proxy; a fault is switched by the server
(before its reply) or by the check's `sleep`, never by timing, so each run is the same.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import statistics
import struct
import sys
import sysconfig
import threading
import time

from ..proxy import serve_proxy
from ..servers import serve_socket
from . import CheckFailed, exercise, fail, observation, require, run_answer, show
from .answers import Interrupted, resource_warnings
from .paced import CountingSocket, KeptReadingAfterEOF
from .wire import Client, dead_port, serving, why

TIMEOUT = 1.0  # how long a check waits for the reader's code where nothing should be slow
SILENT_LIMIT = 2.6  # 03.2: an attempt may wait 2 s for a silent server, then it must retry
LINGER = 1.0  # 03.2: how long the server may take to see a returned fetch's connection end
REPLY_TIMEOUT = 0.5  # 03.3: how long a client waits for a reply line
FRAME = struct.Struct("!I")


# -- 03.1 decorrelated jitter ---------------------------------------------------------

jitter = exercise("03.1", "Decorrelated jitter")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _call(fn, attempts, base, cap, seed):
    return f"backoff_delays({attempts}, {base:g}, {cap:g}, random.Random({seed}))"


@observation
def _waits(fn, attempts, base, cap, seeds) -> list[list]:
    """fn's lists for each seed (one call each), checked to be `attempts` numbers; made once
    per check() call for each set of arguments."""

    def run():
        return [fn(attempts, base, cap, random.Random(seed)) for seed in seeds]

    outcome = run_answer(run, limit=TIMEOUT, what=f"backoff_delays({attempts}, ...)")
    require(outcome.ok, f"{_call(fn, attempts, base, cap, seeds[0])} {outcome}")
    for seed, got in zip(seeds, outcome.value, strict=True):
        call = _call(fn, attempts, base, cap, seed)
        require(isinstance(got, list) and all(_is_number(w) for w in got),
                f"{call} returned {show(got)}, expected a list of numbers")
        require(len(got) == attempts, f"{call} returned {len(got)} waits, expected {attempts}")
    return outcome.value


@jitter.check("count", "returns a list of `attempts` waits",
              hint="One wait per attempt, in a list; no attempts, no waits.")
def _count(fn):
    for attempts in (0, 1, 10):
        _waits(fn, attempts, 0.01, 1.0, (1,))


@jitter.check("first", "the first wait is drawn at random between base and 3 × base",
              hint="Before the first wait there is no previous one: the statement says what"
                   " stands in for it. The first wait is drawn like every other.")
def _first(fn):
    base = 0.01
    firsts = [w[0] for w in _waits(fn, 1, base, 10.0, range(100))]
    for seed, first in enumerate(firsts):
        require(base <= first <= 3 * base,
                f"{_call(fn, 1, base, 10.0, seed)} gave a first wait of {first!r}, expected"
                f" one between base and 3 × base ({3 * base:g})")
    require(max(firsts) - min(firsts) > base,
            f"over 100 seeds the first wait was always between {min(firsts):g} and"
            f" {max(firsts):g}: it is not drawn from the whole range [{base:g}, {3 * base:g}]")


@jitter.check("steps", "each wait is drawn between base and min(cap, 3 × the wait before it)",
              hint="Each draw's range starts at base and ends at three times the previous"
                   " wait: the one before it in the list.")
def _steps(fn):
    base, cap = 0.01, 10.0
    shorter = steps = 0
    for seed, waits in enumerate(_waits(fn, 12, base, cap, range(100))):
        for k in range(1, len(waits)):
            high = min(cap, 3 * waits[k - 1])
            require(base <= waits[k] <= high * (1 + 1e-9),
                    f"{_call(fn, 12, base, cap, seed)}: wait {k + 1} is {waits[k]!r} after"
                    f" {waits[k - 1]!r}, expected between base and min(cap, 3 × previous)"
                    f" = [{base:g}, {high:g}]")
            steps += 1
            shorter += waits[k] < waits[k - 1]
    # Drawn from [base, 3 × previous], a wait is shorter than the one before it about a
    # third of the time (never when the previous one was base itself)
    require(shorter > steps / 10,
            f"with base={base:g}, cap={cap:g}, 12 attempts, 100 seeds: {shorter} of the"
            f" {steps} waits after the first were shorter than the wait before them; drawn"
            " between base and 3 × previous, about a third should be: the draws do not"
            " start at base")


@jitter.check("cap", "the waits grow up to the cap and never pass it",
              hint="Every wait the function returns is capped, the first one included.")
def _cap(fn):
    base, cap = 0.01, 0.05
    waits = [w for ws in _waits(fn, 30, base, cap, range(50)) for w in ws]
    require(max(waits) <= cap, f"with cap={cap:g}: a wait of {max(waits)!r}, above the cap")
    require(max(waits) >= 0.99 * cap,
            f"with base={base:g}, cap={cap:g}, 30 attempts, 50 seeds: the largest wait is"
            f" {max(waits)!r}; the waits should grow until the cap cuts them off")


@jitter.check("after-cap", "after a wait cut to the cap, the next is drawn below 3 × cap",
              hint="Which number is the previous wait: the one in your list, or the one"
                   " you drew before the cap cut it?")
def _after_cap(fn):
    base, cap = 0.01, 0.05
    after = [ws[k] for ws in _waits(fn, 30, base, cap, range(50))
             for k in range(1, len(ws)) if ws[k - 1] == cap]
    require(after, f"with base={base:g}, cap={cap:g}, 30 attempts, 50 seeds: no wait was"
                   " ever exactly the cap, though the cap cuts every draw above it down to"
                   " the cap itself")
    below = sum(w < cap for w in after) / len(after)
    expected = (cap - base) / (3 * cap - base)
    require(below > expected / 2,
            f"with base={base:g}, cap={cap:g}, 30 attempts, 50 seeds: of the {len(after)}"
            f" waits that came right after a wait equal to the cap, {below:.0%} were below"
            f" the cap; drawn between base and 3 × cap, about {expected:.0%} should be")


@jitter.check("grows", "the waits grow from one attempt to the next",
              hint="The range of each draw depends on the previous wait, not on base alone.")
def _grows(fn):
    base = 0.001
    eighth = [ws[7] for ws in _waits(fn, 8, base, 100.0, range(200))]
    typical = statistics.median(eighth)
    require(typical > 5 * base,
            f"with base={base:g}: the median 8th wait over 200 seeds is {typical:.4g}, expected"
            " well above base (each range reaches up to 3 × the previous wait)")


@jitter.check("rng", "draws every random number from `rng`, and only from it",
              hint="A seeded generator gives the same numbers every time only if every draw"
                   " comes from it, and nothing carries over from one call to the next.")
def _rng(fn):
    saved = random.getstate()
    try:
        one, two, other = _waits(fn, 6, 0.01, 10.0, (5, 5, 6))
        untouched = random.getstate() == saved
    finally:
        random.setstate(saved)
    require(one == two, f"two calls with random.Random(5) gave different waits: {one} and {two}")
    require(one != other, f"random.Random(5) and random.Random(6) gave the same waits: {one}")
    require(untouched, "the random module's own generator was used: draw only from `rng`")


# -- 03.2 a download that survives cuts ----------------------------------------------

download = exercise("03.2", "A download that survives cuts")

SIZE = 3000
CUT_AT = 1000  # bytes of the reply (header included) that get through a cut
PAUSE = 0.05  # between the pieces of a reply sent in pieces
BODY = random.Random(SIZE).randbytes(SIZE)


class _Bench:
    """Section 3's download server behind a proxy. Connection k's reply follows plan[k]:
    None (at once), "pieces" (the header split, the body in pieces), "reset" or "close"
    (cut after CUT_AT bytes), "silent" (no reply). Like section 3's server, it keeps a
    connection open after a reply, for the next request."""

    def __init__(self, plan=()):
        self.plan, self.errors = list(plan), []
        self.connections = self.ended = 0  # connections made; those whose end the server saw
        self._changed = threading.Condition()
        self.released = False
        self._lock = threading.Lock()
        self.server = serve_socket("check-03.2-server", self._serve)
        self.proxy = serve_proxy("check-03.2-proxy", self.server, cut_direction="to_client")

    def _serve(self, conn):
        with self._lock:
            k, self.connections = self.connections, self.connections + 1
        try:
            self._serve_one(conn, k)
        finally:
            with self._changed:
                self.ended += 1
                self._changed.notify_all()

    def all_ended(self, timeout: float) -> bool:
        """Wait until the server has seen every connection end (the client's close)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.ended >= self.connections, timeout)

    def _serve_one(self, conn, k):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(TIMEOUT)
        buffer = b""
        while True:
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                if buffer:
                    return self.errors.append(f"the server got {buffer!r} and then no newline")
                continue  # an idle connection, kept open for the next request
            except OSError:
                return
            if not chunk:
                if buffer:
                    self.errors.append(f"the server got {buffer!r}, then the connection closed"
                                       " without a newline")
                return
            buffer += chunk
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                if not self._reply(conn, k, line):
                    return

    def _reply(self, conn, k, line) -> bool:
        parts = line.split()
        if len(parts) != 2 or parts[0] != b"GET" or parts[1] != b"%d" % SIZE:
            got, want = line + b"\n", b"GET %d\n" % SIZE
            self.errors.append(f"the server got the line {got!r}, expected {want!r}")
            return False
        how = self.plan[k] if k < len(self.plan) else None
        self.proxy.set_faults(**({"cut_after": CUT_AT, "cut_how": how}
                                 if how in ("reset", "close") else {"cut_after": None}))
        reply = FRAME.pack(SIZE) + BODY
        if how == "silent":
            return True
        if how == "pieces":
            for piece in (reply[:2], reply[2:1000], reply[1000:]):
                conn.sendall(piece)
                time.sleep(PAUSE)  # the test condition: pieces apart, not a synchronisation
        else:
            conn.sendall(reply)
        return True

    def release(self):
        """Unblock the answer: every connection closed, every later sleep() stops it."""
        self.released = True
        self.close()

    def close(self):
        self.proxy.stop()
        self.server.stop()


class _Sleep:
    """The `sleep` the answer gets: records each delay and returns at once. It stops the
    answer (Interrupted) after 20 calls, or once the check has given up on it."""

    def __init__(self, bench=None, on_call=None):
        self.bench, self.on_call, self.delays = bench, on_call, []

    def __call__(self, delay):
        self.delays.append(delay)
        if len(self.delays) > 20 or (self.bench and (self.bench.released or self.bench.errors)):
            raise Interrupted(f"sleep was called {len(self.delays)} times")
        if self.on_call is not None:
            self.on_call(len(self.delays))


def _fetch(fn, bench, what, attempts=5, *, limit=None, sleep=None, address=None,
           closed=None):
    """Run fn(address, SIZE, attempts, sleep) against the bench: (Outcome, sleep). `what`
    says what the bench did, for the failure messages. With a list `closed`, append
    whether the server saw every connection end within LINGER of fetch's return."""
    sleep, limit = sleep or _Sleep(bench), limit or TIMEOUT
    try:
        outcome = run_answer(fn, address or bench.proxy.address, SIZE, attempts, sleep,
                                limit=limit, release=bench.release if bench else None,
                                what=f"fetch(address, {SIZE}, {attempts}, sleep)")
        if closed is not None:
            closed.append(bench.all_ended(LINGER))
    except CheckFailed as exc:
        fail(f"{what}: {exc}")
    finally:
        if bench:
            bench.close()
    if bench and bench.errors:
        fail(bench.errors[0])
    if len(sleep.delays) > 20:
        fail(f"{what}: fetch(address, {SIZE}, attempts={attempts}, sleep) kept retrying: sleep"
             f" was called {len(sleep.delays)} times")
    return outcome, sleep


def _expect_body(outcome, what):
    if outcome.kind == "raised":
        fail(f"{what}: fetch {outcome}")
    got = outcome.value
    if got == BODY:
        return
    if isinstance(got, (bytes, bytearray)):
        if got == FRAME.pack(SIZE) + BODY:
            fail(f"{what}: fetch returned the reply with its 4-byte header; the body is what"
                 " comes after it")
        wrong = " (not the body that was sent)" if len(got) == SIZE else ""
        fail(f"{what}: fetch returned {len(got):,} bytes{wrong}, expected the {SIZE:,}-byte body")
    fail(f"{what}: fetch returned {show(got)}, expected the {SIZE:,}-byte body as bytes")


@download.check("in-pieces", "returns the body of a reply that arrives in pieces",
                hint="One recv() returns what has arrived so far, the 4-byte header"
                     " included: read until you have the header, then until you have as many"
                     " bytes as it announces. The server keeps the connection open.")
def _in_pieces(fn):
    bench = _Bench(["pieces"])
    what = (f"the reply (a 4-byte header announcing {SIZE}, then the body) came in three"
            " pieces, the first one 2 bytes, and the server kept the connection open for"
            " another request, as section 3's server does")
    outcome, sleep = _fetch(fn, bench, what)
    _expect_body(outcome, what)
    require(bench.connections == 1 and not sleep.delays,
            f"nothing failed, yet fetch made {bench.connections} connections and called sleep"
            f" {len(sleep.delays)} times")


def _cut(fn, how, what):
    bench = _Bench([how])
    outcome, sleep = _fetch(fn, bench, what)
    _expect_body(outcome, what)
    require(bench.connections == 2,
            f"{what}: fetch made {bench.connections} connection(s), expected 2 (the cut one,"
            " then a new one)")
    require(len(sleep.delays) == 1,
            f"{what}: one attempt failed, yet sleep was called {len(sleep.delays)} times")


@download.check("reset", "tries again after a reset in the middle of the reply",
                hint="A reset (ConnectionResetError) is a transient failure: a new connection"
                     " and a new request may well succeed.")
def _reset(fn):
    _cut(fn, "reset", f"the first connection was reset after {CUT_AT} bytes of the reply")


@download.check("truncated", "takes a close (FIN) in the middle of the reply for a failure",
                hint="recv() returning b'' before the announced length has arrived means the"
                     " reply was cut short: that attempt failed, with an error your retries"
                     " treat as transient.")
def _truncated(fn):
    _cut(fn, "close", f"the first connection was closed (FIN) after {CUT_AT} bytes of the reply")


@download.check("silent", "gives up on a silent server after at most 2 s, and tries again",
                hint="Without a timeout a recv() waits for ever. With one, a silent server"
                     " raises an exception after that time: a transient failure too.")
def _silent(fn):
    bench = _Bench(["silent"])
    what = "the server read the GET and never replied on the first connection"
    outcome, sleep = _fetch(fn, bench, what, limit=SILENT_LIMIT)
    _expect_body(outcome, what)
    require(bench.connections == 2 and len(sleep.delays) == 1,
            f"{what}: fetch made {bench.connections} connection(s) and called sleep"
            f" {len(sleep.delays)} times, expected 2 and 1")


@download.check("refused", "tries again while connections are refused, calling sleep between",
                hint="Wait between attempts with the sleep function you are given (it returns"
                     " at once in the check), before each new attempt only, and briefly.")
def _refused(fn):
    bench = _Bench()
    bench.proxy.refuse()

    def back_after_two(calls):
        if calls == 2:
            bench.proxy.refuse(False)

    sleep = _Sleep(bench, back_after_two)
    what = "connections were refused until the second call of sleep"
    outcome, _ = _fetch(fn, bench, what, sleep=sleep)
    if not sleep.delays and outcome.kind == "raised":
        fail(f"{what}: fetch {outcome} without ever calling sleep")
    _expect_body(outcome, what)
    require(len(sleep.delays) == 2,
            f"{what}: sleep was called {len(sleep.delays)} times, expected 2")
    require(all(_is_number(d) and 0 <= d <= 0.1 for d in sleep.delays),
            f"{what}: sleep was called with {sleep.delays}, expected delays between 0 and 0.1 s")


def _said(outcome) -> str:
    """What fetch did, in a few words: 'returned the body' rather than 3,000 bytes of it."""
    if outcome.kind == "returned" and outcome.value == BODY:
        return "returned the body"
    return str(outcome)


@download.check("closes", "closes every connection it opens, the failed ones too",
                hint="The server keeps a connection open for another request, so only your"
                     " side can end it: on every way out of an attempt, the one that returns"
                     " and the ones that fail.")
def _closes(fn):
    bench, closed = _Bench(), []
    what = "the server replied in full, and kept the connection open for another request"
    outcome, _ = _fetch(fn, bench, what, closed=closed)
    if outcome.is_error(NotImplementedError):
        fail(f"fetch {outcome}")
    require(closed[0], f"{what}: fetch {_said(outcome)}, and {LINGER:g} s later the server still"
            " had its connection open: the socket was never closed")
    what = f"the first connection was reset after {CUT_AT} bytes of the reply"
    with resource_warnings("unclosed <socket.socket") as unclosed:
        outcome, _ = _fetch(fn, _Bench(["reset"]), what)
    require(not unclosed, f"{what}: fetch {_said(outcome)}, and left a socket for the garbage"
            f" collector to close ({unclosed[0] if unclosed else ''})")


@download.check("gives-up", "gives up after `attempts` attempts with RetriesExhausted",
                hint="Count the attempts, not the waits: n attempts have n - 1 waits between"
                     " them. After the last one, raise section 7's exception, made with the"
                     " number of attempts and the last error.")
def _gives_up(fn):
    sleep = _Sleep()
    what = "nothing listens, so every connection is refused"
    with dead_port() as port:
        outcome, _ = _fetch(fn, None, what, 3, sleep=sleep, address=("127.0.0.1", port))
    require(outcome.kind == "raised",
            f"{what}, yet fetch(..., attempts=3, ...) returned {show(outcome.value)}")
    error = outcome.error
    require(getattr(error, "attempts", None) == 3
            and isinstance(getattr(error, "last_error", None), ConnectionRefusedError),
            f"{what}: fetch(..., attempts=3, ...) {outcome} (attempts ="
            f" {show(getattr(error, 'attempts', None))}, last_error ="
            f" {show(getattr(error, 'last_error', None))}); expected RetriesExhausted with"
            " .attempts == 3 and .last_error the ConnectionRefusedError")
    require(len(sleep.delays) == 2,
            f"{what}: 3 attempts have 2 waits between them; sleep was called"
            f" {len(sleep.delays)} times")


# -- 03.3 one record per client -------------------------------------------------------

counter = exercise("03.3", "One record per client")


class _Handlers:
    """The reader's handle() for serve_socket, given a socket that ends a loop which keeps
    calling recv() after b"" (`CountingSocket`), so that such a handler cannot spin for
    ever; counts the calls still running."""

    def __init__(self, handle):
        self.handle, self.running = handle, 0
        self.changed = threading.Condition()

    def __call__(self, conn):
        with self.changed:
            self.running += 1
        try:
            with CountingSocket(conn.dup()) as mine:
                self.handle(mine)
        finally:
            with self.changed:
                self.running -= 1
                self.changed.notify_all()

    def ended(self, timeout: float) -> bool:
        """Whether every call has returned, waiting up to `timeout` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: self.running == 0, timeout)


@contextlib.contextmanager
def _serve_counter(cls):
    """A new instance of the reader's class, its handle() on a real port
    (`server.handlers`: the calls of it)."""
    outcome = run_answer(cls, limit=TIMEOUT, what=f"{getattr(cls, '__name__', 'it')}()")
    require(outcome.ok, f"{getattr(cls, '__name__', 'the class')}() {outcome}")
    handlers = _Handlers(outcome.value.handle)
    with serving("check-03.3", handlers) as server:
        server.handlers = handlers
        yield server


def _ask(client, server, request: str, expected: str, what: str, others=None):
    """Send `request`, fail unless the reply is `expected`. `others`: the other open
    connections, by number; if no reply comes, they are closed to see whether one of them
    held this one up."""
    client.send(request.encode() + b"\n")
    got = client.read_until(b"\n", timeout=REPLY_TIMEOUT)
    if got.ending == "silent" and not got.data and others:
        for other in others.values():
            other.close()
        late = client.read_until(b"\n", timeout=REPLY_TIMEOUT)
        if late.ending == "complete":
            names = " and ".join(str(n) for n in others)
            fail(f"{what}: sent {request!r} while connection {names} stayed open, and got no"
                 f" reply for {REPLY_TIMEOUT:g} s; once connection {names} closed, the reply"
                 f" {late.data!r} came: one connection held up the others until it ended")
    if got.ending != "complete":
        fail(f"{what}: sent {request!r}, expected {expected!r} but {got}{why(server)}")
    reply = got.data.decode(errors="replace").removesuffix("\n")
    require(reply == expected, f"{what}: {request!r} was answered {reply!r}, expected"
                               f" {expected!r}")


def _talk(server, steps, port=None):
    """steps: (connection number, request, expected reply); connections opened as needed,
    to `port` (default: the server's own)."""
    clients = {}
    try:
        for n, request, expected in steps:
            if n not in clients:
                clients[n] = Client(port or server.port, timeout=REPLY_TIMEOUT)
            others = {k: c for k, c in clients.items() if k != n}
            _ask(clients[n], server, request, expected, f"connection {n}", others)
    finally:
        for client in clients.values():
            client.close()


# Where the reader's code is not: the helpers, the standard library, installed packages
_NOT_THE_READERS = tuple(
    {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    | {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})


def _between_lines(frame, event, arg):
    if event == "line":
        time.sleep(0)  # lets another thread run here: not a wait for anything
    return _between_lines


def _in_readers_code(frame, event, arg):
    return None if frame.f_code.co_filename.startswith(_NOT_THE_READERS) else _between_lines


@contextlib.contextmanager
def _switching():
    """Threads started meanwhile (the server's, one per connection) hand over to another
    thread between any two lines of the reader's code, and threads take turns often, so
    that a read-then-write of shared state without a lock that works shows up as a race
    on nearly every run, not once in a while."""
    interval, trace = sys.getswitchinterval(), threading.gettrace()
    sys.setswitchinterval(1e-6)
    threading.settrace(_in_readers_code)
    try:
        yield
    finally:
        threading.settrace(trace)
        sys.setswitchinterval(interval)


@counter.check("counts", "one counter for every client, on every connection",
               hint="The counter belongs to the server: one instance serves every connection"
                    " and every client, the connections at the same time (none may wait for"
                    " another to end). A new client's first request counts, whatever its"
                    " number.")
def _counts(cls):
    with _serve_counter(cls) as server:
        _talk(server, [(1, "INCR a 1", "1"), (1, "INCR b 1", "2"), (2, "INCR a 2", "3"),
                       (2, "INCR c 7", "4"), (1, "INCR a 5", "5")])


@counter.check("pipelined", "three requests in one write get three replies",
               hint="One recv() can hold several lines, or part of one: buffer the bytes and"
                    " answer each complete line.")
def _pipelined(cls):
    with _serve_counter(cls) as server, Client(server.port, timeout=REPLY_TIMEOUT) as client:
        sent = "sending b'INCR a 1\\nINCR b 1\\nINCR a' in one write"
        client.send(b"INCR a 1\nINCR b 1\nINCR a")
        for want in (b"1\n", b"2\n"):
            _expect(client, server, want, sent)
        client.send(b" 2\n")
        _expect(client, server, b"3\n", "then b' 2\\n', the end of the third request")


@counter.check("returns-at-eof", "returns when the client closes its connection",
               hint="recv() returning b'' (end of stream) means the client has closed: there"
                    " is nothing more to read, so return, and serve_socket closes the"
                    " connection.")
def _returns_at_eof(cls):
    with _serve_counter(cls) as server:
        _talk(server, [(1, "INCR a 1", "1")])  # then the client closes
        ended = server.handlers.ended(TIMEOUT)
        what = "after 'INCR a 1' was answered '1', the client closed its connection"
        for error in server.raised:
            if isinstance(error, KeptReadingAfterEOF):
                fail(f"{what}: {error} and your handler kept calling it: it never ends")
        require(ended, f"{what}: your handler had not returned {TIMEOUT:g} s later"
                       f"{why(server)}")


def _expect(client, server, want: bytes, after: str):
    got = client.read_until(b"\n", timeout=REPLY_TIMEOUT)
    if got.data != want or got.ending != "complete":
        fail(f"after {after}, the client expected {want!r} but {got}{why(server)}")


@counter.check("repeat", "a repeated seq gets the same reply again, not counted",
               hint="The reply to a repeated request is the one the first copy got, even if"
                    " the counter has moved since.")
def _repeat(cls):
    with _serve_counter(cls) as server:
        _talk(server, [(1, "INCR a 1", "1"), (1, "INCR b 1", "2"), (2, "INCR a 1", "1"),
                       (2, "INCR a 2", "3")])


@counter.check("stale", "an older seq gets STALE",
               hint="Only each client's last request is remembered: anything older than it"
                    " gets STALE.")
def _stale(cls):
    with _serve_counter(cls) as server:
        _talk(server, [(1, "INCR a 1", "1"), (1, "INCR a 2", "2"), (1, "INCR a 1", "STALE"),
                       (1, "INCR a 3", "3")])


@counter.check("numbers", "sequence numbers are compared as numbers (9 < 10)",
               hint="What arrives is text; '10' < '9' as text.")
def _numbers(cls):
    with _serve_counter(cls) as server:
        _talk(server, [(1, "INCR a 9", "1"), (1, "INCR a 10", "2"), (1, "INCR a 9", "STALE"),
                       (1, "INCR a 10", "2"), (1, "INCR a 11", "3"), (1, "INCR b 100", "4"),
                       (1, "INCR b 20", "STALE")])


CLIENTS, EACH = 8, 40  # "concurrent": connections at once, requests each


@counter.check("concurrent", "connections served at the same time count every request once",
               hint="Two connections' threads can read the counter, and a client's record,"
                    " at the same moment: what checks and updates shared state must happen as"
                    " one step. (A race does not show on every run; this check makes it"
                    " likely, not certain.)")
def _concurrent(cls):
    with _switching(), _serve_counter(cls) as server:
        clients = [Client(server.port, timeout=REPLY_TIMEOUT) for _ in range(CLIENTS)]
        replies: list[list[bytes]] = [[] for _ in clients]

        def run(n):
            client = clients[n]
            client.send(b"".join(b"INCR c%d %d\n" % (n, k) for k in range(10, 10 + EACH)))
            for _ in range(EACH):
                got = client.read_until(b"\n", timeout=REPLY_TIMEOUT * 4)
                if got.ending != "complete":
                    replies[n].append(str(got).encode())
                    return
                replies[n].append(got.data.rstrip(b"\n"))

        _each_in_a_thread(run, clients)
        story = (f"{CLIENTS} connections at once, each sending {EACH} requests INCR cN 10 to"
                 f" INCR cN {9 + EACH} in one write")
        for n, got in enumerate(replies):
            require(len(got) == EACH and all(r.isdigit() for r in got),
                    f"{story}: connection {n} got {show(got[-3:])} as its last replies"
                    f" ({len(got)} of {EACH}){why(server)}")
        values = sorted(int(r) for got in replies for r in got)
        total = CLIENTS * EACH
        repeated = sorted({v for v in values if values.count(v) > 1})
        require(values == list(range(1, total + 1)),
                f"{story}: the {total} replies should be 1 to {total}, each once; "
                + (f"{len(repeated)} values came twice (e.g. {repeated[:3]}), so two requests"
                   " were counted as one" if repeated else f"they went up to {values[-1]}"))
        _talk(server, [(1, "INCR last 1", str(total + 1))])


def _each_in_a_thread(run, clients):
    """run(n) for every client n, all at once, each in a thread; then every client is
    closed."""
    try:
        threads = [threading.Thread(target=run, args=(n,), daemon=True)
                   for n in range(len(clients))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(REPLY_TIMEOUT * 8)
    finally:
        for client in clients:
            client.close()


RACING = 40  # "racing-retry": requests sent on each of the two connections


@counter.check("racing-retry", "a request and its retry, at once on two connections, count once",
               hint="A retry can arrive on another connection while the original is being"
                    " answered. Looking up a client's record and updating it must happen in"
                    " one step, with the counter, so that the second of the two finds the"
                    " record the first made.")
def _racing_retry(cls):
    with _switching(), _serve_counter(cls) as server:
        clients = [Client(server.port, timeout=REPLY_TIMEOUT) for _ in range(2)]
        replies: list[list[bytes]] = [[], []]

        together = threading.Barrier(2, timeout=REPLY_TIMEOUT * 4)

        def run(n):
            for k in range(10, 10 + RACING):
                try:
                    together.wait()  # both copies of a request leave at the same moment
                except threading.BrokenBarrierError:
                    return  # the other connection got no reply: it says so
                clients[n].send(b"INCR r %d\n" % k)
                got = clients[n].read_until(b"\n", timeout=REPLY_TIMEOUT * 4)
                if got.ending != "complete":
                    replies[n].append(str(got).encode())
                    together.abort()
                    return
                replies[n].append(got.data.rstrip(b"\n"))

        _each_in_a_thread(run, clients)
        story = (f"two connections sent the same client's requests INCR r 10 to INCR r"
                 f" {9 + RACING}, each request on both at the same moment (as a retry racing"
                 " its original)")

        def answered(got):
            return all(r.isdigit() or r == b"STALE" for r in got)

        for n in sorted((0, 1), key=lambda n: answered(replies[n])):  # the one that saw why
            got = replies[n]
            require(len(got) == RACING and answered(got),
                    f"{story}: connection {n + 1} got {show(got[-3:])} as its last replies"
                    f" ({len(got)} of {RACING}){why(server)}")
        for seq, pair in enumerate(zip(*replies, strict=True), 10):
            numbers = {r.decode() for r in pair if r.isdigit()}
            require(len(numbers) < 2,
                    f"{story}: 'INCR r {seq}' was answered {pair[0].decode()!r} on one"
                    f" connection and {pair[1].decode()!r} on the other: it was counted twice")
        values = sorted({int(r) for got in replies for r in got if r.isdigit()})
        require(values == list(range(1, RACING + 1)),
                f"{story}: each of the {RACING} requests should have been counted once,"
                f" giving the replies 1 to {RACING}; the numbers replied were {show(values)}")
        _talk(server, [(1, "INCR last 1", str(RACING + 1))])


@counter.check("fresh", "a new CounterServer() starts from zero",
               hint="State kept in the class (written in the class body) is shared by every"
                    " instance; each instance needs its own.")
def _fresh(cls):
    with _serve_counter(cls) as server:
        _talk(server, [(1, "INCR z 1", "1"), (1, "INCR z 2", "2")])
    with _serve_counter(cls) as server, Client(server.port, timeout=REPLY_TIMEOUT) as client:
        _ask(client, server, "INCR z 1", "1", "a second CounterServer(), after the first had"
             " answered 'INCR z 1' and 'INCR z 2'")


@counter.check("lost-reply", "a retry after a lost reply gets the first reply, not counted again",
               hint="The server counted the request before its reply was lost; the retry"
                    " carries the same seq, so it is answered from the record.")
def _lost_reply(cls):
    with _serve_counter(cls) as server, serve_proxy(
        "check-03.3-proxy", server, cut_after=0, cut_direction="to_client"
    ) as proxy:
        _talk(server, [(1, "INCR a 1", "1")])
        with Client(proxy.port, timeout=REPLY_TIMEOUT) as first:
            first.send(b"INCR b 1\n")  # reaches the server; the proxy cuts the reply
            lost = first.read_to_end()
            require(not lost.data, f"the proxy should have cut the reply, but {lost}")
        proxy.set_faults(cut_after=None)  # the retry goes through the same proxy, healed
        _talk(server, [(2, "INCR b 1", "2"), (2, "INCR b 2", "3"), (3, "INCR a 2", "4")],
              proxy.port)

