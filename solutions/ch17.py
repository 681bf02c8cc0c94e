"""Reference solutions for chapter 17 (Twisted and asyncio together).

Run through the chapter's checkers in a process whose reactor is asyncioreactor
(tests/asyncio_reactor/): ``check("17.1", SOLUTIONS["17.1"]).passed`` is True there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from twisted.internet import defer, endpoints

from helpers.notebook_code import load

LineClient = load(Path(__file__).parent.parent / "notebooks" / "17_twisted_asyncio_interop.ipynb",
                  "bridge").LineClient


def as_deferred(coro_fn):
    def start(*args, **kwargs):
        # A task on the running loop (the reactor's, in the reactor thread); fromFuture
        # passes cancel() on to it.
        return defer.Deferred.fromFuture(asyncio.ensure_future(coro_fn(*args, **kwargs)))

    return start


async def ask_all(port, lines, timeout=2):
    from twisted.internet import reactor

    loop = asyncio.get_running_loop()
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    client = await endpoints.connectProtocol(endpoint, LineClient()).asFuture(loop)
    try:
        replies = [client.ask(line).asFuture(loop) for line in lines]  # all sent now
        return await asyncio.wait_for(asyncio.gather(*replies), timeout)  # one deadline
    finally:
        client.transport.loseConnection()


SOLUTIONS = {"17.1": as_deferred, "17.2": ask_all}
