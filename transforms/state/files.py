"""Small JSON files and folders on any Beam filesystem (local paths, gs://, s3://)."""
from __future__ import annotations

import json
import uuid

from apache_beam.io.filesystems import FileSystems


def read_json(path: str) -> dict | None:
    """The file's JSON, or None when there is no such file."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def write_json(path: str, obj) -> None:
    """Write whole or not at all: a reader (or a restart after a kill) never sees half a
    file, because the text goes to a temporary name first and is then renamed over `path`."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(temporary) as f:
        f.write(json.dumps(obj).encode("utf-8"))
    FileSystems.rename([temporary], [path])


def matching(pattern: str) -> list[str]:
    """Paths matching a glob; none (not an error) when nothing or no folder is there."""
    try:
        return [meta.path for meta in FileSystems.match([pattern])[0].metadata_list]
    except Exception:  # noqa: BLE001 - Beam raises its own errors for a missing folder
        return []


def delete_tree(directory: str, depth: int = 3) -> None:
    """Delete a folder and what is in it, `depth` levels down."""
    if "://" not in directory:  # local: the folder itself, recursively
        if FileSystems.exists(directory):
            FileSystems.delete([directory])
        return
    # Object stores have no folders to test or delete: delete the objects under the prefix.
    paths = [p for level in range(1, depth + 1) for p in matching(FileSystems.join(directory, *["*"] * level))]
    if paths:
        FileSystems.delete(paths)
