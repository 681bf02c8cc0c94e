"""Checks for chapter 07 (clients and endpoints).

07.1 `ReplyFactory(message)`: a ClientFactory; its protocol sends `message` when connected
     and collects what the server sends until the server closes; `factory.result` fires
     with those bytes, or fails with the reason the connection could not be made.
07.2 `fetch(endpoint, line) -> Deferred`: send one line (UTF-8) over any client endpoint,
     fire with the first reply line (a str), close; fail if the connection cannot be made,
     or closes before a whole line.
07.3 `KeyValueClient`: a Protocol with get(key) -> Deferred for a server that answers
     "get KEY" with "value VALUE" or "missing KEY", in order; requests pipelined,
     KeyError(key) for a missing key, pending requests failed when the connection is lost,
     later requests failed at once.

Each check runs a small scripted server (`_Script`, on 127.0.0.1 or on a UNIX socket) and
the reader's client in the reactor thread. Before a check returns, every connection of the
reader's to that server has ended, so whatever the reader's callbacks raise is logged, and
shown, inside the check.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    clientFromString,
    connectProtocol,
    serverFromString,
)
from twisted.internet.protocol import ClientFactory, Factory, Protocol

from .. import reactor as _reactor
from ..events import EventLog
from . import (
    CheckFailed,
    Watch,
    exercise,
    fail,
    observation,
    require,
    require_deferred,
    settle,
    show,
)
from .wire import dead_port

TIMEOUT = 2.0  # the longest a check waits for the reader's client to do something
POLL = 0.005  # how often the checker looks again while it waits in the reactor thread


# -- this chapter's harness (a job no other checker has): waiting in the reactor thread, and a
#    scripted server


def until(condition, limit: float):
    """In the reactor thread: a Deferred that fires with True as soon as condition() holds,
    or with False after `limit` seconds."""
    from twisted.internet import reactor

    done, deadline = Deferred(), reactor.seconds() + limit

    def poll():
        if condition():
            done.callback(True)
        elif reactor.seconds() >= deadline:
            done.callback(False)
        else:
            reactor.callLater(POLL, poll)

    poll()
    return done


def _clients_of(address) -> list:
    """This reactor's client connections to `address` that have not ended yet."""
    from twisted.internet import reactor

    def peer(selectable):
        with contextlib.suppress(Exception):
            return selectable.getPeer()

    return [s for s in {*reactor.getReaders(), *reactor.getWriters()}
            if hasattr(s, "connector") and peer(s) == address]


def _peer_transport(transport, address):
    """The reader's client transport at the other end of the server's `transport`."""
    here = transport.getPeer()
    clients = _clients_of(address)
    return next((c for c in clients if c.getHost() == here), clients[0] if clients else None)


def _unread(transport) -> int | None:
    """How many bytes wait in `transport`'s socket, not read yet (None: cannot tell)."""
    try:
        import fcntl
        import termios

        queued = fcntl.ioctl(transport.getHandle().fileno(), termios.FIONREAD, b"\0" * 4)
    except (ImportError, AttributeError, OSError):  # no socket (any more), or not POSIX
        return None
    return int.from_bytes(queued, "little" if sys.byteorder == "little" else "big")


class _Script:
    """The checker's server, `protocol_class` listening on `description` (127.0.0.1 or a
    UNIX socket), for a `with`. Its protocols record into `log`; `factory` carries the
    script's settings. On exit, its connections are aborted and the checker waits until
    the reader's clients have heard it (their connectionLost has run)."""

    def __init__(self, protocol_class, description="tcp:0:interface=127.0.0.1", **settings):
        self.description, self.log = description, EventLog()
        self.factory = Factory.forProtocol(protocol_class)
        self.factory.log, self.factory.protocols = self.log, []
        vars(self.factory).update(settings)

    def __enter__(self):
        from twisted.internet import reactor

        self.port = _reactor.call(
            lambda: serverFromString(reactor, self.description).listen(self.factory))
        self.address = self.factory.address = self.port.getHost()
        return self

    def heard(self) -> bytes:
        return b"".join(e.details["data"] for e in self.log if e.what == "heard")

    def closed(self) -> bool:
        return any(e.what == "connectionLost" for e in self.log)

    def __exit__(self, *exc):
        def stop():
            for p in self.factory.protocols:
                if p.transport.connected:
                    p.transport.abortConnection()
            self.port.stopListening()
            return until(lambda: not _clients_of(self.address), TIMEOUT)

        _reactor.call(stop, timeout=TIMEOUT + 3)
        _reactor.call(lambda: None)  # an error a callback raised is logged by now


