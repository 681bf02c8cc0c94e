"""Chapter 20 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import json
import re

import pytest
from twisted.internet import defer, reactor
from twisted.internet.interfaces import IPushProducer
from twisted.names import client, dns
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from helpers import check, servers
from helpers.exercises import ch20
from solutions.ch20 import SOLUTIONS, ChunkProducer, Counter, Download, json_response

COUNTER_CHECKS = {"get", "adds", "rejects", "unchanged", "json-type", "other-methods",
                  "separate"}
LOOKUP_CHECKS = {"addresses", "cname", "no-a-record", "nxdomain", "truncated", "timeout"}


@pytest.fixture
def short_limit(monkeypatch):
    """A lookup that has not fired is given up on after 0.8 s (2 s in the notebook)."""
    monkeypatch.setattr(ch20, "LIMIT", 0.8)


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch):
    """A download is taken as settled after 0.1 s without a chunk (0.3 s in the notebook)."""
    monkeypatch.setattr(ch20, "QUIET", 0.1)


@pytest.fixture
def short_timeout(monkeypatch):
    """A client waits 0.3 s for an answer (1 s in the notebook)."""
    monkeypatch.setattr(ch20, "TIMEOUT", 0.3)


def test_the_stub_is_not_attempted_and_shows_no_hint():
    class StubCounter(Resource):
        def render_GET(self, request):
            raise NotImplementedError("your code here")

    class StubDownload(Resource):
        def __init__(self, open_chunks):
            super().__init__()
            self.open_chunks = open_chunks

        def render_GET(self, request):
            raise NotImplementedError("your code here")

    def stub(server, name, timeout):
        raise NotImplementedError("your code here")

    for exercise_id, answer in [("20.1", StubCounter), ("20.2", StubDownload),
                                ("20.3", stub)]:
        report = check(exercise_id, answer)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)
    assert set(SOLUTIONS) == {"20.1", "20.2", "20.3"}
    assert repr(servers()) == "No servers running."


# -- 20.1 -------------------------------------------------------------------


def counter_with(post):
    """A Counter whose render_POST is `post(self, request)`."""
    return type("Answer", (Counter,), {"render_POST": post})


def test_a_counter_that_returns_str_fails_everything_and_says_why():
    class ReturnsStr(Resource):
        isLeaf = True

        def __init__(self):
            super().__init__()
            self.count = 0

        def render_GET(self, request):
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"count": self.count})  # str

        def render_POST(self, request):
            self.count += json.loads(request.content.read())["add"]
            return self.render_GET(request)

    report = check("20.1", ReturnsStr)
    assert report.failed == COUNTER_CHECKS
    assert "Twisted's page for a render method that returned str" in report.message("get")


def test_errors_answered_200_fail_rejects():
    def post(self, request):
        try:
            add = json.loads(request.content.read())["add"]
        except (ValueError, KeyError, TypeError) as e:
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"error": str(e)}).encode()  # no setResponseCode(400)
        if type(add) is not int:
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"error": "not an integer"}).encode()
        self.count += add
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"rejects"}
    assert report.message("rejects") == (
        "POST /counter with b'add=5' (a form, not JSON) answered 200 OK (application/json)"
        " b'{\"error\": \"Expecting value: line 1 column 1 (char 0)\"}', expected 400 with"
        " {\"error\": \"...\"}")


def test_the_default_content_type_fails_json_type():
    class TextHtml(Counter):
        def render_GET(self, request):
            return json.dumps({"count": self.count}).encode()

        def render_POST(self, request):
            body = SOLUTIONS["20.1"].render_POST(self, request)
            request.responseHeaders.removeHeader(b"content-type")  # Twisted's default, then
            return body

    report = check("20.1", TextHtml)
    assert report.failed == {"json-type"}
    assert report.message("json-type") == (
        "GET /counter answered 200 OK (text/html) b'{\"count\": 0}': Content-Type text/html,"
        " expected application/json")


def test_content_type_only_on_success_fails_json_type():
    def post(self, request):
        try:
            add = json.loads(request.content.read())["add"]
        except (ValueError, KeyError, TypeError):
            request.setResponseCode(400)
            return b'{"error": "bad body"}'  # Content-Type left to Twisted
        if type(add) is not int:
            request.setResponseCode(400)
            return b'{"error": "not an integer"}'
        self.count += add
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"json-type"}
    assert report.message("json-type").startswith(
        "POST /counter with b'[1]' answered 400 Bad Request (text/html)")


def test_a_body_that_is_not_json_raising_fails_and_twisted_logs_it():
    def post(self, request):
        body = json.loads(request.content.read())  # raises for a bad body: a 500
        if not isinstance(body, dict) or type(body.get("add")) is not int:
            return json_response(request, 400, {"error": "expected {\"add\": integer}"})
        self.count += body["add"]
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"rejects", "unchanged", "json-type"}
    assert report.message("rejects").startswith(
        "POST /counter with b'add=5' (a form, not JSON) answered 500 Internal Server Error")
    assert "(Twisted's page for a render method that raised)" in report.message("rejects")
    assert "Twisted logged: JSONDecodeError: Expecting value" in report.message("rejects")


def test_true_accepted_as_an_integer_fails():
    def post(self, request):
        try:
            body = json.loads(request.content.read())
        except ValueError:
            return json_response(request, 400, {"error": "not JSON"})
        if not isinstance(body, dict) or not isinstance(body.get("add"), int):  # True is
            return json_response(request, 400, {"error": "expected an integer"})
        self.count += body["add"]
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"rejects", "unchanged"}
    assert report.message("rejects") == (
        "POST /counter with b'{\"add\": true}' (true is a JSON boolean, not an integer)"
        " answered 200 OK (application/json) b'{\"count\": 1}\\n', expected 400 with"
        " {\"error\": \"...\"}")
    assert report.message("unchanged") == (
        "POST /counter with b'{\"add\": true}' (true is a JSON boolean, not an integer)"
        " changed the count from 2 to 3")


def test_int_of_anything_fails():
    def post(self, request):
        try:
            add = int(json.loads(request.content.read())["add"])  # "5", 2.5, True all pass
        except (ValueError, KeyError, TypeError):
            return json_response(request, 400, {"error": "expected an integer"})
        self.count += add
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"rejects", "unchanged"}
    assert "b'{\"add\": \"5\"}' (a string, not an integer) answered 200 OK" in (
        report.message("rejects"))


def test_counting_before_checking_fails_unchanged_only():
    def post(self, request):
        try:
            body = json.loads(request.content.read())
        except ValueError:
            return json_response(request, 400, {"error": "not JSON"})
        if not isinstance(body, dict) or "add" not in body:
            return json_response(request, 400, {"error": "no add"})
        try:
            self.count += body["add"]  # counted first: 2.5 and True get in
        except TypeError:
            return json_response(request, 400, {"error": "not a number"})
        if type(body["add"]) is not int:
            return json_response(request, 400, {"error": "not an integer"})
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"unchanged"}
    assert report.message("unchanged") == (
        "POST /counter with b'{\"add\": true}' (true is a JSON boolean, not an integer)"
        " changed the count from 2 to 3")


def test_add_in_body_without_checking_for_an_object_fails_rejects():
    def post(self, request):
        try:
            body = json.loads(request.content.read())
        except ValueError:
            return json_response(request, 400, {"error": "not JSON"})
        if "add" not in body or type(body["add"]) is not int:  # a number: TypeError, a 500
            return json_response(request, 400, {"error": "expected {\"add\": integer}"})
        self.count += body["add"]
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"rejects", "unchanged", "json-type"}
    assert report.message("rejects").startswith(
        "POST /counter with b'5' (a JSON number, not an object) answered 500 Internal Server"
        " Error")
    assert "Twisted logged: TypeError: argument of type 'int' is not iterable" in (
        report.message("rejects"))


def test_a_float_with_no_fraction_accepted_as_an_integer_fails():
    def post(self, request):
        try:
            body = json.loads(request.content.read())
        except ValueError:
            return json_response(request, 400, {"error": "not JSON"})
        add = body.get("add") if isinstance(body, dict) else None
        if type(add) not in (int, float) or add != int(add):  # 5.0 == 5 gets in
            return json_response(request, 400, {"error": "expected an integer"})
        self.count += int(add)
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"rejects", "unchanged"}
    assert report.message("rejects") == (
        "POST /counter with b'{\"add\": 5.0}' (5.0 is a JSON float, not an integer) answered"
        " 200 OK (application/json) b'{\"count\": 5}\\n', expected 400 with"
        " {\"error\": \"...\"}")


def test_content_type_forgotten_on_one_error_answer_fails_json_type():
    def post(self, request):
        try:
            body = json.loads(request.content.read())
        except ValueError:
            return json_response(request, 400, {"error": "not JSON"})
        if not isinstance(body, dict):
            return json_response(request, 400, {"error": "not an object"})
        if type(body.get("add")) is not int:
            request.setResponseCode(400)  # and the Content-Type left to Twisted
            return json.dumps({"error": "add must be an integer"}).encode()
        self.count += body["add"]
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"json-type"}
    assert report.message("json-type") == (
        "POST /counter with b'{\"count\": 5}' answered 400 Bad Request (text/html)"
        " b'{\"error\": \"add must be an integer\"}': Content-Type text/html, expected"
        " application/json")


def test_an_error_without_an_error_key_fails_rejects():
    def post(self, request):
        try:
            body = json.loads(request.content.read())
            assert isinstance(body, dict) and type(body.get("add")) is int
        except (ValueError, AssertionError):
            return json_response(request, 400, "bad request")  # a JSON string, no "error"
        self.count += body["add"]
        return json_response(request, 200, {"count": self.count})

    report = check("20.1", counter_with(post))
    assert report.failed == {"rejects"}
    assert "answered 400 Bad Request (application/json) b'\"bad request\"\\n'" in (
        report.message("rejects"))


def test_a_catch_all_render_fails_other_methods():
    class CatchAll(Counter):
        def render(self, request):
            if request.method == b"POST":
                return self.render_POST(request)
            return self.render_GET(request)  # PUT and DELETE too

    report = check("20.1", CatchAll)
    assert report.failed == {"other-methods"}
    assert report.message("other-methods").startswith(
        "PUT /counter with b'{\"add\": 1}' answered 200 OK (application/json)")


def test_one_count_for_every_counter_fails_separate():
    class Shared(Counter):
        state = {"count": 0}  # class-level: every Counter() shares it

        def render_GET(self, request):
            return json_response(request, 200, {"count": self.state["count"]})

        def render_POST(self, request):
            self.count = self.state["count"]
            body = SOLUTIONS["20.1"].render_POST(self, request)
            self.state["count"] = self.count
            return body

    report = check("20.1", Shared)
    assert report.failed == {"separate"}
    assert report.message("separate").startswith(
        "two counters: after adding 1 and 1 at /counter and 5 at /other, GET gave")


# -- 20.2 -------------------------------------------------------------------


class WritesAll(Download):
    """Wrong: every chunk written at once, in render_GET."""

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/octet-stream")
        for chunk in self.open_chunks():
            request.write(chunk)
        request.finish()
        return NOT_DONE_YET


def test_writing_everything_at_once_fails_paced_and_stops():
    report = check("20.2", WritesAll)
    assert report.failed == {"paced", "stops"}
    assert re.fullmatch(
        r"with a client that read nothing, your resource took 1,024 of 1,024 chunks, and up"
        r" to 16,3\d\d KiB waited in the server's transport after a write \(at most 96 KiB if"
        r" nothing is written while paused: the transport pauses its producer above 64 KiB\)",
        report.message("paced")), report.message("paced")
    assert report.message("stops") == (
        "your resource had taken all 1,024 chunks before a client that read 64 KiB left:"
        " nothing waited for the reader")


def test_returning_the_joined_body_fails_paced_and_stops():
    class Joined(Download):
        def render_GET(self, request):
            request.setHeader(b"content-type", b"application/octet-stream")
            return b"".join(self.open_chunks())

    report = check("20.2", Joined)
    assert report.failed == {"paced", "stops"}


def with_producer(producer_class):
    class Answer(Download):
        def render_GET(self, request):
            request.setHeader(b"content-type", b"application/octet-stream")
            producer = producer_class(request, iter(self.open_chunks()))
            request.registerProducer(producer, True)
            producer.resumeProducing()
            return NOT_DONE_YET

    return Answer


def test_a_producer_that_ignores_pause_fails_paced_and_stops():
    class IgnoresPause(ChunkProducer):
        def pauseProducing(self):
            pass  # registered, but never stops writing

    report = check("20.2", with_producer(IgnoresPause))
    assert report.failed == {"paced", "stops"}


def test_a_producer_that_does_not_close_the_iterator_fails_stops():
    class Forgets(ChunkProducer):
        def stopProducing(self):
            self.done = True  # stops, but the iterator (a file, say) stays open

    report = check("20.2", with_producer(Forgets))
    assert report.failed == {"stops"}
    assert report.message("stops") == (
        "a client left after 64 KiB: the iterator's close() was not called")


def test_a_producer_without_stop_producing_fails_stops():
    class NoStop(ChunkProducer):
        def stopProducing(self):
            pass

    report = check("20.2", with_producer(NoStop))
    assert report.failed == {"stops"}


def test_a_producer_driven_by_call_later_that_ignores_the_client_leaving_fails_stops():
    @implementer(IPushProducer)
    class Firehose:
        """Chapter 12's style: one chunk per reactor turn while not paused; no stop."""

        def __init__(self, request, chunks):
            self.request, self.chunks, self.paused, self.next = request, chunks, False, None

        def produce(self):
            self.next = None
            chunk = next(self.chunks, None)
            if chunk is None:
                self.request.unregisterProducer()
                self.request.finish()  # raises once the connection is lost
                return
            self.request.write(chunk)  # dropped once the connection is lost
            if not self.paused:
                self.next = reactor.callLater(0, self.produce)

        def resumeProducing(self):
            self.paused = False
            if self.next is None:
                self.next = reactor.callLater(0, self.produce)

        def pauseProducing(self):
            self.paused = True

        def stopProducing(self):
            pass

    report = check("20.2", with_producer(Firehose))
    assert "stops" in report.failed
    message = report.message("stops")
    if message.startswith("a client left after 64 KiB: the iterator's close() was not called"):
        # It was paused when the client left: it never went on, but leaked. And the
        # download of an earlier check, which never stops either, may have run to the end
        # of its chunks meanwhile: its unregisterProducer() on a request whose connection
        # is gone raised, and Twisted logged it.
        assert message in (
            "a client left after 64 KiB: the iterator's close() was not called",
            "a client left after 64 KiB: the iterator's close() was not called; Twisted logged:"
            " AttributeError: 'NoneType' object has no attribute 'unregisterProducer' (raised"
            " in produce)")
        return
    assert message.startswith("a client left after 64 KiB, when your resource had taken")
    assert "; it went on to take 1,024 (of 1,024); Twisted logged: " in message


