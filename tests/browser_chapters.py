"""The browser test of the chapters, split over test_browser_chapters_*.py so that xdist
runs the parts side by side (each part is one file, one JupyterLab, one Chromium)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import store_notebooks as store  # noqa: E402

PARTS = 2


def chapters(part: int) -> list[str]:
    """Every PARTS-th chapter, starting at `part`; the appendix (99) has no code to run."""
    return [p.name for p in store.chapters() if not p.name.startswith("99")][part::PARTS]


def chapter_test(part: int):
    """A test that runs each chapter of `part` twice with Run All in JupyterLab."""

    @pytest.mark.parametrize("name", chapters(part))
    def test_run_all_twice_in_jupyterlab(name, reader, tmp_path):
        found = reader.check_chapter(name)
        if found:
            reader.page.screenshot(path=str(tmp_path / "page.png"))
            found.append(f"screenshot: {tmp_path / 'page.png'}; JupyterLab's log: "
                         f"{reader.lab.log}")
            reader.start_over()
        assert not found, f"{name} in JupyterLab:\n" + "\n".join(found)

    return test_run_all_twice_in_jupyterlab
