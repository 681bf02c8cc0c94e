"""Chapter 14's teaching code, tried the way a reader's use would break it.

The classes come from the notebook's `# module: bank` (the STARTTLS servers) and
`# module: hardening` cells. The servers run live on 127.0.0.1 (real TLS, real clients:
the stdlib's ssl on a plain socket that upgrades, and `openssl s_client` where installed);
timeouts and windows run on a `task.Clock`.
"""

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory

from helpers import EventLog, serve, tls
from helpers.notebook_code import load

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "14_tls_and_security.ipynb"
bank = load(NOTEBOOK, "bank")
hardening = load(NOTEBOOK, "hardening")


@pytest.fixture(scope="module")
def pki():
    pki = tls.pki()
    yield pki
    pki.cleanup()


@pytest.fixture
def server_options(pki):
    return PrivateCertificate.loadPEM(pki.server.pem).options()


def client_context(pki):
    return ssl.create_default_context(cadata=pki.ca.cert_pem.decode())


class Line:
    """A plain socket that reads lines, and can switch to TLS in the middle."""

    def __init__(self, server):
        self.sock = socket.create_connection(server.address, timeout=2)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed; unread: {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def starttls(self, pki):
        assert self.buffer == b"", self.buffer
        self.sock = client_context(pki).wrap_socket(self.sock, server_hostname="localhost")

    def close(self):
        self.sock.close()


def serve_bank(protocol, server_options, log=None):
    log = EventLog() if log is None else log  # (an empty EventLog is falsy: no `or`)
    return serve("test-bank", bank.BankFactory(protocol, log, server_options))


def paid(log):
    return [(e.details["line"], e.details["secure"]) for e in log
            if e.what == "line" and e.details["line"].startswith(b"PAY")]


# -- STARTTLS ----------------------------------------------------------------------------


def test_the_naive_bank_really_runs_the_injected_command(pki, server_options):
    log = EventLog()
    with serve_bank(bank.NaiveBank, server_options, log) as server:
        client = Line(server)
        assert client.line() == b"220 notebook bank ready"
        client.send(b"STARTTLS\r\nPAY 100 mallory\r\n")
        assert client.line() == b"220 go ahead"
        client.starttls(pki)
        assert client.line() == b"250 paid 100 mallory"
        client.close()
    assert paid(log) == [(b"PAY 100 mallory", True)]


def test_the_fixed_bank_refuses_plain_text_behind_starttls(server_options):
    log = EventLog()
    with serve_bank(bank.FixedBank, server_options, log) as server:
        client = Line(server)
        client.line()
        client.send(b"STARTTLS\r\nPAY 100 mallory\r\n")
        assert client.line() == b"501 nothing may follow STARTTLS before the handshake"
        assert client.sock.recv(100) == b""  # and it hangs up
        client.close()
    assert paid(log) == []


def test_starttls_split_across_writes_still_works(pki, server_options):
    log = EventLog()
    with serve_bank(bank.FixedBank, server_options, log) as server:
        client = Line(server)
        client.line()
        client.send(b"STAR")
        client.send(b"TTLS\r\n")
        assert client.line() == b"220 go ahead"
        client.starttls(pki)
        client.send(b"PAY 5 bob\r\nPAY 6 carol\r\n")  # two requests in one write
        assert [client.line(), client.line()] == [b"250 paid 5 bob", b"250 paid 6 carol"]
        client.close()
    assert paid(log) == [(b"PAY 5 bob", True), (b"PAY 6 carol", True)]


def test_plain_text_injected_after_the_reply_breaks_the_handshake_instead(pki, server_options):
    """Bytes that arrive after the server switched are read as TLS: the handshake fails and
    nothing is run."""
    log = EventLog()
    with serve_bank(bank.FixedBank, server_options, log) as server:
        client = Line(server)
        client.line()
        client.send(b"STARTTLS\r\n")
        assert client.line() == b"220 go ahead"
        client.send(b"PAY 100 mallory\r\n")
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            client.starttls(pki)
        client.close()
    assert paid(log) == []


def test_bad_input_gets_an_answer_and_the_connection_goes_on(pki, server_options):
    with serve_bank(bank.FixedBank, server_options) as server:
        client = Line(server)
        client.line()
        client.send(b"HELLO\r\nPAY 1 eve\r\n\xff\xfe\r\nEHLO me\r\n")
        assert [client.line() for _ in range(5)] == [
            b"500 unknown command", b"530 STARTTLS first", b"500 unknown command",
            b"250-hello me", b"250 STARTTLS"]
        client.send(b"QUIT\r\n")
        assert client.line() == b"221 bye"
        client.close()


def test_starttls_twice_is_an_unknown_command_over_tls(pki, server_options):
    with serve_bank(bank.FixedBank, server_options) as server:
        client = Line(server)
        client.line()
        client.send(b"STARTTLS\r\n")
        client.line()
        client.starttls(pki)
        client.send(b"STARTTLS\r\n")
        assert client.line() == b"500 unknown command"
        client.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_starttls_smtp_talks_to_the_fixed_bank(pki, server_options):
    log = EventLog()
    with serve_bank(bank.FixedBank, server_options, log) as server:
        result = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-starttls", "smtp",
             "-crlf", "-servername", "localhost", "-CAfile", "ca.pem", "-verify_return_error",
             "-quiet"],
            cwd=pki.folder, input="PAY 7 carol\nQUIT\n", capture_output=True, text=True,
            timeout=10)
        log.wait(1, lambda e: e.details.get("line") == b"QUIT")
    assert "250 paid 7 carol" in result.stdout, result.stdout + result.stderr
    assert paid(log) == [(b"PAY 7 carol", True)]


