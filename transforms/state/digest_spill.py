"""Validation digests spilled to bucket files on local disk, read back one bucket at a time.

On a local runner a CoGroupByKey is held in memory until every digest of both tables
has arrived, so memory grows with the tables (docs/design.md has the measurement).
Spilled, the scan side holds
one write buffer and the compare side one bucket, whatever the table's size.

Layout under the spill folder (a run's own, deleted when the run ends):

    <side>/<table>/b0000012-<bundle>.bin    records of bucket 12 from one bundle

A record is key digest (16 bytes), content digest (16), key length (4, big-endian) and
the key, pickled (read back only for keys whose digests differ). Each bundle appends to
files of its own and hands their names downstream, so files of a failed bundle attempt
are never read, and a retried bundle cannot add its records twice.

Local disk only (plain file appends): the spill path is for runners whose workers share
the launcher's machine; distributed runners shuffle through their own spilling service.
"""
from __future__ import annotations

import os
import pickle
import struct
import uuid
from typing import Iterable, Iterator

__all__ = ["BucketFiles", "read_records"]

_HEAD = struct.Struct(">16s16sI")


class BucketFiles:
    """One bundle's spill: records buffered per (table, bucket), appended to the bucket's file
    whenever the buffers together pass `buffer_bytes`.

    Args:
        directory: this side's spill folder (`<spill>/<side>`).
        buffer_bytes: how much to hold before appending to the files.
    """

    def __init__(self, directory: str, buffer_bytes: int = 16 << 20):
        self._dir = directory
        self._limit = buffer_bytes
        self._bundle = uuid.uuid4().hex
        self._buffers: dict[tuple[str, int], bytearray] = {}
        self._buffered = 0
        self._paths: dict[tuple[str, int], str] = {}

    def add(self, table: str, bucket: int, key_digest: bytes, content_digest: bytes, key: dict) -> None:
        raw = pickle.dumps(key, protocol=pickle.HIGHEST_PROTOCOL)
        buffer = self._buffers.setdefault((table, bucket), bytearray())
        buffer += _HEAD.pack(key_digest, content_digest, len(raw))
        buffer += raw
        self._buffered += _HEAD.size + len(raw)
        if self._buffered >= self._limit:
            self._append_all()

    def close(self) -> list[tuple[tuple[str, int], str]]:
        """Append what is buffered; every ((table, bucket), file) this bundle wrote."""
        self._append_all()
        return sorted(self._paths.items())

    def _append_all(self) -> None:
        for where, buffer in self._buffers.items():
            if buffer:
                with open(self._path(*where), "ab") as f:
                    f.write(buffer)
        self._buffers.clear()
        self._buffered = 0

    def _path(self, table: str, bucket: int) -> str:
        path = self._paths.get((table, bucket))
        if path is None:
            folder = os.path.join(self._dir, table)
            os.makedirs(folder, exist_ok=True)
            path = self._paths[(table, bucket)] = os.path.join(folder, f"b{bucket:07d}-{self._bundle}.bin")
        return path


def read_records(paths: Iterable[str]) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(key digest, content digest, pickled key) of every record in the files."""
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        offset = 0
        while offset < len(data):
            key_digest, content_digest, size = _HEAD.unpack_from(data, offset)
            offset += _HEAD.size
            yield key_digest, content_digest, data[offset:offset + size]
            offset += size
