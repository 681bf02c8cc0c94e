"""Checks for chapter 03 (network challenges).

03.1 `backoff_delays(attempts, base, cap, rng) -> list[float]`: decorrelated jitter,
     wait = min(cap, uniform(base, 3 * previous wait)), previous = base at first.
03.2 `fetch(address, size, attempts, sleep) -> bytes`: GET <size> from the chapter's
     download server (4-byte big-endian length, then the body), retrying refused,
     reset, timed-out and truncated attempts, calling sleep(delay) between them,
     raising an exception with `.attempts` and `.last_error` after the last.
03.3 `CounterServer` with `handle(conn)`: lines `INCR <client> <seq>`, answered with
     the new counter value, the remembered reply for a repeated seq, or STALE.

The 03.2 and 03.3 checks run against servers on 127.0.0.1 behind the chapter's
fault-injecting proxy; the faults are switched by the server (before it replies)
or by the check's `sleep`, never by timing, so every check is repeatable.
"""

from __future__ import annotations

import contextlib
import random
import socket
import statistics
import struct
import threading

from ..proxy import serve_proxy
from ..servers import serve_socket
from .legacy import Check, exercise

TIMEOUT = 1.0  # every blocking call of a check gives up after this long
FRAME = struct.Struct("!I")


def _require(condition, message):
    """Fail the check with `message` (an if, not `assert`: it must work under -O)."""
    if not condition:
        raise AssertionError(message)


def _error(exc):
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _call(fn, description, *args):
    """fn(*args); an exception becomes a failure that says what was called."""
    try:
        return fn(*args)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{description} raised {_error(exc)}") from None


# -- 03.1 decorrelated jitter ------------------------------------------------------


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _schedule(fn, attempts, base, cap, seed):
    description = f"backoff_delays({attempts}, {base}, {cap}, random.Random({seed}))"
    got = _call(fn, description, attempts, base, cap, random.Random(seed))
    _require(
        isinstance(got, (list, tuple)) and all(_is_number(d) for d in got),
        f"{description} returned {got!r:.80}, expected a list of numbers",
    )
    _require(len(got) == attempts, f"{description} returned {len(got)} waits, expected {attempts}")
    return list(got)


def _check_length(fn):
    for attempts in (0, 1, 10):
        _schedule(fn, attempts, 0.01, 1.0, seed=1)


def _check_first(fn):
    base = 0.01
    for seed in range(100):
        [first] = _schedule(fn, 1, base, 10.0, seed)
        _require(
            base <= first <= 3 * base,
            f"with base={base}, seed {seed}: the first wait is {first!r}, expected a number"
            f" between base and 3 × base ({3 * base:g})",
        )


def _check_steps(fn):
    base, cap = 0.01, 10.0
    for seed in range(100):
        waits = _schedule(fn, 12, base, cap, seed)
        for k in range(1, len(waits)):
            low, high = base, min(cap, 3 * waits[k - 1])
            _require(
                low <= waits[k] <= high * (1 + 1e-9),
                f"with base={base}, cap={cap}, seed {seed}: wait {k + 1} is {waits[k]!r} after"
                f" {waits[k - 1]!r}, expected between base and min(cap, 3 × previous)"
                f" = [{low:g}, {high:g}]",
            )


def _check_cap(fn):
    base, cap = 0.01, 0.05
    waits = [w for seed in range(50) for w in _schedule(fn, 30, base, cap, seed)]
    _require(max(waits) <= cap, f"with cap={cap}: a wait of {max(waits)!r}, above the cap")
    _require(
        max(waits) >= 0.99 * cap,
        f"with base={base}, cap={cap}, 30 attempts, 50 seeds: the largest wait is"
        f" {max(waits)!r}; the waits should grow until the cap cuts them off",
    )


def _check_rng(fn):
    saved = random.getstate()
    one, two = _schedule(fn, 6, 0.01, 10.0, seed=5), _schedule(fn, 6, 0.01, 10.0, seed=5)
    other = _schedule(fn, 6, 0.01, 10.0, seed=6)
    untouched = random.getstate() == saved
    random.setstate(saved)
    _require(one == two, f"two calls with random.Random(5) gave different waits: {one} and {two}")
    _require(one != other, f"random.Random(5) and random.Random(6) gave the same waits: {one}")
    _require(untouched, "the random module's own generator was used: draw only from `rng`")


