"""The fake DynamoDB Streams server, driven by the real boto3 and aiobotocore clients."""
from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import time
import urllib.error
import urllib.request
import zlib

import boto3
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from testbed.fake_streams import GZIP_ABOVE_BYTES, FakeStream, FakeStreamsServer

SHARD_A = "shardId-00000000000000000001-aaaaaaaa"
SHARD_B = "shardId-00000000000000000002-bbbbbbbb"
SHARD_C = "shardId-00000000000000000003-cccccccc"
CLIENT_ARGS = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
                   config=Config(retries={"total_max_attempts": 1}))
_tables = itertools.count(1)


@pytest.fixture(scope="module")
def server():
    with FakeStreamsServer() as server:
        yield server


@pytest.fixture
def streams(server):
    return boto3.client("dynamodbstreams", endpoint_url=server.url, **CLIENT_ARGS)


@pytest.fixture
def new_stream(server):
    """Make a stream with a fresh table name, registered on the module's server."""
    made = []

    def make(view_type: str = "NEW_AND_OLD_IMAGES") -> FakeStream:
        table = f"T{next(_tables)}"
        stream = FakeStream(f"arn:aws:dynamodb:us-east-1:000000000000:table/{table}/stream/2026-01-01T00:00:00.000",
                            table_name=table, view_type=view_type)
        made.append(server.add_stream(stream))
        return stream

    yield make
    for stream in made:
        server.remove_stream(stream.stream_arn)


def key(n: int) -> dict:
    return {"pk": {"S": f"k{n}"}}


def item(n: int, v: int = 0) -> dict:
    return {"pk": {"S": f"k{n}"}, "v": {"N": str(v)}}


def put(stream: FakeStream, shard: str, n: int) -> str:
    return stream.put_record(shard, "INSERT", key(n), new_image=item(n))


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def read_all(streams, stream: FakeStream, shard: str, **iterator_args) -> tuple[list[dict], list[dict]]:
    """Every page of `shard` until it ends or a page comes back empty: (records, pages)."""
    iterator = streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=shard,
                                          **({"ShardIteratorType": "TRIM_HORIZON"} | iterator_args))["ShardIterator"]
    records, pages = [], []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=2)
        pages.append(page)
        records += page["Records"]
        iterator = page.get("NextShardIterator")
        if not page["Records"]:
            break
    return records, pages


