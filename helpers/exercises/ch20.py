"""Checks for chapter 20 (the protocol stack: HTTP with twisted.web, DNS with twisted.names).

20.1 `Counter`: a Resource keeping a count from 0. GET: 200 {"count": N}. POST {"add": K},
     K an int (not bool, float, str): adds K, 200 {"count": N}. Any other POST body: 400
     {"error": "..."}, count unchanged. Every answer Content-Type application/json; other
     methods refused (Twisted's 405 or 501); each Counter() its own count.
20.2 `Download(open_chunks)`: each GET streams what open_chunks() yields, in order, as
     application/octet-stream, then finishes; takes a chunk only when the transport wants
     more (a producer registered on the request); when the client leaves, takes no more
     and calls the iterator's close(); several downloads at once, each at its own pace.
20.3 `ipv4_addresses(server, name, timeout)` -> Deferred: the A records of `name` as
     strings (CNAME followed, [] for a name without A records); DNSNameError for a name
     that does not exist; a TimeoutError after about `timeout` s when the server is silent;
     every address of an answer too big for UDP.

20.1 and 20.2 serve the answer on a Site of the checker's own on 127.0.0.1 and talk to it
over real connections: http.client for whole exchanges, plain sockets for a client that
reads nothing or leaves. Each check of 20.1 and 20.2 starts with a GET, so that a stub's
NotImplementedError (which Twisted logs) is seen in every check. 20.3 runs the chapter's
TruncatingZoneServer (loaded from the notebook) and a UDP port that never answers; after a
lookup that fired, it waits for the timers the answer left running (a deadline of its own
never called off), so that their errors are reported by the lookup's check, not a later one.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

# The framework watches Twisted's log only once twisted.logger is imported; the first check
# of 20.1 may run before anything else has imported it (before the reactor has started).
import twisted.logger  # noqa: F401

from .. import reactor as _reactor
from ..events import EventLog, EventTimeout
from ..notebook_code import load
from ..servers import serve, serve_udp
from ..twisted_log import logged_exceptions
from . import CheckFailed, exercise, fail, require, settle, show
from .wire import Client

TIMEOUT = 1.0  # how long a client waits for an answer (loopback: plenty)
QUIET = 0.3  # a download that takes no chunk for this long has settled
SETTLE_LIMIT = 2.0  # the longest a check waits for a download to settle
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK = NOTEBOOKS / "20_protocol_stack.ipynb"


def _site(resources: dict):
    """A Site whose root has `resources` ({b"name": resource}) as children."""
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    root = Resource()
    for name, resource in resources.items():
        root.putChild(name, resource)
    return Site(root)


def _make(answer, *args):
    """answer(*args), or fail saying what construction raised."""
    try:
        return answer(*args)
    except NotImplementedError:
        raise
    except Exception as exc:
        fail(f"making the resource failed: {type(exc).__name__}: {exc}")


# -- this chapter's harness (a job no other checker has): one HTTP exchange, described

NOT_JSON = object()


@dataclass(frozen=True)
class Reply:
    """What one HTTP request got: status, reason, Content-Type, body (and Allow)."""

    method: str
    path: str
    sent: bytes | None
    status: int
    reason: str
    type: str | None
    body: bytes
    allow: str | None = None

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return NOT_JSON

    @property
    def request(self) -> str:
        return f"{self.method} {self.path}" + (f" with {show(self.sent)}" if self.sent else "")

    def __str__(self):
        kind = self.type or "no Content-Type"
        text = f"{self.status} {self.reason} ({kind}) {show(self.body)}"
        if b"Request did not return bytes" in self.body:
            text += " (Twisted's page for a render method that returned str)"
        elif b"Processing Failed" in self.body:
            text += " (Twisted's page for a render method that raised)"
        return text


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 content_type: str | None = "application/json") -> Reply:
    """One request on a new connection (http.client, TIMEOUT s); fail if no answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    headers = {"Content-Type": content_type} if body is not None and content_type else {}
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        data = response.read()
        return Reply(method, path, body, response.status, response.reason,
                     response.getheader("Content-Type"), data, response.getheader("Allow"))
    except TimeoutError:
        fail(f"{method} {path}: no complete answer within {TIMEOUT:g} s")
    except (ConnectionError, http.client.HTTPException) as exc:
        fail(f"{method} {path}: the connection ended without a complete answer"
             f" ({type(exc).__name__}: {exc})")
    finally:
        conn.close()


