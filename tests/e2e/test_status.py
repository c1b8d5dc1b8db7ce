"""`status`: every table's state from the checkpoints alone, run as the installed console script
with a config whose source and target cannot be reached (as from another machine: only the
bucket is shared)."""
from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest
import yaml

from testbed import seed
from tests.support.cli_runs import (alternator_target, interrupt, items_copied, run_cli, run_script, start_script,
                                    unique, write_config)
from tests.support.stores import Store, gcs_store, local_store, s3_store
from transforms.errors import ChangesLost
from transforms.state import bulk_checkpoints, change_spool, stream_checkpoints

pytestmark = pytest.mark.integration

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(params=["local", "s3", "gs"])
def store(request, tmp_path, alternator, monkeypatch) -> Store:
    if request.param == "local":
        chosen = local_store(tmp_path)
    elif request.param == "s3":
        chosen = s3_store(alternator.moto.endpoint)
    else:
        chosen = gcs_store(request.getfixturevalue("gcs_emulator"))
    chosen.use_here(monkeypatch)
    return chosen


def _from_elsewhere(config: Path, tmp_path: Path) -> Path:
    """The same config with a source and a target that cannot be reached."""
    raw = yaml.safe_load(config.read_text())
    raw["source"]["endpoint"] = NOWHERE
    raw["target"] = {"endpoint": NOWHERE}
    path = tmp_path / "elsewhere.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_status_reads_a_copy_and_its_replication_from_the_checkpoints(dynamodb_local, alternator_clean, tmp_path,
                                                                      store):
    source = dynamodb_local.endpoint
    table, untouched = unique("status_streamed"), unique("status_untouched")
    seed.create_table(source, table, **seed.STREAMED_TABLE)
    earlier = seed.stream_changes(source, table, 0, 30)  # 30 items before the copy
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [table, untouched],
                          **store.config_sections())
    seed.create_table(source, untouched, **seed.STREAMED_TABLE)
    assert run_cli("migrate", "--config", str(config), "--tables", table, "--streams", "--until-caught-up",
                   "--no-progress").exit_code == 0
    changes = seed.stream_changes(source, table, 30, 20)
    assert run_cli("replicate", "--config", str(config), "--tables", table).exit_code == 0
    elsewhere = _from_elsewhere(config, tmp_path)

    text = run_script("status", "--config", str(elsewhere), cwd=tmp_path, env=store.env, timeout=120)
    as_json = run_script("status", "--config", str(elsewhere), "--output", "json", cwd=tmp_path, env=store.env,
                         timeout=120)

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[:2] == [f"checkpoints: {store.checkpoint_dir}", f"dead letters: {store.dead_letter_dir}"]
    at = lines.index(f"{table} -> {table}")
    assert re.fullmatch(r"  copy: finished, 1/1 segments, 30 of ~30 items \(100%\), [\d,]+ items/s on average since "
                        r"its latest run started \d+ s ago; last checkpoint \d+ s ago", lines[at + 1]), lines
    # Stream records' creation times are whole minutes (see docs/guide.md): the ages are within a minute.
    assert re.fullmatch(rf"  replication: {earlier + changes:,} changes applied, 1 open shard of 1; newest applied "
                        r"change made \d+ (s|min) ago, lag at most \d+ (s|min); checkpoints written \d+ s ago",
                        lines[at + 2]), lines
    assert lines[lines.index(f"{untouched} -> {untouched}") + 1] == "  nothing recorded yet"
    assert as_json.returncode == 0, as_json.stderr
    found = json.loads(as_json.stdout)["tables"]
    assert found[table]["copy"]["items"] == 30 and found[table]["copy"]["segments_done"] == 1
    assert found[table]["copy"]["expected_items"] == 30 and found[table]["copy"]["expected_exact"] is False
    assert found[table]["replication"]["changes_applied"] == earlier + changes
    assert found[table]["replication"]["open_shards"] == 1
    assert 0 <= found[table]["replication"]["lag_bound_seconds"] < 180
    assert found[table]["dead_letters"] == {"letters": 0, "resolved": 0}
    assert found[untouched]["copy"] is None and found[untouched]["replication"] is None


def test_status_of_an_interrupted_copy_and_a_capture(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    copied, captured = unique("status_half"), unique("status_captured")
    seed.seed_all_types(source, copied, count=600)
    seed.create_table(source, captured, **seed.STREAMED_TABLE)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [copied, captured],
                          scan={"page_size": 50, "segments": 2}, write={"concurrency": 1, "max_items_per_batch": 25},
                          checkpoint_interval_seconds=1)
    capture = start_script("capture", "--config", str(config), "--tables", captured, cwd=tmp_path)
    seed.stream_changes(source, captured, 0, 10)
    interrupt(capture, lambda: change_spool.chunks(str(tmp_path / "checkpoints"), captured), sig=signal.SIGINT)
    assert capture.returncode == 130
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.2, ops=["BatchWriteItem"])
    try:
        process = start_script("migrate", "--config", str(config), "--tables", copied, "--no-progress", cwd=tmp_path)
        interrupt(process, lambda: items_copied(tmp_path / "checkpoints", copied) > 0, sig=signal.SIGKILL)
    finally:
        alternator_clean.front.set_faults()
    before = bulk_checkpoints.progress(str(tmp_path / "checkpoints"), copied)

    completed = run_script("status", "--config", str(_from_elsewhere(config, tmp_path)), cwd=tmp_path, timeout=120)

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    share = 100 * before.items // 600
    assert re.fullmatch(rf"  copy: not finished, {before.segments_done}/2 segments, {before.items:,} of ~600 items "
                        rf"\({share}%\), [\d,]+ items/s on average since its latest run started \d+ s ago; last "
                        rf"checkpoint \d+ s ago", lines[lines.index(f"{copied} -> {copied}") + 1]), lines
    assert re.fullmatch(r"  capture: covers changes since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, [1-9]\d* chunks "
                        r"\([\d.]+ MiB\), 0 applied", lines[lines.index(f"{captured} -> {captured}") + 1]), lines


def test_dead_letters_and_a_stopped_shard_make_status_exit_1(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("status_doomed")
    seed.seed_all_types(source, table, count=40)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [table], write={"max_attempts": 2})
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])
    try:
        assert run_cli("migrate", "--config", str(config), "--no-progress").exit_code == 1
    finally:
        alternator_clean.front.set_faults()
    # A stop note as a shard reader leaves it (no test server can trim a stream under a live reader).
    stream_checkpoints.write_stop(str(tmp_path / "checkpoints"), table,
                                  ChangesLost(f"{table}: shard s-1 was trimmed before it was read"))

    completed = run_script("status", "--config", str(_from_elsewhere(config, tmp_path)), cwd=tmp_path, timeout=120)

    assert completed.returncode == 1, completed.stderr
    lines = completed.stdout.splitlines()
    at = lines.index(f"{table} -> {table}")
    assert lines[at + 2:at + 4] == [f"  stopped (exit 3): {table}: shard s-1 was trimmed before it was read",
                                    "  dead letters: 40 unresolved of 40 (see `retry-dead-letter`)"]