def test_forgetting_finish_fails_whole_and_independent(short_timeout):
    class NoFinish(ChunkProducer):
        def finish(self):
            self.close()
            self.request.unregisterProducer()  # and no request.finish()

    report = check("20.2", with_producer(NoFinish))
    assert report.failed == {"whole", "independent"}
    assert report.message("whole") == (
        "a client that reads everything: GET /download: no complete answer within 0.3 s"
        " (after the last chunk, a download unregisters its producer and finishes the"
        " request)")


def test_a_producer_that_writes_one_chunk_per_resume_fails_whole_and_says_how_far(
        short_timeout):
    class OneChunk(ChunkProducer):
        def resumeProducing(self):  # one chunk, no loop: nothing asks for the next one
            self.paused = False
            chunk = next(self.chunks, None)
            if chunk is None:
                self.finish()
            else:
                self.request.write(chunk)

    report = check("20.2", with_producer(OneChunk))
    assert report.failed == {"whole", "stops", "independent"}
    assert report.message("whole") == (
        "a client that reads everything: GET /download: no complete answer within 0.3 s;"
        " your resource had taken 1 of the 256 chunks from the iterator, and took no more"
        " (a push producer writes until the transport pauses it, and goes on when it is"
        " resumed)")
    assert report.message("stops").startswith(
        "a client reading 64 KiB of the download: 16,5")
    assert "your resource had taken 1 chunk from the iterator" in report.message("stops")


