"""Small files and folders on any Beam filesystem (local paths, gs://, s3://).

Every write is whole or not at all: the bytes go to a temporary name first and are then
renamed over the path, so a reader (or a restart after a kill) never sees half a file.
Only "nothing is there" is benign; any other storage error (a missing bucket, no
permission, an unconfigured filesystem) is a `StorageError` naming the path, never a
silent empty answer.
"""
from __future__ import annotations

import json
import uuid
from typing import Iterable

from apache_beam.io.filesystems import FileSystems

from transforms.errors import StorageError


def _storage_error(action: str, path: str, exc: Exception) -> StorageError:
    cause = getattr(exc, "exception_details", None) or exc
    if isinstance(cause, dict):  # Beam's BeamIOError: {path: underlying error}
        cause = next(iter(cause.values()))
    return StorageError(f"cannot {action} {path}: {type(cause).__name__}: {cause}")


def exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception as exc:  # noqa: BLE001 - each Beam filesystem raises its own errors
        raise _storage_error("check", path, exc) from exc


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when there is no such file."""
    if not exists(path):
        return None
    try:
        with FileSystems.open(path) as f:
            return f.read()
    except Exception as exc:  # noqa: BLE001
        raise _storage_error("read", path, exc) from exc


def write_bytes(path: str, data: bytes) -> None:
    """Write whole or not at all (a temporary name, then a rename over `path`)."""
    write_chunks(path, [data])


def write_chunks(path: str, chunks: Iterable[bytes]) -> None:
    """Write chunks as they come (nothing held in memory), whole or not at all."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with FileSystems.create(temporary) as f:
            for chunk in chunks:
                f.write(chunk)
        FileSystems.rename([temporary], [path])
    except Exception as exc:  # noqa: BLE001
        raise _storage_error("write", path, exc) from exc


def read_json(path: str) -> dict | None:
    """The file's JSON, or None when there is no such file."""
    data = read_bytes(path)
    return None if data is None else json.loads(data.decode("utf-8"))


def write_json(path: str, obj) -> None:
    write_bytes(path, json.dumps(obj).encode("utf-8"))


def listing(pattern: str) -> list:
    """The files matching a glob, as Beam's `FileMetadata` (path, size_in_bytes); none when
    nothing (or no folder) is there."""
    try:
        return list(FileSystems.match([pattern])[0].metadata_list)
    except Exception as exc:  # noqa: BLE001
        raise _storage_error("list", pattern, exc) from exc


def matching(pattern: str) -> list[str]:
    """Paths matching a glob; none when nothing (or no folder) is there."""
    return [meta.path for meta in listing(pattern)]


def delete(paths: list[str]) -> None:
    if not paths:
        return
    try:
        FileSystems.delete(paths)
    except Exception as exc:  # noqa: BLE001
        raise _storage_error("delete", paths[0], exc) from exc


def delete_tree(directory: str, depth: int = 3) -> None:
    """Delete a folder and what is in it, `depth` levels down."""
    if "://" not in directory:  # local: the folder itself, recursively
        if exists(directory):
            delete([directory])
        return
    # Object stores have no folders to test or delete: delete the objects under the prefix.
    delete([p for level in range(1, depth + 1) for p in matching(FileSystems.join(directory, *["*"] * level))])
