"""What a reviewer checks in every stored notebook, README and index.

Each check is a function that returns the problems it finds (empty when all is
well); the tests run them on every notebook, and on a deliberately bad one to
show that each check can fail.
"""

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import store_notebooks as store  # noqa: E402

NOTEBOOKS = store.chapters()
NAMES = [p.name for p in NOTEBOOKS]
INDEX = ROOT / "notebooks" / "00_index.ipynb"
# Chapters teach and run things; the appendix (99, the glossary) is reference text only.
CHAPTERS = [p for p in NOTEBOOKS[1:] if not p.name.startswith("99")]
APPENDIX = [p for p in NOTEBOOKS if p.name.startswith("99")]
SECTIONS = ["What you will learn", "Prerequisites", "Common mistakes", "Summary", "Exercises"]
FORBIDDEN = {
    "an absolute path": re.compile(r"(/root/|/home/|/work/|/tmp/|/usr/|/opt/|site-packages"
                                   r"|[A-Z]:\\\\)"),
    "a token": re.compile(r"token=[0-9a-f]{16,}"),
}


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"])


def markdown(nb):
    return "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def output_texts(cell):
    for out in cell.get("outputs", []):
        for key in ("text", "evalue", "traceback"):
            if key in out:
                yield "".join(out[key])
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/"):
                yield "".join(value)


def marked_to_raise(cell):
    """Tagged `raises-exception`, or marked with the comment `# NBVAL_RAISES_EXCEPTION`."""
    return (store.RAISES_TAG in cell.get("metadata", {}).get("tags", [])
            or "NBVAL_RAISES_EXCEPTION" in store.markers(source(cell)))


# -- the checks ------------------------------------------------------------------


def not_in_stored_form(path, text):
    nb = nbformat.reads(text, as_version=4)
    titles = {p.name: store.title(nbformat.read(p, as_version=4)) for p in NOTEBOOKS}
    titles.setdefault(path.name, store.title(nb))
    paths = NOTEBOOKS if path in NOTEBOOKS else sorted([*NOTEBOOKS, path])
    if text != store.dumps(store.normalise(nb, path, paths, titles)):
        return [f"{path.name} was not stored by the project command: run "
                f"`make notebooks NB=notebooks/{path.name}`"]
    return []


def execution_problems(nb):
    cells = code_cells(nb)
    counts = [c["execution_count"] for c in cells]
    found = []
    if not cells:
        found.append("no code cells")
    if counts != list(range(1, len(cells) + 1)):
        found.append(f"not one fresh run from top to bottom: execution counts {counts}")
    if sum(bool(c["outputs"]) for c in cells) < len(cells) / 2:
        found.append("fewer than half the code cells have stored outputs")
    return found


def error_problems(nb):
    found = []
    for cell in code_cells(nb):
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if marked_to_raise(cell) and not errors:
            found.append(f"marked to raise but did not:\n{source(cell)}")
        if errors and not marked_to_raise(cell):
            found.append(f"unmarked error output:\n{source(cell)}")
    return found


KNOWN_MARKERS = {"NBVAL_IGNORE_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP",
                 "NBVAL_CHECK_OUTPUT"}


def unknown_markers(nb):
    """Comment markers nbval would not recognise (it wants the marker alone on its line)."""
    return [f"nbval does not read this marker: {m!r}\n{source(c)}" for c in code_cells(nb)
            for m in sorted(store.markers(source(c)) - KNOWN_MARKERS)]


# nbval's cell tags. `raises-exception` rather than nbval's own `nbval-raises-exception`:
# JupyterLab's Run All and nbclient go on after an error only in a cell with that tag.
KNOWN_TAGS = {"nbval-ignore-output", "nbval-check-output", "nbval-skip", "raises-exception",
              store.NAV_TAG}


def unknown_tags(nb):
    """Tags that nbval, JupyterLab and this project do not read: nbval silently ignores a
    misspelt tag, so the cell would not be treated as meant. (A new tag a tool reads goes
    into KNOWN_TAGS.)"""
    found = []
    for cell in nb["cells"]:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag == "nbval-raises-exception":
                found.append("use the tag `raises-exception` (JupyterLab's Run All and "
                             f"nbclient stop at an error otherwise):\n{source(cell)}")
            elif tag not in KNOWN_TAGS:
                found.append(f"no tool reads this tag: {tag!r}\n{source(cell)}")
    return found


