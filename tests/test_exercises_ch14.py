"""Chapter 14 exercises: learners' mistakes fail the check that names them, with a message
that names the cause (reference solutions: tests/test_exercises.py)."""

import threading
import time

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.ssl import Certificate, CertificateOptions, optionsForClientTLS
from twisted.protocols.basic import LineReceiver
from zope.interface import classImplementsOnly, implementer

from helpers import check, tls
from helpers.exercises import ch14
from solutions.ch14 import SOLUTIONS, StartTLSClient, TokenBucket, client_options


def stub(*args, **kwargs):
    raise NotImplementedError("your code here")


def test_the_stub_is_not_attempted_and_shows_no_hint():
    for exercise_id in sorted(SOLUTIONS):
        report = check(exercise_id, stub)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)


# -- 14.1 -------------------------------------------------------------------------------

REFUSES = {"refuses-other-ca", "refuses-expired", "checks-the-name"}


@pytest.mark.parametrize("answer", [
    lambda hostname, ca_pem: CertificateOptions(),
    lambda hostname, ca_pem: CertificateOptions(verify=False),
], ids=["no-arguments", "verify-false"])
def test_options_that_verify_nothing_fail_every_refusal(answer):
    report = check("14.1", answer)
    assert report.failed == REFUSES
    assert report.message("refuses-other-ca") == (
        "with client_options('localhost', ca_pem), the client connected to a server whose"
        " certificate says localhost but is from another CA, and it completed a handshake and"
        " sent b'ping\\n' (the echo came back: b'ping\\n')")
    assert "but expired" in report.message("refuses-expired")


def test_trusting_the_system_store_cannot_reach_the_private_ca():
    report = check("14.1", lambda hostname, ca_pem: optionsForClientTLS(hostname))
    assert report.failed == {"trusts-the-ca", "checks-the-name"}
    assert report.message("trusts-the-ca") == (
        "with client_options('localhost', ca_pem), the client could not talk to a server whose"
        " certificate is from that CA, in date, for localhost: it was refused (SSL.Error:"
        " certificate verify failed)")


def test_checking_the_ca_but_not_the_name_fails():
    def ca_only(hostname, ca_pem):
        return CertificateOptions(trustRoot=Certificate.loadPEM(ca_pem))

    report = check("14.1", ca_only)
    assert report.failed == {"checks-the-name"}
    assert report.message("checks-the-name").startswith(
        "with client_options('localhost', ca_pem), the client connected to a server whose"
        " certificate is from that CA, in date, but for db.internal, and it completed a"
        " handshake")


def test_a_fixed_host_name_fails():
    def always_localhost(hostname, ca_pem):
        return client_options("localhost", ca_pem)

    report = check("14.1", always_localhost)
    assert report.failed == {"checks-the-name"}
    assert report.message("checks-the-name") == (
        "with client_options('db.internal', ca_pem), the client could not talk to a server"
        " whose certificate is from that CA, in date, but for db.internal: it was refused"
        " (VerificationError: VerificationError(errors=[DNSMismatch(mismatched_id=DNS_ID("
        "hostname=b'localhost'))]))")  # it checked the name it had, not the one it was given


def test_trusting_the_chapters_ca_instead_of_ca_pem_fails():
    def chapters_ca(hostname, ca_pem):  # `pki.ca.cert_pem` from the notebook, not the argument
        return optionsForClientTLS(hostname, trustRoot=Certificate.loadPEM(tls.pki().ca.cert_pem))

    report = check("14.1", chapters_ca)
    assert report.failed == {"trusts-the-ca"}
    assert report.message("trusts-the-ca") == (
        "with client_options('localhost', ca_pem), ca_pem being the other CA's certificate,"
        " the client could not talk to a server whose certificate is from that other CA: it"
        " was refused (SSL.Error: certificate verify failed). The options must trust the CA in"
        " ca_pem, whichever it is, not a CA of their own choosing")


def test_returning_the_certificate_instead_of_options_says_what_is_wanted():
    report = check("14.1", lambda hostname, ca_pem: Certificate.loadPEM(ca_pem))
    assert report.attempted and report.failed == {"trusts-the-ca", *REFUSES}
    assert "it must be TLS client options, such as optionsForClientTLS returns" in (
        report.message("trusts-the-ca"))


# -- 14.2 -------------------------------------------------------------------------------


