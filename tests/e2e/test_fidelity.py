"""Nothing altered, nothing hidden: renames per item, exact number keys, stops and quiet runs.

Against the real servers: DynamoDB Local (source, with Streams) and the Alternator front
over moto (target; it keeps number keys exactly as written, as Alternator does).
"""
from __future__ import annotations

import json
import signal

import boto3
import pytest

from testbed import seed
from testbed.servers import MotoServer
from tests.support.cli_runs import (alternator_target, error_lines, interrupt, items_copied, run_cli, run_script,
                                    start_script, unique, write_config)
from tests.support.stores import S3_KEYS, Store
from transforms.errors import StateFileError
from transforms.state.files import matching
from transforms.state.storage import StorageOptions

pytestmark = pytest.mark.integration

RENAMES = {"old_name": "name"}
KEY = seed.keyed_by("pk")


def _spelling_item(i: int) -> dict:
    """Older items carry old_name, newer ones name; every 50th holds both (a conflict)."""
    item = {"pk": {"S": f"p{i:05d}"}, "n": {"N": str(i)}}
    if i % 50 == 7:
        item.update(old_name={"S": f"old {i}"}, name={"S": f"new {i}"})
    elif i % 2:
        item["old_name"] = {"S": f"old {i}"}
    else:
        item["name"] = {"S": f"new {i}"}
    return item


def _expected_target(items: list[dict]) -> dict[str, dict]:
    """What the target must hold: each item renamed, the conflicting ones left out."""
    out = {}
    for item in items:
        if "old_name" in item and "name" in item:
            continue
        renamed = {("name" if k == "old_name" else k): v for k, v in item.items()}
        out[item["pk"]["S"]] = renamed
    return out


def _target_items(target: str, table: str) -> dict[str, dict]:
    return {item["pk"]["S"]: item for item in seed.scan_all(target, table)}


def _dead_letters(tmp_path) -> list[dict]:
    return [json.loads(line) for path in sorted((tmp_path / "dead-letter").glob("run-*/*/*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def _seed_spellings(source: str, table: str, count: int, **extra) -> list[dict]:
    seed.create_table(source, table, **KEY, **extra)
    items = [_spelling_item(i) for i in range(count)]
    seed.put_items(source, table, items)
    return items


def test_renames_per_item_in_the_bulk_copy_with_conflicts_dead_lettered(dynamodb_local, alternator_clean,
                                                                         tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("spellings")
    items = _seed_spellings(source, table, 400)
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "renames": RENAMES}], scan={"segments": 2, "page_size": 60})

    result = run_cli("migrate", "--config", str(config), "--no-progress")

    conflicts = [item for item in items if "old_name" in item and "name" in item]
    assert result.exit_code == 1, result.output
    assert f"{len(conflicts)} items could not be written" in result.output
    assert _target_items(target, table) == _expected_target(items)
    letters = _dead_letters(tmp_path)
    assert sorted(letter["item"]["pk"]["S"] for letter in letters) == sorted(c["pk"]["S"] for c in conflicts)
    assert all("RenameConflict" in letter["error"] and "'old_name'" in letter["error"] for letter in letters)
    assert letters[0]["item"]["old_name"] and letters[0]["item"]["name"]  # the source item, both values kept

    for how in ((), ("--sample-rate", "1")):
        checked = run_cli("validate", "--config", str(config), "--max-examples", "50", "--report",
                          str(tmp_path / "v.json"), *how)
        assert checked.exit_code == 1 and "Traceback" not in checked.output, checked.output
        counts = json.loads((tmp_path / "v.json").read_text())["tables"][table]
        assert (counts["missing"], counts["different"], counts["extra"]) == (len(conflicts), 0, 0)
        assert all("RenameConflict" in e["reason"] for e in counts["examples"]["missing"])
    # The same item in the target (written by hand): still a difference, never equal.
    by_hand = {("name" if k == "old_name" else k): v for k, v in conflicts[0].items()}
    seed.client_for(target).put_item(TableName=table, Item=by_hand)
    checked = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))
    counts = json.loads((tmp_path / "v.json").read_text())["tables"][table]
    assert (counts["missing"], counts["different"]) == (len(conflicts) - 1, 1)
    assert {d["path"] for d in counts["examples"]["different"][0]["diff"]} == {"old_name", "name"}

    repaired = run_cli("validate", "--config", str(config), "--repair", "--yes")
    assert repaired.exit_code == 1, repaired.output  # conflicts cannot be repaired: dead-lettered again
    assert f"error: {len(conflicts)} repair writes failed" in repaired.output
    assert len(list((tmp_path / "dead-letter").glob("run-*"))) >= 2  # repair wrote into a run folder of its own
    assert _target_items(target, table) == {**_expected_target(items), by_hand["pk"]["S"]: by_hand}


