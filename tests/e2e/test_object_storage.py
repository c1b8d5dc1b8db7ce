"""Checkpoints, dead letters and findings on s3:// (moto's S3) and gs:// (the GCS emulator)
give the same results as on a local folder (dead letters on Beam's Dask runner too); a
bucket that cannot be used stops the run before anything is written (exit 2, naming the
bucket)."""
from __future__ import annotations

import json
import os
import signal
import time

import boto3
import pytest
from apache_beam.io.filesystems import FileSystems

from testbed import seed
from testbed.ports import free_port
from testbed.servers import MotoServer
from tests.support.cli_runs import (alternator_target, error_lines, run_cli, run_script, start_script, unique,
                                    write_config)
from tests.support.stores import S3_KEYS, Store, gcs_store, local_store, s3_store, unique_bucket
from transforms.findings import read_findings
from transforms.items.ddb_json import decode_item
from transforms.state import bulk_checkpoints, stream_checkpoints
from transforms.state.files import matching, read_bytes

pytestmark = pytest.mark.integration


def _store(kind: str, request, tmp_path, alternator, monkeypatch) -> Store:
    """A fresh place of that kind for the run's state, readable from this test process."""
    if kind == "local":
        chosen = local_store(tmp_path)
    elif kind == "s3":
        chosen = s3_store(alternator.moto.endpoint)
    else:
        chosen = gcs_store(request.getfixturevalue("gcs_emulator"))
    chosen.use_here(monkeypatch)
    return chosen


@pytest.fixture(params=["local", "s3", "gs"])
def store(request, tmp_path, alternator, monkeypatch) -> Store:
    return _store(request.param, request, tmp_path, alternator, monkeypatch)


@pytest.fixture(params=["s3", "gs"])
def object_store(request, tmp_path, alternator, monkeypatch) -> Store:
    return _store(request.param, request, tmp_path, alternator, monkeypatch)


def test_a_killed_copy_resumes_from_its_checkpoints(dynamodb_local, alternator_clean, tmp_path, store):
    source = dynamodb_local.endpoint
    table = unique("resumed")
    seed.seed_all_types(source, table, count=1000)
    # Slow writes, one request at a time: the run is still busy when it is killed.
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.3, ops=["BatchWriteItem"])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 2, "page_size": 50}, write={"concurrency": 1},
                          **store.config_sections(direct_num_workers=2, direct_running_mode="multi_processing"))
    process = start_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path, env=store.env)
    try:
        deadline = time.monotonic() + 180
        while (bulk_checkpoints.progress(store.checkpoint_dir, table) or bulk_checkpoints.TableProgress(0, 0, 0)
               ).items < 250:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    recorded = bulk_checkpoints.progress(store.checkpoint_dir, table).items
    assert 250 <= recorded < 1000  # the run was cut short
    alternator_clean.front.set_faults()

    result = run_cli("migrate", "--config", str(config), "--resume", "--report", str(tmp_path / "r.json"))

    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "r.json").read_text())["tables"][table]
    read = figures["read"]
    # Only what was not recorded is read again; pages in flight at the kill (recorded past
    # a gap) may be read twice.
    assert 1000 - recorded <= read < 1000
    assert seed.assert_same_items(source, alternator_clean.url, table) == 1000
    # Progress, read from the store: what the resumed run found, its final line, and the checkpoints.
    assert f"{table}: resuming; {recorded:,} items were copied before this run" in result.output
    assert f"  {table}: {figures['written']:,} items in " in result.output and "segments 2/2" in result.output
    assert bulk_checkpoints.progress(store.checkpoint_dir, table) == bulk_checkpoints.TableProgress(2, 2, 1000)


@pytest.mark.parametrize("runner, kind", [("local", "s3"), ("local", "gs"), ("dask", "local")])
def test_dead_letters_are_written_and_counted(dynamodb_local, alternator_clean, alternator, tmp_path, monkeypatch,
                                              request, runner, kind):
    """On Beam's Dask runner the counts come from the letters' files, as it keeps no metrics."""
    store = _store(kind, request, tmp_path, alternator, monkeypatch)
    engine = {} if runner == "local" else {"runner": "dask",
                                           "dask_client_address": request.getfixturevalue("dask_cluster").address}
    source = dynamodb_local.endpoint
    table = unique("doomed")
    seed.seed_all_types(source, table, count=120)
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 3}, write={"max_attempts": 2}, **store.config_sections(**engine))

    result = run_cli("migrate", "--config", str(config), "--no-progress", "--report", str(tmp_path / "r.json"))

    alternator_clean.front.set_faults()
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    folder = report["dead_letter"]["dir"]
    assert folder.startswith(store.dead_letter_dir + "/run-")
    assert report["dead_letter"]["count"] == 120
    assert {k: report["tables"][table][k] for k in ("read", "written", "dead_lettered")} == {
        "read": 120, "written": 0, "dead_lettered": 120}
    assert f"120 items could not be written; they are in {folder}" in result.output
    lines = [json.loads(line) for path in matching(FileSystems.join(folder, table, "*.jsonl"))
             for line in read_bytes(path).decode().splitlines()]
    assert sorted(seed.canonical(decode_item(line["item"])) for line in lines) == seed.table_items(source, table)