def leaks(nb):
    patterns = store.sanitize_patterns()
    found = []
    for cell in code_cells(nb):
        for text in output_texts(cell):
            found += [f"{what} in output:\n{text}" for what, rx in FORBIDDEN.items()
                      if rx.search(text)]
            found += [f"raw port or address in output:\n{text}" for rx, rep in patterns
                      if rx.sub(rep, text) != text]
    return found


def broken_links(path, nb):
    targets = re.findall(r"\]\(([^)#\s]+)", markdown(nb))
    return [f"broken link {t}" for t in targets
            if not re.match(r"https?://", t) and not (path.parent / t).exists()]


def missing_sections(nb):
    text = markdown(nb)
    found = [f"no '{s}' heading" for s in SECTIONS if not re.search(rf"^#+ .*{s}", text, re.M)]
    starts_server = re.search(r"\bserve\w*\(", "\n".join(source(c) for c in code_cells(nb)))
    if starts_server and not re.search(r"^#+ .*Try it from a terminal", text, re.M):
        found.append("starts a server but has no 'Try it from a terminal' heading")
    return found


# The whole report of an exercise not attempted yet (helpers/exercises/framework.py,
# Report.__repr__): its id and title, the answer's name (or "the answer" when it has none),
# and what to do next.
NOT_ATTEMPTED = re.compile(
    r"Exercise (?P<id>\d\d\.\d+) · [^\n]+: not attempted yet"
    r" \((?:`(?P<name>[A-Za-z_]\w*)`|the answer) still raises NotImplementedError\)\.\n"
    r"Write it in the cell above, run that cell, then run this one again\.")


def checker_problems(nb):
    """A stored checker cell must show nothing but the two-line report of an unattempted
    exercise, for its own exercise and answer: no verdict, no hint, before the reader has
    tried."""
    found = []
    for cell in code_cells(nb):
        match = re.match(r'check\("(\d\d\.\d+)",\s*([^)]*)\)', source(cell))
        if not match:
            continue
        shown = "".join(output_texts(cell))
        said = NOT_ATTEMPTED.fullmatch(shown)
        if (len(cell["outputs"]) != 1 or not said or said["id"] != match[1]
                or said["name"] not in (None, match[2].strip())):
            found.append(f"checker cell {match[1]} does not show the not-attempted report"
                         f" alone:\n{shown}")
    return found


# "chapter 15", "chapters 16-18", "chapters [03](03_x.ipynb) and 13": a number, or a number
# that is itself a link, and more of them after "," "and" "or" "to" or a dash.
CHAPTER_NUMBER = r"(?:\[\d\d\]\(\d\d_[^)\s]*\)|\d\d)"
CHAPTER_MENTION = re.compile(rf"\b[Cc]hapters?\s+({CHAPTER_NUMBER}"
                             rf"(?:\s*(?:,|and|or|to|-|–)\s*{CHAPTER_NUMBER})*)")
CHAPTER_LINK = re.compile(r"\[[^\]]*\]\((\d\d)_[^)\s]*\.ipynb[^)]*\)")
MARKDOWN_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def unlinked_later_chapters(path, nb):
    """A notebook that names a later chapter ("chapter 15", "chapters 16-18") links it, where it
    names it: the reader who wants to look ahead can, and the link check above proves that the
    chapter exists. (Earlier chapters may be named plainly; the navigation cells, which the
    store writes, and code are not checked.)"""
    me = int(path.name[:2])
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown" or store.NAV_TAG in cell.get("metadata", {}).get(
                "tags", []):
            continue
        text = source(cell)
        code = [m.span() for m in MARKDOWN_CODE.finditer(text)]
        links = [(m.start(), m.end(), int(m[1])) for m in CHAPTER_LINK.finditer(text)]
        for mention in CHAPTER_MENTION.finditer(text):
            if any(a <= mention.start() < b for a, b in code):
                continue
            for number in re.finditer(r"\[(\d\d)\]\((\d\d)_[^)\s]*\)|(\d\d)", mention[1]):
                at = mention.start(1) + number.start()
                if number[1]:  # a number that is a link: to its own chapter?
                    n, linked = int(number[1]), number[1] == number[2]
                else:  # a number inside a link's text ("[chapter 15](15_x.ipynb)")?
                    n = int(number[3])
                    linked = any(a <= at < b and n == target for a, b, target in links)
                if n > me and not linked:
                    line = text[text.rfind("\n", 0, at) + 1:].split("\n")[0]
                    found.append(f"chapter {n:02d} is named without a link to it: {line}")
    return found