# -- 20.1 -------------------------------------------------------------------

counter = exercise("20.1", "A JSON counter")

BAD_BODIES = [
    (b"add=5", "a form, not JSON"),
    (b"", "an empty body"),
    ("{\"add\": 5, \"note\": \"été\"}".encode("latin-1"), "Latin-1 bytes, not UTF-8"),
    (b"[5]", "a JSON array, not an object"),
    (b"5", "a JSON number, not an object"),
    (b'{"count": 5}', 'an object without "add"'),
    (b'{"add": "5"}', "a string, not an integer"),
    (b'{"add": true}', "true is a JSON boolean, not an integer"),
    (b'{"add": 2.5}', "a float, not an integer"),
    (b'{"add": 5.0}', "5.0 is a JSON float, not an integer"),
    (b'{"add": null}', "null, not an integer"),
]


class _Counters:
    """Two answers mounted at /counter and /other; each call is one request."""

    def __init__(self, answer):
        self.answer = answer

    def __enter__(self):
        resources = {b"counter": _make(self.answer), b"other": _make(self.answer)}
        self.server = serve("check-20.1", _site(resources))
        return self

    def __exit__(self, *exc):
        self.server.stop()

    def __call__(self, method, path="/counter", body=None):
        return http_request(self.server.port, method, path, body)

    def count(self, path="/counter", after="") -> int:
        """GET path; fail unless it answers 200 {"count": an int}; return the count."""
        reply = self("GET", path)
        value = reply.json
        require(reply.status == 200 and isinstance(value, dict)
                and type(value.get("count")) is int,
                f"GET {path}{after} answered {reply}, expected 200 with {{\"count\": N}}")
        return value["count"]


def _post(counters, add, path="/counter"):
    return counters("POST", path, json.dumps({"add": add}).encode())


@counter.check("get", "GET answers 200 with {\"count\": 0}",
               hint="render_GET returns bytes: the JSON text, encoded.")
def _get(answer):
    with _Counters(answer) as counters:
        reply = counters("GET")
        require(reply.status == 200 and reply.json == {"count": 0},
                f"GET /counter answered {reply}, expected 200 with {{\"count\": 0}}")


@counter.check("adds", "POST {\"add\": K} adds K and answers 200 with the new count",
               hint="request.content is a file holding the body; parse it, add, and answer"
                    " with the count after the addition.")
def _adds(answer):
    with _Counters(answer) as counters:
        counters("GET")
        for add, expected in [(5, 5), (-2, 3), (10**20, 10**20 + 3)]:
            reply = _post(counters, add)
            require(reply.status == 200 and reply.json == {"count": expected},
                    f"{reply.request} answered {reply}, expected 200 with"
                    f" {{\"count\": {expected}}}")
        got = counters.count(after=" after the additions")
        require(got == 10**20 + 3, f"after adding 5, -2 and 10**20, GET /counter gave"
                f" {got}, expected {10**20 + 3}")


@counter.check("rejects", "a POST body that is not {\"add\": integer} gets 400 with"
               " {\"error\": ...}",
               hint="Decide what a good body is, check it before using it, and answer every"
                    " other body with a client error: not JSON, not an object, no \"add\", or"
                    " a value of another type (in Python, True is an int).")
def _rejects(answer):
    with _Counters(answer) as counters:
        counters("GET")
        for body, why in BAD_BODIES:
            reply = counters("POST", "/counter", body)
            value = reply.json
            require(reply.status == 400 and isinstance(value, dict)
                    and isinstance(value.get("error"), str) and value["error"],
                    f"{reply.request} ({why}) answered {reply}, expected 400 with"
                    " {\"error\": \"...\"}")


