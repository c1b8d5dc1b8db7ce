"""Digests of whole batches equal the digests of their items, one by one."""
from __future__ import annotations

import decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.item_strategies import attr_names, attr_values, numbers, strings
from transforms.items.arrow_codec import items_to_batch
from transforms.items.digests import content_digest, key_digest, key_texts, page_digests, text_digest
from transforms.items.numbers import canonical_number

key_values = st.one_of(strings.map(lambda s: {"S": s}), numbers.map(lambda n: {"N": n}),
                       st.binary(max_size=12).map(lambda b: {"B": b}))
items = st.lists(st.fixed_dictionaries({"pk": key_values, "sk": key_values},
                                       optional={"rest": st.dictionaries(attr_names, attr_values, max_size=5)}),
                 min_size=1, max_size=12).map(lambda rows: [{**row.pop("rest", {}), **row} for row in rows])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items)
def test_page_digests_equal_the_item_digests(rows):
    keys, contents = page_digests(items_to_batch(rows), ("pk", "sk"))
    assert keys == [key_digest(row, ("pk", "sk")) for row in rows]
    assert contents == [content_digest(row) for row in rows]
    assert [text_digest(text) for text in key_texts(items_to_batch(rows), ("sk",))] == \
        [key_digest(row, ("sk",)) for row in rows]


@settings(max_examples=500, deadline=None)
@given(st.one_of(numbers, st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,9})?", fullmatch=True)))
def test_numbers_in_their_canonical_spelling_need_no_decimal(number):
    rows = [{"pk": {"S": "k"}, "sk": {"S": "k"}, "n": {"N": number}}]
    assert page_digests(items_to_batch(rows), ("pk", "sk"))[1] == [content_digest(rows[0])]
    assert canonical_number(number)  # a valid number


def test_numbers_equal_by_value_and_keys_by_spelling():
    rows = [{"pk": {"N": n}, "sk": {"S": "x"}, "v": {"N": n}} for n in ("1", "1.0", "1E0", "10", "1E+1")]
    keys, contents = page_digests(items_to_batch(rows), ("pk", "sk"))
    assert len(set(keys)) == 5  # five items, though their contents are equal by value
    values = [{"pk": {"S": "k"}, "sk": {"S": "k"}, "v": {"N": n}} for n in ("1", "1.0", "1E0", "10", "1E+1")]
    _, contents = page_digests(items_to_batch(values), ("pk", "sk"))
    assert contents[0] == contents[1] == contents[2] and contents[3] == contents[4] != contents[0]


def test_a_key_of_another_type_or_a_missing_key_is_refused():
    with pytest.raises(ValueError, match="keys must be S, N or B"):
        page_digests(items_to_batch([{"pk": {"BOOL": True}, "sk": {"S": "x"}}]), ("pk", "sk"))
    with pytest.raises(ValueError, match="no key attribute 'sk'"):
        page_digests(items_to_batch([{"pk": {"S": "x"}}, {"pk": {"S": "y"}, "sk": {"S": "z"}}]), ("pk", "sk"))


def test_an_empty_page_has_no_digests():
    assert page_digests(items_to_batch([]), ("pk",)) == ([], [])


def _respelled(value: dict, rnd) -> dict:
    """The same DynamoDB value written another way: numbers in exponent form, sets and map
    entries in another order."""
    (tag, inner), = value.items()
    if tag == "N":
        return {"N": format(decimal.Decimal(inner), "E")}
    if tag == "NS":
        return {"NS": rnd.sample([format(decimal.Decimal(n), "E") for n in inner], len(inner))}
    if tag in ("SS", "BS"):
        return {tag: rnd.sample(inner, len(inner))}
    if tag == "M":
        return {"M": dict(rnd.sample([(k, _respelled(v, rnd)) for k, v in inner.items()], len(inner)))}
    if tag == "L":
        return {"L": [_respelled(v, rnd) for v in inner]}
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(attr_names, attr_values, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_equal_values_written_differently_have_equal_digests(item, rnd):
    row = {**item, "pk": {"S": "k"}, "sk": {"S": "k"}}
    other = {name: _respelled(value, rnd) for name, value in row.items()}
    assert content_digest(other) == content_digest(row)
    assert page_digests(items_to_batch([row, other]), ("pk", "sk"))[1] == [content_digest(row)] * 2
    changed = {**row, "extra": {"S": "x"}}
    assert content_digest(changed) != content_digest(row)
