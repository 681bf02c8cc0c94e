"""A fault-injecting TCP proxy on 127.0.0.1, run in the reactor thread.

`serve_proxy(name, target)` listens on loopback and forwards every connection
it accepts to `target`, through faults that can be changed while it runs:

- latency and jitter: each chunk the proxy reads waits ``latency`` seconds,
  plus or minus up to ``jitter`` (uniform, drawn from ``random.Random(seed)``),
  in each direction, so a round trip gains twice the latency. A chunk is never
  delivered before an earlier chunk of the same direction: data stays in order.
- bandwidth: at most ``bandwidth`` bytes per second in each direction.
- cut_after: a connection is cut once ``cut_after`` bytes have been forwarded in
  ``cut_direction`` ("to_server", "to_client", or None for both together). The
  peer receives exactly those bytes, then the cut.
- `Proxy.cut()` cuts every live connection now.
- `Proxy.refuse()` and `Proxy.refuse_for()` stop listening, so new clients get a
  real ConnectionRefusedError (the kernel completes handshakes on a listening
  socket by itself, so refusing means not listening); accepting again listens
  on the same port. Connections already open carry on.

A cut is ``how="reset"`` (the default) or ``how="close"``. A reset aborts both
sides (`abortConnection`): each gets a TCP RST and sees ConnectionResetError,
as when a middlebox drops the connection or a peer crashes. A close ends both
sides (`loseConnection`): each gets a FIN and reads end-of-file, which looks
exactly like a normal end of the stream. Data still inside the proxy is lost
either way, except that `cut_after` first delivers the bytes it allowed.

Changed faults apply to data that arrives after the change; a lowered
`cut_after` applies to a live connection with its next chunk. When one side
closes, the proxy delivers what it still holds for the other side, then passes
the close on as a FIN (half-closes are passed on too); it never turns a close
into a reset. If the target cannot be reached, the client's connection is reset
(so fast that connect() itself may report it). `Proxy.stop()` closes every
connection with a FIN, resets any that has not closed after CLOSE_GRACE, and
waits until all have closed.

The proxy reads at most HIGH_WATER bytes ahead of what it has delivered in
each direction, then stops reading until half of that is delivered, so a slow
reader slows the writer down, as TCP itself does.
"""

from __future__ import annotations

import dataclasses
import random
import struct
import threading
from collections import deque

from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol, IPullProducer
from zope.interface import implementer

from . import reactor as _reactor
from .servers import Server, _register, _replace, check_loopback

try:
    import fcntl
    import termios
except ImportError:  # Windows: no way to ask the kernel what is still unsent
    fcntl = termios = None

DIRECTIONS = ("to_server", "to_client")
CUTS = ("reset", "close")
HIGH_WATER = 1 << 20  # bytes queued in one direction before the proxy stops reading
SLICE_SECONDS = 0.01  # with a bandwidth cap, data leaves in slices of this much link time
SEND_GRACE = 1.0  # at most this long waiting for the kernel to send data before a reset
CLOSE_GRACE = 1.0  # a peer that never reads can hold a FIN back: abort after this
CONNECT_TIMEOUT = 5


def _check_how(how: str) -> str:
    if how not in CUTS:
        raise ValueError(f"how must be one of {CUTS}, not {how!r}")
    return how


