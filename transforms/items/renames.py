"""Attribute renames, applied per item.

A rename `{old: new}` exists because older items carry `old` and newer items already
carry `new`: an item with only `old` gets `new`, an item with only `new` keeps it. An
item that holds both would lose one of the two values, so it is refused
(`RenameConflict`) and the caller dead-letters it (writes) or reports it (validation),
never drops a value silently. Swaps (`{a: b, b: a}`) are fine.
"""
from __future__ import annotations

from typing import Mapping


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
