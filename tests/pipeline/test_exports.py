"""DynamoDB exports in S3 as the bulk copy's source, against real servers: DynamoDB Local
(the live table, described but not scanned), moto's S3 (the exports, written by the test
in AWS's layout) and the Alternator front over moto (the target)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.support import seed
from tests.support.cli_runs import alternator_target, error_lines, run_cli, unique, write_config
from tests.support.exports import s3_client, write_full_export, write_incremental_export
from tests.support.stores import s3_store
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
