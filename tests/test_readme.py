"""The README's walkthrough config is a config the tool accepts (docs that match the code)."""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.checks.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_walkthrough_config_loads(tmp_path, monkeypatch):
    walkthrough = README.read_text().split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n( *)```yaml\n(.*?)\n\1```", walkthrough, re.S)
    indent = len(block.group(1))
    path = tmp_path / "prod.yaml"
    path.write_text("\n".join(line[indent:] for line in block.group(2).splitlines()))
    monkeypatch.setenv("ALTERNATOR_SECRET", "not-a-real-hash")

    config = load_config(str(path))

    assert [spec.source for spec in config.tables] == ["orders", "customers"]
    assert config.target.datacenter == "dc1" and config.checkpoint_dir.startswith("s3://")
