"""A DynamoDB Local table whose stream is served by the test Streams server.

DynamoDB Local has one stream shard per table and never trims it; replication tests
that need lineage, width, throttling or trimming keep the table (and its ARN) in
DynamoDB Local, point `source.streams_endpoint` at `tests/support/fake_streams.py` and
build the stream's shards by hand.
"""
from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from tests.support import seed
from tests.support.cli_runs import alternator_target, run_cli, unique, write_config
from tests.support.fake_streams import FakeStream, FakeStreamsServer

HASH_KEY = [{"AttributeName": "id", "KeyType": "HASH"}]


@dataclass
class ControlledStream:
    stream: FakeStream
    server: FakeStreamsServer
    config: Path
    table: str
    target: str  # the target's URL


def shard_id(n: int, suffix: str = "aaaaaaaa") -> str:
    """A valid shard id; ids sort (and DescribeStream lists them) in the order of `n`."""
    return f"shardId-{n:020d}-{suffix}"


def key(name: str) -> dict:
    return {"id": {"S": name}}


def image(name: str, version: int) -> dict:
    return {"id": {"S": name}, "version": {"N": str(version)}}


def target_versions(target: str, table: str) -> dict[str, int]:
    return {item["id"]["S"]: int(item["version"]["N"]) for item in seed.scan_all(target, table)}


@contextlib.contextmanager
def controlled_stream(dynamodb_local, alternator, tmp_path: Path, *, reads_per_second: float | None = None,
                      **config_sections) -> Iterator[ControlledStream]:
    """A table in DynamoDB Local, its target table created, its stream ours to build."""
    table = unique("controlled")
    seed.create_table(dynamodb_local.endpoint, table, KeySchema=HASH_KEY,
                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST",
                      StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    arn = seed.client_for(dynamodb_local.endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    stream = FakeStream(stream_arn=arn, table_name=table, key_schema=HASH_KEY, reads_per_second=reads_per_second)
    with FakeStreamsServer() as server:
        server.add_stream(stream)
        config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator), [{"source": table}],
                              **config_sections)
        raw = config.read_text().replace("source:\n", f"source:\n  streams_endpoint: {server.url}\n", 1)
        config.write_text(raw)
        assert run_cli("create-tables", "--config", str(config)).exit_code == 0
        yield ControlledStream(stream, server, config, table, alternator.url)


def wait_for(condition: Callable[[], bool], *, timeout: float, process: subprocess.Popen | None = None,
             what: str = "the condition") -> None:
    """Poll until `condition()`; fail after `timeout` s or when `process` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.2)
