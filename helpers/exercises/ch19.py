"""Checks for chapter 19 (performance).

19.1 `FastTotal`: a Twisted protocol answering `ADD n` lines with the connection's running
     total. Driven without a network (StringTransport): its answers must equal those of the
     chapter's slow `RunningTotal` (kept here as the reference) for lines whole, split and
     batched, bad lines, bytes that are not ASCII digits and a 20,000-byte line; each
     connection has its own total and its own unfinished line; and the CPU time of a batch
     of requests must not grow with the requests the connection made before (the 20,001st
     to the 22,000th against the first 2,000, best of three, within a factor of 3).
19.2 `ask(sock, header, body, reply_size=2)`: a plain-socket client of a server that answers
     once header and body are in. Checked on a real loopback connection: the bytes the server
     got, in order (a body of 8 MiB included), the whole reply when it comes in pieces and
     nothing after it (what follows is still in the socket), the socket left open and as it
     was (a second request works, the timeout unchanged), an exception when the server closes
     mid-reply, and a median time per request under NAGLE_MS (Nagle with delayed ACKs makes
     it about 40 ms).
"""

from __future__ import annotations

import contextlib
import functools
import socket
import statistics
import threading
import time
from pathlib import Path

from ..notebook_code import load
from . import CheckFailed, exercise, fail, require, run_answer, show
from .framework import describe_error, describe_raised

BATCH = 2000  # 19.1: requests per timed batch
BEFORE = 10000  # 19.1: requests made between the first and the last timed batch
GROWTH = 3.0  # 19.1: how much slower the late batch may be than the early one
SLOW = 1.5  # 19.1: seconds of CPU for the 10,000 requests between (a right answer: 0.1 s)
NAGLE_MS = 20.0  # 19.2: slower than this, a request waited for a delayed ACK (40 ms);
# a loaded machine can delay a thread's wake-up by several ms, so not lower
ASK_LIMIT = 2.0  # 19.2: seconds one call of ask() may take
SEND_LIMIT = 1.0  # 19.2: seconds to send 8 MiB on loopback and read 2 bytes (needs 0.05)


# -- 19.1 -----------------------------------------------------------------------------------

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "19_performance.ipynb"

total = exercise("19.1", "Find the hot spot")


def _reference():
    """The chapter's RunningTotal (its `# module: running_total` cell): right answers, slow."""
    return load(NOTEBOOK, "running_total").RunningTotal


def _connect(protocol_class):
    from twisted.internet.testing import StringTransport

    protocol = protocol_class()
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def _answers(protocol_class, pieces):
    protocol, transport = _connect(protocol_class)
    for piece in pieces:
        protocol.dataReceived(piece)
    return transport.value()


def _yours(fast, what, pieces, want):
    """The reader's answers to `pieces`; what it raised fails the check, saying when."""
    try:
        return _answers(fast, pieces)
    except Exception as exc:
        raise CheckFailed(f"{what} ({show(b''.join(pieces))}): RunningTotal answers"
                          f" {show(want)}; your code raised {describe_raised(exc)}") from exc


CASES = [
    ("one line", [b"ADD 5\n"]),
    ("three lines in one read", [b"ADD 5\nADD -2\nADD 40\n"]),
    ("a line cut in two reads", [b"ADD 1", b"2\nADD 3\n"]),
    ("every byte a read of its own", [bytes([b]) for b in b"ADD 7\nADD -3\nADD 100\n"]),
    ("bad lines between good ones", [b"ADD 5\nhello\nADD x\nADD\nSUB 3\n\nADD 1\n"]),
    ("spaces and CRLF", [b"  ADD 9\r\nADD  4\n"]),
    ("a tab, a second number", [b"ADD 2\nADD\t3\nADD 4 5\nADD 1\n"]),
    ("digits that are not ASCII, bytes that are not UTF-8",
     [b"ADD 2\nADD \xd9\xa3\nADD \xff\nADD 1\n"]),  # U+0663, ARABIC-INDIC DIGIT THREE
    ("a line of 20,000 bytes", [b"ADD 1\nADD" + b" " * 20_000 + b"7\nADD 1\n"]),
    ("a line not finished yet", [b"ADD 5\nADD 6"]),  # last: what it leaves is never used
]


