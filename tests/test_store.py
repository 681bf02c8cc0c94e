"""tools/store_notebooks.py: the normal form every stored notebook must be in."""

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import store_notebooks as store  # noqa: E402

PATHS = [Path("00_index.ipynb"), Path("01_a.ipynb"), Path("02_b.ipynb")]
TITLES = {"00_index.ipynb": "00 · Start", "01_a.ipynb": "01 · A", "02_b.ipynb": "02 · B"}


def chapter(*cells):
    nb = new_notebook(cells=[new_markdown_cell("# 01 · A"), *cells])
    nb.metadata = {"kernelspec": {"name": "other"}, "language_info": {"version": "3.11.7"},
                   "jupytext": {"formats": "py"}}
    return nb


def printed(text):
    return new_output("stream", name="stdout", text=text)


def test_navigation_cells_are_regenerated_at_top_and_bottom():
    nb = chapter(new_markdown_cell("[old nav](x.ipynb)", metadata={"tags": ["nav"]}))
    out = store.normalise(nb, PATHS[1], PATHS, TITLES)
    nav = "[← 00 · Start](00_index.ipynb) | [Contents](00_index.ipynb) | [02 · B →](02_b.ipynb)"
    assert out.cells[0].source == out.cells[-1].source == nav
    assert [c.source for c in out.cells[1:-1]] == ["# 01 · A"]
    last = store.nav_source(PATHS[2], PATHS, TITLES)
    assert last == "[← 01 · A](01_a.ipynb) | [Contents](00_index.ipynb)"


def test_metadata_is_reduced_to_one_kernelspec_and_no_timings():
    cell = new_code_cell("1", metadata={"execution": {"iopub.execute_input": "2026"},
                                        "scrolled": True, "tags": ["keep"]})
    out = store.normalise(chapter(cell), PATHS[1], PATHS, TITLES)
    assert out.metadata == {"kernelspec": store.KERNELSPEC, "language_info": {"name": "python"}}
    assert out.cells[2].metadata == {"tags": ["keep"]}


def test_ports_addresses_and_paths_in_outputs_are_replaced():
    site = store.path_prefixes()[0][0]
    cell = new_code_cell("x", outputs=[
        printed("listening on 127.0.0.1:43121, ('127.0.0.1', 43121), nc 127.0.0.1 43121\n"),
        printed(f"<Thing at 0x7f3a2b1c9d10> port=50123 in {site}/twisted/x.py\n"),
    ])
    out = store.normalise(chapter(cell), PATHS[1], PATHS, TITLES).cells[2].outputs
    assert out[0].text == ("listening on 127.0.0.1:<PORT>, ('127.0.0.1', <PORT>), "
                           "nc 127.0.0.1 <PORT>\n")
    assert out[1].text.startswith("<Thing at 0x<ADDR>> port=<PORT> in <")
    assert site not in out[1].text


def test_cells_marked_to_raise_get_the_tag_nbclient_and_nbval_honour():
    cell = new_code_cell("# NBVAL_RAISES_EXCEPTION\n1/0")
    out = store.normalise(chapter(cell), PATHS[1], PATHS, TITLES)
    assert out.cells[2].metadata == {"tags": ["raises-exception"]}


def test_normal_form_is_stable():
    cell = new_code_cell("print(1)", outputs=[printed("1\n")], execution_count=1)
    once = store.normalise(chapter(cell), PATHS[1], PATHS, TITLES)
    text = store.dumps(once)
    again = store.normalise(nbformat.reads(text, as_version=4), PATHS[1], PATHS, TITLES)
    assert store.dumps(again) == text


def test_cell_tags_are_kept_and_the_comment_marker_adds_its_tag_once():
    tagged = new_code_cell("1/0", metadata={"tags": ["raises-exception"]})
    both = new_code_cell("# NBVAL_RAISES_EXCEPTION\n1/0", metadata={"tags": ["raises-exception"]})
    ignored = new_code_cell("1", metadata={"tags": ["nbval-ignore-output"]})
    out = store.normalise(chapter(tagged, both, ignored), PATHS[1], PATHS, TITLES)
    assert [c.metadata for c in out.cells[2:5]] == [
        {"tags": ["raises-exception"]}, {"tags": ["raises-exception"]},
        {"tags": ["nbval-ignore-output"]}]


def test_kernels_are_started_with_encrypted_connections_where_pyzmq_can():
    import zmq

    config = store.kernel_config()
    wanted = "auto" if zmq.has("curve") else None
    assert config.KernelManager.get("transport_encryption") == wanted
