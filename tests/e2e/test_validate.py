"""`alternator-migrate validate` against the real servers: a migrated table, then damage."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from pipeline.checks.config import load_config
from pipeline.checks.tables import plan_tables
from pipeline.commands.validate import run_validate
from testbed import seed
from tests.support.cli_runs import alternator_target, run_cli, unique, write_config
from transforms.findings import read_findings
from transforms.state.digest_spill import BucketFiles

pytestmark = pytest.mark.integration

COUNT = 300
RENAMES = {"legacy_name": "display_name"}


def _key(i: int) -> dict:
    item = seed.all_types_item(i)
    return {"pk": item["pk"], "sk": item["sk"]}


@pytest.fixture
def migrated(dynamodb_local, alternator_clean, tmp_path):
    """A table copied to the target (with a rename); returns (config path, table, source, target)."""
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("validated")
    seed.seed_all_types(source, table, count=COUNT)
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "renames": RENAMES}], scan={"segments": 2, "page_size": 100})
    result = run_cli("migrate", "--config", str(config), "--no-progress")
    assert result.exit_code == 0, result.output
    return config, table, source, target


def _damage(target: str, table: str) -> None:
    client = seed.client_for(target)
    for i in (3, 4, 5):                                    # missing: deleted from the target
        client.delete_item(TableName=table, Key=_key(i))
    for n in (1, 2):                                       # extra: only in the target
        client.put_item(TableName=table, Item={"pk": {"S": f"zz-extra-{n}"}, "sk": {"N": "0"}})
    value = client.get_item(TableName=table, Key=_key(10))["Item"]  # different: a nested value
    value["doc"]["M"]["city"] = {"S": "Marseille"}
    client.put_item(TableName=table, Item=value)
    typed = client.get_item(TableName=table, Key=_key(11))["Item"]  # different: a type change
    typed["display_name"] = {"N": "1"}
    client.put_item(TableName=table, Item=typed)
    # Not differences: a set in another order, and 1 written as 1.0.
    reordered = client.get_item(TableName=table, Key=_key(12))["Item"]
    reordered["tags"] = {"SS": list(reversed(reordered["tags"]["SS"]))}
    reordered["nums"] = {"NS": list(reversed(reordered["nums"]["NS"]))}
    client.put_item(TableName=table, Item=reordered)
    respelled = client.get_item(TableName=table, Key=_key(13))["Item"]
    respelled["expires_at"] = {"N": respelled["expires_at"]["N"] + ".0"}
    digits = respelled["doc"]["M"]["zip"]["N"]                       # 75013 as 7.5013E4
    respelled["doc"]["M"]["zip"] = {"N": f"{digits[0]}.{digits[1:]}E{len(digits) - 1}"}
    client.put_item(TableName=table, Item=respelled)


def _wait_until_quiet(front, operation: str, quiet_seconds: float = 1.0) -> None:
    """Until the front has seen `operation` and then none for `quiet_seconds`: a phase of
    the validation (the target scan, the first looks) is over, the recheck 4 s away."""
    deadline, seen, changed = time.monotonic() + 60, 0, time.monotonic()
    while time.monotonic() < deadline:
        count = front.stats()["requests_by_operation"].get(operation, 0)
        if count != seen:
            seen, changed = count, time.monotonic()
        elif seen and time.monotonic() - changed >= quiet_seconds:
            return
        time.sleep(0.05)


def _equal_after_renames(source: str, target: str, table: str) -> bool:
    return seed.table_items(source, table, RENAMES) == seed.table_items(target, table)


def test_equal_tables_exit_0(migrated, tmp_path):
    config, table, _, _ = migrated
    result = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["equal"] is True
    assert report["tables"][table] | {"examples": None} == {
        "matched": COUNT, "missing": 0, "extra": 0, "different": 0, "lagging": 0, "expired": 0,
        "over_400kb": 0, "examples": None}
    assert "every table matches" in result.output


def test_every_kind_of_damage_is_found_with_exact_counts_and_examples(migrated, tmp_path):
    config, table, source, target = migrated
    _damage(target, table)

    result = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))

    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["equal"] is False
    counts = {k: v for k, v in report["tables"][table].items() if k != "examples"}
    assert counts == {"matched": COUNT - 3 - 2, "missing": 3, "extra": 2, "different": 2, "lagging": 0,
                      "expired": 0, "over_400kb": 0}
    examples = report["tables"][table]["examples"]
    assert [e["key"] for e in examples["missing"]] == [_key(i) for i in (3, 4, 5)]
    assert [e["key"] for e in examples["extra"]] == [{"pk": {"S": f"zz-extra-{n}"}, "sk": {"N": "0"}}
                                                     for n in (1, 2)]
    different = {json.dumps(e["key"], sort_keys=True): e["diff"] for e in examples["different"]}
    shown = lambda i: json.dumps(_key(i), sort_keys=True)  # noqa: E731
    city = seed.all_types_item(10)["doc"]["M"]["city"]
    assert different[shown(10)] == [{"path": "doc.city", "source": city, "target": {"S": "Marseille"}}]
    name = seed.all_types_item(11)["legacy_name"]
    assert different[shown(11)] == [{"path": "display_name", "source": name, "target": {"N": "1"}}]
    # The terminal report shows the same, readably.
    assert 'doc.city: S "' + city["S"] + '" vs S "Marseille"' in result.output
    assert "display_name: S " in result.output and "vs N 1" in result.output


def test_spilled_and_shuffled_digests_give_the_same_findings(migrated, monkeypatch):
    """The local runner spills digests to bucket files; other runners group them with
    CoGroupByKey. Both ways, on the same damage: the same counts and the same findings."""
    config_path, table, _, target = migrated
    _damage(target, table)
    config = load_config(config_path)
    plans = plan_tables(config, create=False)
    spilled = []  # the files each bundle wrote, seen by wrapping BucketFiles.close (the pipeline runs here)
    close = BucketFiles.close

    def recording_close(self):
        files = close(self)
        spilled.extend(Path(path) for _, path in files)
        return files

    monkeypatch.setattr(BucketFiles, "close", recording_close)
    outcomes = {}
    for spill in (True, False):
        spilled.clear()
        result = run_validate(config, plans, spill=spill)
        assert {path.parent.parent.name for path in spilled} == ({"source", "target"} if spill else set())
        findings = sorted(json.dumps(f, sort_keys=True) for f in read_findings(result.findings_dir))
        outcomes[spill] = (result.tables[table].counts, findings)
        assert not (Path(result.findings_dir) / "spill").exists()  # the spill goes with the run
        time.sleep(1)  # findings folders are named by the second

    assert outcomes[True] == outcomes[False]
    counts, findings = outcomes[True]
    assert counts == {"matched": COUNT - 5, "missing": 3, "extra": 2, "different": 2, "lagging": 0, "sampled": 0,
                      "expired": 0, "over_400kb": 0}
    assert sorted(json.loads(f)["kind"] for f in findings) == ["different"] * 2 + ["extra"] * 2 + ["missing"] * 3


def test_repair_needs_yes_then_makes_the_tables_equal(migrated, tmp_path):
    config, table, source, target = migrated
    _damage(target, table)

    dry = run_cli("validate", "--config", str(config), "--repair")
    assert dry.exit_code == 1
    assert "will copy up to 5 items" in dry.output and "delete up to 2" in dry.output
    assert "--repair --yes" in dry.output
    assert not _equal_after_renames(source, target, table)  # nothing was changed

    fixed = run_cli("validate", "--config", str(config), "--repair", "--yes", "--report", str(tmp_path / "v.json"))

    assert fixed.exit_code == 0, fixed.output
    assert "repair: 5 items put, 2 deleted" in fixed.output
    assert json.loads((tmp_path / "v.json").read_text())["equal"] is True
    assert _equal_after_renames(source, target, table)


def test_sample_checks_a_share_of_source_keys_by_point_reads(migrated, tmp_path):
    config, table, _, target = migrated
    _damage(target, table)

    result = run_cli("validate", "--config", str(config), "--sample-rate", "0.5", "--report", str(tmp_path / "v.json"))

    entry = json.loads((tmp_path / "v.json").read_text())["tables"][table]
    assert 0.3 * COUNT < entry["sampled"] < 0.7 * COUNT
    assert entry["matched"] + entry["missing"] + entry["different"] == entry["sampled"]
    assert entry["missing"] <= 3 and entry["different"] <= 2 and entry["extra_checked"] is False
    assert result.exit_code == (1 if entry["missing"] + entry["different"] else 0)
    assert "a 0.5 sample of" in result.output


def test_recheck_counts_replication_lag_apart_from_differences(migrated, alternator_clean, tmp_path):
    """The source changes; the target catches up after the target scan but before the recheck."""
    config, table, source, target = migrated
    changed = seed.all_types_item(20) | {"legacy_name": {"S": "renamed while validating"}}
    seed.client_for(source).put_item(TableName=table, Item=changed)
    caught_up = changed | {"display_name": changed["legacy_name"]}
    del caught_up["legacy_name"]

    def replicate_after_target_scan():
        _wait_until_quiet(alternator_clean.front, "Scan")
        seed.client_for(target).put_item(TableName=table, Item=caught_up)

    replicator = threading.Thread(target=replicate_after_target_scan)
    alternator_clean.front.reset_stats()
    replicator.start()
    result = run_cli("validate", "--config", str(config), "--recheck-seconds", "4", "--report",
                     str(tmp_path / "v.json"))
    replicator.join()

    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "v.json").read_text())["tables"][table]
    assert entry["lagging"] == 1 and entry["different"] == 0 and entry["matched"] == COUNT - 1


def test_sample_with_recheck_counts_lag_and_reports_the_rest(migrated, alternator_clean, tmp_path):
    config, table, source, target = migrated
    client = seed.client_for(target)
    for i in (30, 31):  # two target items go stale; one of them catches up during the recheck wait
        stale = client.get_item(TableName=table, Key=_key(i))["Item"]
        client.put_item(TableName=table, Item=stale | {"flag": {"BOOL": not stale["flag"]["BOOL"]}})
    original = {**seed.all_types_item(30)}
    original["display_name"] = original.pop("legacy_name")

    def catch_up_after_first_look():
        _wait_until_quiet(alternator_clean.front, "BatchGetItem")
        client.put_item(TableName=table, Item=original)

    alternator_clean.front.reset_stats()
    fixer = threading.Thread(target=catch_up_after_first_look)
    fixer.start()
    result = run_cli("validate", "--config", str(config), "--sample-rate", "1", "--recheck-seconds", "4",
                     "--report", str(tmp_path / "v.json"))
    fixer.join()

    assert result.exit_code == 1, result.output
    entry = json.loads((tmp_path / "v.json").read_text())["tables"][table]
    assert entry["sampled"] == COUNT and entry["matched"] == COUNT - 2
    assert entry["lagging"] == 1 and entry["different"] == 1
    assert [e["key"] for e in entry["examples"]["different"]] == [_key(31)]
