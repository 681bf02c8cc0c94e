import threading

import pytest

from helpers import EventLog, EventTimeout


def test_record_and_wait_for_a_count_from_other_threads():
    log = EventLog()
    threads = [
        threading.Thread(target=log.record, args=(f"client {i}", "sent"), kwargs={"n": i})
        for i in range(5)
    ]
    for t in threads:
        t.start()
    events = log.wait(5, "sent", timeout=2)
    assert sorted(e.details["n"] for e in events) == [0, 1, 2, 3, 4]
    for t in threads:
        t.join()


def test_wait_with_a_predicate_returns_only_matching_events():
    log = EventLog()
    log.record("server", "got", data=b"a")
    log.record("server", "closed")
    log.record("client", "got", data=b"b")
    assert [e.source for e in log.wait(2, lambda e: e.what == "got")] == ["server", "client"]


def test_wait_times_out_naming_what_was_missing_and_what_was_seen():
    log = EventLog()
    log.record("server", "connected")
    with pytest.raises(EventTimeout) as info:
        log.wait(2, "closed", timeout=0.05)
    message = str(info.value)
    assert "2 x 'closed'" in message and "saw 0" in message
    assert "server: connected" in message
    assert isinstance(info.value, TimeoutError)


def test_wait_until_times_out_with_the_given_description():
    log = EventLog()
    with pytest.raises(EventTimeout, match="both clients gone"):
        log.wait_until(lambda events: len(events) > 3, timeout=0.05, what="both clients gone")


def test_show_groups_by_source_whatever_the_recording_order(capsys):
    a, b = EventLog(), EventLog()
    for source, what in [("server", "open"), ("client", "send"), ("server", "close")]:
        a.record(source, what)
    for source, what in [("client", "send"), ("server", "open"), ("server", "close")]:
        b.record(source, what)
    assert a.lines() == b.lines() == ["client: send", "server: open", "server: close"]
    a.show()
    assert capsys.readouterr().out == "client: send\nserver: open\nserver: close\n"
    assert a.lines(by="time")[0] == "server: open"
    with pytest.raises(ValueError):
        a.lines(by="colour")


def test_clear_and_empty_show(capsys):
    log = EventLog()
    log.record("x", "y", size=3)
    assert str(log.events[0]) == "x: y size=3"
    log.clear()
    assert len(log) == 0
    log.show()
    assert capsys.readouterr().out == "(no events)\n"
