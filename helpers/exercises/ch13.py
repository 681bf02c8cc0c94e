"""Checks for chapter 13 (UDP with Twisted).

13.1 `PeerCounter`: a DatagramProtocol that answers every datagram, to its sender, with
     b"N " + the datagram, N counting the datagrams from that sender (1, 2, ...); each
     instance counts for itself.
13.2 `Backoff(clock, send, timeout, tries)`: start() sends at once and returns a
     Deferred; no reply: send again after timeout, 2 x timeout, 4 x timeout, ...;
     after `tries` sends and one more wait, fail with TimeoutError("no reply after N
     attempts"). The first replied(reply) fires the Deferred and cancels the timer;
     later replies, and replies after the failure, are ignored. Checked on a task.Clock.
13.3 `OnceServer`: answers b"ID add N" with b"ID total T" (T the running total); a
     request repeated by the same peer (same ID) is not applied again and gets the reply it
     got the first time; the same ID from another peer is another request.

13.1 and 13.3 run live: the answer's protocol listens with `serve_udp` on 127.0.0.1 and
plain sockets on 127.0.0.1 (the peers A and B) talk to it. Each datagram the protocol
handles is noted, with what it wrote to its transport (and to which address), so that a
missing or misdirected reply is reported at once, with its cause.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field

from .. import reactor as _reactor
from ..events import EventLog, EventTimeout
from ..servers import serve_udp
from . import Watch, exercise, fail, require, require_deferred, show
from .framework import CheckFailed, describe_error

REPLY_TIMEOUT = 0.5  # how long a peer waits for a reply that was not written at once
HANDLE_TIMEOUT = 2.0  # how long a peer waits for the answer to handle its datagram


# -- this chapter's harness (a job no other checker has): a DatagramProtocol served live, each
#    datagram watched


@dataclass
class Handled:
    """One datagramReceived call: what came, what was written, what it raised."""

    datagram: bytes
    addr: tuple
    writes: list = field(default_factory=list)  # (datagram, addr) given to write()
    raised: BaseException | None = None


class _Watched:
    """The answer's protocol on a UDP port; each datagramReceived call is noted."""

    def __init__(self, protocol, port):
        self.protocol, self.port, self.log = protocol, port, EventLog()
        self.current: Handled | None = None
        handle, write = protocol.datagramReceived, port.listening.write

        def watched_handle(datagram, addr):  # in the reactor thread
            self.current = handled = Handled(datagram, addr)
            try:
                handle(datagram, addr)
            except Exception as exc:  # reported by the check that sent the datagram
                handled.raised = exc
            finally:
                self.current = None
                self.log.record("answer", "handled", handled=handled)

        def watched_write(datagram, addr=None):
            if self.current is not None:
                self.current.writes.append((datagram, addr))
            return write(datagram, addr)

        protocol.datagramReceived = watched_handle
        port.listening.write = watched_write

    @property
    def address(self):
        return self.port.address


@contextlib.contextmanager
def _serving(answer, *names):
    """The answer's protocol class on one UDP port per name: yields a _Watched for each."""
    from twisted.internet.protocol import DatagramProtocol

    require(isinstance(answer, type) and issubclass(answer, DatagramProtocol),
            f"{show(answer)} is not a DatagramProtocol subclass")
    with contextlib.ExitStack() as stack:
        watched = []
        for name in names:
            protocol = answer()
            port = stack.enter_context(serve_udp(name, protocol))
            watched.append(_reactor.call(_Watched, protocol, port))
        yield watched


@contextlib.contextmanager
def _peers(*names):
    """A UDP socket on 127.0.0.1 for each peer name: {name: socket}. And "C", on 127.0.0.2
    with A's port number, where the system has that loopback address (Linux has all of
    127/8; macOS only 127.0.0.1): peers that differ by their host only."""
    with contextlib.ExitStack() as stack:
        socks = {}
        for name in names:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind(("127.0.0.1", 0))
            socks[name] = sock
        twin = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        with contextlib.suppress(OSError):  # no 127.0.0.2 here
            twin.bind(("127.0.0.2", socks[names[0]].getsockname()[1]))
            socks["C"] = twin
        yield socks


def _to_sender(handled: Handled) -> list:
    return [d for d, addr in handled.writes if addr is not None and tuple(addr) == handled.addr]


