"""Write run configs for the local servers and invoke the real CLI: in-process, or as the
installed console script in a process of its own."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

import yaml
from click.testing import CliRunner, Result

from pipeline.cli import main
from testbed.servers import REPO_ROOT
from transforms.state import bulk_checkpoints

CONSOLE_SCRIPT = REPO_ROOT / ".venv" / "bin" / "alternator-migrate"


def unique(name: str) -> str:
    """A table name no other test in this session uses (the servers are shared)."""
    return f"{name}_{uuid.uuid4().hex[:8]}"


def alternator_target(alternator) -> dict:
    return {"alternator": {"seeds": ["127.0.0.1"], "port": alternator.port}}


def endpoint_target(alternator) -> dict:
    return {"endpoint": alternator.url}


def write_config(tmp_path: Path, source_endpoint: str, target: dict, tables: list, **sections) -> Path:
    """A config file whose checkpoints and dead letters live under `tmp_path`."""
    config = {
        "source": {"endpoint": source_endpoint, "region": "us-east-1",
                   "credentials": {"access_key_id": "test", "secret_access_key": "test"}},
        "target": target,
        "tables": tables,
        "checkpoint_dir": str(tmp_path / "checkpoints"),
        "dead_letter_dir": str(tmp_path / "dead-letter"),
        "pipeline_options": {"runner": "DirectRunner"},
    }
    config.update(sections)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str) -> Result:
    """Run `alternator-migrate ARGS`; exceptions stay in the result so tests can assert on them."""
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def script_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a console-script run against the local servers (plus `extra`)."""
    return {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            **(extra or {})}


def run_script(*args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None,
               script: Path = CONSOLE_SCRIPT) -> subprocess.CompletedProcess:
    """Run the installed `alternator-migrate ARGS` to its end, as a user would."""
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env=script_env(env), cwd=cwd, stdin=subprocess.DEVNULL)


def start_script(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `alternator-migrate ARGS` in its own process group (to signal or kill it)."""
    return subprocess.Popen([str(CONSOLE_SCRIPT), *args], env=script_env(env), cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def interrupt(process: subprocess.Popen, ready: Callable[[], bool], sig: int = signal.SIGKILL,
              timeout: float = 120.0) -> str:
    """Wait until `ready()` says the run is under way, send `sig` to its process group, and
    return what it printed on stderr once it ended."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise AssertionError(f"the run ended before it could be interrupted: {process.communicate()}")
            if time.monotonic() > deadline:
                raise AssertionError("the run showed no progress in time")
            time.sleep(0.1)
        os.killpg(process.pid, sig)
        return process.communicate(timeout=timeout)[1]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def items_copied(checkpoint_dir: Path, table: str) -> int:
    """Items the checkpoints record as copied for a table (0 before the first)."""
    state = bulk_checkpoints.progress(str(checkpoint_dir), table)
    return state.items if state else 0


def run_on_terminal(*args: str, cwd: Path, columns: int = 100, timeout: float = 300,
                    env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the installed `alternator-migrate ARGS` with its stderr on a pseudo-terminal of
    `columns` columns (Python's `pty`), as on a user's terminal; its stdout stays a pipe.
    Returns (exit code, stdout, what the terminal received, with the terminal's CR LF as LF)."""
    import fcntl  # noqa: PLC0415 - POSIX only, as the pseudo-terminal itself
    import pty  # noqa: PLC0415
    import select  # noqa: PLC0415
    import struct  # noqa: PLC0415
    import termios  # noqa: PLC0415

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    try:
        process = subprocess.Popen([str(CONSOLE_SCRIPT), *args], env=script_env(env), cwd=cwd,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower)
    finally:
        os.close(follower)
    received = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not chunk:
                    break
                received += chunk
            elif process.poll() is not None:
                break
        else:
            raise AssertionError(f"the run did not end in {timeout} s")
        stdout = process.communicate(timeout=60)[0].decode()
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stdout, received.decode().replace("\r\n", "\n")
