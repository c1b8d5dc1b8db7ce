"""Replication checkpoints: per shard, the last sequence number the target acknowledged.

Layout under `<checkpoint_dir>/streams/<source table>/`:

    stream.json               {"stream_arn": ...}  the stream these checkpoints belong to
    shards/<shard id>.json    {"sequence_number", "finished", "applied", "last_change_time"}
    stopped.json              {"code", "message", "traceback"?}  why a shard could not go on

A shard file is rewritten only after a window of its changes was acknowledged by the
target, so it only ever moves forward; a restart continues AFTER that sequence number.
`finished` marks a closed shard read to its end: its children may start.
`CheckpointWriter` writes them off the event loop, the latest of each shard at most a
second late (a restart then replays a little more, which is safe), a finished parent
at once.
"""
from __future__ import annotations

import asyncio
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass


from transforms.errors import ChangesLost, ExitCode, MigrateError
from transforms.state.files import delete, delete_tree, exists, join, listing, matching, read_json, write_json
from transforms.state.paths import file_name


@dataclass(frozen=True)
class ShardCheckpoint:
    sequence_number: str | None = None  # last applied; None = nothing applied yet
    finished: bool = False
    applied: int = 0                    # changes applied from this shard, all runs
    last_change_time: float | None = None  # ApproximateCreationDateTime of the last applied change


def _dir(checkpoint_dir: str, table: str) -> str:
    return join(checkpoint_dir, "streams", table)


def forget(checkpoint_dir: str, table: str) -> None:
    """Drop a table's replication checkpoints (a new snapshot starts a new replication)."""
    delete_tree(_dir(checkpoint_dir, table))


def bind_stream(checkpoint_dir: str, table: str, stream_arn: str) -> None:
    """Tie the table's checkpoints to its stream; refuse checkpoints of another stream."""
    path = join(_dir(checkpoint_dir, table), "stream.json")
    recorded = read_json(path)
    if recorded is None:
        write_json(path, {"stream_arn": stream_arn})
    elif recorded["stream_arn"] != stream_arn:
        raise ChangesLost(
            f"{table}: the checkpoints are for stream {recorded['stream_arn']}, but the table's stream is now "
            f"{stream_arn} (the stream was disabled and enabled again): changes between the two streams are "
            f"lost; copy the table again with `migrate --streams --restart`")


def read_shard(checkpoint_dir: str, table: str, shard_id: str) -> ShardCheckpoint | None:
    obj = read_json(join(_dir(checkpoint_dir, table), "shards", f"{shard_id}.json"))
    return ShardCheckpoint(**obj) if obj is not None else None


def write_shard(checkpoint_dir: str, table: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
    write_json(join(_dir(checkpoint_dir, table), "shards", f"{shard_id}.json"), asdict(checkpoint))


class CheckpointWriter:
    """Shard checkpoints written from threads, so a slow filesystem (gs://) never stalls reads.

    `update` keeps the latest checkpoint of a shard and writes it within `period`
    seconds; `write_now` returns once the file is written (a finished parent, before its
    children start). Writes of one shard never overtake each other: batches are written
    one at a time. Use it on one event loop; `close` writes what is left.
    """

    def __init__(self, checkpoint_dir: str, period: float = 1.0, threads: int = 8):
        self._dir, self._period = checkpoint_dir, period
        self._pending: dict[tuple[str, str], ShardCheckpoint] = {}
        self._batch = asyncio.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="stream-checkpoints")
        self._timer: asyncio.Task | None = None

    def update(self, table: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        self._pending[(table, shard_id)] = checkpoint
        if self._timer is None:
            self._timer = asyncio.create_task(self._every_period())

    async def write_now(self, table: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        async with self._batch:
            self._pending.pop((table, shard_id), None)
            await asyncio.get_running_loop().run_in_executor(self._pool, write_shard, self._dir, table, shard_id,
                                                             checkpoint)

    async def flush(self) -> None:
        """Write every pending checkpoint now."""
        async with self._batch:
            batch, self._pending = self._pending, {}
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(self._pool, write_shard, self._dir, table, shard, checkpoint)
                                   for (table, shard), checkpoint in batch.items()))

    async def _every_period(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            await self.flush()

    async def close(self) -> None:
        """Stop the timer, let writes already started finish, then write what is pending (also when cancelled)."""
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        self._pool.shutdown(wait=True)  # a write in a thread must land before a newer one of its shard
        for (table, shard), checkpoint in self._pending.items():
            write_shard(self._dir, table, shard, checkpoint)
        self._pending.clear()


def all_shards(checkpoint_dir: str, table: str) -> dict[str, ShardCheckpoint]:
    """Every shard's checkpoint, read 16 at a time: a thousand shards are a thousand small
    reads, each a round trip on gs:// or s3://."""
    paths = matching(join(_dir(checkpoint_dir, table), "shards", "*.json"))
    with ThreadPoolExecutor(16) as pool:
        found = pool.map(read_json, paths)
        return {file_name(path)[:-len(".json")]: ShardCheckpoint(**checkpoint)
                for path, checkpoint in zip(paths, found)}


def last_written(checkpoint_dir: str, table: str) -> float | None:
    """When the newest shard checkpoint of the table was written (epoch seconds; None: none is)."""
    times = [meta.last_updated_in_seconds
             for meta in listing(join(_dir(checkpoint_dir, table), "shards", "*.json"))]
    return max(times) if times and any(times) else None


def applied_changes(checkpoint_dir: str, table: str) -> int | None:
    """Changes applied by earlier replication of the table, or None when it has no checkpoints."""
    shards = all_shards(checkpoint_dir, table)
    if not shards and read_json(join(_dir(checkpoint_dir, table), "stream.json")) is None:
        return None
    return sum(shard.applied for shard in shards.values())


def _stop_path(checkpoint_dir: str, table: str) -> str:
    return join(_dir(checkpoint_dir, table), "stopped.json")


class ShardStopped(MigrateError):
    """A stop note read back: the error a shard stopped with, and the traceback of the
    unexpected error behind it (None where the message says everything)."""

    def __init__(self, message: str, code: ExitCode, details: str | None = None):
        super().__init__(message, code)
        self.details = details


def write_stop(checkpoint_dir: str, table: str, error: MigrateError) -> None:
    """Note why a shard of this table could not go on, with the exit code it means (read
    by the launcher after a round, or by the streaming job's next discovery). The error's
    cause (`raise ... from exc`) goes with it as a traceback: the worker that caught it may
    be another machine, and the launcher puts it in the run's log file."""
    note = {"code": int(error.code), "message": str(error)}
    if error.__cause__ is not None:
        note["traceback"] = "".join(traceback.format_exception(error.__cause__))
    write_json(_stop_path(checkpoint_dir, table), note)


def read_stop(checkpoint_dir: str, table: str) -> ShardStopped | None:
    """The error a shard of this table stopped with, or None."""
    note = read_json(_stop_path(checkpoint_dir, table))
    return None if note is None else ShardStopped(note["message"], ExitCode(note["code"]), note.get("traceback"))


def clear_stop(checkpoint_dir: str, table: str) -> None:
    path = _stop_path(checkpoint_dir, table)
    if exists(path):
        delete([path])