class _Scripted(Protocol):
    """Base of the checker's server protocols: record what came in, and the end."""

    def connectionMade(self):
        self.factory.protocols.append(self)
        self.buffer, self.later = b"", []

    def dataReceived(self, data):
        self.factory.log.record("server", "heard", data=data)
        self.buffer += data

    def pieces(self, pieces, then=None):
        """Send each piece once the reader's client has read the one before, so that each
        reaches its dataReceived alone; then call `then`."""
        from twisted.internet import reactor

        client = _peer_transport(self.transport, self.factory.address)
        pieces, deadline = [piece for piece in pieces if piece], reactor.seconds() + TIMEOUT

        def send():
            if not self.transport.connected:
                return
            if not pieces:
                if then is not None:
                    then()
                return
            try:
                self.transport.getHandle().send(pieces.pop(0))  # into the client's queue, now
            except OSError:  # the client has gone: the script ends here
                return
            read(False)

        def read(arrived):
            unread = _unread(client)
            if unread == 0 and arrived or unread is None or reactor.seconds() > deadline:
                send()
            else:
                self.later.append(reactor.callLater(POLL, read, arrived or unread > 0))

        send()

    def connectionLost(self, reason):
        for call in self.later:
            if call.active():
                call.cancel()
        self.factory.log.record("server", "connectionLost")


def _ok(outcome, story: str) -> None:
    """Fail unless `outcome` is a value; what the reader's code raised stays the cause (an
    observation raises the same exception in every check that reads it)."""
    if isinstance(outcome.error, CheckFailed) and outcome.kind == "raised":  # a check's
        raise CheckFailed(f"{story}: {outcome.error}") from None
    if outcome.kind == "raised":
        raise CheckFailed(f"{story}: {outcome}") from outcome.error
    require(outcome.ok, f"{story}: {outcome}")


def _refused(outcome, what: str) -> None:
    require(outcome.is_error(error.ConnectionRefusedError), f"connecting to a port where"
            f" nothing listens: {what} {outcome}, expected it to fail with"
            " ConnectionRefusedError")


# -- 07.1 -----------------------------------------------------------------------------

reply_factory = exercise("07.1", "A ClientFactory that reports its outcome")

TAIL = b"that was all\n"  # the reply: the message upper-cased, then this line


class _Replier(_Scripted):
    """Once a line has come: the line upper-cased and TAIL, in three pieces, then close."""

    def dataReceived(self, data):
        super().dataReceived(data)
        if b"\n" in self.buffer and not self.later:
            reply = self.buffer.partition(b"\n")[0].upper() + b"\n" + TAIL
            first = len(self.buffer.partition(b"\n")[0]) + 1
            self.pieces([reply[:3], reply[3:first], reply[first:]],
                        then=self.transport.loseConnection)


def _connect_tcp(port: int, factory):
    """What reactor.connectTCP does, keeping the connector when connect() raises (a
    factory without startedConnecting): the attempt is stopped, not left running."""
    from twisted.internet import reactor, tcp

    connector = tcp.Connector("127.0.0.1", port, factory, TIMEOUT, None, reactor)
    try:
        connector.connect()
    except Exception:
        connector.factory = ClientFactory()  # hears that the attempt was stopped
        with contextlib.suppress(Exception):
            connector.stopConnecting()
        raise
    return connector