@counter.check("unchanged", "a rejected POST leaves the count as it was",
               hint="Change the count only once the body has passed every check.")
def _unchanged(answer):
    with _Counters(answer) as counters:
        counters("GET")
        _post(counters, 2)
        before = counters.count(after=" after adding 2")
        for body, why in BAD_BODIES:
            counters("POST", "/counter", body)
            got = counters.count(after=f" after POST {show(body)}")
            require(got == before, f"POST /counter with {show(body)} ({why}) changed the count"
                    f" from {before} to {got}")


@counter.check("json-type", "every answer, errors included, is Content-Type:"
               " application/json",
               hint="Twisted's default Content-Type is text/html; set the header on every"
                    " answer, the error answers too.")
def _json_type(answer):
    with _Counters(answer) as counters:
        replies = [counters("GET"), _post(counters, 1), counters("POST", "/counter", b"[1]"),
                   counters("POST", "/counter", b"{")]
        replies += [counters("POST", "/counter", body) for body, _ in BAD_BODIES]
        for reply in replies:
            kind = (reply.type or "").split(";")[0].strip()
            require(kind == "application/json",
                    f"{reply.request} answered {reply}: Content-Type"
                    f" {reply.type or 'missing'}, expected application/json")


@counter.check("other-methods", "other methods are refused, and change nothing",
               hint="Define a render_ method for each method you accept, and no catch-all:"
                    " Twisted refuses the others itself.")
def _other_methods(answer):
    with _Counters(answer) as counters:
        before = counters.count()
        for method in ("PUT", "DELETE"):
            reply = counters(method, "/counter", json.dumps({"add": 1}).encode())
            require(reply.status in (405, 501),
                    f"{reply.request} answered {reply}, expected it refused (405 or 501)")
        got = counters.count(after=" after PUT and DELETE")
        require(got == before, f"PUT and DELETE changed the count from {before} to {got}")


@counter.check("separate", "each Counter() has its own count",
               hint="Keep the count in the instance, made in __init__, not in something the"
                    " class shares.")
def _separate(answer):
    with _Counters(answer) as counters:
        counters.count()
        _post(counters, 1)
        _post(counters, 1)
        _post(counters, 5, "/other")
        mine, other = counters.count(), counters.count("/other")
        require((mine, other) == (2, 5),
                f"two counters: after adding 1 and 1 at /counter and 5 at /other, GET gave"
                f" {mine} and {other}, expected 2 and 5")


# -- 20.2 -------------------------------------------------------------------

download = exercise("20.2", "A download that waits for its reader")

CHUNK = 16 * 1024
COUNT = 1024  # 16 MiB: far more than the kernel buffers of a loopback connection hold
WHOLE = 256  # the chunks of the download that is read to the end (4 MiB)
BUFFER_SIZE = 64 * 1024  # FileDescriptor.bufferSize: above it, the transport pauses
BOUND = BUFFER_SIZE + 2 * CHUNK  # what may wait in the transport after any write


def chunk(n: int) -> bytes:
    """The n-th chunk: its number, then filler, CHUNK bytes."""
    head = b"chunk %08d " % n
    return head + b"." * (CHUNK - len(head))


class Source:
    """The iterator open_chunks() returns: yields `count` chunks, counts what is taken,
    notes close()."""

    def __init__(self, count: int):
        self.count, self.taken, self.closed = count, 0, False
        self.taken_when_lost: int | None = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.closed or self.taken >= self.count:
            raise StopIteration
        self.taken += 1
        return chunk(self.taken - 1)

    def close(self):
        self.closed = True


@dataclass
class _Served:
    """The answer on a Site: the Sources it opened, what waited after each write."""

    log: EventLog = field(default_factory=EventLog)  # "opened" and "lost", per Source
    sources: list = field(default_factory=list)
    peak: int = 0  # the most bytes waiting in a transport after a write
    rendering: object = None  # the request being rendered now


