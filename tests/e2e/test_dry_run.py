"""`--dry-run` builds each command's real Dataflow job from configs/dataflow.yaml on this
machine, with the network cut off outside 127.0.0.0/8 (`tests.support.offline`): a pickling
or translation error would fail here, not in a user's cloud project."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from testbed.servers import REPO_ROOT
from tests.support.cli_runs import error_lines, script_env

DATAFLOW_CONFIG = REPO_ROOT / "configs" / "dataflow.yaml"
# configs/dataflow.yaml reads these from the environment.
CONFIG_ENV = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-secret",
              "ALTERNATOR_USER": "alternator-role-x7", "ALTERNATOR_SALTED_HASH": "not-a-hash"}
BULK = ["Scan/SegmentSpecs [create]", "Scan/SpreadSegments [Reshuffle]", "Scan/ScanSegments [ParDo]",
        "Write/BatchWriteItem [ParDo]"]


def _offline(*args: str, config=DATAFLOW_CONFIG) -> subprocess.CompletedProcess:
    """`alternator-migrate ARGS` from the repository (setup_file: ./setup.py), offline."""
    return subprocess.run([sys.executable, "-m", "tests.support.offline", *args[:1], "--config", str(config),
                           *args[1:]], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                          env=script_env(CONFIG_ENV), stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, jobs, steps", [
    (["migrate"], ["bulk copy: Dataflow job"], BULK),
    (["migrate", "--streams"],
     ["bulk copy: Dataflow job", "replication (one streaming pipeline): Dataflow job"],
     BULK + ["FollowStreams/DiscoverShards [ParDo]", "FollowStreams/OncePerShard [ParDo]",
             "FollowStreams/FollowShard [ParDo]"]),
    (["replicate", "--until-caught-up"], ["replication (one round; the launcher runs rounds until done)"],
     ["Replicate/ShardGroups [create]", "Replicate/ApplyShardGroups [ParDo]"]),
    (["replicate", "--follow"], ["replication (one streaming pipeline): Dataflow job"],
     ["FollowStreams/Tick [composite]", "FollowStreams/FollowShard [ParDo]"]),
    (["validate"], ["validation: Dataflow job"],
     ["ScanSource/ScanSegments [ParDo]", "ScanTarget/ScanSegments [ParDo]", "Compare/GroupByBucket [composite]",
      "Compare/Confirm [ParDo]", "WriteFindings/WriteFindings [ParDo]", "WriteFindings/SumCounts [CombinePerKey]",
      "WriteFindings/WriteCounts [ParDo]"]),
    (["validate", "--sample-rate", "0.01", "--recheck-seconds", "5"], ["validation (a 0.01 sample): Dataflow job"],
     ["Sample/PointReads [ParDo]", "Sample/Recheck [ParDo]", "WriteFindings/WriteCounts [ParDo]"]),
], ids=["migrate", "migrate-streams-follow", "replicate-rounds", "replicate-follow-streaming", "validate",
        "validate-sample-recheck"])
def test_dry_run_builds_the_dataflow_job_offline(args, jobs, steps):
    completed = _offline(*args[:1], "--dry-run", *args[1:])

    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for job in jobs:
        assert job in out
    assert out.count(", built offline, not submitted") == len(jobs)
    for step in steps:
        assert f"  {step}" in out, step
    # Worker settings as Dataflow gets them, the package built from setup_file, where state goes.
    assert "project my-project, region us-central1" in out and "at most 20" in out
    assert "installed on each worker: " in out and "workflow.tar.gz" in out
    assert "gs://my-bucket/alternator-migrate/checkpoints/" in out
    assert "dead letters gs://my-bucket/alternator-migrate/dead-letter/run-<time>/<table>/" in out
    assert ("(streaming), built offline" in out) == ("--streams" in args or "--follow" in args)
    for secret in CONFIG_ENV.values():
        assert secret not in out + completed.stderr


def test_the_offline_guard_refuses_a_real_run(tmp_path):
    """Without --dry-run the command goes online at once, and the guard stops it (so the dry
    runs above did not go online)."""
    config = yaml.safe_load(DATAFLOW_CONFIG.read_text())
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({**config, "target": {"endpoint": "http://127.0.0.1:9"}}))

    completed = _offline("plan", config=path)

    line, = error_lines(completed.stderr)  # plan checks the run's storage first, as migrate does
    assert completed.returncode == 2 and "checkpoint_dir: GCS bucket my-bucket cannot be reached" in line
    assert "offline run: refused to reach storage.googleapis.com" in completed.stderr


def test_dry_run_needs_a_dataflow_config(tmp_path):
    config = yaml.safe_load(DATAFLOW_CONFIG.read_text())
    direct = tmp_path / "direct.yaml"
    direct.write_text(yaml.safe_dump({**config, "pipeline_options": {"runner": "DirectRunner"}}))
    local_state = tmp_path / "local.yaml"
    local_state.write_text(yaml.safe_dump({**config, "checkpoint_dir": str(tmp_path / "checkpoints")}))
    no_temp = tmp_path / "no-temp.yaml"
    no_temp.write_text(yaml.safe_dump({**config, "pipeline_options": {
        k: v for k, v in config["pipeline_options"].items() if k != "temp_location"}}))

    for path, expected in ((direct, "--dry-run builds a Dataflow job"),
                           (local_state, "checkpoint_dir is the local folder"),
                           (no_temp, "Dataflow needs pipeline_options.temp_location")):
        completed = _offline("migrate", "--dry-run", config=path)
        line, = error_lines(completed.stderr)
        assert completed.returncode == 2 and expected in line, completed.stderr
    assert not (tmp_path / "checkpoints" / "bulk").exists()


def test_dry_run_of_tables_read_from_exports_shows_the_export_steps(tmp_path):
    """An export table is read from its files, not scanned; its incremental exports are a second job."""
    config = yaml.safe_load(DATAFLOW_CONFIG.read_text())
    export = "s3://exports/AWSDynamoDB/01234567890123-a1b2c3d4/"
    path = tmp_path / "exports.yaml"
    path.write_text(yaml.safe_dump({**config, "tables": [
        {"source": "orders", "export": export,
         "incremental_exports": ["s3://exports/AWSDynamoDB/01234567890999-e5f6a7b8/"]}]}))

    completed = _offline("migrate", "--dry-run", config=path)

    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert out.count(", built offline, not submitted") == 2
    assert "bulk copy: Dataflow job" in out and "incremental exports (after the bulk copy): Dataflow job" in out
    bulk_steps = out.split("incremental exports")[0]
    assert "  ReadExports/" in bulk_steps and "  Scan/" not in bulk_steps
    assert "  ApplyIncrementalExports/" in out