def _run_factories(answer, port: int, messages: list[bytes]):
    """In the reactor thread: connect ReplyFactory(m) for each message, at once. Fires with
    [(factory, Watch of its result)] once every connection has ended (at most TIMEOUT)."""
    factories, watches = [answer(message) for message in messages], []
    for factory, message in zip(factories, messages, strict=True):
        result = getattr(factory, "result", None)
        require(result is not None, f"ReplyFactory({message!r}) has no attribute `result`")
        require(not require_deferred(result, f"ReplyFactory({message!r}).result").called,
                f"ReplyFactory({message!r}).result had already fired before anything was"
                f" connected (is it shared with an earlier factory?)")
        watches.append(Watch(result))
    connectors = [_connect_tcp(port, f) for f in factories]
    ended = until(lambda: all(c.state == "disconnected" for c in connectors), TIMEOUT)

    def done(_):
        for c in connectors:
            c.disconnect()  # if it is still connected
        return list(zip(factories, watches, strict=True))

    return ended.addCallback(done)


def _connection_story(messages):
    return (f"reactor.connectTCP('127.0.0.1', port, ReplyFactory({messages[0]!r}))"
            if len(messages) == 1 else
            f"ReplyFactory({messages[0]!r}) and ReplyFactory({messages[1]!r}), connected at"
            " the same time")


@observation
def _replies(answer, messages: tuple):
    """Connect a ReplyFactory per message to a _Replier: (outcome, what the server heard)."""
    with _Script(_Replier) as server:
        outcome = settle(lambda: _run_factories(answer, server.address.port, list(messages)),
                         limit=TIMEOUT + 1, what=_connection_story(messages))
    _ok(outcome, _connection_story(messages))
    return outcome.value, server.heard()


def _reply_of(message: bytes) -> bytes:
    return message.upper() + TAIL


def _results(answer, messages: tuple):
    ran, heard = _replies(answer, messages)
    return [watch.outcome for _, watch in ran], heard


@reply_factory.check("refused", "`result` fails with ConnectionRefusedError on a dead port",
                     hint="connectTCP reports to its factory through methods that only a"
                          " ClientFactory has: one of them hears that the connection could not"
                          " be made, and why.")
def _fails_when_refused(answer):
    with dead_port() as port:
        outcome = settle(lambda: _run_factories(answer, port, [b"hello\n"]), limit=TIMEOUT + 1,
                         what="connecting ReplyFactory(b'hello\\n') to a dead port")
    _ok(outcome, "reactor.connectTCP to a dead port, with ReplyFactory(b'hello\\n')")
    (_, watch), = outcome.value
    _refused(watch.outcome, "factory.result")


@reply_factory.check("whole-reply", "`result` fires with the whole reply, once the server has"
                     " closed", hint="A reply can come in any number of pieces, and only the end"
                     " of the connection says it is complete; the factory hears of that end too,"
                     " after the protocol.")
def _whole_reply(answer):
    (result,), _ = _results(answer, (b"hello\n",))
    want = _reply_of(b"hello\n")
    text = " (a str: expected the bytes, as they came)" if isinstance(result.value, str) else ""
    require(result.kind == "fired" and result.value == want,
            f"the server sent {show(want)} in 3 pieces, then closed: when the"
            f" connection had ended, factory.result {result}, expected it to fire with the"
            f" whole reply{text}")


@reply_factory.check("sends", "sends the message, exactly, once connected",
                     hint="Write the factory's message when the connection is made: once, as it"
                          " is.")
def _sends(answer):
    messages = (b"hello\n",)
    _, heard = _results(answer, messages)
    require(heard == messages[0], f"{_connection_story(messages)}: the server received"
            f" {show(heard)}, expected exactly the message")


@reply_factory.check("own-result", "two factories at once: each `result` has its own reply",
                     hint="Each ReplyFactory(...) needs its own Deferred, and each connection its"
                          " own buffer: nothing shared in a class body.")
def _own_result(answer):
    messages = (b"hello\n", b"again\n")
    for message, (_, watch) in zip(messages, _replies(answer, messages)[0], strict=True):
        want = _reply_of(message)
        require(watch.outcome.kind == "fired" and watch.outcome.value == want,
                f"{_connection_story(messages)}: the result of ReplyFactory({message!r})"
                f" {watch.outcome}, expected it to fire with {show(want)}")