def exchange(server: _Watched, peer, who: str, datagram: bytes, story: str) -> bytes:
    """Send `datagram` from `peer` (named `who`), wait until the answer has handled it,
    and return its one reply; fail saying what the answer did instead."""
    seen = len(server.log)
    what = f"{story}{who} sent {show(datagram)}"
    peer.sendto(datagram, server.address)
    try:
        handled = server.log.wait(seen + 1, timeout=HANDLE_TIMEOUT)[-1].details["handled"]
    except EventTimeout:
        fail(f"{what}: datagramReceived was not called within {HANDLE_TIMEOUT:g} s")
    exc = handled.raised
    if isinstance(exc, AssertionError) and any(addr is None for _, addr in handled.writes):
        fail(f"{what}: your datagramReceived called transport.write() without an address;"
             " a UDP port that is not connected cannot know where to send (Twisted's write()"
             " failed with a bare AssertionError)")
    if exc is not None:
        raise CheckFailed(f"{what}: your datagramReceived raised"
                             f" {describe_error(exc)}") from exc
    elsewhere = [(d, a) for d, a in handled.writes if a is None or tuple(a) != handled.addr]
    if elsewhere:
        d, addr = elsewhere[0]
        fail(f"{what}: your datagramReceived wrote {show(d)} to {addr!r}, not to the sender"
             " (the address it was given)")
    replies = _to_sender(handled)
    require(len(replies) <= 1, f"{what}: it was answered with {len(replies)} datagrams,"
            f" {', '.join(show(r) for r in replies)}; expected one reply")
    peer.settimeout(REPLY_TIMEOUT)
    try:
        return peer.recv(65536)
    except TimeoutError:
        fail(f"{what}: your datagramReceived returned without writing anything, and no"
             f" reply came within {REPLY_TIMEOUT:g} s")


def _script(answer, steps, story, servers=("S",)):
    """Run steps (server, peer, datagram, expected reply) against the answer, with peers
    A and B; fail at the first reply that is not the one expected."""
    names = [f"check-13-{name}" for name in servers]
    with _serving(answer, *names) as watched, _peers("A", "B") as peers:
        by_name = dict(zip(servers, watched, strict=True))
        for server, who, datagram, expected in steps:
            if who not in peers:  # C, where there is no 127.0.0.2
                continue
            where = f" to {server}" if len(servers) > 1 else ""
            reply = exchange(by_name[server], peers[who], who, datagram, story)
            require(reply == expected, f"{story}{who}'s {show(datagram)}{where} got"
                    f" {show(reply)}, expected {show(expected)}")


# -- 13.1 -------------------------------------------------------------------

counter = exercise("13.1", "A counter per peer")


@counter.check("answers-sender", "answers the sender with b'1 ' + the datagram",
               hint="A datagram comes with the address it came from, and a UDP port that is"
                    " not connected must be told where each reply goes.")
def _answers_sender(answer):
    _script(answer, [("S", "A", b"hello", b"1 hello")], "")


@counter.check("per-peer", "counts the datagrams of each peer separately, past 9",
               hint="Keep one count per sender, in the protocol, found by the address the"
                    " datagram came from: host and port, for two peers can share a host.")
def _counts_per_peer(answer):
    steps = [("S", who, text, b"%d %s" % (n, text)) for who, n, text in [
        ("A", 1, b"a1"), ("A", 2, b"a2"), ("B", 1, b"b1"), ("A", 3, b"a3"),
        *[("A", n, b"a%d" % n) for n in range(4, 12)], ("B", 2, b"b2"), ("C", 1, b"c1")]]
    _script(answer, steps, "peers A and B on 127.0.0.1, and C on 127.0.0.2 with A's port"
                           " number, took turns: ")


@counter.check("bytes-kept", "sends the datagram back byte for byte: empty, spaces, not UTF-8",
               hint="A datagram is bytes, not text: it may be empty, end in a newline, or not"
                    " be valid UTF-8. Put it after the count untouched.")
def _bytes_kept(answer):
    datagrams = [b"", b" two words\n", b"\xff\xfe not UTF-8", "€ 5".encode()]
    steps = [("S", "A", d, b"%d %s" % (n, d)) for n, d in enumerate(datagrams, start=1)]
    _script(answer, steps, "")


@counter.check("own-counts", "two PeerCounter ports count separately",
               hint="What is made once for the class, in its body or as a default argument,"
                    " is shared by every instance; each protocol needs state of its own.")
def _own_counts(answer):
    _script(answer, [("S1", "A", b"x", b"1 x"), ("S1", "A", b"y", b"2 y"),
                     ("S2", "A", b"z", b"1 z")],
            "peer A sent two datagrams to port S1, then one to port S2: ", ("S1", "S2"))


# -- 13.2 -------------------------------------------------------------------

backoff = exercise("13.2", "Retransmission with exponential backoff")
STEPS = 20  # timer firings 13.2 follows before it decides the answer never stops
EPSILON = 1e-9  # 0.1 + 0.2 + 0.4 + 0.8 is 1.5000000000000002: a timer due "at 1.5" runs


