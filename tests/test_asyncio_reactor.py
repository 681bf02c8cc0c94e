"""The tests of tests/asyncio_reactor/, in a process whose reactor is asyncioreactor."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_asyncio_reactor_tests_pass_in_a_process_of_their_own():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", "-q", "-o", "python_files=inner_*.py",
         "-p", "no:randomly", "tests/asyncio_reactor"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