@total.check("answers", "the same answers as RunningTotal, however the lines arrive",
             hint="Keep the part of a line that has not ended yet for the next read, and"
                  " answer a bad line without touching the total.")
def _same_answers(fast):
    slow = _reference()
    for what, pieces in CASES:
        want = _answers(slow, pieces)
        got = _yours(fast, what, pieces, want)
        require(got == want, f"{what} ({show(b''.join(pieces))}): RunningTotal answers"
                             f" {show(want)}, yours {show(got)}")


@total.check("per-connection", "each connection has its own total and its own unfinished line",
             hint="Where do your total and your buffer live? Two connections are two protocol"
                  " objects; whatever the class holds, every connection shares.")
def _per_connection(fast):
    # an unfinished line on one connection while another sends a whole line (what the
    # first then answers is the answers check's business: a line cut in two reads)
    first, first_out = _connect(fast)
    second, second_out = _connect(fast)
    steps = "the first connection got b'ADD 1', the second b'ADD 2\\n', the first b'0\\n'"
    with _fed(steps):
        first.dataReceived(b"ADD 1")
        second.dataReceived(b"ADD 2\n")
        first.dataReceived(b"0\n")
    answered = second_out.value()
    require(answered == b"2\n",
            f"two new connections: {steps}; the second answered {show(answered)}, expected"
            " b'2\\n'" + (": its line was read together with bytes the first connection sent"
                           if answered.startswith(b"ERR") else
                           ": it did not start from a total of 0"))
    first, first_out = _connect(fast)
    second, second_out = _connect(fast)
    with _fed("two more connections, the first adds 5 then 1, the second 100"):
        first.dataReceived(b"ADD 5\n")
        second.dataReceived(b"ADD 100\n")
        first.dataReceived(b"ADD 1\n")
    require((first_out.value(), second_out.value()) == (b"5\n6\n", b"100\n"),
            "two more connections, the first adds 5 then 1, the second 100: the first got"
            f" {show(first_out.value())}, the second {show(second_out.value())}"
            " (expected b'5\\n6\\n' and b'100\\n')")
    third, third_out = _connect(fast)
    with _fed("a new connection after others added, sending ADD 1"):
        third.dataReceived(b"ADD 1\n")
    require(third_out.value() == b"1\n", "a new connection must start from 0; after"
            f" others added, its ADD 1 got {show(third_out.value())}")


@contextlib.contextmanager
def _fed(what):
    try:
        yield
    except Exception as exc:
        raise CheckFailed(f"{what}: your code raised {describe_raised(exc)}") from exc


def _batch_seconds(protocol, transport, n):
    line = b"ADD 1\n"
    started = time.process_time()
    for _ in range(n):
        protocol.dataReceived(line)
    spent = time.process_time() - started
    transport.clear()
    return spent


@total.check("constant-cost", "a request costs the same after 10,000 requests as at first",
             hint="Profile it: what does each request do that grows with every request"
                  " before it? Keep what each answer needs, not the history that produced"
                  " it.")
def _constant_cost(fast):
    early = []
    for _ in range(3):  # best of three: a context switch cannot fail a good answer
        protocol, transport = _connect(fast)
        early.append(_batch_seconds(protocol, transport, BATCH))
    protocol, transport = _connect(fast)
    spent = 0.0
    for done in range(BATCH, BEFORE + 1, BATCH):
        spent += _batch_seconds(protocol, transport, BATCH)
        require(spent < SLOW, f"{BATCH:,} requests on a new connection took"
                              f" {min(early) * 1e3:.1f} ms of CPU; the first {done:,} on one"
                              f" connection took {spent:.1f} s")
    late = [_batch_seconds(protocol, transport, BATCH) for _ in range(3)]
    # the late batches come after BEFORE + 1 ... requests on the same connection
    ratio = min(late) / max(min(early), 1e-6)
    require(ratio <= GROWTH,
            f"{BATCH:,} requests on a new connection took {min(early) * 1e3:.1f} ms of CPU;"
            f" the same {BATCH:,} after {BEFORE:,} earlier requests took"
            f" {min(late) * 1e3:.1f} ms, {ratio:.0f} times as long")


