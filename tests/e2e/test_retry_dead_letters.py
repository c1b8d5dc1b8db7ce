"""`retry-dead-letter`: letters resolved from the source's current items, never replayed, against
DynamoDB Local (source) and the Alternator front (target), which is told to fail writes."""
from __future__ import annotations

import json

import pytest

from testbed import seed
from tests.support.cli_runs import alternator_target, run_cli, unique, write_config
from transforms.items.ddb_json import decode_item

pytestmark = pytest.mark.integration

KEYED = seed.keyed_by("pk")
RENAMES = {"pk": "id", "v": "value"}  # the key is renamed too: letters hold target naming


def _source(endpoint: str, count: int) -> str:
    table = unique("lettered")
    seed.create_table(endpoint, table, **KEYED)
    seed.put_items(endpoint, table, [{"pk": {"S": f"k{i:03d}"}, "v": {"N": str(i)}} for i in range(count)])
    return table


def _config(tmp_path, dynamodb_local, alternator, table):
    return write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator),
                        [{"source": table, "renames": RENAMES}], write={"max_attempts": 2})


def _letters(tmp_path, table) -> list[dict]:
    return [json.loads(line) for path in sorted((tmp_path / "dead-letter").glob(f"run-*/{table}/*.jsonl"))
            for line in path.read_text().splitlines()]


def test_letters_are_resolved_from_the_source_and_a_second_call_is_a_no_op(dynamodb_local, alternator_clean,
                                                                           tmp_path):
    source = dynamodb_local.endpoint
    table = _source(source, 60)
    config = _config(tmp_path, dynamodb_local, alternator_clean, table)
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])
    failed = run_cli("migrate", "--config", str(config), "--no-progress")
    assert failed.exit_code == 1, failed.output
    assert len(_letters(tmp_path, table)) == 60
    # the source moves on after the letters were written: a replay would bring back old values
    client = seed.client_for(source)
    client.put_item(TableName=table, Item={"pk": {"S": "k001"}, "v": {"N": "1001"}, "new": {"BOOL": True}})
    client.delete_item(TableName=table, Key={"pk": {"S": "k002"}})
    alternator_clean.front.set_faults()  # the cause is fixed

    retried = run_cli("retry-dead-letter", "--config", str(config))
    validated = run_cli("validate", "--config", str(config))
    alternator_clean.front.reset_stats()
    again = run_cli("retry-dead-letter", "--config", str(config))

    assert retried.exit_code == 0, retried.output
    assert "60 letters resolved" in retried.output and "0 left" in retried.output
    target = seed.table_items(alternator_clean.url, table)
    assert target == seed.table_items(source, table, RENAMES) and len(target) == 59
    assert {"id": {"S": "k001"}, "value": {"N": "1001"}, "new": {"BOOL": True}} in seed.scan_all(
        alternator_clean.url, table)
    assert validated.exit_code == 0, validated.output
    assert again.exit_code == 0, again.output
    assert "0 letters resolved" in again.output and "0 left" in again.output
    assert alternator_clean.front.stats()["requests_by_operation"].get("BatchWriteItem", 0) == 0
    assert len(_letters(tmp_path, table)) == 60  # the letters themselves are kept as they were


def test_what_fails_again_stays_with_its_new_reason(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = _source(source, 30)
    # an item the renames cannot map (it holds v and value): dead-lettered as the source's item
    seed.client_for(source).put_item(TableName=table, Item={"pk": {"S": "both"}, "v": {"N": "1"},
                                                            "value": {"N": "2"}})
    config = _config(tmp_path, dynamodb_local, alternator_clean, table)
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])
    assert run_cli("migrate", "--config", str(config), "--no-progress").exit_code == 1
    letters = _letters(tmp_path, table)
    conflicted = [letter for letter in letters if letter.get("naming") == "source"]
    assert len(letters) == 31 and len(conflicted) == 1
    assert decode_item(conflicted[0]["item"])["pk"] == {"S": "both"}

    still_down = run_cli("retry-dead-letter", "--config", str(config))
    reasons_down = _reasons(tmp_path, table)
    alternator_clean.front.set_faults()
    conflict_left = run_cli("retry-dead-letter", "--config", str(config))
    reasons_left = _reasons(tmp_path, table)
    seed.client_for(source).update_item(TableName=table, Key={"pk": {"S": "both"}}, UpdateExpression="REMOVE #v",
                                        ExpressionAttributeNames={"#v": "value"})
    run = next((tmp_path / "dead-letter").glob("run-*")).name
    unknown = run_cli("retry-dead-letter", "--config", str(config), "--run", "run-20000101T000000")
    fixed = run_cli("retry-dead-letter", "--config", str(config), "--run", run)

    assert still_down.exit_code == 1, still_down.output
    assert "0 letters resolved" in still_down.output and "31 left" in still_down.output
    assert len(reasons_down) == 31
    assert sum("RequestLimitExceeded" in r for r in reasons_down) == 30
    assert conflict_left.exit_code == 1, conflict_left.output
    assert "30 letters resolved" in conflict_left.output and "1 left" in conflict_left.output
    assert len(reasons_left) == 1 and reasons_left[0].startswith("RenameConflict"), reasons_left
    assert unknown.exit_code == 2 and "--run run-20000101T000000: no dead letters" in unknown.output
    assert fixed.exit_code == 0, fixed.output
    assert "1 letters resolved" in fixed.output and "0 left" in fixed.output
    assert _reasons(tmp_path, table) == []
    target = seed.table_items(alternator_clean.url, table)
    assert target == seed.table_items(source, table, RENAMES) and len(target) == 31


def _reasons(tmp_path, table) -> list[str]:
    """The reasons of the letters failing again, from the markers beside the letter files."""
    return [reason for path in (tmp_path / "dead-letter").glob(f"run-*/{table}/*.retried.json")
            for reason in json.loads(path.read_text())["failing"].values()]
