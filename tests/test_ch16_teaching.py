"""Chapter 16's servers (imported from the notebook's `# module: streams` cells), tried the
way a reader's use would break them: three requests in one write, a request split byte by
byte, 16 MiB through the echo, a client that reads slowly, an overlong line, a truncated
frame, a reset, and a real terminal client (nettalk)."""

import asyncio
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import EventLog, stop_all
from helpers.aio import LoopThread, serve_asyncio, serve_streams
from helpers.notebook_code import load

ROOT = Path(__file__).resolve().parent.parent
streams = load(ROOT / "notebooks" / "16_asyncio_basics.ipynb", "streams")
TIMEOUT = 2


@pytest.fixture
def loop_thread():
    with LoopThread("test-ch16-loop") as lt:
        yield lt
        stop_all()


@pytest.fixture
def frames(loop_thread):
    log, done = EventLog(), None

    async def start():
        nonlocal done
        done = asyncio.Queue()
        return await serve_streams("frames", streams.frames_handler(log, done), limit=1024)

    server = loop_thread.run(start())
    server.log = log
    return server


def talk(address, payload, *, chunks=None, rcvbuf=None):
    """Send payload (in `chunks`, if given), half-close, read to the end."""
    with socket.socket() as sock:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(TIMEOUT)
        sock.connect(address)
        for piece in chunks or [payload]:
            sock.sendall(piece)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while data := sock.recv(1 << 16):
            got += data
        return got


@pytest.mark.parametrize("kind", ["protocol", "streams"])
def test_both_echo_servers_echo_16_mib_to_a_slow_reader(kind, loop_thread):
    start = (serve_asyncio("echo", streams.Echo) if kind == "protocol"
             else serve_streams("echo", streams.echo_handler))
    server = loop_thread.run(start)
    payload = bytes(range(256)) * (16 << 12)  # 16 MiB
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(server.address)
        got = bytearray()

        def reader():
            while data := sock.recv(4096):
                got.extend(data)

        thread = threading.Thread(target=reader)
        thread.start()
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        thread.join(20)
    # The Protocol has no eof_received, so asyncio closes its transport at the end of the
    # stream, after what is queued has been sent; the streams handler closes it itself.
    assert bytes(got) == payload


def test_three_requests_in_one_write_and_one_split_byte_by_byte(frames):
    request = b"ECHO one\nBLOB 5\nhelloECHO two\n"
    assert talk(frames.address, request) == b"one\ngot 5 bytes\ntwo\n"
    pieces = [request[i:i + 1] for i in range(len(request))]
    assert talk(frames.address, request, chunks=pieces) == b"one\ngot 5 bytes\ntwo\n"


def test_crlf_lines_from_a_terminal_are_accepted(frames):
    assert talk(frames.address, b"ECHO hi\r\nBLOB 3\r\nabc\r\n") == (
        b"hi\ngot 3 bytes\nERR unknown command\n")


def test_an_overlong_line_is_refused_after_the_earlier_replies(frames):
    got = talk(frames.address, b"ECHO a\nECHO b\n" + b"x" * 5000 + b"\nECHO never\n")
    assert got == b"a\nb\nERR line too long\n"
    frames.log.wait(1, "line too long", timeout=TIMEOUT)


def test_a_line_of_exactly_the_limit_is_served(frames):
    line = b"ECHO " + b"z" * (1024 - 6) + b"\n"  # 1024 bytes with its newline
    assert talk(frames.address, line) == line[5:]


def test_a_truncated_frame_and_a_reset_are_recorded(frames):
    assert talk(frames.address, b"BLOB 10\nabcd") == b""
    with socket.create_connection(frames.address, timeout=TIMEOUT) as sock:
        sock.sendall(b"BLOB 100\nabc")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    events = frames.log.wait(2, timeout=TIMEOUT)
    assert sorted(e.what for e in events) == ["peer vanished", "truncated"]


def test_a_bad_blob_length_gets_an_error_and_the_connection_goes_on(frames):
    assert talk(frames.address, b"ECHO ok\nBLOB lots\nBLOB -1\nECHO on\n") == (
        b"ok\nERR BLOB needs a length\nERR BLOB needs a length\non\n")
    assert talk(frames.address, b"ECHO still here\n") == b"still here\n"


def test_nettalk_talks_to_the_frames_server(frames):
    nettalk = Path(sys.executable).parent / "nettalk"
    run = subprocess.run([str(nettalk), "127.0.0.1", str(frames.port)],
                         input=b"ECHO from a terminal\n", capture_output=True, timeout=10)
    assert b"from a terminal" in run.stdout
