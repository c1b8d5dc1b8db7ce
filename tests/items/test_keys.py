"""Item keys as hashable values."""
from __future__ import annotations

import pytest

from transforms.items.keys import key_of


def test_key_of():
    item = {"pk": {"S": "user#1"}, "sk": {"N": "12.50"}, "bin": {"B": b"\x00"}, "x": {"S": "y"}}
    assert key_of(item, ["pk", "sk"]) == (("S", "user#1"), ("N", "12.50"))
    assert key_of(item, ["bin"]) == (("B", b"\x00"),)
    hash(key_of(item, ["pk", "sk", "bin"]))
    # Alternator stores N keys as given: "1", "1.000" and "1E0" are three items there.
    assert key_of({"k": {"N": "1.000"}}, ["k"]) != key_of({"k": {"N": "1"}}, ["k"])
    assert key_of({"k": {"N": "1E0"}}, ["k"]) != key_of({"k": {"N": "1"}}, ["k"])
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
        key_of({"pk": {"N": 1}}, ["pk"])