def test_validation_findings_match_a_local_folders(dynamodb_local, alternator_clean, tmp_path, object_store):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("checked")
    seed.seed_all_types(source, table, count=300)
    tables = [{"source": table}]
    (tmp_path / "local").mkdir()
    local = write_config(tmp_path / "local", source, alternator_target(alternator_clean), tables,
                         **local_store(tmp_path).config_sections())
    remote = write_config(tmp_path, source, alternator_target(alternator_clean), tables,
                          **object_store.config_sections())
    assert run_cli("migrate", "--config", str(remote), "--no-progress").exit_code == 0
    client = seed.client_for(target)
    items = sorted(seed.scan_all(target, table), key=seed.canonical)
    for item in items[:2]:
        client.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    client.put_item(TableName=table, Item={**items[2], "name": {"S": "changed"}})
    client.put_item(TableName=table, Item={**items[3], "pk": {"S": "extra"}})

    reports = {}
    for name, config in (("local", local), ("remote", remote)):
        result = run_cli("validate", "--config", str(config), "--report", str(tmp_path / f"{name}.json"))
        assert result.exit_code == 1, result.output
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())

    counts = reports["remote"]["tables"][table]
    assert (counts["matched"], counts["missing"], counts["extra"], counts["different"]) == (297, 2, 1, 1)
    findings_dir = reports["remote"]["findings_dir"]
    assert findings_dir.startswith(object_store.checkpoint_dir + "/validate/run-")
    assert sorted(f["kind"] for f in read_findings(findings_dir)) == ["different", "extra", "missing", "missing"]
    for report in reports.values():
        del report["findings_dir"], report["duration_seconds"]
    assert reports["remote"] == reports["local"]


def test_replication_resumes_from_shard_checkpoints(dynamodb_local, alternator_clean, tmp_path, object_store):
    source = dynamodb_local.endpoint
    table = unique("streamed")
    seed.create_table(source, table, **seed.STREAMED_TABLE)
    first = seed.stream_changes(source, table, 0, 40)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          **object_store.config_sections())
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up",
                   "--no-progress").exit_code == 0
    applied = sum(s.applied for s in stream_checkpoints.all_shards(object_store.checkpoint_dir, table).values())
    assert applied == first
    second = seed.stream_changes(source, table, 40, 30)

    result = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert result.exit_code == 0, result.output
    shards = stream_checkpoints.all_shards(object_store.checkpoint_dir, table)
    assert shards and all(s.sequence_number for s in shards.values())
    # The second run started after the last applied change: it applied the new ones only.
    assert sum(s.applied for s in shards.values()) == first + second
    assert seed.assert_same_items(source, alternator_clean.url, table) == 70


@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_a_missing_bucket_stops_the_run_before_anything_is_written(dynamodb_local, alternator_clean, tmp_path,
                                                                    request, kind):
    table = unique("nobucket")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=5)
    bucket = unique_bucket("missing")
    store = (s3_store(alternator_clean.moto.endpoint, bucket, create=False) if kind == "s3"
             else gcs_store(request.getfixturevalue("gcs_emulator"), bucket, create=False))
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                          [{"source": table}], **store.config_sections())

    completed = run_script("migrate", "--config", str(config), cwd=tmp_path, env=store.env, timeout=120)

    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    line, = error_lines(completed.stderr)
    assert f"checkpoint_dir: {'S3' if kind == 's3' else 'GCS'} bucket {bucket}" in line and "does not exist" in line
    assert table not in seed.table_names(alternator_clean.url)  # nothing created


def test_s3_without_permission_or_endpoint_stops_the_run(dynamodb_local, alternator_clean, tmp_path):
    """moto checks IAM here: a user with no policy may not use the bucket."""
    table = unique("denied")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=5)
    with MotoServer(authorized_after=4) as s3:  # the start-up probe, then three set-up calls
        setup = dict(endpoint_url=s3.endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test")
        boto3.client("s3", **setup).create_bucket(Bucket="locked-state")
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        options = {**S3_KEYS, "s3_endpoint_url": s3.endpoint, "s3_access_key_id": key["AccessKeyId"],
                   "s3_secret_access_key": key["SecretAccessKey"]}
        denied = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                              [{"source": table}], **Store("s3", "s3://locked-state/run", options).config_sections())
        started = time.monotonic()
        completed = run_script("migrate", "--config", str(denied), cwd=tmp_path, timeout=120)
    line, = error_lines(completed.stderr)
    assert completed.returncode == 2 and "S3 bucket locked-state" in line and "access denied (HTTP 403)" in line
    assert key["SecretAccessKey"] not in completed.stderr + completed.stdout

    unreachable = {**options, "s3_endpoint_url": f"http://127.0.0.1:{free_port()}"}
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean),
                          [{"source": table}], **Store("s3", "s3://some-bucket/run", unreachable).config_sections())
    completed = run_script("migrate", "--config", str(config), cwd=tmp_path, timeout=120)
    line, = error_lines(completed.stderr)
    assert completed.returncode == 2 and "S3 bucket some-bucket" in line and "cannot be reached" in line
    assert time.monotonic() - started < 60  # not Beam's nine minutes of retries
    assert table not in seed.table_names(alternator_clean.url)
