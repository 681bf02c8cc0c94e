"""nettalk: talk to a chapter's server from a terminal, the same on Linux, macOS and Windows.

    nettalk 127.0.0.1 PORT             TCP: type lines, Enter sends; end input to finish
    printf 'hi\\n' | nettalk 127.0.0.1 PORT
    nettalk --crlf 127.0.0.1 PORT      end each line with \\r\\n (as `nc -C`), for LineReceiver
    nettalk -u 127.0.0.1 PORT          UDP: each line is one datagram; replies are printed
    nettalk --rate 2000 127.0.0.1 PORT read at most 2000 bytes a second: a slow client

End of input (Ctrl-D; on Windows Ctrl-Z then Enter; or the end of a pipe) half-closes the
connection: the server sees the end of the stream, and nettalk goes on printing what the
server sends until the server closes the connection; then it exits (status 0; 1 if the
server reset it). Ctrl-C quits at any time. A refused connection says that nothing listens
there and how to bring a chapter's server back (status 1).

With --rate, nettalk reads from the server at most that many bytes a second, with a small
receive buffer, so a fast server soon finds its sends backing up (chapter 12's flow control).

With -u, each line of input, without its line ending, is one datagram, and each datagram
that comes back is printed on a line of its own; after the end of input nettalk waits
--wait seconds (1 by default) for more replies, then exits.

`make lab` puts the `nettalk` command on the PATH of JupyterLab's terminals. It uses only
the standard library, so any Python 3.8+ also runs it as a file, from the repository:
`python3 helpers/nettalk.py 127.0.0.1 PORT` (Windows: `py helpers\\nettalk.py ...`).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import threading
import time

END_KEYS = "Ctrl-Z then Enter" if os.name == "nt" else "Ctrl-D"
POLL = 0.5  # s between checks for Ctrl-C while waiting (Windows cannot interrupt a recv)
REFUSED = """nettalk: nothing is listening on {where} ({why}).
  A chapter's server runs only while its notebook's kernel runs it, and after Run All the
  chapter's last cell has stopped every server: run the cell that starts the server again,
  then use the port that cell prints."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nettalk", description="Talk to a chapter's server from a terminal.",
        epilog="End of input (Ctrl-D, Ctrl-Z Enter on Windows) half-closes the connection;"
               " nettalk exits when the server closes it.")
    parser.add_argument("host", help="the server's address, 127.0.0.1 for a chapter's server")
    parser.add_argument("port", type=int, help="the port the chapter's cell printed")
    parser.add_argument("-u", "--udp", action="store_true",
                        help="UDP: send each line as one datagram, print each reply")
    parser.add_argument("-C", "--crlf", action="store_true",
                        help="end every line sent with \\r\\n (as nc -C)")
    parser.add_argument("--rate", type=int, metavar="BYTES",
                        help="TCP: read at most BYTES a second from the server (a slow client)")
    parser.add_argument("--wait", type=float, default=1.0, metavar="SECONDS",
                        help="UDP: how long to wait for replies after the end of input")
    parser.add_argument("--connect-timeout", type=float, default=5.0, metavar="SECONDS")
    return parser.parse_args(argv)


class Terminal:
    """Standard input and output as bytes, and notes on standard error."""

    def __init__(self) -> None:
        stdin = sys.stdin.buffer if sys.stdin is not None else None
        # The raw stream: no lock that a thread blocked in read() would hold at exit, and
        # on a Windows console it reads Ctrl-Z at the start of a line as end of input.
        self.input = getattr(stdin, "raw", stdin)
        self.interactive = bool(stdin is not None and stdin.isatty())

    def read(self) -> bytes:
        """Some input (a line, typed): b"" at the end of input."""
        if self.input is None:
            return b""
        data = self.input.read(65536)
        return data if data is not None else b""

    @staticmethod
    def write(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def note(self, text: str, always: bool = False) -> None:
        """A line for the person at the keyboard (only for them, unless `always`)."""
        if always or self.interactive:
            print(f"nettalk: {text}", file=sys.stderr, flush=True)


def line_endings(data: bytes, crlf: bool) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data) if crlf else data


