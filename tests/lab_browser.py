"""Drive JupyterLab in headless Chromium as a reader does: open a chapter, Run All, save.

nbval sends one cell at a time; JupyterLab queues them all. This starts JupyterLab with the
command `make lab` uses (tools/lab.py), on reader copies of the chapters in a temporary
folder, and drives it with Playwright through the menus and keys. Nothing waits blindly:
every wait polls the page (Playwright's waits) or the server, with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import TimeoutError as PageTimeout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import lab  # noqa: E402
import store_notebooks as store  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
RUN_ALL_TIMEOUT = 90  # s; a chapter's Run All takes under 10 s on a quiet machine
INSTALL_HINT = ("the browser test needs Chromium: `sudo apt-get install chromium` (Debian, "
                "Ubuntu), or set CHROMIUM=/path/to/chromium-or-chrome")

PROMPTS = "[...panel().querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
PANEL = "const panel = () => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');"
STATUS = "(document.querySelector('#jp-main-statusbar') || {textContent: ''}).textContent"
LOADED = f"""(cells) => {{ {PANEL}
    return panel() && panel().querySelectorAll('.jp-Cell').length === cells
        && / \\| Idle/.test({STATUS}); }}"""
WATCH_QUEUE = f"""() => {{ {PANEL}
    window.__queued = false;
    const seen = () => {PROMPTS}.some(p => p.textContent.includes('*'));
    new MutationObserver(() => {{ window.__queued = window.__queued || seen(); }})
        .observe(panel(), {{subtree: true, childList: true, characterData: true}}); }}"""
RUN_FINISHED = f"""() => {{ {PANEL}
    return window.__queued && !{PROMPTS}.some(p => p.textContent.includes('*'))
        && / \\| Idle/.test({STATUS}); }}"""
STILL_QUEUED = f"""() => {{ {PANEL}
    return {PROMPTS}.map((p, i) => [i, p.textContent]).filter(([i, t]) => t.includes('*'))
        .map(([i]) => i); }}"""
RENDERED = f"""() => {{ {PANEL}
    const q = (s) => panel().querySelectorAll(s);
    return {{mermaid: q('.jp-RenderedMermaid:not(.jp-mod-warning)').length,
             warnings: [...q('.jp-RenderedMermaid.jp-mod-warning')].map(e => e.textContent),
             images: [...q('.jp-RenderedImage img')].filter(i => i.complete && i.naturalWidth)
                 .length}}; }}"""


def chromium() -> str | None:
    """The Chromium (or Chrome) to drive: $CHROMIUM, else `chromium` on PATH."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    return found if found and Path(found).exists() else None