def teardown_problems(nb):
    last = code_cells(nb)[-1]
    found = []
    if "stop_all()" not in source(last) or not source(last).rstrip().endswith("servers()"):
        found.append("the last code cell must call stop_all() and end with servers()")
    if next(output_texts(last), "") != "No servers running.":
        found.append("the last cell's output is not 'No servers running.'")
    return found


# -- every notebook --------------------------------------------------------------


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_notebooks_and_an_index():
    assert NAMES[0] == "00_index.ipynb"
    assert all(re.fullmatch(r"\d\d[a-z]?_[a-z0-9_]+\.ipynb", n) for n in NAMES), NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_stored_by_the_project_command(path):
    assert not_in_stored_form(path, path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", [NOTEBOOKS[0], *CHAPTERS], ids=["00_index.ipynb", *[
    p.name for p in CHAPTERS]])
def test_executed_top_to_bottom_with_outputs(path):
    assert execution_problems(load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_errors_only_in_cells_marked_to_raise(path):
    assert error_problems(load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_nbval_markers_are_written_as_nbval_reads_them(path):
    assert unknown_markers(load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_cell_tags_are_ones_nbval_or_jupyterlab_read(path):
    assert unknown_tags(load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_no_paths_ports_addresses_or_tokens_in_outputs(path):
    assert leaks(load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_every_local_link_resolves(path):
    assert broken_links(path, load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_later_chapters_are_named_with_a_link(path):
    assert unlinked_later_chapters(path, load(path)) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_has_the_house_sections(path):
    assert missing_sections(load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_checker_cells_show_no_hint_before_an_attempt(path):
    assert checker_problems(load(path)) == []


@pytest.mark.parametrize("path", [NOTEBOOKS[0], *CHAPTERS], ids=["00_index.ipynb", *[
    p.name for p in CHAPTERS]])
def test_last_cell_stops_everything_and_shows_it(path):
    assert teardown_problems(load(path)) == []


@pytest.mark.parametrize("path", APPENDIX, ids=[p.name for p in APPENDIX])
def test_the_appendix_links_every_chapter_and_runs_nothing(path):
    nb = load(path)
    assert code_cells(nb) == []
    linked = set(re.findall(r"\]\((\d\d_\w+\.ipynb)\)", markdown(nb)))
    assert {p.name for p in CHAPTERS} - linked == set()


def test_index_and_readme_list_every_notebook_once():
    index_text = markdown(load(INDEX))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"]({name})" in index_text, f"{name} is not linked from the index"
        rows = [line for line in readme.splitlines()
                if line.startswith("|") and f"notebooks/{name})" in line]
        assert len(rows) == 1, f"README chapter table must have one row for {name}"
    table = re.findall(r"\(notebooks/(\d\d[a-z]?_\w+\.ipynb)\)", readme)
    assert sorted(set(table)) == NAMES, "README links a notebook that does not exist"


# -- each check can fail ------------------------------------------------------------


def test_each_check_finds_what_is_wrong_in_a_bad_notebook(tmp_path):
    bad = new_notebook(cells=[
        new_markdown_cell("# 98 · Bad\n\n## Summary\n\n[gone](97_missing.ipynb)"),
        new_code_cell("serve('x', f)\n1/0", execution_count=2, outputs=[
            new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                       traceback=[]),
        ]),
        new_code_cell("# NBVAL_RAISES_EXCEPTION\nprint(port)", execution_count=1, outputs=[
            new_output("stream", name="stdout",
                       text="on 127.0.0.1:43210 at 0x7f00aa11bb22 in /root/x token="
                            + "a" * 32 + "\n"),
        ]),
        new_code_cell("# NBVAL_IGNORE_OUTPUT (timings)\npass"),
        new_code_cell('check("98.1", answer)', outputs=[new_output(
            "execute_result", data={"text/plain": "Exercise 98.1 · Bad: 0 of 1 checks passed\n"
                                                  "  FAIL  x\n        hint: use y"})]),
        new_code_cell("pass"),
        new_code_cell("pass"),
        new_code_cell("servers()"),
    ])
    path = tmp_path / "98_bad.ipynb"
    text = nbformat.writes(bad)
    assert not_in_stored_form(path, text)
    assert len(execution_problems(bad)) == 2  # wrong order, too few outputs
    assert len(error_problems(bad)) == 2  # one unmarked error, one marked that did not raise
    assert {p.split(" in output")[0].split(":")[0] for p in leaks(bad)} == {
        "an absolute path", "a token", "raw port or address"}
    assert broken_links(path, bad) == ["broken link 97_missing.ipynb"]
    assert len(unknown_markers(bad)) == 1
    assert len(missing_sections(bad)) == len(SECTIONS) - 1 + 1  # all but Summary; terminal
    assert len(teardown_problems(bad)) == 2
    assert len(checker_problems(bad)) == 1


def test_a_checker_cell_shows_the_not_attempted_report_and_nothing_else():
    def checker(call, *texts):
        return new_code_cell(call, outputs=[
            new_output("execute_result", data={"text/plain": text}) for text in texts])

    again = "\nWrite it in the cell above, run that cell, then run this one again."
    report = ("Exercise 98.1 · Bad: not attempted yet (`answer` still raises "
              "NotImplementedError)." + again)
    unnamed = ("Exercise 98.2 · Pair: not attempted yet (the answer still raises "
               "NotImplementedError)." + again)
    good = new_notebook(cells=[checker('check("98.1", answer)', report),
                               checker('check("98.2", (a, b))', unnamed)])
    assert checker_problems(good) == []
    bad = new_notebook(cells=[
        checker('check("98.1", answer)', report + "\n  FAIL  x"),  # more after it
        checker('check("98.1", answer)', report.split("\n")[0]),  # its first line only
        checker('check("98.1", answer)', report, report),  # shown twice
        checker('check("98.3", answer)', report),  # another exercise's report
        checker('check("98.1", other)', report),  # another answer's
        checker('check("98.1", answer)', report.replace("raises", "raised")),
    ])
    assert len(checker_problems(bad)) == 6


def test_a_later_chapter_is_named_with_a_link_to_it(tmp_path):
    nav = new_markdown_cell("[← chapter 04](04_a.ipynb) | chapter 06 next",
                            metadata={"tags": [store.NAV_TAG]})
    nb = new_notebook(cells=[nav, new_markdown_cell(
        "Chapter 05 is this one; chapter 02 came before. [Chapter 07](07_b.ipynb) is linked,"
        " and so are chapters [06](06_c.ipynb) and [13](13_d.ipynb). `chapter 09` is code,\n"
        "```\nchapter 09 too\n```\n"
        "but chapter 07 is named plainly,\n[chapter 07](08_e.ipynb) links the wrong one,"
        " chapters [06](06_c.ipynb) and 13 leave 13 out,\nchapters 06-08 name two, and"
        " Chapter 10's server is named too, and chapter [11](12_f.ipynb) is the wrong one."),
        new_code_cell("# chapter 09")])
    found = unlinked_later_chapters(tmp_path / "05_x.ipynb", nb)
    assert [p.split(":")[0] for p in found] == [
        f"chapter {n} is named without a link to it" for n in ("07", "07", "13", "06", "08",
                                                               "10", "11")]
    assert found[0].endswith(": but chapter 07 is named plainly,")


def test_tags_count_as_markers_and_unknown_tags_are_found():
    error = new_output("error", ename="KeyError", evalue="'x'", traceback=[])
    nb = new_notebook(cells=[
        new_code_cell("{}['x']", metadata={"tags": ["raises-exception"]}, outputs=[error]),
        new_code_cell("{}['x']", metadata={"tags": ["nbval-raises-exception"]},
                      outputs=[error]),
        new_code_cell("1", metadata={"tags": ["raises-exception", "nbval-ignore-output"]}),
        new_code_cell("1", metadata={"tags": ["nbval-ignore-outputs"]}),
    ])
    assert error_problems(nb) == [
        "unmarked error output:\n{}['x']",  # nbval's own tag: not honoured by JupyterLab
        "marked to raise but did not:\n1",
    ]
    assert [p.split(":")[0] for p in unknown_tags(nb)] == [
        "use the tag `raises-exception` (JupyterLab's Run All and nbclient stop at an error "
        "otherwise)", "no tool reads this tag"]
