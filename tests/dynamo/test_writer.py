"""The writer's pure parts."""
from __future__ import annotations

import hashlib

from transforms.dynamo.writer import collapse_by_key, delete, last_per_key, nodes_for, put
from transforms.items.arrow_codec import batch_to_items, items_to_batch


def test_collapse_keeps_the_last_request_per_key():
    requests = [put({"pk": {"S": "a"}, "v": {"N": "1"}}), put({"pk": {"S": "b"}, "v": {"N": "2"}}),
                put({"pk": {"S": "a"}, "v": {"N": "3"}}), delete({"pk": {"S": "b"}})]
    assert collapse_by_key(requests, ("pk",)) == [put({"pk": {"S": "a"}, "v": {"N": "3"}}), delete({"pk": {"S": "b"}})]
    assert collapse_by_key(requests[:2], ("pk",)) == requests[:2]
    # 1.0 and 1 are two keys to Alternator: both deletes stay
    assert len(collapse_by_key([delete({"pk": {"N": "1.0"}}), delete({"pk": {"N": "1"}})], ("pk",))) == 2


def test_each_partition_key_goes_to_the_node_of_highest_hash():
    nodes = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "10.0.0.7"]
    keys = [hashlib.blake2b(str(i).encode(), digest_size=16).digest() for i in range(2000)]

    def rendezvous(key: bytes, among: list[str]) -> str:
        return max(among, key=lambda node: hashlib.blake2b(key + node.encode(), digest_size=8).digest())

    assert nodes_for(keys, nodes) == [rendezvous(key, nodes) for key in keys]
    moved = [a != b for a, b in zip(nodes_for(keys, nodes), nodes_for(keys, nodes[:3]))]
    assert sum(moved) == nodes_for(keys, nodes).count("10.0.0.7")  # a node leaving moves only its own keys


def test_last_per_key_of_a_batch_keeps_what_collapse_keeps():
    items = [{"pk": {"S": "a"}, "v": {"N": "1"}}, {"pk": {"S": "b"}, "v": {"N": "2"}},
             {"pk": {"S": "a"}, "v": {"N": "3"}}, {"pk": {"N": "1"}}, {"pk": {"N": "1.0"}}]
    kept = batch_to_items(last_per_key(items_to_batch(items), ("pk",)))
    collapsed = [r["PutRequest"]["Item"] for r in collapse_by_key([put(item) for item in items], ("pk",))]
    assert sorted(map(repr, kept)) == sorted(map(repr, collapsed)) and len(kept) == 4
    unique = items_to_batch(items[:2])
    assert last_per_key(unique, ("pk",)) is unique
