"""The Alternator front against a real moto server, through boto3 over HTTP.

botocore retries are off, so every injected fault reaches the test as it would reach the
pipeline's own retry logic.
"""
from __future__ import annotations

from http.client import HTTPConnection
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from testbed import seed
from testbed.alternator_front import DEFAULT_ADDRESSES, MAX_REQUEST_BYTES
from testbed.servers import REPO_ROOT

pytestmark = pytest.mark.integration
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def dynamodb(alternator, address: str = "127.0.0.1"):
    return boto3.client(
        "dynamodb", endpoint_url=f"http://{address}:{alternator.port}", region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5))


def http(method: str, url: str, payload: dict | None = None) -> tuple[int, object]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with _DIRECT.open(request, timeout=5) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def put(pk: str, sk: int) -> dict:
    return {"PutRequest": {"Item": {"pk": {"S": pk}, "sk": {"N": str(sk)}, "v": {"S": "x"}}}}


def count_items(client, table: str) -> int:
    return client.scan(TableName=table, Select="COUNT")["Count"]


@pytest.fixture
def table(alternator_clean):
    """A fresh table keyed (pk: S, sk: N); stats are zeroed after creating it."""
    name = f"front-{uuid.uuid4().hex[:12]}"
    client = dynamodb(alternator_clean)
    client.create_table(TableName=name, **seed.keyed_by("pk", sort=("sk", "N")))
    alternator_clean.front.reset_stats()
    yield name
    client.delete_table(TableName=name)


def test_health_and_localnodes_on_every_address(alternator_clean):
    status, nodes = http("GET", f"{alternator_clean.url}/localnodes?dc=dc1&rack=rack1")
    assert status == 200
    assert nodes == list(DEFAULT_ADDRESSES)
    for address in nodes:
        status, body = http("GET", f"http://{address}:{alternator_clean.port}/")
        assert status == 200
        assert address in body


def test_put_and_get_through_second_address(alternator_clean, table):
    client = dynamodb(alternator_clean, "127.0.0.2")
    client.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"S": "hello"}})
    item = client.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"N": "1"}})["Item"]
    assert item["v"] == {"S": "hello"}
    assert alternator_clean.front.stats()["requests_by_address"] == {"127.0.0.2": 2}


def test_batch_write_accepts_100_items_and_rejects_101(alternator_clean, table):
    client = dynamodb(alternator_clean)
    client.batch_write_item(RequestItems={table: [put("p", i) for i in range(100)]})
    assert count_items(client, table) == 100

    with pytest.raises(ClientError) as error:
        client.batch_write_item(RequestItems={table: [put("q", i) for i in range(101)]})
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert count_items(client, table) == 100