def test_a_producer_never_started_says_nothing_was_written(short_timeout):
    class NeverStarted(Download):
        def render_GET(self, request):
            request.setHeader(b"content-type", b"application/octet-stream")
            request.registerProducer(ChunkProducer(request, iter(self.open_chunks())), True)
            return NOT_DONE_YET  # and no first resumeProducing(): nothing writes

    report = check("20.2", NeverStarted)
    assert report.failed == {"whole", "paced", "stops", "independent"}
    assert report.message("paced") == (
        "GET /download answered nothing within 0.3 s, expected 200 OK: open_chunks() was"
        " called, but your resource took no chunk from its iterator, so nothing was written"
        " (the status line goes out with the first write)")


def test_opening_the_chunks_twice_per_get_fails_whole():
    class OpensTwice(Download):
        def render_GET(self, request):
            request.setHeader(b"content-type", b"application/octet-stream")
            if self.open_chunks() is None:  # a look first: that opens the file once more
                return b""
            producer = ChunkProducer(request, iter(self.open_chunks()))
            request.registerProducer(producer, True)
            producer.resumeProducing()
            return NOT_DONE_YET

    report = check("20.2", OpensTwice)
    assert report.failed == {"whole", "independent"}
    assert report.message("whole") == (
        "a client that reads everything: one GET /download called open_chunks() 2 times,"
        " expected once (each call opens the file again)")