def test_describe_stream_paginates_and_shows_lineage(streams, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    put(stream, SHARD_A, 1)
    stream.close_shard(SHARD_A)
    stream.add_shard(SHARD_B, parent=SHARD_A)
    stream.add_shard(SHARD_C, parent=SHARD_A)

    first = streams.describe_stream(StreamArn=stream.stream_arn, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in first["Shards"]] == [SHARD_A, SHARD_B]
    assert first["LastEvaluatedShardId"] == SHARD_B
    second = streams.describe_stream(StreamArn=stream.stream_arn, Limit=2,
                                     ExclusiveStartShardId=first["LastEvaluatedShardId"])["StreamDescription"]
    assert [s["ShardId"] for s in second["Shards"]] == [SHARD_C]
    assert "LastEvaluatedShardId" not in second

    parent, left, right = first["Shards"] + second["Shards"]
    assert "ParentShardId" not in parent
    assert parent["SequenceNumberRange"] == {"StartingSequenceNumber": "000000000000000000001",
                                             "EndingSequenceNumber": "000000000000000000001"}
    assert left["ParentShardId"] == right["ParentShardId"] == SHARD_A
    assert "EndingSequenceNumber" not in left["SequenceNumberRange"]
    assert first["StreamStatus"] == "ENABLED"
    assert first["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert first["TableName"] == stream.table_name
    assert first["StreamLabel"] == "2026-01-01T00:00:00.000"
    assert first["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert first["CreationRequestDateTime"].timestamp() == pytest.approx(stream.created)
    assert stream.calls["DescribeStream"] == 2
    # Without a Limit, one page of up to 100 shards.
    whole = streams.describe_stream(StreamArn=stream.stream_arn)["StreamDescription"]
    assert len(whole["Shards"]) == 3 and "LastEvaluatedShardId" not in whole


def test_trim_horizon_reads_in_order_and_closed_shard_ends(streams, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    stream.add_shard(SHARD_B)
    numbers = [put(stream, SHARD_A, n) for n in range(5)]
    put(stream, SHARD_B, 99)
    stream.close_shard(SHARD_A)
    records, pages = read_all(streams, stream, SHARD_A)
    assert [r["dynamodb"]["SequenceNumber"] for r in records] == numbers
    assert [r["dynamodb"]["Keys"] for r in records] == [key(n) for n in range(5)]
    assert [len(p["Records"]) for p in pages] == [2, 2, 1]
    assert "NextShardIterator" not in pages[-1]  # closed: the page with the last record ends it

    open_records, open_pages = read_all(streams, stream, SHARD_B)
    assert [r["dynamodb"]["Keys"] for r in open_records] == [key(99)]
    end = open_pages[-1]
    assert end["Records"] == [] and end["NextShardIterator"]
    # The iterator at the end of an open shard picks up records put later.
    later = put(stream, SHARD_B, 100)
    page = streams.get_records(ShardIterator=end["NextShardIterator"])
    assert [r["dynamodb"]["SequenceNumber"] for r in page["Records"]] == [later]
    assert page["NextShardIterator"]


def test_record_shape(streams, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    stream.put_record(SHARD_A, "MODIFY", key(1), new_image=item(1, 2), old_image=item(1, 1), created=1767225600.0)
    iterator = streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_A,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    [record] = streams.get_records(ShardIterator=iterator)["Records"]
    assert set(record) == {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb"}
    assert (record["eventName"], record["eventVersion"], record["eventSource"], record["awsRegion"]) == \
           ("MODIFY", "1.1", "aws:dynamodb", "us-east-1")
    data = record["dynamodb"]
    assert data["ApproximateCreationDateTime"].timestamp() == 1767225600.0
    assert data["Keys"] == key(1) and data["NewImage"] == item(1, 2) and data["OldImage"] == item(1, 1)
    assert data["SequenceNumber"] == "000000000000000000001"
    assert data["SizeBytes"] > 0 and data["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_at_and_after_sequence_number_and_latest(streams, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    numbers = [put(stream, SHARD_A, n) for n in range(4)]

    def keys_from(iterator_type: str, **extra) -> list[dict]:
        iterator = streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_A,
                                              ShardIteratorType=iterator_type, **extra)["ShardIterator"]
        return [r["dynamodb"]["Keys"] for r in streams.get_records(ShardIterator=iterator)["Records"]]

    assert keys_from("AFTER_SEQUENCE_NUMBER", SequenceNumber=numbers[1]) == [key(2), key(3)]
    assert keys_from("AT_SEQUENCE_NUMBER", SequenceNumber=numbers[1]) == [key(1), key(2), key(3)]
    assert keys_from("AFTER_SEQUENCE_NUMBER", SequenceNumber=numbers[-1]) == []
    latest = streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_A,
                                        ShardIteratorType="LATEST")["ShardIterator"]
    put(stream, SHARD_A, 4)
    assert [r["dynamodb"]["Keys"] for r in streams.get_records(ShardIterator=latest)["Records"]] == [key(4)]


def test_trim_before(streams, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    old = [put(stream, SHARD_A, n) for n in range(3)]
    stream.close_shard(SHARD_A)
    stream.add_shard(SHARD_B, parent=SHARD_A)
    kept = [put(stream, SHARD_B, n) for n in range(3, 6)]
    early = streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_B,
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    stream.trim_before(kept[1])

    # The parent, closed and fully trimmed, is gone; the child still names it.
    description = streams.describe_stream(StreamArn=stream.stream_arn)["StreamDescription"]
    assert [(s["ShardId"], s.get("ParentShardId")) for s in description["Shards"]] == [(SHARD_B, SHARD_A)]
    with pytest.raises(ClientError) as excinfo:
        streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_A, ShardIteratorType="TRIM_HORIZON")
    assert error_code(excinfo) == "ResourceNotFoundException"

    for iterator_type in ("AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER"):
        with pytest.raises(ClientError) as excinfo:
            streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_B,
                                       ShardIteratorType=iterator_type, SequenceNumber=kept[0])
        assert error_code(excinfo) == "TrimmedDataAccessException"
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # An iterator taken before the trim now points at trimmed records.
    with pytest.raises(ClientError) as excinfo:
        streams.get_records(ShardIterator=early)
    assert error_code(excinfo) == "TrimmedDataAccessException"

    records, _ = read_all(streams, stream, SHARD_B)
    assert [r["dynamodb"]["SequenceNumber"] for r in records] == kept[1:]
    assert max(old) < min(kept)  # numbers increase across shards
    with pytest.raises(ValueError):
        stream.trim_before("not-a-number")


def test_retention_trims_records_as_they_age(streams, server):
    """Records older than `retention_seconds` are trimmed as DynamoDB Streams trims those older
    than 24 hours: TRIM_HORIZON starts after them, an iterator taken before fails, and a closed
    shard whose records all aged out leaves DescribeStream."""
    stream = server.add_stream(FakeStream("arn:aws:dynamodb:us-east-1:000000000000:table/R/stream/2026-01-01T00:00:00.000",
                                          table_name="R", retention_seconds=0.6))
    try:
        stream.add_shard(SHARD_A)
        for n in range(2):
            put(stream, SHARD_A, n)
        stream.split_shard(SHARD_A, SHARD_B)
        aged = put(stream, SHARD_B, 2)
        early = streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_B,
                                           ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        assert [s["ShardId"] for s in streams.describe_stream(StreamArn=stream.stream_arn)
                ["StreamDescription"]["Shards"]] == [SHARD_A, SHARD_B]  # nothing aged yet

        time.sleep(0.8)
        fresh = put(stream, SHARD_B, 3)

        shards = streams.describe_stream(StreamArn=stream.stream_arn)["StreamDescription"]["Shards"]
        assert [s["ShardId"] for s in shards] == [SHARD_B]  # the closed parent aged out whole
        with pytest.raises(ClientError) as excinfo:
            streams.get_records(ShardIterator=early)
        assert error_code(excinfo) == "TrimmedDataAccessException"
        with pytest.raises(ClientError) as excinfo:
            streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_B,
                                       ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=aged)
        assert error_code(excinfo) == "TrimmedDataAccessException"
        records, _ = read_all(streams, stream, SHARD_B)
        assert [r["dynamodb"]["SequenceNumber"] for r in records] == [fresh]
    finally:
        server.remove_stream(stream.stream_arn)


def test_expire_iterators_once(streams, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    put(stream, SHARD_A, 1)
    iterator = streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_A,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    stream.expire_iterators_once()
    with pytest.raises(ClientError) as excinfo:
        streams.get_records(ShardIterator=iterator)
    assert error_code(excinfo) == "ExpiredIteratorException"
    assert excinfo.value.response["Error"]["Message"] == "Iterator expired"
    assert [r["dynamodb"]["Keys"] for r in streams.get_records(ShardIterator=iterator)["Records"]] == [key(1)]
    stream.expire_iterators_once(count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            streams.get_records(ShardIterator=iterator)
        assert error_code(excinfo) == "ExpiredIteratorException"
    assert streams.get_records(ShardIterator=iterator)["Records"]
    assert stream.calls["GetRecords"] == 5


@pytest.mark.parametrize("view_type, images", [
    ("KEYS_ONLY", set()), ("NEW_IMAGE", {"NewImage"}), ("OLD_IMAGE", {"OldImage"}),
    ("NEW_AND_OLD_IMAGES", {"NewImage", "OldImage"}),
])
def test_view_types_drop_images(streams, new_stream, view_type, images):
    stream = new_stream(view_type)
    stream.add_shard(SHARD_A)
    stream.put_record(SHARD_A, "MODIFY", key(1), new_image=item(1, 2), old_image=item(1, 1))
    stream.put_record(SHARD_A, "REMOVE", key(1), old_image=item(1, 2))
    iterator = streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_A,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    modify, remove = streams.get_records(ShardIterator=iterator)["Records"]
    assert set(modify["dynamodb"]) & {"NewImage", "OldImage"} == images
    assert set(remove["dynamodb"]) & {"NewImage", "OldImage"} == images & {"OldImage"}
    assert modify["dynamodb"]["StreamViewType"] == view_type


def test_disable_and_list_streams(streams, new_stream):
    stream, other = new_stream(), new_stream()
    stream.add_shard(SHARD_A)
    put(stream, SHARD_A, 1)
    stream.disable()
    description = streams.describe_stream(StreamArn=stream.stream_arn)["StreamDescription"]
    assert description["StreamStatus"] == "DISABLED"
    records, _ = read_all(streams, stream, SHARD_A)
    assert [r["dynamodb"]["Keys"] for r in records] == [key(1)]
    with pytest.raises(ValueError):
        put(stream, SHARD_A, 2)

    listed = streams.list_streams()["Streams"]
    assert {"StreamArn": stream.stream_arn, "TableName": stream.table_name,
            "StreamLabel": "2026-01-01T00:00:00.000"} in listed
    assert other.stream_arn in {s["StreamArn"] for s in listed}
    assert [s["StreamArn"] for s in streams.list_streams(TableName=other.table_name)["Streams"]] == [other.stream_arn]


def test_errors(streams, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    cases = [
        (lambda: streams.describe_stream(StreamArn=stream.stream_arn + "x"), "ResourceNotFoundException"),
        (lambda: streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_B,
                                            ShardIteratorType="TRIM_HORIZON"), "ResourceNotFoundException"),
        (lambda: streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_A,
                                            ShardIteratorType="AT_SEQUENCE_NUMBER"), "ValidationException"),
        (lambda: streams.get_records(ShardIterator="not-an-iterator"), "ValidationException"),
        (lambda: streams.get_records(ShardIterator="fake-streams-iterator:%%%"), "ValidationException"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == code
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_split_shard_and_read_times(streams, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    put(stream, SHARD_A, 1)
    assert stream.read_times(SHARD_A) == []
    read_all(streams, stream, SHARD_A)  # one page with the record, one empty page
    assert len(stream.read_times(SHARD_A)) == 2
    stream.split_shard(SHARD_A, SHARD_B, SHARD_C)
    shards = streams.describe_stream(StreamArn=stream.stream_arn)["StreamDescription"]["Shards"]
    assert [(s["ShardId"], s.get("ParentShardId")) for s in shards] == [(SHARD_A, None), (SHARD_B, SHARD_A),
                                                                         (SHARD_C, SHARD_A)]
    assert "EndingSequenceNumber" in shards[0]["SequenceNumberRange"]
    assert stream.shard_ids == [SHARD_A, SHARD_B, SHARD_C]


def test_reads_per_second_limit(streams, server):
    stream = server.add_stream(FakeStream("arn:aws:dynamodb:us-east-1:000000000000:table/Limited/stream/x",
                                          table_name="Limited", reads_per_second=2))
    try:
        stream.add_shard(SHARD_A)
        stream.add_shard(SHARD_B)
        iterators = {shard: streams.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=shard,
                                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                     for shard in (SHARD_A, SHARD_B)}
        streams.get_records(ShardIterator=iterators[SHARD_A])
        streams.get_records(ShardIterator=iterators[SHARD_A])
        with pytest.raises(ClientError) as excinfo:
            streams.get_records(ShardIterator=iterators[SHARD_A])
        assert error_code(excinfo) == "LimitExceededException"
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        streams.get_records(ShardIterator=iterators[SHARD_B])  # the limit is per shard
        assert stream.calls["LimitExceeded"] == 1
        assert len(stream.read_times(SHARD_A)) == 2  # a refused read is not a read
    finally:
        server.remove_stream(stream.stream_arn)


def test_control_validation():
    stream = FakeStream()
    with pytest.raises(ValueError):
        stream.add_shard("shardId-short")
    stream.add_shard(SHARD_A)
    with pytest.raises(ValueError):
        stream.add_shard(SHARD_A)
    with pytest.raises(ValueError):
        stream.add_shard(SHARD_B, parent=SHARD_C)  # never added
    with pytest.raises(ValueError):
        stream.put_record(SHARD_A, "UPSERT", key(1))
    with pytest.raises(ValueError):
        stream.put_record(SHARD_A, "INSERT", {"other": {"S": "x"}})
    with pytest.raises(ValueError):
        stream.put_record(SHARD_B, "INSERT", key(1))
    stream.close_shard(SHARD_A)
    with pytest.raises(ValueError):
        put(stream, SHARD_A, 1)
    with pytest.raises(ValueError):
        FakeStream(view_type="EVERYTHING")


def test_aiobotocore_client_reads_the_stream(server, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    number = put(stream, SHARD_A, 1)
    stream.close_shard(SHARD_A)

    async def read() -> tuple[list, list]:
        async with get_session().create_client("dynamodbstreams", endpoint_url=server.url, **CLIENT_ARGS) as client:
            shards = (await client.describe_stream(StreamArn=stream.stream_arn))["StreamDescription"]["Shards"]
            iterator = (await client.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=SHARD_A,
                                                        ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
            page = await client.get_records(ShardIterator=iterator)
            assert "NextShardIterator" not in page
            return shards, page["Records"]

    shards, records = asyncio.run(read())
    assert [s["ShardId"] for s in shards] == [SHARD_A]
    assert [r["dynamodb"]["SequenceNumber"] for r in records] == [number]


def test_several_servers():
    with FakeStreamsServer() as one, FakeStreamsServer() as two:
        assert one.url != two.url
        client = boto3.client("dynamodbstreams", endpoint_url=one.url, **CLIENT_ARGS)
        assert client.list_streams()["Streams"] == []
        assert one.calls["ListStreams"] == 1 and two.calls["ListStreams"] == 0
    one.stop()  # stopping twice is harmless


def test_wire_protocol(server, new_stream):
    stream = new_stream()
    stream.add_shard(SHARD_A)
    put(stream, SHARD_A, 1)
    stream.trim_before(put(stream, SHARD_A, 2))

    def call(op: str, body: dict):
        request = urllib.request.Request(server.url + "/", data=json.dumps(body).encode(), method="POST", headers={
            "X-Amz-Target": f"DynamoDBStreams_20120810.{op}", "Content-Type": "application/x-amz-json-1.0"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.headers["Content-Type"], json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], json.loads(error.read())

    status, content_type, body = call("GetShardIterator", {
        "StreamArn": stream.stream_arn, "ShardId": SHARD_A,
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "000000000000000000001"})
    assert (status, content_type) == (400, "application/x-amz-json-1.0")
    assert body["__type"] == "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException" and body["message"]
    status, _, body = call("DescribeStream", {"StreamArn": stream.stream_arn})
    assert status == 200 and isinstance(body["StreamDescription"]["CreationRequestDateTime"], float)
    status, _, body = call("DeleteStream", {})
    assert status == 400 and body["__type"].endswith("#UnknownOperationException")


@pytest.mark.parametrize("accept_encoding, large, gzipped", [
    ("gzip, deflate", True, True),  # aiohttp's default
    ("br, gzip;q=0.5", True, True),
    ("*", True, True),
    ("gzip", False, False),  # 4 KB or less: as it is
    (None, True, False),  # no Accept-Encoding: as it is
    ("identity", True, False),  # the SDKs' (aiobotocore) and the data plane's
    ("gzip;q=0, *", True, False),
])
def test_large_replies_are_gzipped_when_asked_with_the_crc_over_the_bytes_sent(server, new_stream, accept_encoding,
                                                                              large, gzipped):
    """DynamoDB's reply compression, as `fake_streams._json_response` cites it."""
    stream = new_stream()
    stream.add_shard(SHARD_A)
    for n in range(40 if large else 2):
        stream.put_record(SHARD_A, "INSERT", key(n), new_image={**item(n), "pad": {"S": "x" * 100}})
    iterator = boto3.client("dynamodbstreams", endpoint_url=server.url, **CLIENT_ARGS).get_shard_iterator(
        StreamArn=stream.stream_arn, ShardId=SHARD_A, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    headers = {"X-Amz-Target": "DynamoDBStreams_20120810.GetRecords", "Content-Type": "application/x-amz-json-1.0"}
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    request = urllib.request.Request(server.url + "/", data=json.dumps({"ShardIterator": iterator}).encode(),
                                     method="POST", headers=headers)
    before = server.gzipped_replies

    with urllib.request.urlopen(request, timeout=5) as response:  # urllib never decompresses
        sent, encoding, crc = response.read(), response.headers.get("Content-Encoding"), response.headers["x-amz-crc32"]

    assert int(crc) == zlib.crc32(sent)  # over the bytes as sent, compressed or not
    assert (encoding == "gzip") is gzipped and server.gzipped_replies - before == int(gzipped)
    page = json.loads(gzip.decompress(sent) if gzipped else sent)
    assert len(page["Records"]) == (40 if large else 2)
    assert (len(json.dumps(page).encode()) > GZIP_ABOVE_BYTES) is large

def test_records_can_be_shaped_as_alternators(server, streams):
    """alternator/streams.cc (scylla-2026.1.0): eventSource scylladb:alternator, the datacenter
    as awsRegion, no SizeBytes; DynamoDB-shaped records keep theirs."""
    arn = "arn:aws:dynamodb:us-east-1:000000000000:table/Alt/stream/2026-01-01T00:00:00.000"
    stream = server.add_stream(FakeStream(arn, table_name="Alt", records_as="alternator"))
    try:
        stream.add_shard(SHARD_A)
        stream.put_record(SHARD_A, "MODIFY", key(1), new_image=item(1))
        (record,), _ = read_all(streams, stream, SHARD_A)
    finally:
        server.remove_stream(arn)

    assert (record["eventSource"], record["awsRegion"], record["eventName"]) == \
        ("scylladb:alternator", "datacenter1", "MODIFY")
    assert "SizeBytes" not in record["dynamodb"] and record["dynamodb"]["NewImage"] == {"pk": {"S": "k1"},
                                                                                      "v": {"N": "0"}}
    with pytest.raises(ValueError, match="records_as"):
        FakeStream(arn, records_as="scylla")
