"""The way back from today's ScyllaDB: targets able to stream, `plan`'s warning for source tables
that cannot, Alternator-shaped stream records, and items DynamoDB cannot hold.

Alternator is the front (moto behind `testbed/alternator_front.py`), which follows
ScyllaDB 2026.1's tablet rules (`testbed/alternator_tablets.py`: new tables use tablets,
Streams need the tag `system:initial_tablets: none`). Its stream records come from the test
Streams server (`testbed/fake_streams.py`), shaped as Alternator's GetRecords writes them
(alternator/streams.cc: eventSource `scylladb:alternator`, no SizeBytes, inserts as MODIFY, a
PutItem as REMOVE + MODIFY). DynamoDB Local is DynamoDB, enforcing its 400 KB item limit.
"""
from __future__ import annotations

import json

import pytest

from testbed import seed
from testbed.fake_streams import FakeStream, FakeStreamsServer, shard_id
from tests.support.cli_runs import alternator_target, run_cli, unique, write_config
from tests.support.controlled_streams import HASH_KEY, image, key, target_versions
from transforms.items.item_size import MAX_ITEM_BYTES, item_size
from transforms.state import stream_checkpoints

pytestmark = pytest.mark.integration

TABLE = seed.keyed_by("id")
STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
VNODES = {"Key": "system:initial_tablets", "Value": "none"}
# Over DynamoDB's limit, under moto's (405,000 bytes by its own count, which takes a list element
# of N "1" for 1 byte where DynamoDB takes 3: 1 for the element, 2 for the number).
OVER_400_KB = {"id": {"S": "big"}, "pad": {"S": "x" * 400_000}, "ones": {"L": [{"N": "1"}] * 3_300}}

# DynamoDB Local as the rollback target wants signed requests; a non-AWS endpoint is signed
# only with `target.credentials` (the user guide's rule), so the test gives them.
LOCAL_KEYS = {"credentials": {"access_key_id": "test", "secret_access_key": "test"}}


def _tags(endpoint: str, table: str) -> list[dict]:
    client = seed.client_for(endpoint)
    return client.list_tags_of_resource(ResourceArn=client.describe_table(TableName=table)["Table"]["TableArn"])["Tags"]


def test_create_tables_with_target_streams_makes_tables_that_can_stream(dynamodb_local, alternator_clean, tmp_path):
    streamed, plain = unique("streamed"), unique("plain")
    for table in (streamed, plain):
        seed.create_table(dynamodb_local.endpoint, table, **TABLE)
    target = alternator_target(alternator_clean)
    with_streams = write_config(tmp_path, dynamodb_local.endpoint, {**target, "streams": True}, [streamed])
    created = run_cli("create-tables", "--config", str(with_streams))
    without = write_config(tmp_path, dynamodb_local.endpoint, target, [plain])
    assert run_cli("create-tables", "--config", str(without)).exit_code == 0

    assert created.exit_code == 0, created.output
    described = seed.client_for(alternator_clean.url).describe_table(TableName=streamed)["Table"]
    assert described["StreamSpecification"] == STREAM
    assert VNODES in _tags(alternator_clean.url, streamed)
    assert not alternator_clean.front.uses_tablets(streamed) and alternator_clean.front.uses_tablets(plain)


def test_before_scylladb_2025_4_target_streams_creates_without_the_reserved_tag(dynamodb_local, alternator_clean,
                                                                                 tmp_path):
    """ScyllaDB 2025.1-2025.3 refuses the tag (its tables use vnodes anyway): created without it."""
    table = unique("older")
    seed.create_table(dynamodb_local.endpoint, table, **TABLE)
    config = write_config(tmp_path, dynamodb_local.endpoint, {**alternator_target(alternator_clean), "streams": True},
                          [table])
    alternator_clean.front.set_release("2025.3")
    try:
        result = run_cli("create-tables", "--config", str(config))
    finally:
        alternator_clean.front.set_release()

    assert result.exit_code == 0, result.output
    assert seed.client_for(alternator_clean.url).describe_table(TableName=table)["Table"]["StreamSpecification"] == \
        STREAM
    assert VNODES not in _tags(alternator_clean.url, table)


