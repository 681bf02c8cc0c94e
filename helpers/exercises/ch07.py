"""Checks for chapter 07 (clients and endpoints).

07.1 `ReplyFactory(message)`: a ClientFactory; its protocol sends `message` when
     connected and collects what the server sends until the server closes;
     `factory.result` fires with those bytes, or fails with the reason the connection
     could not be made.
07.2 `fetch(endpoint, line) -> Deferred`: connectProtocol, send one line, fire with the
     first reply line (a str), close; fail if refused, or closed before a whole line.
07.3 `KeyValueClient`: a Protocol with get(key) -> Deferred for a server that answers
     "get KEY" with "value VALUE" or "missing KEY", in order; requests pipelined,
     KeyError for a missing key, pending requests failed when the connection is lost,
     later requests failed at once.

Each check serves a small scripted server with `serve("check-07.k", ...)` on 127.0.0.1,
stopped before the check returns, and runs the reader's client in the reactor thread.
Every wait for a reader's Deferred is bounded by `addTimeout` inside the reactor (TIMEOUT
seconds), so `call` itself never times out. An exception raised in a callback of the
reader's protocol is caught, reported by the check, and that connection aborted.
"""

from __future__ import annotations

import contextlib
import socket

from .. import reactor as _reactor
from ..events import EventLog, EventTimeout
from ..servers import serve
from .legacy import Check, exercise

TIMEOUT = 2.0  # the longest any check waits for one of the reader's Deferreds
_TIMED_OUT = object()
CALLBACKS = ("connectionMade", "dataReceived", "connectionLost")


# -- shared machinery ----------------------------------------------------------


@contextlib.contextmanager
def _dead_port():
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _serve(name, protocol_class, **attributes):
    """Serve protocol_class (with a fresh EventLog as factory.log); a context manager."""
    from twisted.internet.protocol import Factory

    factory = Factory.forProtocol(protocol_class)
    factory.log = EventLog()
    vars(factory).update(attributes)
    return serve(name, factory), factory


class _Watch:
    """Wrap the reader's protocol callbacks: an exception is recorded, not logged by
    Twisted, and the connection is aborted."""

    def __init__(self):
        self.errors: list[str] = []

    def protocol(self, p):
        for name in CALLBACKS:
            method = getattr(p, name, None)
            if callable(method):
                setattr(p, name, self._wrap(p, name, method))
        return p

    def _wrap(self, p, name, method):
        def watched(*args):
            try:
                return method(*args)
            except Exception as exc:
                self.errors.append(f"{type(p).__name__}.{name} raised {type(exc).__name__}: {exc}")
                if name != "connectionLost" and getattr(p, "transport", None) is not None:
                    p.transport.abortConnection()

        return watched

    def factory(self, factory):
        build = factory.buildProtocol

        def buildProtocol(addr):
            p = build(addr)
            return None if p is None else self.protocol(p)

        factory.buildProtocol = buildProtocol
        return factory

    def endpoint(self, endpoint):
        """A client endpoint that connects through `endpoint`, watching the protocol."""
        from twisted.internet.interfaces import IStreamClientEndpoint
        from zope.interface import implementer

        watch = self

        @implementer(IStreamClientEndpoint)
        class Watched:
            def connect(self, factory):
                return endpoint.connect(watch.factory(factory))

        return Watched()

    def raise_first(self):
        """The reader's code raised in the reactor thread: that is the cause, report it."""
        if self.errors:
            raise AssertionError(self.errors[0])


def _bounded(d, limit=None):
    """d, firing within `limit` (default TIMEOUT) seconds with ("result", value),
    ("failure", exc) or ("timeout",)."""
    from twisted.internet import reactor
    from twisted.python.failure import Failure

    def settled(result):
        if result is _TIMED_OUT:
            return ("timeout",)
        if isinstance(result, Failure):
            return ("failure", result.value)
        return ("result", result)

    limit = TIMEOUT if limit is None else limit
    d.addTimeout(limit, reactor, onTimeoutCancel=lambda result, timeout: _TIMED_OUT)
    return d.addBoth(settled)


