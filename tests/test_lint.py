import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean_over_helpers_tests_tools_solutions_and_notebooks():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache",
         "helpers", "tests", "tools", "solutions", "notebooks"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