@pytest.fixture
def short_sessions(monkeypatch):
    """A session that never ends is cut after this long (2 s in the notebook)."""
    monkeypatch.setattr(ch14, "SESSION_LIMIT", 0.5)


@implementer(IHandshakeListener)
class Naive(LineReceiver):
    """A plausible first answer: right order, no defences."""

    def __init__(self, options, command):
        self.options, self.command = options, command
        self.result = Deferred()
        self.state = "greeting"

    def lineReceived(self, line):
        if self.state == "greeting":
            self.state = "starttls"
            self.sendLine(b"STARTTLS")
        elif self.state == "starttls":
            self.starttls_reply(line)
        elif self.state == "tls":
            self.state = "done"
            self.result.callback(line)
            self.transport.loseConnection()

    def starttls_reply(self, line):
        self.state = "tls"
        self.transport.startTLS(self.options)

    def handshakeCompleted(self):
        self.sendLine(self.command)

    def connectionLost(self, reason):
        if not self.result.called:
            self.result.errback(reason)


def test_a_client_that_keeps_buffered_plain_text_takes_the_injected_reply():
    class KeepsBuffer(Naive):
        def starttls_reply(self, line):
            if not line.startswith(b"220"):
                self.result.errback(ConnectionError(line))
                self.transport.loseConnection()
            else:
                super().starttls_reply(line)

    report = check("14.2", KeepsBuffer)
    assert report.failed == {"refuses-injection"}
    assert report.message("refuses-injection") == (
        "against a server that sends '250 paid 100 mallory' right behind '220 go ahead', in"
        " plain text: self.result fired with the injected b'250 paid 100 mallory', as if the"
        " server had answered over TLS")


def test_a_client_that_waits_for_the_handshake_but_keeps_going_is_still_fooled():
    class Ignores(Naive):  # discards the early line, but does not refuse the connection
        def starttls_reply(self, line):
            if not line.startswith(b"220"):
                self.result.errback(ConnectionError(line))
                self.transport.loseConnection()
                return
            self.clearLineBuffer()
            super().starttls_reply(line)

    report = check("14.2", Ignores)
    assert report.failed == {"refuses-injection"}
    assert report.message("refuses-injection") == (
        "against a server that sends '250 paid 100 mallory' right behind '220 go ahead', in"
        " plain text, the client carried on and sent b'PAY 5 bob' instead of refusing the"
        " injected line")


def test_a_client_that_goes_on_in_plain_text_when_starttls_is_refused_fails():
    class Strippable(Naive):
        def starttls_reply(self, line):
            if line.startswith(b"220"):
                super().starttls_reply(line)
            else:  # "no TLS then": carries on in the clear
                self.state = "tls"
                self.sendLine(self.command)

    report = check("14.2", Strippable)
    assert "refuses-stripping" in report.failed
    assert report.message("refuses-stripping") == (
        "against a server that answers STARTTLS with 454 TLS not available, the client sent"
        " b'PAY 5 bob' in plain text")


def test_a_client_with_options_of_its_own_pays_an_impostor():
    class OwnOptions(Naive):
        def starttls_reply(self, line):
            self.options = CertificateOptions()  # "the certificate errors went away"
            if line.startswith(b"220") and not self.clearLineBuffer():
                super().starttls_reply(line)
            else:
                self.result.errback(ConnectionError(line))
                self.transport.loseConnection()

    report = check("14.2", OwnOptions)
    assert report.failed == {"verifies"}
    assert report.message("verifies") == (
        "against a server whose certificate is from another CA, the client still sent"
        " b'PAY 5 bob'")


def test_a_client_that_forgets_connection_lost_leaves_its_result_waiting():
    class Forgetful(StartTLSClient):
        def connectionLost(self, reason):
            pass

    start = time.monotonic()
    report = check("14.2", Forgetful)
    assert time.monotonic() - start < 3
    assert report.failed == {"verifies", "never-hangs"}
    assert report.message("never-hangs") == (
        "against a server that hangs up when it gets STARTTLS: self.result was never fired,"
        " although the connection had closed, expected it to fail")


def test_a_client_without_ihandshakelistener_never_sends_its_command(short_sessions):
    class Unannounced(StartTLSClient):
        pass

    classImplementsOnly(Unannounced)  # as if @implementer(IHandshakeListener) were missing
    report = check("14.2", Unannounced)
    assert report.failed == {"pays-over-tls"}
    assert report.message("pays-over-tls") == (
        "against an honest server, the server received the commands [], expected"
        " [b'PAY 5 bob'] over TLS; self.result had not fired after 0.5 s, and the connection"
        " was still open")