# -- 07.2 -----------------------------------------------------------------------------

fetch_line = exercise("07.2", "fetch() over any client endpoint")

SECOND = b"and a second line\n"  # what the server sends after the reply line


class _LineServer(_Scripted):
    """Once a line has come: the line upper-cased (as text), cut inside a character, then a
    second line, in pieces; stay connected until the client closes. With
    factory.early_close: send two bytes of the reply, then close."""

    def dataReceived(self, data):
        super().dataReceived(data)
        if b"\n" not in self.buffer or self.later or self.transport.disconnecting:
            return
        reply = self.buffer.partition(b"\n")[0].decode(errors="replace").upper().encode()
        if self.factory.early_close:
            self.transport.write(reply[:2])
            self.transport.loseConnection()
            return
        cut = next((i + 1 for i, byte in enumerate(reply) if byte >= 0x80), 2)
        self.pieces([reply[:cut], reply[cut:] + b"\n" + SECOND[:5], SECOND[5:]])


def _fetch(answer, endpoint, line: str):
    """fetch(endpoint, line) in the reactor thread, waited for (at most TIMEOUT)."""
    return settle(lambda: require_deferred(answer(endpoint, line), f"fetch(endpoint, {line!r})"),
                  limit=TIMEOUT, what=f"fetch(endpoint, {line!r})")


def _tcp_endpoint(port: int):
    from twisted.internet import reactor

    return TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)


@observation
def _fetched(answer, line: str):
    """(outcome of fetch over TCP, what the server heard, whether the client closed)."""
    with _Script(_LineServer, early_close=False) as server:
        outcome = _fetch(answer, _reactor.call(_tcp_endpoint, server.address.port), line)
        closed = outcome.ok and _reactor.call(until, server.closed, TIMEOUT,
                                              timeout=TIMEOUT + 3)
    if outcome.kind == "raised":  # the same exception, raised in every check that reads it
        _ok(outcome, f"fetch(endpoint, {line!r})")
    return outcome, server.heard(), closed


def _expect_line(outcome, heard: bytes, line: str, how: str) -> None:
    if outcome.kind == "raised":
        _ok(outcome, f"fetch(endpoint, {line!r}) {how}")
    want = line.upper()
    cut = ", cut inside a character" if not want.isascii() else ""
    story = (f"fetch(endpoint, {line!r}) {how}: the server answered with {want!r} (UTF-8{cut}),"
             " a newline and a second line, in pieces")
    if outcome.kind == "pending" and not heard.endswith(b"\n"):
        fail(f"{story}; but the server received {show(heard)} and was still waiting for the"
             f" end of the line: fetch {outcome}")
    require(heard == line.encode() + b"\n", f"{story}; the server received {show(heard)},"
            f" expected the line in UTF-8 and a newline")
    if outcome.kind == "pending":
        fail(f"{story}, and kept the connection open (it closes when the client does): the"
             f" Deferred {outcome}, expected it to fire with {want!r}")
    require(outcome.kind == "fired" and outcome.value == want,
            f"{story}: the Deferred {outcome}, expected it to fire with {want!r}")


LINE = " café crème "  # spaces at both ends, and two characters of two bytes each


@fetch_line.check("first-line", "fires with the first reply line, which arrives in pieces",
                  hint="Keep the bytes until a newline has come (more may follow it), and decode"
                       " the whole line: a piece can end inside a character.")
def _first_line(answer):
    outcome, heard, _ = _fetched(answer, LINE)
    _expect_line(outcome, heard, LINE, "over a TCP4ClientEndpoint")


@fetch_line.check("closes", "closes the connection after the reply",
                  hint="Once the line is there, the client is done with the connection.")
def _closes(answer):
    outcome, _, closed = _fetched(answer, LINE)
    require(outcome.ok, f"fetch(endpoint, {LINE!r}) {outcome}, so the check could not see it"
            " close the connection")
    require(closed, f"fetch(endpoint, {LINE!r}) fired with the reply line, but the connection"
            f" was still open {TIMEOUT:g} s later")