def _request_class(served: _Served, buffered):
    from twisted.web import server

    class Request(server.Request):  # (the name a reader may see in a logged error)
        source = None  # the Source that open_chunks() made for this request

        def render(self, resource):
            served.rendering = self
            try:
                super().render(resource)
            finally:
                served.rendering = None

        def write(self, data):
            super().write(data)
            channel = self.channel
            if channel is not None and channel.transport is not None:
                served.peak = max(served.peak, buffered(channel.transport))

        def connectionLost(self, reason):
            if self.source is not None and self.source.taken_when_lost is None:
                self.source.taken_when_lost = self.source.taken
                served.log.record("server", "lost", of=id(self.source))
            super().connectionLost(reason)

    return Request


class _Downloads:
    """The answer served at /download; each GET opens a Source (of the next of `counts`
    chunks, then of COUNT)."""

    def __init__(self, answer, counts):
        self.answer, self.counts, self.served = answer, list(counts), _Served()

    def open_chunks(self):
        source = Source(self.counts.pop(0) if self.counts else COUNT)
        self.served.sources.append(source)
        if self.served.rendering is not None:
            self.served.rendering.source = source
        self.served.log.record("server", "opened")
        return source

    def __enter__(self):
        buffered = load(NOTEBOOKS / "12_flow_control.ipynb", "flow_control").buffered
        site = _site({b"download": _make(self.answer, self.open_chunks)})
        site.requestFactory = _request_class(self.served, buffered)
        self.server = serve("check-20.2", site)
        return self

    def __exit__(self, *exc):
        self.server.stop()
        # An answer that runs on after its client left finds its iterator closed now, and
        # whatever it then does (or logs) happens within this check, not the next one.
        for source in self.served.sources:
            source.close()
        _reactor.call(_turns)

    def source(self, n: int, what: str) -> Source:
        """The n-th Source opened (from 0), waiting up to TIMEOUT for its GET to open it."""
        try:
            self.served.log.wait(n + 1, "opened", timeout=TIMEOUT)
        except EventTimeout:
            fail(f"{what}: open_chunks() was not called (each GET /download calls it once)")
        return self.served.sources[n]

    def reader(self) -> Reply:
        return http_request(self.server.port, "GET", "/download")

    def silent(self) -> Client:
        """A client that sends a GET and reads nothing (a small receive buffer)."""
        client = Client(self.server.port, timeout=TIMEOUT, rcvbuf=64 * 1024)
        client.send(b"GET /download HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a GET")
        return client

    def first_get(self) -> None:
        """A GET whose status line is awaited, then dropped: every check starts with one,
        so that a stub's NotImplementedError (logged by Twisted) is seen in each."""
        with self.silent() as client:
            data = client.read_until(b"\r\n").data
        status = data.partition(b"\r\n")[0].decode("latin-1")
        if not data and self.served.sources and not self.served.sources[0].taken:
            fail(f"GET /download answered nothing within {TIMEOUT:g} s, expected 200 OK:"
                 " open_chunks() was called, but your resource took no chunk from its"
                 " iterator, so nothing was written (the status line goes out with the"
                 " first write)")
        require(status.split(" ")[1:2] == ["200"],
                f"GET /download answered {status or 'nothing'}, expected 200 OK")
        self.source(0, "GET /download")


def _turns():
    """A Deferred that fires after a few turns of the reactor (0.05 s)."""
    from twisted.internet import reactor, task

    return task.deferLater(reactor, 0.05, lambda: None)


def _settle(source: Source) -> int:
    """Wait until `source` has given no chunk for QUIET s (at most SETTLE_LIMIT); the
    number of chunks taken then. (Nothing signals "nothing more will happen": this
    watches for it.)"""
    deadline = time.monotonic() + SETTLE_LIMIT
    last, since = source.taken, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if source.taken != last:
            last, since = source.taken, time.monotonic()
        elif time.monotonic() - since >= QUIET:
            break
    return source.taken


