"""Render every notebook in JupyterLab with headless Chromium and report Mermaid errors.

    python tools/check_diagrams.py [notebooks/NN_slug.ipynb ...]

nbval cannot see a diagram that JupyterLab fails to draw (a Mermaid parse error shows as
a warning box in the page, not as an error in the notebook). This starts JupyterLab on a
free loopback port, opens each notebook in a fresh workspace, and counts the diagrams
drawn and the ones that failed, printing each error. Needs a `chromium` on PATH; not part
of the test suite for that reason. Exits 1 if any diagram failed or was not drawn.
"""

from __future__ import annotations

import html
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRAWN = re.compile(r'<div class="jp-RenderedMermaid"')
FAILED = re.compile(r'<div class="[^"]*jp-RenderedMermaid[^"]*jp-mod-warning[^"]*".*?</div>', re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer within {timeout} s") from None
            time.sleep(0.5)  # polling a server we started; nothing to wait on instead


def render(base: str, token: str, notebook: Path) -> str:
    """The page's DOM once JupyterLab has drawn `notebook` in a fresh workspace."""
    url = (f"{base}/lab/workspaces/check-{notebook.stem}/tree/"
           f"{notebook.relative_to(ROOT).as_posix()}?reset&token={token}")
    return subprocess.run(
        [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=40000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180, check=True,
    ).stdout


def main(argv: list[str]) -> int:
    notebooks = [Path(a).resolve() for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    port, token = free_port(), secrets.token_hex(8)
    base = f"http://127.0.0.1:{port}"
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         f"--ServerApp.root_dir={ROOT}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--ServerApp.token={token}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    bad = 0
    try:
        wait_until_up(f"{base}/api/status?token={token}")
        for nb in notebooks:
            expected = nb.read_text(encoding="utf-8").count("```mermaid")
            dom = render(base, token, nb)
            drawn, failed = len(DRAWN.findall(dom)), FAILED.findall(dom)
            ok = drawn == expected and not failed
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {nb.name:<34} diagrams {expected}, "
                  f"drawn {drawn}, failed {len(failed)}")
            for box in failed:
                text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", box)).split())
                print("     ", text[max(text.find("Error:"), 0):][:300])
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
