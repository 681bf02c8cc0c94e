"""Chapter 11's teaching code on real connections (127.0.0.1): the heartbeat and job
servers, loaded from the notebook's `# module: connections` cells, also understand clients
that end their lines with \\r\\n (telnet, `nc -C`)."""

from pathlib import Path

import pytest

from helpers import EventLog, serve
from helpers.exercises.wire import Client
from helpers.notebook_code import load

connections = load(Path(__file__).parent.parent / "notebooks"
                   / "11_connection_management.ipynb", "connections")


@pytest.mark.parametrize("end", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_a_client_that_answers_every_ping_stays_connected(end):
    factory = connections.HeartbeatFactory(EventLog(), interval=0.05, max_missed=3)
    with serve("test-heartbeat-crlf", factory) as server, Client(server.port, timeout=2) as c:
        for ping in range(1, 6):  # the server drops a silent peer at the 4th beat
            got = c.read_until(b"\n")
            assert (got.data, got.ending) == (b"PING\n", "complete"), f"ping {ping}: {got}"
            c.send(b"PONG" + end)
    assert not [e for e in factory.log.events if e.what == "dropped"]


@pytest.mark.parametrize("end", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_a_job_is_done_and_named_without_the_line_end(end):
    log = EventLog()
    with serve("test-jobs-crlf", connections.JobFactory(log)) as server, \
            Client(server.port, timeout=2) as client:
        client.send(b"job 7" + end)
        got = client.read_until(b"\n")
        assert (got.data, got.ending) == (b"done job 7\n", "complete"), str(got)
    assert [e.details["job"] for e in log.wait(1, "job done")] == ["job 7"]