class Lab:
    """JupyterLab as `make lab` starts it, on a free loopback port, serving `root`."""

    def __init__(self, root: Path, state: Path, timeout: float = 60):
        self.root = root  # served, and its terminals' starting folder
        # `state`: config, runtime files, settings and workspaces of this server only
        env = lab.lab_environment()
        env.update(JUPYTER_CONFIG_DIR=str(state / "config"),
                   JUPYTER_RUNTIME_DIR=str(state / "runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"))
        self.token = os.urandom(16).hex()
        self.log = (state / "lab.log")
        state.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            lab.lab_command(root, "--no-browser", "--ServerApp.ip=127.0.0.1",
                            "--ServerApp.port=0", f"--IdentityProvider.token={self.token}"),
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT)
        self.base = self._wait_for_url(state / "runtime", timeout)

    def _wait_for_url(self, runtime: Path, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited:\n{self.log.read_text()[-3000:]}")
            for info in runtime.glob("jpserver-*.json"):
                try:
                    base = f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
                    self.api("GET", "status", base=base)
                    return base
                except (OSError, ValueError, KeyError):
                    pass  # written but not complete yet, or not answering yet
            time.sleep(0.1)  # polling a server we started: nothing to wait on instead
        self.close()
        raise RuntimeError(f"JupyterLab did not start within {timeout} s:\n"
                           f"{self.log.read_text()[-3000:]}")

    def api(self, method: str, path: str, base: str | None = None):
        request = urllib.request.Request(f"{base or self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def url(self, path: str) -> str:
        """Open `path` in a fresh workspace of its own (nothing restored from another)."""
        workspace = "w" + os.urandom(4).hex()
        return f"{self.base}/lab/workspaces/{workspace}/tree/{path}?reset&token={self.token}"

    def shut_down_kernel(self, path: str) -> None:
        for session in self.api("GET", "sessions"):
            if session["path"] == path:
                self.api("DELETE", f"sessions/{session['id']}")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Terminal:
    """A terminal of JupyterLab's, through the websocket its page uses: what a reader
    types and what the terminal shows (without colours and cursor moves)."""

    def __init__(self, lab_server: Lab):
        import websocket  # websocket-client, which jupyter_server needs anyway

        self.lab, self.name = lab_server, lab_server.api("POST", "terminals")["name"]
        url = f"{lab_server.base.replace('http', 'ws', 1)}/terminals/websocket/{self.name}"
        self.socket = websocket.create_connection(f"{url}?token={lab_server.token}",
                                                  timeout=10)
        self.shown, self.changed = "", threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                kind, *content = json.loads(self.socket.recv())
            except Exception:  # closed
                return
            if kind == "stdout":
                text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r", "", content[0])
                with self.changed:
                    self.shown += text
                    self.changed.notify_all()

    def type(self, keys: str) -> None:
        """Keys as typed: "\\r" is Enter, "\\x04" is Ctrl-D."""
        self.socket.send(json.dumps(["stdin", keys]))

    def wait_for(self, pattern: str, timeout: float = 15) -> str:
        """Wait until the terminal shows `pattern` (a regular expression); return it all."""
        with self.changed:
            if not self.changed.wait_for(lambda: re.search(pattern, self.shown), timeout):
                raise AssertionError(f"the terminal did not show {pattern!r} within "
                                     f"{timeout} s; it shows:\n{self.shown[-2000:]}")
            return self.shown

    def close(self) -> None:
        self.socket.close()
        self.lab.api("DELETE", f"terminals/{self.name}")


def launch(playwright, profile: Path):
    """Headless Chromium with a fresh profile, as this machine needs it."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=chromium(), headless=True, args=FLAGS,
        viewport={"width": 1280, "height": 900})


@dataclass
class RunAll:
    """What one Run All left in the saved notebook, and what the page showed."""

    saved: dict
    rendered: dict
    seconds: float
    stalled: list[int] = field(default_factory=list)


def is_modified(page) -> bool:
    """Whether the notebook's tab shows the unsaved-changes dot."""
    return page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count() > 0


def run_all(page, timeout: float = RUN_ALL_TIMEOUT) -> tuple[float, list[int]]:
    """Run > Run All Cells; wait until no cell is queued or running and the kernel is idle.

    Returns the seconds it took and, if it did not finish in `timeout`, the indexes (among
    code cells) of the cells still queued: a stall."""
    page.evaluate(WATCH_QUEUE)
    start = time.monotonic()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    try:
        page.wait_for_function(RUN_FINISHED, timeout=timeout * 1000, polling=100)
    except PageTimeout:
        return time.monotonic() - start, page.evaluate(STILL_QUEUED) or [-1]
    return time.monotonic() - start, []


def save(page, timeout: float = 30) -> None:
    """Ctrl-S, then wait until the tab no longer shows unsaved changes."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").focus()
    page.keyboard.press("Escape")  # command mode, as after clicking beside a cell
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=timeout * 1000)


def wait_rendered(page, stored: dict, timeout: float = 30) -> dict:
    """Wait until the page shows the diagrams and images `stored` calls for (or a Mermaid
    warning box); return what it shows."""
    want = expected_rendering(stored)
    with contextlib.suppress(PageTimeout):  # then `problems` says what is missing
        page.wait_for_function(
            f"""() => {{ const r = ({RENDERED})();
                return r.warnings.length || (r.mermaid >= {want['mermaid']}
                    && r.images >= {want['images']}); }}""", timeout=timeout * 1000)
    return page.evaluate(RENDERED)


def expected_rendering(stored: dict) -> dict:
    """How many Mermaid diagrams and PNG images the stored notebook shows."""
    text = "\n".join("".join(c["source"]) for c in stored["cells"]
                     if c["cell_type"] == "markdown")
    images = sum("image/png" in o.get("data", {}) for c in stored["cells"]
                 if c["cell_type"] == "code" for o in c.get("outputs", []))
    return {"mermaid": text.count("```mermaid"), "images": images}


def may_raise(cell: dict) -> bool:
    """Tagged `raises-exception`, or marked with the `# NBVAL_RAISES_EXCEPTION` comment."""
    source = "".join(cell["source"])
    return ("raises-exception" in cell.get("metadata", {}).get("tags", [])
            or "NBVAL_RAISES_EXCEPTION" in store.markers(source))


def problems(run: RunAll, stored: dict, first_count: int) -> list[str]:
    """What is wrong with one Run All: stalls, cells not run, unexpected errors, diagrams
    not drawn, plots not shown. Empty when all is well."""
    found = []
    code = [c for c in run.saved["cells"] if c["cell_type"] == "code"]
    if run.stalled:
        first = run.stalled[0]
        line = "".join(code[first]["source"]).split("\n")[0] if first >= 0 else "?"
        found.append(f"Run All stalled: {len(run.stalled)} code cells still queued after "
                     f"{run.seconds:.0f} s, the first is code cell {first}: {line!r}")
    counts = [c.get("execution_count") for c in code]
    wanted = list(range(first_count, first_count + len(code)))
    if counts != wanted:
        first = next(i for i, (got, want) in enumerate(zip(counts, wanted, strict=True))
                     if got != want)
        found.append(f"code cells not all run, in order (counts from {first_count}): code "
                     f"cell {first} has count {counts[first]}, not {wanted[first]}")
    for i, cell in enumerate(code):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error" and not may_raise(cell):
                found.append(f"code cell {i} shows {out['ename']}: {out['evalue']}\n"
                             f"{''.join(cell['source'])[:300]}")
    want = expected_rendering(stored)
    for text in run.rendered["warnings"]:
        found.append(f"a Mermaid diagram failed to render: {' '.join(text.split())[:300]}")
    if run.rendered["mermaid"] != want["mermaid"]:
        found.append(f"{run.rendered['mermaid']} Mermaid diagrams drawn, "
                     f"{want['mermaid']} in the notebook")
    if run.rendered["images"] < want["images"]:
        found.append(f"{run.rendered['images']} plots displayed, {want['images']} stored")
    return found


def run_and_save(page, path: Path, stored: dict, render_timeout: float = 30) -> RunAll:
    """Run All, then (unless it stalled) Ctrl-S; read back the saved notebook."""
    seconds, stalled = run_all(page)
    if not stalled:
        save(page)
    rendered = wait_rendered(page, stored, render_timeout)
    saved = json.loads(path.read_text(encoding="utf-8"))
    return RunAll(saved=saved, rendered=rendered, seconds=seconds, stalled=stalled)


def menu(page, *path: str) -> None:
    """Click through the menu bar: menu(page, "File", "Close Tab")."""
    page.locator(".lm-MenuBar-itemLabel", has_text=path[0]).first.click()
    for label in path[1:]:
        page.locator(".lm-Menu-itemLabel").filter(
            has_text=re.compile(f"^{re.escape(label)}")).first.click()


class Reader:
    """A reader at one Chromium page of one JupyterLab, opening chapters one after another
    as a reader does: the first by its address, the next with File > Open from Path (no
    reload of JupyterLab), each tab closed when done."""

    def __init__(self, context, lab_server: Lab):
        self.context, self.lab = context, lab_server
        self.page = context.new_page()
        self.fresh = True

    def open(self, path: str, cells: int, timeout: float = 60) -> None:
        """Open `path`; wait until all its `cells` are shown and its kernel is idle."""
        if self.fresh:
            self.page.goto(self.lab.url(path))
            self.fresh = False
        else:
            menu(self.page, "File", "Open from Path")
            self.page.locator(".jp-Dialog input").fill(path)
            self.page.keyboard.press("Enter")
        self.page.wait_for_function(LOADED, arg=cells, timeout=timeout * 1000)

    def close_tab(self) -> None:
        """File > Close Tab; fails if JupyterLab asks to save (the notebook changed after
        it was saved: output that came late, or autosave that did not happen)."""
        menu(self.page, "File", "Close Tab")
        closed = self.page.wait_for_function(
            """() => !document.querySelector('.jp-NotebookPanel') ? 'closed'
                : document.querySelector('.jp-Dialog') ? 'asked' : false""", timeout=10_000)
        if closed.json_value() == "asked":
            self.start_over()
            raise AssertionError("closing the saved notebook asked to save it again: it "
                                 "changed after Ctrl-S (output after its cell finished?)")

    def start_over(self) -> None:
        """A new page: after a problem, the next chapter starts from a clean JupyterLab."""
        self.page.close()
        self.page, self.fresh = self.context.new_page(), True

    def check_chapter(self, name: str, runs: int = 2, render_timeout: float = 30) -> list[str]:
        """Open chapter `name` from the reader copies, Run All `runs` times in one kernel,
        and return every problem found (prefixed by the run); shut its kernel down after.
        `render_timeout`: how long to wait for the diagrams and plots the chapter shows."""
        path = self.lab.root / lab.COPIES.name / name
        stored = json.loads(path.read_text(encoding="utf-8"))
        relative = path.relative_to(self.lab.root).as_posix()
        code_cells = sum(c["cell_type"] == "code" for c in stored["cells"])
        found = []
        try:
            self.open(relative, len(stored["cells"]))
            if is_modified(self.page):
                found.append("the tab shows unsaved changes right after opening")
            for run in range(runs):
                result = run_and_save(self.page, path, stored, render_timeout)
                found += [f"Run All {run + 1}: {p}" for p in
                          problems(result, stored, first_count=1 + run * code_cells)]
                timings.setdefault(name, []).append(round(result.seconds, 1))
                if result.stalled:
                    break
            if self.page.locator(".Toastify__toast", has_text="Jupyter news").count():
                found.append("JupyterLab asks about Jupyter news: lab-settings/ was not "
                             "applied")
            if not found:
                self.close_tab()
        finally:
            self.lab.shut_down_kernel(relative)
        return found


timings: dict[str, list[float]] = {}  # chapter -> seconds of each Run All, for reports
