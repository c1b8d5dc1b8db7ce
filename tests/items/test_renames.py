"""Renames of whole batches give what renaming each item gives."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.item_strategies import attr_values
from transforms.items.arrow_codec import batch_to_items, items_to_batch
from transforms.items.renames import RenameConflict, rename_batch, rename_item

names = st.sampled_from(["a", "b", "c", "pk"])
rows = st.lists(st.dictionaries(names, attr_values, max_size=4), min_size=1, max_size=10)
renames = st.sampled_from([{"a": "b"}, {"a": "b", "b": "a"}, {"a": "c", "b": "a"}, {"pk": "id"}, {"x": "y"}, {}])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, renames)
def test_rename_batch_renames_each_row_as_rename_item_does(items, mapping):
    renamed, conflicts = rename_batch(items_to_batch(items), mapping)
    decoded = batch_to_items(renamed)
    for row, item in enumerate(items):
        try:
            expected = rename_item(item, mapping)
        except RenameConflict as exc:
            assert str(conflicts[row]) == str(exc)
            continue
        assert row not in conflicts
        assert decoded[row] == expected
    assert renamed.schema.names == sorted(renamed.schema.names)


def test_an_item_with_both_names_is_a_conflict_and_the_rest_is_renamed():
    items = [{"pk": {"S": "1"}, "old": {"S": "x"}}, {"pk": {"S": "2"}, "new": {"N": "2"}},
             {"pk": {"S": "3"}, "old": {"S": "x"}, "new": {"S": "y"}}, {"pk": {"S": "4"}}]
    renamed, conflicts = rename_batch(items_to_batch(items), {"old": "new"})
    assert list(conflicts) == [2] and conflicts[2].old == "old" and conflicts[2].new == "new"
    assert [item for row, item in enumerate(batch_to_items(renamed)) if row != 2] == [
        {"pk": {"S": "1"}, "new": {"S": "x"}}, {"pk": {"S": "2"}, "new": {"N": "2"}}, {"pk": {"S": "4"}}]
