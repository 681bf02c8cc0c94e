"""Import the classes a chapter defines, straight from its notebook.

A chapter's teaching code (a protocol, a parser) lives in the notebook, where the reader
sees it. Cells whose first line is ``# module: NAME`` form a module NAME; tests import it
with ``load("notebooks/10_chat_server.ipynb", "chat")`` and test it without a network.
Those cells must define things only (imports, classes, functions, constants).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

MARKER = "# module:"


def module_cells(notebook: str | Path, name: str) -> list[str]:
    """The sources of the code cells that belong to module `name`, in notebook order."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return [s for s in sources if s.partition("\n")[0].strip() == f"{MARKER} {name}"]


def load(notebook: str | Path, name: str) -> types.ModuleType:
    """A fresh module built from the `# module: name` cells of `notebook`."""
    sources = module_cells(notebook, name)
    if not sources:
        raise LookupError(f"{Path(notebook).name} has no cell starting '{MARKER} {name}'")
    qualified = f"{__name__}.{name}"  # never shadows a real module such as `json`
    module = types.ModuleType(qualified, f"Cells of {Path(notebook).name} marked '{MARKER} {name}'")
    module.__file__ = str(notebook)
    # Registered like an imported module: dataclasses and pickle look classes up there.
    sys.modules[qualified] = module
    for i, source in enumerate(sources):
        code = compile(source, f"{Path(notebook).name}[{name} cell {i}]", "exec",
                       dont_inherit=True)  # not this file's `from __future__` imports
        exec(code, vars(module))
    return module
