"""A source table and its target, as every pipeline that moves or compares items sees it."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Mapping

from transforms.items.expiry import Expiry
from transforms.items.renames import rename_item


@dataclass(frozen=True)
class TablePair:
    """Named by the source table; key names in target naming; renames source -> target;
    `expiry` (source naming): leave out the items the source's TTL would delete (None: copy all)."""

    source: str
    target: str
    key_names: tuple[str, ...]
    renames: Mapping[str, str] = field(default_factory=dict)
    expiry: Expiry | None = None

    @functools.cached_property
    def target_expiry(self) -> Expiry | None:
        """`expiry` for items in target naming."""
        return self.expiry.renamed(self.renames) if self.expiry else None

    @functools.cached_property
    def _back(self) -> dict[str, str]:
        return {new: old for old, new in self.renames.items()}

    def to_target(self, item: dict) -> dict:
        """A source item in target naming; `RenameConflict` if it holds an attribute and its new name."""
        return rename_item(item, self.renames)

    def target_key(self, item: dict) -> dict:
        """The key (target naming) of a source item; never conflicts, key attributes are not rename targets."""
        return {name: item[self._back.get(name, name)] for name in self.key_names}

    def to_source_key(self, key: dict) -> dict:
        return rename_item(key, self._back)

    @property
    def source_key_names(self) -> tuple[str, ...]:
        return tuple(self._back.get(name, name) for name in self.key_names)
