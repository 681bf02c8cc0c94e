"""Run the whole test suite several times in a row, optionally with every core busy.

    python tools/soak.py --runs 10            # 10 runs in a row
    python tools/soak.py --runs 10 --load     # the same with one busy process per core
    python tools/soak.py --logs /tmp/soak     # and keep each run's whole output

Prints one line per run (pass/fail, wall time) and a summary; exits 1 if any run failed.
These are the figures the README reports.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spin(stop):
    while not stop.is_set():
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--load", action="store_true", help="keep every core busy")
    parser.add_argument("--logs", type=Path, help="keep each run's whole output here")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = parser.parse_args(argv)

    stop = multiprocessing.Event()
    burners = []
    if args.load:
        burners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True)
                   for _ in range(os.cpu_count() or 1)]
        for p in burners:
            p.start()
    times, failures = [], 0
    try:
        for i in range(1, args.runs + 1):
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", *args.pytest_args],
                                    cwd=ROOT, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
            failures += result.returncode != 0
            print(f"run {i:2}: {'ok  ' if result.returncode == 0 else 'FAIL'} "
                  f"{elapsed:5.1f} s  {summary}", flush=True)
            if result.returncode != 0:
                print(result.stdout[-3000:], flush=True)
            if args.logs:  # a passing run's warnings can tell too (a kernel that died)
                args.logs.mkdir(parents=True, exist_ok=True)
                ended = "ok" if result.returncode == 0 else "FAIL"
                (args.logs / f"run-{i}-{ended}.log").write_text(result.stdout + result.stderr)
    finally:
        stop.set()
        for p in burners:
            p.join(5)
    load = f"with {len(burners)} busy processes" if burners else "on an idle machine"
    print(f"{args.runs - failures} of {args.runs} runs passed {load}; wall time median "
          f"{statistics.median(times):.1f} s, max {max(times):.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
