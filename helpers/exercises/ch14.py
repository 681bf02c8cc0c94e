"""Checks for chapter 14 (TLS and security).

14.1 client_options(hostname, ca_pem) -> client TLS options  -- trusts that CA, checks the name
14.2 StartTLSClient(options, command), a LineReceiver        -- STARTTLS that cannot be fooled
14.3 TokenBucket(rate, burst, clock).allow(peer) -> bool     -- a token bucket per peer host

14.1 and 14.2 run the reader's code against live TLS servers of their own on 127.0.0.1, with
the chapter's certificates (`helpers.tls`); each session takes a few milliseconds. 14.3 runs
on a `task.Clock`, so its timelines are exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .. import reactor as _reactor
from .. import tls
from ..servers import serve
from . import exercise, fail, require, run_answer, show
from .framework import CheckFailed, describe_error

SESSION_LIMIT = 2.0  # the longest one TLS session of a check may take
ALLOW_LIMIT = 0.5  # 14.3: the longest one allow() call may take (it only computes)
CLOSE_GRACE = 0.5  # 14.2: how long after its result the client has to close
PING = b"ping\n"

_extra: dict[str, tls.Identity] = {}


def _identity(name: str) -> tls.Identity:
    """A certificate of the chapter's PKI, or the checker's own `db` (CA-issued, for
    db.internal: the right CA, another name)."""
    pki = tls.pki()
    if name == "db":
        if "db" not in _extra:
            _extra["db"] = tls.issue(pki.ca, "db.internal", name="db", dns=("db.internal",),
                                     ips=())
        return _extra["db"]
    return getattr(pki, name)


def _server_options(identity: tls.Identity):
    from twisted.internet.ssl import PrivateCertificate

    return PrivateCertificate.loadPEM(identity.pem).options()


def _ca_certificate():
    from twisted.internet.ssl import Certificate

    return Certificate.loadPEM(tls.pki().ca.cert_pem)


def _reason(failure) -> str:
    from OpenSSL import SSL

    error = failure.value
    if isinstance(error, SSL.Error) and error.args and isinstance(error.args[0], list):
        return "SSL.Error: " + ", ".join(r[-1] for r in error.args[0])
    return describe_error(error)


# -- 14.1 -------------------------------------------------------------------------------

options_ex = exercise("14.1", "Client options that verify")

_SERVERS = {  # identity name -> how the check describes that server
    "server": "a server whose certificate is from that CA, in date, for localhost",
    "rogue_server": "a server whose certificate says localhost but is from another CA",
    "expired": "a server whose certificate is from that CA, for localhost, but expired",
    "db": "a server whose certificate is from that CA, in date, but for db.internal",
}


@dataclass(frozen=True)
class _Session:
    handshake: bool  # the client's handshake completed
    server_got: bytes  # application data the server received
    echoed: bytes  # what came back to the client
    ending: str  # why the client's connection ended

    @property
    def talked(self) -> bool:
        return self.handshake or bool(self.server_got)

    def __str__(self):
        if self.talked:
            return (f"it completed a handshake and sent {show(self.server_got)}"
                    f" (the echo came back: {show(self.echoed)})")
        return f"it was refused ({self.ending})"


def _options_for(fn, hostname: str, ca: str = "ca"):
    """fn(hostname, the PEM of the PKI's `ca`): the chapter's CA, or "rogue_ca"."""
    ca_pem = getattr(tls.pki(), ca).cert_pem
    outcome = run_answer(fn, hostname, ca_pem, limit=SESSION_LIMIT,
                         what=f"client_options({hostname!r}, ca_pem)")
    if outcome.kind == "raised":
        fail(f"client_options({hostname!r}, ca_pem) raised {describe_error(outcome.value)}")
    return outcome.value


def _tls_session(options, identity_name: str, what: str) -> _Session:
    """Connect with `options` to a TLS echo server presenting `identity_name`'s certificate,
    send PING, and say what happened."""
    from twisted.internet import defer, reactor
    from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
    from twisted.internet.interfaces import IHandshakeListener
    from twisted.internet.protocol import Factory, Protocol
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from zope.interface import implementer

    got, seen = [], {"handshake": False, "echoed": b"", "ending": "still open"}

    class Recorder(Protocol):
        def dataReceived(self, data):
            got.append(data)
            self.transport.write(data)

    @implementer(IHandshakeListener)
    class Probe(Protocol):
        def __init__(self):
            self.done = defer.Deferred()

        def connectionMade(self):
            self.transport.write(PING)

        def handshakeCompleted(self):
            seen["handshake"] = True

        def dataReceived(self, data):
            seen["echoed"] += data
            if seen["echoed"].endswith(b"\n"):
                self.transport.loseConnection()

        def connectionLost(self, reason):
            seen["ending"] = _reason(reason)
            self.done.callback(None)

    factory = Factory.forProtocol(Recorder)
    wrapped = TLSMemoryBIOFactory(_server_options(_identity(identity_name)), False, factory)
    with serve("check-14.1", wrapped) as server:
        probe = Probe()

        def connect():
            endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", server.port, options, timeout=2)
            return connectProtocol(endpoint, probe).addCallback(lambda _: probe.done)

        try:
            _reactor.call(connect, timeout=SESSION_LIMIT)
        except TimeoutError:
            fail(f"{what}: the connection was still open after {SESSION_LIMIT:g} s")
        except Exception as exc:
            fail(f"connecting with what {what} returned ({show(options)}) failed with"
                 f" {describe_error(exc)}: it must be TLS client options, such as"
                 " optionsForClientTLS returns")
    return _Session(seen["handshake"], b"".join(got), seen["echoed"], seen["ending"])


def _expect_refused(fn, hostname, identity_name):
    what = f"client_options({hostname!r}, ca_pem)"
    session = _tls_session(_options_for(fn, hostname), identity_name, what)
    require(not session.talked, f"with {what}, the client connected to"
            f" {_SERVERS[identity_name]}, and {session}")


@options_ex.check("trusts-the-ca", "connects to a server with a good certificate from that CA",
                  hint="The system's trust store has never heard of this CA: the options must"
                       " trust the certificate passed in ca_pem, whichever CA it is, as their"
                       " trust root.")
def _trusts_the_ca(fn):
    what = "client_options('localhost', ca_pem)"
    session = _tls_session(_options_for(fn, "localhost"), "server", what)
    require(session.handshake and session.echoed == PING,
            f"with {what}, the client could not talk to {_SERVERS['server']}: {session}")
    # The CA is the argument, not the chapter's: given the other CA's certificate, the
    # options trust that one.
    what = "client_options('localhost', ca_pem), ca_pem being the other CA's certificate,"
    session = _tls_session(_options_for(fn, "localhost", "rogue_ca"), "rogue_server", what)
    require(session.handshake and session.echoed == PING,
            f"with {what} the client could not talk to a server whose certificate is from that"
            f" other CA: {session}. The options must trust the CA in ca_pem, whichever it is,"
            " not a CA of their own choosing")


@options_ex.check("refuses-other-ca", "refuses a certificate from another CA",
                  hint="Encrypting is not verifying: the options must check that the"
                       " server's certificate chains up to the CA you were given."
                       " CertificateOptions() with no arguments (or verify=False) checks"
                       " nothing at all.")
def _refuses_other_ca(fn):
    _expect_refused(fn, "localhost", "rogue_server")


@options_ex.check("refuses-expired", "refuses an expired certificate",
                  hint="Expiry is checked by the same certificate verification that checks"
                       " the CA; options that verify the chain refuse it.")
def _refuses_expired(fn):
    _expect_refused(fn, "localhost", "expired")


@options_ex.check("checks-the-name", "checks the host name it was given",
                  hint="Trusting the CA is not enough: every certificate it issued would pass."
                       " The options must also check the name in the certificate against the"
                       " hostname you were given, not against a fixed name.")
def _checks_the_name(fn):
    _expect_refused(fn, "localhost", "db")
    what = "client_options('db.internal', ca_pem)"
    session = _tls_session(_options_for(fn, "db.internal"), "db", what)
    require(session.handshake and session.echoed == PING,
            f"with {what}, the client could not talk to {_SERVERS['db']}: {session}")


# -- 14.2 -------------------------------------------------------------------------------

starttls_ex = exercise("14.2", "A STARTTLS client that cannot be fooled")

COMMAND = b"PAY 5 bob"
_MODES = {
    "honest": "an honest server",
    "refuse": "a server that answers STARTTLS with 454 TLS not available",
    "inject": "a server that sends '250 paid 100 mallory' right behind '220 go ahead', in plain"
              " text",
    "rogue": "a server whose certificate is from another CA",
    "hangup": "a server that hangs up when it gets STARTTLS",
}


def _bank_factory(mode: str):
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import LineReceiver

    class Bank(LineReceiver):
        def connectionMade(self):
            self.secure = False
            self.sendLine(b"220 checker bank ready")

        def lineReceived(self, line):
            self.factory.lines.append((line, self.secure))
            if line == b"STARTTLS" and not self.secure:
                self.starttls()
            elif line.startswith(b"PAY "):
                self.sendLine(b"250 paid " + line[4:] if self.secure else b"530 STARTTLS first")
            else:
                self.sendLine(b"500 unknown command")

        def starttls(self):
            if mode == "refuse":
                self.sendLine(b"454 TLS not available")
                return
            if mode == "hangup":
                self.transport.loseConnection()
                return
            if mode == "inject":
                self.transport.write(b"220 go ahead\r\n250 paid 100 mallory\r\n")
            else:
                self.sendLine(b"220 go ahead")
            self.clearLineBuffer()
            self.transport.startTLS(self.factory.options)
            self.secure = True

    factory = Factory.forProtocol(Bank)
    factory.lines = []
    factory.options = _server_options(_identity("rogue_server" if mode == "rogue" else "server"))
    return factory


@dataclass(frozen=True)
class _BankSession:
    result: object  # an Outcome: what self.result did
    lines: list  # (line, over TLS?) as the server received them
    closed: bool  # the connection closed without the check aborting it
    limit: float  # how long the check waited for the result or the end of the connection

    @property
    def commands(self) -> list:
        return [(line, secure) for line, secure in self.lines if line.startswith(b"PAY")]


def _bank_session(cls, mode: str) -> _BankSession:
    from twisted.internet import defer
    from twisted.internet.ssl import optionsForClientTLS

    options = optionsForClientTLS("localhost", trustRoot=_ca_certificate())
    made = run_answer(cls, options, COMMAND, limit=SESSION_LIMIT,
                      what="StartTLSClient(options, b'PAY 5 bob')")
    if made.kind == "raised":
        fail(f"StartTLSClient(options, b'PAY 5 bob') raised {describe_error(made.value)}")
    client = made.value
    result = getattr(client, "result", None)
    if not isinstance(result, defer.Deferred):
        fail(f"StartTLSClient(options, b'PAY 5 bob').result is {show(result)}, expected a"
             " Deferred")
    if result.called:  # one Deferred for every client (a class attribute), say
        fail("a new StartTLSClient(options, b'PAY 5 bob') had a result that had already fired"
             " before it was even connected: each client needs a Deferred of its own")
    factory = _bank_factory(mode)
    with serve("check-14.2", factory) as server:
        outcome, closed = client_outcome(client, result, server.port, limit=SESSION_LIMIT)
    return _BankSession(outcome, list(factory.lines), closed, SESSION_LIMIT)


def _result_text(session: _BankSession) -> str:
    if session.result.kind == "pending" and session.closed:
        return "self.result was never fired, although the connection had closed"
    if session.result.kind == "pending":
        return (f"self.result had not fired after {session.limit:g} s, and the connection was"
                " still open")
    return f"self.result {session.result}"


def _sent_in_plain_text(session: _BankSession) -> list:
    return [line for line, secure in session.commands if not secure]


def _expect_failure(cls, mode: str):
    session = _bank_session(cls, mode)
    plain = _sent_in_plain_text(session)
    if plain:
        fail(f"against {_MODES[mode]}, the client sent {show(plain[0])} in plain text")
    if session.commands:
        fail(f"against {_MODES[mode]}, the client still sent {show(session.commands[0][0])}")
    require(session.result.kind == "failed",
            f"against {_MODES[mode]}: {_result_text(session)}, expected it to fail")


@starttls_ex.check("pays-over-tls", "sends the command over TLS and fires with the reply",
                   hint="Three moments matter: the greeting (send STARTTLS), the 220 reply"
                        " (startTLS with the options you were given), and the end of the"
                        " handshake (handshakeCompleted, which needs IHandshakeListener: send"
                        " the command then). The next line is the reply.")
def _pays_over_tls(cls):
    session = _bank_session(cls, "honest")
    plain = _sent_in_plain_text(session)
    if plain:
        fail(f"against {_MODES['honest']}, the client sent {show(plain[0])} in plain text,"
             " before TLS")
    require([line for line, _ in session.commands] == [COMMAND],
            f"against {_MODES['honest']}, the server received the commands"
            f" {[line for line, _ in session.commands]}, expected [{COMMAND!r}] over TLS;"
            f" {_result_text(session)}")
    require(session.result.kind == "fired" and session.result.value == b"250 paid 5 bob",
            f"against {_MODES['honest']}: {_result_text(session)}, expected it to fire with"
            " b'250 paid 5 bob'")


@starttls_ex.check("closes", "closes the connection once the result has fired",
                   hint="The result is not the end of the conversation for the server: the"
                        " client that is done says so by closing its side.")
def _closes(cls):
    for mode in ("honest", "refuse", "inject"):
        session = _bank_session(cls, mode)
        if session.result.kind == "pending":
            continue  # the checks about the result say so
        require(session.closed, f"against {_MODES[mode]}: {_result_text(session)}, and the"
                f" connection was still open {CLOSE_GRACE:g} s later")


@starttls_ex.check("refuses-stripping", "gives up when STARTTLS is refused",
                   hint="A reply other than 220 means there will be no TLS: a client that needs"
                        " TLS gives up there, rather than send its command in the clear.")
def _refuses_stripping(cls):
    _expect_failure(cls, "refuse")


@starttls_ex.check("refuses-injection", "refuses plain text that arrives behind the 220",
                   hint="Whatever arrived behind the 220 reply came before TLS was even"
                        " started, so it cannot be the server's answer. LineReceiver would hand"
                        " it to you as the next line; clearLineBuffer() returns it instead.")
def _refuses_injection(cls):
    session = _bank_session(cls, "inject")
    require(not (session.result.kind == "fired"
                 and session.result.value == b"250 paid 100 mallory"),
            f"against {_MODES['inject']}: self.result fired with the injected"
            " b'250 paid 100 mallory', as if the server had answered over TLS")
    if session.commands:
        fail(f"against {_MODES['inject']}, the client carried on and sent"
             f" {show(session.commands[0][0])} instead of refusing the injected line")
    require(session.result.kind == "failed",
            f"against {_MODES['inject']}: {_result_text(session)}, expected it to fail")


@starttls_ex.check("verifies", "starts TLS with the verifying options it was given",
                   hint="Start TLS with the options passed to StartTLSClient: they check the"
                        " server's certificate. Options of your own, such as"
                        " CertificateOptions(), check nothing.")
def _verifies(cls):
    _expect_failure(cls, "rogue")


@starttls_ex.check("never-hangs", "fails the result when the connection ends first",
                   hint="connectionLost is called however a connection ends; if the result has"
                        " not fired by then, fail it there.")
def _never_hangs(cls):
    _expect_failure(cls, "hangup")


# -- 14.3 -------------------------------------------------------------------------------

bucket_ex = exercise("14.3", "A token bucket per peer")


def _peer(host="192.0.2.1", port=40001):
    from twisted.internet.address import IPv4Address

    return IPv4Address("TCP", host, port)


# Each check asks about hosts of its own, so that buckets shared by every TokenBucket (a
# class attribute) fail "own-buckets", which names that, and not every check after the first.
_HOSTS = {"burst": "192.0.2.2", "refill": "192.0.2.3", "capped": "192.0.2.4",
          "refused-free": "192.0.2.5", "own-buckets": "203.0.113.9"}


def _bucket(cls, rate, burst):
    from twisted.internet import task

    clock = task.Clock()
    made = run_answer(cls, rate, burst, clock, what=f"TokenBucket({rate}, {burst}, clock)")
    if made.kind == "raised":
        fail(f"TokenBucket({rate}, {burst}, clock) raised {describe_error(made.value)}")
    return made.value, clock


def _allow(bucket, peer) -> bool:
    # In a thread with a deadline, as every call of the reader's code: an allow() that waits
    # for a token (it never comes on a task.Clock that nobody advances) is stopped, not left
    # spinning behind the check. A thread costs some 0.1 ms; a check makes a dozen calls.
    try:
        outcome = run_answer(bucket.allow, peer, limit=ALLOW_LIMIT, what="allow(peer)")
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}: it must answer at once, False when there is no whole"
                          " token, rather than wait for one") from None
    if outcome.kind == "raised":
        fail(f"allow(peer) raised {describe_error(outcome.value)}")
    allowed = outcome.value
    require(isinstance(allowed, bool), f"allow(peer) returned {show(allowed)}, expected True"
            " or False")
    return allowed


def _pattern(answers) -> str:
    return "".join("Y" if a else "n" for a in answers)


@bucket_ex.check("burst", "a new host may send `burst` requests at once, then no more",
                 hint="A host seen for the first time starts with a full bucket: `burst`"
                      " tokens, one per request.")
def _burst(cls):
    bucket, _ = _bucket(cls, 1, 3)
    peer = _peer(_HOSTS["burst"])
    got = _pattern(_allow(bucket, peer) for _ in range(5))
    require(got == "YYYnn", f"rate=1, burst=3: five requests at t=0 were allowed as {got}"
            " (Y allowed, n refused), expected YYYnn")


@bucket_ex.check("refill", "tokens come back at `rate` per second, fractions included",
                 hint="What comes back is in proportion to the time since the bucket was"
                      " last counted, fractions included (a float), and that time is what the"
                      " clock you were given says, not the wall clock.")
def _refill(cls):
    bucket, clock = _bucket(cls, 2, 1)
    peer = _peer(_HOSTS["refill"])
    require(_allow(bucket, peer), "rate=2, burst=1: the first request was refused")
    got = []
    for _ in range(8):
        clock.advance(0.25)
        got.append(_allow(bucket, peer))
    require(_pattern(got) == "nYnYnYnY",
            f"rate=2, burst=1, the bucket emptied at t=0, then a request every 0.25 s until"
            f" t=2: allowed as {_pattern(got)} (Y allowed, n refused), expected nYnYnYnY (a"
            " token every 0.5 s)")


@bucket_ex.check("capped", "a bucket never holds more than `burst` tokens",
                 hint="However long a host was quiet, its bucket holds at most `burst` tokens:"
                      " cap the refill.")
def _capped(cls):
    bucket, clock = _bucket(cls, 1, 3)
    peer = _peer(_HOSTS["capped"])
    for _ in range(3):
        _allow(bucket, peer)
    clock.advance(100)
    got = _pattern(_allow(bucket, peer) for _ in range(5))
    require(got == "YYYnn", f"rate=1, burst=3, emptied, then 100 s of quiet: five requests"
            f" were allowed as {got}, expected YYYnn")


@bucket_ex.check("refused-free", "a refused request takes no token",
                 hint="Take a token only when there is a whole one to take; a refusal leaves"
                      " the bucket as it was.")
def _refused_free(cls):
    bucket, clock = _bucket(cls, 2, 1)
    peer = _peer(_HOSTS["refused-free"])
    got = [_allow(bucket, peer)]
    for _ in range(4):
        clock.advance(0.125)
        got.append(_allow(bucket, peer))  # refused until a whole token is back at t=0.5
    require(_pattern(got) == "YnnnY",
            f"rate=2, burst=1: requests at t=0, 0.125, 0.25, 0.375 and 0.5 were allowed as"
            f" {_pattern(got)} (Y allowed, n refused), expected YnnnY: the refusals take"
            " nothing, so the token that refills by t=0.5 is whole then, and not before")


@bucket_ex.check("per-host", "one bucket per host, shared by its connections",
                 hint="The bucket belongs to the host: every connection has a port of its own,"
                      " and a bucket that depends on the port is reset by reconnecting.")
def _per_host(cls):
    bucket, _ = _bucket(cls, 1, 2)
    first, second = _peer(port=40001), _peer(port=40002)
    other = _peer(host="198.51.100.7", port=40001)
    _allow(bucket, first), _allow(bucket, first)
    require(not _allow(bucket, second), "rate=1, burst=2: after two requests from 192.0.2.1"
            " port 40001, a request from the same host on port 40002 was allowed: the bucket"
            " must be the host's, not the connection's")
    got = _pattern(_allow(bucket, other) for _ in range(3))
    require(got == "YYn", f"then another host, 198.51.100.7, sent three requests: allowed as"
            f" {got}, expected YYn (its own full bucket)")


@bucket_ex.check("own-buckets", "each TokenBucket has buckets of its own",
                 hint="Two limiters (two servers, or a test that makes a fresh one) must not"
                      " share their hosts' tokens: the table of buckets belongs to each"
                      " TokenBucket, not to the class.")
def _own_buckets(cls):
    host = _HOSTS["own-buckets"]
    first, _ = _bucket(cls, 1, 2)
    drained = _pattern(_allow(first, _peer(host)) for _ in range(3))
    if drained != "YYn":
        return  # "burst" judges a new host's first requests
    second, _ = _bucket(cls, 1, 2)
    got = _allow(second, _peer(host))
    require(got, f"rate=1, burst=2: a first TokenBucket allowed three requests from {host}"
            " (YYn); then a new TokenBucket refused that host's first request, although"
            " its bucket should be full: the two TokenBuckets share their buckets")


# -- this chapter's harness (a job no other checker has): a client protocol's result, or why it
#    never came


def client_outcome(client, result, port: int, *, limit: float, grace: float = 0.3):
    """Connect the reader's `client` protocol to 127.0.0.1:`port` and wait for `result`,
    a Deferred of the client's: (an Outcome, "fired", "failed" or "pending"; whether the
    connection had closed before this check gave up on it). A result that only came when
    this check aborted the connection is "pending".

    Waits at most `limit` for the result or the end of the connection, whichever comes
    first; after the connection ends, `grace` more for a result fired from (or just after)
    connectionLost; after a result, a little for the client to close. A client still
    connected then is aborted, so nothing outlives the check. The result is consumed
    (Watch-style): a failure is the check's to report, never logged as unhandled.
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.python.failure import Failure

    from .answers import Outcome

    settled, lost, either, box = threading.Event(), threading.Event(), threading.Event(), []

    def keep(value):
        box.append(value)
        settled.set()
        either.set()

    def connect():
        result.addBoth(keep)
        original = client.connectionLost

        def connection_lost(reason):
            try:
                return original(reason)
            finally:
                lost.set()
                either.set()

        client.connectionLost = connection_lost  # to see the end, whatever the answer does
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=2)
        return connectProtocol(endpoint, client).addCallback(lambda _: None)

    _reactor.call(connect, timeout=limit)
    if either.wait(limit):
        settled.wait(grace)
        lost.wait(CLOSE_GRACE)  # the client closes once it has its result
    # Closed by the client or the server, not by this check. A result that comes only with
    # this check's abort (connectionLost failing it) is not the client's doing: it counts as
    # never fired, and the connection as still open.
    before_abort, ended = [], []

    def finish():  # in the reactor thread, where connectionLost runs: no race with it
        before_abort.extend(box)
        ended.append(lost.is_set())
        if not lost.is_set():
            client.transport.abortConnection()

    _reactor.call(finish, timeout=limit)
    lost.wait(limit)
    closed = ended[0]
    if not before_abort:
        return Outcome("pending", seconds=limit), closed
    if isinstance(before_abort[0], Failure):
        return Outcome("failed", before_abort[0].value), closed
    return Outcome("fired", before_abort[0]), closed
