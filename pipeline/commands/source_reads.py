"""The source read again, key by key, to decide what makes the target equal to it now.

`validate --repair` and `retry-dead-letter` both decide a key from the source's state at
the time they run, never from what was found or what failed earlier (the source may have
changed since). That one rule is here, in a module of its own, so that both commands import
it and neither imports the other.
"""
from __future__ import annotations

from transforms.dynamo.point_reads import get_items
from transforms.dynamo.write_requests import FailedWrite, collapse_by_key, delete, put
from transforms.items.keys import key_of
from transforms.items.renames import RenameConflict
from transforms.table_pair import TablePair


async def source_versions(source, table: TablePair, keys: list[dict],
                          read_attempts: int) -> tuple[list[dict], list[FailedWrite]]:
    """For each key (target naming), what makes the target equal the source now: a put of the
    source's current item (read consistently, renamed), or a delete where the source has no
    item (or one its TTL would delete, with skip_expired). And the items the renames cannot
    map, as failed writes: never written with a value dropped."""
    current = await get_items(source, table.source, [table.to_source_key(k) for k in keys], table.source_key_names,
                              max_attempts=read_attempts)
    present = {key_of(table.target_key(item), table.key_names): item for item in current.values()
               if not (table.expiry and table.expiry.is_expired(item))}
    requests, refused = [], []
    for key in keys:
        item = present.get(key_of(key, table.key_names))
        try:
            requests.append(delete(key) if item is None else put(table.to_target(item)))
        except RenameConflict as exc:
            refused.append(FailedWrite(table.target, put(item), f"RenameConflict: {exc}", source_naming=True))
    return collapse_by_key(requests, table.key_names), refused