# -- hardening ---------------------------------------------------------------------------


def flood(server, size):
    with socket.create_connection(server.address, timeout=2) as sock:
        try:
            sock.sendall(b"x" * size)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:  # reset, broken pipe, not connected: the server hung up
            pass


def test_limited_holds_at_most_one_read_beyond_its_limit_even_for_16_mib():
    log = EventLog()
    factory = Factory.forProtocol(hardening.Limited)
    factory.log = log
    with serve("test-limited", factory) as server:
        flood(server, 16 * 2**20)
        (event,) = log.wait(1, "lineLengthExceeded")
    assert event.details["buffered"] <= hardening.Limited.MAX_LENGTH + 65536


def test_limited_answers_three_lines_in_one_write_and_a_line_at_its_limit():
    proto = Factory.forProtocol(hardening.Limited).buildProtocol(None)
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"a\nb\n" + b"c" * hardening.Limited.MAX_LENGTH + b"\n")
    assert proto.transport.value() == b"ok\nok\nok\n"
    assert not proto.transport.disconnecting


def timed(protocol_class, timeout=0.4):
    clock = Clock()
    factory = Factory.forProtocol(protocol_class)
    factory.log, factory.timeout = EventLog(), timeout
    proto = factory.buildProtocol(None)
    proto.callLater = clock.callLater  # TimeoutMixin's timer on the clock
    proto.makeConnection(StringTransport())
    return proto, clock


def test_strict_lines_drops_a_slowloris_at_its_timeout():
    proto, clock = timed(hardening.StrictLines)
    for _ in range(9):
        clock.advance(0.04)
        proto.dataReceived(b"x")
    assert not proto.transport.disconnecting  # t=0.36
    clock.advance(0.05)
    assert proto.transport.disconnecting  # t=0.41: 9 bytes, no line, past the deadline
    assert [e.what for e in proto.factory.log] == ["timed out"]


def test_patient_lines_is_held_open_by_a_slowloris_but_drops_a_silent_client():
    proto, clock = timed(hardening.PatientLines)
    for _ in range(100):
        clock.advance(0.3)
        proto.dataReceived(b"x")
    assert not proto.transport.disconnecting  # 30 s, never a line
    clock.advance(0.4)
    assert proto.transport.disconnecting