def test_the_wrong_content_type_fails_whole():
    class Untyped(Download):
        def render_GET(self, request):
            producer = ChunkProducer(request, iter(self.open_chunks()))
            request.registerProducer(producer, True)
            producer.resumeProducing()
            return NOT_DONE_YET

    report = check("20.2", Untyped)
    assert report.failed == {"whole"}
    assert report.message("whole") == (
        "GET /download answered with Content-Type text/html, expected"
        " application/octet-stream")


def test_the_resource_as_its_own_producer_fails_independent():
    @implementer(IPushProducer)
    class OneProducer(Download):
        """Wrong: the resource is the producer, so its state is every download's."""

        def render_GET(self, request):
            request.setHeader(b"content-type", b"application/octet-stream")
            self.request, self.chunks, self.paused = request, iter(self.open_chunks()), False
            request.registerProducer(self, True)
            self.resumeProducing()
            return NOT_DONE_YET

        def resumeProducing(self):
            self.paused = False
            while not self.paused:
                chunk = next(self.chunks, None)
                if chunk is None:
                    self.request.unregisterProducer()
                    self.request.finish()
                    return
                self.request.write(chunk)

        def pauseProducing(self):
            self.paused = True

        def stopProducing(self):
            self.chunks.close()

    report = check("20.2", OneProducer)
    assert "independent" in report.failed
    assert report.failed <= {"independent", "stops"}