@fetch_line.check("any-endpoint", "works with an endpoint for a UNIX socket, from"
                  " clientFromString", hint="Use only what every client endpoint offers"
                  " (section 5): nothing that is TCP's own.")
def _any_endpoint(answer):
    from twisted.internet import reactor

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "fetch.sock")
        with _Script(_LineServer, f"unix:{path}", early_close=False) as server:
            description = f"unix:path={path}:timeout={max(1, round(TIMEOUT))}"
            endpoint = _reactor.call(clientFromString, reactor, description)
            outcome = _fetch(answer, endpoint, "hello")
            _expect_line(outcome, server.heard(), "hello", f"over clientFromString(reactor,"
                         f" 'unix:path=...') ({type(endpoint).__name__})")


@fetch_line.check("refused", "fails with ConnectionRefusedError on a dead port",
                  hint="The Deferred of connectProtocol reports a connection that could not be"
                       " made: the Deferred that fetch returns must carry that failure too.")
def _fetch_refused(answer):
    with dead_port() as port:
        outcome = _fetch(answer, _reactor.call(_tcp_endpoint, port), "hello")
    _refused(outcome, "the Deferred from fetch()")


@fetch_line.check("early-close", "fails when the server closes before a whole line",
                  hint="If the connection ends before a whole line has come, the Deferred must"
                       " still fire, with a failure; and a Deferred fires only once.")
def _early_close(answer):
    with _Script(_LineServer, early_close=True) as server:
        outcome = _fetch(answer, _reactor.call(_tcp_endpoint, server.address.port), "hello")
    require(outcome.kind == "failed", "the server sent b'HE' (no newline) and closed the"
            f" connection: the Deferred from fetch() {outcome}, expected it to fail")


# -- 07.3 -----------------------------------------------------------------------------

key_value = exercise("07.3", "A pipelining key-value client")

STORE = {"one": "1", "two": "two words", "euro": "5 €", "ten": "a ten, 10",  # "a": lstrip
         "six": "6"}
PIPELINED = ["one", "two", "nope", "euro", "one", "ten"]  # "one" twice; "nope" is missing
PIECE = 4  # the replies come in pieces of this many bytes up to inside the "€", then the rest


def _answer_line(line: str) -> str:
    key = line.removeprefix("get ")
    return f"value {STORE[key]}\n" if key in STORE else f"missing {key}\n"


class _KeyValues(_Scripted):
    """Wait until factory.expect requests have come; then answer them all, in order, in
    PIECE-byte pieces up to inside the "€" and the rest in one piece (or, with
    factory.close_instead, close)."""

    def connectionMade(self):
        super().connectionMade()
        expect = self.factory.expect  # a number, or one per connection, in their order
        self.expect = expect if isinstance(expect, int) else expect[len(self.factory.protocols) - 1]

    def dataReceived(self, data):
        super().dataReceived(data)
        lines = self.buffer.decode(errors="replace").split("\n")[:-1]
        if len(lines) < self.expect or self.later or self.transport.disconnecting:
            return
        if self.factory.close_instead:
            self.transport.loseConnection()
            return
        reply = "".join(_answer_line(line) for line in lines).encode()
        cut = reply.find("€".encode()) + 1 or len(reply)
        self.pieces([reply[i:min(i + PIECE, cut)] for i in range(0, cut, PIECE)] + [reply[cut:]])


def _requests(server) -> int:
    return server.heard().count(b"\n")


def _expected(key: str):
    return ("fired", STORE[key]) if key in STORE else ("KeyError", key)


def _seen(outcome):
    """("fired", value), ("KeyError", key), ("failed", "TypeName: message") or ("pending",)."""
    if outcome.kind == "failed":
        if isinstance(outcome.error, KeyError) and outcome.error.args:
            return ("KeyError", outcome.error.args[0])
        return ("failed", str(outcome).removeprefix("failed with "))
    return ("pending",) if outcome.kind == "pending" else (outcome.kind, outcome.value)


def _get_each(client, keys):
    """In the reactor thread: get(key) for each key, at once; a Watch of each Deferred (or
    what get returned, if it is not a Deferred)."""
    got = [client.get(key) for key in keys]
    return [Watch(d) if isinstance(d, Deferred) else d for d in got]