def _check_growth(fn):
    base = 0.001
    eighth = [_schedule(fn, 8, base, 100.0, seed)[7] for seed in range(200)]
    typical = statistics.median(eighth)
    _require(
        typical > 5 * base,
        f"with base={base}: the median of the 8th wait over 200 seeds is {typical:.4g},"
        f" expected well above base (each range reaches up to 3 × the previous wait)",
    )


exercise(
    "03.1",
    "Decorrelated jitter",
    Check(
        "returns `attempts` waits",
        _check_length,
        "return a list with one number (seconds) per attempt; attempts=0 gives []",
    ),
    Check(
        "the first wait is between base and 3 × base",
        _check_first,
        "the previous wait before the first one is base: min(cap, rng.uniform(base, 3 * base))",
    ),
    Check(
        "each wait is between base and min(cap, 3 × the previous wait)",
        _check_steps,
        "wait = min(cap, rng.uniform(base, 3 * previous)), and `previous` is that capped wait",
    ),
    Check(
        "the waits grow up to the cap and never pass it",
        _check_cap,
        "apply min(cap, ...) to every wait",
    ),
    Check(
        "draws every random number from `rng`",
        _check_rng,
        "call rng.uniform(...) (or rng.random()), never random.uniform or random.random",
    ),
    Check(
        "the waits grow from one attempt to the next",
        _check_growth,
        "the range of each draw depends on the previous wait (up to 3 × it), not on base alone",
    ),
)


# -- 03.2 a download that survives cuts ----------------------------------------------

SIZE = 3000
CUT_AT = 1000  # bytes of the reply (header included) that get through a cut


def _body(size):
    return random.Random(size).randbytes(size)


class _Stop(BaseException):
    """Raised by the check's sleep after far too many retries (escapes `except Exception`)."""


class _Bench:
    """A download server behind a proxy; the server's k-th connection sets the faults
    of its own reply (plan[k]) before sending it, so they apply to exactly that reply."""

    def __init__(self, plan=(), **proxy_faults):
        self.plan = list(plan)
        self.connections = 0
        self.errors = []
        self._lock = threading.Lock()
        self.server = serve_socket("check-03.2-server", self._handle)
        self.proxy = serve_proxy("check-03.2-proxy", self.server, cut_direction="to_client",
                                 **proxy_faults)

    def _handle(self, conn):
        with self._lock:
            k = self.connections
            self.connections += 1
        with conn.makefile("rb") as lines:
            line = lines.readline()
        parts = line.split()
        if len(parts) != 2 or parts[0] != b"GET" or not parts[1].isdigit():
            self.errors.append(f"the server got {line!r}, expected b'GET {SIZE}\\n'")
            return
        fault = self.plan[k] if k < len(self.plan) else None
        cut = {"cut_after": CUT_AT, "cut_how": fault} if fault else {"cut_after": None}
        self.proxy.set_faults(**cut)
        size = int(parts[1])
        conn.sendall(FRAME.pack(size) + _body(size))

    def close(self):
        self.proxy.stop()
        self.server.stop()


class _Sleep:
    """The `sleep` given to the answer: records the delays, does not wait."""

    def __init__(self, on_call=None):
        self.delays = []
        self.on_call = on_call

    def __call__(self, delay):
        self.delays.append(delay)
        if len(self.delays) > 20:
            raise _Stop("sleep was called more than 20 times")
        if self.on_call is not None:
            self.on_call(len(self.delays))


def _fetch(fn, address, attempts, sleep):
    description = f"fetch(address, {SIZE}, attempts={attempts}, sleep)"
    try:
        return "returned", fn(address, SIZE, attempts, sleep)
    except _Stop:
        raise AssertionError(f"{description} kept retrying: sleep was called"
                             f" {len(sleep.delays)} times") from None
    except Exception as exc:
        return "raised", exc


