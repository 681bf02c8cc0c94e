"""asyncio servers on 127.0.0.1, in the same registry as every other server.

``await serve_asyncio(name, protocol_factory)`` listens with an asyncio Protocol factory,
``await serve_streams(name, handler)`` with a streams handler ``async handler(reader,
writer)``. Both run on the kernel's own loop by default, or on ``loop=`` (a loop running in
another thread: a background loop, or the loop under Twisted's asyncioreactor). The handle is
the same either way: ``.address``, ``.connections``, ``.stop()``; ``servers()`` lists it,
``stop_all()`` stops it, and serving a name again replaces the old server.

Stopping from the loop's own thread (a cell, on the kernel's loop) cannot wait for the loop:
``stop()`` then closes the listening socket and shuts every connection down at once (the
peer sees the close); asyncio releases the sockets as soon as the cell returns. From any other
thread, ``stop()`` waits until every connection has closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading

from .servers import Server, _register, _replace, check_loopback


class AsyncioServer(Server):
    """An asyncio server on `loop`; `.server` is the `asyncio.Server`."""

    kind = "asyncio server"

    def __init__(self, name, host, port, loop, server, live):
        super().__init__(name, host, port)
        self.loop, self.server, self._live = loop, server, live

    @property
    def connections(self) -> int:
        return len(self._live)

    def _shutdown(self, timeout):
        if not self.loop.is_running() or _on_loop_thread(self.loop):
            self._close_now()
            return
        done = asyncio.run_coroutine_threadsafe(self._close(timeout / 2), self.loop)
        try:
            done.result(timeout)
        except concurrent.futures.TimeoutError:
            done.cancel()
            raise TimeoutError(f"server {self.name!r}: not closed after {timeout:g} s (its"
                               " loop is blocked, or a connection would not close)") from None

    def _close_now(self):
        """Close without waiting for the loop: listener closed, connections shut down."""
        self.server.close()
        for transport in list(self._live):
            sock = transport.get_extra_info("socket")
            with contextlib.suppress(OSError, AttributeError):
                sock.shutdown(socket.SHUT_WR)  # the peer sees the close (end of stream) now
            if not self.loop.is_closed():
                transport.abort()

    async def _close(self, grace):
        self.server.close()
        waits = [closed for transport, closed in list(self._live.items())]
        for transport in list(self._live):
            transport.close()
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace)
            if pending:  # a peer that never reads holds a graceful close open
                for transport in list(self._live):
                    transport.abort()
                await asyncio.wait(waits, timeout=grace)
        await self.server.wait_closed()


def _on_loop_thread(loop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _tracked(factory, live, loop):
    """Wrap `factory` so that every connection is in `live` until it is lost."""

    def build():
        protocol = factory()
        made, lost = protocol.connection_made, protocol.connection_lost
        transport = None

        def connection_made(t):
            nonlocal transport
            transport = t
            live[t] = loop.create_future()
            made(t)

        def connection_lost(exc):
            try:
                lost(exc)
            finally:
                closed = live.pop(transport, None)
                if closed is not None and not closed.done():
                    closed.set_result(None)

        protocol.connection_made, protocol.connection_lost = connection_made, connection_lost
        return protocol

    return build


async def _start(name, make_factory, host, port, loop):
    check_loopback(host)
    here = asyncio.get_running_loop()
    loop = loop or here

    async def listen():
        live = {}
        server = await loop.create_server(_tracked(make_factory(loop), live, loop), host, port)
        return server, live

    _replace(name)  # an old server on another loop is waited for; on this one, not
    if loop is here:
        server, live = await listen()
    else:
        server, live = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(listen(), loop))
    bound = server.sockets[0].getsockname()[1]
    return _register(AsyncioServer(name, host, bound, loop, server, live))


async def serve_asyncio(name: str, protocol_factory, *, host: str = "127.0.0.1",
                        port: int = 0, loop=None) -> AsyncioServer:
    """Serve an asyncio Protocol factory on `host` (loopback), on an ephemeral port.

    Runs on the running loop (in a cell: the kernel's), or on `loop`, running elsewhere.
    """
    return await _start(name, lambda _loop: protocol_factory, host, port, loop)


async def serve_streams(name: str, handler, *, host: str = "127.0.0.1", port: int = 0,
                        limit: int = 2 ** 16, loop=None) -> AsyncioServer:
    """Serve ``async handler(reader, writer)`` like `asyncio.start_server` does.

    `limit` is the StreamReader buffer limit (`readline` raises beyond it).
    """

    def make_factory(loop):
        def factory():
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, handler, loop=loop)

        return factory

    return await _start(name, make_factory, host, port, loop)


class LoopThread:
    """An asyncio loop running in a daemon thread; `run(coro, timeout)` waits for a result.

    Infrastructure for tests and checkers; chapter 16 builds the same thing in view.
    """

    def __init__(self, name: str = "helpers-asyncio-loop", loop=None):
        self.loop = loop or asyncio.new_event_loop()
        ready = threading.Event()
        self.loop.call_soon(ready.set)
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()
        ready.wait(5)

    def run(self, coro, timeout: float = 5.0):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout:g} s") from None

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"loop thread {self.thread.name!r} did not stop")
        self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