def _deferred(value, what):
    from twisted.internet.defer import Deferred

    if not isinstance(value, Deferred):
        raise AssertionError(f"{what} is {type(value).__name__}, expected a Deferred")
    return value


def _settle(make, limit=None):
    """Run make() in the reactor thread; it returns the reader's Deferred. Wait for it
    (at most `limit`, default TIMEOUT). An exception make() raises is raised here."""
    box, limit = {}, TIMEOUT if limit is None else limit

    def run():
        try:
            d = make()
        except Exception as exc:  # the reader's code raised: re-raised in the check
            box["raised"] = exc
            return None
        return _bounded(d, limit)

    outcome = _reactor.call(run, timeout=limit + 3)
    if "raised" in box:
        raise box["raised"]
    return outcome


def _describe(outcome):
    if outcome[0] == "result":
        return f"fired with {outcome[1]!r}"
    if outcome[0] == "failure":
        exc = outcome[1]
        return f"failed with {type(exc).__name__}: {exc}"
    return f"had not fired after {TIMEOUT:g} s"


def _refused(outcome, what, hint):
    """Assert that `outcome` is a failure with Twisted's ConnectionRefusedError."""
    from twisted.internet import error

    if outcome[0] == "failure" and isinstance(outcome[1], error.ConnectionRefusedError):
        return
    raise AssertionError(f"connecting to a dead port: {what} {_describe(outcome)}, expected it"
                         f" to fail with ConnectionRefusedError; {hint}")


# -- 07.1 -----------------------------------------------------------------------


def _two_pieces_protocol():
    from twisted.internet import reactor
    from twisted.internet.protocol import Protocol

    class TwoPieces(Protocol):
        """Read one line; answer it upper-cased in two writes 0.05 s apart; close."""

        def connectionMade(self):
            self.buffer, self.later = b"", None

        def dataReceived(self, data):
            self.buffer += data
            if b"\n" in self.buffer and self.later is None:
                line = self.buffer.split(b"\n", 1)[0]
                self.factory.log.record("server", "line", line=line)
                reply = line.upper() + b"\n"
                self.transport.write(reply[:3])
                self.later = reactor.callLater(0.05, self.finish, reply[3:])

        def finish(self, rest):
            self.transport.write(rest)
            self.transport.loseConnection()

        def connectionLost(self, reason):
            if self.later is not None and self.later.active():
                self.later.cancel()

    return TwoPieces


def _connect_reply_factory(answer, port, message, watch):
    from twisted.internet import reactor

    def make():
        from twisted.internet.protocol import ClientFactory

        factory = answer(message)
        if not isinstance(factory, ClientFactory):  # connectTCP would raise, mid-connect
            raise AssertionError(
                f"{type(factory).__name__} is not a ClientFactory: connectTCP would raise"
                f" AttributeError: '{type(factory).__name__}' object has no attribute"
                " 'startedConnecting'"
            )
        watch.factory(factory)
        reactor.connectTCP("127.0.0.1", port, factory, timeout=TIMEOUT)
        return _deferred(getattr(factory, "result", None), "factory.result")

    return _settle(make)


def _is_client_factory(answer):
    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import ClientFactory

    first, second = _reactor.call(lambda: (answer(b"hello\n"), answer(b"again\n")))
    assert isinstance(first, ClientFactory), (
        f"ReplyFactory(b'hello\\n') is a {type(first).__name__}, which is not a ClientFactory:"
        " connectTCP calls factory.startedConnecting(), and only ClientFactory has it"
    )
    result = getattr(first, "result", None)
    assert isinstance(result, Deferred), (
        f"factory.result is {type(result).__name__}, expected a Deferred"
    )
    assert result is not getattr(second, "result", None), (
        "two ReplyFactory instances share one `result` Deferred (a class attribute?)"
    )


