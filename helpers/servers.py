"""Named servers on 127.0.0.1, started and stopped from notebook cells.

`serve(name, factory)` listens with a Twisted factory; `serve_socket(name,
handler)` runs a plain-socket handler, one thread per connection. Both bind
127.0.0.1 on an ephemeral port and return a `Server` handle. Serving a name
again replaces the old server; `servers()` lists what runs; `stop_all()`
stops everything and waits until every connection has closed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import selectors
import socket
import threading

from . import reactor as _reactor

THREAD_PREFIX = "helpers-server"
_registry: dict[str, Server] = {}
_registry_lock = threading.RLock()


def check_loopback(host: str) -> str:
    """Return `host` if it is a loopback address, else raise ValueError."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to listen on {host!r}: servers in this series bind loopback "
            "only (127.0.0.1), so nothing is reachable from the network"
        )
    return host


class Server:
    """A running server: `.name`, `.host`, `.port`, `.stop()`; a context manager."""

    kind = "server"

    def __init__(self, name: str, host: str, port: int):
        self.name, self.host, self.port = name, host, port
        self.stopped = False

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close live connections, wait until they have closed."""
        with _registry_lock:
            if self.stopped:
                return
            self.stopped = True
            if _registry.get(self.name) is self:
                del _registry[self.name]
        self._shutdown(timeout)

    def _shutdown(self, timeout: float) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "stopped" if self.stopped else f"{self.host}:{self.port}"
        return f"<{self.kind} {self.name!r} {state}>"


def _register(server: Server) -> Server:
    with _registry_lock:
        _registry[server.name] = server
    return server


def _replace(name: str) -> None:
    with _registry_lock:
        old = _registry.get(name)
    if old is not None:
        old.stop()


# -- Twisted servers ------------------------------------------------------


def _tracking_port_class():
    """A tcp.Port that knows its live connections (built lazily: Twisted is optional)."""
    from twisted.internet import defer, tcp

    class TrackedConnection(tcp.Server):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.closed = defer.Deferred()
            self.server.live.add(self)

        def connectionLost(self, reason):
            try:
                super().connectionLost(reason)
            finally:
                self.server.live.discard(self)
                self.closed.callback(None)

    class TrackingPort(tcp.Port):
        transport = TrackedConnection

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.live = set()

    return TrackingPort


class TwistedServer(Server):
    """A Twisted factory listening on loopback in the reactor thread."""

    kind = "twisted server"

    def __init__(self, name, host, port, listening_port):
        super().__init__(name, host, port)
        self.listening_port = listening_port

    @property
    def connections(self) -> int:
        return len(self.listening_port.live)

    def _shutdown(self, timeout):
        _reactor.call(self._close_all, timeout / 2, timeout=timeout)

    def _close_all(self, grace):
        from twisted.internet import defer, reactor

        port = self.listening_port
        waits = [defer.maybeDeferred(port.stopListening)]
        for conn in list(port.live):
            waits.append(conn.closed)
            conn.loseConnection()
        # A peer that never reads can hold a graceful close open: abort after `grace`.
        abort = reactor.callLater(grace, lambda: [c.abortConnection() for c in list(port.live)])

        def cancel_abort(result):
            if abort.active():
                abort.cancel()
            return result

        return defer.gatherResults(waits).addBoth(cancel_abort)


def serve(name: str, factory, *, host: str = "127.0.0.1", port: int = 0) -> TwistedServer:
    """Serve a Twisted protocol factory on `host` (loopback), on an ephemeral port.

    Pass `port` (a port this server had before) to restart a stopped server where its
    clients expect it, as reconnecting clients do.
    """
    check_loopback(host)
    _replace(name)
    port_class = _tracking_port_class()

    def listen():
        from twisted.internet import reactor

        listening = port_class(port, factory, interface=host, reactor=reactor)
        listening.startListening()
        return listening

    listening = _reactor.call(listen)
    return _register(TwistedServer(name, host, listening.getHost().port, listening))


# -- UDP ports ------------------------------------------------------------------


class UdpServer(Server):
    """A DatagramProtocol listening in the reactor thread; `.listening` is its port."""

    kind = "udp server"
    connections = 0  # UDP has none

    def __init__(self, name, host, port, listening):
        super().__init__(name, host, port)
        self.listening = listening

    def _shutdown(self, timeout):
        # A port Twisted already closed (an ICMP error under epoll) stops again harmlessly.
        _reactor.call(self.listening.stopListening, timeout=timeout)


def serve_udp(name: str, protocol, *, host: str = "127.0.0.1", port: int = 0,
              max_packet_size: int = 8192) -> UdpServer:
    """Listen for datagrams with `protocol` on `host` (loopback), on an ephemeral port.

    Datagrams longer than `max_packet_size` are cut to that size (Twisted's default).
    """
    check_loopback(host)
    _replace(name)

    def listen():
        from twisted.internet import reactor

        return reactor.listenUDP(port, protocol, interface=host, maxPacketSize=max_packet_size)

    listening = _reactor.call(listen)
    return _register(UdpServer(name, host, listening.getHost().port, listening))


def serve_multicast(name: str, protocol, *, group: str | None = None,
                    port: int = 0) -> UdpServer:
    """A multicast-capable UDP port: bound to `group` (shared: several may listen on one
    port) to receive that group only, or to 127.0.0.1 to send. Join with
    ``.listening.joinGroup(group, "127.0.0.1")`` so it stays on the loopback interface."""
    if group is None:
        host = "127.0.0.1"
    elif ipaddress.ip_address(group).is_multicast:
        host = group
    else:
        raise ValueError(f"{group!r} is not a multicast group address (224.0.0.0/4)")
    _replace(name)

    def listen():
        from twisted.internet import reactor

        return reactor.listenMulticast(port, protocol, interface=host,
                                       listenMultiple=group is not None)

    listening = _reactor.call(listen)
    return _register(UdpServer(name, host, listening.getHost().port, listening))


# -- plain-socket servers (Part I) ------------------------------------------


class SocketServer(Server):
    """A plain-socket server: an accept thread and one thread per connection.

    `handler(conn)` gets each connected socket and owns it until it returns;
    the server closes it afterwards. Exceptions a handler raises are kept in
    `.errors` instead of being printed from a background thread.
    """

    kind = "socket server"

    def __init__(self, name, handler, host):
        self.handler = handler
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._live: dict[socket.socket, threading.Thread] = {}
        self._count = itertools.count(1)
        self._listener = socket.create_server((host, 0))
        self._wake_r, self._wake_w = socket.socketpair()
        super().__init__(name, host, self._listener.getsockname()[1])
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"{THREAD_PREFIX}-{name}-accept", daemon=True
        )
        self._accepter.start()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._live)

    def _accept_loop(self):
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in sel.select()}
                if self._wake_r in ready:
                    return
                conn, _ = self._listener.accept()
                worker = threading.Thread(
                    target=self._run_handler,
                    args=(conn,),
                    name=f"{THREAD_PREFIX}-{self.name}-conn{next(self._count)}",
                    daemon=True,
                )
                with self._lock:
                    self._live[conn] = worker
                worker.start()

    def _run_handler(self, conn):
        try:
            with conn:
                try:
                    self.handler(conn)
                except Exception as exc:  # kept (before the peer sees the close), not printed
                    if not self.stopped:
                        self.errors.append(exc)
        finally:
            with self._lock:
                self._live.pop(conn, None)

    def _shutdown(self, timeout):
        self._wake_w.send(b"x")
        self._accepter.join(timeout)
        self._listener.close()
        with self._lock:
            live = dict(self._live)
        for conn in live:
            # Wakes a handler blocked in recv(): it now reads b"" or fails.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for worker in live.values():
            worker.join(timeout)
        self._wake_r.close()
        self._wake_w.close()
        stuck = [w.name for w in [self._accepter, *live.values()] if w.is_alive()]
        if stuck:
            raise RuntimeError(f"server {self.name!r}: threads still running: {stuck}")


def serve_socket(name: str, handler, *, host: str = "127.0.0.1") -> SocketServer:
    """Serve `handler(conn)` on `host` (loopback), ephemeral port, a thread per client."""
    check_loopback(host)
    _replace(name)
    return _register(SocketServer(name, handler, host))


# -- the registry ------------------------------------------------------------


class ServerList(list):
    """The running servers; shows as a small table in a notebook."""

    def __repr__(self):
        if not self:
            return "No servers running."
        rows = [f"{s.name:<20} {s.kind:<15} {s.host}:{s.port}" for s in self]
        return "\n".join([f"{'name':<20} {'kind':<15} address", *rows])


def servers() -> ServerList:
    """The running servers, sorted by name."""
    with _registry_lock:
        return ServerList(sorted(_registry.values(), key=lambda s: s.name))


def server_threads() -> list[str]:
    """Names of threads that helpers started for socket servers and still run."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX))


def stop_all(timeout: float = 5.0) -> list[str]:
    """Stop every running server, wait until all connections closed; return their names."""
    running = servers()
    for server in running:
        server.stop(timeout)
    left = server_threads()
    if left:
        raise RuntimeError(f"server threads still running after stop_all(): {left}")
    return [s.name for s in running]
