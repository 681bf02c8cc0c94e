"""The root conftest.py makes nbval run every notebook's cells twice in one kernel."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {
    # name: (cell source, stored output)
    "same": ("print('same')", "same\n"),
    "counter": ("runs = globals().get('runs', 0) + 1\nprint(runs)", "1\n"),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """pytest -rA output for two one-cell notebooks, run with the project's conftest.py."""
    folder = tmp_path_factory.mktemp("run_twice")
    for name, (source, text) in NOTEBOOKS.items():
        cell = nbformat.v4.new_code_cell(source, execution_count=1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), folder / f"{name}.ipynb")
    shutil.copy(ROOT / "conftest.py", folder / "conftest.py")
    (folder / "pytest.ini").write_text("[pytest]\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-rA",
         "-p", "no:cacheprovider", "-p", "no:xdist", "same.ipynb", "counter.ipynb"],
        cwd=folder, capture_output=True, text=True, timeout=60,
    )
    return run.stdout


def test_each_cell_runs_again_after_the_last_cell(report):
    assert "PASSED same.ipynb::Cell 0\n" in report
    assert "PASSED same.ipynb::Cell 0, run 2\n" in report


def test_a_cell_that_prints_something_else_the_second_time_fails(report):
    assert "PASSED counter.ipynb::Cell 0\n" in report
    assert "FAILED counter.ipynb::Cell 0, run 2" in report


def test_a_kernel_that_dies_at_start_is_started_again_and_leaves_its_stderr(monkeypatch):
    import io

    import nbval.kernel

    wrapper = nbval.kernel.start_new_kernel  # the root conftest.py's
    starts = []

    def dies_twice(*args, **kwargs):
        starts.append(kwargs["stderr"])
        if len(starts) < 3:
            kwargs["stderr"].write(b"OSError: [Errno 98] Address already in use\n")
            kwargs["stderr"].flush()
            raise RuntimeError("Kernel died before replying to kernel_info")
        return "km", "kc"

    monkeypatch.setitem(wrapper.__globals__, "_start_new_kernel", dies_twice)
    with pytest.warns(UserWarning) as caught:
        assert wrapper(stderr=io.BytesIO()) == ("km", "kc")
    assert [str(w.message) for w in caught] == [
        f"a kernel died at start (attempt {n} of 3); its stderr ended with:\nOSError: [Errno"
        " 98] Address already in use\n" for n in (1, 2)]
    assert len(starts) == 3 and starts[0].closed and not starts[2].closed
    starts[2].close()
