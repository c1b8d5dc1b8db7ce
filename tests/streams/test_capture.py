"""The change spool: windows written as chunks (the capture's positions follow them), and
chunks applied in order, a record captured twice applied once, an interrupted apply resumed.

The applier writes to the Alternator front (moto behind it), as replication does.
"""
from __future__ import annotations

import asyncio

import pytest

from testbed import seed
from tests.support.cli_runs import unique
from transforms.dynamo.endpoints import SourceSpec, TargetSpec
from transforms.dynamo.writer import WriterSettings
from transforms.errors import WritesFailed
from transforms.state import change_spool, stream_checkpoints
from transforms.state.stream_checkpoints import CheckpointWriter, ShardCheckpoint
from transforms.streams.capture import SpoolSink, open_spool_applier
from transforms.streams.engine import ReplicationSettings
from transforms.streams.shards import ShardTask
from transforms.table_pair import TablePair

A, B = "shardId-00000000000000000001-aaaaaaaa", "shardId-00000000000000000002-bbbbbbbb"


def _record(n: int, name: str, version: int | None) -> dict:
    """Stream record number `n`: a put of `name` at `version`, or its removal (None)."""
    change = {"Keys": {"id": {"S": name}}, "SequenceNumber": f"{n:021d}", "ApproximateCreationDateTime": 1.0e9 + n}
    if version is not None:
        change["NewImage"] = {"id": {"S": name}, "version": {"N": str(version)}, "blob": {"B": bytes([n % 256])}}
    return {"eventName": "REMOVE" if version is None else "MODIFY", "dynamodb": change}


def _checkpoint(n: int) -> ShardCheckpoint:
    return ShardCheckpoint(f"{n:021d}", False, n, 1.0e9 + n)


def _task(shard: str) -> ShardTask:
    return ShardTask("T", "arn:stream", shard)


def test_chunks_are_written_in_order_and_positions_move_only_once_written(tmp_path):
    spool = str(tmp_path)
    pair = TablePair("T", "T", ("id",))

    async def run() -> None:
        checkpoints = CheckpointWriter(change_spool.root(spool), period=3600)
        sink = SpoolSink(spool, checkpoints, flush_records=5, linger_seconds=3600)
        await sink.take(_task(A), pair, [_record(n, f"k{n}", 1) for n in (1, 2, 3)], _checkpoint(3))
        await checkpoints.flush()
        assert change_spool.chunks(spool, "T") == []  # buffered: not durable, so no position either
        assert stream_checkpoints.read_shard(change_spool.root(spool), "T", A) is None

        await sink.take(_task(B), pair, [_record(n, f"k{n}", 1) for n in (4, 5, 6)], _checkpoint(6))  # 6 >= 5
        await sink.take(_task(A), pair, [_record(7, "k1", None)], _checkpoint(7))
        await checkpoints.flush()
        assert [c.number for c in change_spool.chunks(spool, "T")] == [0]
        assert stream_checkpoints.read_shard(change_spool.root(spool), "T", A) == _checkpoint(3)
        assert stream_checkpoints.read_shard(change_spool.root(spool), "T", B) == _checkpoint(6)

        await sink.settle("T")  # a closing shard's records: written at once
        await sink.close()
        await checkpoints.close()
        assert stream_checkpoints.read_shard(change_spool.root(spool), "T", A) == _checkpoint(7)

        again = SpoolSink(spool, CheckpointWriter(change_spool.root(spool)))  # a later run continues the numbering
        await again.take(_task(B), pair, [_record(8, "k9", 1)], _checkpoint(8))
        await again.close()

    asyncio.run(run())
    chunks = change_spool.chunks(spool, "T")
    assert [c.number for c in chunks] == [0, 1, 2]
    spooled = [s for c in chunks for s in change_spool.batch_to_records(change_spool.read_chunk(c.path))]
    assert [(s.shard, int(s.record["dynamodb"]["SequenceNumber"])) for s in spooled] == \
        [(A, 1), (A, 2), (A, 3), (B, 4), (B, 5), (B, 6), (A, 7), (B, 8)]
    assert spooled[0].record == _record(1, "k1", 1)  # every type back as read (bytes, numbers as text)
    assert "NewImage" not in spooled[6].record["dynamodb"] and spooled[6].record["eventName"] == "REMOVE"


def test_a_window_whose_every_record_was_refused_moves_its_position_after_the_chunk_before_it(tmp_path):
    """A Kinesis window can be left with no record (each older than a change of its key already
    taken): no chunk, but the shard's position still moves, once what it took before is written."""
    spool = str(tmp_path)
    pair = TablePair("T", "T", ("id",))

    async def run() -> None:
        checkpoints = CheckpointWriter(change_spool.root(spool), period=3600)
        sink = SpoolSink(spool, checkpoints, flush_records=100, linger_seconds=3600)
        await sink.take(_task(A), pair, [_record(1, "k1", 1)], _checkpoint(1))
        await sink.take(_task(A), pair, [], _checkpoint(2))
        await checkpoints.flush()
        assert stream_checkpoints.read_shard(change_spool.root(spool), "T", A) is None  # k1 is not written yet
        await sink.settle("T")
        await sink.take(_task(A), pair, [], _checkpoint(3))
        await sink.settle("T")
        await checkpoints.close()

    asyncio.run(run())
    assert [c.number for c in change_spool.chunks(spool, "T")] == [0]
    assert stream_checkpoints.read_shard(change_spool.root(spool), "T", A) == _checkpoint(3)


