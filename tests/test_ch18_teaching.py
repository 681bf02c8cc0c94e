"""Chapter 18's teaching code (the notebook's `# module: ch18` cells, and workers18.py),
tried the way a reader's use would break it: three requests in one write, \\r\\n line ends,
a client that leaves mid-hash, a real terminal client (nettalk), an already-finished
future, a failing one, a cancelled one, and a spawned process pool importing workers18."""

import concurrent.futures
import hashlib
import multiprocessing
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import EventLog, serve
from helpers.notebook_code import load
from helpers.reactor import call, start
from notebooks import workers18

ROOT = Path(__file__).resolve().parent.parent
ch18 = load(ROOT / "notebooks" / "18_threads_and_executors.ipynb", "ch18")

TIMEOUT = 10  # a failure waits this long; a reply on loopback takes milliseconds


def digest(word: bytes) -> str:
    for _ in range(3):
        word = hashlib.pbkdf2_hmac("sha256", word, b"chapter-18", 50_000)
    return word.hex()[:16]


def read_lines(sock, n):
    data = b""
    while data.count(b"\n") < n:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode().splitlines()


@pytest.fixture
def hash_server():
    start()
    log = EventLog()
    with serve("test-ch18-hash", ch18.HashFactory(log)) as server:
        yield server, log


def test_three_requests_in_one_write_all_answered_every_write_by_the_reactor(hash_server):
    server, log = hash_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"hash a\nwhat?\r\nhash b\r\n")
        lines = read_lines(sock, 9)
    assert lines[0] == "error: send 'hash WORD'"  # answered at once, before the hashes
    assert sorted(line for line in lines if line.startswith("progress")) == sorted(
        [f"progress {i}/3" for i in (1, 2, 3)] * 2)
    assert {digest(b"a"), digest(b"b")} == {line for line in lines[1:]
                                            if not line.startswith("progress")}
    log.wait(9, "wrote", timeout=TIMEOUT)
    assert {e.source for e in log.events} == {"CrochetReactor"}


def test_a_client_that_leaves_mid_hash_breaks_nothing(hash_server):
    server, log = hash_server
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(b"hash gone\n")
    sock.close()  # before any answer
    log.wait(4, "wrote", timeout=TIMEOUT)  # the worker finished; writes to a closed
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as again:
        again.sendall(b"hash again\n")  # transport were dropped, the server still serves
        assert read_lines(again, 4)[-1] == digest(b"again")


def test_nettalk_from_a_terminal(hash_server):
    server, _ = hash_server
    nettalk = subprocess.Popen(
        [sys.executable, str(ROOT / "helpers" / "nettalk.py"), "127.0.0.1", str(server.port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        nettalk.stdin.write(b"hash secret\n")
        nettalk.stdin.flush()
        lines = [nettalk.stdout.readline().decode().strip() for _ in range(4)]
    finally:
        nettalk.stdin.close()
        nettalk.wait(TIMEOUT)
    assert lines == ["progress 1/3", "progress 2/3", "progress 3/3", digest(b"secret")]


@pytest.fixture
def executor():
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="test-ch18") as pool:
        yield pool


def fired_in(make):
    def run():
        return make().addCallback(lambda v: (v, threading.current_thread().name))

    return call(run, timeout=TIMEOUT)


def test_deferred_from_future_fires_in_the_reactor_thread(executor):
    gate = threading.Event()
    future = executor.submit(lambda: gate.wait(TIMEOUT) and "late")
    threading.Timer(0.05, gate.set).start()
    assert fired_in(lambda: ch18.deferred_from_future(future)) == ("late", "CrochetReactor")


def test_an_already_finished_future_also_fires_in_the_reactor_thread(executor):
    future = executor.submit(int, "7")
    future.result(TIMEOUT)
    assert fired_in(lambda: ch18.deferred_from_future(future)) == (7, "CrochetReactor")


def test_a_failing_future_fails_the_deferred(executor):
    with pytest.raises(ValueError, match="twelve"):
        call(lambda: ch18.deferred_from_future(executor.submit(int, "twelve")), timeout=TIMEOUT)


def test_cancelling_the_deferred_cancels_a_job_not_started(executor):
    gate = threading.Event()
    executor.submit(gate.wait, TIMEOUT)
    executor.submit(gate.wait, TIMEOUT)  # both workers busy
    waiting = executor.submit(int, "1")
    outcome = []

    def cancel():
        d = ch18.deferred_from_future(waiting)
        d.addErrback(lambda f: outcome.append(type(f.value).__name__))
        d.cancel()

    call(cancel)
    gate.set()
    assert waiting.cancelled() and outcome == ["CancelledError"]


def test_workers18_in_a_spawned_process_pool():
    assert workers18.count_primes(100) == 25
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        assert pool.submit(workers18.square, 12).result(TIMEOUT) == 144
        with pytest.raises(ValueError, match="negative: -1"):
            pool.submit(workers18.check_positive, -1).result(TIMEOUT)
    assert not multiprocessing.active_children()


SPAWN_A_POOL = """
import concurrent.futures, multiprocessing, multiprocessing.resource_tracker
spawn = multiprocessing.get_context("spawn")
with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as p:
    assert p.submit(abs, -1).result() == 1
"""


def _in_a_kernel(code: str) -> str:
    """Run `code` in a fresh kernel of its own; what it printed."""
    import nbval.kernel

    # nbval's, as conftest.py has it: started again if it dies at start
    km, kc = nbval.kernel.start_new_kernel(kernel_name="python3", cwd=str(ROOT / "notebooks"))
    printed = []

    def keep(message):
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    try:
        reply = kc.execute_interactive(code, timeout=30, output_hook=keep)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(printed)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


TRACKER = """
import psutil
for child in psutil.Process().children():
    if "resource_tracker" in " ".join(child.cmdline()):
        status = open(f"/proc/{child.pid}/status").read()
        # Spawned with SIGTERM blocked, it ignores SIGTERM (then unblocks it) once its main()
        # runs: a SIGTERM sent meanwhile waits, and is dropped once ignored. Either way, deaf.
        deaf = 0
        for mask in ("SigIgn:", "SigBlk:"):
            deaf |= int(status.split(mask)[1].split()[0], 16)
        print("tracker ignores SIGTERM:", bool(deaf & 1 << (15 - 1)))
"""


CHILDREN = """
print("children:", [child.cmdline() for child in psutil.Process().children()])
"""


def test_the_resource_tracker_is_a_child_that_ignores_sigterm_until_it_is_stopped():
    """Section 9's claim, and why the clean-up cell stops the tracker: ipykernel's shutdown
    sends SIGTERM to the kernel's child processes and waits for them to go (for up to 14 s,
    before SIGKILL), and the tracker that a spawn pool starts ignores SIGTERM. Stopped, it is
    gone, and the kernel has no child left to wait for. (Timing the kernel's exit instead
    failed both ways on loaded machines: a stuck one once left within 1 s, a free one once
    took over 10 s.)"""
    assert _in_a_kernel(SPAWN_A_POOL + TRACKER) == "tracker ignores SIGTERM: True\n"
    stopped = SPAWN_A_POOL + "multiprocessing.resource_tracker._resource_tracker._stop()\n"
    assert _in_a_kernel(stopped + TRACKER + CHILDREN) == "children: []\n"
