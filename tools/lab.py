"""Open the series in JupyterLab, on the reader's own copies of the chapters.

    python tools/lab.py                 # what `make lab` runs
    python tools/lab.py --fresh-copies  # what `make fresh-copies` runs

The chapters in notebooks/ are what the tests check. A reader runs, edits and saves copies
of them in my-notebooks/ (ignored by git), so autosave and Ctrl-S never touch the
repository. Each start copies in the chapters my-notebooks/ lacks and never overwrites a
copy; if a stored chapter changed since it was copied (after a `git pull`), it says so.
`--fresh-copies` replaces the copies with the stored chapters, keeping the old ones in
my-notebooks/previous-copies/DATE/.

JupyterLab starts with the settings in lab-settings/ (no news pop-up, no update check),
kernels with encrypted connections where pyzmq supports it, and terminals whose PATH starts
with this environment's scripts, so `nettalk` works in JupyterLab's terminal as the
chapters print it. The browser test (tests/test_browser_*.py) starts JupyterLab with the
same `lab_command`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COPIES = ROOT / "my-notebooks"
SETTINGS = ROOT / "lab-settings"
START = "00_index.ipynb"
MANIFEST = ".stored-versions.json"  # name -> sha256 of the stored chapter each copy came from
PREVIOUS = "previous-copies"


def kernel_language_info() -> dict:
    """The `language_info` this environment's kernel reports when it starts.

    The stored chapters keep only `{"name": "python"}` (the same on every machine); a copy
    that carries the kernel's own is not marked modified by JupyterLab when it opens."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


def reader_copy(stored_text: str, language_info: dict) -> str:
    """A stored chapter as the reader's copy: the same, with this kernel's language_info."""
    nb = json.loads(stored_text)
    nb["metadata"]["language_info"] = language_info
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _manifest(copies: Path) -> dict[str, str]:
    path = copies / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write_manifest(copies: Path, manifest: dict[str, str]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    (copies / MANIFEST).write_text(text, encoding="utf-8")


def _copy(stored: Path, copies: Path, manifest: dict[str, str], language_info: dict) -> None:
    text = stored.read_text(encoding="utf-8")
    (copies / stored.name).write_text(reader_copy(text, language_info), encoding="utf-8")
    manifest[stored.name] = digest(text)


def sync_copies(stored: Path = NOTEBOOKS, copies: Path = COPIES,
                language_info: dict | None = None) -> list[str]:
    """Copy into `copies` every chapter it lacks; never overwrite one. Returns what to tell."""
    language_info = language_info or kernel_language_info()
    copies.mkdir(exist_ok=True)
    manifest, told = _manifest(copies), []
    copied, changed = [], []
    for chapter in sorted(stored.glob("[0-9][0-9]*.ipynb")):
        if not (copies / chapter.name).exists():
            _copy(chapter, copies, manifest, language_info)
            copied.append(chapter.name)
        elif manifest.get(chapter.name) != digest(chapter.read_text(encoding="utf-8")):
            changed.append(chapter.name)
    _write_manifest(copies, manifest)
    if copied:
        what = ", ".join(copied) if len(copied) <= 3 else f"{len(copied)} chapters"
        told.append(f"{copies.name}/: your own copies of {what}, to run, edit and save "
                    f"freely ({stored.name}/ keeps the stored chapters)")
    if changed:
        told.append(f"changed in {stored.name}/ since your copy was made: {', '.join(changed)}"
                    f"\n  `make fresh-copies` replaces your copies with them (yours are kept"
                    f" in {copies.name}/{PREVIOUS}/)")
    return told


def fresh_copies(stored: Path = NOTEBOOKS, copies: Path = COPIES,
                 language_info: dict | None = None) -> list[str]:
    """Replace every copy with its stored chapter; move copies that differ aside first."""
    language_info = language_info or kernel_language_info()
    copies.mkdir(exist_ok=True)
    manifest, moved = _manifest(copies), []
    backup = copies / PREVIOUS / time.strftime("%Y-%m-%d_%H%M%S")
    for chapter in sorted(stored.glob("[0-9][0-9]*.ipynb")):
        mine = copies / chapter.name
        fresh = reader_copy(chapter.read_text(encoding="utf-8"), language_info)
        if mine.exists() and mine.read_text(encoding="utf-8") != fresh:
            backup.mkdir(parents=True, exist_ok=True)
            shutil.move(mine, backup / chapter.name)
            moved.append(chapter.name)
        _copy(chapter, copies, manifest, language_info)
    _write_manifest(copies, manifest)
    told = [f"{copies.name}/ now holds the stored chapters of {stored.name}/"]
    if moved:
        told.append(f"your previous copies of {len(moved)} chapter"
                    f"{'s' if len(moved) > 1 else ''} are in "
                    f"{backup.relative_to(copies.parent).as_posix()}/")
    return told


def scripts_dir() -> str:
    """Where this environment's commands are (.venv/bin, or .venv\\Scripts on Windows)."""
    return str(Path(sys.executable).parent)


def lab_command(root: Path, *extra: str) -> list[str]:
    """The JupyterLab command line `make lab` runs, serving `root`."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}",
               f"--LabApp.app_settings_dir={SETTINGS}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers often run as root
    import zmq

    if zmq.has("curve"):  # else the kernel warns "running over TCP without encryption"
        command.append("--KernelManager.transport_encryption=auto")
    if os.name != "nt":
        # A login shell (JupyterLab's choice when not started from a terminal) resets PATH
        # from /etc/profile on Debian and loses this environment's scripts.
        shell = os.environ.get("SHELL") or shutil.which("sh") or "/bin/sh"
        command.append(f"--ServerApp.terminado_settings={json.dumps({'shell_command': [shell]})}")
    return command + list(extra)


def lab_environment() -> dict[str, str]:
    """The environment JupyterLab runs in: this environment's scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = scripts_dir() + os.pathsep + env.get("PATH", "")
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh-copies", action="store_true",
                        help="replace my-notebooks/ with the stored chapters, then stop")
    args, lab_args = parser.parse_known_args(argv)  # the rest goes to JupyterLab
    if args.fresh_copies:
        print("\n".join(fresh_copies()))
        return 0
    for line in sync_copies():
        print(line)
    start = (COPIES / START).relative_to(ROOT).as_posix()
    command = lab_command(ROOT, *lab_args, start)
    return subprocess.call(command, cwd=ROOT, env=lab_environment())


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C twice stops JupyterLab; no traceback for that
        sys.exit(130)
