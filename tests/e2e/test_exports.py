"""DynamoDB exports in S3 as the bulk copy's source, against real servers: DynamoDB Local
(the live table, described but not scanned), moto's S3 (the exports, written by the test
in AWS's layout) and the Alternator front over moto (the target)."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testbed import seed
from testbed.exports import s3_client, write_full_export, write_incremental_export
from tests.support.cli_runs import (alternator_target, error_lines, interrupt, items_copied, run_cli, start_script,
                                    unique, write_config)
from tests.support.stores import s3_store
from transforms.items.ddb_json import decode_item
from transforms.state import bulk_checkpoints

pytestmark = pytest.mark.integration


def _key(item: dict) -> tuple:
    return item["pk"]["S"], item["sk"]["N"]


def _by_key(items) -> dict:
    return {_key(item): seed.canonical(item) for item in items}


@pytest.fixture
def bucket(alternator, monkeypatch):
    """A fresh bucket on moto's S3 for the exports and the run's state, readable from here."""
    store = s3_store(alternator.moto.endpoint)
    store.use_here(monkeypatch)
    return store


def _micros() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1_000_000)


def _change_round(source: str, table: str, puts: list[dict], deletes: list[dict]) -> list[dict]:
    """Apply puts and deletes to the live table; the changes an incremental export holds for them
    (per key its state after the round: the new image, or none when deleted)."""
    client = seed.client_for(source)
    key_of = {"pk", "sk"}
    touched = {}
    for item in puts:
        keys = {k: v for k, v in item.items() if k in key_of}
        old = client.get_item(TableName=table, Key=keys, ConsistentRead=True).get("Item")
        client.put_item(TableName=table, Item=item)
        touched[_key(item)] = {"keys": keys, "old": old}
    for keys in deletes:
        old = client.get_item(TableName=table, Key=keys, ConsistentRead=True).get("Item")
        client.delete_item(TableName=table, Key=keys)
        touched.setdefault(_key(keys), {"keys": keys, "old": old})
    changes = []
    for change in touched.values():
        new = client.get_item(TableName=table, Key=change["keys"], ConsistentRead=True).get("Item")
        changes.append({**change, "new": new, "micros": _micros()})
    return changes


def _changed(i: int, label: str) -> dict:
    return {**seed.all_types_item(i), "name": {"S": f"{label} {i}"}, "extra": {"NS": [str(i), "0.5"]}}


def _keys(i: int) -> dict:
    item = seed.all_types_item(i)
    return {"pk": item["pk"], "sk": item["sk"]}


def test_full_and_incremental_exports_give_the_exported_state_not_the_live_one(dynamodb_local, alternator_clean,
                                                                              tmp_path, bucket):
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    name = bucket.root.split("/")[2]
    table = unique("exported")
    seed.seed_all_types(source, table, count=600)
    t0 = datetime.now(timezone.utc)
    full = write_full_export(s3, name, "exports", seed.scan_all(source, table), files=4, export_time=t0)
    # Two rounds of changes, each exported incrementally: updates, deletes, new keys, a key
    # changed in both rounds (the later wins), a deleted key put back, a new key deleted.
    first = _change_round(source, table, [_changed(i, "first") for i in range(30)] +
                          [_changed(1000 + i, "new") for i in range(10)], [_keys(i) for i in range(30, 50)])
    t1 = datetime.now(timezone.utc)
    second = _change_round(source, table, [_changed(i, "second") for i in range(10)] + [_changed(30, "back")],
                           [_keys(1000 + i) for i in range(5)] + [_keys(10)])
    t2 = datetime.now(timezone.utc)
    incremental = [write_incremental_export(s3, name, "exports", first, start=t0 - timedelta(seconds=1), end=t1),
                   write_incremental_export(s3, name, "exports", second, start=t1, end=t2, view="NEW_IMAGE")]
    shared = s3.list_objects_v2(Bucket=name, Prefix="exports/AWSDynamoDB/data/")["Contents"]
    assert len(shared) == 4  # both incremental exports' files, side by side in AWS's shared data folder
    expected = _by_key(seed.scan_all(source, table))
    assert len(expected) == 600 - 20 + 10 + 1 - 5 - 1
    # Changes no export holds: the target must not get them.
    client = seed.client_for(source)
    client.put_item(TableName=table, Item={**seed.all_types_item(9999), "pk": {"S": "live-only"}})
    client.put_item(TableName=table, Item=_changed(100, "live"))
    client.delete_item(TableName=table, Key=_keys(101))

    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "export": full, "incremental_exports": incremental}],
                          scan={"page_size": 70}, **bucket.config_sections())
    planned = run_cli("plan", "--config", str(config))
    assert planned.exit_code == 0, planned.output
    assert f"from export {full.rstrip('/')} (not scanned)" in planned.output
    assert f"full, as of {t0.strftime('%Y-%m-%dT%H:%M:%S')}" in planned.output
    assert "4 data files, 600 items" in planned.output
    assert f"then incremental {incremental[1].rstrip('/')}" in planned.output
    assert "NEW_AND_OLD_IMAGES" in planned.output and f"2 data files, {len(second)} changes" in planned.output

    result = run_cli("migrate", "--config", str(config), "--no-progress", "--report", str(tmp_path / "r.json"))

    assert result.exit_code == 0, result.output
    assert _by_key(seed.scan_all(alternator_clean.url, table)) == expected
    assert json.loads((tmp_path / "r.json").read_text())["tables"][table]["read"] == 600
    assert bulk_checkpoints.progress(bucket.checkpoint_dir, table) == bulk_checkpoints.TableProgress(4, 4, 600)


def _export_of(source: str, table: str, s3, bucket, count: int, files: int) -> str:
    seed.seed_all_types(source, table, count=count)
    return write_full_export(s3, bucket.root.split("/")[2], "exports", seed.scan_all(source, table), files=files)


def _object_key(folder: str, name: str) -> tuple[str, str]:
    bucket, _, prefix = folder[len("s3://"):].partition("/")
    return bucket, prefix.rstrip("/") + "/" + name


def test_manifests_that_disagree_stop_the_run_before_anything_is_written(dynamodb_local, alternator_clean,
                                                                         tmp_path, bucket):
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    table = unique("mismatch")
    full = _export_of(source, table, s3, bucket, 90, 3)
    name, key = _object_key(full, "manifest-summary.json")
    summary = json.loads(s3.get_object(Bucket=name, Key=key)["Body"].read())
    s3.put_object(Bucket=name, Key=key, Body=json.dumps({**summary, "itemCount": 91}).encode())
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table, "export": full}],
                          **bucket.config_sections())

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 2, result.output
    line, = error_lines(result.output)
    assert f"{full}manifest-files.json: its data files hold 90 items, but {full}manifest-summary.json says 91" in line
    assert table not in seed.table_names(alternator_clean.url)  # nothing created
    assert bulk_checkpoints.progress(bucket.checkpoint_dir, table) is None

    # A data file the manifest lists but the export folder lacks.
    s3.put_object(Bucket=name, Key=key, Body=json.dumps(summary).encode())
    manifest_name, manifest_key = _object_key(full, "manifest-files.json")
    first = json.loads(s3.get_object(Bucket=manifest_name, Key=manifest_key)["Body"].read().splitlines()[0])
    s3.delete_object(Bucket=name, Key=first["dataFileS3Key"])
    result = run_cli("plan", "--config", str(config))
    assert result.exit_code == 2, result.output
    line, = error_lines(result.output)
    assert f"{first['dataFileS3Key'].rsplit('/', 1)[1]} is listed in {full}manifest-files.json but does not exist" \
        in line


def test_a_data_file_that_does_not_match_its_manifest_stops_the_run_and_is_not_recorded(
        dynamodb_local, alternator_clean, tmp_path, bucket):
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    table = unique("damaged")
    full = _export_of(source, table, s3, bucket, 120, 3)
    name, manifest_key = _object_key(full, "manifest-files.json")
    entries = [json.loads(line) for line in s3.get_object(Bucket=name, Key=manifest_key)["Body"].read().splitlines()]
    damaged = entries[1]["dataFileS3Key"]
    body = gzip.decompress(s3.get_object(Bucket=name, Key=damaged)["Body"].read())
    s3.put_object(Bucket=name, Key=damaged, Body=gzip.compress(body.replace(b'"S": "cat-', b'"S": "dog-')))
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table, "export": full}],
                          **bucket.config_sections())

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 4, result.output
    line = error_lines(result.output)[0]
    assert f"data file s3://{name}/{damaged}: its MD5 is" in line and "its manifest says" in line
    done = {r.segment for r in bulk_checkpoints.list_ranges(bucket.checkpoint_dir, table) if r.end == "end"}
    assert 1 not in done
    target_items = seed.scan_all(alternator_clean.url, table)
    assert not any(item["category"]["S"].startswith("dog-") for item in target_items)  # nothing of it written

    # The same lines under a correct checksum but one line short of the manifest's count.
    lines = body.splitlines(keepends=True)
    short = gzip.compress(b"".join(lines[:-1]))
    s3.put_object(Bucket=name, Key=damaged, Body=short)
    entries[1]["md5Checksum"] = base64.b64encode(hashlib.md5(short).digest()).decode()
    s3.put_object(Bucket=name, Key=manifest_key, Body="".join(json.dumps(e) + "\n" for e in entries).encode())

    result = run_cli("migrate", "--config", str(config), "--no-progress", "--resume")

    assert result.exit_code == 4, result.output
    assert (f"data file s3://{name}/{damaged} holds {len(lines) - 1} items, its manifest says {len(lines)}"
            in error_lines(result.output)[0])
    done = {r.segment for r in bulk_checkpoints.list_ranges(bucket.checkpoint_dir, table) if r.end == "end"}
    assert 1 not in done  # its pages before the last may be written; the file is not recorded as read


def test_a_page_too_large_for_the_target_is_split_not_dead_lettered(dynamodb_local, alternator_clean, tmp_path,
                                                                    bucket):
    """A page of export lines makes requests over what the target takes (here a limit lowered
    to 1 MiB, as a proxy in front of Alternator might have; Alternator's own is 16 MiB, and the
    writer keeps under it: tests/dynamo/test_request_size.py): the 413s split the batches,
    nothing goes to the dead-letter folder."""
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    table = unique("large")
    seed.create_table(source, table, **seed.keyed_by("pk"))  # described only: the items come from the export
    items = [{"pk": {"S": f"k{i:03}"}, "blob": {"B": os.urandom(100_000)}} for i in range(40)]
    full = write_full_export(s3, bucket.root.split("/")[2], "exports", items, files=1)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table, "export": full}],
                          **bucket.config_sections())
    alternator_clean.front.limit_request_bytes(1 << 20)

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 0, result.output
    assert alternator_clean.front.stats()["requests_too_large"] > 0
    assert sorted(map(seed.canonical, seed.scan_all(alternator_clean.url, table))) == \
        sorted(map(seed.canonical, items))
    assert not list((tmp_path / "dead-letter").rglob("*.jsonl"))


def test_a_killed_copy_resumes_by_data_file_and_line(dynamodb_local, alternator_clean, tmp_path, bucket):
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    table = unique("resumed")
    full = _export_of(source, table, s3, bucket, 900, 3)
    # Slow writes, one request at a time: the run is still busy when it is killed.
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.3, ops=["BatchWriteItem"])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table, "export": full}],
                          scan={"page_size": 50}, write={"concurrency": 1}, checkpoint_interval_seconds=0.05,
                          **bucket.config_sections())
    process = start_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path, env=bucket.env)
    interrupt(process, lambda: items_copied(bucket.checkpoint_dir, table) >= 200)
    at_kill = bulk_checkpoints.progress(bucket.checkpoint_dir, table)
    recorded = at_kill.items
    assert 200 <= recorded < 900  # the run was cut short
    partly_read = recorded - 300 * at_kill.segments_done  # items of files not finished
    alternator_clean.front.set_faults()

    result = run_cli("migrate", "--config", str(config), "--resume", "--no-progress", "--report",
                     str(tmp_path / "r.json"))

    assert result.exit_code == 0, result.output
    read = json.loads((tmp_path / "r.json").read_text())["tables"][table]["read"]
    assert 900 - recorded <= read < 900  # only what was not recorded (and pages in flight) is read again
    if partly_read:  # an unfinished file continued from its first unwritten line, not from its start
        assert read < 900 - 300 * at_kill.segments_done
    assert seed.assert_same_items(source, alternator_clean.url, table) == 900
    assert bulk_checkpoints.progress(bucket.checkpoint_dir, table) == bulk_checkpoints.TableProgress(3, 3, 900)


def test_streams_after_an_export_replicate_from_the_oldest_record(dynamodb_local, alternator_clean, tmp_path,
                                                                   bucket):
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    table = unique("followed")
    seed.create_table(source, table, **seed.STREAMED_TABLE)
    seed.stream_changes(source, table, 0, 40)
    items = seed.scan_all(source, table)
    stale = write_full_export(s3, bucket.root.split("/")[2], "exports", items, files=2,
                              export_time=datetime.now(timezone.utc) - timedelta(hours=25))
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table, "export": stale}],
                          **bucket.config_sections())

    result = run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress")

    assert result.exit_code == 2, result.output
    line, = error_lines(result.output)
    assert "ends at" in line and "before the changes its capture holds (since" in line
    assert "start `alternator-migrate capture` before the next export" in line
    assert table not in seed.table_names(alternator_clean.url)

    fresh = write_full_export(s3, bucket.root.split("/")[2], "exports", items, files=2)
    seed.stream_changes(source, table, 40, 20)  # after the export: only the stream has them
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table, "export": fresh}],
                          **bucket.config_sections())

    result = run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress")

    assert result.exit_code == 0, result.output
    assert seed.assert_same_items(source, alternator_clean.url, table) == 60


def test_parquet_export_and_back_every_type(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("parquet")
    seed.seed_all_types(source, table, count=700)
    folder = tmp_path / "parquet"
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 3, "page_size": 100})

    result = run_cli("export", "--config", str(config), "--to", str(folder))

    assert result.exit_code == 0, result.output
    assert f"{table}: 700 items in 3 Parquet files under {folder / table}" in result.output
    manifest = json.loads((folder / table / "manifest.json").read_text())
    assert manifest["layout_version"] == 1 and manifest["item_count"] == 700
    assert manifest["key_schema"] == [{"name": "pk", "type": "S", "key_type": "HASH"},
                                      {"name": "sk", "type": "N", "key_type": "RANGE"}]
    # Plain pyarrow reads the documented layout: the key columns, then the item as DynamoDB JSON.
    files = sorted((folder / table).glob("part-*.parquet"))
    assert [f.name for f in files] == [f["path"] for f in manifest["files"]]
    data = pq.read_table(files)
    assert data.schema.names == ["pk", "sk", "item"]
    assert [data.schema.field(n).type for n in data.schema.names] == [pa.string()] * 3
    items = [decode_item(json.loads(text)) for text in data.column("item").to_pylist()]
    assert sorted(map(seed.canonical, items)) == sorted(map(seed.canonical, seed.scan_all(source, table)))
    assert data.column("sk").to_pylist() == [item["sk"]["N"] for item in items]

    back = write_config(tmp_path, source, alternator_target(alternator_clean),
                        [{"source": table, "parquet": str(folder / table)}], scan={"page_size": 64})
    planned = run_cli("plan", "--config", str(back))
    assert planned.exit_code == 0, planned.output
    assert f"from Parquet export {folder / table} (not scanned): 3 files, 700 items" in planned.output

    result = run_cli("migrate", "--config", str(back), "--no-progress")

    assert result.exit_code == 0, result.output
    assert run_cli("validate", "--config", str(config)).exit_code == 0
    assert seed.assert_same_items(source, alternator_clean.url, table) == 700

    # The target exported the same way holds the same items.
    result = run_cli("export", "--config", str(config), "--to", str(tmp_path / "from-target"), "--from-target")
    assert result.exit_code == 0, result.output
    again = pq.read_table(sorted((tmp_path / "from-target" / table).glob("part-*.parquet")))
    assert sorted(seed.canonical(decode_item(json.loads(text))) for text in again.column("item").to_pylist()) == \
        sorted(map(seed.canonical, items))
    result = run_cli("export", "--config", str(config), "--to", str(folder))
    assert result.exit_code == 2 and error_lines(result.output) == [
        f"error: {folder / table} already holds files; export into an empty folder"]


def test_an_interrupted_incremental_step_is_applied_on_resume(dynamodb_local, alternator_clean, tmp_path, bucket):
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    name = bucket.root.split("/")[2]
    table = unique("increment")
    full = _export_of(source, table, s3, bucket, 60, 3)
    t0 = datetime.now(timezone.utc)
    changes = _change_round(source, table, [_changed(i, "changed") for i in range(5)], [_keys(5)])
    incremental = write_incremental_export(s3, name, "exports", changes, start=t0 - timedelta(minutes=1),
                                           end=datetime.now(timezone.utc))
    expected = _by_key(seed.scan_all(source, table))
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "export": full, "incremental_exports": [incremental]}],
                          **bucket.config_sections())
    assert run_cli("migrate", "--config", str(config), "--no-progress").exit_code == 0
    assert _by_key(seed.scan_all(alternator_clean.url, table)) == expected
    # As if the run had died after the full export was written: the incremental step not recorded,
    # the target back to the full export's state for the changed keys.
    applied = f"{bucket.checkpoint_dir}/bulk/{table}/incremental-applied.json"
    s3.delete_object(Bucket=name, Key=applied.split(f"s3://{name}/", 1)[1])
    target = seed.client_for(alternator_clean.url)
    for i in range(6):
        target.put_item(TableName=table, Item=seed.all_types_item(i))

    plain = run_cli("migrate", "--config", str(config), "--no-progress")
    assert plain.exit_code == 2 and "did not finish; run the same command with --resume" in plain.output

    result = run_cli("migrate", "--config", str(config), "--no-progress", "--resume", "--report",
                     str(tmp_path / "r.json"))

    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "r.json").read_text())["tables"][table]
    assert figures["read"] == 0 and figures["written"] == 6  # no data file again: the 6 changes only
    assert _by_key(seed.scan_all(alternator_clean.url, table)) == expected


def test_skip_expired_leaves_out_what_the_ttl_would_delete_in_full_and_incremental_exports(
        dynamodb_local, alternator_clean, tmp_path, bucket):
    """The export files are written by the test, so they hold expired items whatever DynamoDB
    Local does with its own copies; the live table is only described (its TTL setting)."""
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    name = bucket.root.split("/")[2]
    table = unique("expiring")
    seed.seed_all_types(source, table, count=4)  # TTL on `expires_at`
    now = int(datetime.now(timezone.utc).timestamp())
    past, future = {"N": str(now - 3600)}, {"N": str(now + 86400)}
    items = [{**seed.all_types_item(i), "expires_at": past if i % 3 == 0 else future} for i in range(24)]
    t0 = datetime.now(timezone.utc)
    full = write_full_export(s3, name, "exports", items, files=2, export_time=t0)
    changes = [  # a live item expires, an expired one is renewed, two new items: one expired, one live
        {"keys": _keys(1), "old": items[1], "new": {**items[1], "expires_at": past}, "micros": _micros()},
        {"keys": _keys(0), "old": items[0], "new": {**items[0], "expires_at": future}, "micros": _micros()},
        {"keys": _keys(100), "old": None, "new": {**seed.all_types_item(100), "expires_at": past},
         "micros": _micros()},
        {"keys": _keys(101), "old": None, "new": {**seed.all_types_item(101), "expires_at": future},
         "micros": _micros()},
    ]
    incremental = [write_incremental_export(s3, name, "exports", changes, start=t0 - timedelta(seconds=1),
                                            end=datetime.now(timezone.utc))]
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "export": full, "incremental_exports": incremental,
                            "skip_expired": True}], **bucket.config_sections())

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 0, result.output
    live = [item for i, item in enumerate(items) if i % 3 and i != 1] + [changes[1]["new"], changes[3]["new"]]
    assert _by_key(seed.scan_all(alternator_clean.url, table)) == _by_key(live)
