"""The Streams data plane (signed JSON calls, `dynamo.aws_json`) against the test Streams
server, over HTTP: pages as the SDK gives them, errors as botocore parses them, large
(compressible) pages whole, and damaged replies retried like dropped ones."""
from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import ClientError

from testbed.fake_streams import GZIP_ABOVE_BYTES, FakeStream, FakeStreamsServer
from transforms.dynamo.aws_json import CorruptResponse
from transforms.dynamo.endpoints import Credentials, SourceSpec, streams_client
from transforms.dynamo.retry import is_retryable
from transforms.items.ddb_json import encode_item
from transforms.streams import records
from transforms.streams.records import open_streams_data

SHARD = "shardId-00000000000000000001-aaaaaaaa"
ITEM = {"pk": {"S": "a"}, "blob": {"B": b"\x00\xff"}, "set": {"BS": [b"\x01", b""]}, "n": {"N": "1.50"},
        "doc": {"M": {"inner": {"L": [{"B": b"x"}, {"S": ""}]}}}}


@pytest.fixture
def server():
    with FakeStreamsServer() as server:
        yield server


def _read(server: FakeStreamsServer, stream: FakeStream, body):
    """Run body(data) with a StreamsData for `server`; its result."""
    async def run():
        spec = SourceSpec(endpoint=server.url, credentials=Credentials("test", "test"))
        async with streams_client(spec) as client, open_streams_data(spec, client.meta.endpoint_url) as data:
            return await body(data)
    return asyncio.run(run())


def test_pages_come_back_as_the_sdk_gives_them(server):
    stream = server.add_stream(FakeStream())
    stream.add_shard(SHARD)
    wire = encode_item(ITEM)  # the server holds DynamoDB JSON, B as base64
    first = stream.put_record(SHARD, "INSERT", {"pk": {"S": "a"}}, new_image=wire, old_image={"pk": {"S": "a"}})
    stream.put_record(SHARD, "REMOVE", {"pk": {"S": "a"}}, old_image=wire)
    stream.close_shard(SHARD)

    async def body(data):
        iterator = await data.shard_iterator(stream.stream_arn, SHARD, None)
        page = await data.get_records(iterator, 1)
        rest = await data.get_records(page["NextShardIterator"], 1000)
        after = await data.get_records(await data.shard_iterator(stream.stream_arn, SHARD, first), 1000)
        return page, rest, after

    page, rest, after = _read(server, stream, body)
    change = page["Records"][0]["dynamodb"]
    assert change["NewImage"] == ITEM  # B and BS as bytes, also nested; N keeps its text
    assert change["Keys"] == {"pk": {"S": "a"}} and "OldImage" not in change
    assert isinstance(change["ApproximateCreationDateTime"], float)
    assert [r["eventName"] for r in rest["Records"]] == ["REMOVE"] and "NextShardIterator" not in rest
    assert [r["eventName"] for r in after["Records"]] == ["REMOVE"]  # AFTER the first record


def test_errors_are_client_errors_with_the_service_code(server):
    stream = server.add_stream(FakeStream())
    stream.add_shard(SHARD)
    stream.expire_iterators_once()

    async def body(data):
        iterator = await data.shard_iterator(stream.stream_arn, SHARD, None)
        with pytest.raises(ClientError) as expired:
            await data.get_records(iterator, 10)
        with pytest.raises(ClientError) as missing:
            await data.shard_iterator(stream.stream_arn, "shardId-00000000000000000009-zzzzzzzz", None)
        return expired.value, missing.value, await data.get_records(iterator, 10)

    expired, missing, page = _read(server, stream, body)
    assert expired.response["Error"]["Code"] == "ExpiredIteratorException"
    assert expired.response["Error"]["Message"] == "Iterator expired"
    assert expired.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert missing.response["Error"]["Code"] == "ResourceNotFoundException"
    assert not is_retryable(expired) and not is_retryable(missing)
    assert page["Records"] == [] and page["NextShardIterator"]
    assert stream.calls["GetRecords"] == 2 and stream.calls["GetShardIterator"] == 2