@pytest.mark.integration
def _spooled_table(alternator, spool: str, chunks: list[list[tuple[str, dict]]],
                   writer_settings: WriterSettings):
    """A target table and a spool of `chunks` for it; the table's name and a function that applies
    what of the spool is not applied yet (the number of chunks it applied)."""
    name = unique("spool")
    seed.create_table(alternator.url, name, **seed.keyed_by("id"))
    for number, rows in enumerate(chunks):
        chunk = change_spool.ChunkColumns()
        for shard, record in rows:
            chunk.append(shard, [record])
        change_spool.write_chunk(spool, name, number, chunk.batch())
    settings = ReplicationSettings(
        SourceSpec(endpoint=alternator.url),
        TargetSpec(alternator_seeds=("127.0.0.1",), alternator_port=alternator.port),
        {name: TablePair(name, name, ("id",))}, spool, f"{spool}/dead", writer_settings, read_attempts=2)

    def apply() -> int:
        async def run() -> int:
            async with open_spool_applier(settings) as applier:
                return await applier.apply_available(name)
        return asyncio.run(run())
    return name, apply


def _versions(alternator, name: str) -> dict[str, int]:
    return {i["id"]["S"]: int(i["version"]["N"]) for i in seed.scan_all(alternator.url, name)}


def test_the_spool_is_applied_in_order_once_and_resumes_after_failed_writes(alternator_clean, tmp_path):
    spool = str(tmp_path)
    chunks = [
        [(A, _record(1, "a", 1)), (B, _record(2, "b", 1))],
        [(A, _record(1, "a", 1)), (A, _record(3, "a", 2)), (B, _record(4, "b", None))],  # 1 captured twice
        [(A, _record(5, "a", 3)), (B, _record(6, "c", 1))],
    ]
    name, apply = _spooled_table(alternator_clean, spool, chunks,
                                 WriterSettings(max_items_per_batch=100, concurrency=4, max_attempts=2))

    alternator_clean.front.set_faults(server_error=1.0, ops=["BatchWriteItem"])
    with pytest.raises(WritesFailed):
        apply()
    assert change_spool.applied(spool, name).chunk == -1  # nothing counted as applied
    alternator_clean.front.set_faults()

    assert apply() == 3
    assert _versions(alternator_clean, name) == {"a": 3, "c": 1}
    mark = change_spool.applied(spool, name)
    assert mark.chunk == 2 and mark.positions == {A: f"{5:021d}", B: f"{6:021d}"}
    assert apply() == 0  # nothing left


def test_chunks_cut_in_many_writes_are_applied_in_order_without_waiting_chunk_by_chunk(alternator_clean, tmp_path):
    """Two items a request, one request at a time: a chunk is many slices, handed on ahead of
    their acknowledgement and across chunks; every key still ends at its last change, and the
    mark at the last chunk, each shard's last record."""
    spool = str(tmp_path)
    keys = [f"k{n}" for n in range(7)]
    chunks = [
        [(A, _record(1 + n, key, 1)) for n, key in enumerate(keys)],
        [(B, _record(10 + n, key, 2 if n % 2 else None)) for n, key in enumerate(keys)]  # deletes and puts
        + [(A, _record(20, "k0", 5))],
        [(A, _record(21, "k0", 6)), (A, _record(22, "k1", 3)), (A, _record(23, "k0", 7))],  # k0 twice in a chunk
    ]
    name, apply = _spooled_table(alternator_clean, spool, chunks,
                                 WriterSettings(max_items_per_batch=2, concurrency=1, max_attempts=2))

    assert apply() == 3

    assert _versions(alternator_clean, name) == {"k0": 7, "k1": 3, "k3": 2, "k5": 2}
    mark = change_spool.applied(spool, name)
    assert mark.chunk == 2 and mark.positions == {A: f"{23:021d}", B: f"{16:021d}"}
    assert apply() == 0


def test_a_chunk_never_overtakes_an_earlier_one_on_a_key(alternator_clean, tmp_path):
    """Chunk 1's write (p, q) waits for chunk 0's (p); chunk 2's (q) must wait for chunk 1's,
    although nothing in flight names q."""
    spool = str(tmp_path)
    chunks = [[(A, _record(1, "p", 1))], [(A, _record(2, "p", 2)), (A, _record(3, "q", 2))], [(A, _record(4, "q", 3))]]
    name, apply = _spooled_table(alternator_clean, spool, chunks,
                                 WriterSettings(max_items_per_batch=2, concurrency=1, max_attempts=2))

    assert apply() == 3

    assert _versions(alternator_clean, name) == {"p": 2, "q": 3}
