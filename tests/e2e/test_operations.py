"""What an operator running a cutover needs beyond the copy: estimates before a run, and the
way back (replication from Alternator to DynamoDB)."""
from __future__ import annotations

import asyncio
import math

import pytest
from botocore.exceptions import NoRegionError

from testbed import seed
from tests.support.cli_runs import alternator_target, run_cli, unique, write_config
from transforms.dynamo.endpoints import Credentials, session_for

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


STREAMED = seed.keyed_by("pk")


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


def test_rollback_replicates_from_alternator_back_to_dynamodb(dynamodb_local, alternator_clean, tmp_path,
                                                              monkeypatch):
    """Alternator serves the DynamoDB Streams API; the Alternator front forwards it to moto,
    which implements it, so the front stands in for Alternator as the stream source here.
    DynamoDB Local is the old database, now the target (25-item batches), written as the
    runbook says: `target.endpoint` is DynamoDB's own URL and no target.credentials, so the
    AWS default chain signs. DynamoDB Local is the HTTP proxy that URL goes through (it
    answers a request in absolute form as HTTP/1.1 servers must; DynamoDB serves HTTP too:
    https://docs.aws.amazon.com/general/latest/gr/ddb.html), and like DynamoDB it refuses
    unsigned requests."""
    alternator, dynamodb = alternator_clean.url, dynamodb_local.endpoint
    monkeypatch.setenv("HTTP_PROXY", dynamodb)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    table = unique("rollback")
    seed.create_table(alternator, table, **STREAMED,  # vnodes: Alternator 2026.1 streams no tablets table
                      StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
                      Tags=[{"Key": "system:initial_tablets", "Value": "none"}])
    seed.create_table(dynamodb, table, **STREAMED)
    _writes(alternator, table, 0, 80)  # after the cutover: the application writes to Alternator
    config = write_config(tmp_path, alternator, {"endpoint": "http://dynamodb.us-east-1.amazonaws.com"},
                          [{"source": table, "create": "never"}],
                          source={"endpoint": alternator, "region": "us-east-1",
                                  "credentials": {"access_key_id": "test", "secret_access_key": "test"}})

    first = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert first.exit_code == 0, first.output
    seed.assert_same_items(alternator, dynamodb, table)
    _writes(alternator, table, 80, 40)
    again = run_cli("replicate", "--config", str(config), "--until-caught-up")
    assert again.exit_code == 0, again.output
    assert seed.assert_same_items(alternator, dynamodb, table) > 80


ROLE = "arn:aws:iam::123456789012:role/migration"


def test_an_assumed_role_is_refreshed_before_it_expires(alternator, monkeypatch):
    """Against moto's STS (the Alternator stand-in's moto serves it). botocore assumes the role
    again once fewer than 15 minutes are left; STS's shortest duration is 15 minutes, so with it
    every use refreshes, which shows the refresh without waiting for an hour."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", alternator.moto.endpoint)

    async def keys(duration: int) -> list[str]:
        session = session_for(Credentials("base-key", "base-secret", role_arn=ROLE, external_id="x-1",
                                          duration_seconds=duration))
        credentials = await session.get_credentials()
        return [(await credentials.get_frozen_credentials()).access_key for _ in range(3)]

    short, usual = asyncio.run(keys(900)), asyncio.run(keys(3600))

    assert "base-key" not in short + usual  # the role's keys, not the base ones
    assert len(set(short)) == 3  # renewed before expiry, on every use here
    assert len(set(usual)) == 1  # an hour's role is not assumed again while it is fresh


def test_migrate_with_a_role_to_assume(dynamodb_local, alternator_clean, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", alternator_clean.moto.endpoint)
    table = unique("with_role")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=50)
    source = {"endpoint": dynamodb_local.endpoint, "region": "us-east-1",
              "credentials": {"access_key_id": "base", "secret_access_key": "base-secret", "role_arn": ROLE,
                              "session_name": "cutover"}}
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table],
                          source=source)

    copied = run_cli("migrate", "--config", str(config), "--no-progress")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")  # nothing listens: STS unreachable
    refused = run_cli("plan", "--config", str(config))

    assert copied.exit_code == 0, copied.output
    assert len(seed.scan_all(alternator_clean.url, table)) == 50
    assert refused.exit_code == 2 and "127.0.0.1:9" in refused.output, refused.output
    assert "base-secret" not in copied.output + refused.output


def test_a_role_is_assumed_in_the_configured_region_without_one_in_the_environment(alternator, monkeypatch):
    """A config names its region; the machine may have none (no AWS_REGION, no profile).
    STS is then reached in the table's region (moto's STS, served by the Alternator stand-in's
    moto): before, botocore refused with NoRegionError on the first use of the role."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", alternator.moto.endpoint)
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")

    async def role_key(region: str | None) -> str:
        session = session_for(Credentials("base-key", "base-secret", role_arn=ROLE), region)
        return (await (await session.get_credentials()).get_frozen_credentials()).access_key

    assert asyncio.run(role_key("eu-west-1")) not in ("", "base-key")
    with pytest.raises(NoRegionError):  # what the region fixes: no region anywhere
        asyncio.run(role_key(None))
