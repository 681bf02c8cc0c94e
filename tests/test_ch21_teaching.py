"""Chapter 21's teaching code, tried the way a reader's use would break it.

Everything comes from the notebook's `# module: redis_server` cells: the incremental
RespParser, encode, the Keyspace with its clock, the command handlers and table, and the
RedisProtocol/RedisFactory. Without a network: StringTransport and task.Clock. Live, on
127.0.0.1: plain sockets, the real `redis` client (RESP3 by default, and protocol=2), and
redis-cli and nettalk where installed.
"""

import contextlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry
from twisted.internet import task
from twisted.internet.testing import StringTransport

from helpers import serve
from helpers.notebook_code import load
from helpers.reactor import call, start
from helpers.twisted_log import logged_errors

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "21_redis_capstone.ipynb"
m = load(NOTEBOOK, "redis_server")
buffered = load(ROOT / "notebooks" / "12_flow_control.ipynb", "flow_control").buffered
reactor = start()


def command(*words):
    words = [w if isinstance(w, bytes) else str(w).encode() for w in words]
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def feed_all(parser, pieces):
    return [c for piece in pieces for c in parser.feed(piece)]


# -- the parser -------------------------------------------------------------------

STREAM_COMMANDS = [[b"SET", b"k", b"a\r\nb"], [b"GET", b""], [b"PING"], [b"*$\r\n", b"-1"]]
STREAM = b"".join(command(*c) for c in STREAM_COMMANDS)


def test_every_single_split_point_gives_the_same_commands():
    for i in range(len(STREAM) + 1):
        assert feed_all(m.RespParser(), [STREAM[:i], STREAM[i:]]) == STREAM_COMMANDS, i


def test_every_pair_of_split_points_gives_the_same_commands():
    n = len(STREAM)
    for i in range(n + 1):
        for j in range(i, n + 1):
            pieces = [STREAM[:i], STREAM[i:j], STREAM[j:]]
            assert feed_all(m.RespParser(), pieces) == STREAM_COMMANDS, (i, j)


def test_one_byte_at_a_time():
    parser = m.RespParser()
    assert feed_all(parser, [STREAM[i:i + 1] for i in range(len(STREAM))]) == STREAM_COMMANDS
    assert not parser.buffer and parser.args is None and parser.size is None


words = st.lists(st.binary(max_size=20), min_size=1, max_size=5)
inline_words = st.lists(st.from_regex(rb"[A-Za-z0-9]{1,8}", fullmatch=True), min_size=1,
                        max_size=4)


@settings(max_examples=300, database=None, deadline=None)
@given(st.lists(st.one_of(words.map(lambda w: ("array", w)),
                          inline_words.map(lambda w: ("inline", w))), max_size=8),
       st.data())
