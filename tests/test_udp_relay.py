import socket

import pytest

from helpers import servers, stop_all
from helpers.udp_relay import Decision, Rates, serve_udp_relay

TIMEOUT = 2
COUNT = 12
LONG_HOLD = 5.0  # longer than any test: only flush() or the next datagram releases


def udp_socket(bind=False):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    if bind:
        sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def target():
    with udp_socket(bind=True) as sock:
        yield sock


@pytest.fixture
def client():
    with udp_socket() as sock:
        yield sock


def send_numbers(client, relay, count=COUNT):
    for i in range(count):
        client.sendto(b"%d" % i, relay.address)
    return relay.wait_for(count)


def arrivals(target, client, relay):
    """What reached the target, in order: flush held datagrams, then read to an end marker."""
    relay.flush()
    relay.set_rates(drop=0, duplicate=0, reorder=0)
    client.sendto(b"end", relay.address)
    received = []
    while (data := target.recv(100)) != b"end":
        received.append(int(data))
    return received


def run_demo(target, client, seed, **rates):
    relay = serve_udp_relay("relay", target.getsockname(), seed=seed, hold=LONG_HOLD, **rates)
    actions = [action for _, action in send_numbers(client, relay)]
    received = arrivals(target, client, relay)
    relay.stop()
    return actions, received


F, X, D, R = "forward", "drop", "duplicate", "reorder"


def test_with_zero_rates_everything_is_forwarded_and_replies_come_back(target, client):
    relay = serve_udp_relay("relay", target.getsockname())
    for i in range(COUNT):
        client.sendto(b"ping %d" % i, relay.address)
        data, relay_port = target.recvfrom(100)
        assert data == b"ping %d" % i
        target.sendto(b"pong %d" % i, relay_port)
        assert client.recvfrom(100) == (b"pong %d" % i, relay.address)
    assert relay.decisions("to_server") == [(i, F) for i in range(COUNT)]
    assert relay.decisions("to_client") == [(i, F) for i in range(COUNT)]
    assert relay.log[:2] == [
        Decision("to_server", 0, F, b"ping 0"),
        Decision("to_client", 0, F, b"pong 0"),
    ]
    relay.stop()


def test_drop_loses_exactly_the_datagrams_its_seed_picks(target, client):
    actions, received = run_demo(target, client, seed=7, drop=0.3)
    assert actions == [F, F, X, F, F, F, F, X, X, F, F, F]
    assert received == [0, 1, 3, 4, 5, 6, 9, 10, 11]


def test_duplicate_sends_the_picked_datagrams_twice(target, client):
    actions, received = run_demo(target, client, seed=7, duplicate=0.3)
    assert actions == [F, F, D, F, F, F, F, D, D, F, F, F]
    assert received == [0, 1, 2, 2, 3, 4, 5, 6, 7, 7, 8, 8, 9, 10, 11]


def test_reorder_swaps_a_held_datagram_with_the_next_one(target, client):
    actions, received = run_demo(target, client, seed=7, reorder=0.3)
    # 8 was drawn for reordering while 7 was held: it goes normally, releasing 7.
    assert actions == [F, F, R, F, F, F, F, R, F, F, F, F]
    assert received == [0, 1, 3, 2, 4, 5, 6, 8, 7, 9, 10, 11]


def test_all_three_together(target, client):
    actions, received = run_demo(target, client, seed=7, drop=0.2, duplicate=0.2, reorder=0.2)
    assert actions == [D, R, D, D, R, F, F, D, X, F, F, F]
    assert received == [0, 0, 2, 2, 1, 3, 3, 5, 4, 6, 7, 7, 9, 10, 11]


def test_passed_counts_what_the_decisions_send_on(target, client):
    relay = serve_udp_relay("relay", target.getsockname(), seed=7, hold=LONG_HOLD,
                            drop=0.2, duplicate=0.2, reorder=0.2)
    send_numbers(client, relay)  # D R D D R F F D X F F F, as above
    assert relay.passed("to_server") == 15
    assert len(arrivals(target, client, relay)) == 15
    assert relay.passed("to_client") == 0
    relay.stop()


