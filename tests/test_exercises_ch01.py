"""Chapter 01 exercises: the reference solutions pass, typical wrong answers fail."""

import socket

from helpers import check
from solutions.ch01 import SOLUTIONS


def test_stub_fails_every_check():
    def stub(*args):
        raise NotImplementedError("your code here")

    for exercise_id in SOLUTIONS:
        report = check(exercise_id, stub)
        assert not any(r.passed for r in report.results), repr(report)
        assert all("NotImplementedError" in r.error for r in report.results), repr(report)


# -- 01.1 recv_exactly ---------------------------------------------------------


def recv_once(sock, n):
    return sock.recv(n)


def recv_returns_partial_at_eof(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_spins_on_eof(sock, n):
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return data


def recv_too_much(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        data += chunk
    return data


def test_recv_once_fails_on_data_in_pieces():
    report = check("01.1", recv_once)
    assert "returns exactly n bytes sent in many pieces" in report.failed


def test_returning_partial_data_at_eof_fails():
    report = check("01.1", recv_returns_partial_at_eof)
    assert report.failed == {"raises EOFError when the peer closes early"}
    assert "it returned b'abc'" in repr(report)


def test_a_loop_that_ignores_eof_is_cut_off_and_fails():
    report = check("01.1", recv_spins_on_eof)
    assert report.failed == {"raises EOFError when the peer closes early"}
    assert "did not return within" in repr(report)


def test_reading_past_n_fails():
    report = check("01.1", recv_too_much)
    assert report.failed == {"takes n bytes and leaves the rest in the socket"}


# -- 01.2 upper_handler --------------------------------------------------------


def upper_decoding_each_chunk(conn):
    while chunk := conn.recv(4096):
        conn.sendall(chunk.decode("utf-8").upper().encode("utf-8"))


def upper_with_send(conn):
    buffer = b""
    while chunk := conn.recv(4096):
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            conn.send((line.decode("utf-8").upper() + "\n").encode("utf-8"))


def upper_at_eof_only(conn):
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    conn.sendall(data.decode("utf-8").upper().encode("utf-8"))


def test_decoding_each_chunk_fails_on_split_utf8():
    report = check("01.2", upper_decoding_each_chunk)
    assert "decodes UTF-8 split across two recv() calls" in report.failed
    assert "UnicodeDecodeError" in repr(report)


def test_send_instead_of_sendall_fails():
    report = check("01.2", upper_with_send)
    assert report.failed == {"sends every byte even when send() takes only part"}


def test_replying_only_at_eof_fails():
    report = check("01.2", upper_at_eof_only)
    assert "replies to each line at once" in report.failed


# -- 01.3 port_is_open ---------------------------------------------------------


def always_true(host, port, timeout):
    return True


def lets_refusal_escape(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout):
        return True


def leaks_its_socket(host, port, timeout):
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return False
    return sock is not None  # sock is never closed: the garbage collector does it


def ignores_timeout(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=30):
            return True
    except OSError:
        return False


def test_always_true_fails():
    report = check("01.3", always_true)
    assert report.failed == {
        "True for a listening server, and closes its socket",
        "False for a port where nothing listens",
        "False within the timeout for a port that never answers",
    }


def test_letting_connection_refused_escape_fails():
    report = check("01.3", lets_refusal_escape)
    assert "False for a port where nothing listens" in report.failed
    assert "ConnectionRefusedError" in repr(report)


def test_leaking_the_socket_fails():
    report = check("01.3", leaks_its_socket)
    assert report.failed == {"True for a listening server, and closes its socket"}
    assert "ResourceWarning" in repr(report)


def test_ignoring_the_timeout_fails():
    report = check("01.3", ignores_timeout)
    assert report.failed == {"False within the timeout for a port that never answers"}
