import json

import pytest

from helpers.notebook_code import load, module_cells


def write_notebook(path, *sources):
    cells = [{"cell_type": "code", "source": s.splitlines(keepends=True), "metadata": {},
              "outputs": [], "execution_count": None} for s in sources]
    cells.insert(1, {"cell_type": "markdown", "source": ["# module: demo\n"], "metadata": {}})
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))
    return path


def test_load_runs_only_the_marked_cells_in_order(tmp_path):
    nb = write_notebook(
        tmp_path / "ch.ipynb",
        "# module: demo\nimport math\nRADIUS = 2",
        "print('not part of the module')\nraise SystemExit",
        "# module: other\nOTHER = 1",
        "# module: demo\ndef area():\n    return math.pi * RADIUS ** 2",
    )
    demo = load(nb, "demo")
    assert demo.area() == pytest.approx(12.566, abs=1e-3)
    assert not hasattr(demo, "OTHER")
    assert len(module_cells(nb, "demo")) == 2


def test_each_load_is_a_fresh_module(tmp_path):
    nb = write_notebook(tmp_path / "ch.ipynb", "# module: demo\nSEEN = []")
    first, second = load(nb, "demo"), load(nb, "demo")
    first.SEEN.append(1)
    assert second.SEEN == []


def test_a_missing_module_names_the_marker_to_add(tmp_path):
    nb = write_notebook(tmp_path / "ch.ipynb", "x = 1")
    with pytest.raises(LookupError, match="no cell starting '# module: demo'"):
        load(nb, "demo")


def test_an_error_in_a_marked_cell_names_the_cell(tmp_path):
    nb = write_notebook(tmp_path / "ch.ipynb", "# module: demo\n1 / 0")
    with pytest.raises(ZeroDivisionError) as raised:
        load(nb, "demo")
    assert "ch.ipynb[demo cell 0]" in str(raised.traceback[-1].path)


@pytest.mark.parametrize("future", ["", "from __future__ import annotations\n"])
def test_dataclasses_work_in_marked_cells(tmp_path, future):
    source = f"# module: demo\n{future}from dataclasses import dataclass\n\n" \
             "@dataclass\nclass Point:\n    x: int\n    y: int = 0\n"
    demo = load(write_notebook(tmp_path / "ch.ipynb", source), "demo")
    assert demo.Point(1) == demo.Point(1, 0)
