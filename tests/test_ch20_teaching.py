"""Chapter 20's teaching code, tried the way a reader's use would break it.

The classes come from the notebook's `# module: web` cells (Greeting, Stream with its
BytesProducer, Body and fetch) and `# module: dns_zone` cells (Zone, ZoneServer,
TruncatingZoneServer, serve_dns). The servers run live on 127.0.0.1 and are spoken to by
plain sockets, by Twisted's own clients, and by the real terminal tools where installed
(curl, dig, nettalk).
"""

import contextlib
import json
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.names import client, dns
from twisted.names.error import DNSNameError
from twisted.web.client import Agent, readBody
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from helpers import EventLog, serve, serve_udp
from helpers.exercises.wire import dead_port
from helpers.notebook_code import load
from helpers.reactor import call, start
from helpers.twisted_log import logged_errors

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "20_protocol_stack.ipynb"
web = load(NOTEBOOK, "web")
zone = load(NOTEBOOK, "dns_zone")
buffered = load(ROOT / "notebooks" / "12_flow_control.ipynb", "flow_control").buffered
reactor = start()
CURL = shutil.which("curl")
DIG = shutil.which("dig")


# -- HTTP ----------------------------------------------------------------------------


class Measured(web.BytesProducer):
    """The chapter's producer, keeping the most bytes that waited after one of its writes."""

    made = []
    peak = pauses = 0

    def __init__(self, *args):
        super().__init__(*args)
        Measured.made.append(self)

    def write_chunk(self):
        super().write_chunk()
        self.peak = max(self.peak, buffered(self.request.channel.transport))

    def pauseProducing(self):
        super().pauseProducing()
        self.pauses += 1


@pytest.fixture
def site():
    """The chapter's resources on a live Site: (server, the stream's log)."""
    log = EventLog()
    root, api = Resource(), Resource()
    api.putChild(b"greet", web.Greeting())
    root.putChild(b"api", api)
    root.putChild(b"stream", web.Stream(Measured, log))
    with serve("test-web", Site(root)) as server:
        yield server, log


