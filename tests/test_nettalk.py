"""helpers/nettalk.py against real servers on 127.0.0.1, run as a real process.

Every server here is a plain socket in a thread, with a timeout; every nettalk run has one.
"""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "helpers" / "nettalk.py"
COMMANDS = {
    "module": [sys.executable, "-m", "helpers.nettalk"],
    "file": [sys.executable, str(SCRIPT)],  # any Python, from the repository
}
TIMEOUT = 10


class TcpServer:
    """A one-connection TCP server on 127.0.0.1 that runs `handler(connection)`."""

    def __init__(self, handler):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self._serve, args=(handler,), daemon=True)
        self.thread.start()

    def _serve(self, handler):
        with self.listener, self.listener.accept()[0] as connection:
            connection.settimeout(TIMEOUT)
            handler(self, connection)

    def read_to_end(self, connection):
        while data := connection.recv(4096):
            self.received += data

    def join(self):
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the server did not finish"


def closed_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nettalk(*args, stdin=b"", command="module"):
    return subprocess.run([*COMMANDS[command], *args], input=stdin, capture_output=True,
                          timeout=TIMEOUT, cwd=ROOT)


@pytest.mark.parametrize("command", COMMANDS)
def test_end_of_input_half_closes_and_the_reply_after_it_is_printed(command):
    def answer_at_end_of_stream(server, connection):
        server.read_to_end(connection)  # returns only once nettalk has half-closed
        connection.sendall(b"got " + server.received)

    server = TcpServer(answer_at_end_of_stream)
    run = nettalk("127.0.0.1", str(server.port), stdin=b"hello\nworld\n", command=command)
    server.join()
    assert (run.returncode, run.stdout, run.stderr) == (0, b"got hello\nworld\n", b"")


def test_it_exits_when_the_server_hangs_up_while_input_is_still_open():
    def greet_and_hang_up(server, connection):
        connection.sendall(b"hello, bye\n")

    server = TcpServer(greet_and_hang_up)
    with subprocess.Popen([*COMMANDS["module"], "127.0.0.1", str(server.port)], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as talk:
        try:
            assert talk.wait(TIMEOUT) == 0  # its input is still open
            assert talk.stdout.read() == b"hello, bye\n"
        finally:
            talk.kill()
    server.join()


def test_a_reset_connection_is_said_and_fails():
    def reset(server, connection):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        connection.recv(100)

    server = TcpServer(reset)
    run = nettalk("127.0.0.1", str(server.port), stdin=b"x\n")
    server.join()
    assert run.returncode == 1
    assert b"nettalk: the server reset the connection" in run.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_refused_connection_says_nothing_listens_and_how_to_bring_the_server_back(command):
    port = closed_port()
    run = nettalk("127.0.0.1", str(port), command=command)
    assert run.returncode == 1
    text = " ".join(run.stderr.decode().split())
    assert f"nothing is listening on 127.0.0.1:{port} (connection refused)" in text
    assert "after Run All the chapter's last cell has stopped every server" in text
    assert "run the cell that starts the server again" in text


def test_crlf_ends_every_line_with_cr_lf_once():
    server = TcpServer(lambda server, connection: server.read_to_end(connection))
    run = nettalk("--crlf", "127.0.0.1", str(server.port), stdin=b"a\nb\r\nc")
    server.join()
    assert run.returncode == 0
    assert server.received == b"a\r\nb\r\nc"


def test_binary_input_and_output_pass_unchanged():
    every_byte = bytes(range(256))

    def echo_then_close(server, connection):
        server.read_to_end(connection)
        connection.sendall(server.received)

    server = TcpServer(echo_then_close)
    run = nettalk("127.0.0.1", str(server.port), stdin=every_byte)
    server.join()
    assert (run.returncode, run.stdout) == (0, every_byte)


def test_rate_reads_slowly_so_the_servers_sends_back_up():
    size, rate = 200_000, 100_000
    timings = {}

    def send_fast(server, connection):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)  # fills soon
        start = time.monotonic()
        connection.sendall(b"x" * size)  # returns once all is in the send buffer
        timings["sendall"] = time.monotonic() - start

    server = TcpServer(send_fast)
    start = time.monotonic()
    run = nettalk("--rate", str(rate), "127.0.0.1", str(server.port))
    elapsed = time.monotonic() - start
    server.join()
    assert (run.returncode, len(run.stdout)) == (0, size)
    assert elapsed > 0.8 * size / rate  # no faster than the rate (less a first chunk)
    assert timings["sendall"] > 0.3  # the server waited for the slow reader


@pytest.fixture
def udp_echo():
    """A UDP server on 127.0.0.1 that answers each datagram with `echo:` + datagram."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    received, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65536)
            except TimeoutError:
                continue
            received.append(data)
            sock.sendto(b"echo:" + data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], received
    stop.set()
    thread.join(TIMEOUT)
    sock.close()


def test_udp_sends_each_line_as_one_datagram_and_prints_each_reply(udp_echo):
    port, received = udp_echo
    run = nettalk("-u", "--wait", "0.5", "127.0.0.1", str(port), stdin=b"one\ntwo\r\n\nlast")
    assert received == [b"one", b"two", b"", b"last"]
    assert (run.returncode, run.stdout) == (0, b"echo:one\necho:two\necho:\necho:last\n")


def test_udp_to_a_closed_port_says_nothing_listens():
    port = closed_port(socket.SOCK_DGRAM)
    run = nettalk("-u", "127.0.0.1", str(port), stdin=b"anyone?\n")
    assert run.returncode == 1
    assert f"nothing is listening on 127.0.0.1:{port} (UDP: the port is closed)" in (
        run.stderr.decode())


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (Unix)")
def test_ctrl_d_at_a_terminal_half_closes_and_notes_say_what_happens():
    import pty
    import termios

    def answer_at_end_of_stream(server, connection):
        server.read_to_end(connection)
        connection.sendall(b"you said " + server.received)

    server = TcpServer(answer_at_end_of_stream)
    controller, terminal = pty.openpty()
    eof = termios.tcgetattr(terminal)[6][termios.VEOF]  # the Ctrl-D of this terminal
    with subprocess.Popen([*COMMANDS["module"], "127.0.0.1", str(server.port)], cwd=ROOT,
                          stdin=terminal, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as talk:
        try:
            os.write(controller, b"hi\n" + eof)
            out, err = talk.communicate(timeout=TIMEOUT)
        finally:
            talk.kill()
            os.close(controller)
            os.close(terminal)
    server.join()
    assert (talk.returncode, out) == (0, b"you said hi\n")
    assert b"half-closing the connection" in err and b"the server closed the connection" in err


def python_3_8():
    """A Python 3.8 that runs (pyenv's shim for one that is not selected does not)."""
    found = [shutil.which("python3.8"),
             *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))]
    for candidate in filter(None, found):
        try:
            if subprocess.run([candidate, "-c", "pass"], capture_output=True,
                              timeout=TIMEOUT).returncode == 0:
                return candidate
        except OSError:
            continue
    return None


OLDEST = python_3_8()


@pytest.mark.skipif(not OLDEST, reason="no Python 3.8 here")
def test_the_file_runs_with_the_oldest_python_it_promises():
    server = TcpServer(lambda server, connection: connection.sendall(b"ok\n"))
    run = subprocess.run([OLDEST, str(SCRIPT), "127.0.0.1", str(server.port)],
                         capture_output=True, timeout=TIMEOUT)
    server.join()
    assert (run.returncode, run.stdout, run.stderr) == (0, b"ok\n", b"")