def test_strict_lines_keeps_a_client_that_finishes_lines_in_time():
    proto, clock = timed(hardening.StrictLines)
    for _ in range(20):
        clock.advance(0.3)
        proto.dataReceived(b"line\n")
    assert not proto.transport.disconnecting
    assert proto.transport.value() == b"ok\n" * 20
    proto.connectionLost(None)
    assert clock.getDelayedCalls() == []  # the timer was cancelled


def test_connection_cap_frees_slots_and_never_counts_refusals():
    log = EventLog()
    echo = Factory.forProtocol(hardening.Hoarder)
    echo.log = log
    cap = hardening.ConnectionCap(echo, 1, log)
    with serve("test-cap", cap) as server:
        first = socket.create_connection(server.address, timeout=2)
        first.sendall(b"hi\n")
        assert first.recv(10) == b"ok\n"  # in: it holds the one slot
        for _ in range(3):
            with socket.create_connection(server.address, timeout=2) as refused:
                assert refused.recv(10) == b""  # closed at once
        first.close()
        log.wait(1, lambda e: e.source == "hoarder")
        with socket.create_connection(server.address, timeout=2) as again:
            again.sendall(b"hi\n")
            assert again.recv(10) == b"ok\n"
    assert [e.what for e in log if e.source == "cap"] == ["closed at once"] * 3


def test_fixed_window_counts_per_host_and_forgets_at_each_window():
    clock = Clock()
    window = hardening.FixedWindow(limit=2, window=10, clock=clock)
    assert [window.allow("a"), window.allow("a"), window.allow("a"), window.allow("b")] == [
        True, True, False, True]
    clock.advance(9.9)
    assert not window.allow("a")
    clock.advance(0.1)
    assert window.allow("a") and list(window.counts) == ["a"]  # "b" forgotten


def test_rate_limited_keys_on_the_host_not_the_connection():
    clock = Clock()
    factory = Factory.forProtocol(hardening.RateLimited)
    factory.limiter = hardening.FixedWindow(limit=1, window=10, clock=clock)
    replies = []
    for port in (1001, 1002):
        proto = factory.buildProtocol(None)
        proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", port)))
        proto.dataReceived(b"x\n")
        replies.append(proto.transport.value())
    assert replies == [b"ok x\n", b"429 slow down\n"]


@pytest.mark.parametrize(("line", "reply"), [
    (b'{"add": [1, 2, 3]}', b"6"),
    (b'{"add": []}', b"0"),
    (b"not json", b"400 JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
    (b"[1, 2]", b"400 TypeError: list indices must be integers or slices, not str"),
    (b'{"sum": [1]}', b"400 KeyError: 'add'"),
    (b'{"add": [1, "2"]}', b"400 ValueError: 'add' takes a list of integers"),
    (b'{"add": [true]}', b"400 ValueError: 'add' takes a list of integers"),
    (b'{"add": [1.5]}', b"400 ValueError: 'add' takes a list of integers"),
    (b"\xc3(", b"400 UnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3 in position 0:"
                b" invalid continuation byte"),
])
def test_json_adder_answers_every_line_and_refuses_bad_ones_clearly(line, reply):
    proto = Factory.forProtocol(hardening.JsonAdder).buildProtocol(None)
    proto.makeConnection(StringTransport())
    proto.dataReceived(line + b"\n" + b'{"add": [40, 2]}\n')
    assert proto.transport.value() == reply + b"\n42\n"


def test_the_tls_echo_of_the_chapter_is_served_through_a_tls_factory(pki, server_options):
    """The chapter's serve_tls pattern with a stdlib client under strict verification."""
    factory = Factory.forProtocol(hardening.Hoarder)
    factory.log = EventLog()
    context = client_context(pki)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    with serve("test-tls", TLSMemoryBIOFactory(server_options, False, factory)) as server, \
            socket.create_connection(server.address, timeout=2) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"one\ntwo\n")
        got = b""
        while got.count(b"\n") < 2:
            got += sock.recv(100)
    assert got == b"ok\nok\n"
