"""Names read back from the paths a listing gives.

A local listing on Windows separates with `\\`, an object store's (s3://, gs://) and
every other with `/`; these read a path the same way whichever it is.
"""
from __future__ import annotations


def with_slashes(path: str) -> str:
    """`path` with `/` between its parts, to compare paths listed by either kind of storage."""
    return path.replace("\\", "/")


def file_name(path: str) -> str:
    """The last part of `path`: `runs/orders/a.jsonl` -> `a.jsonl`."""
    return with_slashes(path).rsplit("/", 1)[-1]


def folder_name(path: str) -> str:
    """The name of the folder `path` is in: `runs/orders/a.jsonl` -> `orders`."""
    return with_slashes(path).rsplit("/", 2)[-2]