def _watched(outcome, keys, what: str) -> list:
    """The Watches of `_get_each`; fail saying what went wrong instead."""
    _ok(outcome, what)
    for key, watch in zip(keys, outcome.value, strict=True):
        if not isinstance(watch, Watch):
            require_deferred(watch, f"get({key!r})")
    return outcome.value


@observation
def _session(answer, keys: tuple, close_instead: bool = False):
    """Connect answer() with connectProtocol, get every key at once, wait until every
    Deferred has fired (at most TIMEOUT). Returns (outcomes, requests the server heard,
    outcome of a get after the loss, with close_instead, the bytes the server heard)."""
    with _Script(_KeyValues, expect=len(keys),
                 close_instead=close_instead) as server:
        endpoint = _reactor.call(_tcp_endpoint, server.address.port)
        connected = settle(lambda: connectProtocol(endpoint, answer()),
                           what="connectProtocol(endpoint, KeyValueClient())")
        _ok(connected, "connectProtocol(endpoint, KeyValueClient())")
        client = connected.value
        asking = ", ".join(f"get({key!r})" for key in keys)
        watches = _watched(settle(lambda: _get_each(client, keys)), keys, f"{asking} at once")
        _reactor.call(until, lambda: all(w.fired for w in watches), TIMEOUT, timeout=TIMEOUT + 3)
        outcomes, late = [_seen(w.outcome) for w in watches], None
        if close_instead and _requests(server) == len(keys):  # then the server closes
            _reactor.call(until, lambda: not client.transport.connected, TIMEOUT,
                          timeout=TIMEOUT + 3)
            late = settle(lambda: _get_each(client, ["one"]))
    return outcomes, _requests(server), late, server.heard()


def _asked(sent: bytes, asking: str, want: bytes) -> None:
    require(sent == want, f"{asking}: the server received {show(sent)}, expected exactly"
            f" {show(want)}")


def _pipelining(heard: int, asked: int, outcomes) -> str:
    waiting = outcomes.count(("pending",))
    if not waiting:
        return ""
    return (f"; {waiting} of {asked} Deferreds had not fired after {TIMEOUT:g} s, and the"
            f" server, which answers once all {asked} requests have come, had received {heard}")


@key_value.check("one-get", "get('one') fires with '1'",
                 hint="get() writes one request line, and returns a Deferred that the reply to"
                      " it will fire.")
def _one_get(answer):
    outcomes, heard, _, sent = _session(answer, ("one",))
    _asked(sent, "get('one')", b"get one\n")
    require(outcomes == [("fired", "1")], f"the server answered 'get one' with 'value 1':"
            f" get('one') gave {outcomes[0]}, expected ('fired', '1')"
            f"{_pipelining(heard, 1, outcomes)}")


@key_value.check("missing", "a missing key fails with KeyError(key)",
                 hint="A 'missing' reply is an error of that request: its Deferred fails, with"
                      " the exception the task names.")
def _missing(answer):
    outcomes, _, _, sent = _session(answer, ("nope",))
    _asked(sent, "get('nope')", b"get nope\n")
    require(outcomes == [("KeyError", "nope")], f"the server answered 'get nope' with"
            f" 'missing nope': get('nope') gave {outcomes[0]}, expected ('KeyError', 'nope')")


@key_value.check("pipelined", "six gets at once, matched to their replies in order, from pieces",
                 hint="Write each request at once. The server answers in the order of the"
                      " requests, and a key can be asked twice: replies belong to requests in"
                      " the order they were sent. Replies come in pieces of any size.")
def _pipelined(answer):
    outcomes, heard, _, _ = _session(answer, tuple(PIPELINED))
    expected = [_expected(key) for key in PIPELINED]
    reply = "".join(_answer_line(f"get {key}") for key in PIPELINED).encode()
    whole = reply[reply.find("€".encode()) + 1:].count(b"\n") - 1
    require(outcomes == expected, f"get() of {PIPELINED} at once, answered in order, in"
            f" {PIECE}-byte pieces up to inside the '€', then the rest (the end of that reply"
            f" and {whole} whole ones) in one piece: got {outcomes}, expected {expected}"
            f"{_pipelining(heard, len(PIPELINED), outcomes)}")


