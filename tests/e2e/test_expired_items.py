"""`tables[].skip_expired`: items the source's TTL would delete are left out of the bulk copy
and the stream apply, and counted apart by validation.

The source is moto's server behind the Alternator front: it keeps expired items (DynamoDB
Local deletes recently expired ones within seconds, so it cannot hold them for a test).
The target is the same front under another table name.
"""
from __future__ import annotations

import json
import time

import pytest

from testbed import seed
from tests.support.cli_runs import alternator_target, run_cli, unique, write_config
from transforms.items.expiry import FIVE_YEARS_SECONDS

pytestmark = pytest.mark.integration

KEYED = seed.keyed_by("pk")


def _expiries(now: int) -> dict[str, dict | None]:
    """Key -> the TTL attribute's value (None: no attribute), and whether DynamoDB would delete it."""
    return {
        "expired-hour": {"N": str(now - 3600)},
        "expired-fraction": {"N": f"{now - 100}.25"},
        "expired-4y": {"N": str(now - 4 * 365 * 86400)},
        "kept-6y": {"N": str(now - FIVE_YEARS_SECONDS - 86400)},  # too old for DynamoDB's TTL: live data
        "kept-future": {"N": str(now + 86400)},
        "kept-huge": {"N": "1E+30"},
        "kept-string": {"S": str(now - 3600)},  # digits, but not a number: copied
        "kept-none": None,
    }


def _item(key: str, expiry: dict | None, version: int = 0) -> dict:
    item = {"pk": {"S": key}, "v": {"N": str(version)}}
    if expiry is not None:
        item["exp"] = expiry
    return item


def _source_table(endpoint: str, table: str, *, stream: bool = False, ttl: bool = True) -> None:
    # A stream on the Alternator front needs a vnodes table, as on ScyllaDB 2026.1 (testbed/alternator_tablets.py)
    extra = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
             "Tags": [{"Key": "system:initial_tablets", "Value": "none"}]} if stream else {}
    seed.create_table(endpoint, table, **KEYED, **extra)
    if ttl:
        seed.client_for(endpoint).update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})


def _keys(endpoint: str, table: str) -> set[str]:
    return {item["pk"]["S"] for item in seed.scan_all(endpoint, table)}


def _config(tmp_path, alternator, source: str, target: str, **table):
    entry = {"source": source, "target": target, "skip_expired": True, "renames": {"exp": "expires_at"}, **table}
    return write_config(tmp_path, alternator.url, alternator_target(alternator), [entry])


def test_bulk_leaves_out_expired_items_and_validation_counts_them_apart(alternator_clean, tmp_path):
    url = alternator_clean.url
    source, target = unique("ttl_src"), unique("ttl_dst")
    _source_table(url, source)
    expiries = _expiries(int(time.time()))
    seed.put_items(url, source, [_item(key, expiry) for key, expiry in expiries.items()])
    config = _config(tmp_path, alternator_clean, source, target)

    copied = run_cli("migrate", "--config", str(config), "--no-progress", "--report", str(tmp_path / "m.json"))
    validated = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))

    assert copied.exit_code == 0, copied.output
    assert _keys(url, source) == set(expiries)  # the source still holds every item
    assert _keys(url, target) == {key for key in expiries if key.startswith("kept-")}
    copied_item = next(i for i in seed.scan_all(url, target) if i["pk"]["S"] == "kept-6y")
    assert copied_item["expires_at"] == expiries["kept-6y"]  # renamed, value as it was
    bulk = json.loads((tmp_path / "m.json").read_text())["tables"][source]
    assert (bulk["written"], bulk["expired"]) == (5, 3)
    assert f"{source}: 3 expired items left out" in copied.output
    assert validated.exit_code == 0, validated.output
    counts = json.loads((tmp_path / "v.json").read_text())["tables"][source]
    assert {k: counts[k] for k in ("matched", "missing", "extra", "different", "expired")} == {
        "matched": 5, "missing": 0, "extra": 0, "different": 0, "expired": 3}


def test_validation_finds_a_live_target_copy_of_an_expired_item_extra(alternator_clean, tmp_path):
    url = alternator_clean.url
    source, target = unique("ttl_src"), unique("ttl_dst")
    _source_table(url, source)
    now = int(time.time())
    seed.put_items(url, source, [_item("a", {"N": str(now + 3600)}), _item("b", {"N": str(now - 3600)})])
    config = _config(tmp_path, alternator_clean, source, target)
    assert run_cli("migrate", "--config", str(config), "--no-progress").exit_code == 0
    # the target holds a live version of "b" (as if copied before its TTL was set in the past)
    seed.put_items(url, target, [{"pk": {"S": "b"}, "v": {"N": "0"}, "expires_at": {"N": str(now + 3600)}}])

    full = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))
    time.sleep(1)  # findings folders are named by the second
    sampled = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "s.json"), "--sample-rate", "1")

    assert full.exit_code == 1, full.output
    counts = json.loads((tmp_path / "v.json").read_text())["tables"][source]
    assert (counts["matched"], counts["missing"], counts["extra"], counts["expired"]) == (1, 0, 1, 1)
    assert [e["key"] for e in counts["examples"]["extra"]] == [{"pk": {"S": "b"}}]
    # a sample reads the source's keys only: the expired one is left out, the extra copy unseen
    assert sampled.exit_code == 0, sampled.output
    counts = json.loads((tmp_path / "s.json").read_text())["tables"][source]
    assert (counts["matched"], counts["sampled"], counts["expired"]) == (1, 1, 1)


def test_replication_deletes_instead_of_putting_expired_items(alternator_clean, tmp_path):
    url = alternator_clean.url
    source, target = unique("ttl_src"), unique("ttl_dst")
    _source_table(url, source, stream=True)
    config = _config(tmp_path, alternator_clean, source, target)
    assert run_cli("migrate", "--config", str(config), "--no-progress").exit_code == 0  # empty snapshot
    now = int(time.time())
    client = seed.client_for(url)
    for key, expiry in _expiries(now).items():
        client.put_item(TableName=source, Item=_item(key, expiry))
    # live at first (so its first put is copied), then its TTL is set in the past: the target must not keep it
    client.put_item(TableName=source, Item=_item("turned", {"N": str(now + 3600)}))

    first = run_cli("replicate", "--config", str(config), "--until-caught-up")
    assert first.exit_code == 0, first.output
    assert "turned" in _keys(url, target)
    client.put_item(TableName=source, Item=_item("turned", {"N": str(now - 60)}, version=1))
    again = run_cli("replicate", "--config", str(config), "--until-caught-up")
    validated = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))

    assert again.exit_code == 0, again.output
    assert _keys(url, target) == {key for key in _expiries(now) if key.startswith("kept-")}
    assert validated.exit_code == 0, validated.output
    assert json.loads((tmp_path / "v.json").read_text())["tables"][source]["expired"] == 4


def test_skip_expired_without_ttl_on_the_source_is_refused(alternator_clean, tmp_path):
    url = alternator_clean.url
    source, target = unique("no_ttl"), unique("no_ttl_dst")
    _source_table(url, source, ttl=False)
    config = _config(tmp_path, alternator_clean, source, target)

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    assert result.exit_code == 2, result.output
    assert f"tables[0].skip_expired is set, but source table {source} has no TTL enabled" in result.output
    assert target not in seed.table_names(url)  # nothing created
