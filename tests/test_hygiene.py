"""What a reviewer checks in every stored notebook, README and index."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import store_notebooks as store  # noqa: E402

NOTEBOOKS = store.chapters()
NAMES = [p.name for p in NOTEBOOKS]
INDEX = ROOT / "notebooks" / "00_index.ipynb"
SECTIONS = ["What you will learn", "Prerequisites", "Common mistakes", "Summary", "Exercises"]
FORBIDDEN = {
    "an absolute path": re.compile(r"(/root/|/home/|/work/|/tmp/|/usr/|/opt/|site-packages"
                                   r"|[A-Z]:\\\\)"),
    "a token": re.compile(r"token=[0-9a-f]{16,}"),
}


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"])


def output_texts(cell):
    for out in cell.get("outputs", []):
        for key in ("text", "evalue", "traceback"):
            if key in out:
                yield "".join(out[key])
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/"):
                yield "".join(value)


def marked_to_raise(cell):
    return "NBVAL_RAISES_EXCEPTION" in source(cell).split("\n", 1)[0]


def test_there_are_notebooks_and_an_index():
    assert NAMES[0] == "00_index.ipynb"
    assert all(re.fullmatch(r"\d\d[a-z]?_[a-z0-9_]+\.ipynb", n) for n in NAMES), NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_stored_by_the_project_command(path):
    """Byte for byte what tools/store_notebooks.py writes: normalised, sanitised, nav current."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    titles = {p.name: store.title(nbformat.read(p, as_version=4)) for p in NOTEBOOKS}
    expected = store.dumps(store.normalise(nb, path, NOTEBOOKS, titles))
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path.name} was not stored by the project command: run "
        f"`make notebooks NB=notebooks/{path.name}`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_executed_top_to_bottom_with_outputs(path):
    cells = code_cells(load(path))
    assert cells, "no code cells"
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"not one fresh run in order: {counts}"
    assert sum(bool(c["outputs"]) for c in cells) >= len(cells) / 2, "too few stored outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_errors_only_in_cells_marked_to_raise(path):
    for cell in code_cells(load(path)):
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if marked_to_raise(cell):
            assert errors, f"marked to raise but did not:\n{source(cell)}"
        else:
            assert not errors, f"unmarked error output:\n{source(cell)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_no_paths_ports_addresses_or_tokens_in_outputs(path):
    patterns, _ = store.sanitize_patterns(), None
    for cell in code_cells(load(path)):
        for text in output_texts(cell):
            for what, rx in FORBIDDEN.items():
                assert not rx.search(text), f"{what} in output of:\n{source(cell)}\n{text}"
            for rx, rep in patterns:
                assert rx.sub(rep, text) == text, f"raw port or address in:\n{text}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_every_local_link_resolves(path):
    for cell in load(path)["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for target in re.findall(r"\]\(([^)#\s]+)", source(cell)):
            if not re.match(r"https?://", target):
                assert (path.parent / target).exists(), f"{path.name}: broken link {target}"


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=NAMES[1:])
def test_chapter_has_the_house_sections(path):
    text = "\n".join(source(c) for c in load(path)["cells"] if c["cell_type"] == "markdown")
    for section in SECTIONS:
        assert re.search(rf"^#+ .*{section}", text, re.M), f"{path.name}: no '{section}' heading"
    if re.search(r"\bserve(_socket)?\(", "\n".join(source(c) for c in code_cells(load(path)))):
        assert re.search(r"^#+ .*Try it from a terminal", text, re.M), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_last_cell_stops_everything_and_shows_it(path):
    cells = code_cells(load(path))
    last = cells[-1]
    assert "stop_all()" in source(last) and source(last).rstrip().endswith("servers()")
    assert "".join(next(output_texts(last), "")) == "No servers running."


def test_index_and_readme_list_every_notebook_once():
    index_text = "\n".join(source(c) for c in load(INDEX)["cells"] if c["cell_type"] == "markdown")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"]({name})" in index_text, f"{name} is not linked from the index"
        rows = [line for line in readme.splitlines()
                if line.startswith("|") and f"notebooks/{name})" in line]
        assert len(rows) == 1, f"README chapter table must have one row for {name}"
    table = [n for n in re.findall(r"\(notebooks/(\d\d[a-z]?_\w+\.ipynb)\)", readme)]
    assert sorted(set(table)) == NAMES, "README links a notebook that does not exist"