def _unsent_bytes(transport) -> int:
    """Bytes the kernel still holds to send on this connection (Linux); 0 if unknown."""
    if fcntl is None:
        return 0
    try:
        raw = fcntl.ioctl(transport.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except (AttributeError, OSError, ValueError):
        return 0
    return struct.unpack("i", raw)[0]


@dataclasses.dataclass(frozen=True)
class Faults:
    """What a Proxy does to the data it forwards; see the module docstring."""

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    cut_after: int | None = None
    cut_direction: str | None = None
    cut_how: str = "reset"

    def __post_init__(self):
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must be >= 0 seconds")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError("bandwidth must be None or > 0 bytes per second")
        if self.cut_after is not None and self.cut_after < 0:
            raise ValueError("cut_after must be None or >= 0 bytes")
        if self.cut_direction not in (None, *DIRECTIONS):
            raise ValueError(f"cut_direction must be None or one of {DIRECTIONS}")
        _check_how(self.cut_how)

    def delay(self, rng: random.Random) -> float:
        """One chunk's delay: latency plus or minus up to jitter, never negative."""
        if not self.jitter:
            return self.latency
        return max(0.0, self.latency + rng.uniform(-self.jitter, self.jitter))


@implementer(IHalfCloseableProtocol)
class _Side(protocol.Protocol):
    """One end of a proxied connection: the client's or the server's."""

    def __init__(self, link):
        self.link = link
        self.lost = self.read_ended = self.paused = False

    def connectionMade(self):
        self.link.side_connected(self)

    def dataReceived(self, data):
        self.link.received(self, data)

    def readConnectionLost(self):
        self.read_ended = True
        self.link.read_ended(self)

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.lost = True
        self.link.side_lost(self)

    def pause(self):
        if not self.paused:
            self.paused = True
            self.transport.pauseProducing()

    def resume(self):
        if self.paused and not (self.read_ended or self.lost):
            self.paused = False
            self.transport.resumeProducing()


@implementer(IPullProducer)
class _Pipe:
    """One direction of a proxied connection: delays, paces and forwards chunks in order.

    It is a pull producer of the sink's transport: Twisted calls resumeProducing
    whenever the sink's write buffer is empty, and the pipe writes only then, so
    data waits in the pipe's queue, where faults can act on it.
    """

    def __init__(self, link, direction, source, sink):
        self.link, self.direction = link, direction
        self.source, self.sink = source, sink
        self._queue = deque()  # [due time, bytes], in arrival order
        self.queued = 0
        self._sink_ready = self._registered = False
        self._last_due = self._next_free = 0.0
        self._timer = None
        self.ended = self.finished = False

    @property
    def _faults(self) -> Faults:
        return self.link.proxy.faults

    def start(self):
        self._registered = True
        self.sink.transport.registerProducer(self, False)

    def resumeProducing(self):
        self._sink_ready = True
        self._pump()

    def stopProducing(self):
        self._sink_ready = False

    @property
    def flushed(self) -> bool:
        """Nothing queued, and the sink's transport has handed everything to the kernel."""
        return not self._queue and (self._sink_ready or self.finished)

    def push(self, data: bytes):
        now = _reactor.start().seconds()
        due = max(now + self._faults.delay(self.link.proxy._random), self._last_due)
        self._last_due = due
        self._queue.append([due, data])
        self.queued += len(data)
        if self.queued >= HIGH_WATER:
            self.source.pause()
        self._pump()

    def end(self):
        """The source sends no more: deliver what is queued, then pass the FIN on."""
        self.ended = True
        self._pump()

    def discard(self):
        """Drop whatever is queued (lost in flight) and let go of the sink."""
        self._cancel_timer()
        self._queue.clear()
        self.queued = 0
        self.ended = self.finished = True
        self._unregister()

    def _pump(self):
        if self.finished or (self._timer is not None and self._timer.active()):
            return
        if self._queue and self._sink_ready:
            reactor = _reactor.start()
            now = reactor.seconds()
            wait = self._ready_at() - now
            if wait > 0:
                self._timer = reactor.callLater(wait, self._pump)
                return
            self._write(self._take(now))
        elif not self._queue and self.ended:
            self._finish()
            return
        self.link.check_cut()

    def _ready_at(self) -> float:
        due = self._queue[0][0]
        return due if self._faults.bandwidth is None else max(due, self._next_free)

    def _take(self, now: float) -> bytes:
        bandwidth = self._faults.bandwidth
        if bandwidth is None:
            parts = []
            while self._queue and self._queue[0][0] <= now:
                parts.append(self._queue.popleft()[1])
            data = b"".join(parts)
        else:
            data = self._take_slice(int(bandwidth * SLICE_SECONDS) or 1)
            start = max(self._next_free, now - SLICE_SECONDS)
            self._next_free = start + len(data) / bandwidth
        self.queued -= len(data)
        if self.queued <= HIGH_WATER // 2:
            self.source.resume()
        return data

    def _take_slice(self, size: int) -> bytes:
        head = self._queue[0]
        data = head[1][:size]
        if len(head[1]) > size:
            head[1] = head[1][size:]
        else:
            self._queue.popleft()
        return data

    def _write(self, data: bytes):
        self._sink_ready = False
        self.sink.transport.write(data)
        self.link.proxy._count(self.direction, len(data))

    def _finish(self):
        self.finished = True
        self._unregister()
        if not self.sink.lost:
            self.sink.transport.loseWriteConnection()
        self.link.pipe_finished()

    def _unregister(self):
        if self._registered:
            self._registered = False
            self.sink.transport.unregisterProducer()

    def _cancel_timer(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()


class _Link:
    """One proxied connection: the client's side, the server's side, a pipe each way."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.client, self.server = _Side(self), None
        self.pipes: list[_Pipe] = []
        self.admitted = dict.fromkeys(DIRECTIONS, 0)
        self.cutting: str | None = None  # set once cut_after's limit is reached
        self.closing = self._waiting_to_reset = False
        self.closed = defer.Deferred()
        self._connecting = None
        self._abort_call = None

    # -- connection set-up

    def side_connected(self, side):
        if side is self.client:
            self._connect_to_target()
            return
        self.server = side
        if self.closing:
            side.transport.abortConnection()
            return
        self.pipes = [
            _Pipe(self, "to_server", self.client, side),
            _Pipe(self, "to_client", side, self.client),
        ]
        for pipe in self.pipes:
            pipe.start()
        self.client.resume()

    def _connect_to_target(self):
        self.client.pause()  # until there is somewhere to send its data
        host, port = self.proxy.target
        endpoint = TCP4ClientEndpoint(_reactor.start(), host, port, timeout=CONNECT_TIMEOUT)
        self._connecting = connectProtocol(endpoint, _Side(self))
        self._connecting.addCallbacks(self._connected, self._not_connected)

    def _connected(self, _side):
        self._connecting = None

    def _not_connected(self, _failure):
        self._connecting = None
        if not self.closing:
            self.close("reset")
        self._maybe_closed()

    # -- data and ends

    def _pipe_from(self, side) -> _Pipe:
        return self.pipes[0] if side is self.client else self.pipes[1]

    def _pipe_to(self, side) -> _Pipe:
        return self.pipes[1] if side is self.client else self.pipes[0]

    def received(self, side, data: bytes):
        if self.closing or self.cutting:
            return  # past the cut: dropped
        pipe = self._pipe_from(side)
        data = self._admit(pipe.direction, data)
        if data:
            pipe.push(data)
        self.check_cut()

    def _admit(self, direction: str, data: bytes) -> bytes:
        """Trim `data` to what cut_after still allows; start cutting at the limit."""
        faults = self.proxy.faults
        if faults.cut_after is not None and faults.cut_direction in (None, direction):
            used = self.admitted[direction] if faults.cut_direction else sum(self.admitted.values())
            room = max(faults.cut_after - used, 0)
            if len(data) >= room:
                data = data[:room]
                self.cutting = faults.cut_how
        self.admitted[direction] += len(data)
        return data

    def read_ended(self, side):
        # Once a cut is decided, the cut is how the connection ends: a peer's own close
        # is not passed on, or a FIN could reach the other side before the cut's RST.
        if not (self.closing or self.cutting):
            self._pipe_from(side).end()

    def side_lost(self, side):
        if self.pipes and not self.closing:
            self._pipe_to(side).discard()
            if self.cutting:
                self.check_cut()
            else:
                self._pipe_from(side).end()
        if side is self.client and self._connecting is not None:
            self._connecting.cancel()
        self._maybe_closed()

    def pipe_finished(self):
        if not self.closing and all(pipe.finished for pipe in self.pipes):
            self.close(self.cutting or "close")

    # -- cutting and closing

    def check_cut(self):
        """Once cut_after's bytes are all delivered, cut the connection."""
        if not self.cutting or self.closing or self._waiting_to_reset:
            return
        if not all(pipe.flushed for pipe in self.pipes):
            return
        if self.cutting == "close":
            self.close("close")  # a FIN follows the data in order
        else:
            self._waiting_to_reset = True
            self._reset_once_sent(_reactor.start().seconds() + SEND_GRACE)

    def _reset_once_sent(self, deadline: float):
        """A reset discards what the kernel has not sent yet: wait until it has."""
        if self.closing:
            return
        reactor = _reactor.start()
        unsent = any(_unsent_bytes(side.transport) for side in self._live_sides())
        if unsent and reactor.seconds() < deadline:
            reactor.callLater(0.002, self._reset_once_sent, deadline)
        else:
            self.close("reset")

    def _live_sides(self) -> list[_Side]:
        return [s for s in (self.client, self.server) if s is not None and not s.lost]

    def close(self, how: str):
        """Cut now: reset (RST) or close (FIN) both sides; queued data is lost."""
        if self.closing:
            return
        self.closing = True
        for pipe in self.pipes:
            pipe.discard()
        if self._connecting is not None:
            self._connecting.cancel()
        for side in self._live_sides():
            if how == "reset":
                side.transport.abortConnection()
            else:
                side.transport.loseConnection()
        if how == "close":
            self._abort_call = _reactor.start().callLater(CLOSE_GRACE, self._abort_all)
        self._maybe_closed()

    def _abort_all(self):
        for side in self._live_sides():
            side.transport.abortConnection()

    def _maybe_closed(self):
        """Fire `closed` once both sides are gone and no connection attempt is pending."""
        server_gone = self.server is None or self.server.lost
        both_gone = self.client.lost and server_gone and self._connecting is None
        if self.closed.called or not both_gone:
            return
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self.proxy._links.discard(self)
        self.closed.callback(None)


class _ProxyFactory(protocol.Factory):
    noisy = False

    def __init__(self, proxy):
        self.proxy = proxy

    def buildProtocol(self, addr):
        link = _Link(self.proxy)
        self.proxy._links.add(link)
        self.proxy.connections_accepted += 1
        return link.client


class Proxy(Server):
    """A running fault-injecting proxy; faults and counters are documented in the module.

    Counters: `connections_accepted`, `bytes_to_server`, `bytes_to_client`
    (bytes delivered), and `connections` (live now). `errors` keeps what went
    wrong in a timer, such as failing to listen again after `refuse_for`.
    """

    kind = "tcp proxy"

    def __init__(self, name: str, host: str, target: tuple[str, int], faults: Faults, seed):
        super().__init__(name, host, 0)
        self.target = target
        self._random = random.Random(seed)
        self.connections_accepted = self.bytes_to_server = self.bytes_to_client = 0
        self.errors: list[BaseException] = []
        self._faults = faults
        self._faults_lock = threading.Lock()
        self._links: set[_Link] = set()
        self._factory = _ProxyFactory(self)
        self._listening = None
        self._reopen_call = None
        self._accepting = threading.Event()

    # -- faults

    @property
    def faults(self) -> Faults:
        """The faults in force now (an immutable snapshot)."""
        return self._faults

    def set_faults(self, **changes) -> Faults:
        """Change some faults (Faults field names) from any thread; return the new ones."""
        with self._faults_lock:
            self._faults = dataclasses.replace(self._faults, **changes)
            return self._faults

    @property
    def connections(self) -> int:
        return len(self._links)

    def _count(self, direction: str, size: int):
        if direction == "to_server":
            self.bytes_to_server += size
        else:
            self.bytes_to_client += size

    # -- commands

    def cut(self, how: str = "reset", timeout: float = 5.0) -> int:
        """Cut every live connection now; wait until both sides closed; return how many."""
        _check_how(how)
        return _reactor.call(self._cut_all, how, timeout=timeout)

    def refuse(self, on: bool = True) -> None:
        """Stop listening (new clients are refused) or, with on=False, listen again."""
        _reactor.call(self._set_refusing, on, None)

    def refuse_for(self, seconds: float) -> None:
        """Refuse new clients now and accept them again after `seconds`."""
        _reactor.call(self._set_refusing, True, seconds)

    @property
    def refusing(self) -> bool:
        return not self._accepting.is_set()

    def wait_accepting(self, timeout: float = 5.0) -> None:
        """Wait until the proxy listens again (after refuse_for); TimeoutError if not."""
        if not self._accepting.wait(timeout):
            raise TimeoutError(f"proxy {self.name!r} not accepting after {timeout:g} s")

    # -- in the reactor thread

    def _listen(self):
        if self._listening is not None or self.stopped:
            return
        self._listening = _reactor.start().listenTCP(self.port, self._factory, interface=self.host)
        self.port = self._listening.getHost().port
        self._accepting.set()

    def _reopen(self):
        try:
            self._listen()
        except Exception as exc:  # nobody to raise to in a timer: keep it for a cell
            self.errors.append(exc)

    def _stop_listening(self):
        self._accepting.clear()
        listening, self._listening = self._listening, None
        return listening.stopListening() if listening is not None else None

    def _cancel_reopen(self):
        if self._reopen_call is not None and self._reopen_call.active():
            self._reopen_call.cancel()

    def _set_refusing(self, on: bool, seconds: float | None):
        self._cancel_reopen()
        if not on:
            return self._listen()
        if seconds is not None:
            self._reopen_call = _reactor.start().callLater(seconds, self._reopen)
        return self._stop_listening()

    def _cut_all(self, how: str):
        links = list(self._links)
        for link in links:
            link.close(how)
        waits = [link.closed for link in links]
        return defer.gatherResults(waits).addCallback(lambda _: len(links))

    def _shutdown(self, timeout):
        _reactor.call(self._close_everything, timeout=timeout)

    def _close_everything(self):
        self._cancel_reopen()
        waits = [defer.maybeDeferred(self._stop_listening)]
        for link in list(self._links):
            waits.append(link.closed)
            link.close("close")
        return defer.gatherResults(waits)


def serve_proxy(
    name: str,
    target_address,
    *,
    latency: float = 0.0,
    jitter: float = 0.0,
    bandwidth: float | None = None,
    cut_after: int | None = None,
    cut_direction: str | None = None,
    cut_how: str = "reset",
    seed=0,
    host: str = "127.0.0.1",
) -> Proxy:
    """Serve a fault-injecting proxy to `target_address` (a (host, port) or a Server)."""
    check_loopback(host)
    faults = Faults(latency, jitter, bandwidth, cut_after, cut_direction, cut_how)
    target = tuple(getattr(target_address, "address", target_address))
    _replace(name)
    proxy = Proxy(name, host, target, faults, seed)
    _reactor.call(proxy._listen)
    return _register(proxy)
