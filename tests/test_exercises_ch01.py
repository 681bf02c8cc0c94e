"""Chapter 01 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import codecs
import socket
import time

import pytest

from helpers import check
from helpers.exercises import ch01
from solutions.ch01 import SOLUTIONS, upper_handler


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch):
    """A blocked answer is given up on sooner than in the notebook (1 s and 0.5 s)."""
    monkeypatch.setattr(ch01, "TIMEOUT", 0.3)
    monkeypatch.setattr(ch01, "REPLY_TIMEOUT", 0.2)


def test_the_stub_is_not_attempted_and_shows_no_hint():
    def stub(*args):
        raise NotImplementedError("your code here")

    for exercise_id in sorted(SOLUTIONS):
        report = check(exercise_id, stub)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)


# -- 01.1 recv_exactly ---------------------------------------------------------

PIECES = "the peer sends 104454 bytes in 5 pieces, each after your previous recv() returned"
SPLIT = "the peer sent b'012', then b'3456789abc' after your first recv() returned"


def recv_once(sock, n):
    return sock.recv(n)


def recv_n_every_pass(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n)  # asks for n again, not for what is still missing
        if not chunk:
            raise EOFError
        data += chunk
    return data


def recv_too_much(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError
        data += chunk
    return data


def partial_at_eof(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def spins_on_eof(sock, n):
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return data


def short_read_is_eof(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if len(chunk) < n - len(data):
            raise EOFError("the peer closed the connection")
        data += chunk
    return data


def buffered_file(sock, n):
    data = sock.makefile("rb").read(n)  # the file reads ahead into its own buffer
    if len(data) < n:
        raise EOFError
    return data


def waits_for_one_more(sock, n):
    data = b""
    while len(data) <= n:  # off by one
        chunk = sock.recv(n + 1 - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data[:n]


def recv_before_testing(sock, n):
    data = b""
    while True:  # recv(0) returns b"" at once: taken for end of stream
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
        if len(data) >= n:
            return data


def wrong_exception(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def returns_bytearray(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def test_one_recv_fails_on_pieces_and_at_eof():
    report = check("01.1", recv_once)
    assert report.failed == {"collects-pieces", "stops-at-n", "eof-raises"}
    assert report.message("collects-pieces") == (
        f"{PIECES}: recv_exactly(sock, 104454) returned 1 byte b'a', expected all 104454"
        " bytes in order")


def test_asking_recv_for_n_on_every_pass_reads_past_n():
    report = check("01.1", recv_n_every_pass)
    assert report.failed == {"stops-at-n"}
    assert report.message("stops-at-n") == (
        f"{SPLIT}: recv_exactly(sock, 8) returned 11 bytes b'0123456789a', expected the first"
        " 8: b'01234567'")


def test_recv_of_a_fixed_size_reads_past_n():
    report = check("01.1", recv_too_much)
    assert report.failed == {"stops-at-n"}
    assert "returned 13 bytes b'0123456789abc'" in report.message("stops-at-n")


def test_a_buffered_file_that_reads_ahead_loses_what_follows():
    report = check("01.1", buffered_file)
    assert report.failed == {"stops-at-n"}
    assert report.message("stops-at-n") == (
        f"{SPLIT}: recv_exactly(sock, 8) returned the right 8 bytes but took 13 from the"
        " socket, so the next read will miss the 5 bytes after them")


def test_returning_partial_data_at_eof_fails():
    report = check("01.1", partial_at_eof)
    assert report.failed == {"eof-raises"}
    assert report.message("eof-raises") == (
        "the peer sent b'abc' and closed: recv_exactly(sock, 10) returned b'abc'; the 3 bytes"
        " sent are not the 10 asked for, so expected EOFError")


def test_a_loop_that_ignores_eof_is_stopped_and_named():
    report = check("01.1", spins_on_eof)
    assert report.failed == {"eof-raises"}
    assert report.message("eof-raises") == (
        "the peer sent b'abc' and closed: recv() returned b'' (end of stream) 101 times in a"
        " row and your function kept calling it: it never ends")


def test_a_short_read_taken_for_eof_is_named_as_no_eof():
    report = check("01.1", short_read_is_eof)
    assert report.failed == {"collects-pieces", "stops-at-n"}
    assert report.message("collects-pieces") == (
        f"{PIECES}: recv_exactly(sock, 104454) raised EOFError, but the peer had not closed"
        " the connection (your function had taken 1 byte from the socket)")


def test_waiting_for_one_byte_too_many_is_cut_off_and_says_what_it_took():
    report = check("01.1", waits_for_one_more)
    assert report.failed == {"collects-pieces", "stops-at-n", "zero"}
    assert report.message("collects-pieces") == (
        f"recv_exactly(sock, 104454), when {PIECES}, was still running after 0.3 s; it had"
        " taken 104454 bytes from the socket")
    assert "EOFError" not in report.message("collects-pieces")


def test_recv_zero_taken_for_end_of_stream_fails_only_n_zero():
    report = check("01.1", recv_before_testing)
    assert report.failed == {"zero"}
    assert report.message("zero") == (
        "the peer sent b'abc' and stayed connected: recv_exactly(sock, 0) raised EOFError, but"
        " the peer had not closed the connection (your function had taken 0 bytes from the"
        " socket)")


def test_another_exception_at_eof_fails():
    report = check("01.1", wrong_exception)
    assert report.failed == {"eof-raises"}
    assert report.message("eof-raises") == (
        "the peer sent b'abc' and closed: recv_exactly(sock, 10) raised ConnectionError:"
        " closed, expected EOFError")


def test_a_bytearray_is_not_bytes():
    report = check("01.1", returns_bytearray)
    assert report.failed == {"collects-pieces"}
    assert report.message("collects-pieces").endswith(
        "recv_exactly returned a bytearray, expected bytes")


# -- 01.2 upper_handler --------------------------------------------------------


def lines(transform):
    """A handler that frames lines correctly and replies with transform(line)."""

    def handler(conn):
        buffer = b""
        while chunk := conn.recv(4096):
            buffer += chunk
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                conn.sendall(transform(line))

    return handler


def decoding_each_chunk(conn):
    while chunk := conn.recv(4096):
        conn.sendall(chunk.decode("utf-8").upper().encode("utf-8"))


def with_send(conn):
    buffer = b""
    while chunk := conn.recv(4096):
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            conn.send((line.decode("utf-8").upper() + "\n").encode("utf-8"))


def at_eof_only(conn):
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    conn.sendall(data.decode("utf-8").upper().encode("utf-8"))


def streaming(conn):
    """Upper-cases what arrives at once, with an incremental decoder: not line by line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    while chunk := conn.recv(4096):
        conn.sendall(decoder.decode(chunk).upper().encode("utf-8"))


