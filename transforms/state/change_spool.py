"""The change spool: stream records captured while the snapshot is copied, kept until it is.

A stream keeps a record 24 hours; copying a large table takes longer. So `migrate
--streams` (or `capture`, started even earlier) follows every shard from before the first
Scan and writes what it reads here, durably, instead of to the target: a change applied
before the snapshot's own write of an older version of the item would be overwritten by
it for good. Once the snapshot is written the spool is applied in order, then
replication goes on live from where the capture got to. This module owns every file of
it; `transforms.streams.capture` writes and applies them.

Layout under `<checkpoint_dir>/capture/`:

    streams/<table>/...          the capture's shard positions, in the replication
                                 checkpoints' format (`stream_checkpoints` under `root()`):
                                 what is durably in the spool, per shard
    spool/<table>/capture.json   {"began", "covered_since", "first_listing"}: what the capture
                                 holds (`Coverage`)
    spool/<table>/chunk-<n>.arrow  captured records in the order they were appended (a shard's
                                 in sequence order, a parent's before its children's):
                                 Arrow IPC, zstd-compressed, one chunk per flush
    spool/<table>/applied.json   {"chunk": n, "positions": {shard: sequence number}}: chunks
                                 up to n are on the target, and the last record applied of
                                 each shard (a record captured twice, after a restart, is
                                 applied once)
    spool/<table>/lease.json     {"owner": "host:pid", "heartbeat": epoch seconds}: one
                                 capture at a time

Arrow IPC rather than JSON lines: the columns (shard, sequence, time, event, keys, image)
compress well apart and a chunk is read back as one buffer. Keys and images are DynamoDB
JSON text, as the wire carries them. Every file is written whole (`state.files`).
"""
from __future__ import annotations

import functools
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import orjson

from transforms.errors import MigrateError, StateFileError
from transforms.items.ddb_json import decode_item, encode_item
from transforms.state import stream_checkpoints
from transforms.state import files
from transforms.state.files import delete, delete_tree, join, matching, read_bytes, read_json, write_bytes, write_json
from transforms.state.paths import file_name

if TYPE_CHECKING:
    import pyarrow as pa

LEASE_SECONDS = 30.0  # a capture that has not renewed its lease for this long is gone

_COLUMNS = ("shard", "sequence", "created", "event", "keys", "image")
_CHUNK_DIGITS = 12


@functools.cache
def _schema() -> pa.Schema:
    """The chunks' Arrow schema. pyarrow is imported by the functions that make or read a
    chunk, not with this module: a `replicate` with no spool to apply never needs it (with
    numpy, ~0.25 s of CPU at start-up)."""
    import pyarrow as pa  # noqa: PLC0415 - see above

    return pa.schema([
        ("shard", pa.dictionary(pa.int32(), pa.string())),
        ("sequence", pa.string()),
        ("created", pa.float64()),   # ApproximateCreationDateTime, epoch seconds
        ("event", pa.dictionary(pa.int8(), pa.string())),
        ("keys", pa.string()),       # DynamoDB JSON
        ("image", pa.string()),      # DynamoDB JSON of the NewImage; null for a REMOVE or a view without it
    ])


def root(checkpoint_dir: str) -> str:
    """Where the capture keeps its shard positions (a `checkpoint_dir` for `stream_checkpoints`)."""
    return join(checkpoint_dir, "capture")


def _dir(checkpoint_dir: str, table: str) -> str:
    return join(checkpoint_dir, "capture", "spool", table)


# --- what the capture covers ----------------------------------------------------------------

@dataclass
class Coverage:
    """What a table's capture holds: every change since `covered_since` (epoch seconds).

    A capture starts at each shard's oldest record, so it holds what the stream kept when it
    began (`began` less the stream's retention) as well as everything after. A shard of the
    first listing (`first_listing`) that is trimmed away before it is read held only changes
    made before the capture began, which the snapshot (read after it) holds too: that is no
    loss, only less coverage before `began`. Any other shard that leaves unread is a loss.
    """

    began: float
    covered_since: float
    first_listing: list[str] | None = None  # None until the first listing is recorded


def start(checkpoint_dir: str, table: str, stream_arn: str, retention_seconds: float) -> Coverage:
    """Tie the table's capture to its stream and note when it began (unless it already had).
    `ChangesLost` for another stream."""
    stream_checkpoints.bind_stream(root(checkpoint_dir), table, stream_arn)
    coverage = coverage_of(checkpoint_dir, table)
    if coverage is None:
        now = time.time()
        coverage = Coverage(now, now - retention_seconds)
        record_coverage(checkpoint_dir, table, coverage)
    return coverage


