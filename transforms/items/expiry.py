"""Which items DynamoDB's own TTL would delete: the test behind `tables[].skip_expired`.

An item is expired when its TTL attribute holds a number (N) of epoch seconds before the
run's cut-off, but not more than five years before it: DynamoDB never deletes items whose
expiry is older than that, so they are live data and are copied. An item without the
attribute, or with a value that is not a number (a string of digits too), is copied.

The cut-off is fixed once per run (the launcher's clock when it planned the tables) and
travels as a plain number, so the bulk copy, replication and validation of one run agree
on every item. Never does I/O.

Numbers are carried as their exact text; the test parses them to float64, which is exact
for whole seconds (below 2**53) and can only misjudge a fractional value within about a
microsecond of the cut-off.

pyarrow is imported by the methods that test a batch: replication tests items one by one,
and its start-up does not pay for pyarrow and numpy (~0.25 s of CPU).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FIVE_YEARS_SECONDS", "Expiry"]

#: How far in the past an expiry may be and still be deleted by DynamoDB (5 x 365 days).
FIVE_YEARS_SECONDS = 5 * 365 * 86400


@dataclass(frozen=True)
class Expiry:
    """The TTL attribute (in the naming of the items tested) and the run's cut-off.

    Args:
        attribute: the name of the TTL attribute.
        cutoff: epoch seconds; an expiry before it (and not five years before it) is expired.
    """

    attribute: str
    cutoff: float

    def renamed(self, renames) -> "Expiry":
        """The same test for items in the naming after `renames` (source -> target)."""
        return Expiry(renames.get(self.attribute, self.attribute), self.cutoff)

    def _expired_at(self, seconds: float) -> bool:
        return self.cutoff - FIVE_YEARS_SECONDS <= seconds < self.cutoff

    def is_expired(self, item: dict | None) -> bool:
        """Whether one item (botocore form) is expired; None (no item) is not."""
        value = (item or {}).get(self.attribute)
        if not value or "N" not in value:
            return False
        return self._expired_at(float(value["N"]))

    def expired_mask(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        """One flag per row of an Arrow batch (see `arrow_codec` for its layout): True = expired."""
        import pyarrow as pa  # noqa: PLC0415 - see the module docstring
        import pyarrow.compute as pc  # noqa: PLC0415

        names = batch.schema.names
        column = batch.column(names.index(self.attribute)) if self.attribute in names else None
        if column is None or column.type.get_field_index("N") < 0:  # no number in this page's TTL column
            return pa.array([False] * batch.num_rows, pa.bool_())
        seconds = pc.cast(pc.struct_field(column, "N"), pa.float64())
        expired = pc.and_(pc.greater_equal(seconds, self.cutoff - FIVE_YEARS_SECONDS),
                          pc.less(seconds, self.cutoff))
        return pc.fill_null(expired, False)

    def split(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, int]:
        """The batch without its expired rows, and how many were left out."""
        import pyarrow.compute as pc  # noqa: PLC0415 - see the module docstring

        if batch.num_rows == 0:
            return batch, 0
        expired = self.expired_mask(batch)
        count = pc.sum(expired).as_py() or 0
        return (batch.filter(pc.invert(expired)) if count else batch), count
