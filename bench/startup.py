"""What a command costs before it does anything: `--help` and a config error, as a user
runs them (the installed console script, its bytecode compiled as an installed package
has it), CPU time of the process, medians of 5. The nothing-new `replicate
--until-caught-up` needs the servers: it is measured in `bench.replicate`.

Run: .venv/bin/python -m bench.startup
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench.measure import Measured, run_counted
from testbed.servers import REPO_ROOT

REPEATS = 5
CONSOLE_SCRIPT = Path(sys.executable).with_name("alternator-migrate")
GOAL_CPU_SECONDS = 0.5


def script_env() -> dict[str, str]:
    """This environment, with bytecode written and read (a test or CI setting may turn it off;
    an installed package has its .pyc files)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def measured(*args: str, exit_code: int = 0) -> Measured:
    """Median CPU (and its run's wall time) of `alternator-migrate ARGS`, after one warm-up run."""
    command = [str(CONSOLE_SCRIPT), *args]
    run_counted(command, REPO_ROOT, script_env(), exit_code)
    runs = sorted((run_counted(command, REPO_ROOT, script_env(), exit_code) for _ in range(REPEATS)),
                  key=lambda run: run.cpu_seconds)
    return runs[len(runs) // 2]


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "typo.yaml"
        bad.write_text("source: {endpoint: 'http://127.0.0.1:1'}\ntarget: {endpoint: 'http://127.0.0.1:2'}\n"
                       "tabels: [orders]\n")
        usage = measured("--help")
        config_error = measured("migrate", "--config", str(bad), exit_code=2)
    print(f"start-up (the console script, CPU of its process, medians of {REPEATS}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    for name, run in (("--help", usage), ("a config error (a misspelled key)", config_error)):
        print(f"  {name}: {run.cpu_seconds:.2f} s of CPU, {run.seconds:.2f} s wall (goal: under "
              f"{GOAL_CPU_SECONDS} s of CPU)")
    return {"help_cpu_s": round(usage.cpu_seconds, 2), "config_error_cpu_s": round(config_error.cpu_seconds, 2)}


if __name__ == "__main__":
    main()
