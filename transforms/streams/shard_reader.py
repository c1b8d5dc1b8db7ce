"""Apply DynamoDB Streams shards to the target, in order, one window at a time.

For each shard task: get an iterator (AFTER the checkpointed sequence number, or
TRIM_HORIZON), then repeat: GetRecords (one window of up to 1000 records), collapse the
window to the last change per key, write it as BatchWriteItem puts and deletes through
the writer (one node per partition key), and only once the target acknowledged it,
checkpoint the window's last sequence number. The next window of a shard never starts
before the previous one is acknowledged, so changes to a key are applied in order.

INSERT/MODIFY with a NewImage become a full-item put, REMOVE a delete. For KEYS_ONLY
and OLD_IMAGE streams the current item is read from the source (consistent) and put,
or deleted if gone. A round reads each shard up to its current end (an empty page on
an open shard) or to its close (no next iterator: the shard is finished). A shard
that cannot go on leaves a stop note (see `stream_checkpoints.write_stop`) instead of
failing the pipeline, so the launcher can name the problem on any runner.

`transforms.replicate` wraps it as the public `ReplicateShards` and `FollowStreams`.
"""
from __future__ import annotations

import datetime
import time
from typing import Mapping

from transforms import metrics
from transforms.dynamo.endpoints import SourceSpec, TargetSpec, source_client, streams_client
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.point_reads import get_items
from transforms.dynamo.retry import call_with_retry, error_code
from transforms.dynamo.writer import FailedWrite, WriterSettings, collapse_by_key, delete, open_writer, put
from transforms.errors import ChangesLost, MigrateError, WritesFailed
from transforms.items.keys import key_of
from transforms.items.renames import RenameConflict
from transforms.state import stream_checkpoints
from transforms.state.dead_letters import write_dead_letters
from transforms.state.storage import StorageOptions
from transforms.state.stream_checkpoints import ShardCheckpoint
from transforms.streams.shards import ShardTask
from transforms.table_pair import TablePair

WINDOW_RECORDS = 1000
# DynamoDB Streams serves at most 5 GetRecords calls per second per shard.
MIN_SECONDS_BETWEEN_READS = 0.2


def _epoch(value) -> float:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return float(value)


