"""Reference solutions for chapter 20 (the protocol stack).

Run through the chapter's checkers by tests/test_exercises.py:
``check("20.1", SOLUTIONS["20.1"]).passed`` is True.
"""

from __future__ import annotations

import json

from twisted.internet.interfaces import IPushProducer
from twisted.names import client, dns
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

# -- 20.1 -------------------------------------------------------------------


def json_response(request, code, value):
    """Set the status `code` and a JSON Content-Type; return `value` as JSON bytes."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode("utf-8") + b"\n"


class Counter(Resource):
    """GET: {"count": N}. POST {"add": K} (K an int, not a bool): adds K. Anything else
    POSTed: 400 with {"error": ...}, and the count stays as it was."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.count = 0  # per instance: each Counter() counts for itself

    def render_GET(self, request):
        return json_response(request, 200, {"count": self.count})

    def render_POST(self, request):
        try:
            body = json.loads(request.content.read())
        except ValueError as e:  # not JSON, or not UTF-8 (UnicodeDecodeError)
            return json_response(request, 400, {"error": f"the body is not JSON: {e}"})
        add = body.get("add") if isinstance(body, dict) else None
        if type(add) is not int:  # isinstance(True, int) is True: bools are refused here
            return json_response(request, 400, {"error": 'expected {"add": an integer}'})
        self.count += add  # only now, once the body has passed every check
        return json_response(request, 200, {"count": self.count})


# -- 20.2 -------------------------------------------------------------------


@implementer(IPushProducer)
class ChunkProducer:
    """Writes the chunks of `chunks` to `request` while the transport wants more."""

    def __init__(self, request, chunks):
        self.request, self.chunks = request, chunks
        self.paused = self.done = False

    def resumeProducing(self):
        self.paused = False
        while not (self.paused or self.done):
            try:
                chunk = next(self.chunks)
            except StopIteration:
                self.finish()
                return
            self.request.write(chunk)  # may call pauseProducing() before it returns

    def pauseProducing(self):
        self.paused = True

    def stopProducing(self):  # the client went away: take nothing more, ever
        self.close()

    def finish(self):
        self.close()
        self.request.unregisterProducer()
        self.request.finish()

    def close(self):
        if not self.done:
            self.done = True
            close = getattr(self.chunks, "close", None)
            if close is not None:
                close()


class Download(Resource):
    """GET: what open_chunks() yields, chunk by chunk, at the reader's pace."""

    isLeaf = True

    def __init__(self, open_chunks):
        super().__init__()
        self.open_chunks = open_chunks

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/octet-stream")
        producer = ChunkProducer(request, iter(self.open_chunks()))  # one per download
        request.registerProducer(producer, True)
        producer.resumeProducing()
        return NOT_DONE_YET


# -- 20.3 -------------------------------------------------------------------


def ipv4_addresses(server, name, timeout):
    """The IPv4 addresses of `name` according to the DNS server at `server`.

    One attempt of `timeout` seconds (a Resolver's timeout is a sequence, one value per
    attempt). lookupAddress asks over TCP when the UDP answer is truncated, and fails with
    DNSNameError for NXDOMAIN; a CNAME's target records come in the same answer.
    """
    resolver = client.Resolver(servers=[server], timeout=(timeout,))

    def addresses(result):
        answer, authority, additional = result
        return [rr.payload.dottedQuad() for rr in answer if rr.type == dns.A]

    return resolver.lookupAddress(name).addCallback(addresses)


SOLUTIONS = {
    "20.1": Counter,
    "20.2": Download,
    "20.3": ipv4_addresses,
}
