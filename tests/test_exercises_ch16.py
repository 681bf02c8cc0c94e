"""Chapter 16 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import asyncio
import socket
import threading

import pytest

from helpers import check, servers
from helpers.exercises import ch16
from solutions.ch16 import SOLUTIONS, echo_all, shout


@pytest.fixture(autouse=True)
def short_reads(monkeypatch):
    """The checker's clients wait 0.3 s for bytes that must come (1 s in the notebook):
    loopback answers within a millisecond, and the mistakes that never reply fail sooner."""
    from helpers.exercises import wire

    monkeypatch.setattr(wire, "READ_TIMEOUT", 0.3)


def no_check_threads_left():
    return not [t for t in threading.enumerate() if t.name == "helpers-ch16-check"]


def test_the_stub_is_not_attempted_and_shows_no_hint():
    async def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    for exercise_id in sorted(SOLUTIONS):
        report = check(exercise_id, stub)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)


def test_the_checks_leave_no_server_and_no_loop_thread():
    for exercise_id, answer in SOLUTIONS.items():
        assert check(exercise_id, answer).passed
    assert repr(servers()) == "No servers running."
    assert no_check_threads_left()


# -- 16.1 -------------------------------------------------------------------


def test_a_plain_function_is_not_a_handler():
    def sync_shout(reader, writer):
        writer.close()

    report = check("16.1", sync_shout)
    assert report.attempted
    assert "replies" in report.failed
    assert "not a coroutine: define it with `async def`" in report.message("replies")


def test_without_drain_only_the_drain_check_fails():
    async def no_drain(reader, writer):
        try:
            while True:
                writer.write((await reader.readuntil(b"\n")).upper())
        except asyncio.IncompleteReadError:
            pass
        except asyncio.LimitOverrunError:
            writer.write(b"ERR line too long\n")
        finally:
            writer.close()

    report = check("16.1", no_drain)
    assert report.failed == {"drain"}
    assert "read none of the replies: the server read them all and queued" in (
        report.message("drain"))


def test_readline_turns_the_limit_into_valueerror():
    async def with_readline(reader, writer):
        try:
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
        except asyncio.LimitOverrunError:
            writer.write(b"ERR line too long\n")
        finally:
            writer.close()

    report = check("16.1", with_readline)
    assert report.failed == {"overlong", "partial-line"}  # and readline returns a partial line
    message = report.message("overlong")
    assert message.startswith("sent b'ok\\n', a 192-byte line, then b'after\\n': got"
                              " b'OK\\n', then the connection")
    assert message.endswith("; your handler raised ValueError: Separator is found, but chunk"
                            " is longer than limit")


def test_going_on_after_the_overlong_line_fails():
    async def carries_on(reader, writer):
        errors = 0
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    writer.write(b"ERR line too long\n")
                    errors += 1
                    if errors > 3:  # the same line, again and again
                        break
                    continue
                writer.write(line.upper())
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    report = check("16.1", carries_on)
    assert report.failed == {"overlong"}
    assert report.message("overlong").startswith(
        "sent b'ok\\n', a 192-byte line, then b'after\\n': got b'OK\\nERR line too long\\nERR")


def test_chunks_instead_of_lines_fail():
    async def chunks(reader, writer):
        while data := await reader.read(4096):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    report = check("16.1", chunks)
    assert {"replies", "overlong"} <= report.failed
    assert report.message("replies").startswith(
        "sent b'spl' (no newline yet): got b'S', expected nothing")


def test_not_closing_at_the_end_of_the_stream_fails():
    async def stays_open(reader, writer):
        try:
            while True:
                writer.write((await reader.readuntil(b"\n")).upper())
                await writer.drain()
        except asyncio.IncompleteReadError:
            return  # forgot writer.close()
        except asyncio.LimitOverrunError:
            writer.write(b"ERR line too long\n")
            writer.close()

    report = check("16.1", stays_open)
    assert report.failed == {"closes-at-eof"}
    assert report.message("closes-at-eof").startswith(
        "sent b'last\\n' and ended the stream: got b'LAST\\n', then nothing more for 0.3 s")


def test_one_client_at_a_time_fails_concurrency():
    lock = asyncio.Lock()  # "protects" the handler: serves one connection at a time

    async def serialised(reader, writer):
        async with lock:
            await shout(reader, writer)

    report = check("16.1", serialised)
    assert report.failed == {"concurrent"}
    assert "a second sent b'second\\n': got nothing, then nothing more for 0.3 s" in (
        report.message("concurrent"))


def test_readline_with_its_valueerror_caught_replies_to_an_unfinished_line():
    async def with_readline(reader, writer):
        try:
            while line := await reader.readline():  # at the end: what is left, no b"\n"
                writer.write(line.upper())
                await writer.drain()
        except ValueError:
            writer.write(b"ERR line too long\n")
        finally:
            writer.close()

    report = check("16.1", with_readline)
    assert report.failed == {"partial-line"}
    assert report.message("partial-line") == (
        "sent b'last\\nunfinished' and ended the stream: got b'LAST\\nUNFINISHED', then the"
        " connection closed, expected only b'LAST\\n' (b'unfinished' never got its b'\\n': it"
        " is not a line)")


def test_replying_to_the_partial_of_the_incomplete_read_fails():
    async def replies_to_the_rest(reader, writer):
        try:
            while True:
                writer.write((await reader.readuntil(b"\n")).upper())
                await writer.drain()
        except asyncio.IncompleteReadError as e:
            writer.write(e.partial.upper())
        except asyncio.LimitOverrunError:
            writer.write(b"ERR line too long\n")
        finally:
            writer.close()

    report = check("16.1", replies_to_the_rest)
    assert report.failed == {"partial-line"}
    assert "got b'LAST\\nUNFINISHED'" in report.message("partial-line")


def test_lines_split_by_hand_wait_for_the_end_of_an_overlong_line():
    async def by_hand(reader, writer):
        buffer = b""
        while data := await reader.read(4096):
            buffer += data  # grows as long as the client sends no b"\n"
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if len(line) > 64:
                    writer.write(b"ERR line too long\n")
                    writer.close()
                    return
                writer.write(line.upper() + b"\n")
                await writer.drain()
        writer.close()

    report = check("16.1", by_hand)
    assert report.failed == {"overlong"}
    assert report.message("overlong").startswith(
        "sent b'ok\\n', then 192 bytes of a line whose b'\\n' had not come yet: got"
        " b'OK\\n', then nothing more for 0.3 s, expected b'OK\\nERR line too long\\n' at once")


def test_ending_only_the_sending_side_fails_closes_at_eof(monkeypatch):
    monkeypatch.setattr(ch16, "SETTLE", 0.2)

    async def write_eof(reader, writer):
        try:
            while True:
                writer.write((await reader.readuntil(b"\n")).upper())
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.write_eof()  # the client sees the end, the connection stays open
            return
        except asyncio.LimitOverrunError:
            writer.write(b"ERR line too long\n")
        writer.close()

    report = check("16.1", write_eof)
    assert report.failed == {"closes-at-eof"}
    assert report.message("closes-at-eof") == (
        "sent b'last\\n' and ended the stream: the client saw the end of the stream, but 0.2 s"
        " later the server still held the connection open (only its sending side was ended)")


def test_draining_only_at_the_end_is_blamed_on_the_queue_not_on_the_reset():
    async def drains_at_the_end(reader, writer):
        try:
            while True:
                writer.write((await reader.readuntil(b"\n")).upper())
        except asyncio.IncompleteReadError:
            pass
        except asyncio.LimitOverrunError:
            writer.write(b"ERR line too long\n")
        finally:
            await writer.drain()  # raises when the check's client has gone
            writer.close()

    report = check("16.1", drains_at_the_end)
    assert report.failed == {"drain"}
    message = report.message("drain")
    assert "read none of the replies: the server read them all and queued" in message
    assert "your handler raised" not in message


# -- 16.2 -------------------------------------------------------------------


@pytest.fixture
def short_delay(monkeypatch):
    """16.2's echo server waits 0.1 s before each echo (0.3 s in the notebook)."""
    monkeypatch.setattr(ch16, "DELAY", 0.1)


