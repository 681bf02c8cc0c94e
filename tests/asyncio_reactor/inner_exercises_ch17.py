"""Chapter 17's checkers against the reference solutions and a learner's real mistakes."""

from helpers.reactor import install_asyncio_reactor

LOOP = install_asyncio_reactor()  # before anything installs the default reactor

import asyncio  # noqa: E402

import pytest  # noqa: E402
from twisted.internet import defer, endpoints, threads  # noqa: E402

from helpers.exercises import check  # noqa: E402
from solutions.ch17 import SOLUTIONS, LineClient  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")

ALL_17_1 = {"result", "failure", "reactor-loop", "cancel"}
ALL_17_2 = {"replies", "at-once", "closes", "timeout", "hang-up"}


def stub(*args, **kwargs):
    raise NotImplementedError("your code here")


async def stub_coroutine(port, lines, timeout=2):
    raise NotImplementedError("your code here")


def test_the_reference_solutions_pass():
    for exercise_id, answer in SOLUTIONS.items():
        report = check(exercise_id, answer)
        assert report.passed, repr(report)


def test_the_stubs_are_not_attempted_and_show_no_hint():
    for exercise_id, answer in [("17.1", stub), ("17.2", stub_coroutine)]:
        report = check(exercise_id, answer)
        assert not report.attempted, repr(report)
        assert "hint" not in repr(report)


# -- 17.1 -------------------------------------------------------------------

def from_coroutine(coro_fn):
    return lambda *args: defer.Deferred.fromCoroutine(coro_fn(*args))


def test_fromcoroutine_cannot_await_asyncio():
    report = check("17.1", from_coroutine)
    assert report.failed == {"result", "cancel"}, repr(report)
    assert "await wasn't used with future" in report.message("result")


def bare_coroutine(coro_fn):
    return lambda *args: defer.Deferred.fromFuture(coro_fn(*args))


def test_a_bare_coroutine_fails_everything_with_its_attribute_error():
    report = check("17.1", bare_coroutine)
    assert report.failed == ALL_17_1, repr(report)
    assert "add_done_callback" in report.message("result")


def returns_the_task(coro_fn):
    return lambda *args: asyncio.ensure_future(coro_fn(*args))


def test_returning_the_task_says_a_deferred_is_expected():
    report = check("17.1", returns_the_task)
    assert report.failed == ALL_17_1, repr(report)
    assert "expected a Deferred" in report.message("result")


def in_a_thread(coro_fn):
    return lambda *args: threads.deferToThread(asyncio.run, coro_fn(*args))


def test_asyncio_run_in_a_thread_is_the_wrong_loop_and_cannot_be_cancelled():
    report = check("17.1", in_a_thread)
    assert report.failed == {"reactor-loop", "cancel"}, repr(report)
    assert "another loop" in report.message("reactor-loop")
    assert "was never cancelled" in report.message("cancel")


def by_hand(coro_fn):
    def start(*args):
        d = defer.Deferred()
        task = asyncio.ensure_future(coro_fn(*args))
        task.add_done_callback(
            lambda t: d.errback(t.exception()) if t.exception() else d.callback(t.result()))
        return d

    return start


def test_a_deferred_made_by_hand_does_not_cancel_the_task():
    report = check("17.1", by_hand)
    assert report.failed == {"cancel"}, repr(report)
    assert "was never cancelled" in report.message("cancel")


def swallows_errors(coro_fn):
    def start(*args):
        d = defer.Deferred(lambda _: task.cancel())
        task = asyncio.ensure_future(coro_fn(*args))
        task.add_done_callback(lambda t: t.cancelled() or d.callback(t.result()))
        return d

    return start


def test_an_exception_lost_in_the_tasks_callback_fails_failure(monkeypatch):
    from helpers.exercises import ch17

    monkeypatch.setattr(ch17, "WAIT", 0.2)  # how long the check waits for the Deferred
    report = check("17.1", swallows_errors)
    assert "failure" in report.failed and "result" not in report.failed, repr(report)
    assert "had not fired" in report.message("failure")


def on_a_new_loop(coro_fn):
    def start(*args):
        loop = asyncio.new_event_loop()  # a loop that nothing runs
        return defer.Deferred.fromFuture(loop.create_task(coro_fn(*args)))

    return start


def test_a_task_on_a_loop_that_nothing_runs_never_starts(monkeypatch):
    from helpers.exercises import ch17

    monkeypatch.setattr(ch17, "WAIT", 0.2)
    report = check("17.1", on_a_new_loop)
    assert report.failed == ALL_17_1, repr(report)
    assert report.message("reactor-loop") == (
        "as_deferred(where)(): the Deferred had not fired after 0.2 s, and the coroutine"
        " never ran: it was not started on a loop that runs")
    assert report.message("cancel").endswith("the coroutine never started")
    assert "had not fired after 0.2 s, expected it to fire with 42" in report.message("result")


# -- 17.2 -------------------------------------------------------------------

async def connect(port):
    from twisted.internet import reactor

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    return await endpoints.connectProtocol(endpoint, LineClient()).asFuture(
        asyncio.get_running_loop())


async def awaits_deferreds(port, lines, timeout=2):
    client = await connect(port)
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(client.ask(line) for line in lines)), timeout)
    finally:
        client.transport.loseConnection()


