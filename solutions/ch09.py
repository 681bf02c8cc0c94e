"""Reference solutions for chapter 09 (Framing with Twisted).

Run through the chapter's checkers by tests/test_exercises_ch09.py:
``check("09.1", SOLUTIONS["09.1"]).passed`` is True.
"""

from __future__ import annotations

from twisted.protocols import amp
from twisted.protocols.basic import LineReceiver

# -- 09.1 -------------------------------------------------------------------


class Reverser(LineReceiver):
    """Answer each line reversed; a line over 32 bytes gets an ERR line and a close.

    LineReceiver calls lineLengthExceeded both for a complete line that is too long and
    for 34 buffered bytes without a delimiter, so one override covers both.
    """

    delimiter = b"\n"
    MAX_LENGTH = 32

    def lineReceived(self, line):
        self.sendLine(line[::-1])

    def lineLengthExceeded(self, line):
        self.sendLine(b"ERR line too long")
        self.transport.loseConnection()


# -- 09.2 -------------------------------------------------------------------


class Upload(LineReceiver):
    """SIZE <n> on a line, then n raw bytes; reply OK <n> <newlines in the body>.

    The number is checked as text before int() sees it (int() also takes b" +5",
    b"05" and b"1_0"); bytes.isdigit() is true for ASCII digits only, and at most 4 digits
    reach int() (which refuses more than 4,300 with a ValueError of its own). `remaining`
    counts the body bytes still to come, across any number of rawDataReceived calls;
    what follows the body is handed back to line mode.
    """

    delimiter = b"\n"

    def lineReceived(self, line):
        command, _, size = line.partition(b" ")
        if (command != b"SIZE" or not size.isdigit() or size.startswith(b"0")
                or len(size) > 4 or not 1 <= int(size) <= 1000):
            self.sendLine(b"ERR")
            return
        self.size = self.remaining = int(size)
        self.newlines = 0
        self.setRawMode()

    def rawDataReceived(self, data):
        body, rest = data[: self.remaining], data[self.remaining :]
        self.newlines += body.count(b"\n")
        self.remaining -= len(body)
        if self.remaining == 0:
            self.sendLine(b"OK %d %d" % (self.size, self.newlines))
            self.setLineMode(rest)


# -- 09.3 -------------------------------------------------------------------


class Divide(amp.Command):
    """numerator / denominator; ZeroDivisionError crosses the wire as itself."""

    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"quotient", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


class Calculator(amp.AMP):
    @Divide.responder
    def divide(self, numerator, denominator):
        return {"quotient": numerator / denominator}  # 1 / 0 raises ZeroDivisionError


SOLUTIONS = {
    "09.1": Reverser,
    "09.2": Upload,
    "09.3": (Divide, Calculator),
}