def connect(host: str, port: int, timeout: float, receive_buffer: int | None) -> socket.socket:
    """A TCP connection; with `receive_buffer`, a small one set before connecting (so that
    the system does not grow it)."""
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port,
                                                                type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            return sock
        except OSError as e:
            error = e
            sock.close()
    raise error


class Pace:
    """Keeps reading at or under `rate` bytes a second (no limit when `rate` is None)."""

    def __init__(self, rate: int | None):
        self.rate, self.start, self.taken = rate, time.monotonic(), 0

    def chunk(self) -> int:
        return 65536 if not self.rate else max(1, min(65536, self.rate // 10))

    def took(self, size: int) -> None:
        if self.rate:
            self.taken += size
            ahead = self.taken / self.rate - (time.monotonic() - self.start)
            if ahead > 0:
                time.sleep(ahead)  # the point of --rate: a reader that is slow on purpose


def talk_tcp(args: argparse.Namespace, term: Terminal) -> int:
    where = f"{args.host}:{args.port}"
    try:
        sock = connect(args.host, args.port, args.connect_timeout,
                       4096 if args.rate else None)
    except ConnectionRefusedError:
        print(REFUSED.format(where=where, why="connection refused"), file=sys.stderr)
        return 1
    except OSError as e:
        term.note(f"cannot connect to {where}: {e}", always=True)
        return 1
    with sock:
        sock.settimeout(POLL)
        term.note(f"connected to {where} ({END_KEYS} ends your input, Ctrl-C quits)")

        def send_input() -> None:
            try:
                while data := term.read():
                    sock.sendall(line_endings(data, args.crlf))
                term.note("input ended: half-closing the connection; printing what the "
                          "server sends until it closes")
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                return  # the server is gone: the reader below says how

        threading.Thread(target=send_input, daemon=True).start()
        pace = Pace(args.rate)
        while True:
            try:
                data = sock.recv(pace.chunk())
            except socket.timeout:  # noqa: UP041 (not TimeoutError before Python 3.10)
                continue
            except ConnectionResetError:
                term.note("the server reset the connection", always=True)
                return 1
            if not data:
                term.note("the server closed the connection")
                return 0
            term.write(data)
            pace.took(len(data))


def talk_udp(args: argparse.Namespace, term: Terminal) -> int:
    where = f"{args.host}:{args.port}"
    family = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_DGRAM)[0][0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        # Connected: only the server's replies arrive, and a closed port is reported.
        sock.connect((args.host, args.port))
        sock.settimeout(POLL)
        ended, refused = threading.Event(), threading.Event()
        end = b"\r\n" if args.crlf else b""
        term.note(f"each line goes to {where} as one datagram ({END_KEYS} ends your "
                  "input, Ctrl-C quits)")

        def send_input() -> None:
            pending = b""
            try:
                while data := term.read():
                    *lines, pending = (pending + data).split(b"\n")
                    for line in lines:
                        sock.send(line.rstrip(b"\r") + end)
                if pending:
                    sock.send(pending + end)
            except (ConnectionRefusedError, ConnectionResetError):  # Windows says reset
                refused.set()
            except OSError:
                pass
            ended.set()

        threading.Thread(target=send_input, daemon=True).start()
        quiet_since = None  # when the input had ended and the last reply had come
        while not refused.is_set():
            try:
                data = sock.recv(65536)
            except socket.timeout:  # noqa: UP041 (not TimeoutError before Python 3.10)
                if ended.is_set():
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since >= args.wait:
                        return 0
                continue
            except (ConnectionRefusedError, ConnectionResetError):
                break
            term.write(data if data.endswith(b"\n") else data + b"\n")
            quiet_since = None
        print(REFUSED.format(where=where, why="UDP: the port is closed"), file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    term = Terminal()
    try:
        return (talk_udp if args.udp else talk_tcp)(args, term)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # our output was closed, as by `nettalk ... | head -1`
        sys.stdout = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