def _expect_whole(reply: Reply, count: int, what: str):
    require(reply.status == 200,
            f"{what}: GET /download answered {reply}, expected 200 and the {count} chunks")
    expected = b"".join(chunk(n) for n in range(count))
    if reply.body != expected:
        got = len(reply.body)
        first = next((i for i in range(min(got, len(expected)))
                      if reply.body[i] != expected[i]), min(got, len(expected)))
        fail(f"{what}: the body had {got:,} bytes, expected {len(expected):,} ({count}"
             f" chunks of {CHUNK:,} bytes); it differs from byte {first:,} on (chunk"
             f" {first // CHUNK}): got {show(reply.body[first:first + 24])}")


def _whole_download(downloads: _Downloads, count: int, what: str) -> Reply:
    sources = downloads.served.sources
    before = len(sources)
    try:
        reply = downloads.reader()
    except CheckFailed as exc:
        taken = sources[before].taken if len(sources) > before else 0
        if taken < count:
            fail(f"{what}: {exc}; your resource had taken {taken} of the {count} chunks"
                 " from the iterator, and took no more (a push producer writes until the"
                 " transport pauses it, and goes on when it is resumed)")
        fail(f"{what}: {exc} (after the last chunk, a download unregisters its producer"
             " and finishes the request)")
    opened = len(sources) - before
    require(opened == 1, f"{what}: one GET /download called open_chunks() {opened} times,"
            " expected once (each call opens the file again)")
    _expect_whole(reply, count, what)
    return reply


@download.check("whole", "a reader gets every chunk, in order, as"
                " application/octet-stream, and the response ends",
                hint="Write each chunk as it comes from the iterator; when it is exhausted,"
                     " unregister the producer and finish the request.")
def _whole(answer):
    with _Downloads(answer, [WHOLE]) as downloads:
        reply = _whole_download(downloads, WHOLE, "a client that reads everything")
        kind = (reply.type or "").split(";")[0].strip()
        require(kind == "application/octet-stream",
                f"GET /download answered with Content-Type {reply.type or 'missing'},"
                " expected application/octet-stream")


@download.check("paced", "a client that reads nothing: chunks are taken only as the"
                " transport wants them",
                hint="Register a push producer on the request; take and write the next chunk"
                     " only while it is not paused, and go on in resumeProducing().")
def _paced(answer):
    with _Downloads(answer, [8]) as downloads:
        downloads.first_get()
        downloads.served.peak = 0
        with downloads.silent():
            source = downloads.source(1, "a client that reads nothing")
            taken = _settle(source)
            peak = downloads.served.peak
        require(peak <= BOUND and taken < COUNT,
                f"with a client that read nothing, your resource took {taken:,} of {COUNT:,}"
                f" chunks, and up to {peak // 1024:,} KiB waited in the server's transport"
                f" after a write (at most {BOUND // 1024} KiB if nothing is written while"
                " paused: the transport pauses its producer above 64 KiB)")


@download.check("stops", "when the client leaves: no more chunks taken, and the iterator"
                " closed",
                hint="When the connection is lost, the transport calls the producer's"
                     " stopProducing(), and notifyFinish() fails: stop there for good, and"
                     " close the iterator.")