def test_plan_warns_when_a_rollback_reads_a_table_that_cannot_stream(dynamodb_local, alternator_clean, tmp_path):
    front = alternator_clean.url
    ready, tablets, counted, off = (unique(name) for name in ("ready", "tablets", "counted", "off"))
    seed.create_table(front, ready, **TABLE, Tags=[VNODES], StreamSpecification=STREAM)
    seed.create_table(front, tablets, **TABLE)
    seed.create_table(front, counted, **TABLE, Tags=[{"Key": "system:initial_tablets", "Value": "4"}])
    seed.create_table(front, off, **TABLE, Tags=[VNODES])
    tables = [{"source": t, "create": "never"} for t in (ready, tablets, counted, off)]
    rollback = write_config(tmp_path, front, {"endpoint": dynamodb_local.endpoint, **LOCAL_KEYS}, tables)
    for table in (ready, tablets, counted, off):  # create: never - plan refuses a target table that is missing
        seed.create_table(dynamodb_local.endpoint, table, **TABLE)
    (tmp_path / "forward").mkdir()
    forward = write_config(tmp_path / "forward", dynamodb_local.endpoint, alternator_target(alternator_clean),
                           [tablets, off])  # DynamoDB Local's tables have no stream, and no tablets either

    result = run_cli("plan", "--config", str(rollback))
    forward_plan = run_cli("plan", "--config", str(forward))

    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, result.output
    assert f"warning: source table {tablets} cannot stream: it was created without the tag " \
           f"system:initial_tablets, so on ScyllaDB 2025.4 to 2026.1 it uses tablets" in result.output
    assert f"warning: source table {counted} cannot stream: it was created with the tag " \
           f"system:initial_tablets=4" in result.output
    assert f"warning: source table {off} has no stream: enable it before the application writes to " \
           f"Alternator" in result.output
    assert forward_plan.exit_code == 0 and "warning:" not in forward_plan.output, forward_plan.output


def test_enabling_the_stream_of_a_tablets_table_stops_with_alternators_reason(dynamodb_local, alternator_clean,
                                                                              tmp_path):
    table = unique("no_stream")
    seed.create_table(alternator_clean.url, table, **TABLE)
    seed.put_items(alternator_clean.url, table, [image("a", 1)])
    seed.create_table(dynamodb_local.endpoint, table, **TABLE)
    config = write_config(tmp_path, alternator_clean.url, {"endpoint": dynamodb_local.endpoint, **LOCAL_KEYS},
                          [{"source": table, "create": "never"}])

    result = run_cli("migrate", "--config", str(config), "--streams", "--enable-streams", "--until-caught-up",
                     "--no-progress")

    assert result.exit_code == 2, result.output
    assert f"error: cannot enable the stream of source table {table}: Streams not yet supported on a table " \
           f"using tablets (issue #23838)" in result.output
    assert "target.streams: true" in result.output and "Traceback" not in result.output
    assert seed.scan_all(dynamodb_local.endpoint, table) == []  # nothing written


