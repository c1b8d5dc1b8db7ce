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


def test_full_and_incremental_exports_give_the_exported_state_not_the_live_one(dynamodb_local, alternator_clean,
                                                                              tmp_path, bucket):
    source, s3 = dynamodb_local.endpoint, s3_client(alternator_clean.moto.endpoint)
    name = bucket.root.split("/")[2]
    table = unique("exported")
    seed.seed_all_types(source, table, count=600)
    exported_at = datetime.now(timezone.utc)
    full = write_full_export(s3, name, "exports", seed.scan_all(source, table), files=4, export_time=exported_at)
    expected = _by_key(seed.scan_all(source, table))

    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "export": full}], scan={"page_size": 70},
                          **bucket.config_sections())
    planned = run_cli("plan", "--config", str(config))
    assert planned.exit_code == 0, planned.output
    assert f"from export {full.rstrip('/')} (not scanned)" in planned.output
    assert f"full, as of {exported_at.strftime('%Y-%m-%dT%H:%M:%S')}" in planned.output
    assert "4 data files, 600 items" in planned.output

    # Items the export does not hold: the target must not get them.
    client = seed.client_for(source)
    client.put_item(TableName=table, Item={**seed.all_types_item(9999), "pk": {"S": "live-only"}})

    result = run_cli("migrate", "--config", str(config), "--no-progress", "--report", str(tmp_path / "r.json"))

    assert result.exit_code == 0, result.output
    assert _by_key(seed.scan_all(alternator_clean.url, table)) == expected
    assert json.loads((tmp_path / "r.json").read_text())["tables"][table]["read"] == 600
    assert bulk_checkpoints.progress(bucket.checkpoint_dir, table) == bulk_checkpoints.TableProgress(4, 4, 600)