@pytest.fixture
def shorter_delay(monkeypatch):
    """0.05 s, for answers that must fail "concurrent": the slower the machine, the surer."""
    monkeypatch.setattr(ch16, "DELAY", 0.05)


def test_a_plain_function_is_not_a_coroutine():
    def sync_echo_all(address, messages):
        return list(messages)

    report = check("16.2", sync_echo_all)
    assert report.attempted and report.failed == {
        "echoes", "concurrent", "whole-echo", "closes", "incomplete"}
    assert report.message("echoes").endswith("not a coroutine: define it with `async def`")


def test_one_after_the_other_fails_only_concurrency(shorter_delay):
    async def sequential(address, messages):
        results = []
        for message in messages:
            results.append((await echo_all(address, [message]))[0])
        return results

    report = check("16.2", sequential)
    assert report.failed == {"concurrent"}
    assert "with at most 1 connection(s) open at once" in report.message("concurrent")


def test_opening_every_connection_first_then_one_exchange_at_a_time_fails(shorter_delay):
    async def opens_all_then_waits_in_turn(address, messages):
        pairs = [await asyncio.open_connection(*address) for _ in messages]
        results = []
        for (reader, writer), message in zip(pairs, messages, strict=True):
            writer.write(message)
            results.append(await reader.readexactly(len(message)))
        for _, writer in pairs:
            writer.close()
            await writer.wait_closed()
        return results

    report = check("16.2", opens_all_then_waits_in_turn)
    assert report.failed == {"concurrent"}
    assert "with at most 6 connection(s) open at once" in report.message("concurrent")


def test_read_n_instead_of_readexactly_fails(short_delay):
    async def read_n(address, messages):
        async def one(message):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(message)
            echo = await reader.read(len(message))
            writer.close()
            await writer.wait_closed()
            return echo

        return await asyncio.gather(*(one(m) for m in messages))

    report = check("16.2", read_n)
    assert "whole-echo" in report.failed
    assert report.message("whole-echo").startswith(
        "the server sent each echo in two pieces, 50 ms apart: echo_all returned"
        " [b'al', b'br']")
    assert "incomplete" in report.failed  # read() returns the half instead of raising


