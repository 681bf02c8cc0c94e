"""Chapter 01's own code, run for real: no socket it makes is reachable from the network.

Every code cell of the notebook runs in a fresh interpreter with an audit hook that sees
each bind(), and each sendto() or connect() of a UDP socket, before the system call.
A UDP socket that sends before it is bound is bound by the kernel to 0.0.0.0.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_sockets.ipynb"

AUDITED_RUN = r"""
import json, socket, sys

exposed = []


def hook(event, args):
    if event == "socket.bind":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
                "127.0.0.1", "::1"):
            exposed.append(f"bind({address!r})")
    elif event in ("socket.sendto", "socket.connect"):
        sock, address = args
        if sock.family == socket.AF_INET and sock.type == socket.SOCK_DGRAM:
            host = sock.getsockname()[0]
            if host != "127.0.0.1":
                exposed.append(f"{event[7:]}({address!r}) from a UDP socket at"
                               f" {sock.getsockname()!r}")


sys.addaudithook(hook)
namespace = {"__name__": "__main__"}
for number, source in json.load(sys.stdin):
    exec(compile(source, f"<cell {number}>", "exec"), namespace)
print("EXPOSED", json.dumps(exposed))
"""


def exposed_sockets(notebook: Path) -> list[str]:
    """Run every code cell of `notebook`; what its sockets did off loopback."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = [(n, "".join(c["source"])) for n, c in enumerate(cells) if c["cell_type"] == "code"]
    run = subprocess.run([sys.executable, "-c", AUDITED_RUN], input=json.dumps(code),
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("EXPOSED "))
    return json.loads(line.removeprefix("EXPOSED "))


def test_every_socket_of_the_chapter_stays_on_loopback():
    assert exposed_sockets(NOTEBOOK) == []