def coverage_of(checkpoint_dir: str, table: str) -> Coverage | None:
    """The table's capture's coverage, or None when it has no capture."""
    found = read_json(join(_dir(checkpoint_dir, table), "capture.json"))
    return None if found is None else Coverage(**found)


def record_coverage(checkpoint_dir: str, table: str, coverage: Coverage) -> None:
    write_json(join(_dir(checkpoint_dir, table), "capture.json"), asdict(coverage))


def forget(checkpoint_dir: str, table: str) -> None:
    """Drop the table's capture: its spool and positions."""
    delete_tree(_dir(checkpoint_dir, table))
    stream_checkpoints.forget(root(checkpoint_dir), table)


# --- chunks ------------------------------------------------------------------------------

class ChunkColumns:
    """A chunk being gathered: windows of stream records (as `StreamsData.get_records` gives
    them: items decoded) appended as the spool's columns, keys and images as DynamoDB JSON."""

    def __init__(self) -> None:
        self._columns: dict[str, list] = {name: [] for name in _COLUMNS}
        self.size = 0  # bytes of keys and images as JSON text

    def __len__(self) -> int:
        return len(self._columns["shard"])

    def append(self, shard: str, records: list[dict]) -> None:
        columns = self._columns
        for record in records:
            change = record["dynamodb"]
            keys = orjson.dumps(encode_item(change["Keys"])).decode()
            image = orjson.dumps(encode_item(change["NewImage"])).decode() if "NewImage" in change else None
            columns["shard"].append(shard)
            columns["sequence"].append(change["SequenceNumber"])
            columns["created"].append(float(change["ApproximateCreationDateTime"]))
            columns["event"].append(record["eventName"])
            columns["keys"].append(keys)
            columns["image"].append(image)
            self.size += len(keys) + len(image or "")

    def batch(self) -> pa.RecordBatch:
        import pyarrow as pa  # noqa: PLC0415 - see `_schema`

        columns, chunk_schema = self._columns, _schema()
        return pa.RecordBatch.from_arrays([
            pa.array(columns["shard"], pa.string()).dictionary_encode(),
            pa.array(columns["sequence"], pa.string()),
            pa.array(columns["created"], pa.float64()),
            pa.array(columns["event"], pa.string()).dictionary_encode().cast(chunk_schema.field("event").type),
            pa.array(columns["keys"], pa.string()),
            pa.array(columns["image"], pa.string()),
        ], schema=chunk_schema)


@dataclass(frozen=True)
class SpooledRecord:
    shard: str
    record: dict  # {"eventName", "dynamodb": {"Keys", "NewImage"?, "SequenceNumber", "ApproximateCreationDateTime"}}


def batch_to_records(batch: pa.RecordBatch, rows: list[int] | None = None) -> list[SpooledRecord]:
    """The records of a chunk's batch (those at `rows`, else all), in order, shaped as
    `StreamsData.get_records` gives them."""
    if rows is not None:
        import pyarrow as pa  # noqa: PLC0415 - see `_schema`

        batch = batch.take(pa.array(rows, pa.int64()))
    columns = {name: batch.column(name).to_pylist() for name in _COLUMNS}
    out = []
    for shard, sequence, created, event, keys, image in zip(*(columns[name] for name in _COLUMNS)):
        change = {"Keys": decode_item(orjson.loads(keys)), "SequenceNumber": sequence,
                  "ApproximateCreationDateTime": created}
        if image is not None:
            change["NewImage"] = decode_item(orjson.loads(image))
        out.append(SpooledRecord(shard, {"eventName": event, "dynamodb": change}))
    return out


def positions_and_keys(batch: pa.RecordBatch) -> tuple[list[str], list[str], list[str]]:
    """A chunk's shard, sequence number and keys (DynamoDB JSON text) columns, row by row: what
    choosing the rows to apply needs, without decoding an item."""
    return tuple(batch.column(name).to_pylist() for name in ("shard", "sequence", "keys"))


def encode_chunk(batch: pa.RecordBatch) -> bytes:
    """A chunk's bytes: the batch as an Arrow IPC stream, zstd-compressed."""
    import pyarrow as pa  # noqa: PLC0415 - see `_schema`

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, _schema(), options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def write_chunk(checkpoint_dir: str, table: str, number: int, batch: pa.RecordBatch) -> int:
    """Write chunk `number` of the table's spool (whole or not at all); its size in bytes."""
    data = encode_chunk(batch)
    write_bytes(join(_dir(checkpoint_dir, table), f"chunk-{number:0{_CHUNK_DIGITS}d}.arrow"), data)
    return len(data)