def _stops(answer):
    with _Downloads(answer, [8]) as downloads:
        downloads.first_get()
        with downloads.silent() as client:
            source = downloads.source(1, "a client that leaves after 64 KiB")
            got = client.read_exactly(64 * 1024)
            require(got.ending == "complete", "a client reading 64 KiB of the download:"
                    f" {len(got.data):,} bytes, then {got.ending}; your resource had taken"
                    f" {source.taken} chunk{'s' * (source.taken != 1)} from the iterator,"
                    " and took no more (a push producer writes until the transport pauses"
                    " it, and goes on when it is resumed)")
        # closed with unread bytes: the kernel resets the connection
        require(source.taken < COUNT, f"your resource had taken all {COUNT:,} chunks before"
                " a client that read 64 KiB left: nothing waited for the reader")
        try:
            downloads.served.log.wait(
                1, lambda e: e.what == "lost" and e.details["of"] == id(source),
                timeout=TIMEOUT)
        except EventTimeout:
            fail(f"a client left after 64 KiB, but the server did not notice within"
                 f" {TIMEOUT:g} s")
        at_loss = source.taken_when_lost
        after = _settle(source)
        require(after <= at_loss + 1,
                f"a client left after 64 KiB, when your resource had taken {at_loss:,}"
                f" chunks; it went on to take {after:,} (of {COUNT:,})")
        require(source.closed, "a client left after 64 KiB: the iterator's close() was"
                " not called")


