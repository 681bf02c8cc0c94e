"""Shared fixture: every test starts and ends with no helper server running."""

import pytest

from helpers import servers, stop_all


@pytest.fixture(autouse=True)
def no_servers_left():
    yield
    leftover = [s.name for s in servers()]
    stop_all()
    assert not leftover, f"test left servers running: {leftover}"