def test_not_closing_fails(short_delay):
    async def leaves_open(address, messages):
        async def one(message):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(message)
            return await reader.readexactly(len(message))

        return await asyncio.gather(*(one(m) for m in messages))

    report = check("16.2", leaves_open)
    assert report.failed == {"closes"}
    assert report.message("closes").startswith(
        "echo_all returned and left 3 of its 3 connections for the garbage collector to"
        " close (ResourceWarning: unclosed <StreamWriter")


def test_swallowing_the_incomplete_read_fails(short_delay):
    async def swallows(address, messages):
        try:
            return await echo_all(address, messages)
        except asyncio.IncompleteReadError as e:
            return [e.partial]

    report = check("16.2", swallows)
    assert report.failed == {"incomplete"}
    assert report.message("incomplete") == (
        "the server echoed half of b'abcdefgh\\n' and closed: echo_all returned [b'abcd'],"
        " expected it to raise IncompleteReadError")


def gathers(one):
    async def echo_all(address, messages):
        return list(await asyncio.gather(*(one(address, m) for m in messages)))

    return echo_all


def test_echoes_in_the_order_they_came_back_fail_echoes(short_delay):
    async def in_arrival_order(address, messages):
        echoes = []

        async def one(message):
            reader, writer = await asyncio.open_connection(*address)
            try:
                writer.write(message)
                echoes.append(await reader.readexactly(len(message)))
            finally:
                writer.close()
                await writer.wait_closed()

        await asyncio.gather(*(one(m) for m in messages))
        return echoes

    report = check("16.2", in_arrival_order)
    assert report.failed == {"echoes"}
    assert report.message("echoes").endswith(
        ": the right echoes in another order (the server echoed b'alpha\\n' last), expected"
        " them in the order of the messages")


def test_reading_up_to_a_newline_fails_on_a_message_of_two_lines(short_delay):
    async def up_to_newline(address, message):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(message)
            return await reader.readuntil(b"\n")
        finally:
            writer.close()
            await writer.wait_closed()

    report = check("16.2", gathers(up_to_newline))
    assert report.failed == {"echoes"}
    assert report.message("echoes").endswith(
        ": the echo of b'two\\nlines\\n' came back as b'two\\n'")


def test_one_connection_for_every_message_fails_concurrent(short_delay):
    async def one_connection(address, messages):
        reader, writer = await asyncio.open_connection(*address)
        try:
            for message in messages:
                writer.write(message)
            return [await reader.readexactly(len(m)) for m in messages]
        finally:
            writer.close()
            await writer.wait_closed()

    report = check("16.2", one_connection)
    assert report.failed == {"concurrent"}
    assert report.message("concurrent") == (
        "echo_all(address, <6 messages>) opened 1 connection(s) for 6 messages, expected one"
        " per message")


def test_blocking_sockets_in_a_coroutine_say_the_loop_was_blocked(shorter_delay):
    async def blocking(address, messages):
        def one(message):
            with socket.create_connection(address, timeout=2) as sock:
                sock.sendall(message)
                echo = b""
                while len(echo) < len(message):
                    if not (chunk := sock.recv(len(message) - len(echo))):
                        raise asyncio.IncompleteReadError(echo, len(message))
                    echo += chunk
                return echo

        return [one(m) for m in messages]

    report = check("16.2", blocking)
    assert report.failed == {"concurrent"}
    message = report.message("concurrent")
    assert "with at most 1 connection(s) open at once" in message
    assert "; your code blocked its loop for " in message
    assert message.endswith("at a stretch, and every other task on the loop waited with it")


def test_reading_to_the_end_of_the_stream_never_returns(short_delay, monkeypatch):
    monkeypatch.setattr(ch16, "CALL_LIMIT", 0.3)

    async def to_the_end(address, message):
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(message)
            return await reader.read()  # the echo server waits for more: no end
        finally:
            writer.close()
            await writer.wait_closed()

    report = check("16.2", gathers(to_the_end))
    assert report.failed == {"echoes", "concurrent", "whole-echo", "closes", "incomplete"}
    assert report.message("concurrent") == (
        "echo_all did not return within 0.3 s, though the server had echoed 6 of the 6"
        " messages in full; it was waiting for more on 6 open connection(s)")
    assert report.message("incomplete").endswith(
        "echo_all returned [b'abcd'], expected it to raise IncompleteReadError")


def test_a_taskgroup_lets_the_incomplete_read_propagate_in_its_exceptiongroup(short_delay):
    async def with_a_taskgroup(address, messages):
        async with asyncio.TaskGroup() as group:  # raises ExceptionGroup([the error])
            tasks = [group.create_task(echo_all(address, [m])) for m in messages]
        return [task.result()[0] for task in tasks]

    assert check("16.2", with_a_taskgroup).passed
