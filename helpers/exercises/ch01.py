"""Checks for chapter 01 (sockets): real sockets on loopback, a second or two at most.

01.1 recv_exactly(sock, n)             -- loop over recv until n bytes; EOFError on early EOF
01.2 upper_handler(conn)               -- a line server for serve_socket: each line upper-cased
01.3 port_is_open(host, port, timeout) -- True if something accepts, False otherwise

01.1 reads from a socket fed in pieces, each sent only after the reader's code has
returned from a recv() (`Pieces`), so it really sees short reads, and the socket counts
what the reader's code took from it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from .answers import resource_warnings, run_answer, show
from .framework import CheckFailed, exercise, fail, observation, require
from .paced import Pieces, count, kept_reading
from .wire import Client, Received, dead_port, serving, why

TIMEOUT = 1.0  # how long the reader's code may block before the check gives up on it
REPLY_TIMEOUT = 0.5  # how long a client waits for the rest of a reply, or for silence
REFUSED_TIMEOUT = 5.0  # 01.3's timeout where nothing listens: far longer than TIMEOUT


def _nbytes(value) -> str:
    """"3 bytes b'abc'"; other values as show() has them."""
    if not isinstance(value, bytes):
        return show(value)
    return f"{count(len(value))} {show(value, 40)}"


# -- 01.1 recv_exactly -------------------------------------------------------------

recv_exactly = exercise("01.1", "recv_exactly")

_PIECES = [b"a", b"bc", b"def", bytes(range(256)) * 8, bytes(range(255, -1, -1)) * 400]
_DATA = b"".join(_PIECES)


def _read(fn, pieces, n, what):
    """Run fn(reader, n) with a deadline while `pieces` arrive: its Outcome. Fails at once
    if it blocked, or raised EOFError although the peer never closes."""
    try:
        outcome = run_answer(fn, pieces.reader, n, limit=TIMEOUT, release=pieces.release,
                             what=f"recv_exactly(sock, {n}), when {what},")
    except CheckFailed as exc:
        fail(f"{exc}; it had taken {count(pieces.reader.taken)} from the socket")
    if outcome.is_error(EOFError) and not pieces.close:
        fail(f"{what}: recv_exactly(sock, {n}) raised EOFError, but the peer had not closed"
             f" the connection (your function had taken {count(pieces.reader.taken)} from"
             " the socket)")
    return outcome


@recv_exactly.check("collects-pieces", "returns all n bytes when they come in pieces",
                    hint="One recv() returns whatever has arrived, from one byte up to the"
                         " size you ask for. Call it again until you have n bytes; a short"
                         " read is not the end of the stream.")
def _collects_pieces(fn):
    what = (f"the peer sends {len(_DATA)} bytes in {len(_PIECES)} pieces, each after your"
            " previous recv() returned")
    with Pieces(_PIECES, close=False) as pieces:
        outcome = _read(fn, pieces, len(_DATA), what)
    require(outcome.kind == "returned",
            f"{what}: recv_exactly(sock, {len(_DATA)}) {outcome}")
    got = outcome.value
    require(isinstance(got, bytes),
            f"{what}: recv_exactly returned a {type(got).__name__}, expected bytes")
    require(got == _DATA,
            f"{what}: recv_exactly(sock, {len(_DATA)}) returned {_nbytes(got)}, expected all"
            f" {len(_DATA)} bytes in order")


@recv_exactly.check("stops-at-n", "takes no more than n bytes from the socket",
                    hint="The bytes after the n-th belong to the next read. Ask recv() for no"
                         " more than you still need, and take no more from the socket than"
                         " you return.")
def _stops_at_n(fn):
    what = "the peer sent b'012', then b'3456789abc' after your first recv() returned"
    with Pieces([b"012", b"3456789abc"], close=False) as pieces:
        outcome = _read(fn, pieces, 8, what)
        taken = pieces.reader.taken
    require(outcome.kind == "returned", f"{what}: recv_exactly(sock, 8) {outcome}")
    require(outcome.value == b"01234567",
            f"{what}: recv_exactly(sock, 8) returned {_nbytes(outcome.value)}, expected the"
            " first 8: b'01234567'")
    require(taken == 8,
            f"{what}: recv_exactly(sock, 8) returned the right 8 bytes but took {taken} from"
            f" the socket, so the next read will miss the {count(taken - 8)} after them")


@recv_exactly.check("zero", "n = 0 returns b'' and reads nothing",
                    hint="For n = 0 there is nothing to read. Note that recv(0) also returns"
                         " b'', though the stream has not ended.")
def _zero(fn):
    what = "the peer sent b'abc' and stayed connected"
    with Pieces([b"abc"], close=False) as pieces:
        outcome = _read(fn, pieces, 0, what)
        taken = pieces.reader.taken
    require(outcome.kind == "returned" and outcome.value == b"",
            f"{what}: recv_exactly(sock, 0) {outcome}, expected it to return b''")
    require(taken == 0, f"{what}: recv_exactly(sock, 0) returned b'' but took"
                        f" {count(taken)} from the socket")


@recv_exactly.check("eof-raises", "raises EOFError when the peer closes before n bytes",
                    hint="recv() returning b'' means the peer has closed: the missing bytes"
                         " will never come. Stop there and raise; a partial result would"
                         " pass for a whole one.")
def _eof_raises(fn):
    for sent, n in [(b"abc", 10), (b"", 4)]:
        what = f"the peer sent {sent!r} and closed"
        with Pieces([sent] if sent else [], close=True) as pieces:
            outcome = _read(fn, pieces, n, what)
        if message := kept_reading(outcome):
            fail(f"{what}: {message}")
        if outcome.kind == "returned":
            fail(f"{what}: recv_exactly(sock, {n}) returned {show(outcome.value)}; the"
                 f" {len(sent)} bytes sent are not the {n} asked for, so expected EOFError")
        require(outcome.is_error(EOFError),
                f"{what}: recv_exactly(sock, {n}) {outcome}, expected EOFError")


# -- 01.2 upper_handler ------------------------------------------------------------

upper = exercise("01.2", "An upper-casing line server")


class _Conn(socket.socket):
    """What the reader's handler gets: a duplicate of the accepted socket, which the
    check closes at the end (stopping a handler that loops on b""); if `stingy`, its
    send() takes at most 3 bytes per call, as a real send() may when the buffer is full."""

    def __init__(self, conn: socket.socket, stingy: bool):
        dup = conn.dup()
        super().__init__(dup.family, dup.type, dup.proto, fileno=dup.detach())
        self.stingy = stingy

    def send(self, data, *flags):
        if self.stingy:
            data = memoryview(data)[:3]
        return super().send(data, *flags)


@contextlib.contextmanager
def _serving(handler, *, stingy=False):
    """The reader's handler on a real port; every connection it got is closed at the end."""
    conns = []

    def run(conn):
        with _Conn(conn, stingy) as mine:
            conns.append(mine)
            handler(mine)

    with serving("check-01.2", run) as server:
        try:
            yield server
        finally:
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked in recv()
                conn.close()  # a handler still calling recv() now gets an OSError


