"""Write run configs for the local servers and invoke the real CLI in-process."""
from __future__ import annotations

import uuid
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from pipeline.cli import main


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