def test_a_client_that_ignores_a_refused_starttls_is_left_waiting(short_sessions):
    class Ignores454(StartTLSClient):
        def lineReceived(self, line):
            if self.state == "starttls" and not line.startswith(b"220"):
                return  # "not 220: not for me"; nothing fails, nothing closes
            super().lineReceived(line)

    report = check("14.2", Ignores454)  # its connectionLost fails the result when the
    assert report.failed == {"refuses-stripping"}  # check aborts: that is not refusing
    assert report.message("refuses-stripping") == (
        "against a server that answers STARTTLS with 454 TLS not available: self.result had"
        " not fired after 0.5 s, and the connection was still open, expected it to fail")


def test_a_result_deferred_shared_by_every_client_is_named():
    class SharedResult(StartTLSClient):
        result = Deferred()  # made once, when the class is

        def __init__(self, options, command):
            self.options, self.command = options, command
            self.state = "greeting"

    report = check("14.2", SharedResult)  # the first client fires it; every later one
    assert report.failed == {"closes", "refuses-stripping", "refuses-injection", "verifies",
                             "never-hangs"}
    assert report.message("never-hangs") == (
        "a new StartTLSClient(options, b'PAY 5 bob') had a result that had already fired"
        " before it was even connected: each client needs a Deferred of its own")


def test_options_of_its_own_that_reject_the_server_say_why_nothing_was_sent():
    class SystemTrust(StartTLSClient):
        def __init__(self, options, command):  # "localhost is all I need"
            super().__init__(optionsForClientTLS("localhost"), command)

    report = check("14.2", SystemTrust)
    assert report.failed == {"pays-over-tls"}
    assert report.message("pays-over-tls") == (
        "against an honest server, the server received the commands [], expected"
        " [b'PAY 5 bob'] over TLS; self.result failed with Error: [('SSL routines', '',"
        " 'certificate verify failed')]")


def test_a_client_that_never_closes_fails(monkeypatch):
    monkeypatch.setattr(ch14, "CLOSE_GRACE", 0.2)  # 0.5 s in the notebook: four sessions wait
    class StaysConnected(StartTLSClient):
        def connectionMade(self):
            super().connectionMade()
            self.transport.loseConnection = lambda: None  # "done", but the socket stays open

    report = check("14.2", StaysConnected)
    assert report.failed == {"closes"}
    assert report.message("closes") == (
        "against an honest server: self.result fired with b'250 paid 5 bob', and the"
        " connection was still open 0.2 s later")


def test_a_result_that_is_not_a_deferred_is_named():
    class NoResult(StartTLSClient):
        def __init__(self, options, command):
            super().__init__(options, command)
            self.result = None

    report = check("14.2", NoResult)
    assert report.message("pays-over-tls") == (
        "StartTLSClient(options, b'PAY 5 bob').result is None, expected a Deferred")


# -- 14.3 -------------------------------------------------------------------------------


class ByConnection(TokenBucket):
    """Keyed on the whole address: (type, host, port)."""

    def allow(self, peer):
        now = self.clock.seconds()
        tokens, then = self.buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        self.buckets[peer] = (tokens - 1 if tokens >= 1 else tokens, now)
        return tokens >= 1


class Truncating(TokenBucket):
    """Whole tokens only, and the time of the last call always moves on: fractions lost."""

    def allow(self, peer):
        now = self.clock.seconds()
        tokens, then = self.buckets.get(peer.host, (self.burst, now))
        tokens = min(self.burst, tokens + int((now - then) * self.rate))
        self.buckets[peer.host] = (tokens - 1 if tokens >= 1 else tokens, now)
        return tokens >= 1


class Uncapped(TokenBucket):
    def allow(self, peer):
        now = self.clock.seconds()
        tokens, then = self.buckets.get(peer.host, (self.burst, now))
        tokens = tokens + (now - then) * self.rate  # no min(burst, ...)
        self.buckets[peer.host] = (tokens - 1 if tokens >= 1 else tokens, now)
        return tokens >= 1


class PaysForRefusals(TokenBucket):
    def allow(self, peer):
        now = self.clock.seconds()
        tokens, then = self.buckets.get(peer.host, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate) - 1  # taken first
        self.buckets[peer.host] = (tokens, now)
        return tokens >= 0