def post_raw(alternator, op: str, body, chunked: bool = False) -> tuple[int, object]:
    """POST a body as it is (bytes; or chunks, sent with Transfer-Encoding: chunked)."""
    connection = HTTPConnection("127.0.0.1", alternator.port, timeout=30)
    try:
        connection.request("POST", "/", body=body, encode_chunked=chunked,
                           headers={"X-Amz-Target": f"DynamoDB_20120810.{op}",
                                    "Content-Type": "application/x-amz-json-1.0"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_body_over_the_limit_is_refused_with_413_as_alternator_does(alternator_clean, table):
    too_large = {"__type": "com.amazonaws.dynamodb.v20120810#PayloadTooLarge",
                 "message": f"Request content length limit of {MAX_REQUEST_BYTES} bytes exceeded"}
    # Alternator's own limit, 16 MiB: refused on the Content-Length, before the body is read.
    assert post_raw(alternator_clean, "BatchWriteItem", b" " * (MAX_REQUEST_BYTES + 1)) == (413, too_large)

    body = json.dumps({"RequestItems": {table: [put("p", i) for i in range(3)]}}).encode()
    alternator_clean.front.limit_request_bytes(len(body) - 1)  # lowered: one byte short of this request
    message = f"Request content length limit of {len(body) - 1} bytes exceeded"
    assert post_raw(alternator_clean, "BatchWriteItem", body) == (413, {**too_large, "message": message})
    # Without a Content-Length, refused once more than the limit was read.
    assert post_raw(alternator_clean, "BatchWriteItem", iter([body[:10], body[10:]]), chunked=True) == (
        413, {**too_large, "message": message})
    assert count_items(dynamodb(alternator_clean), table) == 0

    alternator_clean.front.limit_request_bytes(len(body))  # exactly the limit: taken
    assert post_raw(alternator_clean, "BatchWriteItem", iter([body[:10], body[10:]]), chunked=True)[0] == 200
    assert count_items(dynamodb(alternator_clean), table) == 3
    assert alternator_clean.front.stats()["requests_too_large"] == 3


def test_batch_get_item_answers_every_key_whatever_the_size(alternator_clean):
    """Moto, like DynamoDB, stops an answer at 16 MiB; Alternator (and so the front) does not."""
    client = dynamodb(alternator_clean)
    table = f"front-big-{uuid.uuid4().hex[:12]}"
    client.create_table(TableName=table, **seed.keyed_by("pk"))
    value = "x" * 350_000  # 50 of them: 17.5 MB
    for first in range(0, 50, 10):
        client.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i}"}, "v": {"S": value}}}} for i in range(first, first + 10)]})
    keys = [{"pk": {"S": f"k{i}"}} for i in range(50)]
    behind = boto3.client("dynamodb", endpoint_url=alternator_clean.moto.endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    assert behind.batch_get_item(RequestItems={table: {"Keys": keys}})["UnprocessedKeys"]  # moto's cap

    answer = client.batch_get_item(RequestItems={table: {"Keys": keys}})

    assert sorted(item["pk"]["S"] for item in answer["Responses"][table]) == sorted(k["pk"]["S"] for k in keys)
    assert answer["UnprocessedKeys"] == {}
    client.delete_table(TableName=table)


def test_batch_write_rejects_duplicate_keys(alternator_clean, table):
    client = dynamodb(alternator_clean)
    delete = {"DeleteRequest": {"Key": {"pk": {"S": "p"}, "sk": {"N": "1"}}}}
    for writes in ([put("p", 1), put("p", 1)], [put("p", 1), delete]):
        with pytest.raises(ClientError) as error:
            client.batch_write_item(RequestItems={table: writes})
        assert error.value.response["Error"]["Code"] == "ValidationException"
        assert "duplicates" in error.value.response["Error"]["Message"]
    assert count_items(client, table) == 0

    client.batch_write_item(RequestItems={table: [put("p", 1), put("p", 2), put("r", 1)]})  # same pk, other sk
    assert count_items(client, table) == 3


def test_throttle_rejects_batch_without_writing(alternator_clean, table):
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])
    client = dynamodb(alternator_clean)
    with pytest.raises(ClientError) as error:
        client.batch_write_item(RequestItems={table: [put("p", i) for i in range(10)]})
    assert error.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert count_items(client, table) == 0  # Scan is not in ops, so it is not throttled
    assert alternator_clean.front.stats()["faults_injected"] == {"throttle": 1}


def test_server_error_is_http_500_without_writing(alternator_clean, table):
    alternator_clean.front.set_faults(server_error=1.0, ops=["PutItem"])
    client = dynamodb(alternator_clean)
    with pytest.raises(ClientError) as error:
        client.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"N": "1"}})
    assert error.value.response["Error"]["Code"] == "InternalServerError"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert count_items(client, table) == 0


def test_drop_closes_connection_without_response(alternator_clean):
    alternator_clean.front.set_faults(drop=1.0)
    with pytest.raises(ConnectionClosedError):
        dynamodb(alternator_clean).list_tables()
    assert alternator_clean.front.stats()["faults_injected"] == {"drop": 1}


def test_slow_delays_then_answers(alternator_clean):
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.3)
    started = time.monotonic()
    dynamodb(alternator_clean).list_tables()
    assert time.monotonic() - started >= 0.3


def test_seed_makes_faults_repeatable(alternator_clean):
    def outcomes() -> list[bool]:
        alternator_clean.front.set_faults(throttle=0.5, seed=7)
        client = dynamodb(alternator_clean)
        results = []
        for _ in range(12):
            try:
                client.list_tables()
                results.append(True)
            except ClientError:
                results.append(False)
        return results

    first = outcomes()
    assert first == outcomes()
    assert True in first and False in first


def test_faults_and_stats_over_http(alternator_clean, table):
    url = alternator_clean.url
    status, faults = http("POST", f"{url}/_faults", {"throttle": 1.0, "ops": ["PutItem"]})
    assert status == 200 and faults["throttle"] == 1.0 and faults["ops"] == ["PutItem"]
    assert http("POST", f"{url}/_faults", {"throttle": 2})[0] == 400
    assert http("POST", f"{url}/_faults", {"no_such_fault": 1})[0] == 400

    client = dynamodb(alternator_clean, "127.0.0.3")
    with pytest.raises(ClientError) as error:
        client.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"N": "1"}})
    assert error.value.response["Error"]["Code"] == "RequestLimitExceeded"
    http("POST", f"{url}/_faults", {})
    client.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"N": "1"}})

    status, stats = http("GET", f"{url}/_stats")
    assert status == 200
    assert stats == {"requests_by_address": {"127.0.0.3": 2},
                     "requests_by_operation": {"PutItem": 2},
                     "faults_injected": {"throttle": 1}, "requests_too_large": 0,
                     "write_addresses_by_key": {}}  # only BatchWriteItem keys are tracked
    status, stats = http("POST", f"{url}/_stats/reset")
    assert stats == {"requests_by_address": {}, "requests_by_operation": {}, "faults_injected": {},
                     "requests_too_large": 0, "write_addresses_by_key": {}}


