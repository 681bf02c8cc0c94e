"""Chapter 09 exercises: every reference solution passes its checker, and
deliberately wrong answers fail the check that names their mistake, fast."""

from twisted.protocols import amp

from helpers import check, servers
from solutions.ch09 import Divide, Reverser, Upload

# -- 09.1 -------------------------------------------------------------------


def test_a_stub_that_raises_is_named_in_the_report():
    class Stub(Reverser):
        def lineReceived(self, line):
            raise NotImplementedError("your code here")

    report = check("09.1", Stub)
    assert {"answers each line, reversed", "a 32-byte line is accepted"} <= report.failed
    assert "your code raised NotImplementedError: your code here" in repr(report)
    assert not servers()


def test_the_default_crlf_delimiter_fails_at_once():
    class Crlf(Reverser):
        delimiter = b"\r\n"

    report = check("09.1", Crlf)
    assert not any(r.passed for r in report.results)
    assert "Crlf.delimiter is b'\\r\\n', not b'\\n'" in repr(report)


def test_closing_without_err_fails():
    class Silent(Reverser):
        def lineLengthExceeded(self, line):
            self.transport.loseConnection()

    report = check("09.1", Silent)
    assert report.failed == {"a 33-byte line gets ERR after the line before it, then a close",
                              "40 bytes without a newline get ERR, then a close"}
    assert "then the connection closed" in repr(report)


def test_err_without_closing_fails():
    class Open(Reverser):
        def lineLengthExceeded(self, line):
            self.sendLine(b"ERR line too long")

    report = check("09.1", Open)
    assert len(report.failed) == 2
    assert "(the connection stayed open)" in repr(report)


# -- 09.2 -------------------------------------------------------------------


def test_reading_the_body_as_lines_fails():
    class Lines(Upload):
        def lineReceived(self, line):
            self.sendLine(b"OK %d 0" % len(line))

    report = check("09.2", Lines)
    assert not any(r.passed for r in report.results)


def test_dropping_what_follows_the_body_fails():
    class Drops(Upload):
        def rawDataReceived(self, data):
            super().rawDataReceived(data[: self.remaining])  # the rest is lost

    report = check("09.2", Drops)
    assert report.failed == {"the next commands in the same chunk are lines again"}


def test_a_body_assumed_to_come_in_one_chunk_fails_byte_by_byte():
    class OneChunk(Upload):
        def rawDataReceived(self, data):
            self.remaining = len(data[: self.remaining])  # "the whole body is here"
            super().rawDataReceived(data)

    report = check("09.2", OneChunk)
    assert report.failed == {"the same, fed one byte at a time"}


# -- 09.3 -------------------------------------------------------------------


def test_an_undeclared_error_fails_with_unknown_remote_error():
    class Undeclared(amp.Command):
        arguments, response = Divide.arguments, Divide.response  # and no errors

    class Careless(amp.AMP):
        @Undeclared.responder
        def divide(self, numerator, denominator):
            return {"quotient": numerator / denominator}

    report = check("09.3", (Undeclared, Careless))
    assert report.failed == {
        "Divide(1, 0) raises ZeroDivisionError at the caller; the connection stays open"}
    assert "UnknownRemoteError" in repr(report)
    assert not servers()


def test_an_integer_response_fails():
    class IntegerDivide(Divide):
        response = [(b"quotient", amp.Integer())]

    class IntegerCalculator(amp.AMP):
        @IntegerDivide.responder
        def divide(self, numerator, denominator):
            return {"quotient": numerator // denominator}

    report = check("09.3", (IntegerDivide, IntegerCalculator))
    assert {"Divide declares Integer arguments and a Float response",
            "Divide(7, 2) returns {'quotient': 3.5}"} <= report.failed
