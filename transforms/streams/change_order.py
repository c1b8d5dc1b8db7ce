"""Per key, the newest change handed on: never an older change of an item over a newer one.

A DynamoDB stream keeps a key's changes in order (one shard lineage, children after their
parents). A Kinesis data stream fed by DynamoDB does not promise that: "The Kinesis data
stream records might appear in a different sequence than the item changes occurred. The
same item notifications might also appear more than once in the stream. You can check the
ApproximateCreationDateTime attribute to identify the approximate order that the item
modifications occurred, and to identify duplicate records." (DynamoDB developer guide,
"Change data capture for Kinesis Data Streams with DynamoDB",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/kds.html).

So for such a source every window is checked, as it is handed to its sink (the target, or
the spool), against `LatestChanges`: per key, the creation time of the newest change handed
on so far. A record older than that is refused; an equal one passes (a duplicate rewrites
the same item; two changes of one key in the same millisecond, or microsecond, are applied
in the order they are read: within a shard, the later sequence number wins). What passes
is, per key, never older than what went before it, so the last change per key of a window
(what `windows.window_requests` keeps) is its newest, and windows are written in the order
they were handed on (`WindowWriter` never lets two windows naming a key overtake each other).

Bounded memory: at most `MAX_KEYS` keys per table (16-byte digests of their key attributes,
about 140 bytes each with the dictionary: 65 MB measured), the least recently changed forgotten
first. A late record is refused while its key's newer change is among the last `MAX_KEYS`
keys changed: at 1,000 keys changed a second, over eight minutes. DynamoDB documents that
records can repeat and arrive out of order, not by how much; its redelivery of a record is
a retry of a PutRecords, seconds later, unless the Kinesis stream stays throttled (the
table's `AgeOfOldestUnreplicatedRecord` metric then grows), so the bound is far above the
usual and the user guide (docs/guide.md) says what a longer delay costs.

Not persisted: at every start (a restart, the capture's hand-over to replication) the
source recalls the changes of the `RECALL_SECONDS` before the table's latest checkpoint
from the stream itself (`remember`), which a Kinesis stream keeps for a day or more. A
crash therefore costs no protection that a write of this state would have kept, and no
file is rewritten with every window.
"""
from __future__ import annotations

import collections
import hashlib

MAX_KEYS = 500_000
RECALL_SECONDS = 600.0


def key_digest(keys: dict) -> bytes:
    """A key's identity whatever the table's key names (a record's `Keys` holds exactly them):
    each attribute's name, type tag and exact text or bytes, digested."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(keys):
        ((tag, value),) = keys[name].items()
        for part in (name.encode(), tag.encode(), value if isinstance(value, bytes) else value.encode()):
            digest.update(len(part).to_bytes(4, "big") + part)  # length first: no two keys read alike
    return digest.digest()


class LatestChanges:
    """The newest change time handed on per key of one table (see the module docstring)."""

    def __init__(self, max_keys: int = MAX_KEYS):
        self._times: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self._max_keys = max_keys

    def admit(self, records: list[dict]) -> list[dict]:
        """The records (in order) that are not older than a change of their key handed on
        before; they become the newest of their keys."""
        admitted = []
        for record in records:
            change = record["dynamodb"]
            key, created = key_digest(change["Keys"]), change["ApproximateCreationDateTime"]
            newest = self._times.get(key)
            if newest is not None and created < newest:
                continue
            self._note(key, created)
            admitted.append(record)
        self._trim()
        return admitted

    def remember(self, records: list[dict]) -> None:
        """Changes handed on before this process started (recalled from the stream)."""
        for record in records:
            change = record["dynamodb"]
            key = key_digest(change["Keys"])
            self._note(key, max(change["ApproximateCreationDateTime"], self._times.get(key, float("-inf"))))
        self._trim()

    def __len__(self) -> int:
        return len(self._times)

    def _note(self, key: bytes, created: float) -> None:
        self._times[key] = created
        self._times.move_to_end(key)

    def _trim(self) -> None:
        while len(self._times) > self._max_keys:
            self._times.popitem(last=False)
