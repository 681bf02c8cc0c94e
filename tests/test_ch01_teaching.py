"""Chapter 01's own code, run for real: no socket it makes is reachable from the network.

Every code cell of the notebook runs in a fresh interpreter with an audit hook that sees
each bind(), and each sendto() or connect() of a UDP socket, before the system call.
A UDP socket that sends before it is bound is bound by the kernel to 0.0.0.0; one that
connects to 127.0.0.1 before it is bound is bound to 127.0.0.1. Other chapters run their
notebooks through `exposed_sockets` too.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_sockets.ipynb"

AUDITED_RUN = r"""
import ipaddress, json, socket, sys

exposed = []
groups = set(json.loads(sys.argv[1]))


def loopback(host):  # 127.0.0.0/8 and ::1
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "" (every interface), a name
        return False


def hook(event, args):
    if event == "socket.bind":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not (
                loopback(address[0]) or address[0] in groups):
            exposed.append(f"bind({address!r})")
    elif event in ("socket.sendto", "socket.connect"):
        sock, address = args
        if sock.family == socket.AF_INET and sock.type == socket.SOCK_DGRAM:
            host = sock.getsockname()[0]
            to_loopback = event == "socket.connect" and loopback(address[0])
            if not loopback(host) and not to_loopback:
                exposed.append(f"{event[7:]}({address!r}) from a UDP socket at"
                               f" {sock.getsockname()!r}")


sys.addaudithook(hook)
namespace = {"__name__": "__main__"}
for number, source in json.load(sys.stdin):
    exec(compile(source, f"<cell {number}>", "exec"), namespace)
print("EXPOSED", json.dumps(exposed))
"""


def exposed_sockets(notebook: Path, groups: tuple[str, ...] = ()) -> list[str]:
    """Run every code cell of `notebook`; what its sockets did off loopback. `groups` are
    multicast group addresses that the notebook may bind: a socket bound to a group receives
    that group's datagrams only, from the interfaces that joined it."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = [(n, "".join(c["source"])) for n, c in enumerate(cells) if c["cell_type"] == "code"]
    run = subprocess.run([sys.executable, "-c", AUDITED_RUN, json.dumps(groups)],
                         input=json.dumps(code), capture_output=True, text=True, timeout=60,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("EXPOSED "))
    return json.loads(line.removeprefix("EXPOSED "))


def test_every_socket_of_the_chapter_stays_on_loopback():
    assert exposed_sockets(NOTEBOOK) == []


def test_the_audit_sees_what_leaves_loopback(tmp_path):
    cells = [
        "import socket\nudp = lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
        "with udp() as s:\n    s.sendto(b'x', ('127.0.0.1', 9))",  # bound by the kernel
        "with udp() as s:\n    s.connect(('127.0.0.1', 9))",  # bound to 127.0.0.1: fine
        "with udp() as s:\n    s.bind(('127.0.0.1', 0))\n    s.sendto(b'x', ('127.0.0.1', 9))",
        "with udp() as s:\n    s.bind(('239.255.13.13', 0))",  # a group, allowed or not
        "with udp() as s:\n    s.bind(('127.0.0.2', 0))",  # loopback too (Linux: all 127/8)
        "with udp() as s:\n    s.bind(('', 0))",  # every interface
    ]
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": c} for c in cells]}), encoding="utf-8")
    assert exposed_sockets(notebook) == [
        "sendto(('127.0.0.1', 9)) from a UDP socket at ('0.0.0.0', 0)",
        "bind(('239.255.13.13', 0))", "bind(('', 0))"]
    assert exposed_sockets(notebook, groups=("239.255.13.13",)) == [
        "sendto(('127.0.0.1', 9)) from a UDP socket at ('0.0.0.0', 0)", "bind(('', 0))"]