def _client(server):
    return Client(server.port, timeout=REPLY_TIMEOUT)


def _then(first, read_rest) -> Received:
    """`first`, and if it was complete, what `read_rest()` read after it, as one read."""
    if first.ending != "complete":
        return first
    rest = read_rest()
    return Received(first.data + rest.data, rest.ending, rest.seconds)


def _expect(client, server, sent: bytes, want: bytes, after: str | None = None):
    """Send `sent`, then read len(want) bytes (the first within TIMEOUT, the rest within
    REPLY_TIMEOUT); fail unless they are `want`."""
    client.send(sent)
    got = _then(client.read_exactly(1, timeout=TIMEOUT),
                lambda: client.read_exactly(len(want) - 1))
    if got.data != want:
        fail(f"{after or f'sent {sent!r}'}: the client expected {_text(want)} but"
             f" {_said(got)}{why(server)}")


def _text(data: bytes) -> str:
    """Bytes as the text they encode in UTF-8 (the repr of bytes hides non-ASCII letters)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return repr(data) if text.isascii() else f"{text!r} in UTF-8"


def _said(got) -> str:
    """What a client received, in words, its bytes shown as `_text` has them."""
    return str(got).replace(show(got.data), _text(got.data), 1) if got.data else str(got)


@upper.check("replies-at-once", "replies to a line at once, the connection still open",
             hint="Reply as soon as a line is complete, while the client is still"
                  " connected; the reply is the whole line, newline included.")
def _replies_at_once(handler):
    with _serving(handler) as server, _client(server) as client:
        _expect(client, server, b"hello\n", b"HELLO\n")


@upper.check("lines-in-pieces", "several lines in one recv(), and a line across two",
             hint="One recv() may hold several lines, an empty one, or part of one. Keep the"
                  " bytes in a buffer, take every complete line out of it, and keep the"
                  " unfinished rest for the next recv().")
def _lines_in_pieces(handler):
    with _serving(handler) as server, _client(server) as client:
        _expect(client, server, b"ab \n\n cd\nef", b"AB \n\n CD\n",
                "sent b'ab \\n\\n cd\\nef' in one write (three lines, one empty, and a half)")
        _expect(client, server, b"gh\n", b"EFGH\n", "then sent b'gh\\n' to finish the fourth")


@upper.check("non-ascii", "upper-cases non-ASCII letters: 'ça' -> 'ÇA'",
             hint="bytes.upper() knows only ASCII letters. Upper-case text, not bytes: decode"
                  " the line as UTF-8 first, and encode the reply.")
def _non_ascii(handler):
    text = "première, ça\n"
    want = text.upper().encode()
    with _serving(handler) as server, _client(server) as client:
        _expect(client, server, text.encode(), want, f"sent {text!r} in UTF-8")


@upper.check("split-utf8", "a character split across two recv() calls",
             hint="A recv() can end inside a character: decode whole lines, never what one"
                  " recv() returned.")
def _split_utf8(handler):
    text = "déjà vu\n"
    data = text.encode()
    cut = data.index("é".encode()) + 1  # between the two bytes of "é"
    with _serving(handler) as server, _client(server) as client:
        _expect(client, server, b"ok\n" + data[:cut], b"OK\n")
        _expect(client, server, data[cut:], text.upper().encode(),
                f"then sent {data[cut:]!r}, the rest of {text!r} (cut inside 'é')")


@upper.check("own-buffer", "two clients at once, each with its own unfinished line",
             hint="serve_socket runs one handler call per connection, in its own thread, at"
                  " the same time as the others: keep a connection's state inside its call.")
def _own_buffer(handler):
    with _serving(handler) as server, _client(server) as first:
        _expect(first, server, b"alpha\nbe", b"ALPHA\n", "client 1 sent b'alpha\\nbe'")
        with _client(server) as second:
            _expect(second, server, b"gamma\n", b"GAMMA\n",
                    "client 1 still connected, with b'be' unfinished, client 2 sent"
                    " b'gamma\\n'")
        _expect(first, server, b"ta\n", b"BETA\n", "then client 1 sent b'ta\\n'")


@upper.check("sends-everything", "sends every byte when send() takes only part",
             hint="send() may take only part of what you give it and returns how much it"
                  " took; the exercise names the call that sends everything.")
def _sends_everything(handler):
    line = b"x" * 50 + b"\n"
    with _serving(handler, stingy=True) as server, _client(server) as client:
        _expect(client, server, line, line.upper(),
                "the server's send() took at most 3 bytes per call; the client sent a 51-byte"
                " line")


@upper.check("ends-with-stream", "at end of stream: no reply to an unfinished line, then"
             " return", hint="recv() returning b'' means the client has finished sending."
             " Bytes after the last newline are not a line. Return, so that the server"
             " closes the connection.")
def _ends_with_stream(handler):
    with _serving(handler) as server, _client(server) as client:
        client.send(b"last\nno newline")
        client.shutdown_write()
        got = _then(client.read_until(b"\n", timeout=TIMEOUT), client.read_to_end)
        after = "sent b'last\\nno newline' and half-closed (shutdown SHUT_WR)"
        require(got.data == b"LAST\n" and got.ending == "closed",
                f"{after}: the client expected b'LAST\\n' and then the end of the stream, but"
                f" {_said(got)}"
                f"{' (your handler had not returned)' if got.ending == 'silent' else ''}"
                f"{why(server)}")
        require(not server.raised,
                f"{after}: the client got b'LAST\\n' and then the end of the stream, but"
                f"{why(server).removeprefix(';')} instead of returning: bytes after the last"
                " newline are no line, and the end of the stream is no error")


# -- 01.3 port_is_open -------------------------------------------------------------

probe = exercise("01.3", "port_is_open")


@observation
def _default_changes(fn):
    """The changes port_is_open made to socket.getdefaulttimeout() in this check() call:
    [(before, after), ...]; each was undone at once."""
    return []


def _probe(fn, *args, **kwargs):
    """run_answer(fn, ...), noting (and undoing) a change to the default socket timeout."""
    before = socket.getdefaulttimeout()
    try:
        return run_answer(fn, *args, **kwargs)
    finally:
        after = socket.getdefaulttimeout()
        if after != before:
            _default_changes(fn).append((before, after))
            socket.setdefaulttimeout(before)


@observation
def _on_a_listening_port(fn):
    """port_is_open on a listening port: (outcome, unclosed, connected, closed after)."""
    connected, closed = threading.Event(), threading.Event()

    def handler(conn):
        connected.set()
        while conn.recv(1024):
            pass
        closed.set()

    with serving("check-01.3", handler) as server, \
            resource_warnings("unclosed <socket.socket") as unclosed:
        outcome = _probe(fn, "127.0.0.1", server.port, 1.0, limit=TIMEOUT,
                             what="port_is_open('127.0.0.1', port, 1.0) on a listening port")
        reached = connected.wait(TIMEOUT) if outcome.kind == "returned" else connected.is_set()
        return outcome, unclosed, reached, reached and closed.wait(TIMEOUT)


@observation
def _on_a_dead_port(fn):
    """port_is_open where nothing listens, given a timeout far longer than the check waits:
    (outcome, unclosed), the outcome None if it was still running (`_false_when_refused`
    says so)."""
    with dead_port() as port, resource_warnings("unclosed <socket.socket") as unclosed:
        try:
            outcome = _probe(fn, "127.0.0.1", port, REFUSED_TIMEOUT, limit=TIMEOUT,
                                 what=f"port_is_open('127.0.0.1', port, {REFUSED_TIMEOUT:g})"
                                      " where nothing listens")
        except CheckFailed as exc:
            return None, unclosed, str(exc)
        return outcome, unclosed, None


@probe.check("true-when-listening", "True for a port where a server listens",
             hint="Try to connect, within the timeout; if that works, something is"
                  " listening.")
def _true_when_listening(fn):
    outcome, _, connected, _ = _on_a_listening_port(fn)
    require(outcome.kind == "returned" and outcome.value is True,
            f"a server listens on 127.0.0.1:port; port_is_open {outcome}, expected True")
    require(connected, "port_is_open returned True, but no connection reached the server")


@probe.check("false-when-refused", "False for a port where nothing listens",
             hint="Connecting where nothing listens raises an exception: which one, and what"
                  " is it a subclass of? Catch it and return False.")
def _false_when_refused(fn):
    outcome, _, running = _on_a_dead_port(fn)
    if running:
        fail(f"{running}: nothing listens there, so each connection attempt is refused at"
             " once, and a refusal is already the answer")
    require(outcome.kind == "returned" and outcome.value is False,
            f"nothing listens on 127.0.0.1:port; port_is_open {outcome}, expected False")


def _require_written(*outcomes) -> None:
    """Fail as the stub does if one of these outcomes (None: still running) is the stub's."""
    for o in outcomes:
        if o is not None and o.is_error(NotImplementedError):
            raise CheckFailed(f"port_is_open {o}") from o.error


