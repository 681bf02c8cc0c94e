""""Run All" twice, checked by nbval.

nbval runs each notebook's code cells in one kernel and compares every output with the
stored one. Here each notebook's cells are queued a second time, after its last cell and
in the same kernel, so a cell that leaks a server, fails on re-run or prints something
else the second time fails the suite, under the same strict, sanitised comparison.
"""

import contextlib
import tempfile
import warnings

import nbval.kernel
from nbval.plugin import IPyNbCell

SECOND_RUN = ", run 2"
KERNEL_STARTS = 3  # attempts to start one notebook's kernel

_start_new_kernel = nbval.kernel.start_new_kernel


def start_new_kernel_again_if_it_dies(*args, **kwargs):
    """nbval's start_new_kernel, tried again when the kernel dies before it answers. Once in
    a fresh-clone run (of about ten that day) a kernel died at start and all 94 cells of
    its notebook failed. nbval sends the kernel's stderr to /dev/null; here it goes to a
    file, and a kernel that dies leaves a warning with the end of it, so that the cause
    shows in the run's warnings. A likely one: jupyter_client picks five free ports, then
    the kernel binds them, and a server of another test worker can take one in between."""
    with contextlib.suppress(Exception):
        kwargs["stderr"].close()  # nbval's /dev/null
    for attempt in range(1, KERNEL_STARTS + 1):
        kwargs["stderr"] = log = tempfile.TemporaryFile()  # noqa: SIM115 (the kernel keeps it)
        try:
            return _start_new_kernel(*args, **kwargs)
        except RuntimeError:
            log.seek(0)
            said = log.read()[-3000:].decode(errors="replace")
            log.close()
            warnings.warn(f"a kernel died at start (attempt {attempt} of {KERNEL_STARTS});"
                          f" its stderr ended with:\n{said}", stacklevel=2)
            if attempt == KERNEL_STARTS:
                raise


nbval.kernel.start_new_kernel = start_new_kernel_again_if_it_dies


def second_run(cells):
    """Copies of one notebook's cells that run after them in the same kernel."""
    return [
        IPyNbCell.from_parent(
            c.parent, name=c.name + SECOND_RUN, cell_num=c.cell_num, cell=c.cell,
            options=c.options,
        )
        for c in cells
    ]


def pytest_collection_modifyitems(items):
    result, cells = [], []
    for item in items:
        if cells and not (isinstance(item, IPyNbCell) and item.parent is cells[0].parent):
            result += cells + second_run(cells)
            cells = []
        (cells if isinstance(item, IPyNbCell) else result).append(item)
    items[:] = result + cells + second_run(cells)