def test_renames_survive_a_kill_and_a_resume(dynamodb_local, alternator_clean, tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("spellings_resume")
    items = _seed_spellings(source, table, 600)
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.2, ops=["BatchWriteItem"])
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "renames": RENAMES}], scan={"segments": 2, "page_size": 40},
                          write={"concurrency": 1})
    interrupt(start_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path),
              lambda: items_copied(tmp_path / "checkpoints", table) >= 120)
    alternator_clean.front.set_faults()

    resumed = run_cli("migrate", "--config", str(config), "--resume", "--no-progress")

    assert resumed.exit_code == 1, resumed.output  # the conflicts of the pages it copied
    assert _target_items(target, table) == _expected_target(items)


def test_renames_in_replication_with_both_spellings(dynamodb_local, alternator_clean, tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("spellings_stream")
    items = _seed_spellings(source, table, 60, StreamSpecification={"StreamEnabled": True,
                                                                     "StreamViewType": "NEW_AND_OLD_IMAGES"})
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "renames": RENAMES}])
    first = run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress")
    assert first.exit_code == 1, first.output
    changed = [_spelling_item(i) for i in range(60, 160)]  # new items with both kinds of spelling
    seed.put_items(source, table, changed)
    client = seed.client_for(source)
    client.put_item(TableName=table, Item={"pk": {"S": "p00001"}, "name": {"S": "renamed later"}})
    items = [i for i in items if i["pk"]["S"] != "p00001"] + changed + [
        {"pk": {"S": "p00001"}, "name": {"S": "renamed later"}}]

    again = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert again.exit_code == 1, again.output
    conflicts = sum(1 for item in changed if "old_name" in item and "name" in item)
    assert f"error: {conflicts} changes could not be applied" in again.output, again.output
    assert _target_items(target, table) == _expected_target(items)


def test_a_rename_onto_a_key_attribute_is_refused_before_anything_is_written(dynamodb_local, alternator_clean,
                                                                            tmp_path):
    source = dynamodb_local.endpoint
    table = unique("rename_key")
    seed.create_table(source, table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                            {"AttributeName": "gk", "AttributeType": "S"}],
                      GlobalSecondaryIndexes=[{"IndexName": "by_gk",
                                               "KeySchema": [{"AttributeName": "gk", "KeyType": "HASH"}],
                                               "Projection": {"ProjectionType": "ALL"}}],
                      BillingMode="PAY_PER_REQUEST")
    other = unique("rename_ok")
    seed.create_table(source, other, **KEY)
    for renames, named in (({"a": "pk"}, "a key attribute"), ({"a": "gk"}, "a key of its index by_gk")):
        config = write_config(tmp_path, source, alternator_target(alternator_clean),
                              [{"source": other}, {"source": table, "renames": renames}])

        result = run_cli("migrate", "--config", str(config), "--no-progress")

        assert result.exit_code == 2, result.output
        (line,) = error_lines(result.output)
        assert f"renames maps 'a' to '{renames['a']}'" in line and named in line
        tables = seed.table_names(alternator_clean.url)
        assert table not in tables and other not in tables  # no target table created
    swapped = write_config(tmp_path, source, alternator_target(alternator_clean),
                           [{"source": table, "renames": {"pk": "id", "a": "pk"}}])
    assert run_cli("plan", "--config", str(swapped)).exit_code == 0  # pk renamed away: its name is free


