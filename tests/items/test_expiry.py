"""The expiry test of skip_expired, on Arrow batches and on single items: they must agree."""
from __future__ import annotations

from transforms.items.arrow_codec import items_to_batch
from transforms.items.expiry import FIVE_YEARS_SECONDS, Expiry

CUTOFF = 1_800_000_000
EXPIRY = Expiry("exp", CUTOFF)
CASES = [  # TTL value (None: no attribute), expired?
    ({"N": str(CUTOFF - 1)}, True),
    ({"N": str(CUTOFF)}, False),                        # the cut-off itself is not before it
    ({"N": f"{CUTOFF - 1}.5"}, True),
    ({"N": "1.7999999E9"}, True),                       # exponent form: the same number
    ({"N": str(CUTOFF - FIVE_YEARS_SECONDS)}, True),    # exactly five years: still deleted
    ({"N": str(CUTOFF - FIVE_YEARS_SECONDS - 1)}, False),
    ({"N": "-5"}, False),
    ({"N": "9.9E+125"}, False),
    ({"S": str(CUTOFF - 1)}, False),                    # not a number
    ({"NS": [str(CUTOFF - 1)]}, False),
    (None, False),
]


def _items():
    return [{"pk": {"S": f"k{i}"}, **({"exp": value} if value is not None else {})}
            for i, (value, _) in enumerate(CASES)]


def test_single_items_and_batches_agree_with_the_rule():
    expected = [expired for _, expired in CASES]
    assert [EXPIRY.is_expired(item) for item in _items()] == expected
    assert EXPIRY.expired_mask(items_to_batch(_items())).to_pylist() == expected
    live, count = EXPIRY.split(items_to_batch(_items()))
    assert count == sum(expected)
    assert live.column("pk").to_pylist() == [{"S": f"k{i}"} for i, e in enumerate(expected) if not e]


def test_a_page_without_the_attribute_or_without_numbers_keeps_every_row():
    no_attribute = items_to_batch([{"pk": {"S": "a"}}])
    strings_only = items_to_batch([{"pk": {"S": "a"}, "exp": {"S": "1"}}])
    assert EXPIRY.split(no_attribute) == (no_attribute, 0)
    assert EXPIRY.split(strings_only) == (strings_only, 0)


def test_renamed_follows_the_attribute():
    assert Expiry("exp", 5).renamed({"exp": "expires_at"}) == Expiry("expires_at", 5)
    assert Expiry("exp", 5).renamed({"other": "x"}) == Expiry("exp", 5)
