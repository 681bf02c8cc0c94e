"""Execute notebooks and store them with their outputs, in normalised form.

    python tools/store_notebooks.py                 # every notebook
    python tools/store_notebooks.py notebooks/01_sockets.ipynb ...   # only these
    python tools/store_notebooks.py --nav    # no execution: navigation lines only

Each notebook runs top to bottom in a fresh kernel of this environment, in
notebooks/ as its working directory. Then: navigation cells are regenerated
(after adding a chapter, run --nav so every link is in step), outputs pass through
tests/sanitize.cfg, paths are made relative, and metadata is reduced to one
kernelspec with no execution timings. tests/test_hygiene.py checks that every
stored notebook is exactly in this form.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import zmq
from nbclient import NotebookClient
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = ROOT / "tests" / "sanitize.cfg"
NAV_TAG = "nav"
RAISES_TAG = "raises-exception"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
CELL_METADATA_KEPT = ("tags",)


def markers(source: str) -> set[str]:
    """nbval's comment markers in a cell, found as nbval finds them: a comment
    line whose text is exactly the marker, e.g. `# NBVAL_IGNORE_OUTPUT`."""
    comments = (line.strip() for line in source.splitlines() if line.strip().startswith("#"))
    return {c.lstrip("#").strip() for c in comments if c.lstrip("#").strip().startswith("NBVAL_")}


def tags_of(cell) -> list[str]:
    """A code cell's tags, with `raises-exception` added if its source has the comment
    marker `# NBVAL_RAISES_EXCEPTION` (nbval reads both; JupyterLab and nbclient only the
    tag, to go on with Run All after the cell's error)."""
    tags = list(dict.fromkeys(cell.metadata.get("tags", [])))
    if "NBVAL_RAISES_EXCEPTION" in markers(cell.source) and RAISES_TAG not in tags:
        tags.append(RAISES_TAG)
    return tags


def kernel_config() -> Config:
    """Kernels with encrypted connections where pyzmq can (else ipykernel 7.4 warns
    "Kernel is running over TCP without encryption" on every start)."""
    config = Config()
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"
    return config


def chapters() -> list[Path]:
    """Every chapter notebook, in order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]*.ipynb"))


def title(nb) -> str:
    """The chapter title: the first '# ' heading outside the navigation cells."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and NAV_TAG not in cell.metadata.get("tags", []):
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise ValueError("notebook has no '# Title' heading")


def nav_source(path: Path, all_paths: list[Path], titles: dict[str, str]) -> str:
    names = [p.name for p in all_paths]
    i = names.index(path.name)
    parts = []
    if i > 0:
        parts.append(f"[← {titles[names[i - 1]]}]({names[i - 1]})")
    parts.append(f"[Contents]({names[0]})")
    if i + 1 < len(names):
        parts.append(f"[{titles[names[i + 1]]} →]({names[i + 1]})")
    return " | ".join(parts)


def sanitize_patterns() -> list[tuple[re.Pattern, str]]:
    text = SANITIZE.read_text(encoding="utf-8")
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)
    return [(re.compile(rx), rep) for rx, rep in pairs]


def path_prefixes() -> list[tuple[str, str]]:
    """Absolute paths that may appear in output, longest first, with stand-ins."""
    pairs = {
        sysconfig.get_paths()["purelib"]: "<site-packages>",
        sysconfig.get_paths()["stdlib"]: "<stdlib>",
        str(ROOT): "<repo>",
        sys.prefix: "<venv>",
        str(Path.home()): "~",
    }
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def clean_text(text: str, patterns, prefixes) -> str:
    for prefix, stand_in in prefixes:
        text = text.replace(prefix, stand_in)
    for rx, rep in patterns:
        text = rx.sub(rep, text)
    return text


def clean_output(output, patterns, prefixes):
    def clean(value):
        if isinstance(value, str):
            return clean_text(value, patterns, prefixes)
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    if "text" in output:
        output["text"] = clean(output["text"])
    for key in ("evalue", "traceback"):
        if key in output:
            output[key] = clean(output[key])
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/"):
            output["data"][mime] = clean(value)
    return output


def normalise(nb, path: Path, all_paths: list[Path], titles: dict[str, str]):
    """Return `nb` in stored form (does not execute anything)."""
    nb = copy.deepcopy(nb)
    patterns, prefixes = sanitize_patterns(), path_prefixes()
    body = [c for c in nb.cells if NAV_TAG not in c.metadata.get("tags", [])]
    nav = nav_source(path, all_paths, titles)
    top = nbformat.v4.new_markdown_cell(nav, metadata={"tags": [NAV_TAG]}, id="nav-top")
    bottom = nbformat.v4.new_markdown_cell(nav, metadata={"tags": [NAV_TAG]}, id="nav-bottom")
    nb.cells = [top, *body, bottom]
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in CELL_METADATA_KEPT}
        if cell.cell_type == "code":
            tags = tags_of(cell)
            if tags:
                cell.metadata["tags"] = tags
            else:
                cell.metadata.pop("tags", None)
            cell.outputs = [clean_output(o, patterns, prefixes) for o in cell.outputs]
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def execute(nb, timeout: int = 60):
    """Run every cell in a fresh kernel of this environment; return the run notebook."""
    # The kernel is `python3` from this environment, whatever PATH says.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata["tags"] = tags_of(cell)  # nbclient goes on after `raises-exception`
    # coalesce_streams: how prints split into stream outputs depends on flush timing.
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", coalesce_streams=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}}, config=kernel_config(),
    )
    client.execute()
    return nb


def dumps(nb) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook")
    parser.add_argument("--nav", action="store_true",
                        help="execute nothing: only bring every notebook's navigation up to date")
    args = parser.parse_args(argv)
    all_paths = chapters()
    targets = [] if args.nav else [p.resolve() for p in args.notebooks] or all_paths
    notebooks = {p: nbformat.read(p, as_version=4) for p in all_paths}
    titles = {p.name: title(nb) for p, nb in notebooks.items()}
    for path in all_paths if args.nav else targets:
        nb = notebooks[path]
        if path in targets:
            start = time.perf_counter()
            nb = execute(nb)
            print(f"executed {path.name} in {time.perf_counter() - start:.1f} s")
        stored = dumps(normalise(nb, path, all_paths, titles))
        if path.read_text(encoding="utf-8") != stored:
            path.write_text(stored, encoding="utf-8")
            print(f"stored   {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
