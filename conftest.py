""""Run All" twice, checked by nbval.

nbval runs each notebook's code cells in one kernel and compares every output with the
stored one. Here each notebook's cells are queued a second time, after its last cell and
in the same kernel, so a cell that leaks a server, fails on re-run or prints something
else the second time fails the suite, under the same strict, sanitised comparison.
"""

from nbval.plugin import IPyNbCell

SECOND_RUN = ", run 2"


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