def test_awaiting_the_deferreds_themselves_is_a_bad_yield():
    report = check("17.2", awaits_deferreds)
    assert {"replies", "at-once", "closes"} <= report.failed, repr(report)
    assert "bad yield" in report.message("replies")


async def one_at_a_time(port, lines, timeout=2):
    loop = asyncio.get_running_loop()
    client = await connect(port)

    async def each():
        return [await client.ask(line).asFuture(loop) for line in lines]

    try:
        return await asyncio.wait_for(each(), timeout)
    finally:
        client.transport.loseConnection()


def test_one_line_at_a_time_fails_at_once():
    report = check("17.2", one_at_a_time)
    assert report.failed == {"at-once"}, repr(report)
    assert "got 1 line(s) before its first reply" in report.message("at-once")


async def never_closes(port, lines, timeout=2):
    loop = asyncio.get_running_loop()
    client = await connect(port)
    replies = [client.ask(line).asFuture(loop) for line in lines]
    return await asyncio.wait_for(asyncio.gather(*replies), timeout)


def test_a_connection_never_closed_fails_closes_and_timeout():
    report = check("17.2", never_closes)
    assert report.failed == {"closes", "timeout"}, repr(report)
    assert "still open" in report.message("closes")
    assert "left the connection open" in report.message("timeout")


async def closes_only_on_success(port, lines, timeout=2):
    loop = asyncio.get_running_loop()
    client = await connect(port)
    replies = [client.ask(line).asFuture(loop) for line in lines]
    result = await asyncio.wait_for(asyncio.gather(*replies), timeout)
    client.transport.loseConnection()
    return result


def test_closing_only_on_success_fails_timeout():
    report = check("17.2", closes_only_on_success)
    assert report.failed == {"timeout"}, repr(report)
    assert "left the connection open" in report.message("timeout")


async def no_timeout(port, lines, timeout=2):
    loop = asyncio.get_running_loop()
    client = await connect(port)
    try:
        return await asyncio.gather(*(client.ask(line).asFuture(loop) for line in lines))
    finally:
        client.transport.loseConnection()


def test_no_timeout_at_all_fails_timeout():
    report = check("17.2", no_timeout)
    assert report.failed == {"timeout"}, repr(report)
    assert "still running after" in report.message("timeout")


async def a_timeout_per_reply(port, lines, timeout=2):
    loop = asyncio.get_running_loop()
    client = await connect(port)
    try:
        replies = [client.ask(line).asFuture(loop) for line in lines]
        return [await asyncio.wait_for(reply, timeout) for reply in replies]
    finally:
        client.transport.loseConnection()


def test_a_timeout_per_reply_misses_the_deadline_for_all():
    report = check("17.2", a_timeout_per_reply)
    assert report.failed == {"timeout"}, repr(report)
    assert "one line every 0.2 s" in report.message("timeout")


async def partial_list(port, lines, timeout=2):
    loop = asyncio.get_running_loop()
    client = await connect(port)
    try:
        replies = [client.ask(line).asFuture(loop) for line in lines]
        got = await asyncio.wait_for(asyncio.gather(*replies, return_exceptions=True), timeout)
        return [r for r in got if isinstance(r, str)]
    finally:
        client.transport.loseConnection()


def test_a_partial_list_after_a_hang_up_fails_hang_up():
    report = check("17.2", partial_list)
    assert report.failed == {"hang-up"}, repr(report)
    assert "returned ['ALPHA']" in report.message("hang-up")


async def twisteds_timeout(port, lines, timeout=2):
    from twisted.internet import reactor

    loop = asyncio.get_running_loop()
    client = await connect(port)
    try:
        asked = [client.ask(line).addTimeout(timeout, reactor) for line in lines]
        return await asyncio.gather(*(d.asFuture(loop) for d in asked))
    finally:
        client.transport.loseConnection()


def test_twisteds_timeouterror_is_not_the_builtin_one():
    report = check("17.2", twisteds_timeout)
    assert report.failed == {"timeout"}, repr(report)
    assert report.message("timeout").endswith(
        "expected TimeoutError (the built-in one, as asyncio raises; this one is"
        " twisted.internet.defer.TimeoutError, which `except TimeoutError` does not catch)")


async def gathers_deferreds(port, lines, timeout=2):
    client = await connect(port)
    try:
        gathered = defer.gatherResults([client.ask(line) for line in lines],
                                       consumeErrors=True)
        return await asyncio.wait_for(gathered.asFuture(asyncio.get_running_loop()), timeout)
    finally:
        client.transport.loseConnection()


def test_gatherresults_wraps_the_lost_connection_in_a_firsterror():
    report = check("17.2", gathers_deferreds)
    assert report.failed == {"hang-up"}, repr(report)
    assert report.message("hang-up").endswith(
        ": raised FirstError, which wraps ConnectionDone: Connection was closed cleanly.;"
        " expected the exception of the lost connection itself")


def test_the_checkers_say_so_in_a_kernel_with_another_reactor(monkeypatch):
    from helpers.exercises import ch17

    monkeypatch.setattr(ch17, "installed_reactor", lambda: "EPollReactor")
    for exercise_id, every in [("17.1", ALL_17_1), ("17.2", ALL_17_2)]:
        report = check(exercise_id, SOLUTIONS[exercise_id])
        assert report.failed == every, repr(report)
        for key in every:
            assert "run the chapter's first cell first" in report.message(key), key
