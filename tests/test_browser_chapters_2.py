"""Run All twice in JupyterLab, in headless Chromium, on part 2 of the chapters.

Each chapter: every code cell ran (none left queued), no error except where a cell is meant
to raise, every Mermaid diagram drawn, every plot shown, and the tab not marked modified on
opening. See tests/browser_chapters.py for the split and tests/lab_browser.py for the driver.
"""

from browser_chapters import chapter_test

test_run_all_twice_in_jupyterlab = chapter_test(part=1)
