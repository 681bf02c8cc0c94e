""""Run All" twice in one kernel: the second run prints what the stored notebook shows."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import store_notebooks as store  # noqa: E402

NOTEBOOKS = store.chapters()


def comparable(cell):
    """A cell's outputs as nbval compares them: text only, sanitised, no counters."""
    patterns, prefixes = store.sanitize_patterns(), store.path_prefixes()
    result = []
    for out in cell.outputs:
        out = store.clean_output(nbformat.from_dict(dict(out)), patterns, prefixes)
        text = out.get("text") or out.get("data", {}).get("text/plain")
        result.append((out.output_type, out.get("name"), text, out.get("ename"), out.get("evalue")))
    return result


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_running_every_cell_twice_in_one_kernel_gives_the_stored_output(path):
    stored = nbformat.read(path, as_version=4)
    cells = [c for c in stored.cells if c.cell_type == "code"]
    twice = nbformat.v4.new_notebook(metadata=stored.metadata)
    twice.cells = [nbformat.from_dict(dict(c)) for c in cells + cells]
    for i, cell in enumerate(twice.cells):
        cell.id = f"run-{i}"
    ran = store.execute(twice)
    for first, second in zip(cells, ran.cells[len(cells):], strict=True):
        if "NBVAL_IGNORE_OUTPUT" in store.markers(first.source):
            continue
        assert comparable(second) == comparable(first), (
            f"{path.name}: second run of this cell differs:\n{first.source}"
        )