# -- 20.3 -------------------------------------------------------------------


def resolver_lookup(make_resolver, extract):
    def ipv4_addresses(server, name, timeout):
        return make_resolver(server, timeout).lookupAddress(name).addCallback(extract)

    return ipv4_addresses


def a_records(result):
    return [rr.payload.dottedQuad() for rr in result[0] if rr.type == dns.A]


def test_get_host_by_name_fails():
    def host(server, name, timeout):
        return client.Resolver(servers=[server], timeout=(timeout,)).getHostByName(name)

    report = check("20.3", host)
    assert {"addresses", "cname", "truncated"} <= report.failed
    assert report.message("addresses") == (
        "ipv4_addresses(server, 'www.example.test', 1.0): the Deferred fired with '::1'"
        " (str), expected a list of strings such as '127.0.0.1'")
    if "no-a-record" in report.failed:  # (Twisted's DNSLookupError of bytes has no str())
        assert report.message("no-a-record").startswith(
            "ipv4_addresses(server, 'hello.example.test', 1.0): the Deferred failed with"
            " DNSLookupError: b'hello.example.test', expected it to fire with []")


def test_packed_addresses_fail():
    def packed(result):
        return [rr.payload.address for rr in result[0] if rr.type == dns.A]

    report = check("20.3", resolver_lookup(
        lambda server, t: client.Resolver(servers=[server], timeout=(t,)), packed))
    assert report.failed == {"addresses", "cname", "truncated"}
    assert report.message("addresses") == (
        "ipv4_addresses(server, 'www.example.test', 1.0): the Deferred fired with"
        " [b'\\x7f\\x00\\x00\\x01'], expected strings such as '127.0.0.1'")


def test_every_record_of_the_answer_taken_for_an_address_fails_cname():
    def every(result):
        return [rr.payload.dottedQuad() for rr in result[0]]

    report = check("20.3", resolver_lookup(
        lambda server, t: client.Resolver(servers=[server], timeout=(t,)), every))
    assert "cname" in report.failed  # a busy machine may also time out the 1 s lookups
    assert report.message("cname").startswith(
        "ipv4_addresses(server, 'web.example.test', 1.0): the Deferred failed with"
        " AttributeError: 'Record_CNAME' object has no attribute 'dottedQuad'")