# -- 19.2 -----------------------------------------------------------------------------------

ask = exercise("19.2", "No more 40 ms")
SMALL_BUFFER = 1 << 16


class _TwoPart:
    """A server thread: reads header and body (their sizes given), answers `reply` in the
    pieces given, and keeps what it read in `.got`; one connection, `requests` requests."""

    def __init__(self, header_size, body_size, reply_pieces, requests=1):
        self.listener = socket.socket()
        # Small buffers, as on a real network: one send() cannot take 8 MiB at once.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.sizes, self.reply_pieces, self.requests = (header_size, body_size), \
            reply_pieces, requests
        self.got, self.received = [], 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="helpers-ch19-two-part",
                                       daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(3)
            try:
                for _ in range(self.requests):
                    wanted, data = sum(self.sizes), bytearray()
                    while len(data) < wanted:
                        chunk = conn.recv(min(1 << 20, wanted - len(data)))
                        if not chunk:
                            return
                        data += chunk
                        self.received = len(data)
                    self.got.append(bytes(data))
                    for i, piece in enumerate(self.reply_pieces):
                        if i:
                            time.sleep(0.005)  # the reply in pieces, as a network delivers it
                        conn.sendall(piece)
            except OSError:
                pass
            finally:
                self.done.set()

    def client(self):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        sock.settimeout(3)
        sock.connect(("127.0.0.1", self.port))
        return sock

    def close(self):
        self.listener.close()
        self.thread.join(5)


def _call(fn, sock, header, body, reply_size):
    what = f"ask(sock, {show(header, 20)}, <{len(body):,} bytes>, reply_size={reply_size})"
    outcome = run_answer(lambda: fn(sock, header, body, reply_size=reply_size),
                         limit=ASK_LIMIT, release=lambda: sock.shutdown(socket.SHUT_RDWR),
                         what=what)
    if not outcome.ok:
        fail(f"{what} {outcome}")
    return outcome.value


@ask.check("sends", "the server gets header then body, whole, even 8 MiB of body",
           hint="send() may take only part of what you give it; and the order matters.")
def _sends(fn):
    for header, body in [(b"HEAD", b"bodybody"), (b"H" * 16, bytes(range(256)) * 32768)]:
        server = _TwoPart(len(header), len(body), [b"ok"])
        total = len(header) + len(body)
        try:
            with server.client() as sock:
                try:
                    outcome = run_answer(functools.partial(fn, sock, header, body, reply_size=2),
                                         limit=SEND_LIMIT,
                                         release=lambda: sock.shutdown(socket.SHUT_RDWR))
                    ended = "returned" if outcome.ok else str(outcome)
                except CheckFailed:  # still running: released
                    outcome, ended = None, f"was still waiting after {SEND_LIMIT:g} s"
                require(not server.got or server.got[0] == header + body,
                        f"with a body of {len(body):,} bytes the server got the right number of"
                        f" bytes in the wrong order: they start {show(server.got[0][:12])},"
                        f" not {show((header + body)[:12])}" if server.got else "")
                require(server.got, f"with a body of {len(body):,} bytes the server got"
                                    f" {server.received:,} of the {total:,} bytes and was"
                                    f" still waiting for the rest; ask() {ended}")
                require(outcome is not None and outcome.ok, f"ask() {ended}")
        finally:
            server.close()


@ask.check("reply", "returns the whole reply when it comes in pieces, and reads nothing more",
           hint="One recv() returns what has arrived so far, which may be part of the reply;"
                " and what ask() reads past the reply is lost to the next request.")
