"""One echo server, seven ways, each run as its own process for measuring (chapter 19).

``python -m helpers.echo_servers KIND`` listens on 127.0.0.1 (an ephemeral port unless
``--port``), prints the port on a line of its own, and serves until its standard input
ends: when the process that started it closes the pipe, or dies, the server exits too.

Every server echoes raw bytes; none frames or parses anything, so what is measured is the
cost of each event loop and its I/O path, not of a protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import threading
from pathlib import Path

KINDS = ["threads", "reactor04", "twisted", "twisted-uvloop", "asyncio", "streams", "uvloop"]
CHUNK = 65536


def listening_socket(port: int = 0, backlog: int = 1024, reuse_port: bool = False):
    """A TCP socket listening on 127.0.0.1 (loopback only)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(backlog)
    return sock


def when_stdin_ends(callback) -> None:
    """Call `callback()` from a daemon thread once standard input reaches its end."""

    def watch():
        sys.stdin.buffer.read()
        callback()

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def announce(sock) -> None:
    print(sock.getsockname()[1], flush=True)


# -- blocking sockets, a thread per connection ---------------------------------


def serve_threads(sock, nodelay):
    def echo(conn):
        with conn, contextlib.suppress(ConnectionError):  # a client may reset: it ends
            if nodelay:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(CHUNK):
                conn.sendall(data)

    def accept():
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    announce(sock)
    sys.stdin.buffer.read()  # the main thread waits for the end of stdin


# -- the reactor that chapter 04 builds ------------------------------------------


def serve_reactor04(sock, nodelay):
    from .notebook_code import load

    ch04 = load(Path(__file__).resolve().parent.parent / "notebooks"
                / "04_concurrency_models.ipynb", "reactor")
    reactor = ch04.Reactor()

    class Echo(ch04.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    sock.setblocking(False)

    def accept():
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        if nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ch04.Transport(reactor, conn, Echo())

    reactor.add_reader(sock, accept)
    when_stdin_ends(lambda: reactor.call_from_thread(reactor.stop))
    announce(sock)
    reactor.run()


# -- Twisted, on its default reactor or on uvloop --------------------------------


def serve_twisted(sock, nodelay, uvloop=False):
    if uvloop:
        import uvloop as uv
        from twisted.internet import asyncioreactor

        asyncioreactor.install(uv.new_event_loop())
    from twisted.internet import protocol, reactor

    class Echo(protocol.Protocol):
        def connectionMade(self):
            if nodelay:
                self.transport.setTcpNoDelay(True)

        def dataReceived(self, data):
            self.transport.write(data)

    sock.setblocking(False)
    port = reactor.adoptStreamPort(sock.fileno(), socket.AF_INET,
                                   protocol.Factory.forProtocol(Echo))
    sock.close()  # Twisted holds its own copy of the descriptor: closed before we announce
    print(port.getHost().port, flush=True)
    when_stdin_ends(lambda: reactor.callFromThread(reactor.stop))
    reactor.run()


# -- asyncio: protocols, streams, and protocols on uvloop ------------------------


class AsyncioEcho(asyncio.Protocol):
    nodelay = False

    def connection_made(self, transport):
        self.transport = transport
        if self.nodelay:
            transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.transport.write(data)


def serve_asyncio(sock, nodelay, kind="asyncio"):
    if kind == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    AsyncioEcho.nodelay = nodelay

    async def streams_echo(reader, writer):
        with contextlib.suppress(ConnectionError):  # a client may reset: it ends
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def main():
        done = asyncio.Event()
        when_stdin_ends(lambda: loop.call_soon_threadsafe(done.set))
        if kind == "streams":
            server = await asyncio.start_server(streams_echo, sock=sock)
        else:
            server = await loop.create_server(AsyncioEcho, sock=sock)
        announce(sock)
        await done.wait()
        server.close()

    loop.run_until_complete(main())
    loop.close()


def _most_open_files(most: int = 65536) -> None:
    """Raise this process's soft open-file limit as far as allowed: servers hold many."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = most if hard == resource.RLIM_INFINITY else min(hard, most)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on connections")
    parser.add_argument("--reuse-port", action="store_true", help="set SO_REUSEPORT")
    args = parser.parse_args(argv)
    _most_open_files()
    sock = listening_socket(args.port, args.backlog, args.reuse_port)
    if args.kind == "threads":
        serve_threads(sock, args.nodelay)
    elif args.kind == "reactor04":
        serve_reactor04(sock, args.nodelay)
    elif args.kind in ("twisted", "twisted-uvloop"):
        serve_twisted(sock, args.nodelay, uvloop=args.kind == "twisted-uvloop")
    else:
        serve_asyncio(sock, args.nodelay, args.kind)


if __name__ == "__main__":
    main()