def test_the_same_seed_gives_the_same_run_and_another_seed_another(target, client):
    rates = {"drop": 0.25, "duplicate": 0.25, "reorder": 0.25}
    first = run_demo(target, client, seed=1, **rates)
    assert run_demo(target, client, seed=1, **rates) == first
    assert run_demo(target, client, seed=2, **rates) != first


def test_faults_apply_to_replies_too(target, client):
    relay = serve_udp_relay("relay", target.getsockname(), duplicate=1.0)
    client.sendto(b"ping", relay.address)
    first, relay_port = target.recvfrom(100)
    assert (first, target.recv(100)) == (b"ping", b"ping")
    target.sendto(b"pong", relay_port)
    assert [client.recv(100) for _ in range(2)] == [b"pong", b"pong"]
    assert relay.decisions("to_client") == [(0, D)]
    relay.stop()


def test_rates_change_while_it_runs(target, client):
    relay = serve_udp_relay("relay", target.getsockname(), drop=1.0)
    send_numbers(client, relay, 3)
    assert relay.set_rates(drop=0.0) == Rates()
    client.sendto(b"3", relay.address)
    assert target.recv(100) == b"3"
    assert relay.decisions() == [(0, X), (1, X), (2, X), (3, F)]
    with pytest.raises(ValueError, match="add up to at most 1"):
        relay.set_rates(drop=0.6, reorder=0.6)
    assert relay.rates == Rates()
    relay.stop()


def test_a_held_datagram_goes_out_alone_after_the_hold_time(target, client):
    relay = serve_udp_relay("relay", target.getsockname(), reorder=1.0, hold=0.05)
    client.sendto(b"late", relay.address)
    assert target.recv(100) == b"late"
    assert relay.decisions() == [(0, R)]
    relay.stop()


def test_only_one_datagram_is_held_at_a_time(target, client):
    relay = serve_udp_relay("relay", target.getsockname(), reorder=1.0, hold=LONG_HOLD)
    assert send_numbers(client, relay, 3) == [(0, R), (1, F), (2, R)]
    assert relay.flush() == 1
    assert [int(target.recv(100)) for _ in range(3)] == [1, 0, 2]
    relay.stop()


def test_rates_must_be_probabilities(target):
    for bad in [{"drop": -0.1}, {"duplicate": 1.5}, {"drop": 0.5, "duplicate": 0.6}]:
        with pytest.raises(ValueError):
            serve_udp_relay("relay", target.getsockname(), **bad)
    with pytest.raises(ValueError, match="hold"):
        serve_udp_relay("relay", target.getsockname(), hold=0)
    assert servers() == []


def test_rates_decide_by_one_draw():
    rates = Rates(drop=0.1, duplicate=0.2, reorder=0.3)
    draws = [0.0, 0.09, 0.1, 0.29, 0.31, 0.59, 0.61, 0.99]
    assert [rates.decide(d) for d in draws] == [X, X, D, D, R, R, F, F]


def test_wait_for_times_out_with_a_clear_error(target):
    relay = serve_udp_relay("relay", target.getsockname())
    with pytest.raises(TimeoutError, match="fewer than 1 datagrams to_server"):
        relay.wait_for(1, timeout=0.05)
    with pytest.raises(ValueError, match="direction"):
        relay.decisions("sideways")
    relay.stop()


def test_stop_and_stop_all_leave_nothing(target, client):
    relay = serve_udp_relay("relay", target.getsockname(), reorder=1.0, hold=LONG_HOLD)
    send_numbers(client, relay, 1)  # held, and its per-client port is open
    assert [s.name for s in servers()] == ["relay"]
    assert repr(relay) == f"<udp relay 'relay' 127.0.0.1:{relay.port}>"
    assert stop_all() == ["relay"]
    assert servers() == [] and relay.stopped
    assert repr(relay) == "<udp relay 'relay' stopped>"


def test_serving_a_name_again_replaces_the_old_relay(target):
    old = serve_udp_relay("relay", target.getsockname())
    new = serve_udp_relay("relay", target.getsockname())
    assert old.stopped and servers() == [new]
    new.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_refuses_to_listen_anywhere_but_loopback(target, host):
    with pytest.raises(ValueError, match="loopback only"):
        serve_udp_relay("relay", target.getsockname(), host=host)
    assert servers() == []
