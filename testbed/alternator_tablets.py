"""Tablets, reserved tags and Streams, as Alternator decides them, in front of moto.

What ScyllaDB does (alternator/executor.cc of scylla-2026.1.0 and of branch-2025.3;
docs/alternator/new-apis.md "Tablets", docs/alternator/compatibility.md "Experimental API
features"):

- Tags whose key starts with `system:` are reserved ("Tag key '...' is reserved for internal
  use", a ValidationException, in CreateTable and TagResource), except `system:write_isolation`
  and, from 2025.4, `system:initial_tablets` (`tag_key_is_internal`).
- Whether a new table uses tablets is fixed at CreateTable (`get_initial_tablet_count`). From
  2025.4 (2026.1 here): tablets unless the tag `system:initial_tablets` holds a non-number
  ("none"), as the shipped scylla.yaml sets `tablets_mode_for_new_keyspaces: enabled`. Up to
  2025.3: vnodes unless `experimental:initial_tablets` holds a number.
- Streams cannot be enabled on a tablets table, at CreateTable or UpdateTable (ValidationException,
  "Streams not yet supported on a table using tablets (issue #23838)..."; ScyllaDB 2026.2
  lifts this). DescribeTable says nothing of tablets; ListTagsOfResource shows
  `system:initial_tablets` when it was given (moto keeps the tags as given).

The front remembers, per table it created, whether it uses tablets (moto has no such notion).
"""
from __future__ import annotations

import re
import threading

RELEASES = ("2026.1", "2025.3")  # 2026.1 stands for 2025.4 and 2026.1; 2025.3 for 2025.1-2025.3
WRITE_ISOLATION_TAG = "system:write_isolation"
_TABLETS_TAG = {"2026.1": "system:initial_tablets", "2025.3": "experimental:initial_tablets"}
_ISSUE = {"2026.1": "#23838", "2025.3": "#16317"}
_LEADING_NUMBER = re.compile(r"\s*[+-]?[0-9]")  # what std::stol takes (it reads a number's prefix)


class TabletRules:
    def __init__(self, release: str = "2026.1"):
        self.release = release
        self._tablets: dict[str, bool] = {}  # table -> uses tablets
        self._lock = threading.Lock()

    @property
    def release(self) -> str:
        return self._release

    @release.setter
    def release(self, release: str) -> None:
        if release not in RELEASES:
            raise ValueError(f"release must be one of {RELEASES}, got {release!r}")
        self._release = release

    def refusal(self, op: str, body: dict) -> str | None:
        """Alternator's ValidationException message for this request, or None to pass it on."""
        if op in ("CreateTable", "TagResource"):
            reserved = self._reserved_tag(body.get("Tags") or [])
            if reserved:
                return f"Tag key '{reserved}' is reserved for internal use"
        stream = (body.get("StreamSpecification") or {}).get("StreamEnabled") is True
        if op == "CreateTable" and stream and self._uses_tablets(body.get("Tags") or []):
            return (f"Streams not yet supported on a table using tablets (issue {_ISSUE[self.release]}). If you want "
                    f"to use streams, create a table with vnodes by setting the tag "
                    f"'{_TABLETS_TAG[self.release]}' set to 'none'.")
        if op == "UpdateTable" and stream and self.uses_tablets(body.get("TableName", "")):
            return (f"Streams not yet supported on a table using tablets (issue {_ISSUE[self.release]}). If you want "
                    f"to enable streams, re-create this table with vnodes (with the tag "
                    f"'{_TABLETS_TAG[self.release]}' set to 'none').")
        return None

    def created(self, body: dict) -> None:
        """A CreateTable went through: the table's tablets are decided now, for good."""
        with self._lock:
            self._tablets[body.get("TableName", "")] = self._uses_tablets(body.get("Tags") or [])

    def deleted(self, table: str) -> None:
        with self._lock:
            self._tablets.pop(table, None)

    def uses_tablets(self, table: str) -> bool:
        """Whether a table created through the front uses tablets (False for one it did not create)."""
        with self._lock:
            return self._tablets.get(table, False)

    def _reserved_tag(self, tags: list) -> str | None:
        allowed = {WRITE_ISOLATION_TAG} | ({_TABLETS_TAG["2026.1"]} if self.release == "2026.1" else set())
        return next((tag.get("Key") for tag in tags if str(tag.get("Key", "")).startswith("system:")
                     and tag.get("Key") not in allowed), None)

    def _uses_tablets(self, tags: list) -> bool:
        value = next((tag.get("Value", "") for tag in tags if tag.get("Key") == _TABLETS_TAG[self.release]), None)
        if value is None:
            return self.release == "2026.1"  # the cluster's default
        return bool(_LEADING_NUMBER.match(value))
