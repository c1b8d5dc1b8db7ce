"""Run a command and measure it: wall time, CPU time of all its processes, and peak memory.

The command runs under a tiny wrapper process, which reports the resource use of its
waited-for descendants: CPU (user + sys) of the command and of every process it started
and waited for (Beam's worker processes included), and the largest resident set among
them. A child forked from a big benchmark process would start with the parent's pages,
which is why the wrapper is small. `baseline_checkout` puts an earlier revision of the
tool beside this one, so a benchmark can measure "before" and "after" in the same run.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL).returncode; u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(u.ru_utime + u.ru_stime, u.ru_maxrss); sys.exit(0 if code == int(sys.argv[1]) else 1)")

#: The last revision before the data plane (issue 8): what "today's" tool means in `make bench`.
BASELINE_REVISION = "b49f62a"


@dataclass(frozen=True)
class Measured:
    seconds: float
    cpu_seconds: float
    max_rss_mib: float


def run_counted(command: list[str], cwd, env: dict | None = None, exit_code: int = 0) -> Measured:
    """Run `command` in `cwd` (stdout and stderr discarded) and measure it; it must end with `exit_code`."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _WRAPPER, str(exit_code), *command], cwd=cwd, capture_output=True,
                         text=True, check=True, env=env)
    cpu, rss_kib = out.stdout.split()
    return Measured(time.perf_counter() - started, float(cpu), int(rss_kib) / 1024)


def run_measured(command: list[str], cwd) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `command`."""
    measured = run_counted(command, cwd)
    return measured.seconds, measured.max_rss_mib


def per_item_us(run: Measured, start_up: Measured, items: int) -> float:
    """CPU microseconds per item of a run, its start-up (the same run on no items) subtracted."""
    return (run.cpu_seconds - start_up.cpu_seconds) / items * 1e6


def median(values) -> float:
    return statistics.median(list(values))


def baseline_checkout(repo_root: Path, revision: str = BASELINE_REVISION) -> Path | None:
    """The tool's source at `revision` in a temporary folder (None if git cannot give it)."""
    target = Path(tempfile.mkdtemp(prefix="alternator-migrate-baseline-"))
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=repo_root, capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    servers = repo_root / ".servers"
    if servers.exists():
        os.symlink(servers, target / ".servers")
    return target
