"""The writer's pure parts."""
from __future__ import annotations

from transforms.dynamo.writer import collapse_by_key, delete, put


def test_collapse_keeps_the_last_request_per_key():
    requests = [put({"pk": {"S": "a"}, "v": {"N": "1"}}), put({"pk": {"S": "b"}, "v": {"N": "2"}}),
                put({"pk": {"S": "a"}, "v": {"N": "3"}}), delete({"pk": {"S": "b"}})]
    assert collapse_by_key(requests, ("pk",)) == [put({"pk": {"S": "a"}, "v": {"N": "3"}}), delete({"pk": {"S": "b"}})]
    assert collapse_by_key(requests[:2], ("pk",)) == requests[:2]
    # 1.0 and 1 are two keys to Alternator: both deletes stay
    assert len(collapse_by_key([delete({"pk": {"N": "1.0"}}), delete({"pk": {"N": "1"}})], ("pk",))) == 2
