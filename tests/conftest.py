"""Shared fixtures: no helper server left behind; JupyterLab and Chromium for browser tests."""

import os

import pytest

from helpers import servers, stop_all


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows, in full, every exercise report its frames held: a checker
    test that fails once in CI then says which check failed, and why."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        from helpers.exercises.framework import Report

        shown = []
        for entry in call.excinfo.traceback:
            for value in entry.frame.f_locals.values():
                if isinstance(value, Report) and all(value is not r for r in shown):
                    shown.append(value)
        for i, value in enumerate(shown, 1):
            report.sections.append((f"exercise report {i}", str(value)))
            report.sections += [(f"exercise report {i}, where {r.check.key} raised",
                                 r.traceback) for r in value.results if r.traceback]


@pytest.fixture(autouse=True)
def no_servers_left():
    yield
    leftover = [s.name for s in servers()]
    stop_all()
    assert not leftover, f"test left servers running: {leftover}"


def need_chromium():
    """Skip without Chromium, except in CI (CI=true), where that is a failure."""
    import lab_browser

    if lab_browser.chromium():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests, and found no Chromium: "
                    f"{lab_browser.INSTALL_HINT}", pytrace=False)
    pytest.skip(lab_browser.INSTALL_HINT)


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """JupyterLab as `make lab` starts it, on reader copies of every chapter (made now,
    in a temporary folder: the chapters may change while the test runs)."""
    need_chromium()
    import lab_browser

    root = tmp_path_factory.mktemp("lab")
    lab_browser.lab.sync_copies(lab_browser.lab.NOTEBOOKS, root / lab_browser.lab.COPIES.name)
    server = lab_browser.Lab(root, state=tmp_path_factory.mktemp("lab-state"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def reader(lab_server, tmp_path_factory):
    """A reader at one headless Chromium page of `lab_server`, for the tests of a module."""
    import lab_browser
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = lab_browser.launch(playwright, tmp_path_factory.mktemp("chromium-profile"))
        yield lab_browser.Reader(context, lab_server)
        context.close()
