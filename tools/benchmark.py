"""Run chapter 19's full benchmark and write its results to a JSON file.

    .venv/bin/python tools/benchmark.py                      # about 10 minutes
    .venv/bin/python tools/benchmark.py --quick -o /tmp/b.json  # a minute, to try it

Every server runs in its own process and the load generator in another, on 127.0.0.1.
Run it on a quiet machine: anything else running takes CPU from one side or the other.
The chapter plots the file it writes (notebooks/data/benchmark_full_run.json by default).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import benchmark  # noqa: E402
from helpers.echo_servers import KINDS  # noqa: E402

DEFAULT_OUT = benchmark.STORED_RUN


def machine() -> dict:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "twisted": metadata.version("twisted"),
        "uvloop": metadata.version("uvloop"),
        "date": datetime.date.today().isoformat(),
    }


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="short runs, fewer points")
    args = parser.parse_args(argv)
    quick = args.quick
    duration, repeats = (0.3, 1) if quick else (2.0, 3)
    sizes = [64, 1024, 65536] if quick else [64, 1024, 16384, 65536]
    concurrency = [1, 10, 100] if quick else [1, 10, 50, 100]
    held = 1000 if quick else 10000
    started = time.monotonic()
    results = {"machine": machine(), "duration_s": duration, "repeats": repeats,
               "by_size": [], "by_connections": [], "one_connection_64k": [], "latency": [],
               "memory": {}}

    for kind in KINDS:
        for size in sizes:
            row = benchmark.measure(kind, size=size, connections=10, duration=duration,
                                    repeats=repeats).row()
            results["by_size"].append(row)
            log(row)
        for connections in concurrency:
            row = benchmark.measure(kind, size=1024, connections=connections,
                                    duration=duration, repeats=repeats).row()
            results["by_connections"].append(row)
            log(row)
        row = benchmark.measure(kind, size=65536, connections=1, duration=duration,
                                repeats=repeats).row()  # against the loopback ceiling
        results["one_connection_64k"].append(row)
        log(row)
        with benchmark.EchoServer(kind) as server:  # a fixed schedule: honest percentiles
            benchmark.load(server.port, duration=0.2, warmup=0)
            figures = benchmark.load(server.port, connections=10, size=1024,
                                     duration=duration * 2, rate=5000)
        results["latency"].append({"kind": kind, **figures})
        log(results["latency"][-1])
    for kind in ["twisted", "asyncio", "uvloop", "threads"]:
        count = min(held, 2000) if kind == "threads" else held
        results["memory"][kind] = {"connections": count,
                                   "bytes_each": benchmark.memory_per_connection(kind, count)}
        log(kind, results["memory"][kind])
    results["ceiling_bytes_per_s"] = benchmark.loopback_ceiling(1.0)
    results["reuse_port_split"] = benchmark.reuse_port_split("twisted", 2, 1000)
    results["seconds"] = time.monotonic() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {args.output} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