def _expect_body(outcome, description):
    kind, value = outcome
    if kind == "raised":
        raise AssertionError(f"{description}: fetch raised {_error(value)}")
    if value == _body(SIZE):
        return
    if isinstance(value, (bytes, bytearray)):
        wrong = " (not the body that was sent)" if len(value) == SIZE else ""
        got = f"{len(value)} bytes{wrong}"
    else:
        got = repr(value)[:60]
    raise AssertionError(f"{description}: fetch returned {got}, expected the {SIZE}-byte body")


def _run_bench(fn, plan, attempts=5, **proxy_faults):
    bench = _Bench(plan, **proxy_faults)
    sleep = _Sleep()
    try:
        outcome = _fetch(fn, bench.proxy.address, attempts, sleep)
    finally:
        bench.close()
    _require(not bench.errors, "; ".join(bench.errors))
    return outcome, bench, sleep


def _check_complete(fn):
    # 100 kB/s: the reply leaves the proxy in slices of 1000 bytes, 10 ms apart.
    outcome, bench, sleep = _run_bench(fn, [], bandwidth=100_000)
    _expect_body(outcome, f"a {SIZE}-byte reply arriving in pieces")
    _require(bench.connections == 1 and not sleep.delays,
             f"nothing failed, yet fetch made {bench.connections} connections and called"
             f" sleep {len(sleep.delays)} times")


def _check_cut(fn, how, what):
    outcome, bench, sleep = _run_bench(fn, [how])
    _expect_body(outcome, f"the first connection {what} after {CUT_AT} bytes")
    _require(bench.connections == 2,
             f"the first connection {what}: fetch made {bench.connections} connections,"
             " expected 2 (one cut, one complete)")
    _require(len(sleep.delays) == 1,
             f"one failed attempt, yet sleep was called {len(sleep.delays)} times (expected 1)")


def _check_refused(fn):
    bench = _Bench()
    bench.proxy.refuse()

    def back_after_two(calls):
        if calls == 2:
            bench.proxy.refuse(False)

    sleep = _Sleep(back_after_two)
    try:
        outcome = _fetch(fn, bench.proxy.address, 5, sleep)
    finally:
        bench.close()
    if not sleep.delays and outcome[0] == "raised":
        raise AssertionError(
            f"connections were refused and fetch raised {_error(outcome[1])} without ever"
            " calling sleep (the check starts accepting again after the second sleep)"
        )
    _expect_body(outcome, "refused until the second call of sleep")
    _require(len(sleep.delays) == 2, f"sleep was called {len(sleep.delays)} times, expected 2")
    _require(all(_is_number(d) and 0 <= d <= 0.1 for d in sleep.delays),
             f"sleep was called with {sleep.delays}, expected delays between 0 and 0.1 s")


def _closed_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()


def _check_gives_up(fn):
    sleep = _Sleep()
    kind, value = _fetch(fn, _closed_address(), 3, sleep)
    _require(kind == "raised",
             f"nothing listens, yet fetch(..., attempts=3, ...) returned {value!r:.60}")
    _require(
        getattr(value, "attempts", None) == 3
        and isinstance(getattr(value, "last_error", None), ConnectionRefusedError),
        f"after 3 refused attempts fetch raised {_error(value)}, expected RetriesExhausted"
        " with .attempts == 3 and .last_error the ConnectionRefusedError",
    )
    _require(len(sleep.delays) == 2,
             f"3 attempts need 2 waits between them; sleep was called {len(sleep.delays)} times")


exercise(
    "03.2",
    "A download that survives cuts",
    Check(
        "returns the body of a reply that arrives in pieces",
        _check_complete,
        "read the 4-byte length, then loop on recv until that many bytes have arrived",
    ),
    Check(
        "tries again after a reset in the middle of the reply",
        lambda fn: _check_cut(fn, "reset", "is reset"),
        "ConnectionResetError is transient: new connection, new GET",
    ),
    Check(
        "does not take a close (FIN) in the middle of the reply for its end",
        lambda fn: _check_cut(fn, "close", "is closed (FIN)"),
        "recv returning b'' before `length` bytes arrived means a truncated reply: raise"
        " a ConnectionError (so that it is retried), never return the partial body",
    ),
    Check(
        "tries again while connections are refused, calling sleep between attempts",
        _check_refused,
        "call the given sleep(delay) before each new attempt, with a delay of at most 0.1 s",
    ),
    Check(
        "gives up after `attempts` attempts with RetriesExhausted",
        _check_gives_up,
        "after the last attempt: raise RetriesExhausted(attempts, last_error); no sleep"
        " after the last attempt",
    ),
)


