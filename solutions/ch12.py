"""Reference solutions for chapter 12 (flow control: producers and consumers).

Run through the chapter's checkers by tests/test_exercises_ch12.py:
``check("12.1", SOLUTIONS["12.1"]).passed`` is True.
"""

from __future__ import annotations

import hashlib

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPullProducer, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.protocols.basic import FileSender
from zope.interface import implementer

# -- 12.1 -------------------------------------------------------------------


@implementer(IPushProducer)
class Numbers(Protocol):
    """Send b"1\\n" ... b"COUNT\\n" (COUNT = factory.count) as a push producer.

    resumeProducing writes in a loop until write() itself calls pauseProducing (more
    than bufferSize bytes wait) or the last line is out; the transport calls it again
    once its buffer is empty.
    """

    def connectionMade(self):
        self.number, self.paused, self.stopped = 0, False, False
        self.transport.registerProducer(self, True)  # True: push (streaming)
        self.resumeProducing()  # a push producer starts by itself

    def resumeProducing(self):
        self.paused = False
        count = self.factory.count
        while not (self.paused or self.stopped) and self.number < count:
            self.number += 1
            self.transport.write(b"%d\n" % self.number)
        if self.number == count and not self.stopped:
            self.stopped = True
            self.transport.unregisterProducer()  # or loseConnection() may wait
            self.transport.loseConnection()

    def pauseProducing(self):
        self.paused = True

    def stopProducing(self):
        self.stopped = True  # the connection is gone: never write again


# -- 12.2 -------------------------------------------------------------------


class TransferLost(Exception):
    """The connection was lost before all the data had been written."""


@implementer(IPullProducer)
class _Slices:
    """Write `data` to `consumer`, `size` bytes per resumeProducing() call."""

    def __init__(self, consumer, data, size):
        self.consumer, self.data, self.size = consumer, data, size
        self.position = 0
        self.done = Deferred()

    def resumeProducing(self):
        if self.done.called:
            return
        if self.position >= len(self.data):
            self.consumer.unregisterProducer()  # first: the caller may close next
            self.done.callback(len(self.data))
            return
        self.consumer.write(self.data[self.position:self.position + self.size])
        self.position += self.size

    def stopProducing(self):
        if not self.done.called:
            self.done.errback(TransferLost(f"connection lost after {self.position} bytes"))


def send_slices(transport, data, size):
    """Send `data` with a pull producer; the Deferred fires with len(data)."""
    producer = _Slices(transport, data, size)
    transport.registerProducer(producer, False)  # False: pull; calls resumeProducing now
    return producer.done


# -- 12.3 -------------------------------------------------------------------


def send_file(path, transport):
    """Send the file at `path` with FileSender; fire with the SHA-256 hex digest sent."""
    digest = hashlib.sha256()
    file = open(path, "rb")  # noqa: SIM115 (closed when the transfer ends)

    def transform(chunk):
        digest.update(chunk)  # every chunk passes here on its way to the transport
        return chunk

    def close(result):
        file.close()
        return result

    d = FileSender().beginFileTransfer(file, transport, transform)
    return d.addBoth(close).addCallback(lambda _last_byte: digest.hexdigest())


SOLUTIONS = {"12.1": Numbers, "12.2": send_slices, "12.3": send_file}