def test_errors_turned_into_empty_lists_fail(short_limit):
    def swallowing(server, name, timeout):
        d = client.Resolver(servers=[server], timeout=(timeout,)).lookupAddress(name)
        return d.addCallback(a_records).addErrback(lambda failure: [])

    report = check("20.3", swallowing)
    assert report.failed == {"nxdomain", "timeout"}
    assert report.message("nxdomain") == (
        "ipv4_addresses(server, 'nope.example.test', 1.0): the Deferred fired with [],"
        " expected it to fail with DNSNameError (the server answers NXDOMAIN)")


def test_the_default_timeouts_fail_timeout(short_limit):
    report = check("20.3", resolver_lookup(
        lambda server, t: client.Resolver(servers=[server]), a_records))
    assert report.failed == {"timeout"}
    assert report.message("timeout") == (
        "ipv4_addresses(silent server, 'www.example.test', 0.3): the Deferred had not fired"
        " after 0.8 s, expected a TimeoutError after about 0.3 s")


def test_a_timeout_that_is_not_a_sequence_fails_everything():
    report = check("20.3", resolver_lookup(
        lambda server, t: client.Resolver(servers=[server], timeout=t), a_records))
    assert report.failed == LOOKUP_CHECKS
    assert report.message("addresses") == (
        "ipv4_addresses(server, 'www.example.test', 1.0) raised TypeError: 'float' object is"
        " not subscriptable, expected it to return a Deferred")


def test_a_hand_made_udp_query_fails_truncated_and_nxdomain():
    def udp_only(server, name, timeout):
        resolver = client.Resolver(servers=[server], timeout=(timeout,))
        d = resolver.queryUDP([dns.Query(name, dns.A)], timeout=(timeout,))
        return d.addCallback(
            lambda m: [rr.payload.dottedQuad() for rr in m.answers if rr.type == dns.A])

    report = check("20.3", udp_only)
    assert report.failed == {"truncated", "nxdomain"}
    assert report.message("truncated").startswith(
        "ipv4_addresses(server, 'pool.example.test', 1.0): the Deferred fired with [],"
        " expected ['10.0.1.1', '10.0.1.10',")


def test_a_deadline_timer_never_cancelled_fails_every_answered_lookup(monkeypatch):
    monkeypatch.setattr(ch20, "ASK_TIMEOUT", 0.1)

    def timer_left(server, name, timeout):
        d = client.Resolver(servers=[server]).lookupAddress(name).addCallback(a_records)
        reactor.callLater(timeout, d.errback, defer.TimeoutError("too slow"))  # never cancelled
        return d

    report = check("20.3", timer_left)
    assert report.failed == LOOKUP_CHECKS - {"timeout"}
    assert report.message("addresses") == (
        "ipv4_addresses(server, 'www.example.test', 0.1): the Deferred fired with"
        " ['127.0.0.1']; then a timer your code had left running went off, with an error (a"
        " Deferred fires only once: once it has fired, its deadline has nothing left to do);"
        " Twisted logged: AlreadyCalledError")


def test_a_resolver_kept_from_the_first_call_says_the_server_was_not_asked(monkeypatch,
                                                                          short_limit):
    monkeypatch.setattr(ch20, "ASK_TIMEOUT", 0.1)
    kept = {}

    def cached(server, name, timeout):
        if "resolver" not in kept:  # made once: later calls ask the first call's server
            kept["resolver"] = client.Resolver(servers=[server], timeout=(timeout,))
        return kept["resolver"].lookupAddress(name).addCallback(a_records)

    report = check("20.3", cached)
    assert report.failed == LOOKUP_CHECKS, report.message("timeout")
    assert report.message("cname").startswith(
        "ipv4_addresses(server, 'web.example.test', 0.1): the Deferred failed with")
    assert report.message("cname").endswith(
        "; the DNS server at `server` received no query: your code asked elsewhere")


def test_a_deadline_by_add_timeout_passes():
    """Another right answer: the default resolver, with the whole lookup cut off."""

    def by_add_timeout(server, name, timeout):
        d = client.Resolver(servers=[server]).lookupAddress(name)
        return d.addCallback(a_records).addTimeout(timeout, reactor)

    report = check("20.3", by_add_timeout)
    assert report.passed, repr(report)