def _whole_reply(answer):
    served, factory = _serve("check-07.1", _two_pieces_protocol())
    with served:
        for message in (b"hello\n", b"again\n"):
            watch = _Watch()
            outcome = _connect_reply_factory(answer, served.port, message, watch)
            watch.raise_first()
            heard = [e.details["line"] for e in factory.log]
            if outcome[0] == "timeout" and not heard[-1:] == [message.rstrip(b"\n")]:
                raise AssertionError(
                    f"factory.result {_describe(outcome)} and the server never received"
                    f" {message!r}: does the protocol write the factory's message in"
                    " connectionMade?"
                )
            expected = message.upper()
            assert outcome == ("result", expected), (
                f"the server sent {expected!r} in two pieces, then closed: factory.result"
                f" {_describe(outcome)}, expected it to fire with {expected!r}"
            )


def _fails_when_refused(answer):
    watch = _Watch()
    with _dead_port() as port:
        outcome = _connect_reply_factory(answer, port, b"hello\n", watch)
    watch.raise_first()
    _refused(outcome, "factory.result",
             "clientConnectionFailed(connector, reason) must errback it with the reason")


exercise(
    "07.1",
    "A ClientFactory that reports its outcome",
    Check(
        "a ClientFactory, with its own `result` Deferred",
        _is_client_factory,
        "class ReplyFactory(ClientFactory); create self.result = Deferred() in __init__",
    ),
    Check(
        "`result` fires with the whole reply, once the server has closed",
        _whole_reply,
        "collect in dataReceived (it may be called more than once); fire the Deferred in"
        " clientConnectionLost, which comes after the protocol's connectionLost",
    ),
    Check(
        "`result` fails with ConnectionRefusedError on a dead port",
        _fails_when_refused,
        "def clientConnectionFailed(self, connector, reason): self.result.errback(reason)",
    ),
)


# -- 07.2 -----------------------------------------------------------------------


def _line_in_pieces_protocol():
    from twisted.internet import reactor
    from twisted.internet.protocol import Protocol

    class LineInPieces(Protocol):
        """Read one line; answer it upper-cased, split over writes, then a second line;
        stay connected until the client closes. With factory.early_close: send half a
        line and close."""

        def connectionMade(self):
            self.buffer, self.later = b"", []

        def dataReceived(self, data):
            self.buffer += data
            if b"\n" not in self.buffer or self.later:
                return
            line = self.buffer.split(b"\n", 1)[0]
            self.factory.log.record("server", "line", line=line)
            reply = line.upper()
            if self.factory.early_close:
                self.transport.write(reply[:2])
                self.transport.loseConnection()
                return
            self.transport.write(reply[:2])
            self.later = [
                reactor.callLater(0.03, self.transport.write, reply[2:]),
                reactor.callLater(0.06, self.transport.write, b"\nand a second line\n"),
            ]

        def connectionLost(self, reason):
            for call in self.later:
                if call.active():
                    call.cancel()
            self.factory.log.record("server", "connectionLost")

    return LineInPieces


def _fetch(answer, endpoint, line):
    watch = _Watch()
    outcome = _settle(lambda: _deferred(answer(watch.endpoint(endpoint), line), "fetch(...)"))
    watch.raise_first()
    return outcome


def _tcp4(port):
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint

    return TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)


def _from_string(port):
    from twisted.internet import reactor
    from twisted.internet.endpoints import clientFromString

    timeout = max(1, round(TIMEOUT))  # whole seconds in a description
    return clientFromString(reactor, f"tcp:host=127.0.0.1:port={port}:timeout={timeout}")


def _reply_line(answer, make_endpoint, line, *, closes=False):
    served, factory = _serve("check-07.2", _line_in_pieces_protocol(), early_close=False)
    with served:
        outcome = _fetch(answer, _reactor.call(make_endpoint, served.port), line)
        expected = line.upper()
        assert outcome == ("result", expected), (
            f"the server answered {line!r} with {expected!r} + newline, in pieces, then a"
            f" second line: fetch(endpoint, {line!r}) {_describe(outcome)},"
            f" expected {expected!r}"
        )
        if closes:
            try:
                factory.log.wait(1, "connectionLost", timeout=1.0)
            except EventTimeout:
                raise AssertionError(
                    "the connection was still open 1 s after fetch() had fired with the reply"
                ) from None


def _first_line(answer):
    _reply_line(answer, _tcp4, "hello")


def _closes(answer):
    _reply_line(answer, _tcp4, "hello", closes=True)


