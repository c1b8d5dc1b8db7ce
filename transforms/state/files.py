"""Small files and folders on local disk or an object store (gs://, s3://).

Every write is whole or not at all: the bytes go to a temporary name first and are then
renamed over the path, so a reader (or a restart after a kill) never sees half a file.
Only "nothing is there" is benign; any other storage error (a missing bucket, no
permission, an unconfigured filesystem) is a `StateFileError` naming the path, never a
silent empty answer.

Object stores go through Beam's filesystems, with the options `StorageOptions.install`
gave this process. A local path is served with the standard library, as Beam's own
`LocalFileSystem` serves it (a rename over the path, a folder deleted whole, a glob's `*`
within one name), so that a command whose state is a local folder and which runs no
pipeline (the local replication follower, `capture`, `plan`) does not import Beam: about
1.5 s of CPU.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import time
import uuid
from typing import Iterable, NamedTuple

from transforms.errors import StateFileError


class FileInfo(NamedTuple):
    """A listed file: its path and size (what Beam's `FileMetadata` gives, for either kind of path)."""

    path: str
    size_in_bytes: int
    last_updated_in_seconds: float | None = None  # when it was last written (epoch), where the store says


def run_name() -> str:
    """The folder name of a run that starts now (dead letters, validation findings): its start
    time, then a random suffix, so two runs in the same second never share a folder, nor the
    counts read back from it. Sorted names are in start order to the second."""
    return time.strftime("run-%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def _beam():
    from apache_beam.io.filesystems import FileSystems  # noqa: PLC0415 - object stores only (see the docstring)

    return FileSystems


def _state_file_error(action: str, path: str, exc: Exception) -> StateFileError:
    cause = getattr(exc, "exception_details", None) or exc
    if isinstance(cause, dict):  # Beam's BeamIOError: {path: underlying error}
        cause = next(iter(cause.values()))
    return StateFileError(f"cannot {action} {path}: {type(cause).__name__}: {cause}")


def join(base: str, *parts: str) -> str:
    """`base/part/...` in the path's own convention."""
    return os.path.join(base, *parts) if is_local(base) else _beam().join(base, *parts)


def exists(path: str) -> bool:
    try:
        return os.path.exists(_local(path)) if is_local(path) else _beam().exists(path)
    except Exception as exc:  # noqa: BLE001 - each Beam filesystem raises its own errors
        raise _state_file_error("check", path, exc) from exc


def read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when there is no such file."""
    if is_local(path):
        try:
            with open(_local(path), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _state_file_error("read", path, exc) from exc
    if not exists(path):
        return None
    try:
        with _beam().open(path) as f:
            return f.read()
    except Exception as exc:  # noqa: BLE001
        raise _state_file_error("read", path, exc) from exc


def write_bytes(path: str, data: bytes) -> None:
    """Write whole or not at all (a temporary name, then a rename over `path`)."""
    write_chunks(path, [data])


def write_chunks(path: str, chunks: Iterable[bytes]) -> None:
    """Write chunks as they come (nothing held in memory), whole or not at all."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        if is_local(path):
            os.makedirs(os.path.dirname(_local(path)) or ".", exist_ok=True)
            with open(_local(temporary), "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            os.replace(_local(temporary), _local(path))
            return
        with _beam().create(temporary) as f:
            for chunk in chunks:
                f.write(chunk)
        _beam().rename([temporary], [path])
    except Exception as exc:  # noqa: BLE001
        raise _state_file_error("write", path, exc) from exc


def read_json(path: str) -> dict | None:
    """The file's JSON, or None when there is no such file."""
    data = read_bytes(path)
    return None if data is None else json.loads(data.decode("utf-8"))


def write_json(path: str, obj) -> None:
    write_bytes(path, json.dumps(obj).encode("utf-8"))


def listing(pattern: str) -> list[FileInfo]:
    """The files matching a glob (`*` within a name), sorted; none when nothing (or no
    folder) is there."""
    try:
        if is_local(pattern):
            found = []
            for path in glob.glob(_local(pattern)):
                try:
                    if os.path.isfile(path):
                        found.append(FileInfo(path, os.path.getsize(path), os.path.getmtime(path)))
                except FileNotFoundError:  # removed since it was listed
                    pass
            return sorted(found)
        return sorted(FileInfo(meta.path, meta.size_in_bytes, meta.last_updated_in_seconds or None)
                      for meta in _beam().match([pattern])[0].metadata_list)
    except Exception as exc:  # noqa: BLE001
        raise _state_file_error("list", pattern, exc) from exc


def matching(pattern: str) -> list[str]:
    """Paths matching a glob; none when nothing (or no folder) is there."""
    return [info.path for info in listing(pattern)]


def delete(paths: list[str]) -> None:
    """Delete files (and local folders, whole); each must be there."""
    if not paths:
        return
    if all(is_local(path) for path in paths):
        for path in paths:
            try:
                if os.path.isdir(_local(path)):
                    shutil.rmtree(_local(path))
                else:
                    os.remove(_local(path))
            except OSError as exc:
                raise _state_file_error("delete", path, exc) from exc
        return
    try:
        _beam().delete(paths)
    except Exception as exc:  # noqa: BLE001
        raise _state_file_error("delete", paths[0], exc) from exc


def delete_tree(directory: str, depth: int = 3) -> None:
    """Delete a folder and what is in it, `depth` levels down."""
    if is_local(directory):  # the folder itself, recursively
        if exists(directory):
            delete([directory])
        return
    # Object stores have no folders to test or delete: delete the objects under the prefix.
    delete([p for level in range(1, depth + 1) for p in matching(join(directory, *["*"] * level))])
