"""The write requests every path sends, and a write that failed: plain data, kept apart from
the writer so that what only reads or records them (dead letters, repairs, the stream
windows) does not load the writer's HTTP and asyncio machinery.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from transforms.items.keys import key_of


@dataclass(frozen=True)
class FailedWrite:
    table: str
    request: dict  # {"PutRequest": {"Item": ...}} or {"DeleteRequest": {"Key": ...}}
    error: str
    source_naming: bool = False  # the request holds the source's item (renames could not map it)
    permanent: bool = False  # no retry can write it (over the target's item size limit)


def put(item: dict) -> dict:
    return {"PutRequest": {"Item": item}}


def delete(key: dict) -> dict:
    return {"DeleteRequest": {"Key": key}}


def request_item(request: dict) -> dict:
    """The item of a put, or the key of a delete."""
    return request["PutRequest"]["Item"] if "PutRequest" in request else request["DeleteRequest"]["Key"]


def collapse_by_key(requests: Sequence[dict], key_names: Sequence[str]) -> list[dict]:
    """One request per key, the last one, in the order of their last appearance."""
    latest = {key_of(request_item(r), key_names): r for r in requests}
    return list(latest.values()) if len(latest) < len(requests) else list(requests)