class RefillsTwice(TokenBucket):
    """A refusal keeps the refilled tokens but not the time: the next call adds them again."""

    def allow(self, peer):
        now = self.clock.seconds()
        tokens, then = self.buckets.get(peer.host, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= 1:
            self.buckets[peer.host] = (tokens - 1, now)
            return True
        self.buckets[peer.host] = (tokens, then)
        return False


class WallClock(TokenBucket):
    def __init__(self, rate, burst, clock):
        super().__init__(rate, burst, clock=type("Wall", (), {"seconds": time.monotonic})())


class SharedTable(TokenBucket):
    buckets = {}  # one table for every TokenBucket

    def __init__(self, rate, burst, clock):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.swept = clock.seconds()


class OneBucket(TokenBucket):
    def allow(self, peer):
        from twisted.internet.address import IPv4Address

        return super().allow(IPv4Address("TCP", "0.0.0.0", 0))  # everyone shares one


@pytest.mark.parametrize(("answer", "failed", "key", "message"), [
    (ByConnection, {"per-host"}, "per-host",
     "rate=1, burst=2: after two requests from 192.0.2.1 port 40001, a request from the same"
     " host on port 40002 was allowed: the bucket must be the host's, not the connection's"),
    (Truncating, {"refill", "refused-free"}, "refill",
     "rate=2, burst=1, the bucket emptied at t=0, then a request every 0.25 s until t=2:"
     " allowed as nnnnnnnn (Y allowed, n refused), expected nYnYnYnY (a token every 0.5 s)"),
    (Uncapped, {"capped"}, "capped",
     "rate=1, burst=3, emptied, then 100 s of quiet: five requests were allowed as YYYYY,"
     " expected YYYnn"),
    (PaysForRefusals, {"refill", "refused-free"}, "refused-free",
     "rate=2, burst=1: requests at t=0, 0.125, 0.25, 0.375 and 0.5 were allowed as Ynnnn (Y"
     " allowed, n refused), expected YnnnY: the refusals take nothing, so the token that"
     " refills by t=0.5 is whole then, and not before"),
    (RefillsTwice, {"refused-free"}, "refused-free",
     "rate=2, burst=1: requests at t=0, 0.125, 0.25, 0.375 and 0.5 were allowed as YnnYn (Y"
     " allowed, n refused), expected YnnnY: the refusals take nothing, so the token that"
     " refills by t=0.5 is whole then, and not before"),
    (WallClock, {"refill", "capped", "refused-free"}, "capped",
     "rate=1, burst=3, emptied, then 100 s of quiet: five requests were allowed as nnnnn,"
     " expected YYYnn"),
    (OneBucket, {"per-host"}, "per-host",
     "then another host, 198.51.100.7, sent three requests: allowed as nnn, expected YYn (its"
     " own full bucket)"),
    (SharedTable, {"own-buckets"}, "own-buckets",
     "rate=1, burst=2: a first TokenBucket allowed three requests from 203.0.113.9 (YYn); then"
     " a new TokenBucket refused that host's first request, although its bucket should be"
     " full: the two TokenBuckets share their buckets"),
], ids=["keyed-on-host-and-port", "whole-tokens", "no-cap", "refusals-cost", "refills-twice",
        "wall-clock", "one-bucket", "class-attribute"])
def test_token_bucket_mistakes(answer, failed, key, message):
    report = check("14.3", answer)
    assert report.failed == failed
    assert report.message(key) == message


def test_an_allow_that_waits_for_a_token_is_stopped(monkeypatch):
    monkeypatch.setattr(ch14, "ALLOW_LIMIT", 0.05)  # 0.5 s in the notebook

    class Waits(TokenBucket):
        def allow(self, peer):
            while not super().allow(peer):  # the clock is a task.Clock: it never moves
                pass
            return True

    start = time.monotonic()
    report = check("14.3", Waits)
    assert time.monotonic() - start < 3
    assert report.failed == {"burst", "refill", "capped", "refused-free", "per-host",
                             "own-buckets"}
    assert report.message("burst") == (
        "allow(peer) was still running after 0.05 s: it must answer at once, False when there"
        " is no whole token, rather than wait for one")
    assert not [t for t in threading.enumerate() if t.name == "helpers-check-answer"]
