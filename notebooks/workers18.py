"""Worker functions for chapter 18's process pools.

A process pool sends each job to a child process by pickling the function *by name*
(module and qualified name); the child imports the module to find it. Functions defined in
a notebook cell live in `__main__`, which a spawned or forkserver child cannot import, so
the functions a process pool runs live here, in a module that every process of the .venv
imports as `notebooks.workers18` (the editable install puts the repository on sys.path).
"""

from __future__ import annotations

import os


def count_primes(limit: int) -> int:
    """Count the primes below `limit` by trial division: pure-Python CPU work."""
    count = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


def square(x: int) -> int:
    return x * x


def whoami(_=None) -> int:
    """The id of the process that runs the job."""
    return os.getpid()


def nap_pid(seconds: float) -> int:
    """Block for `seconds`, then return the id of the process that ran the job."""
    import time

    time.sleep(seconds)
    return os.getpid()


def check_positive(x: int) -> int:
    """Return x, or raise ValueError if it is negative."""
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x
