"""A lossy UDP relay on 127.0.0.1: drops, duplicates and reorders, reproducibly.

`serve_udp_relay(name, target)` relays each datagram a client sends it to the
target, from a port of its own per client, and relays the target's replies
back to that client. On the way, in each direction, each datagram is

- dropped with probability ``drop``, else
- sent twice with probability ``duplicate``, else
- held back with probability ``reorder``: it goes out right after the next
  datagram the relay sends the same way, so the two swap places; if nothing
  follows within ``hold`` seconds (or on `UdpRelay.flush`), it goes out alone,
  late rather than out of order (choose ``hold`` longer than the gaps between
  a client's datagrams, or that outcome depends on timing). Only one datagram is held at a time: one
  picked for reordering while another is held is sent normally and recorded
  as "forward", which releases the held one after it;
- otherwise forwarded.

One draw from a ``random.Random`` decides each datagram. Each direction has its
own generator, seeded from ``seed``, and its own sequence numbers (0, 1, 2...
in arrival order), so a client that sends datagrams one after another gets the
same decisions on every run, however its requests and the replies interleave.
`UdpRelay.decisions` lists them as (seq, action) pairs, `UdpRelay.log` as
`Decision` records with the datagram itself.

Why Twisted rather than a thread with selectors: the relay then runs in the
kernel's one reactor thread like every other helper server, the hold timeout is
a `callLater`, there is no thread to join on stop, and rates changed from a
cell are read between two datagrams, never in the middle of one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import socket
import threading
from typing import NamedTuple

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol

from . import reactor as _reactor
from .servers import Server, _register, _replace, check_loopback

DIRECTIONS = ("to_server", "to_client")
ACTIONS = ("forward", "drop", "duplicate", "reorder")


@dataclasses.dataclass(frozen=True)
class Rates:
    """Probabilities of dropping, duplicating and reordering one datagram."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0

    def __post_init__(self):
        rates = (self.drop, self.duplicate, self.reorder)
        if any(not 0 <= rate <= 1 for rate in rates) or sum(rates) > 1:
            raise ValueError("rates must each be in [0, 1] and add up to at most 1")

    def decide(self, draw: float) -> str:
        """The action for a datagram whose random draw (in [0, 1)) is `draw`."""
        threshold = 0.0
        rates = {"drop": self.drop, "duplicate": self.duplicate, "reorder": self.reorder}
        for action, rate in rates.items():
            threshold += rate
            if draw < threshold:
                return action
        return "forward"


class Decision(NamedTuple):
    """What the relay did with one datagram."""

    direction: str
    seq: int
    action: str
    data: bytes


class _Lane:
    """One client's datagrams in one direction: where a reordered datagram waits."""

    def __init__(self, send, hold: float):
        self.send, self.hold = send, hold
        self.held: bytes | None = None
        self._timer = None

    def keep(self, data: bytes):
        self.held = data
        self._timer = _reactor.start().callLater(self.hold, self.release)

    def release(self) -> int:
        """Send the held datagram, if any; return how many were sent (0 or 1)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        held, self.held = self.held, None
        if held is None:
            return 0
        self.send(held)
        return 1

    def drop_held(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self.held = None


class _ToServer(DatagramProtocol):
    """The relay's own port for one client, connected to the target; gets its replies."""

    def __init__(self, relay, client):
        self.relay, self.client = relay, client

    def datagramReceived(self, data, addr):
        self.relay._relay("to_client", self.client, data)

    def connectionRefused(self):
        pass  # nothing listens at the target (yet): the datagram is lost, as UDP may


class _FromClients(DatagramProtocol):
    def __init__(self, relay):
        self.relay = relay

    def datagramReceived(self, data, addr):
        self.relay._relay("to_server", addr, data)