@dataclass(frozen=True)
class Chunk:
    number: int
    path: str
    size: int


def chunks(checkpoint_dir: str, table: str, after: int = -1) -> list[Chunk]:
    """The table's chunks numbered above `after`, in order (one listing)."""
    found = []
    for meta in files.listing(join(_dir(checkpoint_dir, table), "chunk-*.arrow")):
        name = file_name(meta.path)
        number = int(name[len("chunk-"):-len(".arrow")])
        if number > after:
            found.append(Chunk(number, meta.path, meta.size_in_bytes))
    return sorted(found, key=lambda c: c.number)


def read_chunk(path: str) -> pa.RecordBatch:
    """One chunk's records (a chunk is written as one batch)."""
    import pyarrow as pa  # noqa: PLC0415 - see `_schema`

    data = read_bytes(path)
    if data is None:
        raise StateFileError(f"the spool's chunk {path} is gone")
    batches = list(pa.ipc.open_stream(pa.BufferReader(data)))
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches, _schema()).combine_chunks().to_batches()[0]


# --- how far the spool is applied ------------------------------------------------------------

@dataclass
class Applied:
    chunk: int = -1                                       # chunks up to this one are on the target
    positions: dict[str, str] = field(default_factory=dict)  # shard -> last sequence number applied

    def is_new(self, shard: str, sequence: str) -> bool:
        """Whether a record was not applied yet (a record captured twice is applied once)."""
        applied = self.positions.get(shard)
        return applied is None or int(sequence) > int(applied)


def applied(checkpoint_dir: str, table: str) -> Applied:
    mark = read_json(join(_dir(checkpoint_dir, table), "applied.json"))
    return Applied() if mark is None else Applied(mark["chunk"], mark["positions"])


def mark_applied(checkpoint_dir: str, table: str, mark: Applied) -> None:
    write_json(join(_dir(checkpoint_dir, table), "applied.json"),
               {"chunk": mark.chunk, "positions": mark.positions})


# --- one capture at a time ---------------------------------------------------------------------

def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def take_lease(checkpoint_dir: str, table: str, now: float | None = None) -> None:
    """Claim the table's capture for this process (renew it with the same call), or a
    MigrateError (exit 2) naming the process that holds it."""
    now = time.time() if now is None else now
    path = join(_dir(checkpoint_dir, table), "lease.json")
    lease = read_json(path)
    if lease is not None and lease["owner"] != owner() and now - lease["heartbeat"] < LEASE_SECONDS \
            and _alive(lease["owner"]):
        raise MigrateError(
            f"{table}: a capture of its stream is running ({lease['owner']}, last seen {now - lease['heartbeat']:.0f} s "
            f"ago): stop it first (Ctrl-C); this command then continues its spool")
    write_json(path, {"owner": owner(), "heartbeat": now})


def _alive(holder: str) -> bool:
    """Whether a lease's owner may still run: on this host, whether its process does (a run
    killed a moment ago frees its lease at once); elsewhere, assume so."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def release_lease(checkpoint_dir: str, table: str) -> None:
    path = join(_dir(checkpoint_dir, table), "lease.json")
    lease = read_json(path)
    if lease is not None and lease["owner"] == owner():
        delete([path])


def has_capture(checkpoint_dir: str, table: str) -> bool:
    """Whether the table has a capture not yet handed over to replication."""
    return coverage_of(checkpoint_dir, table) is not None or bool(matching(
        join(_dir(checkpoint_dir, table), "chunk-*.arrow")))


def hand_over(checkpoint_dir: str, table: str, stream_arn: str) -> None:
    """Once the whole spool is applied: the capture's positions become the table's replication
    checkpoints (live replication continues after them), then the capture is dropped. Safe to
    repeat after a crash: positions only move forward, and a spool found again is applied
    again from its `applied` mark."""
    captured = stream_checkpoints.all_shards(root(checkpoint_dir), table)
    stream_checkpoints.bind_stream(checkpoint_dir, table, stream_arn)
    with ThreadPoolExecutor(16) as pool:  # a thousand shards: a thousand small writes to the store
        list(pool.map(lambda item: stream_checkpoints.write_shard(checkpoint_dir, table, *item), captured.items()))
    forget(checkpoint_dir, table)