def test_stats_count_requests_per_address(alternator_clean):
    for address, calls in (("127.0.0.1", 1), ("127.0.0.2", 2), ("127.0.0.3", 3)):
        client = dynamodb(alternator_clean, address)
        for _ in range(calls):
            client.list_tables()
    stats = alternator_clean.front.stats()
    assert stats["requests_by_address"] == {"127.0.0.1": 1, "127.0.0.2": 2, "127.0.0.3": 3}
    assert stats["requests_by_operation"] == {"ListTables": 6}


def test_runs_as_a_process_until_sigterm(alternator_clean, table):
    command = [sys.executable, "-m", "testbed.alternator_front", "--backend", alternator_clean.moto.endpoint,
               "--port", "0", "--addresses", "127.0.0.4,127.0.0.5"]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline()
            assert line.startswith("listening on 127.0.0.4:")
            port = int(line.split(",")[0].rsplit(":", 1)[1])
            assert http("GET", f"http://127.0.0.5:{port}/localnodes") == (200, ["127.0.0.4", "127.0.0.5"])
            client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.5:{port}", region_name="us-east-1",
                                  aws_access_key_id="test", aws_secret_access_key="test")
            # same moto behind both fronts (describe it: ListTables pages at 100 names, and the session has more)
            assert client.describe_table(TableName=table)["Table"]["TableName"] == table
        finally:
            process.terminate()
        assert process.wait(10) == 0


STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
VNODES = [{"Key": "system:initial_tablets", "Value": "none"}]


def _create(client, name: str, **extra) -> None:
    client.create_table(TableName=name, **seed.keyed_by("pk"), **extra)


def _refusal(call) -> str:
    with pytest.raises(ClientError) as error:
        call()
    assert error.value.response["Error"]["Code"] == "ValidationException"
    return error.value.response["Error"]["Message"]


def test_new_tables_use_tablets_and_cannot_stream_unless_tagged_for_vnodes(alternator_clean):
    """ScyllaDB 2026.1 (alternator/executor.cc; alternator_tablets has the details)."""
    client = dynamodb(alternator_clean)
    tablets, vnodes, counted = (f"front-{uuid.uuid4().hex[:12]}" for _ in range(3))

    refused = _refusal(lambda: _create(client, tablets, StreamSpecification=STREAM))
    _create(client, tablets)
    refused_later = _refusal(lambda: client.update_table(TableName=tablets, StreamSpecification=STREAM))
    _create(client, counted, Tags=[{"Key": "system:initial_tablets", "Value": "4"}])
    _create(client, vnodes, Tags=VNODES, StreamSpecification=STREAM)

    assert refused.startswith("Streams not yet supported on a table using tablets (issue #23838)")
    assert "'system:initial_tablets' set to 'none'" in refused and "re-create this table" in refused_later
    assert [alternator_clean.front.uses_tablets(t) for t in (tablets, counted, vnodes)] == [True, True, False]
    described = client.describe_table(TableName=vnodes)["Table"]
    assert described["StreamSpecification"]["StreamEnabled"] is True
    assert client.list_tags_of_resource(ResourceArn=described["TableArn"])["Tags"] == VNODES
    reserved = _refusal(lambda: _create(client, f"front-{uuid.uuid4().hex[:12]}",
                                        Tags=[{"Key": "system:other", "Value": "x"}]))
    assert reserved == "Tag key 'system:other' is reserved for internal use"


def test_before_2025_4_tables_use_vnodes_and_the_tablets_tag_is_reserved(alternator_clean):
    """ScyllaDB 2025.1-2025.3 (alternator/executor.cc of branch-2025.3)."""
    client = dynamodb(alternator_clean)
    name = f"front-{uuid.uuid4().hex[:12]}"
    alternator_clean.front.set_release("2025.3")
    try:
        reserved = _refusal(lambda: _create(client, name, Tags=VNODES))
        _create(client, name, StreamSpecification=STREAM)
    finally:
        alternator_clean.front.set_release()

    assert reserved == "Tag key 'system:initial_tablets' is reserved for internal use"
    assert not alternator_clean.front.uses_tablets(name)
