"""The writer's pure parts, and the replies it retries."""
from __future__ import annotations

import asyncio
import hashlib
import json

from aiohttp import web

from transforms.dynamo.endpoints import Credentials, TargetSpec
from transforms.dynamo.write_requests import collapse_by_key, delete, put
from transforms.dynamo.writer import WriterSettings, last_per_key, node_score, nodes_for, open_writer
from transforms.items.arrow_codec import batch_to_items, items_to_batch


def test_collapse_keeps_the_last_request_per_key():
    requests = [put({"pk": {"S": "a"}, "v": {"N": "1"}}), put({"pk": {"S": "b"}, "v": {"N": "2"}}),
                put({"pk": {"S": "a"}, "v": {"N": "3"}}), delete({"pk": {"S": "b"}})]
    assert collapse_by_key(requests, ("pk",)) == [put({"pk": {"S": "a"}, "v": {"N": "3"}}), delete({"pk": {"S": "b"}})]
    assert collapse_by_key(requests[:2], ("pk",)) == requests[:2]
    # 1.0 and 1 are two keys to Alternator: both deletes stay
    assert len(collapse_by_key([delete({"pk": {"N": "1.0"}}), delete({"pk": {"N": "1"}})], ("pk",))) == 2


def test_each_partition_key_goes_to_the_node_of_highest_score():
    nodes = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "10.0.0.7"]
    keys = [hashlib.blake2b(str(i).encode(), digest_size=16).digest() for i in range(2000)]

    def rendezvous(key: bytes, among: list[str]) -> str:  # one key at a time, in plain integers
        return max(among, key=lambda node: node_score(key, node))

    chosen = nodes_for(keys, nodes)
    assert chosen == [rendezvous(key, nodes) for key in keys]
    assert all(400 < chosen.count(node) < 600 for node in nodes)  # an even spread: 500 each expected
    moved = [a != b for a, b in zip(chosen, nodes_for(keys, nodes[:3]))]
    assert sum(moved) == chosen.count("10.0.0.7")  # a node leaving moves only its own keys
    assert nodes_for([], nodes) == []


def test_a_node_score_is_splitmix64_of_the_key_xor_the_node_seed():
    key = bytes(range(16))
    seed = int.from_bytes(hashlib.blake2b(b"127.0.0.1", digest_size=8).digest(), "little")
    z = int.from_bytes(key[:8], "little") ^ seed
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 % 2**64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB % 2**64
    assert node_score(key, "127.0.0.1") == z ^ (z >> 31)


def test_last_per_key_of_a_batch_keeps_what_collapse_keeps():
    items = [{"pk": {"S": "a"}, "v": {"N": "1"}}, {"pk": {"S": "b"}, "v": {"N": "2"}},
             {"pk": {"S": "a"}, "v": {"N": "3"}}, {"pk": {"N": "1"}}, {"pk": {"N": "1.0"}}]
    kept = batch_to_items(last_per_key(items_to_batch(items), ("pk",)))
    collapsed = [r["PutRequest"]["Item"] for r in collapse_by_key([put(item) for item in items], ("pk",))]
    assert sorted(map(repr, kept)) == sorted(map(repr, collapsed)) and len(kept) == 4
    unique = items_to_batch(items[:2])
    assert last_per_key(unique, ("pk",)) is unique


def test_a_write_conflict_and_a_reply_that_is_not_json_are_retried():
    """A mock server, because no real peer can be had: a write that meets a write from another
    Region of a multi-Region strongly consistent table is refused with 409
    ReplicatedWriteConflictException (AWS only; retried by botocore, botocore/data/_retry.json),
    and a 200 page that is not JSON comes from something in between, not a service. Each
    is retried like a dropped reply and the batch then goes through."""
    replies = [web.Response(status=409, content_type="application/x-amz-json-1.0", text=json.dumps(
                   {"__type": "com.amazonaws.dynamodb.v20120810#ReplicatedWriteConflictException",
                    "message": "Another Region is writing one of these items"})),
               web.Response(status=200, content_type="text/html", text="<html><body>Proxy login</body></html>"),
               web.Response(status=200, content_type="application/x-amz-json-1.0", text='{"UnprocessedItems":{}}')]
    bodies = []

    async def answer(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return replies[len(bodies) - 1]

    async def write():
        app = web.Application()
        app.router.add_post("/", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            spec = TargetSpec(endpoint=f"http://127.0.0.1:{runner.addresses[0][1]}", credentials=Credentials("k", "s"))
            async with open_writer(spec, WriterSettings(max_items_per_batch=25, max_attempts=5)) as writer:
                return await writer.write("T", [put({"pk": {"S": "a"}})], "pk")
        finally:
            await runner.cleanup()

    outcome = asyncio.run(write())
    assert outcome.failures == [] and outcome.retries == 2
    assert len(bodies) == 3 and len(set(bodies)) == 1  # the same batch each time