def _any_endpoint(answer):
    _reply_line(answer, _from_string, "from a string")


def _fetch_refused(answer):
    with _dead_port() as port:
        outcome = _fetch(answer, _reactor.call(_tcp4, port), "hello")
    _refused(outcome, "the Deferred from fetch()",
             "return the Deferred of connectProtocol (chained), so that its errback arrives")


def _closed_early(answer):
    served, _ = _serve("check-07.2", _line_in_pieces_protocol(), early_close=True)
    with served:
        outcome = _fetch(answer, _reactor.call(_tcp4, served.port), "hello")
    assert outcome[0] == "failure", (
        "the server sent b'HE' (no newline) and closed: the Deferred from fetch()"
        f" {_describe(outcome)}, expected it to fail"
    )


exercise(
    "07.2",
    "fetch() over any client endpoint",
    Check(
        "fires with the first reply line, which arrives in pieces",
        _first_line,
        "buffer in dataReceived until b'\\n' is in it; fire with the part before it, decoded",
    ),
    Check(
        "closes the connection after the reply",
        _closes,
        "self.transport.loseConnection() once the line is complete",
    ),
    Check(
        "works with an endpoint from clientFromString",
        _any_endpoint,
        "use only endpoint.connect (through connectProtocol), nothing TCP-specific",
    ),
    Check(
        "fails with ConnectionRefusedError on a dead port",
        _fetch_refused,
        "connectProtocol(...).addCallback(lambda protocol: protocol.reply): one Deferred"
        " that carries both outcomes",
    ),
    Check(
        "fails when the server closes before a whole line",
        _closed_early,
        "in connectionLost, errback the reply Deferred if it has not fired",
    ),
)


# -- 07.3 -----------------------------------------------------------------------

STORE = {"one": "1", "two": "2", "three": "3", "four": "4"}


def _key_value_protocol():
    from twisted.internet import reactor
    from twisted.internet.protocol import Protocol

    class KeyValueBatch(Protocol):
        """Wait for factory.expect lines "get KEY"; then answer them all, in order, in
        4-byte writes 0.01 s apart (or, with factory.close_instead, close)."""

        def connectionMade(self):
            self.buffer, self.heard, self.later = b"", [], []

        def dataReceived(self, data):
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            self.heard += [line.decode(errors="replace") for line in lines]
            self.factory.log.record("server", "heard", count=len(self.heard))
            if len(self.heard) < self.factory.expect or self.later or self.transport.disconnecting:
                return
            if self.factory.close_instead:
                self.transport.loseConnection()
                return
            reply = "".join(self.answer(line) for line in self.heard).encode()
            pieces = [reply[i : i + 4] for i in range(0, len(reply), 4)]
            self.later = [reactor.callLater(0.01 * i, self.transport.write, piece)
                          for i, piece in enumerate(pieces)]

        def answer(self, line):
            key = line.removeprefix("get ")
            return f"value {STORE[key]}\n" if key in STORE else f"missing {key}\n"

        def connectionLost(self, reason):
            for call in self.later:
                if call.active():
                    call.cancel()

    return KeyValueBatch


def _expected(key):
    return ("result", STORE[key]) if key in STORE else ("KeyError", key)


def _normalised(outcome):
    """("result", value), ("KeyError", key), ("failure", type name) or ("timeout",)."""
    if outcome[0] == "failure":
        exc = outcome[1]
        if isinstance(exc, KeyError) and exc.args:
            return ("KeyError", exc.args[0])
        return ("failure", type(exc).__name__)
    return outcome


