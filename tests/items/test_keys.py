"""Item keys as hashable values."""
from __future__ import annotations

import pytest

from transforms.items.keys import key_of


def test_key_of():
    item = {"pk": {"S": "user#1"}, "sk": {"N": "12.50"}, "bin": {"B": b"\x00"}, "x": {"S": "y"}}
    assert key_of(item, ["pk", "sk"]) == (("S", "user#1"), ("N", "12.5"))
    assert key_of(item, ["bin"]) == (("B", b"\x00"),)
    hash(key_of(item, ["pk", "sk", "bin"]))
    # DynamoDB compares N keys by value, and S "1" differs from N "1".
    assert key_of({"k": {"N": "1.000"}}, ["k"]) == key_of({"k": {"N": "1"}}, ["k"])
    assert key_of({"k": {"N": "0.0"}}, ["k"]) == key_of({"k": {"N": "-0"}}, ["k"])
    assert key_of({"k": {"N": "1E+2"}}, ["k"]) == key_of({"k": {"N": "100"}}, ["k"])
    big = "1.2345678901234567890123456789012345678E-130"
    assert key_of({"k": {"N": big}}, ["k"]) != key_of({"k": {"N": big[:-5] + "9E-130"}}, ["k"])
    assert key_of({"k": {"S": "1"}}, ["k"]) != key_of({"k": {"N": "1"}}, ["k"])


def test_key_of_dedupes_batch_writes():
    items = [
        {"pk": {"S": "a"}, "v": {"N": "1"}},
        {"pk": {"S": "a"}, "v": {"N": "2"}},
        {"pk": {"S": "b"}, "v": {"N": "3"}},
    ]
    last = {key_of(it, ["pk"]): it for it in items}
    assert [it["v"]["N"] for it in last.values()] == ["2", "3"]


def test_key_of_errors():
    with pytest.raises(ValueError, match="'sk'"):
        key_of({"pk": {"S": "a"}}, ["pk", "sk"])
    with pytest.raises(ValueError, match="'pk'"):
        key_of({"pk": {"SS": ["a"]}}, ["pk"])
    with pytest.raises(ValueError, match="'pk'"):
        key_of({"pk": {"N": "abc"}}, ["pk"])