class _Run:
    """The answer on a task.Clock: its sends and its Deferred's outcome."""

    def __init__(self, answer, timeout, tries):
        from twisted.internet.task import Clock

        self.clock, self.sends, self.what = Clock(), [], f"timeout={timeout:g}, tries={tries}"
        self.backoff = answer(self.clock, self._send, timeout, tries)
        self.watch = Watch(require_deferred(self.backoff.start(), "start()"))

    def _send(self):
        self.sends.append(round(self.clock.seconds(), 6))

    @property
    def outcome(self):
        return self.watch.outcome

    def advance_to(self, at, what):
        """Move the clock to `at`, firing each timer at its own time on the way (one big
        step would run them all late). Fail, saying so, if a timer raises."""
        for _ in range(STEPS):
            due = min((c.getTime() for c in self.clock.getDelayedCalls()), default=None)
            if due is None or due > at + EPSILON:
                break
            self._step(due, what)
        else:
            fail(f"{self.what}, {what}: still sending after {len(self.sends)} sends, at"
                 f" t={self.sends}")
        self._step(at, what)

    def _step(self, to, what):
        try:
            self.clock.advance(max(0.0, to - self.clock.seconds()))
        except Exception as exc:
            raise CheckFailed(f"{self.what}, {what}: at t={self.clock.seconds():g} your"
                                 f" timer raised {describe_error(exc)}") from exc

    @property
    def told(self) -> str:
        """The outcome, in words; a TimeoutError that is not Python's built-in one (Twisted
        has two of that name) is named with its module, so that the two can be told apart."""
        error = self.outcome.error
        if type(error).__name__ == "TimeoutError" and not isinstance(error, TimeoutError):
            return (f"failed with {type(error).__module__}.{describe_error(error)} (not Python's"
                    " built-in TimeoutError)")
        return str(self.outcome)

    def run_timers(self):
        """Fire the timers one by one, each at its time, until none is left."""
        self.advance_to(1e6, "no reply")


@backoff.check("starts", "start() sends at once and returns a Deferred that waits",
               hint="start() sends the first copy itself; the Deferred is what the caller"
                    " waits on, so it cannot have fired yet.")
def _starts(answer):
    run = _Run(answer, 0.1, 4)
    require(run.sends == [0.0], f"start() called send() {len(run.sends)} times, expected once,"
            " at once")
    require(not run.watch.fired, f"start() returned a Deferred that {run.outcome}")


@backoff.check("backs-off", "no reply: sends again after timeout, 2 x timeout, 4 x timeout, ...",
               hint="Each wait is twice the one before; the first is `timeout`. The clock"
                    " you were given is the one to schedule on.")
def _backs_off(answer):
    for timeout, tries, expected in [(0.1, 4, [0.0, 0.1, 0.3, 0.7]), (0.5, 2, [0.0, 0.5]),
                                     (0.2, 1, [0.0])]:
        run = _Run(answer, timeout, tries)
        require(run.clock.getDelayedCalls() or run.watch.fired, f"{run.what}: after"
                " start(), nothing was scheduled on the clock given to Backoff")
        run.run_timers()
        require(run.sends == expected, f"{run.what}, no reply: sends at t={run.sends},"
                f" expected {expected}")


@backoff.check("gives-up", "after `tries` sends and the last wait: TimeoutError naming the"
               " attempts",
               hint="After the last send there is one more wait; when it runs out, fail the"
                    " Deferred, and say how many attempts were made.")
def _gives_up(answer):
    for timeout, tries, at in [(0.1, 4, 1.5), (0.5, 2, 1.5), (0.2, 1, 0.2)]:
        run = _Run(answer, timeout, tries)
        run.advance_to(at - 0.001, "no reply")
        require(not run.watch.fired, f"{run.what}, no reply: at t={at - 0.001:g} the"
                f" Deferred {run.outcome}, before the last wait was over (t={at:g})")
        run.advance_to(at, "no reply")
        message = f"no reply after {tries} attempts"
        ok = run.outcome.is_error(TimeoutError) and str(run.outcome.error) == message
        require(ok, f"{run.what}, no reply: at t={at:g} the Deferred {run.told}, expected"
                f" it to fail with TimeoutError: {message}")
        require(not run.clock.getDelayedCalls(), f"{run.what}: after the failure, calls"
                " were still scheduled on the clock")


@backoff.check("reply-wins", "the first reply fires the Deferred and cancels the timer;"
               " later ones are ignored",
               hint="A reply ends the waiting: nothing may be left on the clock. A duplicate"
                    " reply can come: the Deferred can fire only once.")