def one_line_per_recv(conn):
    buffer = b""
    while chunk := conn.recv(4096):
        buffer += chunk
        if b"\n" in buffer:  # `if`, not `while`: one line per recv()
            line, _, buffer = buffer.partition(b"\n")
            conn.sendall(line.decode().upper().encode() + b"\n")


def drops_the_unfinished_rest(conn):
    while chunk := conn.recv(4096):
        *complete, _ = chunk.split(b"\n")
        for line in complete:
            conn.sendall(line.decode().upper().encode() + b"\n")


def never_returns(conn):
    buffer = b""
    while True:  # b"" is appended like any chunk: the loop never ends
        buffer += conn.recv(4096)
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            conn.sendall(line.decode().upper().encode() + b"\n")


SHARED = {"buffer": b""}


def shared_buffer(conn):
    while chunk := conn.recv(4096):
        SHARED["buffer"] += chunk  # one buffer for every connection
        while b"\n" in SHARED["buffer"]:
            line, _, SHARED["buffer"] = SHARED["buffer"].partition(b"\n")
            conn.sendall(line.decode().upper().encode() + b"\n")


def replies_to_the_unfinished_line_at_eof(conn):
    with conn.makefile("rb") as lines_in:
        for line in lines_in:  # the last "line" may lack its b"\n"
            conn.sendall(line.decode().upper().encode())


def test_decoding_each_chunk_fails_on_a_split_character():
    report = check("01.2", decoding_each_chunk)
    assert report.failed == {"split-utf8", "ends-with-stream"}
    assert report.message("split-utf8") == (
        "sent b'ok\\nd\\xc3': the client expected b'OK\\n' but got nothing, then the"
        " connection closed; your handler raised UnicodeDecodeError: 'utf-8' codec can't"
        " decode byte 0xc3 in position 4: unexpected end of data")


def test_send_instead_of_sendall_fails():
    report = check("01.2", with_send)
    assert report.failed == {"sends-everything"}
    assert "but got b'XXX', then nothing more for 0.2 s" in report.message("sends-everything")


ALL_OF_01_2 = {"replies-at-once", "lines-in-pieces", "non-ascii", "split-utf8", "own-buffer",
               "sends-everything", "ends-with-stream"}


def test_replying_only_at_eof_fails(monkeypatch):
    # No reply comes before the end of the stream: six checks wait for a first byte in vain
    monkeypatch.setattr(ch01, "TIMEOUT", 0.1)
    report = check("01.2", at_eof_only)
    assert report.failed == ALL_OF_01_2  # ends-with-stream: it replies to "no newline" too
    assert report.message("replies-at-once") == (
        "sent b'hello\\n': the client expected b'HELLO\\n' but got nothing, then nothing more"
        " for 0.1 s")