def _reply(fn):
    server = _TwoPart(4, 8, [b"AB", b"CDE", b"Fnext"], requests=1)
    try:
        with server.client() as sock:
            got = _call(fn, sock, b"HEAD", b"bodybody", 6)
            require(got == b"ABCDEF", f"the 6-byte reply ABCDEF came as AB, CDE, then F with"
                                      f" the next reply's first bytes (5 ms apart); ask()"
                                      f" returned {show(got)}")
            if sock.fileno() == -1:
                return  # closed: the check "kept" says so
            server.done.wait(2)  # the server has sent everything and closed
            sock.settimeout(1)
            left = bytearray()
            with contextlib.suppress(OSError):
                while chunk := sock.recv(64):
                    left += chunk
            require(left == b"next", "the 6-byte reply ABCDEF came as AB, CDE, then F with"
                    " the next reply's first bytes b'next'; ask() returned b'ABCDEF', but"
                    f" the socket then held {show(bytes(left))}, not b'next': ask() read past"
                    " its reply and dropped what it read")
    finally:
        server.close()


@ask.check("kept", "leaves the socket open, as it found it, ready for the next request",
           hint="The socket is the caller's: ask() uses it for one request and leaves it"
                " as it was, open both ways, with its timeout.")
def _kept(fn):
    server = _TwoPart(4, 8, [b"ok"], requests=2)
    try:
        with server.client() as sock:
            timeout = sock.gettimeout()
            _call(fn, sock, b"HEAD", b"bodybody", 2)
            require(sock.fileno() != -1, "after one request, ask() had closed the socket:"
                                         " the caller cannot make a second request on it")
            require(sock.gettimeout() == timeout,
                    f"the socket came with a timeout of {timeout:g} s; after ask() it was"
                    f" {sock.gettimeout()} (None: blocking forever; 0.0: non-blocking)")
            try:
                sock.sendall(b"HEADbodybody")
                reply = sock.recv(2)
            except OSError as exc:
                fail("after one request, the checker sent a second one on the same socket"
                     f" and got {describe_error(exc)}: ask() left the socket unable to send")
            require(reply == b"ok", "after one request, the checker sent a second one on the"
                    f" same socket and read {show(reply)}, expected b'ok'")
    finally:
        server.close()


@ask.check("closed", "raises when the server closes before the whole reply came",
           hint="recv() returns b'' once the peer has closed: nothing more will ever come,"
                " and a short reply is not the reply.")
def _closed(fn):
    server = _TwoPart(4, 8, [b"o"], requests=1)  # one byte of two, then it closes
    what = "ask(sock, b'HEAD', <8 bytes>, reply_size=2)"
    try:
        with server.client() as sock:
            try:
                outcome = run_answer(lambda: fn(sock, b"HEAD", b"bodybody", reply_size=2),
                                     limit=ASK_LIMIT,
                                     release=lambda: sock.shutdown(socket.SHUT_RDWR),
                                     what=what)
            except CheckFailed as exc:
                raise CheckFailed(f"the server sent b'o' of a 2-byte reply, then closed the"
                                  f" connection; {exc}: it kept reading a closed"
                                  " connection") from None
            if outcome.is_error(NotImplementedError):
                raise outcome.error  # the stub: not attempted
            require(not outcome.ok, f"the server sent b'o' of a 2-byte reply, then closed the"
                    f" connection; {what} {outcome}, expected it to raise: the reply is"
                    " short and can never be whole")
    finally:
        server.close()


@ask.check("fast", "a request takes well under a millisecond, not 40 ms",
           hint="What does the kernel do with a small write while an earlier one is not yet"
                " acknowledged? Chapter 19, section 8.")
def _fast(fn):
    n = 9
    server = _TwoPart(4, 8, [b"ok"], requests=n)
    try:
        with server.client() as sock:
            times = []
            for i in range(n):
                started = time.perf_counter()
                try:
                    got = _call(fn, sock, b"HEAD", b"bodybody", 2)
                except CheckFailed as exc:
                    closed = "; ask() had closed the socket" if sock.fileno() == -1 else ""
                    raise CheckFailed(f"request {i + 1} of {n} on one connection: {exc}"
                                      f"{closed}") from exc.__cause__
                times.append((time.perf_counter() - started) * 1e3)
                require(got == b"ok", f"ask() returned {show(got)}, expected b'ok'")
    finally:
        server.close()
    median = statistics.median(times)
    require(median < NAGLE_MS, f"{n} requests on one connection: median {median:.1f} ms per"
                               f" request (loopback answers in a twentieth of that)")