# -- 03.3 one record per client ----------------------------------------------------------


class _Client:
    """A line client on one connection to the answer's server."""

    def __init__(self, address, server):
        self.server = server
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.lines = self.sock.makefile("rb")

    def ask(self, request: str) -> str:
        try:
            self.sock.sendall(request.encode() + b"\n")
            reply = self.lines.readline()
        except TimeoutError:
            raise AssertionError(f"no reply to {request!r} within {TIMEOUT:g} s") from None
        except OSError:  # reset or broken pipe: the server closed, as with b""
            reply = b""
        if not reply.endswith(b"\n"):
            errors = "; ".join(_error(e) for e in self.server.errors)
            because = f" (handle raised {errors})" if errors else ""
            raise AssertionError(f"the connection closed without a reply to {request!r}{because}")
        return reply.decode(errors="replace").strip()

    def close(self):
        self.lines.close()
        self.sock.close()


def _serve_answer(cls):
    try:
        counter = cls()
    except Exception as exc:
        raise AssertionError(f"{cls.__name__}() raised {_error(exc)}") from None
    return serve_socket("check-03.3", counter.handle)


def _conversation(server, steps, address=None):
    """steps: (connection number, request, expected reply); connections opened as needed,
    to `address` (default: the server's own)."""
    clients = {}
    try:
        for n, request, expected in steps:
            if n not in clients:
                clients[n] = _Client(address or server.address, server)
            got = clients[n].ask(request)
            _require(got == expected,
                     f"connection {n}: {request!r} was answered {got!r}, expected {expected!r}")
    finally:
        for client in clients.values():
            client.close()


def _check_counts(cls):
    with _serve_answer(cls) as server:
        _conversation(server, [
            (1, "INCR a 1", "1"), (1, "INCR b 1", "2"), (2, "INCR a 2", "3"), (2, "INCR c 7", "4"),
        ])


def _check_repeat(cls):
    with _serve_answer(cls) as server:
        _conversation(server, [
            (1, "INCR a 1", "1"), (1, "INCR b 1", "2"), (2, "INCR a 1", "1"), (2, "INCR a 2", "3"),
        ])


def _check_stale(cls):
    with _serve_answer(cls) as server:
        _conversation(server, [
            (1, "INCR a 1", "1"), (1, "INCR a 2", "2"), (1, "INCR a 1", "STALE"),
            (1, "INCR a 3", "3"),
        ])


def _check_lost_reply(cls):
    with _serve_answer(cls) as server, serve_proxy(
        "check-03.3-proxy", server, cut_after=0, cut_direction="to_client"
    ) as proxy:
        _conversation(server, [(1, "INCR a 1", "1")])
        first = _Client(proxy.address, server)
        try:  # the request reaches the server; the proxy cuts as the reply comes back
            first.sock.sendall(b"INCR b 1\n")
            with contextlib.suppress(OSError):
                lost = first.lines.readline()
                _require(lost == b"", f"the proxy should have cut the reply, but {lost!r} came")
        finally:
            first.close()
        proxy.set_faults(cut_after=None)  # the retry goes through the same proxy, healed
        _conversation(server, [(2, "INCR b 1", "2"), (2, "INCR b 2", "3"), (3, "INCR a 2", "4")],
                      proxy.address)


exercise(
    "03.3",
    "One record per client",
    Check(
        "counts new requests from several clients on several connections",
        _check_counts,
        "one counter in the instance (shared by every connection): +1 per new request,"
        " reply the new value as a line",
    ),
    Check(
        "answers a repeated seq from the record, without counting it",
        _check_repeat,
        "keep, per client, the last seq and the reply sent for it; the same seq again gets"
        " that reply",
    ),
    Check(
        "answers an older seq with STALE",
        _check_stale,
        "only the last seq per client is remembered: anything older is STALE",
    ),
    Check(
        "a retry after a lost reply gets the first reply and is not counted again",
        _check_lost_reply,
        "the server counted the request before its reply was lost; the retry has the same"
        " seq, so answer it from the record",
    ),
)