def test_any_split_of_arrays_and_inline_commands(commands, data):
    stream = b"".join(command(*w) if kind == "array" else b" ".join(w) + b"\r\n"
                      for kind, w in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(m.RespParser(), pieces) == [w for _, w in commands]


@pytest.mark.parametrize("bad, message", [
    (b"*1\r\n$-1\r\n", "invalid bulk length"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*1\r\n$536870913\r\n", "invalid bulk length"),  # 512 MiB + 1
    (b"*1\r\n$99999999999999999999999\r\n", "invalid bulk length"),
    (b"*1\r\n$" + b"9" * 5000 + b"\r\n", "invalid bulk length"),  # int() refuses it
    (b"*" + b"9" * 5000 + b"\r\n", "invalid multibulk length"),
    (b"*1\r\n$ 3\r\n", "invalid bulk length"),
    (b"*1\r\n$\r\n", "invalid bulk length"),
    (b"*1048577\r\n", "invalid multibulk length"),
    (b"*x\r\n", "invalid multibulk length"),
    (b"*1\r\n:3\r\n", "expected '$', got ':'"),
    (b"*1\r\n$3\r\nabcd\r\n", "bulk string not followed by \\r\\n"),
])
def test_bad_input_raises_after_the_commands_before_it(bad, message):
    parser, got = m.RespParser(), []
    with pytest.raises(m.ProtocolError, match=f"^{re.escape(message)}$"):
        for c in parser.feed(command("PING") + b"PING\r\n" + bad):
            got.append(c)
    assert got == [[b"PING"], [b"PING"]]


def test_a_huge_length_is_refused_before_anything_is_buffered():
    parser = m.RespParser(max_bulk=1000)
    assert list(parser.feed(b"*1\r\n$1000\r\n" + b"x" * 10)) == []  # 1000 is allowed
    with pytest.raises(m.ProtocolError):
        list(m.RespParser(max_bulk=1000).feed(b"*1\r\n$1001\r\n"))


def test_a_line_without_end_is_refused_at_64_kib_not_buffered_forever():
    parser = m.RespParser()
    list(parser.feed(b"A" * m.MAX_INLINE))  # at the limit: still waiting
    with pytest.raises(m.ProtocolError, match="too big inline request"):
        list(parser.feed(b"A"))
    with pytest.raises(m.ProtocolError):  # a length line that never ends, too
        list(m.RespParser().feed(b"*1\r\n$" + b"1" * (m.MAX_INLINE + 10)))


def test_empty_arrays_and_blank_lines_are_ignored():
    assert feed_all(m.RespParser(), [b"*0\r\n*-1\r\n\r\n   \r\nPING\r\n"]) == [[b"PING"]]


def test_a_large_value_fed_in_small_pieces_is_linear_enough():
    value = b"v" * 2_000_000
    stream = command("SET", "k", value)
    parser = m.RespParser()
    got = feed_all(parser, [stream[i:i + 1000] for i in range(0, len(stream), 1000)])
    assert got == [[b"SET", b"k", value]] and not parser.buffer


# -- replies ------------------------------------------------------------------------


def test_encode_in_both_protocols():
    assert m.encode(None) == b"$-1\r\n" and m.encode(None, 3) == b"_\r\n"
    assert m.encode([None, [1, b""]], 3) == b"*2\r\n_\r\n*2\r\n:1\r\n$0\r\n\r\n"
    assert m.encode({b"a": 1}) == b"*2\r\n$1\r\na\r\n:1\r\n"
    assert m.encode({b"a": None}, 3) == b"%1\r\n$1\r\na\r\n_\r\n"
    assert m.encode(m.Simple("OK")) == b"+OK\r\n"
    assert m.encode(m.CommandError("ERR x")) == b"-ERR x\r\n"
    for bad in ["text", True, 1.5]:
        with pytest.raises(TypeError):
            m.encode(bad)


# -- commands, without a network --------------------------------------------------------


def session(clock=None):
    clock = clock or task.Clock()
    proto = m.RedisFactory(clock).buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)

    def send(*lines):
        transport.clear()
        for line in lines:
            proto.dataReceived(line if isinstance(line, bytes) else command(*line.split()))
        return transport.value()

    return clock, proto, transport, send


def run(db, line):
    return m.execute(m.COMMANDS, db, line.encode().split())


def test_set_options_and_their_errors():
    clock = task.Clock()
    db = m.Keyspace(clock)
    assert run(db, "SET a 1 NX") == "OK" and run(db, "SET a 2 NX") is None
    assert run(db, "SET b 1 XX") is None and run(db, "GET b") is None
    assert run(db, "SET a 3 xx ex 10") == "OK" and run(db, "TTL a") == 10
    assert run(db, "SET a 4") == "OK" and run(db, "TTL a") == -1  # SET clears the deadline
    assert run(db, "SET p v PX 1500") == "OK" and run(db, "TTL p") == 2  # rounded
    clock.advance(1.5)
    assert run(db, "GET p") is None and run(db, "TTL p") == -2
    for line, error in [("SET a 1 NX XX", "ERR syntax error"),
                        ("SET a 1 EX 1 PX 1", "ERR syntax error"),
                        ("SET a 1 EX", "ERR syntax error"),
                        ("SET a 1 FOO", "ERR syntax error"),
                        ("SET a 1 EX x", "ERR value is not an integer or out of range"),
                        ("SET a 1 EX 0", "ERR invalid expire time in 'set' command"),
                        ("SET a 1 PX -5", "ERR invalid expire time in 'set' command"),
                        ("SET a", "ERR wrong number of arguments for 'set' command")]:
        got = run(db, line)
        assert isinstance(got, m.CommandError) and str(got) == error, line
    assert run(db, "GET a") == b"4"  # refused SETs changed nothing


def test_incr_is_strict_about_integers_and_keeps_the_deadline():
    clock = task.Clock()
    db = m.Keyspace(clock)
    run(db, "SET n 9 EX 10")
    assert run(db, "INCR n") == 10 and run(db, "TTL n") == 10
    clock.advance(10)
    assert run(db, "INCR n") == 1 and run(db, "TTL n") == -1  # expired: starts from 0
    for value in [b"+1", b" 1", b"01", b"1.0", b"-0", b"", b"9223372036854775808",
                  b"9" * 5000]:  # more digits than int() converts
        db.set(b"s", value)
        assert str(run(db, "INCR s")) == "ERR value is not an integer or out of range", value
    db.set(b"s", b"9223372036854775807")
    assert str(run(db, "INCR s")) == "ERR increment or decrement would overflow"
    assert run(db, "INCRBY s -9223372036854775807") == 0
    assert str(run(db, "INCRBY s 1x")) == "ERR value is not an integer or out of range"


def test_expire_ttl_and_del_with_a_clock():
    clock = task.Clock()
    db = m.Keyspace(clock)
    run(db, "SET k v")
    assert run(db, "EXPIRE nope 10") == 0 and run(db, "EXPIRE k 10") == 1
    clock.advance(9.4)
    assert run(db, "TTL k") == 1
    clock.advance(0.6)
    assert run(db, "TTL k") == -2 and run(db, "DEL k") == 0 and db.values == {}
    run(db, "SET k v")
    assert run(db, "EXPIRE k 0") == 1 and run(db, "GET k") is None
    run(db, "SET a 1")
    run(db, "SET b 1 PX 1")
    clock.advance(0.001)
    assert run(db, "DEL a b a c") == 1  # expired and repeated keys do not count


def test_unknown_commands_and_arity_errors_name_the_command_as_redis_does():
    db = m.Keyspace(task.Clock())
    assert str(run(db, "fly me now")) == \
        "ERR unknown command 'fly', with args beginning with: 'me' 'now' "
    assert str(run(db, "ECHO")) == "ERR wrong number of arguments for 'echo' command"
    assert str(run(db, "get a b")) == "ERR wrong number of arguments for 'get' command"
    assert run(db, "ping") == "PONG" and run(db, "PING hi") == b"hi"


def test_multi_exec_discard_and_their_errors():
    _, _, _, send = session()
    assert send("EXEC") == b"-ERR EXEC without MULTI\r\n"
    assert send("DISCARD") == b"-ERR DISCARD without MULTI\r\n"
    assert send("MULTI", "MULTI") == b"+OK\r\n-ERR MULTI calls can not be nested\r\n"
    assert send("SET a x", "INCR a", "GET a", "EXEC") == (
        b"+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n"
        b"-ERR value is not an integer or out of range\r\n$1\r\nx\r\n")
    assert send("MULTI", "SET a y", "DISCARD", "GET a") == b"+OK\r\n+QUEUED\r\n+OK\r\n$1\r\nx\r\n"
    assert send("MULTI", "SET a", "SET a z", "EXEC", "GET a") == (
        b"+OK\r\n-ERR wrong number of arguments for 'set' command\r\n+QUEUED\r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n$1\r\nx\r\n")
    assert send("MULTI", "EXEC") == b"+OK\r\n*0\r\n"


def test_hello_switches_the_connection_and_only_it():
    _, _, _, send = session()
    assert send("GET nope") == b"$-1\r\n"
    reply = send("HELLO 3")
    assert reply.startswith(b"%7\r\n") and b"$5\r\nproto\r\n:3\r\n" in reply
    assert send("GET nope", "MULTI", "GET nope", "EXEC") == \
        b"_\r\n+OK\r\n+QUEUED\r\n*1\r\n_\r\n"
    assert send("HELLO 2").startswith(b"*14\r\n") and send("GET nope") == b"$-1\r\n"
    assert send("HELLO 4") == b"-NOPROTO unsupported protocol version\r\n"
    assert send("HELLO x").startswith(b"-ERR Protocol version is not an integer")
    assert send("HELLO 3 AUTH u p") == b"-ERR syntax error\r\n"
    assert send("GET nope") == b"$-1\r\n"  # refused HELLOs changed nothing
    assert send("HELLO").startswith(b"*14\r\n")
    _, _, _, other = session()
    assert other("CLIENT SETINFO LIB-NAME x", "CLIENT SETNAME n", "CLIENT KILL") == (
        b"+OK\r\n+OK\r\n-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n")


def test_a_protocol_error_answers_what_came_before_then_closes():
    _, _, transport, send = session()
    assert send(b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$-2\r\nPING\r\n") == (
        b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n")
    assert transport.disconnecting


def test_quit_answers_then_closes_and_ignores_the_rest():
    _, _, transport, send = session()
    assert send(b"PING\r\nQUIT\r\nPING\r\n") == b"+PONG\r\n+OK\r\n"
    assert transport.disconnecting


def test_a_split_command_is_answered_once_complete():
    _, _, _, send = session()
    data = command("SET", "k", "v") + command("GET", "k")
    replies = [send(data[i:i + 1]) for i in range(len(data))]
    assert b"".join(replies) == b"+OK\r\n$1\r\nv\r\n"
    assert sum(1 for r in replies if r) == 2


# -- live, with real clients -----------------------------------------------------------


@pytest.fixture
def server():
    srv = serve("ch21-test", m.RedisFactory(reactor))
    yield srv
    srv.stop()


def client(srv, **kw):
    return redis.Redis(port=srv.port, retry=Retry(NoBackoff(), 0), socket_timeout=2, **kw)


@pytest.mark.parametrize("protocol", [None, 2, 3])
def test_the_redis_client_with_its_defaults_and_each_protocol(server, protocol):
    r = client(server, **({} if protocol is None else {"protocol": protocol}))
    try:
        with logged_errors() as errors:
            assert r.ping() is True and r.get("missing") is None
            assert r.set("k", "v", ex=10) and r.ttl("k") == 10 and r.get("k") == b"v"
            assert r.set("k", "w", nx=True) is None and r.set("k", "w", xx=True) is True
            assert r.incr("n") == 1 and r.incr("n", 5) == 6 and r.delete("k", "n", "x") == 2
            with r.pipeline() as pipe:
                assert pipe.set("a", 1).incr("a").get("a").get("none").execute() == \
                    [True, 2, b"2", None]
            with r.pipeline(transaction=False) as pipe:
                assert pipe.ping().get("a").expire("a", 5).ttl("a").execute() == \
                    [True, b"2", True, 5]
            with pytest.raises(redis.ResponseError, match="unknown command 'FLY'"):
                r.execute_command("FLY")
            assert r.echo("still here") == b"still here"
        assert errors == []
    finally:
        r.close()


def test_the_client_gets_a_large_value_back_whole(server):
    r = client(server)
    try:
        value = bytes(range(256)) * 8192  # 2 MiB, every byte value, \r\n included
        assert r.set("big", value) and r.get("big") == value
    finally:
        r.close()


def exchange(srv, data, timeout=2):
    with socket.create_connection(srv.address, timeout=timeout) as sock:
        sock.sendall(data)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def test_bad_input_on_a_real_connection_loses_nothing_for_anyone(server):
    other = client(server, protocol=2)
    try:
        other.set("k", "before")
        with logged_errors() as errors:
            assert exchange(server, b"PING\r\n*1\r\n$-1\r\nPING\r\n") == \
                b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
            assert exchange(server, b"PING\r\n" + b"x" * 100_000) == \
                b"+PONG\r\n-ERR Protocol error: too big inline request\r\n"
            for _ in range(3):  # vanish in the middle of a command, with a reset
                sock = socket.create_connection(server.address, timeout=2)
                sock.sendall(command("SET", "k", "x" * 100)[:-30])
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            assert other.get("k") == b"before" and other.ping()
        assert errors == []
    finally:
        other.close()


def test_a_client_that_half_closes_gets_every_reply_then_the_close(server):
    """As from redis-server: a pipe into nettalk or `nc -N` sends, then shuts down its
    sending side, then reads. Many replies, so that some are still queued at the EOF."""
    requests = b"SET n 5\r\nINCRBY n " + b"9" * 5000 + b"\r\n" + b"INCR n\r\n" * 20_000
    expected = b"+OK\r\n-ERR value is not an integer or out of range\r\n" + b"".join(
        b":%d\r\n" % n for n in range(6, 20_006))
    with logged_errors() as errors, socket.create_connection(server.address, timeout=2) as s:
        s.sendall(requests)
        s.shutdown(socket.SHUT_WR)
        assert b"".join(iter(lambda: s.recv(65536), b"")) == expected
    assert errors == []


def test_pipelining_many_commands_in_one_write(server):
    data = b"".join(command("INCR", "n") for _ in range(5000)) + b"QUIT\r\n"
    replies = exchange(server, data)
    assert replies == b"".join(b":%d\r\n" % i for i in range(1, 5001)) + b"+OK\r\n"


class Measured(m.RedisProtocol):
    def connectionMade(self):
        super().connectionMade()
        self.factory.peak = self.factory.received = 0
        self.factory.reading = True

    def dataReceived(self, data):
        self.factory.received += len(data)
        super().dataReceived(data)
        self.factory.peak = max(self.factory.peak, buffered(self.transport))

    def pauseProducing(self):
        self.factory.reading = False
        super().pauseProducing()

    def resumeProducing(self):
        self.factory.reading = True
        super().resumeProducing()


def test_a_client_that_never_reads_cannot_grow_the_servers_memory():
    """100,000 pipelined GETs of 1,000 bytes: 100 MB of replies if all were buffered."""
    factory = m.RedisFactory(reactor)
    factory.protocol = Measured
    factory.db.set(b"big", b"x" * 1000)
    srv = serve("ch21-flood-test", factory)
    data = command("GET", "big") * 100_000
    sent, leave = [0], threading.Event()
    sock = socket.create_connection(srv.address, timeout=0.3)

    def send():
        while sent[0] < len(data) and not leave.is_set():
            with contextlib.suppress(TimeoutError):  # the kernel's buffers are full
                sent[0] += sock.send(data[sent[0]:sent[0] + 65536])

    sender = threading.Thread(target=send)
    sender.start()
    try:
        deadline = time.monotonic() + 5
        while call(lambda: factory.reading or not factory.received):
            assert time.monotonic() < deadline, "the server never stopped reading"
        received, peak = call(lambda: (factory.received, factory.peak))
        assert received < len(data) // 4, received  # it read a little and stopped
        one_read = (65536 // len(command("GET", "big")) + 1) * len(m.encode(b"x" * 1000))
        assert peak <= 65536 + one_read, peak  # bufferSize + the replies to one read
        # Now the client leaves without reading: the server drops it cleanly.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        leave.set()
        sender.join(5)
        sock.close()
        srv.stop()
    assert srv.connections == 0


REDIS_CLI = shutil.which("redis-cli")


@pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli is not installed (redis-tools)")
def test_redis_cli_one_shot_and_interactive(server):
    run_cli = [REDIS_CLI, "-p", str(server.port)]
    assert subprocess.run([*run_cli, "set", "counter", "10"], capture_output=True,
                          text=True, timeout=10).stdout == "OK\n"
    out = subprocess.run(run_cli, input="incr counter\nset temp x EX 100\nttl temp\nmulti\n"
                         "incr counter\nexec\nincr temp\nget nope\n",
                         capture_output=True, text=True, timeout=10).stdout
    assert out.split("\n")[:8] == ["11", "OK", "100", "OK", "QUEUED", "12",
                                   "ERR value is not an integer or out of range", ""]


def test_nettalk_with_crlf_inline_and_typed_resp(server):
    lines = "PING\nGET nope\n*2\n$4\nECHO\n$5\nhello\n*1\n$-1\n"
    out = subprocess.run([sys.executable, str(ROOT / "helpers" / "nettalk.py"), "--crlf",
                          "127.0.0.1", str(server.port)], input=lines, capture_output=True,
                         text=True, timeout=10).stdout
    assert "+PONG\n$-1\n$5\nhello\n-ERR Protocol error: invalid bulk length\n" in out
