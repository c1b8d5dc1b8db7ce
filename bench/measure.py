"""Run a command and measure its peak memory without counting the benchmark's own.

ru_maxrss of RUSAGE_CHILDREN is the largest resident set of any waited-for descendant,
and a child forked from a big benchmark process starts with the parent's pages, so the
command runs under a tiny wrapper process and the wrapper reports its children's peak.
"""
from __future__ import annotations

import subprocess
import sys
import time

_WRAPPER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run_measured(command: list[str], cwd) -> tuple[float, float]:
    """(seconds, peak RSS in MiB of the command and the processes it waited for)."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *command], cwd=cwd, capture_output=True, text=True,
                         check=True)
    return time.perf_counter() - started, int(out.stdout.strip()) / 1024
