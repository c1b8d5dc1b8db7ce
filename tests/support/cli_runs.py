"""Write run configs for the local servers and invoke the real CLI: in-process, or as the
installed console script in a process of its own."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from pipeline.cli import main
from tests.support.servers import REPO_ROOT

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


def script_env() -> dict[str, str]:
    """The environment for a console-script run against the local servers."""
    return {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def run_script(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `alternator-migrate ARGS` to its end, as a user would."""
    return subprocess.run([str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=script_env(), cwd=cwd, stdin=subprocess.DEVNULL)


def start_script(*args: str, cwd: Path) -> subprocess.Popen:
    """Start `alternator-migrate ARGS` in its own process group (to signal or kill it)."""
    return subprocess.Popen([str(CONSOLE_SCRIPT), *args], env=script_env(), cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]