class UdpRelay(Server):
    """A running lossy UDP relay; see the module docstring for what it does."""

    kind = "udp relay"

    def __init__(self, name, host, target, rates: Rates, seed, hold: float):
        super().__init__(name, host, 0)
        self.target, self.hold = target, hold
        self._rates = rates
        self._random = {d: random.Random(f"{seed}/{d}") for d in DIRECTIONS}
        self._next_seq = dict.fromkeys(DIRECTIONS, 0)
        self._log: list[Decision] = []
        self._logged = threading.Condition()
        self._ports: dict[tuple, object] = {}  # client address -> its port to the target
        self._lanes: dict[tuple, _Lane] = {}  # (direction, client address) -> lane
        self._listening = None

    # -- rates and the record

    @property
    def rates(self) -> Rates:
        return self._rates

    def set_rates(self, **changes) -> Rates:
        """Change drop, duplicate and/or reorder from any thread; return the new rates."""
        with self._logged:
            self._rates = dataclasses.replace(self._rates, **changes)
            return self._rates

    @property
    def log(self) -> list[Decision]:
        """Every decision so far, in the order they were made."""
        with self._logged:
            return list(self._log)

    def decisions(self, direction: str = "to_server") -> list[tuple[int, str]]:
        """(seq, action) for each datagram that went `direction`, in arrival order."""
        _check_direction(direction)
        return [(d.seq, d.action) for d in self.log if d.direction == direction]

    def passed(self, direction: str = "to_server") -> int:
        """How many datagrams its decisions so far send on `direction` (one client).

        A duplicate counts twice; a datagram held for reordering counts once the next
        datagram has released it, not while it waits (choose ``hold`` long enough).
        """
        count, held = 0, False
        for _, action in self.decisions(direction):
            if action == "reorder":
                held = True
            elif action != "drop":
                count += (2 if action == "duplicate" else 1) + held
                held = False
        return count

    def wait_for(self, count: int, direction: str = "to_server", timeout: float = 5.0):
        """Wait until `count` datagrams went `direction`; return `decisions(direction)`."""
        _check_direction(direction)

        def enough():
            return sum(d.direction == direction for d in self._log) >= count

        with self._logged:
            if not self._logged.wait_for(enough, timeout):
                raise TimeoutError(
                    f"relay {self.name!r}: fewer than {count} datagrams {direction}"
                    f" after {timeout:g} s"
                )
        return self.decisions(direction)

    def flush(self) -> int:
        """Send every held datagram now; return how many."""
        return _reactor.call(lambda: sum(lane.release() for lane in self._lanes.values()))

    # -- in the reactor thread

    def _listen(self):
        reactor = _reactor.start()
        self._listening = reactor.listenUDP(0, _FromClients(self), interface=self.host)
        self.port = self._listening.getHost().port

    def _relay(self, direction: str, client, data: bytes):
        lane = self._lane(direction, client)
        action = self._rates.decide(self._random[direction].random())
        if action == "reorder" and lane.held is not None:
            action = "forward"
        self._record(direction, action, data)
        if action == "drop":
            return
        if action == "reorder":
            lane.keep(data)
            return
        lane.send(data)
        if action == "duplicate":
            lane.send(data)
        lane.release()

    def _record(self, direction, action, data):
        with self._logged:
            seq = self._next_seq[direction]
            self._next_seq[direction] = seq + 1
            self._log.append(Decision(direction, seq, action, data))
            self._logged.notify_all()

    def _lane(self, direction: str, client) -> _Lane:
        key = (direction, client)
        if key not in self._lanes:
            port = self._port_for(client)
            if direction == "to_server":
                send = port.write
            else:
                send = lambda data: self._listening.write(data, client)
            self._lanes[key] = _Lane(_lossy(send), self.hold)
        return self._lanes[key]

    def _port_for(self, client):
        if client not in self._ports:
            port = _reactor.start().listenUDP(0, _ToServer(self, client), interface=self.host)
            port.connect(*self.target)
            self._ports[client] = port
        return self._ports[client]

    def _shutdown(self, timeout):
        _reactor.call(self._close_everything, timeout=timeout)

    def _close_everything(self):
        for lane in self._lanes.values():
            lane.drop_held()
        ports = [self._listening, *self._ports.values()]
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])


def _lossy(send):
    """`send`, but a full socket buffer loses the datagram, as UDP may, instead of raising."""

    def send_or_lose(data):
        with contextlib.suppress(OSError):
            send(data)

    return send_or_lose


def _check_direction(direction: str):
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")


def serve_udp_relay(
    name: str,
    target_address,
    *,
    drop: float = 0.0,
    duplicate: float = 0.0,
    reorder: float = 0.0,
    seed=0,
    hold: float = 0.05,
    host: str = "127.0.0.1",
) -> UdpRelay:
    """Serve a lossy relay to the UDP `target_address` (a (host, port) or a Server)."""
    check_loopback(host)
    rates = Rates(drop, duplicate, reorder)
    if hold <= 0:
        raise ValueError("hold must be > 0 seconds")
    target_host, target_port = getattr(target_address, "address", target_address)
    target = (socket.gethostbyname(target_host), target_port)
    _replace(name)
    relay = UdpRelay(name, host, target, rates, seed, hold)
    _reactor.call(relay._listen)
    return _register(relay)