@probe.check("closes-socket", "closes its socket, whatever happened",
             hint="A `with` block closes a socket on every way out of it, an exception"
                  " included; a socket left to the garbage collector stays open until then.")
def _closes_socket(fn):
    outcome, unclosed, reached, closed = _on_a_listening_port(fn)
    refused, unclosed_refused, _ = _on_a_dead_port(fn)  # None: false-when-refused says why
    _require_written(outcome, refused)
    if reached and outcome.kind == "returned":
        require(closed, f"port_is_open {outcome}, but the server's end of the connection was"
                        f" still open {TIMEOUT:g} s later: the socket was never closed")
    for case, unclosed_ in [("it returned on a listening port", unclosed),
                            ("it ran where nothing listens", unclosed_refused)]:
        require(not unclosed_, f"{case}, and left its socket for the garbage collector to"
                               f" close ({unclosed_[0] if unclosed_ else ''})")


@probe.check("false-within-timeout", "False within `timeout` for a port that never answers",
             hint="Without a timeout, connect() waits as long as the system keeps trying"
                  " (minutes). Give the connection attempt the timeout; the exception it"
                  " raises when time is up is an OSError too.")
def _false_within_timeout(fn):
    # A listener whose accept queue is full: Linux ignores further connection attempts,
    # so a connect() waits until its timeout. Closing it makes the next retry refused.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
            started = time.monotonic()
            outcome = _probe(
                fn, "127.0.0.1", port, 0.3, limit=0.3 + TIMEOUT, release=listener.close,
                what="port_is_open('127.0.0.1', port, 0.3) on a port that never answers")
            elapsed = time.monotonic() - started
    what = "a port that never answers, timeout=0.3"
    require(outcome.kind == "returned" and outcome.value is False,
            f"{what}: port_is_open {outcome}, expected False")
    require(elapsed < 0.8, f"{what}: port_is_open returned False only after {elapsed:.1f} s")


@probe.check("own-timeout", "gives the timeout to its own socket, no other",
             hint="A timeout can be set on one socket, or for every socket the program makes"
                  " from then on, in any library: only the first is this function's to set.")
def _own_timeout(fn):
    _require_written(_on_a_listening_port(fn)[0], _on_a_dead_port(fn)[0])
    changes = _default_changes(fn)
    if changes:
        before, after = changes[0]
        fail(f"port_is_open changed the default timeout of every new socket from {before!r}"
             f" to {after!r} (socket.setdefaulttimeout): from then on every socket this"
             " kernel makes, in any library, would give up after that time (the checker put"
             " it back)")
