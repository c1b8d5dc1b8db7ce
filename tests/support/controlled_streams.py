"""A DynamoDB Local table whose stream is served by the test Streams server.

DynamoDB Local has one stream shard per table and never trims it; replication tests
that need lineage, width, throttling or trimming keep the table (and its ARN) in
DynamoDB Local, point `source.streams_endpoint` at `testbed/fake_streams.py` and
build the stream's shards by hand.
"""
from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from testbed import seed
from testbed.fake_streams import FakeStream, FakeStreamsServer, shard_id
from testbed.seed import client_for as seed_client
from tests.support.cli_runs import alternator_target, run_cli, unique, write_config

HASH_KEY = seed.STREAMED_TABLE["KeySchema"]


@dataclass
class ControlledStream:
    stream: FakeStream
    server: FakeStreamsServer
    config: Path
    table: str
    target: str  # the target's URL


def key(name: str) -> dict:
    return {"id": {"S": name}}


def image(name: str, version: int) -> dict:
    return {"id": {"S": name}, "version": {"N": str(version)}}


def target_versions(target: str, table: str) -> dict[str, int]:
    return {item["id"]["S"]: int(item["version"]["N"]) for item in seed.scan_all(target, table)}


@contextlib.contextmanager
def controlled_stream(dynamodb_local, alternator, tmp_path: Path, *, reads_per_second: float | None = None,
                      retention_seconds: float | None = None, source_endpoint: str | None = None,
                      **config_sections) -> Iterator[ControlledStream]:
    """A table in DynamoDB Local, its target table created, its stream ours to build (keeping
    records `retention_seconds`, which the config tells the tool); `source_endpoint`: where
    the tool reads the table (a front of DynamoDB Local)."""
    table = unique("controlled")
    seed.create_table(dynamodb_local.endpoint, table, **seed.STREAMED_TABLE)
    arn = seed.client_for(dynamodb_local.endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    stream = FakeStream(stream_arn=arn, table_name=table, key_schema=HASH_KEY, reads_per_second=reads_per_second,
                        retention_seconds=retention_seconds)
    with FakeStreamsServer() as server:
        server.add_stream(stream)
        config = write_config(tmp_path, source_endpoint or dynamodb_local.endpoint, alternator_target(alternator),
                              [{"source": table}], **config_sections)
        retention = f"  stream_retention_hours: {retention_seconds / 3600!r}\n" if retention_seconds else ""
        raw = config.read_text().replace("source:\n", f"source:\n  streams_endpoint: {server.url}\n{retention}", 1)
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


class ChangingTable:
    """A DynamoDB Local table written to while a test runs, each write also put on its
    controlled stream as DynamoDB Streams would record it (a NEW_AND_OLD_IMAGES view): puts of
    new versions, deletes, new keys, and shards that close and hand over to a child every
    `rotate_seconds`, as DynamoDB rolls shards over (about every four hours, well within the 24
    hours a record is kept: keep `rotate_seconds` well under the stream's retention). The test
    reads the table itself for the truth."""

    def __init__(self, made: ControlledStream, endpoint: str, keys: int, *, rotate_seconds: float = 1.0,
                 shards: int = 2, seed: int = 7):
        self._made, self._client = made, seed_client(endpoint)
        self._random = random.Random(seed)
        self._keys = keys
        self._rotate = rotate_seconds
        self._versions: dict[str, int] = {}
        self._generation = 0
        self.open_shards = [self._add(shard_id(n + 1)) for n in range(shards)]
        self.changes = 0
        self.first_sequence: str | None = None  # of the first change made
        self.last_sequence: str | None = None   # of the latest
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _add(self, shard: str, parent: str | None = None) -> str:
        self._made.stream.add_shard(shard, parent=parent)
        return shard

    def seed(self) -> None:
        """The table's items before the copy: version 1 of every key (nothing on the stream)."""
        seed.put_items(self._made_endpoint(), self._made.table, [image(f"k{i:05d}", 1) for i in range(self._keys)])
        self._versions = {f"k{i:05d}": 1 for i in range(self._keys)}

    def _made_endpoint(self) -> str:
        return self._client.meta.endpoint_url

    def change_one(self) -> None:
        """One change: mostly a new version of a key, sometimes a delete or a new key."""
        name = f"k{self._random.randrange(int(self._keys * 1.2)):05d}"
        shard = self.open_shards[int(name[1:]) % len(self.open_shards)]
        if name in self._versions and self._random.random() < 0.15:
            old = image(name, self._versions.pop(name))
            self._client.delete_item(TableName=self._made.table, Key=key(name))
            sequence = self._made.stream.put_record(shard, "REMOVE", key(name), old_image=old)
        else:
            version = self._versions.get(name, 0) + 1
            self._versions[name] = version
            self._client.put_item(TableName=self._made.table, Item=image(name, version))
            sequence = self._made.stream.put_record(shard, "MODIFY" if version > 1 else "INSERT", key(name),
                                                     new_image=image(name, version))
        self.first_sequence = self.first_sequence or sequence
        self.last_sequence = sequence
        self.changes += 1

    def rotate(self) -> None:
        """Close every open shard; each hands over to one child (DynamoDB's shard rollover)."""
        rotated = []
        for shard in self.open_shards:
            self._generation += 1
            child = shard_id(int(shard.split("-")[1]) + 100 * self._generation, f"{self._generation:08d}")
            self._made.stream.split_shard(shard, child)
            rotated.append(child)
        self.open_shards = rotated

    def run_until(self, done: Callable[[], bool], *, every: float = 0.02) -> None:
        """Write from a background thread until `done()` (checked between writes); shards go on
        rolling over until `stop()`, as DynamoDB rolls them over whether the table is written or not."""
        def write() -> None:
            rotated, writing = time.monotonic(), True
            while not self._stop.wait(every):
                writing = writing and not done()
                if writing:
                    self.change_one()
                if time.monotonic() - rotated >= self._rotate:
                    self.rotate()
                    rotated = time.monotonic()

        self._thread = threading.Thread(target=write, name="changing-table", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