def _body_chunks(client: Client, want: int, limit: float) -> list[int]:
    """Read a response (HTTP/1.1, chunked or not) until its body holds `want` whole chunks
    or `limit` s pass; the numbers of the chunks read, in order."""
    deadline = time.monotonic() + limit

    def left() -> float:
        return max(0.01, deadline - time.monotonic())

    head, body = client.read_until(b"\r\n\r\n", left()), b""
    if head.ending != "complete":
        return []
    if b"transfer-encoding: chunked" not in head.data.lower():
        body = client.read_exactly(want * CHUNK, left()).data
    while b"transfer-encoding: chunked" in head.data.lower() and len(body) < want * CHUNK:
        size_line = client.read_until(b"\r\n", left())
        size = int(size_line.data.split(b";")[0].strip() or b"0", 16)
        if size_line.ending != "complete" or not size:
            break
        chunk = client.read_exactly(size + 2, left())  # and its CRLF
        if chunk.ending != "complete":
            break
        body += chunk.data[:-2]
    return [int(body[n * CHUNK + 6:n * CHUNK + 14]) for n in range(len(body) // CHUNK)
            if body[n * CHUNK:n * CHUNK + 6] == b"chunk "]


@download.check("independent", "two downloads at once, each at its own reader's pace",
                hint="Keep each download's state (request, iterator, paused or not) in an"
                     " object of its own, made in render_GET, not in the resource.")
def _independent(answer):
    with _Downloads(answer, [8, COUNT, 64]) as downloads:
        downloads.first_get()
        with downloads.silent() as client:
            _settle(downloads.source(1, "a client that reads nothing"))
            _whole_download(downloads, 64, "while another client's download was paused,"
                                           " a second client that reads everything")
            want = 300  # more than the kernel buffers held: the first download must resume
            numbers = _body_chunks(client, want, SETTLE_LIMIT)
        expected = list(range(len(numbers)))
        require(numbers == expected, f"after a second download, the first client (which"
                f" then read) got the chunks numbered {_runs(numbers)}, expected 0, 1, 2, ...")
        require(len(numbers) >= want, f"after a second download, the first client read, and"
                f" got {len(numbers)} chunks in {SETTLE_LIMIT:g} s, then nothing more: its"
                " download did not go on at its reader's pace")


def _runs(numbers: list[int]) -> str:
    """[0, 1, 2, 7, 8] as "0-2, 7-8" (at most a few runs shown)."""
    runs, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            runs.append(f"{start}-{n}" if n != start else f"{start}")
            start = None
    return ", ".join(runs[:4]) + (", ..." if len(runs) > 4 else "") if runs else "(none)"


# -- 20.3 -------------------------------------------------------------------

lookup = exercise("20.3", "IPv4 addresses, with a deadline")

LIMIT = 2.0  # how long a check waits for the answer's Deferred
ASK_TIMEOUT = 1.0  # the `timeout` given to the answer when the server does answer
ZONE = "example.test"


def _records():
    from twisted.names import dns

    return [
        (ZONE, dns.Record_SOA(mname="ns1.example.test", rname="admin.example.test",
                              serial=1, refresh=3600, retry=600, expire=86400, minimum=300)),
        (ZONE, dns.Record_NS("ns1.example.test")),
        ("ns1.example.test", dns.Record_A("127.0.0.1")),
        ("www.example.test", dns.Record_A("127.0.0.1", ttl=300)),
        ("www.example.test", dns.Record_AAAA("::1", ttl=300)),
        ("web.example.test", dns.Record_CNAME("www.example.test", ttl=300)),
        ("hello.example.test", dns.Record_TXT(b"hello from twisted.names", ttl=300)),
        *[("multi.example.test", dns.Record_A(f"192.0.2.{i}", ttl=300)) for i in (12, 3, 7)],
        *[("pool.example.test", dns.Record_A(f"10.0.1.{i}", ttl=300)) for i in range(1, 41)],
    ]


class _DnsServer:
    """The chapter's TruncatingZoneServer on UDP and TCP, one port number; `log` holds the
    queries it received."""

    def __enter__(self):
        zone = load(NOTEBOOK, "dns_zone")
        self.log = EventLog()
        factory = zone.TruncatingZoneServer(zone.Zone(_records()), self.log)
        self.udp, self.tcp = zone.serve_dns("check-20.3", factory)
        return self

    def __exit__(self, *exc):
        self.tcp.stop()
        self.udp.stop()

    @property
    def address(self):
        return ("127.0.0.1", self.udp.port)

    def unasked(self) -> str:
        """For a failure's message: what the server says about being asked."""
        if len(self.log):
            return ""
        return "; the DNS server at `server` received no query: your code asked elsewhere"


def _call(name, timeout, server="server") -> str:
    return f"ipv4_addresses({server}, {name!r}, {timeout})"


def _ask(answer, server, name, timeout=None, timers=True):
    """The outcome of answer(server, name, timeout) (ASK_TIMEOUT if not given). With
    `timers`, then wait for the timers it left running, if due soon: see _late_timers."""
    from twisted.internet import reactor

    timeout = ASK_TIMEOUT if timeout is None else timeout
    _reactor.start()
    before = set(_reactor.call(reactor.getDelayedCalls))
    outcome = settle(lambda: answer(server, name, timeout), limit=LIMIT,
                     what=f"ipv4_addresses({server!r}, {name!r}, {timeout})")
    if timers and outcome.kind in ("fired", "failed"):
        _late_timers(before, _call(name, timeout), timeout, outcome)
    return outcome


def _late_timers(before, call, timeout, outcome):
    """Wait for the timers started during the call and still running, if due within
    `timeout` + 0.5 s (a deadline of the answer's own), and fail if one went off with an
    error: a deadline left running errbacks a Deferred that has already fired. (Waiting
    keeps the error in this check, not in a later one, or in a later cell.)"""
    from twisted.internet import reactor, task

    def left():
        now = reactor.seconds()
        return [call.getTime() - now for call in reactor.getDelayedCalls()
                if call not in before and call.active()]

    due = [t for t in _reactor.call(left) if t <= timeout + 0.5]
    if not due:
        return
    with logged_exceptions() as logged:
        settle(lambda: task.deferLater(reactor, max(due) + 0.05, lambda: None),
               limit=max(due) + 1)
    if logged:
        fail(f"{call}: the Deferred {outcome}; then a timer your code had left running"
             " went off, with an error (a Deferred fires only once: once it has fired, its"
             " deadline has nothing left to do)")


def _not_a_deferred(call, outcome):
    if outcome.kind in ("returned", "raised"):
        fail(f"{call} {outcome}, expected it to return a Deferred")


def _expect(answer, name, expected, why=""):
    with _DnsServer() as dns_server:
        outcome = _ask(answer, dns_server.address, name)
    call = _call(name, ASK_TIMEOUT)
    _not_a_deferred(call, outcome)
    require(outcome.kind == "fired", f"{call}: the Deferred {outcome}, expected it to"
            f" fire with {sorted(expected)}{why}{dns_server.unasked()}")
    value = outcome.value
    require(isinstance(value, list), f"{call}: the Deferred fired with {show(value)}"
            f" ({type(value).__name__}), expected a list of strings such as '127.0.0.1'")
    require(all(isinstance(v, str) for v in value),
            f"{call}: the Deferred fired with {show(value)}, expected strings such as"
            " '127.0.0.1'")
    require(sorted(value) == sorted(expected), f"{call}: the Deferred fired with"
            f" {show(value)}, expected {sorted(expected)}{why}{dns_server.unasked()}")


@lookup.check("addresses", "the A records of a name, as strings",
              hint="Ask the given server for the A records (a Resolver of your own, with"
                   " that server only); keep the records of type A; an A record's address"
                   " is 4 packed bytes, and the record has a method that gives the text.")
def _addresses(answer):
    _expect(answer, "www.example.test", ["127.0.0.1"],
            " (www also has an AAAA record, ::1, which is not an IPv4 address)")
    _expect(answer, "multi.example.test", ["192.0.2.12", "192.0.2.3", "192.0.2.7"])


@lookup.check("cname", "an alias gives the addresses of the name it points to",
              hint="The answer to an A query for an alias holds the CNAME record and then"
                   " the target's records, of several types: keep only the A records.")
def _cname(answer):
    _expect(answer, "web.example.test", ["127.0.0.1"],
            " (web is a CNAME for www; the answer also carries www's AAAA record)")


@lookup.check("no-a-record", "a name without A records gives []",
              hint="A name that exists without the type asked for is a normal, empty"
                   " answer, not an error.")
def _no_a_record(answer):
    _expect(answer, "hello.example.test", [], " (hello has a TXT record only)")


@lookup.check("nxdomain", "a name that does not exist fails with DNSNameError",
              hint="Let the resolver's failure for a missing name through, rather than"
                   " turning every failure into an empty list.")
def _nxdomain(answer):
    from twisted.names.error import DNSNameError

    with _DnsServer() as dns_server:
        outcome = _ask(answer, dns_server.address, "nope.example.test")
    call = _call("nope.example.test", ASK_TIMEOUT)
    _not_a_deferred(call, outcome)
    require(outcome.kind == "failed" and outcome.is_error(DNSNameError),
            f"{call}: the Deferred {outcome}, expected it to fail with DNSNameError"
            f" (the server answers NXDOMAIN){dns_server.unasked()}")


@lookup.check("truncated", "an answer too big for UDP still gives every address",
              hint="A truncated UDP answer carries no records: the resolver's lookup methods"
                   " ask again over TCP; a hand-made UDP query does not.")
def _truncated(answer):
    _expect(answer, "pool.example.test", [f"10.0.1.{i}" for i in range(1, 41)],
            " (40 addresses: the server's UDP answer is truncated, and the whole answer"
            " comes over TCP)")


@lookup.check("timeout", "a silent server: a TimeoutError after about `timeout` seconds",
              hint="A resolver's timeout is a sequence of seconds, one per attempt; the"
                   " default adds up to a minute.")
def _timeout(answer):
    from twisted.internet import defer
    from twisted.internet.protocol import DatagramProtocol

    with serve_udp("check-20.3-deaf", DatagramProtocol()) as deaf:
        started = time.monotonic()
        outcome = _ask(answer, deaf.address, "www.example.test", 0.3, timers=False)
        took = time.monotonic() - started
    call = "ipv4_addresses(silent server, 'www.example.test', 0.3)"
    _not_a_deferred(call, outcome)
    if outcome.kind == "pending":
        fail(f"{call}: the Deferred had not fired after {LIMIT:g} s, expected a TimeoutError"
             " after about 0.3 s")
    require(outcome.kind == "failed" and outcome.is_error((defer.TimeoutError, TimeoutError)),
            f"{call}: the Deferred {outcome}, expected it to fail with TimeoutError")
    require(0.2 <= took <= 1.5, f"{call}: it failed after {took:.1f} s, expected about 0.3 s")