def test_upper_casing_bytes_fails_on_non_ascii_letters():
    report = check("01.2", lines(lambda line: line.upper() + b"\n"))
    assert report.failed == {"non-ascii", "split-utf8"}
    assert report.message("non-ascii") == (
        "sent 'première, ça\\n' in UTF-8: the client expected 'PREMIÈRE, ÇA\\n' in UTF-8 but"
        " got 'PREMIèRE, çA\\n' in UTF-8")


def test_decoding_as_latin1_fails_on_non_ascii_letters():
    report = check("01.2", lines(lambda line: line.decode("latin-1").upper().encode("latin-1")
                                 + b"\n"))
    assert report.failed == {"non-ascii", "split-utf8"}


def test_replying_to_text_before_its_line_is_complete_fails():
    report = check("01.2", streaming)
    assert report.failed == {"ends-with-stream"}
    assert report.message("ends-with-stream") == (
        "sent b'last\\nno newline' and half-closed (shutdown SHUT_WR): the client expected"
        " b'LAST\\n' and then the end of the stream, but got b'LAST\\nNO NEWLINE', then the"
        " connection closed")


def test_replying_to_the_unfinished_last_line_fails():
    report = check("01.2", replies_to_the_unfinished_line_at_eof)
    assert report.failed == {"ends-with-stream"}


def test_one_line_per_recv_fails():
    report = check("01.2", one_line_per_recv)
    assert report.failed == {"lines-in-pieces"}
    assert report.message("lines-in-pieces") == (
        "sent b'ab \\n\\n cd\\nef' in one write (three lines, one empty, and a half): the client"
        " expected b'AB \\n\\n CD\\n' but got b'AB \\n', then nothing more for 0.2 s")


def test_dropping_the_unfinished_rest_fails():
    report = check("01.2", drops_the_unfinished_rest)
    assert {"lines-in-pieces", "own-buffer", "split-utf8"} == report.failed
    assert report.message("lines-in-pieces") == (
        "then sent b'gh\\n' to finish the fourth: the client expected b'EFGH\\n' but got"
        " b'GH\\n', then nothing more for 0.2 s")


def test_stripping_lines_fails():
    report = check("01.2", lines(lambda line: line.decode().strip().upper().encode() + b"\n"))
    assert report.failed == {"lines-in-pieces"}
    assert "but got b'AB\\n\\nCD\\n'" in report.message("lines-in-pieces")


def test_skipping_empty_lines_fails():
    report = check("01.2", lines(lambda line: line.decode().upper().encode() + b"\n"
                                 if line else b""))
    assert report.failed == {"lines-in-pieces"}
    assert "but got b'AB \\n CD\\n'" in report.message("lines-in-pieces")


def test_replies_without_the_newline_fail(monkeypatch):
    # The rest of a reply, the newline, never comes: six checks wait for it in vain
    monkeypatch.setattr(ch01, "REPLY_TIMEOUT", 0.1)
    report = check("01.2", lines(lambda line: line.decode().upper().encode()))
    assert report.failed == ALL_OF_01_2
    assert report.message("replies-at-once") == (
        "sent b'hello\\n': the client expected b'HELLO\\n' but got b'HELLO', then nothing more"
        " for 0.1 s")


def test_a_handler_that_never_returns_is_named():
    report = check("01.2", never_returns)
    assert report.failed == {"ends-with-stream"}
    assert report.message("ends-with-stream") == (
        "sent b'last\\nno newline' and half-closed (shutdown SHUT_WR): the client expected"
        " b'LAST\\n' and then the end of the stream, but got b'LAST\\n', then nothing more for"
        " 0.2 s (your handler had not returned)")


def test_one_buffer_for_every_connection_fails():
    report = check("01.2", shared_buffer)
    assert report.failed == {"own-buffer"}
    assert report.message("own-buffer") == (
        "client 1 still connected, with b'be' unfinished, client 2 sent b'gamma\\n': the"
        " client expected b'GAMMA\\n' but got b'BEGAMM'")


def raises_at_the_end_of_the_stream(conn):
    buffer = b""
    while chunk := conn.recv(4096):
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            conn.sendall(line.decode().upper().encode() + b"\n")
    if buffer:  # the unfinished line taken for an error, as a truncated frame is
        raise ValueError(f"the stream ended inside a line: {buffer!r}")


def test_raising_for_the_unfinished_line_at_the_end_of_the_stream_fails():
    report = check("01.2", raises_at_the_end_of_the_stream)
    assert report.failed == {"ends-with-stream"}
    assert report.message("ends-with-stream") == (
        "sent b'last\\nno newline' and half-closed (shutdown SHUT_WR): the client got"
        " b'LAST\\n' and then the end of the stream, but your handler raised ValueError: the"
        " stream ended inside a line: b'no newline' instead of returning: bytes after the last"
        " newline are no line, and the end of the stream is no error")


