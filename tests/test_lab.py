"""tools/lab.py: the reader's own copies of the chapters, and how `make lab` starts
JupyterLab (the browser tests start it the same way and drive it)."""

import json
import os
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import lab  # noqa: E402

INFO = {"name": "python", "version": "3.99.0", "file_extension": ".py"}


def stored_chapter(folder, name, source="print(1)"):
    nb = new_notebook(cells=[new_code_cell(source)],
                      metadata={"language_info": {"name": "python"}})
    (folder / name).write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


def folders(tmp_path):
    stored, copies = tmp_path / "notebooks", tmp_path / "my-notebooks"
    stored.mkdir()
    for name in ("00_index.ipynb", "01_a.ipynb"):
        stored_chapter(stored, name)
    return stored, copies


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_copies_are_the_stored_chapters_with_this_kernels_language_info(tmp_path):
    stored, copies = folders(tmp_path)
    told = lab.sync_copies(stored, copies, INFO)
    assert sorted(p.name for p in copies.glob("*.ipynb")) == ["00_index.ipynb", "01_a.ipynb"]
    mine, theirs = read(copies / "01_a.ipynb"), read(stored / "01_a.ipynb")
    assert mine["metadata"]["language_info"] == INFO
    assert mine["cells"] == theirs["cells"]
    assert told == ["my-notebooks/: your own copies of 00_index.ipynb, 01_a.ipynb, to run, "
                    "edit and save freely (notebooks/ keeps the stored chapters)"]


def test_the_language_info_is_what_the_kernel_reports():
    from ipykernel.ipkernel import IPythonKernel

    assert lab.kernel_language_info() == IPythonKernel.language_info
    assert lab.kernel_language_info()["version"] == sys.version.split()[0]


def test_a_copy_is_never_overwritten_and_a_changed_stored_chapter_is_reported(tmp_path):
    stored, copies = folders(tmp_path)
    lab.sync_copies(stored, copies, INFO)
    (copies / "01_a.ipynb").write_text("my own work", encoding="utf-8")
    stored_chapter(stored, "01_a.ipynb", "print('new version')")
    stored_chapter(stored, "02_b.ipynb")
    told = lab.sync_copies(stored, copies, INFO)
    assert (copies / "01_a.ipynb").read_text(encoding="utf-8") == "my own work"
    assert (copies / "02_b.ipynb").exists()
    assert told[0].startswith("my-notebooks/: your own copies of 02_b.ipynb")
    assert told[1].startswith("changed in notebooks/ since your copy was made: 01_a.ipynb")
    assert "`make fresh-copies`" in told[1]
    assert lab.sync_copies(stored, copies, INFO) == told[1:]  # said again until fresh


def test_fresh_copies_restore_the_stored_chapters_and_keep_the_readers_aside(tmp_path):
    stored, copies = folders(tmp_path)
    lab.sync_copies(stored, copies, INFO)
    (copies / "01_a.ipynb").write_text("my own work", encoding="utf-8")
    told = lab.fresh_copies(stored, copies, INFO)
    assert read(copies / "01_a.ipynb")["cells"] == read(stored / "01_a.ipynb")["cells"]
    [backup] = (copies / lab.PREVIOUS).iterdir()
    assert [p.name for p in backup.iterdir()] == ["01_a.ipynb"]  # only the changed one
    assert (backup / "01_a.ipynb").read_text(encoding="utf-8") == "my own work"
    assert told[1] == (f"your previous copies of 1 chapter are in "
                       f"my-notebooks/{lab.PREVIOUS}/{backup.name}/")
    assert lab.sync_copies(stored, copies, INFO) == []


def test_jupyterlab_starts_with_the_projects_settings_and_a_terminal_that_finds_nettalk():
    import zmq

    command = lab.lab_command(Path("/served"), "--no-browser")
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--ServerApp.root_dir=/served" in command
    assert f"--LabApp.app_settings_dir={lab.SETTINGS}" in command
    assert ("--KernelManager.transport_encryption=auto" in command) == zmq.has("curve")
    assert command[-1] == "--no-browser"
    if os.name != "nt":  # not a login shell, which would reset PATH from /etc/profile
        [shell] = [a for a in command if a.startswith("--ServerApp.terminado_settings=")]
        assert json.loads(shell.split("=", 1)[1])["shell_command"][0].endswith("sh")
    path = lab.lab_environment()["PATH"].split(os.pathsep)
    assert path[0] == lab.scripts_dir()
    assert any(Path(lab.scripts_dir(), name).exists() for name in ("nettalk", "nettalk.exe"))


def test_the_shipped_settings_exist_in_jupyterlab_and_turn_the_news_off():
    overrides = json.loads((lab.SETTINGS / "overrides.json").read_text(encoding="utf-8"))
    schemas = Path(sys.prefix, "share", "jupyter", "lab", "schemas")
    for plugin, values in overrides.items():
        package, name = plugin.split(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text(encoding="utf-8"))
        assert set(values) <= set(schema["properties"]), plugin
    assert overrides["@jupyterlab/apputils-extension:notification"] == {
        "checkForUpdates": False, "fetchNews": "false"}
