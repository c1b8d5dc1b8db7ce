"""`make demo`: the main job on the embedded default, end to end, on this machine.

Starts DynamoDB Local (source, port 8001) and the local Alternator stand-in (target,
port 8000, three "nodes"), seeds the lab tables and a generated table with every
type, runs `alternator-migrate migrate --config configs/local.yaml` exactly as a user
would, proves the copy with `alternator-migrate validate` (both ways, item by item), and
stops the servers.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from testbed import seed
from testbed.ports import listening
from testbed.servers import REPO_ROOT, DynamoDBLocal, LocalAlternator

SOURCE_PORT, TARGET_PORT = 8001, 8000
GENERATED_ITEMS = seed.DEMO_ITEMS


def _run(*args: str) -> None:
    command = [sys.executable, "-m", "pipeline.cli", *args]
    print("$ alternator-migrate " + " ".join(args), flush=True)
    code = subprocess.call(command, cwd=REPO_ROOT)
    if code != 0:
        raise SystemExit(f"demo: alternator-migrate {args[0]} exited with {code}")


def main() -> None:
    busy = [p for p in (SOURCE_PORT, TARGET_PORT) if listening(p)]
    if busy:
        raise SystemExit(f"demo: port {busy[0]} on 127.0.0.1 is in use; stop what listens there and retry")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    for leftover in ("checkpoints", "dead-letter"):
        shutil.rmtree(REPO_ROOT / leftover, ignore_errors=True)
    with DynamoDBLocal(port=SOURCE_PORT) as source, LocalAlternator(port=TARGET_PORT) as target:
        started = time.monotonic()
        print(f"source: DynamoDB Local at {source.endpoint}; target: Alternator stand-in at {target.url} "
              f"(nodes {', '.join(target.front.addresses)})")
        seed.seed_demo_tables(source.endpoint, GENERATED_ITEMS)
        print(f"seeded MusicCollection, mutant_data and {GENERATED_ITEMS:,} items of demo_all_types "
              f"in {time.monotonic() - started:.0f} s", flush=True)
        (REPO_ROOT / "reports").mkdir(exist_ok=True)
        _run("migrate", "--config", "configs/local.yaml", "--report", "reports/demo.json")
        # Prove the copy the way a user would: both ways, item by item, renames honoured.
        print("validating; the local stand-in (moto) scans slowly, so this takes a few minutes", flush=True)
        _run("validate", "--config", "configs/local.yaml", "--report", "reports/demo-validate.json")
        print(f"reports: {REPO_ROOT / 'reports' / 'demo.json'}, {REPO_ROOT / 'reports' / 'demo-validate.json'}")


if __name__ == "__main__":
    main()