def test_the_reference_handler_serves_a_stingy_socket_whole():
    assert check("01.2", upper_handler).passed


# -- 01.3 port_is_open ---------------------------------------------------------


def always_true(host, port, timeout):
    return True


def lets_refusal_escape(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout):
        return True


def catches_only_refusal(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return False


def leaks_on_success(host, port, timeout):
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return False
    return sock is not None  # never closed: the garbage collector does it


def leaks_on_failure(host, port, timeout):
    sock = socket.socket()
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except OSError:
        return False  # the socket is left open
    sock.close()
    return True


KEPT = []


def keeps_it_open(host, port, timeout):
    try:
        KEPT.append(socket.create_connection((host, port), timeout=timeout))
    except OSError:
        return False
    return True


def ignores_timeout(host, port, timeout):
    try:
        with socket.create_connection((host, port)):
            return True
    except OSError:
        return False


def timeout_after_connect(host, port, timeout):
    with socket.socket() as sock:
        try:
            sock.connect((host, port))
            sock.settimeout(timeout)  # too late: connect() has already waited
            return True
        except OSError:
            return False


def retries_a_refusal(host, port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # a refusal taken for "not yet": tried again
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except ConnectionRefusedError:
            continue
        except OSError:
            return False
    return False


def returns_the_address(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.getpeername()
    except OSError:
        return False


def test_always_true_fails():
    report = check("01.3", always_true)
    assert report.failed == {"true-when-listening", "false-when-refused", "false-within-timeout"}
    assert report.message("true-when-listening") == (
        "port_is_open returned True, but no connection reached the server")


def test_letting_connection_refused_escape_fails():
    report = check("01.3", lets_refusal_escape)
    assert report.failed == {"false-when-refused", "false-within-timeout"}
    assert report.message("false-when-refused") == (
        "nothing listens on 127.0.0.1:port; port_is_open raised ConnectionRefusedError:"
        " [Errno 111] Connection refused, expected False")


def test_catching_only_the_refusal_fails_on_a_timeout():
    report = check("01.3", catches_only_refusal)
    assert report.failed == {"false-within-timeout"}
    assert report.message("false-within-timeout") == (
        "a port that never answers, timeout=0.3: port_is_open raised TimeoutError: timed out,"
        " expected False")


@pytest.mark.parametrize("answer, case", [(leaks_on_success, "it returned on a listening port"),
                                          (leaks_on_failure, "it ran where nothing listens")])
def test_leaking_the_socket_fails(answer, case):
    report = check("01.3", answer)
    assert report.failed == {"closes-socket"}
    assert report.message("closes-socket").startswith(
        f"{case}, and left its socket for the garbage collector to close (unclosed"
        " <socket.socket")


def test_keeping_the_connection_open_fails():
    report = check("01.3", keeps_it_open)
    assert report.failed == {"closes-socket"}
    assert report.message("closes-socket") == (
        "port_is_open returned True, but the server's end of the connection was still open"
        " 0.3 s later: the socket was never closed")
    while KEPT:
        KEPT.pop().close()


@pytest.mark.parametrize("answer", [ignores_timeout, timeout_after_connect])
def test_a_connect_without_the_timeout_is_cut_off(answer):
    report = check("01.3", answer)
    assert report.failed == {"false-within-timeout"}
    assert report.message("false-within-timeout") == (
        "port_is_open('127.0.0.1', port, 0.3) on a port that never answers was still running"
        " after 0.6 s")


def test_returning_something_else_than_true_fails():
    report = check("01.3", returns_the_address)
    assert report.failed == {"true-when-listening"}



def test_trying_again_after_a_refusal_until_the_timeout_fails():
    report = check("01.3", retries_a_refusal)
    assert report.failed == {"false-when-refused"}
    assert report.message("false-when-refused") == (
        "port_is_open('127.0.0.1', port, 5) where nothing listens was still running after"
        " 0.3 s: nothing listens there, so each connection attempt is refused at once, and a"
        " refusal is already the answer")


def sets_the_default_timeout(host, port, timeout):
    socket.setdefaulttimeout(timeout)  # every later socket of the kernel gets it too
    try:
        with socket.create_connection((host, port)):
            return True
    except OSError:
        return False


def test_setting_the_default_timeout_for_every_socket_fails_and_is_undone():
    report = check("01.3", sets_the_default_timeout)
    assert report.failed == {"own-timeout"}
    assert report.message("own-timeout") == (
        "port_is_open changed the default timeout of every new socket from None to 1.0"
        " (socket.setdefaulttimeout): from then on every socket this kernel makes, in any"
        " library, would give up after that time (the checker put it back)")
    assert socket.getdefaulttimeout() is None