def test_number_keys_are_matched_exactly(dynamodb_local, alternator_clean, tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("number_keys")
    definition = seed.keyed_by("k", "N")
    seed.create_table(source, table, **definition)
    seed.create_table(target, table, **definition)
    seed.put_items(source, table, [{"k": {"N": "1"}, "v": {"S": "one"}}, {"k": {"N": "2"}, "v": {"S": "two"}}])
    seed.put_items(target, table, [{"k": {"N": "1.0"}, "v": {"S": "one"}}, {"k": {"N": "1E0"}, "v": {"S": "one"}},
                                   {"k": {"N": "2"}, "v": {"S": "two"}}])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}])

    result = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))

    assert result.exit_code == 1, result.output
    counts = json.loads((tmp_path / "v.json").read_text())["tables"][table]
    assert (counts["matched"], counts["missing"], counts["extra"], counts["different"]) == (1, 1, 2, 0)
    extra = sorted(e["key"]["k"]["N"] for e in counts["examples"]["extra"])
    assert extra == ["1.0", "1E0"]


def test_an_unreadable_folder_is_an_error_not_an_empty_one(monkeypatch):
    """A listing the store refuses must say so (moto checks IAM here: a user without a policy)."""
    with MotoServer(authorized_after=3) as s3:  # the start-up probe, then two set-up calls
        setup = dict(endpoint_url=s3.endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test")
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        Store("s3", "s3://locked", {**S3_KEYS, "s3_endpoint_url": s3.endpoint,
                                    "s3_access_key_id": key["AccessKeyId"],
                                    "s3_secret_access_key": key["SecretAccessKey"]}).use_here(monkeypatch)
        try:
            with pytest.raises(StateFileError, match="cannot list s3://locked/dead-letter"):
                matching("s3://locked/dead-letter/*/*.jsonl")
        finally:
            StorageOptions().install()  # this process's filesystems as they were


def test_ctrl_c_during_migrate_exits_130_and_resumes(dynamodb_local, alternator_clean, tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("interrupted")
    seed.seed_all_types(source, table, count=800)
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.2, ops=["BatchWriteItem"])
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 2, "page_size": 50}, write={"concurrency": 1})
    process = start_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path)
    stderr = interrupt(process, lambda: items_copied(tmp_path / "checkpoints", table) >= 100, signal.SIGINT)
    alternator_clean.front.set_faults()

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("interrupted: ")]
    assert "--resume" in line
    resumed = run_cli("migrate", "--config", str(config), "--resume", "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert len(seed.scan_all(target, table)) == 800


def test_a_run_shows_the_tools_output_and_keeps_the_runners_in_a_log_file(dynamodb_local, alternator_clean,
                                                                         tmp_path):
    source = dynamodb_local.endpoint
    table = unique("quiet")
    seed.seed_all_types(source, table, count=200)
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          pipeline_options={"runner": "DirectRunner", "direct_num_workers": 2,
                                            "direct_running_mode": "multi_processing"})

    quiet = run_script("migrate", "--config", str(config), "--no-progress", cwd=tmp_path)

    assert quiet.returncode == 0, quiet.stderr
    assert "total: 200 items written" in quiet.stdout
    chatter = ("apitools", "semi_persistent_directory", "Discarding unparseable", "Logging handler created",
               "apache_beam", "INFO ", "WARNING ")
    assert not [line for line in quiet.stderr.splitlines() if any(c in line for c in chatter)], quiet.stderr
    logs = list((tmp_path / "checkpoints" / "logs").glob("migrate-*.log"))
    assert len(logs) == 1 and "apache_beam" in logs[0].read_text()

    verbose = run_script("-v", "migrate", "--config", str(config), "--no-progress", "--restart", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert "apache_beam" in verbose.stderr


def test_ctrl_c_during_validate_exits_130_with_no_verdict(dynamodb_local, alternator_clean, tmp_path):
    source, target = dynamodb_local.endpoint, alternator_clean.url
    table = unique("interrupted_check")
    seed.create_table(source, table, **KEY)
    seed.create_table(target, table, **KEY)
    seed.put_items(source, table, [{"pk": {"S": f"p{i}"}} for i in range(20)])  # all missing from the target
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}])
    process = start_script("validate", "--config", str(config), "--recheck-seconds", "600", cwd=tmp_path)
    stderr = interrupt(process, lambda: (tmp_path / "checkpoints" / "validate").exists(), signal.SIGINT)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "every table matches" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("interrupted: ")]
    assert "no verdict" in line
