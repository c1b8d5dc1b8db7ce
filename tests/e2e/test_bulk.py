"""Bulk migration end to end: DynamoDB Local -> the Alternator front (moto), real CLI.

Every test compares what the target holds with what the source holds, item by item.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from testbed import seed
from testbed.servers import REPO_ROOT, MotoServer
from tests.support.cli_runs import alternator_target, endpoint_target, run_cli, unique, write_config
from transforms.items.ddb_json import decode_item
from transforms.state import bulk_checkpoints

pytestmark = pytest.mark.integration


def _seed_three_tables(source: str, all_types_count: int = 1500) -> dict[str, str]:
    names = {"hash": unique("mutants"), "range": unique("music"), "indexed": unique("all_types")}
    seed.create_table(source, names["hash"], **seed.keyed_by("last_name"))
    seed.put_items(source, names["hash"], seed.MUTANT_ITEMS)
    seed.create_table(source, names["range"], **seed.keyed_by("Artist", sort=("SongTitle", "S")))
    seed.put_items(source, names["range"], seed.MUSIC_ITEMS)
    seed.seed_all_types(source, names["indexed"], count=all_types_count)
    return names


def test_three_tables_every_type_through_localnodes(dynamodb_local, alternator_clean, tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    names = _seed_three_tables(source)
    renames = {"legacy_name": "display_name"}
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [
        {"source": names["hash"]}, {"source": names["range"], "target": names["range"] + "_copy"},
        {"source": names["indexed"], "renames": renames}], scan={"segments": 3, "page_size": 200})

    result = run_cli("migrate", "--config", str(config), "--report", str(tmp_path / "report.json"),
                     "--no-progress")

    assert result.exit_code == 0, result.output
    assert seed.assert_same_items(source, target, names["hash"]) == 3
    assert seed.assert_same_items(source, target, names["range"], names["range"] + "_copy") == 4
    assert seed.assert_same_items(source, target, names["indexed"], renames=renames) == 1500
    # Discovery through /localnodes spread the writes over more than one node.
    writes = alternator_clean.front.stats()["requests_by_address"]
    assert len([address for address, count in writes.items() if count > 0]) > 1
    # The report has the figures per table.
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True
    assert report["tables"][names["indexed"]]["read"] == 1500
    assert report["tables"][names["indexed"]]["written"] == 1500
    assert report["tables"][names["indexed"]]["segments"] == 3
    assert report["tables"][names["hash"]]["written"] == 3


def test_target_table_gets_indexes_ttl_and_key_schema(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("indexed")
    seed.seed_all_types(source, table, count=10)
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "renames": {"score": "points", "expires_at": "ttl"}}])

    result = run_cli("create-tables", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert f"{table}: created" in result.output
    client = seed.client_for(alternator_clean.url)
    description = client.describe_table(TableName=table)["Table"]
    assert description["KeySchema"] == seed.ALL_TYPES_TABLE["KeySchema"]
    gsi, = description["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "by_category"
    assert gsi["Projection"]["ProjectionType"] == "KEYS_ONLY"
    lsi, = description["LocalSecondaryIndexes"]
    # The LSI's range key was renamed with the attribute it indexes.
    assert lsi["KeySchema"][1] == {"AttributeName": "points", "KeyType": "RANGE"}
    assert lsi["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name"]}
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "ttl"
    assert seed.scan_all(alternator_clean.url, table) == []  # create-tables copies no items
    # A second run finds the table and leaves it alone.
    again = run_cli("create-tables", "--config", str(config))
    assert again.exit_code == 0 and f"{table}: already existed" in again.output


def test_throttling_and_server_errors_are_retried(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("faulty")
    seed.seed_all_types(source, table, count=800)
    alternator_clean.front.set_faults(throttle=0.25, server_error=0.15, ops=["BatchWriteItem"], seed=7)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          write={"max_attempts": 30, "max_items_per_batch": 50})

    result = run_cli("migrate", "--config", str(config), "--report", str(tmp_path / "r.json"), "--no-progress")

    assert result.exit_code == 0, result.output
    faults = alternator_clean.front.stats()["faults_injected"]
    assert faults.get("throttle", 0) > 0 and faults.get("server_error", 0) > 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["tables"][table]["retried"] >= faults["throttle"] + faults["server_error"]
    assert seed.assert_same_items(source, alternator_clean.url, table) == 800


def test_dropped_connections_and_unprocessed_items(dynamodb_local, alternator_clean, tmp_path):
    """DynamoDB-style target (plain endpoint, 25-item batches) that drops and half-processes."""
    source = dynamodb_local.endpoint
    table = unique("unprocessed")
    seed.seed_all_types(source, table, count=400)
    alternator_clean.front.set_faults(drop=0.1, unprocessed=0.5, ops=["BatchWriteItem"], seed=3)
    config = write_config(tmp_path, source, endpoint_target(alternator_clean), [{"source": table}],
                          write={"max_attempts": 30})

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 0, result.output
    faults = alternator_clean.front.stats()["faults_injected"]
    assert faults.get("unprocessed", 0) > 0 and faults.get("drop", 0) > 0
    assert alternator_clean.front.stats()["requests_by_address"].get("127.0.0.2", 0) == 0  # no discovery
    assert seed.assert_same_items(source, alternator_clean.url, table) == 400


def test_writes_that_keep_failing_go_to_dead_letter_files(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("doomed")
    seed.seed_all_types(source, table, count=120)
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          write={"max_attempts": 2})

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 1
    assert "120 items could not be written; they are in" in result.output
    files = list((tmp_path / "dead-letter").glob(f"run-*/{table}/*.jsonl"))
    assert files and str(files[0].parent.parent) in result.output
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 120
    assert all("RequestLimitExceeded" in line["error"] and line["table"] == table for line in lines)
    dead = sorted(seed.canonical(decode_item(line["item"])) for line in lines)
    assert dead == seed.table_items(source, table)


def test_two_worker_processes(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("multiproc")
    seed.seed_all_types(source, table, count=1000)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 4, "page_size": 20},
                          pipeline_options={"runner": "DirectRunner", "direct_num_workers": 2,
                                            "direct_running_mode": "multi_processing"})

    result = run_cli("migrate", "--config", str(config), "--report", str(tmp_path / "r.json"), "--no-progress")

    assert result.exit_code == 0, result.output
    assert seed.assert_same_items(source, alternator_clean.url, table) == 1000
    entry = json.loads((tmp_path / "r.json").read_text())["tables"][table]
    assert entry["written"] == 1000  # metrics came back from the worker processes
    # State grows with segments and time, not pages: 50 pages, one object per segment at the end,
    # and a segment's object rewritten at most every 5 s (the default interval) while it is copied.
    assert len(_state_objects(tmp_path / "checkpoints", table)) == 4
    assert 4 <= entry["checkpoint_writes"] <= 4 * (1 + entry["duration_seconds"] / 5)
    assert entry["checkpoint_writes"] < 50


def test_plan_shows_the_run_and_writes_nothing(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("planned")
    seed.seed_all_types(source, table, count=30)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 2})

    result = run_cli("plan", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert f"{table} -> {table} (target would be created)" in result.output
    assert "key: pk S (HASH), sk N (RANGE)" in result.output
    assert "items: ~30" in result.output and "segments: 2" in result.output
    assert "indexes: by_category, by_score" in result.output
    assert table not in seed.table_names(alternator_clean.url)


def _state_objects(checkpoint_dir, table) -> list:
    return list((checkpoint_dir / "bulk" / table).glob("seg-*"))


def test_interrupted_run_resumes_and_redoes_at_most_the_pages_in_flight(dynamodb_local, alternator_clean, tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("resumed")
    seed.seed_all_types(source, table, count=1000)
    # Slow writes, one 50-item request at a time: the run is still busy when it is killed.
    page_size, batch, concurrency = 50, 50, 1
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.3, ops=["BatchWriteItem"])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 2, "page_size": page_size},
                          write={"concurrency": concurrency, "max_items_per_batch": batch},
                          checkpoint_interval_seconds=0.05)
    checkpoint_dir = tmp_path / "checkpoints"
    process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "migrate", "--config", str(config),
                                "--no-progress"], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while (bulk_checkpoints.progress(str(checkpoint_dir), table) or bulk_checkpoints.TableProgress(0, 0, 0)
               ).items < 5 * page_size:
            assert process.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    alternator_clean.front.set_faults()
    time.sleep(0.5)  # requests the server took before the kill finish (they were in flight)
    recorded = bulk_checkpoints.progress(str(checkpoint_dir), table)
    written_before_kill = len(seed.scan_all(target, table))
    assert recorded.items < 1000 and recorded.segments_done < 2  # the run was cut short mid-segment
    assert len(_state_objects(checkpoint_dir, table)) <= 2 * 2  # per segment its range, and one being replaced

    result = run_cli("migrate", "--config", str(config), "--resume", "--report", str(tmp_path / "r.json"),
                     "--no-progress")

    assert result.exit_code == 0, result.output
    read_again = json.loads((tmp_path / "r.json").read_text())["tables"][table]["read"]
    # The resume reads exactly what the checkpoints do not hold ...
    assert read_again == 1000 - recorded.items
    # ... and of what was written before the kill it redoes only the pages still in flight: the
    # writer holds at most 2 x concurrency x batch items, and records each page as it completes.
    in_flight = 2 * concurrency * batch + page_size
    assert written_before_kill - recorded.items <= in_flight
    assert seed.assert_same_items(source, target, table) == 1000
    assert len(_state_objects(checkpoint_dir, table)) <= 2 * 2  # per segment, one object per run that advanced it
    again = run_cli("migrate", "--config", str(config), "--resume", "--report", str(tmp_path / "r2.json"),
                    "--no-progress")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "r2.json").read_text())["tables"][table]["read"] == 0


def test_tags_are_copied_except_the_ones_alternator_rejects(alternator_clean, tmp_path, caplog):
    """DynamoDB Local has no tagging, so a second moto server is the source here."""
    table = unique("tagged")
    with MotoServer() as source:
        seed.create_table(source.endpoint, table, **seed.keyed_by("id"))
        client = seed.client_for(source.endpoint)
        arn = client.describe_table(TableName=table)["Table"]["TableArn"]
        client.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "data"},
                                                   {"Key": "system:write_isolation", "Value": "forbid_rmw"}])
        config = write_config(tmp_path, source.endpoint, alternator_target(alternator_clean), [{"source": table}])

        result = run_cli("create-tables", "--config", str(config))

    assert result.exit_code == 0, result.output
    target = seed.client_for(alternator_clean.url)
    target_arn = target.describe_table(TableName=table)["Table"]["TableArn"]
    assert target.list_tags_of_resource(ResourceArn=target_arn)["Tags"] == [{"Key": "team", "Value": "data"}]
    assert any("not copying tags system:write_isolation" in r.getMessage() for r in caplog.records)


def test_warns_when_the_target_table_always_uses_lwt(dynamodb_local, alternator_clean, tmp_path, caplog):
    source = dynamodb_local.endpoint
    table = unique("lwt")
    definition = seed.keyed_by("id")
    seed.create_table(source, table, **definition)
    seed.create_table(alternator_clean.url, table, **definition)
    target = seed.client_for(alternator_clean.url)
    target.tag_resource(ResourceArn=target.describe_table(TableName=table)["Table"]["TableArn"],
                        Tags=[{"Key": "system:write_isolation", "Value": "always_use_lwt"}])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}])

    result = run_cli("create-tables", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert f"{table}: already existed" in result.output
    assert any("always_use_lwt" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
