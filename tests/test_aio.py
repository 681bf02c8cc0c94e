"""asyncio servers in the registry: on the running loop and on a loop in another thread."""

import asyncio
import socket

import pytest

from helpers import servers, stop_all
from helpers.aio import LoopThread, serve_asyncio, serve_streams

TIMEOUT = 2


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_stream(reader, writer):
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


def start(kind, name, loop=None):
    if kind == "protocol":
        return serve_asyncio(name, Echo, loop=loop)
    return serve_streams(name, echo_stream, loop=loop)


async def round_trip(address, payload=b"ping"):
    reader, writer = await asyncio.open_connection(*address)
    writer.write(payload)
    got = await asyncio.wait_for(reader.read(1024), TIMEOUT)
    writer.close()
    await writer.wait_closed()
    return got


async def until(predicate):
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            await asyncio.sleep(0.001)


@pytest.fixture
def loop_thread():
    with LoopThread("test-asyncio-loop") as thread:
        yield thread
    stop_all()


@pytest.mark.parametrize("kind", ["protocol", "streams"])
def test_on_the_running_loop_it_serves_is_listed_and_stops_without_waiting(kind):
    async def main():
        server = await start(kind, "aio-echo")
        assert server.host == "127.0.0.1" and server.port > 0
        assert await round_trip(server.address) == b"ping"
        await until(lambda: server.connections == 0)
        assert [s.name for s in servers()] == ["aio-echo"]
        assert "asyncio server" in repr(servers())
        client = socket.create_connection(server.address, timeout=TIMEOUT)
        await until(lambda: server.connections == 1)
        assert stop_all() == ["aio-echo"]  # called as a cell would: no await
        assert client.recv(10) == b""  # shut down at once, before the loop runs again
        client.close()
        assert repr(servers()) == "No servers running."
        await until(lambda: server.connections == 0)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*server.address)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["protocol", "streams"])
def test_on_a_loop_in_another_thread_stop_waits_for_every_connection(kind, loop_thread):
    async def main():
        server = await start(kind, "aio-echo", loop=loop_thread.loop)
        assert server.loop is loop_thread.loop
        assert await round_trip(server.address) == b"ping"
        await until(lambda: server.connections == 0)
        client = socket.create_connection(server.address, timeout=TIMEOUT)
        await until(lambda: server.connections == 1)
        return server, client

    server, client = asyncio.run(main())
    stop_all()
    assert server.connections == 0  # waited for: connection_lost has run
    assert client.recv(10) == b""
    client.close()


def test_a_peer_that_never_reads_cannot_hold_the_stop_open(loop_thread):
    async def main():
        server = await serve_asyncio("aio-echo", Echo, loop=loop_thread.loop)
        client = socket.create_connection(server.address, timeout=TIMEOUT)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(b"x" * (8 << 20))  # echoed back, never read: the server's buffer fills
        return server, client

    server, client = asyncio.run(main())
    stop_all(timeout=1.0)
    assert server.connections == 0
    client.close()


def test_serving_a_name_again_replaces_the_old_server_across_loops(loop_thread):
    async def main():
        first = await serve_asyncio("aio-echo", Echo, loop=loop_thread.loop)
        second = await serve_asyncio("aio-echo", Echo)
        assert first.stopped and not second.stopped
        assert [s.port for s in servers()] == [second.port]
        third = await serve_asyncio("aio-echo", Echo, loop=loop_thread.loop)
        assert second.stopped and servers() == [third]
        assert await round_trip(third.address) == b"ping"

    asyncio.run(main())
    stop_all()


def test_only_loopback():
    async def main():
        with pytest.raises(ValueError, match="loopback"):
            await serve_asyncio("aio-echo", Echo, host="0.0.0.0")

    asyncio.run(main())
    assert servers() == []


def test_a_server_whose_loop_was_closed_stops_quietly():
    thread = LoopThread("test-asyncio-loop")

    async def main():
        return await serve_asyncio("aio-echo", Echo, loop=thread.loop)

    server = asyncio.run(main())
    thread.stop()
    assert stop_all() == ["aio-echo"] and server.stopped


def test_loop_thread_runs_coroutines_and_times_out():
    with LoopThread("test-asyncio-loop") as thread:
        assert thread.run(asyncio.sleep(0, "done")) == "done"
        with pytest.raises(TimeoutError, match="0.1 s"):
            thread.run(asyncio.sleep(5), timeout=0.1)
    assert not thread.thread.is_alive() and thread.loop.is_closed()
