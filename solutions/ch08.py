"""Reference solutions for chapter 08 (Deferreds).

Run through the chapter's checkers by tests/test_exercises_ch08.py:
``check("08.1", SOLUTIONS["08.1"]).passed`` is True.
"""

from __future__ import annotations

from twisted.internet import defer, endpoints, protocol

# -- 08.1 -------------------------------------------------------------------


def with_default(d, default):
    """Turn a KeyError (or a subclass) into `default`; let everything else through.

    An errback stage lets values pass untouched. `trap` re-raises any failure that is
    not a KeyError, which keeps it on the errback line, unchanged.
    """

    def missing(failure):
        failure.trap(KeyError)
        return default

    return d.addErrback(missing)


# -- 08.2 -------------------------------------------------------------------


def settle(deferreds):
    """Fire, once every Deferred has fired, with [("ok", result) | ("error", exception)].

    DeferredList never fails (without fireOnOneErrback) and keeps the input order;
    consumeErrors=True takes each failure over, so the input Deferreds are left with
    None and nothing is logged as an unhandled error when they are collected.
    """

    def outcomes(results):
        return [("ok", result) if ok else ("error", result.value) for ok, result in results]

    return defer.DeferredList(deferreds, consumeErrors=True).addCallback(outcomes)


# -- 08.3 -------------------------------------------------------------------


class LineClient(protocol.Protocol):
    """request(text) sends a line and returns a Deferred for the reply line.

    Cancelling that Deferred (addTimeout does, on timeout) aborts the connection.
    """

    def connectionMade(self):
        self.buffer, self.waiting = b"", None

    def request(self, text):
        self.waiting = defer.Deferred(canceller=lambda d: self.transport.abortConnection())
        self.transport.write(text.encode() + b"\n")
        return self.waiting

    def dataReceived(self, data):
        self.buffer += data
        if self.waiting is not None and b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            d, self.waiting = self.waiting, None
            d.callback(line.decode())

    def connectionLost(self, reason):
        if self.waiting is not None and not self.waiting.called:
            d, self.waiting = self.waiting, None
            d.errback(reason)


async def fetch_with_timeout(port, text, seconds):
    """Send `text` as a line to 127.0.0.1:port; the reply line, or None after `seconds`.

    The connection is closed in every case: by the canceller on timeout, and by
    `finally` otherwise (loseConnection on an aborted connection does nothing).
    """
    from twisted.internet import reactor

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=seconds)
    client = await endpoints.connectProtocol(endpoint, LineClient())
    try:
        return await client.request(text).addTimeout(seconds, reactor)
    except defer.TimeoutError:
        return None
    finally:
        client.transport.loseConnection()


SOLUTIONS = {
    "08.1": with_default,
    "08.2": settle,
    "08.3": fetch_with_timeout,
}