def _session(answer, keys, *, close_instead=False, after=None):
    """Connect a KeyValueClient, get every key at once, wait for all of them (bounded).
    Returns (outcomes, count of requests the server heard, outcome of `after`)."""
    from twisted.internet import reactor
    from twisted.internet.defer import gatherResults
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    served, factory = _serve("check-07.3", _key_value_protocol(),
                             expect=len(keys), close_instead=close_instead)
    watch, box = _Watch(), {}
    with served:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", served.port, timeout=TIMEOUT)

        def requests(client):
            box["client"] = client
            try:
                ds = [_deferred(client.get(key), f"get({key!r})") for key in keys]
            except Exception as exc:  # the reader's get() raised: re-raised in the check
                box["raised"] = exc
                return None
            return gatherResults([_bounded(d) for d in ds])

        def make():
            return connectProtocol(endpoint, watch.protocol(answer())).addCallback(requests)

        try:
            outcome = _settle(make, limit=2 * TIMEOUT)  # each get is bounded by TIMEOUT
            late = None
            if after is not None and "client" in box:
                late = _reactor.call(after, box["client"])
        finally:
            if "client" in box and box["client"].transport is not None:
                _reactor.call(box["client"].transport.abortConnection)
    watch.raise_first()
    if "raised" in box:
        raise box["raised"]
    if outcome[0] != "result":
        raise AssertionError(f"connecting to the server {_describe(outcome)}")
    heard = max((e.details["count"] for e in factory.log), default=0)
    return [_normalised(o) for o in outcome[1]], heard, late


def _one_get(answer):
    outcomes, _, _ = _session(answer, ["one"])
    assert outcomes == [("result", "1")], (
        f"the server answered 'get one' with 'value 1': get('one') gave {outcomes[0]},"
        " expected ('result', '1')"
    )


def _pipelined(answer):
    keys = ["one", "two", "nope", "three", "four"]
    outcomes, heard, _ = _session(answer, keys)
    if ("timeout",) in outcomes:
        raise AssertionError(
            f"{outcomes.count(('timeout',))} of 5 gets had not fired after {TIMEOUT:g} s; the"
            f" server answers once all 5 requests have arrived, and it received {heard}:"
            " write each request at once, without waiting for earlier replies"
        )
    expected = [_expected(key) for key in keys]
    assert outcomes == expected, (
        f"gets of {keys}, answered in order in 4-byte pieces: got {outcomes},"
        f" expected {expected}"
    )


def _loss_fails_pending(answer):
    outcomes, heard, _ = _session(answer, ["one", "two", "three"], close_instead=True)
    waiting = [i for i, o in enumerate(outcomes) if o == ("timeout",)]
    assert heard == 3 or not waiting, (
        f"the server closes once all 3 requests have arrived, and it received {heard}:"
        " write each request at once, without waiting for earlier replies"
    )
    assert not waiting, (
        f"the server read 3 requests and closed without answering: {len(waiting)} of 3"
        f" Deferreds had not fired {TIMEOUT:g} s later"
    )
    succeeded = [o for o in outcomes if o[0] != "failure"]
    assert not succeeded, f"the server never answered, yet: {outcomes}"


def _late_get(client):
    """In the reactor thread, after the connection was lost: what does get() return?"""
    from twisted.python.failure import Failure

    seen = []
    try:
        d = client.get("one")
    except Exception as exc:
        return f"raised {type(exc).__name__}: {exc} instead of returning a failed Deferred"
    _deferred(d, "get('one')").addBoth(seen.append)  # also consumes the failure
    if not seen:
        d.cancel()  # so that nothing is left waiting
        return "returned a Deferred that had not fired"
    if not isinstance(seen[0], Failure):
        return f"returned a Deferred that fired with {seen[0]!r}"
    return None


def _late_fails_at_once(answer):
    _, _, late = _session(answer, ["one"], close_instead=True, after=_late_get)
    assert late is None, f"get('one') after the connection was lost {late}"


exercise(
    "07.3",
    "A pipelining key-value client",
    Check(
        "get('one') fires with '1'",
        _one_get,
        "get(key) writes b'get KEY\\n', appends a Deferred to a deque and returns it",
    ),
    Check(
        "five gets pipelined; values and KeyError matched in order, from pieces",
        _pipelined,
        "buffer until b'\\n'; each reply line belongs to the oldest waiting request"
        " (deque.popleft()); 'missing KEY' -> errback(KeyError(key))",
    ),
    Check(
        "losing the connection fails every pending get",
        _loss_fails_pending,
        "in connectionLost, errback every Deferred still in the deque",
    ),
    Check(
        "a get after the loss fails at once",
        _late_fails_at_once,
        "remember the loss in connectionLost; get() then returns defer.fail(...)",
    ),
)
