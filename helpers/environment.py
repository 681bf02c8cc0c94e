"""Check that this kernel runs the Python and packages that requirements.txt pins."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
MIN_PYTHON = (3, 11)


def pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """The `name==version` pins of a requirements file."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#;]+)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def problems(path: Path = REQUIREMENTS, python=sys.version_info) -> list[str]:
    """What differs from the pinned environment; empty when all is as pinned."""
    found = []
    if tuple(python[:2]) < MIN_PYTHON:
        found.append(f"Python {python[0]}.{python[1]} is too old: the series needs 3.11+")
    for name, wanted in pins(path).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            found.append(f"{name} is not installed (requirements.txt pins {wanted})")
            continue
        if installed != wanted:
            found.append(f"{name} {installed} is installed, requirements.txt pins {wanted}")
    return found


def check_environment(path: Path = REQUIREMENTS) -> None:
    """Print whether Python and every pinned package are as requirements.txt says."""
    found = problems(path)
    if found:
        print("Your environment differs from the one the notebooks were tested in:")
        print("\n".join(f"  - {p}" for p in found))
        print("Fix: run `make lab` from the repository root (it builds .venv for you).")
    else:
        print("Python is 3.11+ and every package matches its pin in requirements.txt.")
