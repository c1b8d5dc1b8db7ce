"""What an operator running a cutover needs beyond the copy: estimates before a run, and the
way back (replication from Alternator to DynamoDB)."""
from __future__ import annotations

import math

import pytest

from tests.support import seed
from tests.support.cli_runs import alternator_target, run_cli, unique, write_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("consistent, per_unit", [(False, 0.5), (True, 1.0)])
def test_plan_estimates_read_units_and_time_at_the_caps(dynamodb_local, alternator_clean, tmp_path, consistent,
                                                        per_unit):
    source = dynamodb_local.endpoint
    table = unique("estimated")
    seed.seed_all_types(source, table, count=400)
    described = seed.client_for(source).describe_table(TableName=table)["Table"]
    units = math.ceil(described["TableSizeBytes"] / 4096) * per_unit
    config = write_config(tmp_path, source, alternator_target(alternator_clean), [{"source": table}],
                          scan={"consistent_read": consistent, "max_read_units_per_second": 0.1},
                          write={"max_items_per_second": 0.5})

    result = run_cli("plan", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert units > 0
    assert f"the scan consumes ~{units:,.0f} read units" in result.output
    read_minutes, write_minutes = units / 0.1 / 60, 400 / 0.5 / 60  # both between 90 s and 90 min
    assert f"reading at the cap of 0.1 read units/s: ~{read_minutes:,.0f} min" in result.output
    assert f"writing at the cap of 0.5 items/s: ~{write_minutes:,.0f} min" in result.output
    assert f"at least ~{max(read_minutes, write_minutes):,.0f} min" in result.output


def test_plan_without_caps_says_so(dynamodb_local, alternator_clean, tmp_path):
    table = unique("uncapped")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=20)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table])

    result = run_cli("plan", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert "no read or write cap is set" in result.output


STREAMED = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST"}


def _writes(endpoint: str, table: str, start: int, count: int) -> None:
    """What the application does on its new database: puts, updates, deletes."""
    client = seed.client_for(endpoint)
    for i in range(start, start + count):
        client.put_item(TableName=table, Item={"pk": {"S": f"k{i:04d}"}, "v": {"N": str(i)},
                                               "b": {"B": bytes([i % 256])}})
    for i in range(start, start + count, 4):
        client.update_item(TableName=table, Key={"pk": {"S": f"k{i:04d}"}}, UpdateExpression="SET v = :v",
                           ExpressionAttributeValues={":v": {"N": "-1"}})
    for i in range(start + 1, start + count, 5):
        client.delete_item(TableName=table, Key={"pk": {"S": f"k{i:04d}"}})


def test_rollback_replicates_from_alternator_back_to_dynamodb(dynamodb_local, alternator_clean, tmp_path):
    """Alternator serves the DynamoDB Streams API; the Alternator front forwards it to moto,
    which implements it, so the front stands in for Alternator as the stream source here.
    DynamoDB Local is the old database, now the target (25-item batches)."""
    alternator, dynamodb = alternator_clean.url, dynamodb_local.endpoint
    table = unique("rollback")
    seed.create_table(alternator, table, **STREAMED,
                      StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    seed.create_table(dynamodb, table, **STREAMED)
    _writes(alternator, table, 0, 80)  # after the cutover: the application writes to Alternator
    config = write_config(tmp_path, alternator, {"endpoint": dynamodb}, [{"source": table, "create": "never"}],
                          source={"endpoint": alternator, "region": "us-east-1",
                                  "credentials": {"access_key_id": "test", "secret_access_key": "test"}})

    first = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert first.exit_code == 0, first.output
    expected = sorted(seed.canonical(item) for item in seed.scan_all(alternator, table))
    assert sorted(seed.canonical(item) for item in seed.scan_all(dynamodb, table)) == expected
    _writes(alternator, table, 80, 40)
    again = run_cli("replicate", "--config", str(config), "--until-caught-up")
    assert again.exit_code == 0, again.output
    expected = sorted(seed.canonical(item) for item in seed.scan_all(alternator, table))
    assert len(expected) > 80
    assert sorted(seed.canonical(item) for item in seed.scan_all(dynamodb, table)) == expected
