"""Reference solutions for chapter 18 (threads and executors).

Run through the chapter's checkers by tests/test_exercises.py:
``check("18.1", SOLUTIONS["18.1"]).passed`` is True.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from twisted.internet import defer, protocol, threads
from twisted.protocols.basic import LineReceiver

# -- 18.1 -------------------------------------------------------------------


class LookupProtocol(LineReceiver):
    """Each line is a key; its lookup runs in a pool thread; answers keep request order."""

    delimiter = b"\n"

    def connectionMade(self):
        self.last = defer.succeed(None)  # the previous answer on this connection

    def lineReceived(self, line):
        key = line.rstrip(b"\r").decode()
        looked_up = threads.deferToThread(self.factory.lookup, key)  # starts now
        looked_up.addCallbacks(lambda value: f"{key}={value}",
                               lambda failure: f"{key}: error: {failure.value}")
        # Write after the previous answer, whatever order the lookups finish in.
        self.last = defer.gatherResults([self.last, looked_up])
        self.last.addCallback(lambda results: self.sendLine(results[1].encode()))


class LookupFactory(protocol.Factory):
    protocol = LookupProtocol

    def __init__(self, lookup):
        self.lookup = lookup


def make_lookup_factory(lookup):
    return LookupFactory(lookup)


# -- 18.2 -------------------------------------------------------------------


async def map_in_processes(fn, items, workers=2):
    """fn(item) for each item in a process pool, awaited; the pool is shut down after."""
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        return list(await asyncio.gather(
            *(loop.run_in_executor(pool, fn, item) for item in items)))


SOLUTIONS = {"18.1": make_lookup_factory, "18.2": map_in_processes}
