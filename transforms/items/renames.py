"""Attribute renames, applied per item.

A rename `{old: new}` exists because older items carry `old` and newer items already
carry `new`: an item with only `old` gets `new`, an item with only `new` keeps it. An
item that holds both would lose one of the two values, so it is refused
(`RenameConflict`) and the caller dead-letters it (writes) or reports it (validation),
never drops a value silently. Swaps (`{a: b, b: a}`) are fine.

pyarrow (and `arrow_codec`) are imported by the functions that rename a batch: replication
renames items one by one, and its start-up does not pay for pyarrow and numpy (~0.25 s of CPU).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import pyarrow as pa


class RenameConflict(ValueError):
    """The item holds an attribute (`old`) and the name the renames give it (`new`)."""

    def __init__(self, old: str, new: str):
        super().__init__(f"the item holds both {old!r} and {new!r}, and renames maps {old!r} to {new!r}: "
                         f"one of the two values would be lost")
        self.old, self.new = old, new


def rename_item(item: dict, renames: Mapping[str, str]) -> dict:
    """The item with its top-level attributes renamed; RenameConflict when two collide."""
    if not renames:
        return item
    renamed: dict = {}
    for name, value in item.items():
        new = renames.get(name, name)
        if new in renamed:
            old = name if name in renames else next(k for k in item if renames.get(k) == new)
            raise RenameConflict(old, new)
        renamed[new] = value
    return renamed


def rename_batch(batch: pa.RecordBatch, renames: Mapping[str, str]) -> tuple[pa.RecordBatch, dict[int, RenameConflict]]:
    """A batch (the `arrow_codec` layout) in target naming, and its rows that conflict.

    Per row, as `rename_item`: a column whose name `renames` maps is renamed; where
    several columns end up with one name (`{old: new}` and a `new` column), each row
    takes the one it holds. A row holding two of them is a conflict: it keeps one of the
    values in the batch returned, so callers must leave it out (write) or mark it
    (validation); the conflicts map its row to the error `rename_item` raises for it.
    """
    if not renames or not any(name in renames for name in batch.schema.names):
        return batch, {}
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring
    import pyarrow.compute as pc  # noqa: PLC0415

    from transforms.items.arrow_codec import batch_to_items  # noqa: PLC0415

    by_name: dict[str, list[pa.StructArray]] = {}
    for name, column in zip(batch.schema.names, batch.columns):
        by_name.setdefault(renames.get(name, name), []).append(column)
    conflicting = None
    merged = {}
    for name, columns in by_name.items():
        if len(columns) == 1:
            merged[name] = columns[0]
            continue
        many = pc.greater(_count_valid(columns), 1)
        conflicting = many if conflicting is None else pc.or_(conflicting, many)
        merged[name] = _merge(columns)
    names = sorted(merged)
    renamed = pa.RecordBatch.from_arrays([merged[name] for name in names], names=names)
    conflicts = {}
    if conflicting is not None and pc.any(conflicting).as_py():
        rows = pc.indices_nonzero(conflicting).to_pylist()
        for row, item in zip(rows, batch_to_items(batch.take(rows))):
            try:
                rename_item(item, renames)
            except RenameConflict as exc:
                conflicts[row] = exc
    return renamed, conflicts


def _count_valid(columns: list[pa.StructArray]) -> pa.Array:
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring
    import pyarrow.compute as pc  # noqa: PLC0415

    total = pc.cast(columns[0].is_valid(), pa.int8())
    for column in columns[1:]:
        total = pc.add(total, pc.cast(column.is_valid(), pa.int8()))
    return total


def _merge(columns: list[pa.StructArray]) -> pa.StructArray:
    """One struct column from several (same rows): each row takes the first column it holds."""
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring
    import pyarrow.compute as pc  # noqa: PLC0415

    from transforms.items.arrow_codec import TAGS, struct_column  # noqa: PLC0415

    children: dict[str, pa.Array] = {}
    for column in reversed(columns):  # the first column a row holds is applied last, so it wins
        holds = column.is_valid()
        own = {column.type.field(i).name: child for i, child in enumerate(column.flatten())}
        for tag in set(own) | set(children):
            mine = own.get(tag)
            theirs = children.get(tag)
            if mine is None:
                mine = pa.nulls(len(column), theirs.type)
            if theirs is None:
                theirs = pa.nulls(len(column), mine.type)
            if mine.type != theirs.type:  # string and large_string: take the large one
                wide = mine.type if "large" in str(mine.type) else theirs.type
                mine, theirs = mine.cast(wide), theirs.cast(wide)
            children[tag] = pc.if_else(holds, mine, theirs)
    tags = [tag for tag in TAGS if tag in children]
    column, _ = struct_column([children[t] for t in tags], [pa.field(t, children[t].type) for t in tags],
                              len(columns[0]))
    return column