def exchange(server, request, timeout=2):
    """Send `request`, read until the server closes; the bytes."""
    with socket.create_connection(server.address, timeout=timeout) as sock:
        sock.sendall(request)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def http(server, method, path, body=None, headers=()):
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
            *headers] + ([f"Content-Length: {len(body)}"] if body is not None else [])
    data = exchange(server, ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    kind = re.search(rb"(?im)^content-type: (.*)$", head)
    return status, kind.group(1).strip() if kind else None, payload


@pytest.mark.parametrize("body", [
    b"", b"{", b"\xff\xfe\xfd", "{\"name\": \"été\"}".encode("latin-1"), b"null", b"[]",
    b'"Grace"', b'{"name": null}', b'{"name": ["a"]}', b'{"nom": "Grace"}',
    b"x" * (1 << 20),
])
def test_greeting_answers_every_bad_body_with_a_json_400(site, body):
    server, _ = site
    status, kind, payload = http(server, "POST", "/api/greet", body)
    assert (status, kind) == (400, b"application/json")
    assert isinstance(json.loads(payload)["error"], str)


def test_greeting_takes_text_beyond_latin_1_and_a_body_twisted_spools_to_a_file(site):
    server, _ = site
    for name in ["Zoë €", "名前", "x" * 200_000]:  # 200 kB: over Twisted's in-memory limit
        body = json.dumps({"name": name}).encode()
        status, kind, payload = http(server, "POST", "/api/greet", body)
        assert (status, kind) == (200, b"application/json")
        assert json.loads(payload) == {"greeting": f"Hello, {name}!"}
    status, _, payload = http(server, "GET", "/api/greet?name=%FF%FE")  # not UTF-8
    assert status == 200 and json.loads(payload) == {"greeting": "Hello, \ufffd\ufffd!"}


def test_three_pipelined_requests_in_one_write_are_answered_in_order(site):
    server, _ = site
    request = b"".join(b"GET /api/greet?name=%s HTTP/1.1\r\nHost: x\r\n\r\n" % name
                       for name in (b"a", b"b"))
    request += b"GET /api/greet?name=c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = exchange(server, request)
    assert re.findall(rb'"Hello, (\w)!"', data) == [b"a", b"b", b"c"]


def test_garbage_after_a_good_request_gets_a_400_and_the_good_one_its_answer(site):
    server, _ = site
    for garbage in (b"HELLO THERE\r\n\r\n", b"\x00\xff\x13\x37\r\n\r\n", b"GET /\r\n\r\n"):
        data = exchange(server, b"GET /api/greet HTTP/1.1\r\nHost: x\r\n\r\n" + garbage)
        assert data.startswith(b"HTTP/1.1 200 OK")
        assert data.endswith(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_headers_over_the_limits_as_the_chapter_says(site):
    server, _ = site
    many = b"".join(b"X-P-%d: %s\r\n" % (i, b"x" * 1000) for i in range(20))
    assert exchange(server, b"GET /api/greet HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n") == (
        b"HTTP/1.1 400 Bad Request\r\n\r\n")
    one = b"X-P: " + b"x" * 20_000 + b"\r\n"
    assert exchange(server, b"GET /api/greet HTTP/1.1\r\nHost: x\r\n" + one + b"\r\n") == b""


@pytest.mark.parametrize("size, status, length", [
    (b"abc", 400, None), (b"-1", 400, None), (b"%d" % (2 ** 31), 400, None),
    (b"9" * 5000, 400, None),  # more digits than int() converts
    (b"0", 200, 0), (b"1", 200, 1), (b"65537", 200, 65537),
])
def test_stream_sizes(site, size, status, length):
    server, _ = site
    got, kind, payload = http(server, "GET", "/stream?size=" + size.decode())
    assert got == status
    if length is not None:
        assert kind == b"application/octet-stream" and payload == b"x" * length


def test_stream_to_a_reader_that_waits_stays_bounded_and_arrives_whole(site):
    server, log = site
    size = 16 * 2**20
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET /stream?size=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     % size)
        log.wait(1, "pauseProducing")  # the kernel buffers are full: it had to stop
        data = b"".join(iter(lambda: sock.recv(1 << 20), b""))
    producer = Measured.made[-1]
    assert data.endswith(b"\r\n\r\n" + b"x" * size)
    assert producer.pauses > 0 and producer.peak <= 64 * 1024 + web.CHUNK
    assert producer.left == 0 and producer.stopped


def test_a_head_request_to_the_stream_ends_at_once_without_errors(site):
    server, _ = site
    with logged_errors() as errors:
        data = exchange(server, b"HEAD /stream?size=16777216 HTTP/1.1\r\nHost: x\r\n"
                                b"Connection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\n")
    assert b"Content-Length: 16777216" in data
    assert errors == []


def test_two_streams_at_once_each_go_at_their_readers_pace(site):
    server, log = site
    with socket.create_connection(server.address, timeout=5) as idle:
        idle.sendall(b"GET /stream?size=67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
        log.wait(1, "pauseProducing")
        status, _, payload = http(server, "GET", "/stream?size=4194304")
        assert status == 200 and payload == b"x" * 4194304
        waiting = Measured.made[-2]
        assert waiting.left > 32 * 2**20 and not waiting.stopped


def test_a_client_that_leaves_stops_the_producer_and_nothing_is_logged(site):
    server, log = site
    with logged_errors() as errors:
        with socket.create_connection(server.address, timeout=2) as sock:
            sock.sendall(b"GET /stream?size=67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(65536)
        log.wait(1, "stopProducing")
        producer = Measured.made[-1]
        left = producer.left
        time.sleep(0.2)  # had it not stopped, it would have gone on meanwhile
    assert producer.stopped and producer.left == left > 60 * 2**20
    assert errors == []


def test_httpchannel_does_not_support_half_close_so_pipes_must_use_http_1_0(site):
    """What the chapter says about `printf ... | nettalk`: nettalk half-closes at the end
    of a pipe; HTTPChannel is not half-closeable, so only a request that ends the
    connection itself (HTTP/1.0, or Connection: close) is answered every time."""
    server, _ = site
    assert not IHalfCloseableProtocol.providedBy(HTTPChannel())
    for request in (b"GET /api/greet HTTP/1.0\r\n\r\n",
                    b"GET /api/greet HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
        for _ in range(20):
            with socket.create_connection(server.address, timeout=2) as sock:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
                data = b"".join(iter(lambda: sock.recv(65536), b""))
            assert data.endswith(b'{"greeting": "Hello, world!"}\n'), data


NETTALK = [sys.executable, str(ROOT / "helpers" / "nettalk.py")]


def test_nettalk_as_the_chapter_prints_it(site):
    server, _ = site
    ok = subprocess.run([*NETTALK, "127.0.0.1", str(server.port)], timeout=10,
                        input=b"GET /api/greet?name=nettalk HTTP/1.0\r\n\r\n", capture_output=True)
    assert ok.returncode == 0 and ok.stdout.endswith(b'{"greeting": "Hello, nettalk!"}\n')
    bad = subprocess.run([*NETTALK, "127.0.0.1", str(server.port)], timeout=10,
                         input=b"HELLO THERE\r\n\r\n", capture_output=True)
    assert bad.stdout == b"HTTP/1.1 400 Bad Request\r\n\r\n"
    typed = subprocess.run([*NETTALK, "--crlf", "127.0.0.1", str(server.port)], timeout=10,
                           input=b"GET /api/greet HTTP/1.0\n\n", capture_output=True)
    assert typed.stdout.endswith(b'{"greeting": "Hello, world!"}\n')


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_as_the_chapter_prints_it(site):
    server, log = site
    url = f"http://127.0.0.1:{server.port}"
    post = subprocess.run([CURL, "-sS", "-i", "-H", "Content-Type: application/json", "-d",
                           '{"name": "Ada"}', f"{url}/api/greet"],
                          capture_output=True, timeout=10)
    assert post.stdout.startswith(b"HTTP/1.1 200 OK")
    assert post.stdout.endswith(b'{"greeting": "Hello, Ada!"}\n')
    form = subprocess.run([CURL, "-sS", "-i", "-d", "not json", f"{url}/api/greet"],
                          capture_output=True, timeout=10)
    assert form.stdout.startswith(b"HTTP/1.1 400 Bad Request")
    slow = subprocess.run([CURL, "-sS", "--limit-rate", "500k", "--max-time", "0.5", "-o",
                           "/dev/null", f"{url}/stream?size=16777216"],
                          capture_output=True, timeout=10)
    assert slow.returncode == 28  # curl's "operation timed out": it left mid-stream
    log.wait(1, "stopProducing")
    producer = Measured.made[-1]
    assert producer.pauses > 0 and producer.stopped and producer.left > 0


def test_fetch_gives_error_statuses_as_responses():
    root = Resource()
    root.putChild(b"greet", web.Greeting())
    with serve("test-web", Site(root)) as server:
        agent = Agent(reactor)
        url = f"http://127.0.0.1:{server.port}"
        response, body = call(web.fetch, agent, b"GET", f"{url}/greet?name=x".encode())
        assert response.code == 200 and json.loads(body) == {"greeting": "Hello, x!"}
        response, body = call(web.fetch, agent, b"GET", f"{url}/nothing".encode())
        assert response.code == 404 and b"No Such Resource" in body


def test_fetch_reads_a_16_mib_stream_whole():
    with serve("test-web", Site(web.Stream())) as server:
        response, body = call(web.fetch, Agent(reactor), b"GET",
                              f"http://127.0.0.1:{server.port}/?size=16777216".encode())
    assert response.code == 200 and body == b"x" * 16777216


def test_fetch_gives_up_on_a_silent_server_and_closes_the_connection():
    log = EventLog()

    class Silent(Protocol):
        def connectionLost(self, reason):
            log.record("server", "connectionLost", why=reason.type.__name__)

    with serve("test-silent", Factory.forProtocol(Silent)) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="no response in 0.2 s"):
            call(web.fetch, Agent(reactor), b"GET",
                 f"http://127.0.0.1:{server.port}/".encode(), time_limit=0.2)
        assert time.monotonic() - started < 1
        log.wait(1, "connectionLost")


class Stall(Resource):
    """Sends its headers and 10 of 1,000 bytes, then nothing; `requests` keeps them."""

    isLeaf = True

    def __init__(self, log):
        super().__init__()
        self.log, self.requests = log, []

    def render_GET(self, request):
        self.requests.append(request)
        request.notifyFinish().addBoth(
            lambda r: self.log.record("server", "ended", ok=r is None))
        request.setHeader(b"content-length", b"1000")
        request.write(b"x" * 10)
        return NOT_DONE_YET


def test_fetch_gives_up_on_a_stalled_body_and_closes_the_connection():
    log = EventLog()
    with serve("test-stall", Site(Stall(log))) as server, logged_errors() as errors:
        with pytest.raises(TimeoutError):
            call(web.fetch, Agent(reactor), b"GET",
                 f"http://127.0.0.1:{server.port}/".encode(), time_limit=0.3)
        assert [e.details for e in log.wait(1, "ended")] == [{"ok": False}]
    assert errors == []


def test_read_body_warns_and_cannot_close_a_stalled_connection_as_the_chapter_says():
    """twisted#8227: readBody with Agent warns, and cancelling it leaves the connection
    open; when the response finally ends, Twisted logs AlreadyCalledError."""
    log, stall = EventLog(), Stall(EventLog())
    stall.log = log
    with serve("test-stall", Site(stall)) as server, logged_errors() as errors:
        url = f"http://127.0.0.1:{server.port}/".encode()
        response = call(Agent(reactor).request, b"GET", url)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            (body,) = call(lambda: [readBody(response)])  # a list: call() must not wait
        assert any("does not have an abortConnection" in str(w.message) for w in caught)
        outcome = []
        call(lambda: body.addBoth(outcome.append).cancel())
        assert isinstance(outcome[0].value, defer.CancelledError)
        with pytest.raises(Exception, match="waited 0.3 s"):
            log.wait(1, "ended", timeout=0.3)  # the connection is still open
        request = stall.requests[-1]
        call(lambda: (request.write(b"x" * 990), request.finish()))
        log.wait(1, "ended")
        deadline = time.monotonic() + 2
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [e.error.split(":")[0] for e in errors] == ["AlreadyCalledError"]


def test_fetch_to_a_port_where_nothing_listens_fails_at_once():
    from twisted.internet.error import ConnectError

    with dead_port() as port:
        started = time.monotonic()
        with pytest.raises(ConnectError):
            call(web.fetch, Agent(reactor), b"GET", f"http://127.0.0.1:{port}/".encode())
        assert time.monotonic() - started < 1


# -- DNS -----------------------------------------------------------------------------


def records():
    return [
        ("example.test", dns.Record_SOA(mname="ns1.example.test", rname="admin.example.test",
                                        minimum=300, expire=86400)),
        ("www.example.test", dns.Record_A("127.0.0.1")),
        ("www.example.test", dns.Record_AAAA("::1")),
        ("web.example.test", dns.Record_CNAME("www.example.test")),
        ("hello.example.test", dns.Record_TXT(b"hello")),
        *[("pool.example.test", dns.Record_A(f"127.0.1.{i}")) for i in range(1, 41)],
    ]


@pytest.fixture
def dns_server():
    log = EventLog()
    udp, tcp = zone.serve_dns("test-dns", zone.TruncatingZoneServer(zone.Zone(records()), log))
    yield udp, tcp, log
    tcp.stop()
    udp.stop()


def udp_query(port, name, record_type, query_id=7):
    query = dns.Message(id=query_id, recDes=0)
    query.addQuery(name, record_type)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query.toStr(), ("127.0.0.1", port))
        data = sock.recv(65535)
    answer = dns.Message()
    answer.fromStr(data)
    return len(data), answer


def tcp_query(port, name, record_type):
    query = dns.Message(id=9, recDes=0)
    query.addQuery(name, record_type)
    data = query.toStr()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(struct.pack("!H", len(data)) + data)  # Int16StringReceiver framing
        size = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))[0]
        reply = sock.recv(size, socket.MSG_WAITALL)
    answer = dns.Message()
    answer.fromStr(reply)
    return answer