@key_value.check("loss-fails-pending", "losing the connection fails every pending get",
                 hint="When the connection ends, every request still waiting must hear about"
                      " it, with a failure.")
def _loss_fails_pending(answer):
    outcomes, heard, _, _ = _session(answer, ("one", "two", "three"), True)
    require(heard == 3, f"the server closes once all 3 requests have come, and it received"
            f" {heard}: write each request at once, without waiting for earlier replies")
    story = f"the server read 3 requests and closed without answering: the gets gave {outcomes}"
    require(all(o[0] in ("failed", "KeyError") for o in outcomes), f"{story}, expected each"
            " to fail")
    require(all(o[0] == "failed" for o in outcomes), f"{story}: a KeyError says that the"
            " server answered 'missing', and it did not; expected each to fail with another"
            " error")


@key_value.check("late-fails", "a get after the loss fails at once",
                 hint="After the loss, get() returns a Deferred that has already failed: it"
                      " neither raises nor waits.")
def _late_fails(answer):
    _, heard, late, _ = _session(answer, ("one", "two", "three"), True)
    require(heard == 3, f"the server closes once all 3 requests have come, and it received"
            f" {heard}, so the connection was never lost")
    (watch,) = _watched(late, ["one"], "get('one') after the connection was lost")
    require(watch.outcome.kind == "failed", f"get('one') after the connection was lost returned"
            f" a Deferred that {watch.outcome}, expected one that had already failed")


@observation
def _two_clients(answer):
    """Two clients, each on its own connection: client 1 asks 'one' (its server answers
    only once it has two requests), then client 2 asks 'six' (answered at once), then
    client 1 asks 'one' again. Returns the three outcomes, in that order, and how many
    requests client 1's server had received."""
    with _Script(_KeyValues, expect=[2, 1], close_instead=False) as server:
        endpoint = _reactor.call(_tcp_endpoint, server.address.port)
        clients = []
        for n in (1, 2):  # one after the other: the server's connections come in this order
            connected = settle(lambda: connectProtocol(endpoint, answer()),
                               what=f"connectProtocol(endpoint, KeyValueClient()), client {n}")
            _ok(connected, f"connectProtocol(endpoint, KeyValueClient()), client {n}")
            clients.append(connected.value)

        def ask(n, key, what):
            (watch,) = _watched(settle(lambda: _get_each(clients[n - 1], [key])), [key], what)
            return watch

        first = ask(1, "one", "client 1: get('one')")
        second = ask(2, "six", "client 1 had sent get('one'); then client 2: get('six')")
        _reactor.call(until, lambda: first.fired or second.fired, TIMEOUT, timeout=TIMEOUT + 3)
        third = ask(1, "one", "then client 1: get('one') again")
        watches = (first, second, third)
        _reactor.call(until, lambda: all(w.fired for w in watches), TIMEOUT, timeout=TIMEOUT + 3)
        heard = server.factory.protocols[0].buffer.count(b"\n")
    return [_seen(w.outcome) for w in watches], heard


@key_value.check("separate", "two clients at once: each gets the replies to its own requests",
                 hint="Each connection has its own protocol instance (chapter 06): what a"
                      " connection waits for belongs to it, not to something every client"
                      " shares, such as the class body.")
def _separate(answer):
    outcomes, heard = _two_clients(answer)
    expected = [_expected(key) for key in ("one", "six", "one")]
    why = (" (client 1's first request got the reply that came to client 2)"
           if outcomes[0] == expected[1] else
           f"; client 1's server, which answers once both its requests have come, had"
           f" received {heard}" if heard < 2 else "")
    require(outcomes == expected, "two clients, each on its own connection: client 1 sent"
            " get('one'), which its server answers only with a second request; client 2 sent"
            " get('six'), answered at once; then client 1 sent get('one') again: the three"
            f" gave {outcomes}, expected {expected}{why}")
