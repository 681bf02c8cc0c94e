"""Chapter 09 exercises: learners' mistakes fail the check that names them, with a
message that names the cause (reference solutions: tests/test_exercises.py)."""

import re

import pytest
from twisted.internet import defer
from twisted.protocols import amp
from twisted.protocols.basic import LineReceiver

from helpers import check, servers
from helpers.exercises import ch09
from solutions.ch09 import Calculator, Divide, Reverser, Upload


@pytest.fixture
def quick(monkeypatch):
    """09.1's clients wait less for bytes that will not come (fast wrong answers)."""
    monkeypatch.setattr(ch09, "TIMEOUT", 0.3)
    monkeypatch.setattr(ch09, "CLOSE_TIMEOUT", 0.3)


# The stubs, as the notebook gives them.


class ReverserStub(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        raise NotImplementedError("your code here")


class UploadStub(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        raise NotImplementedError("your code here")


class DivideStub(amp.Command):
    commandName = b"Divide"  # the notebook's class is called Divide
    arguments = []  # your code here
    response = []


class CalculatorStub(amp.AMP):
    @DivideStub.responder
    def divide(self, **arguments):
        raise NotImplementedError("your code here")


@pytest.mark.parametrize("exercise_id, stub", [
    ("09.1", ReverserStub), ("09.2", UploadStub), ("09.3", (DivideStub, CalculatorStub))])
def test_the_stub_is_not_attempted_and_shows_no_hint(exercise_id, stub):
    report = check(exercise_id, stub)
    assert not report.attempted, repr(report)
    assert "hint" not in repr(report)
    assert not servers()


# -- 09.1 -------------------------------------------------------------------

ALL_09_1 = {"reverses", "32-accepted", "33-refused", "no-delimiter", "byte-by-byte",
            "independent"}


def test_the_default_crlf_delimiter_fails_everything(quick):
    class Crlf(Reverser):
        delimiter = b"\r\n"

    report = check("09.1", Crlf)
    assert report.failed == ALL_09_1
    assert report.message("reverses") == (
        "sent b'abc\\nhello\\n\\n12345\\n': the client expected b'cba\\nolleh\\n\\n54321\\n' but"
        " got nothing, then nothing more for 0.3 s")


def test_a_line_that_is_empty_gets_an_empty_line(quick):
    class SkipsEmpty(Reverser):
        def lineReceived(self, line):
            if line:
                super().lineReceived(line)

    report = check("09.1", SkipsEmpty)
    assert report.failed == {"reverses"}


def test_closing_without_err_fails(quick):
    class Silent(Reverser):
        def lineLengthExceeded(self, line):
            self.transport.loseConnection()

    report = check("09.1", Silent)
    assert report.failed == {"33-refused", "no-delimiter", "byte-by-byte"}
    assert report.message("33-refused") == (
        "sent b'ok\\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\nafter\\n': the client expected"
        " b'ko\\nERR line too long\\n' but got b'ko\\n', then the connection closed")


def test_err_without_closing_fails(quick):
    class Open(Reverser):
        def lineLengthExceeded(self, line):
            self.sendLine(b"ERR line too long")

    report = check("09.1", Open)
    assert report.failed == {"33-refused", "no-delimiter", "byte-by-byte"}
    # The wait is measured: a loaded machine makes it longer than the quick 0.3 s.
    assert re.search(r"the client expected the connection to close, but got nothing, then"
                     r" nothing more for [\d.]+ s$", report.message("no-delimiter"))


def test_aborting_drops_the_err_line(quick):
    class Aborts(Reverser):
        def lineLengthExceeded(self, line):
            self.sendLine(b"ERR line too long")
            self.transport.abortConnection()  # discards what was written and not yet sent

    report = check("09.1", Aborts)
    assert {"33-refused", "no-delimiter"} <= report.failed
    assert report.message("33-refused").endswith("then the connection was reset")


@pytest.mark.parametrize("limit, failed", [(33, {"33-refused", "no-delimiter", "byte-by-byte"}),
                                           (31, {"32-accepted", "byte-by-byte"})])
def test_a_limit_off_by_one_fails(quick, limit, failed):
    class OffByOne(Reverser):
        MAX_LENGTH = limit

    report = check("09.1", OffByOne)
    assert report.failed == failed


def test_a_limit_on_complete_lines_only_fails_without_a_delimiter(quick):
    class CompleteLinesOnly(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            if len(line) > 32:
                self.sendLine(b"ERR line too long")
                self.transport.loseConnection()
            else:
                self.sendLine(line[::-1])

    report = check("09.1", CompleteLinesOnly)
    assert report.failed == {"no-delimiter"}
    assert report.message("no-delimiter") == (
        "sent b'ok\\nyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy': the client expected"
        " b'ko\\nERR line too long\\n' but got b'ko\\n', then nothing more for 0.3 s")


def test_a_limit_set_on_the_instance_passes():
    """The limit is checked by behaviour: no class attribute MAX_LENGTH is needed."""

    class InstanceLimit(LineReceiver):
        delimiter = b"\n"

        def connectionMade(self):
            self.MAX_LENGTH = 32

        def lineReceived(self, line):
            self.sendLine(line[::-1])

        def lineLengthExceeded(self, line):
            self.sendLine(b"ERR line too long")
            self.transport.loseConnection()

    assert check("09.1", InstanceLimit).passed


def test_a_hand_written_buffer_limit_passes():
    class OwnBuffer(LineReceiver):
        delimiter = b"\n"

        def connectionMade(self):
            self.pending = b""

        def dataReceived(self, data):
            self.pending += data
            *lines, self.pending = self.pending.split(b"\n")
            for line in lines:
                if len(line) > 32:
                    return self.too_long()
                self.sendLine(line[::-1])
            if len(self.pending) > 32:
                self.too_long()

        def too_long(self):
            self.transport.write(b"ERR line too long\n")
            self.transport.loseConnection()

    assert check("09.1", OwnBuffer).passed


def test_a_line_reversed_with_its_delimiter_fails(quick):
    class WithDelimiter(LineReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 32

        def lineReceived(self, line):
            self.transport.write((line + b"\n")[::-1])

        lineLengthExceeded = Reverser.lineLengthExceeded

    report = check("09.1", WithDelimiter)
    assert "reverses" in report.failed


def test_a_crash_in_line_received_is_named():
    class Crashes(Reverser):
        def lineReceived(self, line):
            self.sendLine(line.decode("ascii")[::-1])  # str: sendLine needs bytes

    report = check("09.1", Crashes)
    assert report.attempted and report.failed == ALL_09_1
    assert "Twisted logged: TypeError" in report.message("reverses")
    assert "(raised in lineReceived)" in report.message("reverses")
    assert not servers()


def test_a_buffer_limit_with_room_for_the_delimiter_fails(quick):
    class Roomy(LineReceiver):
        delimiter = b"\n"

        def connectionMade(self):
            self.pending = b""

        def dataReceived(self, data):
            self.pending += data
            *lines, self.pending = self.pending.split(b"\n")
            for line in lines:
                if len(line) > 32:
                    return self.too_long()
                self.sendLine(line[::-1])
            if len(self.pending) > 33:  # "32 bytes and the newline still to come"
                self.too_long()

        def too_long(self):
            self.transport.write(b"ERR line too long\n")
            self.transport.loseConnection()

    report = check("09.1", Roomy)
    assert report.failed == {"no-delimiter"}
    assert report.message("no-delimiter") == (
        "sent b'ok\\nyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy': the client expected"
        " b'ko\\nERR line too long\\n' but got b'ko\\n', then nothing more for 0.3 s")


def test_reversing_decoded_text_fails_on_bytes_that_are_not_utf8(quick):
    class Text(Reverser):
        def lineReceived(self, line):
            self.sendLine(line.decode()[::-1].encode())

    report = check("09.1", Text)
    assert report.failed == {"reverses"}
    assert "Twisted logged: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff" in (
        report.message("reverses"))
    assert "(raised in lineReceived)" in report.message("reverses")


def test_a_class_level_buffer_fails_independence(quick):
    class SharedBuffer(LineReceiver):
        delimiter = b"\n"
        pending = bytearray()  # one buffer for every connection

        def dataReceived(self, data):
            self.pending.extend(data)
            while b"\n" in self.pending:
                end = self.pending.index(b"\n")
                line = bytes(self.pending[:end])
                del self.pending[: end + 1]
                if len(line) > 32:
                    return self.too_long()
                self.sendLine(line[::-1])
            if len(self.pending) > 32:
                self.too_long()

        def too_long(self):
            self.pending.clear()
            self.transport.write(b"ERR line too long\n")
            self.transport.loseConnection()

    report = check("09.1", SharedBuffer)
    assert report.failed == {"independent"}
    assert report.message("independent") == (
        "connection 1 sent b'abc' (half a line), then connection 2 sent b'xyz\\n', then"
        " connection 1 sent b'de\\n': connection 1 got b'ed\\n' and connection 2 got"
        " b'zyxcba\\n', expected b'edcba\\n' and b'zyx\\n'")


# -- 09.2 -------------------------------------------------------------------


def upload_with(parse_size):
    """The reference Upload, with the SIZE line parsed by `parse_size(line)`: n or None."""

    class Parsed(Upload):
        def lineReceived(self, line):
            n = parse_size(line)
            if n is None:
                self.sendLine(b"ERR")
                return
            self.size = self.remaining = n
            self.newlines = 0
            self.setRawMode()

    return Parsed


def test_int_on_whatever_follows_size_fails():
    def just_int(line):
        if not line.startswith(b"SIZE "):
            return None
        return int(line[5:])  # b"SIZE x" raises, b"SIZE 0" is accepted

    report = check("09.2", upload_with(just_int))
    assert report.failed == {"bad-sizes"}
    assert report.message("bad-sizes") == (
        "fed b'SIZE x\\nSIZE 2\\nhi' in one chunk: your protocol raised ValueError: invalid"
        " literal for int() with base 10: b'x'")


def test_int_with_a_range_check_still_takes_lenient_numbers():
    def lenient(line):
        if not line.startswith(b"SIZE "):
            return None
        try:
            n = int(line[5:])  # accepts b" 5", b"+5", b"05", b"1_0", b"5\r"
        except ValueError:
            return None
        return n if 1 <= n <= 1000 else None

    report = check("09.2", upload_with(lenient))
    assert report.failed == {"bad-sizes"}
    assert report.message("bad-sizes") == (
        "fed b'SIZE +5\\nSIZE 2\\nhi' in one chunk: it wrote b'OK 5 0\\nERR\\n', expected"
        " b'ERR\\nOK 2 0\\n'")


def test_str_isdigit_takes_other_digits():
    def str_digits(line):
        command, _, size = line.decode("utf-8", "replace").partition(" ")
        if command != "SIZE" or not size.isdigit():  # true for '５' and '²' too
            return None
        n = int(size)
        return n if 1 <= n <= 1000 and not size.startswith("0") else None

    report = check("09.2", upload_with(str_digits))
    assert report.failed == {"bad-sizes"}
    assert "SIZE \\xef\\xbc\\x95" in report.message("bad-sizes")


def test_isdigit_without_the_leading_zero_rule_fails():
    def leading_zeros(line):
        command, _, size = line.partition(b" ")
        if command != b"SIZE" or not size.isdigit() or not 1 <= int(size) <= 1000:
            return None
        return int(size)

    report = check("09.2", upload_with(leading_zeros))
    assert report.failed == {"bad-sizes"}
    assert report.message("bad-sizes").startswith("fed b'SIZE 05\\nSIZE 2\\nhi' in one chunk")


def test_size_zero_accepted_fails():
    def from_zero(line):
        command, _, size = line.partition(b" ")
        if command != b"SIZE" or not size.isdigit() or not int(size) <= 1000:
            return None
        return int(size)  # b"SIZE 0" starts an empty body

    report = check("09.2", upload_with(from_zero))
    assert report.failed == {"bad-sizes"}
    assert report.message("bad-sizes") == (
        "fed b'SIZE 0\\nSIZE 2\\nhi' in one chunk: it wrote b'OK 0 0\\nOK 2 0\\n', expected"
        " b'ERR\\nOK 2 0\\n'")


def test_no_range_check_fails():
    def no_range(line):
        command, _, size = line.partition(b" ")
        if command != b"SIZE" or not size.isdigit() or size.startswith(b"0"):
            return None
        return int(size)  # b"SIZE 1001" and a 20-digit size are accepted

    report = check("09.2", upload_with(no_range))
    assert report.failed == {"bad-sizes"}
    assert report.message("bad-sizes").startswith("fed b'SIZE 1001\\nSIZE 2\\nhi'")


def test_int_of_thousands_of_digits_raises_and_fails():
    def range_after_int(line):  # the range is checked, but int() sees all the digits first
        command, _, size = line.partition(b" ")
        if command != b"SIZE" or not size.isdigit() or size.startswith(b"0") \
                or not 1 <= int(size) <= 1000:
            return None
        return int(size)

    report = check("09.2", upload_with(range_after_int))
    assert report.failed == {"bad-sizes"}
    message = report.message("bad-sizes")
    assert message.startswith("fed b'SIZE 99999")
    assert "Exceeds the limit (4300 digits)" in repr(report)


def test_reading_the_body_as_lines_fails():
    class Lines(Upload):
        def lineReceived(self, line):
            if line.startswith(b"SIZE "):
                self.expected, self.body = int(line[5:]), b""
            else:
                self.body += line + b"\n"
                if len(self.body) >= self.expected:
                    self.sendLine(b"OK %d %d" % (self.expected, self.body.count(b"\n")))

    report = check("09.2", Lines)
    assert {"upload", "body-is-data", "next-commands"} <= report.failed


def test_dropping_what_follows_the_body_fails():
    class Drops(Upload):
        def rawDataReceived(self, data):
            super().rawDataReceived(data[: self.remaining])  # the rest is lost

    report = check("09.2", Drops)
    assert report.failed == {"next-commands"}
    assert report.message("next-commands") == (
        "fed b'SIZE 3\\nab\\nSIZE 2\\n\\n\\nhello\\nSIZE 12\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n'"
        " in one chunk: it wrote b'OK 3 1\\n', expected b'OK 3 1\\nOK 2 2\\nERR\\nOK 12 12\\n'")


def test_a_body_assumed_to_come_in_one_chunk_fails_byte_by_byte():
    class OneChunk(Upload):
        def rawDataReceived(self, data):
            self.remaining = len(data[: self.remaining])  # "the whole body is here"
            super().rawDataReceived(data)

    report = check("09.2", OneChunk)
    assert report.failed == {"byte-by-byte", "independent"}


def test_counting_lines_instead_of_newline_bytes_fails():
    class SplitLines(Upload):
        def rawDataReceived(self, data):
            body, rest = data[: self.remaining], data[self.remaining :]
            self.body = getattr(self, "body", b"") + body
            self.remaining -= len(body)
            if self.remaining == 0:
                lines = len(self.body.splitlines())  # counts \r too, and a last line
                self.body = b""
                self.sendLine(b"OK %d %d" % (self.size, lines))
                self.setLineMode(rest)

    report = check("09.2", SplitLines)
    assert "counts-newlines" in report.failed
    assert report.message("counts-newlines") == (
        "fed b'SIZE 5\\na\\rb\\r\\n' in one chunk: it wrote b'OK 5 2\\n', expected b'OK 5 1\\n'")


def test_a_newline_count_reset_per_connection_not_per_upload_fails():
    class PerConnection(Upload):
        def connectionMade(self):
            super().connectionMade()
            self.newlines = 0  # once per connection: the second upload counts on from here

        def lineReceived(self, line):
            command, _, size = line.partition(b" ")
            if command != b"SIZE" or not size.isdigit() or size.startswith(b"0") \
                    or len(size) > 4 or not 1 <= int(size) <= 1000:
                self.sendLine(b"ERR")
                return
            self.size = self.remaining = int(size)
            self.setRawMode()

    report = check("09.2", PerConnection)
    assert report.failed == {"next-commands", "byte-by-byte"}
    assert "it wrote b'OK 3 1\\nOK 2 3\\nERR\\nOK 12 15\\n'" in report.message("next-commands")


def test_a_class_level_body_list_fails_independence():
    class SharedBody(LineReceiver):
        delimiter = b"\n"
        chunks = []  # one list for every connection

        def lineReceived(self, line):
            command, _, size = line.partition(b" ")
            if command != b"SIZE" or not size.isdigit() or size.startswith(b"0") \
                    or len(size) > 4 or not 1 <= int(size) <= 1000:
                self.sendLine(b"ERR")
                return
            self.size = self.remaining = int(size)
            self.chunks.clear()
            self.setRawMode()

        def rawDataReceived(self, data):
            body, rest = data[: self.remaining], data[self.remaining :]
            self.chunks.append(body)
            self.remaining -= len(body)
            if self.remaining == 0:
                newlines = b"".join(self.chunks).count(b"\n")
                self.sendLine(b"OK %d %d" % (self.size, newlines))
                self.setLineMode(rest)

    report = check("09.2", SharedBody)
    assert report.failed == {"independent"}
    assert report.message("independent") == (
        "connection 1 sent b'SIZE 4\\na\\n' (half its body), then connection 2 sent"
        " b'SIZE 3\\nxyz', then connection 1 sent b'b\\n': connection 1 got b'OK 4 1\\n' and"
        " connection 2 got b'OK 3 0\\n', expected b'OK 4 2\\n' and b'OK 3 0\\n'")


def test_set_line_mode_from_line_received_fails():
    class LineModeTooEarly(Upload):
        def lineReceived(self, line):
            super().lineReceived(line)
            if self.line_mode == 0:
                self.setLineMode(b"")  # "there is no leftover here": the body is read as lines

    report = check("09.2", LineModeTooEarly)
    assert {"upload", "body-is-data"} <= report.failed


def test_line_mode_restored_only_with_a_leftover_fails():
    class OnlyWithRest(Upload):
        def rawDataReceived(self, data):
            body, rest = data[: self.remaining], data[self.remaining :]
            self.newlines += body.count(b"\n")
            self.remaining -= len(body)
            if self.remaining == 0:
                self.sendLine(b"OK %d %d" % (self.size, self.newlines))
                if rest:  # nothing after the body: still in raw mode
                    self.setLineMode(rest)

    report = check("09.2", OnlyWithRest)
    assert report.failed == {"body-ends-chunk", "byte-by-byte"}
    assert report.message("body-ends-chunk") == (
        "fed b'SIZE 2\\nhi', then b'SIZE 1\\nx', then b'hello\\n' in 3 chunks: it wrote"
        " b'OK 2 0\\nOK 2 0\\nOK 1 0\\nOK 1 0\\nERR\\n', expected"
        " b'OK 2 0\\nOK 1 0\\nERR\\n'")


# -- 09.3 -------------------------------------------------------------------


def calculator_for(command, respond=lambda numerator, denominator: numerator / denominator):
    class Answer(amp.AMP):
        @command.responder
        def divide(self, numerator, denominator):
            return {"quotient": respond(numerator, denominator)}

    return command, Answer


def divide_command(arguments=None, response=None, errors=None, fatal=None):
    """A Divide command like the reference one, with these declarations instead."""
    return type("Divide", (amp.Command,), {  # AMP reads the declarations at class creation
        "arguments": arguments or Divide.arguments,
        "response": response or Divide.response,
        "errors": Divide.errors if errors is None else errors,
        "fatalErrors": fatal or {},
    })


def test_an_undeclared_error_fails_with_unknown_remote_error():
    report = check("09.3", calculator_for(divide_command(errors={})))
    assert report.failed == {"zero-division", "stays-open"}
    assert report.message("zero-division").startswith(
        "Divide(1, 0) from a client that declares Divide as the statement does failed with"
        " UnknownRemoteError: Code<UNKNOWN>: Unknown Error: your responder raised"
        " ZeroDivisionError: division by zero, an error Divide does not declare, expected it"
        " to fail with ZeroDivisionError")
    assert "Twisted logged: ZeroDivisionError: division by zero (raised in" in (
        report.message("zero-division"))
    assert not servers()


def test_a_responder_that_raises_another_error_for_zero_fails():
    def value_error(numerator, denominator):
        if denominator == 0:
            raise ValueError("cannot divide by zero")
        return numerator / denominator

    report = check("09.3", calculator_for(Divide, value_error))
    assert report.failed == {"zero-division", "stays-open"}
    assert "your responder raised ValueError: cannot divide by zero" in report.message(
        "zero-division")


def test_a_responder_that_returns_infinity_for_zero_fails():
    def infinity(numerator, denominator):
        return numerator / denominator if denominator else float("inf")

    report = check("09.3", calculator_for(Divide, infinity))
    assert report.failed == {"zero-division", "stays-open"}
    assert report.message("zero-division") == (
        "Divide(1, 0) from a client that declares Divide as the statement does answered"
        " {'quotient': inf}, expected it to fail with ZeroDivisionError")


def test_another_error_code_fails():
    report = check("09.3", calculator_for(divide_command(errors={ZeroDivisionError: b"DIV0"})))
    assert report.failed == {"zero-division"}
    assert report.message("zero-division") == (
        "Divide(1, 0) from a client that declares Divide as the statement does failed with"
        " UnknownRemoteError: Code<UNKNOWN>: division by zero: the server sent an error code the"
        " statement does not use, expected it to fail with ZeroDivisionError")


def test_a_fatal_error_closes_the_connection():
    command = divide_command(errors={}, fatal={ZeroDivisionError: b"ZERO_DIVISION"})
    report = check("09.3", calculator_for(command))
    assert report.failed == {"stays-open"}
    assert report.message("stays-open") == (
        "Divide(1, 0) from a client that declares Divide as the statement does failed with"
        " ZeroDivisionError: division by zero; then Divide(9, 3) on the same connection failed"
        " with ConnectionDone: Connection was closed cleanly., expected {'quotient': 3.0}")


def test_an_integer_response_fails():
    command = divide_command(response=[(b"quotient", amp.Integer())])
    report = check("09.3", calculator_for(command, lambda n, d: n // d))
    assert {"answers", "your-divide"} <= report.failed
    assert report.message("answers") == (
        "Divide(7, 2) from a client that declares Divide as the statement does answered"
        " {'quotient': 3.0}, expected {'quotient': 3.5}")


def test_an_int_returned_for_an_exact_division_fails():
    def exact_as_int(numerator, denominator):
        if numerator % denominator == 0:
            return numerator // denominator  # an int: amp.Float refuses it
        return numerator / denominator

    report = check("09.3", calculator_for(Divide, exact_as_int))
    assert report.failed == {"answers", "your-divide", "stays-open"}  # 9 / 3 is exact too
    assert report.message("answers").startswith(
        "Divide(8, 4) from a client that declares Divide as the statement does failed with"
        " UnknownRemoteError: Code<UNKNOWN>: Unknown Error: your responder returned"
        " {'quotient': 2}, which Divide's response cannot encode (ValueError: Bad float value"
        " 2), expected {'quotient': 2.0}")


def test_float_arguments_refuse_a_caller_passing_ints():
    command = divide_command(arguments=[(b"numerator", amp.Float()),
                                        (b"denominator", amp.Float())])
    report = check("09.3", calculator_for(command))
    assert report.failed == {"your-divide", "zero-division"}
    assert report.message("your-divide") == (
        "Divide(7, 2) from a client using your Divide failed with ValueError: Bad float value"
        " 7, expected {'quotient': 3.5}")


def test_other_argument_names_fail():
    command = divide_command(arguments=[(b"a", amp.Integer()), (b"b", amp.Integer())])

    class Answer(amp.AMP):
        @command.responder
        def divide(self, a, b):
            return {"quotient": a / b}

    report = check("09.3", (command, Answer))
    assert report.failed == {"answers", "your-divide", "zero-division", "stays-open"}


def test_a_declared_base_class_gives_the_caller_the_base_class():
    command = divide_command(errors={ArithmeticError: b"ZERO_DIVISION"})
    report = check("09.3", calculator_for(command))
    assert report.failed == {"zero-division"}
    assert report.message("zero-division") == (
        "Divide(1, 0) from a client using your Divide failed with ArithmeticError: division by"
        " zero, expected it to fail with ZeroDivisionError")


def test_a_deferred_failure_and_remote_amp_error_are_fine():
    def deferred(numerator, denominator):
        return numerator / denominator

    class Deferring(amp.AMP):
        @Divide.responder
        def divide(self, numerator, denominator):
            return defer.maybeDeferred(lambda: {"quotient": deferred(numerator, denominator)})

    assert check("09.3", (Divide, Deferring)).passed
    assert check("09.3", (Divide, Calculator)).passed


def test_a_responder_that_returns_the_float_alone_fails():
    class Bare(amp.AMP):
        @Divide.responder
        def divide(self, numerator, denominator):
            return numerator / denominator  # not a dict of the response's names

    report = check("09.3", (Divide, Bare))
    assert report.failed == {"answers", "your-divide", "stays-open"}
    assert report.message("answers").startswith(
        "Divide(7, 2) from a client that declares Divide as the statement does failed with"
        " UnknownRemoteError: Code<UNKNOWN>: Unknown Error: your responder returned 3.5, which"
        " Divide's response cannot encode (AttributeError: 'float' object has no attribute"
        " 'copy'), expected {'quotient': 3.5}")


def test_a_method_without_the_responder_decorator_is_no_responder():
    class Undecorated(amp.AMP):
        def divide(self, numerator, denominator):  # AMP does not know it answers Divide
            return {"quotient": numerator / denominator}

    report = check("09.3", (Divide, Undecorated))
    assert report.failed == {"answers", "your-divide", "zero-division", "stays-open"}
    assert report.message("answers") == (
        "Divide(7, 2) from a client that declares Divide as the statement does failed with"
        " UnhandledCommand: (b'UNHANDLED', \"Unhandled Command: b'Divide'\"): your Calculator"
        " has no responder for the command name the caller sent, expected {'quotient': 3.5}")


def test_a_responder_whose_deferred_never_fires_gets_no_answer(monkeypatch):
    monkeypatch.setattr(ch09, "CALL_TIMEOUT", 0.1)

    class Never(amp.AMP):
        @Divide.responder
        def divide(self, numerator, denominator):
            d = defer.Deferred()  # meant to be fired with the answer, and never is
            d.addCallback(lambda _: {"quotient": numerator / denominator})
            return d

    report = check("09.3", (Divide, Never))
    assert report.failed == {"answers", "your-divide", "zero-division", "stays-open"}
    assert report.message("answers") == (
        "Divide(7, 2) from a client that declares Divide as the statement does got no answer"
        " within 0.1 s, expected {'quotient': 3.5}")