def test_rollback_applies_alternator_records_and_dead_letters_an_item_over_400_kb(dynamodb_local, alternator_clean,
                                                                                   tmp_path):
    table, shard = unique("way_back"), shard_id(1)
    front, dynamodb = alternator_clean.url, dynamodb_local.endpoint
    seed.create_table(front, table, **TABLE, Tags=[VNODES], StreamSpecification=STREAM)
    seed.create_table(dynamodb, table, **TABLE)
    seed.put_items(dynamodb, table, [image("b", 0), image("c", 0)])  # copied before the switch
    arn = seed.client_for(front).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    stream = FakeStream(stream_arn=arn, table_name=table, key_schema=HASH_KEY, records_as="alternator")
    stream.add_shard(shard)
    stream.put_record(shard, "MODIFY", key("a"), new_image=image("a", 1))  # a new item: Alternator says MODIFY
    stream.put_record(shard, "REMOVE", key("b"), old_image=image("b", 0))  # a PutItem: REMOVE, then MODIFY
    stream.put_record(shard, "MODIFY", key("b"), new_image=image("b", 1))
    stream.put_record(shard, "REMOVE", key("c"), old_image=image("c", 0))
    big = {"id": {"S": "big"}, "version": {"N": "1"}, "blob": {"B": "QUFB" * (MAX_ITEM_BYTES // 3)}}
    stream.put_record(shard, "MODIFY", key("big"), new_image=big)
    stream.put_record(shard, "INSERT", key("d"), new_image=image("d", 1))
    last = stream.put_record(shard, "MODIFY", key("a"), new_image=image("a", 2))
    with FakeStreamsServer() as server:
        server.add_stream(stream)
        config = write_config(tmp_path, front, {"endpoint": dynamodb, **LOCAL_KEYS}, [{"source": table, "create": "never"}],
                              source={"endpoint": front, "streams_endpoint": server.url, "region": "us-east-1",
                                      "credentials": {"access_key_id": "test", "secret_access_key": "test"}})

        first = run_cli("replicate", "--config", str(config))
        stream.put_record(shard, "MODIFY", key("e"), new_image=image("e", 1))
        second = run_cli("replicate", "--config", str(config))

    assert first.exit_code == 1, first.output  # a change went to the dead-letter folder
    letters = [json.loads(line) for path in (tmp_path / "dead-letter").glob(f"run-*/{table}/*.jsonl")
               for line in path.read_text().splitlines()]
    assert [letter["item"]["id"] for letter in letters] == [{"S": "big"}]
    assert letters[0]["error"] == (f"ItemTooLarge: the item is {item_size(big):,} bytes as DynamoDB counts them "
                                   f"(attribute names and values), over DynamoDB's item size limit of 400 KB "
                                   f"(409,600 bytes); not sent")
    checkpoint = stream_checkpoints.all_shards(str(tmp_path / "checkpoints"), table)[shard]
    assert checkpoint.sequence_number > last  # replication went on past it, and so did the second run
    assert second.exit_code == 0, second.output
    assert target_versions(dynamodb, table) == {"a": 2, "b": 1, "d": 1, "e": 1}


def test_validate_counts_target_items_dynamodb_could_not_hold(dynamodb_local, alternator_clean, tmp_path):
    table = unique("oversized")
    seed.create_table(dynamodb_local.endpoint, table, **TABLE)
    seed.put_items(dynamodb_local.endpoint, table, [image(name, 1) for name in "abc"])
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [table])
    assert run_cli("migrate", "--config", str(config), "--no-progress").exit_code == 0
    client = seed.client_for(alternator_clean.url)
    client.put_item(TableName=table, Item=OVER_400_KB)  # written to Alternator after the switch
    with pytest.raises(client.exceptions.ClientError, match="Item size has exceeded"):
        seed.client_for(dynamodb_local.endpoint).put_item(TableName=table, Item=OVER_400_KB)

    result = run_cli("validate", "--config", str(config), "--report", str(tmp_path / "v.json"))

    assert result.exit_code == 1, result.output  # the new item is extra
    assert item_size(OVER_400_KB) > MAX_ITEM_BYTES
    counts = json.loads((tmp_path / "v.json").read_text())["tables"][table]
    assert (counts["matched"], counts["extra"], counts["over_400kb"]) == (3, 1, 1)
    lines = result.output.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("table "))  # after the progress lines
    header, row = lines[at:at + 2]
    assert header.split()[-1] == "over_400kb" and row.split()[-1] == "1"
