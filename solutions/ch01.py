"""Reference solutions for chapter 01 (sockets).

Try the exercises in notebooks/01_sockets.ipynb first; the checker cells there
run your answer against real sockets and say what is wrong.
"""

from __future__ import annotations

import socket


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Read exactly `n` bytes from `sock`.

    One recv() returns whatever has arrived (at least one byte, at most the size
    asked for), so loop. recv() returning b"" means the peer closed its side:
    the n bytes will never come, so raise EOFError rather than return less.
    """
    received = bytearray()
    while len(received) < n:
        chunk = sock.recv(min(n - len(received), 65536))
        if not chunk:
            raise EOFError(f"peer closed the connection after {len(received)} of {n} bytes")
        received += chunk
    return bytes(received)


def upper_handler(conn: socket.socket) -> None:
    """Reply to every line (ending in b"\\n") with the same line upper-cased.

    Bytes are collected in a buffer and only complete lines are decoded, so a
    UTF-8 character split between two recv() calls is decoded whole. Returns
    when the client closes its side (recv() returns b"").
    """
    buffer = b""
    while chunk := conn.recv(4096):
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            reply = line.decode("utf-8").upper() + "\n"
            conn.sendall(reply.encode("utf-8"))


def port_is_open(host: str, port: int, timeout: float) -> bool:
    """True if something accepts a TCP connection on (host, port) within `timeout`.

    ConnectionRefusedError (nothing listens) and TimeoutError (no answer) are
    both OSError, as are the other ways a connection attempt can fail.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


SOLUTIONS = {
    "01.1": recv_exactly,
    "01.2": upper_handler,
    "01.3": port_is_open,
}
