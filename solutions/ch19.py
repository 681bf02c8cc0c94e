"""Reference solutions for chapter 19 (performance)."""

from twisted.internet.protocol import Protocol


class FastTotal(Protocol):
    """RunningTotal with the total kept, not recomputed: O(1) per request."""

    def connectionMade(self):
        self.buffer, self.total = b"", 0

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            command, _, number = line.strip().partition(b" ")
            try:
                if command != b"ADD":
                    raise ValueError
                self.total += int(number)
            except ValueError:
                self.transport.write(b"ERR expected ADD n\n")
                continue
            self.transport.write(b"%d\n" % self.total)


def ask(sock, header, body, reply_size=2):
    """One write per request (no write-write-read), then read the whole reply."""
    sock.sendall(header + body)
    reply = bytearray()
    while len(reply) < reply_size:
        chunk = sock.recv(reply_size - len(reply))
        if not chunk:
            raise ConnectionError(f"the server closed after {len(reply)} bytes of the reply")
        reply += chunk
    return bytes(reply)


SOLUTIONS = {"19.1": FastTotal, "19.2": ask}