class ReplicateShardFn(LoopDoFn):
    """Applies each `ShardTask` up to its shard's current end (see the module docstring)."""

    def __init__(self, source: SourceSpec, target: TargetSpec, pairs: Mapping[str, TablePair],
                 checkpoint_dir: str, dead_letter_dir: str, writer: WriterSettings, read_attempts: int,
                 storage: StorageOptions):
        self._source, self._target = source, target
        self._pairs = dict(pairs)
        self._checkpoint_dir, self._dead_letter_dir = checkpoint_dir, dead_letter_dir
        self._writer_settings = writer
        self._max_attempts = read_attempts
        self._storage = storage

    def open_clients(self):
        self._storage.install()
        self._streams = self.loop.enter(streams_client(self._source))
        self._source_items = self.loop.enter(source_client(self._source))
        self._writer = self.loop.enter(open_writer(self._target, self._writer_settings))

    def _call(self, operation, **kwargs):
        return self.loop.run(call_with_retry(lambda: operation(**kwargs), max_attempts=self._max_attempts))

    def _iterator(self, task: ShardTask, after: str | None) -> str:
        kwargs = {"StreamArn": task.stream_arn, "ShardId": task.shard_id}
        kwargs.update({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after
                      else {"ShardIteratorType": "TRIM_HORIZON"})
        try:
            return self._call(self._streams.get_shard_iterator, **kwargs)["ShardIterator"]
        except Exception as exc:  # noqa: BLE001 - botocore builds exception classes per client
            if error_code(exc) == "TrimmedDataAccessException":
                raise ChangesLost(
                    f"{task.table}: shard {task.shard_id} no longer holds the changes after sequence number "
                    f"{after} (the stream keeps 24 hours): changes were lost; copy the table again with "
                    f"`migrate --streams --restart`") from None
            raise

    def process(self, task: ShardTask):
        self._replicate_or_stop(task)

    def _replicate_or_stop(self, task: ShardTask) -> bool:
        """Apply the shard up to its current end; True when it needs no more reading
        (closed and fully applied, or stopped with a note for the launcher)."""
        try:
            return self._replicate(task)
        except MigrateError as exc:
            stream_checkpoints.write_stop(self._checkpoint_dir, task.table, exc)
        return True

    def _replicate(self, task: ShardTask) -> bool:
        table = self._pairs[task.table]
        checkpoint = stream_checkpoints.read_shard(self._checkpoint_dir, task.table, task.shard_id)
        if checkpoint is None:  # known from now on: if it leaves the stream unfinished, that is a loss
            checkpoint = ShardCheckpoint()
            stream_checkpoints.write_shard(self._checkpoint_dir, task.table, task.shard_id, checkpoint)
        applied = metrics.counter(task.table, "changes_applied")
        iterator = self._iterator(task, checkpoint.sequence_number)
        last_call = 0.0
        while True:
            time.sleep(max(0.0, last_call + MIN_SECONDS_BETWEEN_READS - time.monotonic()))
            last_call = time.monotonic()
            try:
                page = self._call(self._streams.get_records, ShardIterator=iterator, Limit=WINDOW_RECORDS)
            except Exception as exc:  # noqa: BLE001 - botocore builds exception classes per client
                if error_code(exc) != "ExpiredIteratorException":
                    raise
                iterator = self._iterator(task, checkpoint.sequence_number)
                continue
            records = page.get("Records", [])
            next_iterator = page.get("NextShardIterator")
            if records:
                self._apply(table, records, window=f"{task.shard_id}-{records[0]['dynamodb']['SequenceNumber']}")
                applied.inc(len(records))
                checkpoint = ShardCheckpoint(records[-1]["dynamodb"]["SequenceNumber"], False,
                                             checkpoint.applied + len(records),
                                             _epoch(records[-1]["dynamodb"]["ApproximateCreationDateTime"]))
            if not next_iterator:
                checkpoint = ShardCheckpoint(checkpoint.sequence_number, True, checkpoint.applied,
                                             checkpoint.last_change_time)
            if records or not next_iterator:
                stream_checkpoints.write_shard(self._checkpoint_dir, task.table, task.shard_id, checkpoint)
            if not records or not next_iterator:
                return not next_iterator
            iterator = next_iterator

    def _apply(self, table: TablePair, records: list[dict], window: str) -> None:
        """Write one window, collapsed to the last change per key; raise if any write failed.

        A change the renames cannot map (the item holds an attribute and its new name) is
        dead-lettered and the rest of the window is written: retrying cannot fix it."""
        without_image = any(r["eventName"] != "REMOVE" and "NewImage" not in r["dynamodb"] for r in records)
        if without_image:  # KEYS_ONLY or OLD_IMAGE: the source's current item decides
            keys = list({key_of(r["dynamodb"]["Keys"], table.source_key_names): r["dynamodb"]["Keys"]
                         for r in records}.items())
            current = self.loop.run(get_items(self._source_items, table.source, [k for _, k in keys],
                                               table.source_key_names, max_attempts=self._max_attempts))
            changes = [put(current[ref]) if ref in current else delete(key) for ref, key in keys]
        else:
            changes = collapse_by_key([delete(r["dynamodb"]["Keys"]) if r["eventName"] == "REMOVE"
                                       else put(r["dynamodb"]["NewImage"]) for r in records], table.source_key_names)
        requests, refused = [], []
        for change in changes:
            try:
                requests.append(put(table.to_target(change["PutRequest"]["Item"])) if "PutRequest" in change
                                else delete(table.to_target(change["DeleteRequest"]["Key"])))
            except RenameConflict as exc:
                refused.append(FailedWrite(table.target, change, f"RenameConflict: {exc}"))
        outcome = self.loop.run(self._writer.write(table.target, requests, table.key_names[0]))
        if outcome.failures or refused:
            paths = write_dead_letters(self._dead_letter_dir, outcome.failures + refused, name=window)
        if outcome.failures:
            raise WritesFailed(f"{table.source}: {len(outcome.failures)} changes could not be written after "
                               f"{self._writer_settings.max_attempts} attempts (in {', '.join(paths)}); replication of "
                               f"this shard stopped before them and resumes there on the next run")
