"""Chapter 07's teaching code, tried the way a reader's use would break it.

`FIXED_CLIENT` (the notebook's `# module: scripts` cell) is the article's client fixed; it
runs in its own process against an echo server on 127.0.0.1 that answers in two pieces.
"""

import socket
import subprocess
import sys
from pathlib import Path

from helpers import serve_socket
from helpers.notebook_code import load

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "07_clients_and_endpoints.ipynb"
scripts = load(NOTEBOOK, "scripts")
GREETING = b"Hello, server!"


def echo_in_two_pieces(conn):
    """Echo the greeting: 5 bytes at once; the rest only if the client is still there
    0.5 s later (a client that took the first piece for the whole echo has closed)."""
    conn.settimeout(2)
    received = b""
    while len(received) < len(GREETING) and (chunk := conn.recv(64)):
        received += chunk
    conn.sendall(received[:5])
    conn.settimeout(0.5)
    try:
        if conn.recv(64) == b"":
            return  # the client closed after the first piece
    except TimeoutError:
        pass
    conn.sendall(received[5:])
    conn.settimeout(2)
    conn.recv(64)  # until the client closes


def run(script: str, port: int) -> list[str]:
    result = subprocess.run([sys.executable, "-c", script.format(port=port)],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_fixed_client_prints_the_whole_echo_when_it_comes_in_pieces():
    with serve_socket("ch07-echo-in-two-pieces", echo_in_two_pieces) as server:
        lines = run(scripts.FIXED_CLIENT, server.port)
    assert lines == ["Connected to server.", "Server said: Hello, server!",
                     "Connection closed: ConnectionDone"]


def test_the_fixed_client_reports_a_refused_connection():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        lines = run(scripts.FIXED_CLIENT, sock.getsockname()[1])
    assert lines == ["Connection failed: ConnectionRefusedError"]
