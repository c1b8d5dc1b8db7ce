"""`LatestChanges`: per key, never an older change after a newer one (pure: no server)."""
from __future__ import annotations

from transforms.streams.change_order import LatestChanges, key_digest


def _change(name: str, created: float, version: int, *, tag: str = "S") -> dict:
    return {"eventName": "MODIFY", "dynamodb": {"Keys": {"id": {tag: name}}, "ApproximateCreationDateTime": created,
                                                "NewImage": {"id": {tag: name}, "v": {"N": str(version)}}}}


def _versions(records: list[dict]) -> list[tuple[str, str]]:
    return [(r["dynamodb"]["Keys"]["id"]["S"], r["dynamodb"]["NewImage"]["v"]["N"]) for r in records]


def test_an_older_change_is_refused_within_a_window_and_across_windows():
    latest = LatestChanges()
    window = [_change("a", 2.0, 2), _change("b", 1.0, 1), _change("a", 1.0, 1), _change("a", 3.0, 3)]
    assert _versions(latest.admit(window)) == [("a", "2"), ("b", "1"), ("a", "3")]
    assert _versions(latest.admit([_change("a", 2.5, 9), _change("b", 1.0, 1), _change("b", 0.5, 0)])) == \
        [("b", "1")]  # an equal time passes (a repeated change rewrites the same item)


def test_equal_times_pass_in_the_order_read():
    latest = LatestChanges()
    assert _versions(latest.admit([_change("a", 5.0, 1), _change("a", 5.0, 2)])) == [("a", "1"), ("a", "2")]


def test_memory_is_bounded_and_the_least_recently_changed_key_is_forgotten_first():
    latest = LatestChanges(max_keys=2)
    latest.admit([_change("a", 10.0, 1), _change("b", 10.0, 1)])
    latest.admit([_change("a", 11.0, 2)])      # a is now the most recent
    latest.admit([_change("c", 10.0, 1)])      # b is forgotten
    assert len(latest) == 2
    assert _versions(latest.admit([_change("a", 1.0, 0), _change("b", 1.0, 0)])) == [("b", "0")]


def test_remembered_changes_refuse_older_ones_and_keep_the_newest_time():
    latest = LatestChanges()
    latest.remember([_change("a", 7.0, 7), _change("a", 3.0, 3)])
    assert _versions(latest.admit([_change("a", 5.0, 5), _change("a", 7.0, 8)])) == [("a", "8")]


def test_keys_are_told_apart_by_name_type_and_exact_text():
    assert key_digest({"id": {"N": "1"}}) != key_digest({"id": {"N": "1.0"}})  # Alternator keeps both
    assert key_digest({"id": {"S": "1"}}) != key_digest({"id": {"N": "1"}})
    assert key_digest({"a": {"S": "x"}, "b": {"S": "y"}}) == key_digest({"b": {"S": "y"}, "a": {"S": "x"}})
    assert key_digest({"a": {"S": "xy"}, "b": {"S": ""}}) != key_digest({"a": {"S": "x"}, "b": {"S": "y"}})
    assert key_digest({"id": {"B": b"\x00\x01"}}) != key_digest({"id": {"B": b"\x00"}})