def _reply_wins(answer):
    run = _Run(answer, 0.1, 4)
    run.advance_to(0.15, "before the reply")  # the second send was at t=0.1
    run.backoff.replied(b"pong")
    sent = list(run.sends)
    require(run.outcome.kind == "fired" and run.outcome.value == b"pong",
            f"replied(b'pong') at t=0.15: the Deferred {run.outcome}, expected it to fire"
            " with b'pong' at once")
    require(not run.clock.getDelayedCalls(), "after replied(b'pong') at t=0.15, a timer was"
            " still scheduled on the clock")
    try:
        run.backoff.replied(b"late duplicate")
    except Exception as exc:
        raise CheckFailed("a second replied() call, a duplicate reply, raised"
                             f" {describe_error(exc)}") from exc
    run.advance_to(5, "after the reply")
    require(run.sends == sent, f"sends at t={run.sends}, although the reply came at t=0.15")
    require(run.outcome.value == b"pong", f"a later reply changed the result: the Deferred"
            f" {run.outcome}")


@backoff.check("late-reply", "a reply after giving up is ignored",
               hint="By the time a late reply comes, the Deferred has failed and the timer has"
                    " already run: neither can be touched again.")
def _late_reply(answer):
    run = _Run(answer, 0.1, 2)
    run.run_timers()
    require(run.outcome.is_error(TimeoutError), f"{run.what}, no reply: once every timer had"
            f" run, the Deferred {run.told}, expected a TimeoutError (see above)")
    try:
        run.backoff.replied(b"too late")
    except Exception as exc:
        raise CheckFailed(f"{run.what}: replied(b'too late') after the TimeoutError raised"
                             f" {describe_error(exc)}") from exc
    require(run.outcome.is_error(TimeoutError), f"after replied(b'too late') the Deferred"
            f" {run.outcome}")


# -- 13.3 -------------------------------------------------------------------

once = exercise("13.3", "Apply each request once")


@once.check("adds", "adds and answers b'ID total T'",
            hint="The id is the first word, N the last; the reply repeats the id and gives"
                 " the running total. Numbers can have many digits.")
def _adds(answer):
    _script(answer, [("S", "A", b"1 add 5", b"1 total 5"), ("S", "A", b"2 add 37", b"2 total 42"),
                     ("S", "A", b"10 add 100", b"10 total 142")],
            "A sent 1 add 5, 2 add 37, 10 add 100: ")


@once.check("once", "a repeated request is not applied again",
            hint="Remember each request you have applied, with the reply it got, so that a"
                 " copy of it can be recognised, and answered once.")
def _once(answer):
    _script(answer, [("S", "A", b"1 add 5", b"1 total 5"), ("S", "A", b"1 add 5", b"1 total 5"),
                     ("S", "A", b"2 add 1", b"2 total 6"), ("S", "A", b"1 add 5", b"1 total 5"),
                     ("S", "A", b"3 add 10", b"3 total 16")],
            "A sent 1 add 5, the same again (a retransmission), 2 add 1, 1 add 5 once more (a"
            " late copy, after a newer request), then 3 add 10: ")


@once.check("first-reply", "a repeated request gets exactly the reply it got the first time",
            hint="A retransmission means the reply was lost: send that reply again, not one"
                 " made now.")
def _first_reply(answer):
    _script(answer, [("S", "A", b"1 add 5", b"1 total 5"), ("S", "B", b"7 add 10", b"7 total 15"),
                     ("S", "A", b"1 add 5", b"1 total 5")],
            "A sent 1 add 5, B sent 7 add 10, A repeated 1 add 5: ")


@once.check("per-peer", "ids are per peer: the same id from another peer is a new request",
            hint="Each client picks its own ids, so an id names a request only together with"
                 " the whole address of the client that sent it.")
def _per_peer(answer):
    _script(answer, [("S", "A", b"1 add 5", b"1 total 5"), ("S", "B", b"1 add 5", b"1 total 10"),
                     ("S", "A", b"1 add 5", b"1 total 5"), ("S", "B", b"1 add 5", b"1 total 10")],
            "A sent 1 add 5, B (also on 127.0.0.1) sent the same datagram, 1 add 5, then both"
            " repeated theirs: ")


@once.check("own-state", "two OnceServer ports keep their own totals",
            hint="What is made once for the class, in its body or as a default argument, is"
                 " shared by every instance; each server needs a total and a memory of its"
                 " own.")
def _own_state(answer):
    _script(answer, [("S1", "A", b"1 add 5", b"1 total 5"), ("S2", "A", b"1 add 7", b"1 total 7")],
            "peer A sent 1 add 5 to port S1, then 1 add 7 to port S2: ", ("S1", "S2"))