def test_serve_dns_puts_udp_and_tcp_on_one_port_and_a_rerun_replaces_both():
    factory = zone.ZoneServer(zone.Zone(records()), EventLog())
    first = zone.serve_dns("test-dns", factory)
    second = zone.serve_dns("test-dns", factory)
    try:
        assert first[0].stopped and first[1].stopped
        assert second[0].port == second[1].port
    finally:
        for server in second:
            server.stop()


def test_serve_dns_tries_another_port_when_the_tcp_number_is_taken(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        number, calls = taken.getsockname()[1], []

        def serve_udp_first_on_the_taken_number(name, protocol):
            calls.append(name)
            return serve_udp(name, protocol, port=number if len(calls) == 1 else 0)

        monkeypatch.setattr(zone, "serve_udp", serve_udp_first_on_the_taken_number)
        udp, tcp = zone.serve_dns("test-dns", zone.ZoneServer(zone.Zone(records()), EventLog()))
        try:
            # a busy machine may hold the next random number for TCP too: more tries, same rule
            assert len(calls) >= 2 and udp.port == tcp.port != number
        finally:
            tcp.stop()
            udp.stop()


def test_the_zone_answers_from_code_case_insensitively(dns_server):
    udp, _, _ = dns_server
    resolver = client.Resolver(servers=[udp.address], timeout=(1,))
    answer, _, _ = call(resolver.lookupAddress, "WWW.Example.TEST")
    assert [rr.payload.dottedQuad() for rr in answer] == ["127.0.0.1"]
    answer, _, _ = call(resolver.lookupAddress, "web.example.test")
    assert [dns.QUERY_TYPES[rr.type] for rr in answer] == ["CNAME", "A", "AAAA"]
    answer, authority, _ = call(resolver.lookupAddress, "hello.example.test")
    assert answer == [] and [rr.type for rr in authority] == [dns.SOA]
    with pytest.raises(DNSNameError):
        call(resolver.lookupAddress, "nope.example.test")


def test_udp_answers_over_512_bytes_are_truncated_and_tcp_gives_them_whole(dns_server):
    udp, tcp, _ = dns_server
    size, answer = udp_query(udp.port, "pool.example.test", dns.A)
    assert answer.trunc and answer.answers == [] and size <= 512
    size, answer = udp_query(udp.port, "www.example.test", dns.A)
    assert not answer.trunc and len(answer.answers) == 1
    assert len(tcp_query(tcp.port, "pool.example.test", dns.A).answers) == 40


def test_twisteds_own_server_still_sends_oversize_udp_answers_whole():
    """twisted#6949, as the chapter shows it: if this fails, Twisted truncates now, and
    section 13 needs rewriting."""
    udp, tcp = zone.serve_dns("test-dns", zone.ZoneServer(zone.Zone(records()), EventLog()))
    try:
        size, answer = udp_query(udp.port, "pool.example.test", dns.A)
    finally:
        tcp.stop()
        udp.stop()
    assert size > 512 and not answer.trunc and len(answer.answers) == 40


def test_the_resolver_asks_again_over_tcp_by_itself(dns_server):
    udp, _, log = dns_server
    resolver = client.Resolver(servers=[udp.address], timeout=(1,))
    answer, _, _ = call(resolver.lookupAddress, "pool.example.test")
    assert len(answer) == 40
    assert [e.what for e in log] == ["query over UDP", "query over TCP"]


def test_garbage_datagrams_never_stop_the_port(dns_server):
    """Each of 300 random datagrams is followed by a real query from the same socket, which
    must be answered (replies to the garbage, REFUSED, are skipped by id)."""
    udp, _, _ = dns_server
    rng = random.Random(20)
    junk = [b"", b"hello", b"this is not a DNS message\n", b"\xff" * 12, b"\x00" * 512]
    junk += [rng.randbytes(rng.randrange(1, 600)) for _ in range(300)]
    with logged_errors() as errors, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        for n, datagram in enumerate(junk):
            query = dns.Message(id=n, recDes=0)
            query.addQuery("www.example.test", dns.A)
            sock.sendto(datagram, udp.address)
            sock.sendto(query.toStr(), udp.address)
            answer = dns.Message()
            while True:
                data = sock.recv(65535)
                with contextlib.suppress(Exception):  # a reply to garbage may not parse
                    answer.fromStr(data)
                    if answer.id == n and answer.answers:
                        break
            assert len(answer.answers) == 1, (n, datagram)
    assert errors == []


def test_garbage_over_tcp_does_not_stop_the_server(dns_server):
    _, tcp, _ = dns_server
    with logged_errors() as errors:
        for junk in (struct.pack("!H", 5) + b"hello", b"GET / HTTP/1.1\r\n\r\n", b"\x00\x00"):
            with socket.create_connection(tcp.address, timeout=1) as sock:
                sock.sendall(junk)
        assert len(tcp_query(tcp.port, "pool.example.test", dns.A).answers) == 40
    assert errors == []


def test_a_resolver_with_a_short_timeout_gives_up_on_a_deaf_server():
    with serve_udp("test-deaf", DatagramProtocol()) as deaf:
        resolver = client.Resolver(servers=[deaf.address], timeout=(0.2,))
        started = time.monotonic()
        with pytest.raises(defer.TimeoutError):
            call(resolver.lookupAddress, "www.example.test")
        assert time.monotonic() - started < 1


def dig(port, *args):
    result = subprocess.run([DIG, "@127.0.0.1", "-p", str(port), "+time=1", "+tries=1", *args],
                            capture_output=True, text=True, timeout=10)
    return result.stdout + result.stderr


@pytest.mark.skipif(DIG is None, reason="dig is not installed (Debian: bind9-dnsutils)")
def test_dig_as_the_chapter_prints_it(dns_server):
    udp, _, _ = dns_server
    assert dig(udp.port, "www.example.test", "+short").split() == ["127.0.0.1"]
    assert dig(udp.port, "www.example.test", "AAAA", "+short").split() == ["::1"]
    assert "status: NXDOMAIN" in dig(udp.port, "nope.example.test")
    retried = dig(udp.port, "pool.example.test")
    assert ";; Truncated, retrying in TCP mode." in retried and "ANSWER: 40" in retried
    assert "(TCP)" in retried and "malformed" not in retried
    ignored = dig(udp.port, "pool.example.test", "+ignore")
    assert "flags: qr aa tc;" in ignored and "ANSWER: 0" in ignored
    assert len(dig(udp.port, "pool.example.test", "+tcp", "+short").split()) == 40


def test_nettalk_u_garbage_gets_nothing_back_and_dig_still_works(dns_server):
    udp, _, _ = dns_server
    talk = subprocess.run([*NETTALK, "-u", "--wait", "0.3", "127.0.0.1", str(udp.port)],
                          input=b"hello\n", capture_output=True, timeout=10)
    assert talk.returncode == 0 and talk.stdout == b""
    _, answer = udp_query(udp.port, "www.example.test", dns.A)
    assert len(answer.answers) == 1