def test_damaged_replies_are_corrupt_responses_retried_like_dropped_ones(server):
    """A CRC that does not match, a CRC that is not a number, and a 200 page that is not the
    service's JSON (a proxy's page) each raise `CorruptResponse`, which the retry policy
    retries; the next read gets the page."""
    stream = server.add_stream(FakeStream())
    stream.add_shard(SHARD)

    async def body(data):
        iterator = await data.shard_iterator(stream.stream_arn, SHARD, None)
        damaged = []
        for damage in (lambda: server.corrupt_checksums(1), lambda: server.corrupt_checksums(1, "not-a-number"),
                       lambda: server.replace_replies(b"<html><body>Proxy login</body></html>")):
            damage()
            with pytest.raises(CorruptResponse) as caught:
                await data.get_records(iterator, 10)
            damaged.append(caught.value)
        server.replace_replies(b'{"not": "an iterator"}')
        with pytest.raises(CorruptResponse) as shapeless:
            await data.shard_iterator(stream.stream_arn, SHARD, None)
        return damaged + [shapeless.value], await data.get_records(iterator, 10)

    damaged, page = _read(server, stream, body)
    assert ["x-amz-crc32" in str(exc) for exc in damaged] == [True, True, False, False]
    assert "not a number" in str(damaged[1]) and "does not decode" in str(damaged[2])
    assert all(is_retryable(exc) for exc in damaged)
    assert page["Records"] == [] and page["NextShardIterator"]


def test_a_large_page_arrives_whole_with_its_crc_checked(server):
    """DynamoDB Streams gzips a reply over 4 KB for a client that accepts gzip, with its CRC
    over the compressed bytes (see `fake_streams._json_response`): a client that let aiohttp
    ask for gzip and decompress saw every such page as a CRC mismatch. The data plane asks
    for identity and checks the CRC over the bytes it reads."""
    stream = server.add_stream(FakeStream())
    stream.add_shard(SHARD)
    for i in range(60):
        stream.put_record(SHARD, "INSERT", {"pk": {"S": f"k{i}"}}, new_image={"pk": {"S": f"k{i}"}, "v": {"S": "x" * 100}})

    async def body(data):
        return await data.get_records(await data.shard_iterator(stream.stream_arn, SHARD, None), 1000)

    page = _read(server, stream, body)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]] == [f"k{i}" for i in range(60)]
    assert len(str(page)) > GZIP_ABOVE_BYTES  # a page the server would have gzipped for gzip's asking
    assert server.gzipped_replies == 0


def test_a_new_image_with_an_untyped_value_is_dropped_not_guessed(server, caplog):
    """DynamoDB Local 3.x sends an empty map in a stream image as {} (its GetItem does not;
    awslabs/amazon-dynamodb-local-samples#37); the real service sends {"M": {}}. The test
    server here serves what DynamoDB Local sends: the change then has no NewImage, and the
    window is applied from the source's current item, as for a KEYS_ONLY stream."""
    stream = server.add_stream(FakeStream())
    stream.add_shard(SHARD)
    untyped = {"pk": {"S": "a"}, "nest": {"L": [{}, {"L": []}]}, "empty": {}}
    stream.put_record(SHARD, "INSERT", {"pk": {"S": "a"}}, new_image=untyped)
    stream.put_record(SHARD, "MODIFY", {"pk": {"S": "b"}}, new_image=encode_item(ITEM | {"pk": {"S": "b"}}))
    stream.put_record(SHARD, "INSERT", {"pk": {"S": "c"}}, new_image={"pk": {"S": "c"}, "m": {}})

    async def body(data):
        return await data.get_records(await data.shard_iterator(stream.stream_arn, SHARD, None), 1000)

    records._warn_untyped_image.cache_clear()  # it warns once a process: as if this process had not yet
    with caplog.at_level("WARNING", logger="transforms.streams.records"):
        page = _read(server, stream, body)
    first, second, third = (record["dynamodb"] for record in page["Records"])
    assert first["Keys"] == {"pk": {"S": "a"}} and "NewImage" not in first
    assert second["NewImage"] == ITEM | {"pk": {"S": "b"}}
    assert third["Keys"] == {"pk": {"S": "c"}} and "NewImage" not in third
    warnings = [r.getMessage() for r in caplog.records if r.name == "transforms.streams.records"]
    assert len(warnings) == 1 and "applied from the source's current item" in warnings[0]
