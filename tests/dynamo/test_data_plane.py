"""The data plane against a real server (the Alternator front over moto): the same answers
as the SDK's client gets, errors included, signed as the SDK signs (and unsigned where no
credentials were configured for the target), corrupt replies caught."""
from __future__ import annotations

import asyncio

import orjson
import pytest
from botocore.exceptions import ClientError

from testbed import seed
from tests.support.cli_runs import unique
from transforms.dynamo.aws_json import CorruptResponse
from transforms.dynamo.data_plane import open_cluster
from transforms.dynamo.endpoints import Credentials, SourceSpec, TargetSpec, node_client
from transforms.dynamo.retry import error_code, is_retryable

pytestmark = pytest.mark.integration

KEY = seed.keyed_by("pk")


def _spec(alternator, credentials: Credentials | None = Credentials("test", "test")) -> TargetSpec:
    return TargetSpec(endpoint=alternator.url, credentials=credentials)


async def _both(spec: TargetSpec, operation: str, params: dict):
    """(what the data plane answers, what aiobotocore answers) for the same request."""
    async def ours():
        async with open_cluster(spec) as cluster:
            return await cluster.call(operation, orjson.dumps(params))

    async def sdk():
        async with node_client(spec, spec.endpoint) as client:
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
            answer = await getattr(client, snake)(**params)
            answer.pop("ResponseMetadata")
            return answer

    results = []
    for call in (ours, sdk):
        try:
            results.append(await call())
        except ClientError as exc:
            results.append(exc)
    return results


def _error(exc: ClientError) -> tuple:
    return (exc.response["Error"]["Code"], exc.response["Error"]["Message"],
            exc.response["ResponseMetadata"]["HTTPStatusCode"], is_retryable(exc))


def test_answers_and_errors_are_the_sdks(alternator_clean):
    table = unique("plane")
    seed.create_table(alternator_clean.url, table, **KEY)
    spec = _spec(alternator_clean)
    front = alternator_clean.front

    put = {"RequestItems": {table: [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}, "n": {"N": "1.50"}}}}
                                    for i in range(3)]}}
    ours, sdk = asyncio.run(_both(spec, "BatchWriteItem", put))
    assert ours == sdk and ours["UnprocessedItems"] == {}
    ours, sdk = asyncio.run(_both(spec, "Scan", {"TableName": table}))
    assert ours == sdk and ours["Count"] == 3

    cases = {
        "throttled": (dict(throttle=1.0), put),
        "server error": (dict(server_error=1.0), put),
        "too many items": ({}, {"RequestItems": {table: [{"PutRequest": {"Item": {"pk": {"S": f"x{i}"}}}}
                                                         for i in range(101)]}}),
        "no such table": ({}, {"RequestItems": {"no_such_table": put["RequestItems"][table]}}),
    }
    for name, (faults, request) in cases.items():
        front.set_faults(**faults)
        ours, sdk = asyncio.run(_both(spec, "BatchWriteItem", request))
        front.set_faults()
        assert isinstance(ours, ClientError) and isinstance(sdk, ClientError), name
        assert _error(ours) == _error(sdk), name
    assert error_code(ours) == "ResourceNotFoundException"


async def _scan(spec: TargetSpec, table: str) -> dict:
    async with open_cluster(spec) as cluster:
        return await cluster.call("Scan", orjson.dumps({"TableName": table}))


def test_requests_are_signed_with_the_spec_credentials(alternator_clean):
    table = unique("signed")
    seed.create_table(alternator_clean.url, table, **KEY)
    alternator_clean.front.require_signatures({"alternator": "secret-hash"})
    try:
        good = asyncio.run(_both(_spec(alternator_clean, Credentials("alternator", "secret-hash")), "Scan",
                                 {"TableName": table}))
        wrong = asyncio.run(_both(_spec(alternator_clean, Credentials("alternator", "not-the-secret")), "Scan",
                                  {"TableName": table}))
        with pytest.raises(ClientError) as unsigned:  # Alternator without credentials: unsigned requests
            asyncio.run(_scan(TargetSpec(alternator_seeds=("127.0.0.1",), alternator_port=alternator_clean.port),
                              table))
    finally:
        alternator_clean.front.require_signatures(None)
    assert good[0] == good[1] and good[0]["Count"] == 0
    assert _error(wrong[0]) == _error(wrong[1]) and error_code(wrong[0]) == "UnrecognizedClientException"
    assert error_code(unsigned.value) == "MissingAuthenticationTokenException" and not is_retryable(unsigned.value)


def test_a_profile_signs_with_its_own_keys(alternator_clean, tmp_path, monkeypatch):
    table = unique("profiled")
    seed.create_table(alternator_clean.url, table, **KEY)
    (tmp_path / "credentials").write_text("[migrator]\naws_access_key_id = alternator\n"
                                          "aws_secret_access_key = secret-hash\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-this-one")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nor-this")
    alternator_clean.front.require_signatures({"alternator": "secret-hash"})

    try:
        assert asyncio.run(_scan(_spec(alternator_clean, Credentials(profile="migrator")), table))["Count"] == 0
        with pytest.raises(ClientError, match="User not found"):  # the default chain: the environment's keys
            asyncio.run(_scan(_spec(alternator_clean, Credentials()), table))
    finally:
        alternator_clean.front.require_signatures(None)


def test_a_corrupt_reply_is_caught_and_retryable_and_a_dropped_one_too(alternator_clean):
    table = unique("corrupt")
    seed.create_table(alternator_clean.url, table, **KEY)

    for faults, expected in ((dict(corrupt=1.0), CorruptResponse), (dict(drop=1.0), Exception)):
        alternator_clean.front.set_faults(**faults, ops=["Scan"])
        try:
            with pytest.raises(expected) as caught:
                asyncio.run(_scan(_spec(alternator_clean), table))
        finally:
            alternator_clean.front.set_faults()
        assert is_retryable(caught.value)
    assert alternator_clean.front.stats()["faults_injected"] == {"corrupt": 1, "drop": 1}
    assert asyncio.run(_scan(_spec(alternator_clean), table))["Count"] == 0


def test_reads_spread_over_the_alternator_nodes(alternator_clean):
    table = unique("spread")
    seed.create_table(alternator_clean.url, table, **KEY)
    spec = TargetSpec(alternator_seeds=("127.0.0.1",), alternator_port=alternator_clean.port)

    async def scans():
        async with open_cluster(spec) as cluster:
            for _ in range(50):  # discovery answers within the first requests
                if len(cluster.nodes()) > 1:
                    break
                await asyncio.sleep(0.1)
            for _ in range(9):
                await cluster.call("Scan", orjson.dumps({"TableName": table}))
            return cluster.nodes()

    alternator_clean.front.reset_stats()
    nodes = asyncio.run(scans())
    assert len(nodes) == 3
    assert sorted(alternator_clean.front.stats()["requests_by_address"]) == sorted(nodes)


def test_a_source_without_an_endpoint_is_read_where_the_sdk_would_send(dynamodb_local, monkeypatch):
    """AWS itself is out of reach here: the SDK's own AWS_ENDPOINT_URL_DYNAMODB setting points
    its resolution at DynamoDB Local, and the data plane must follow it, as the SDK clients do."""
    table = unique("resolved")
    seed.create_table(dynamodb_local.endpoint, table, **KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local.endpoint)
    spec = SourceSpec(region="eu-west-1", credentials=Credentials("test", "test"))

    async def scan():
        async with open_cluster(spec) as cluster:
            return cluster.nodes(), await cluster.call("Scan", orjson.dumps({"TableName": table}))

    async def nodes():
        async with open_cluster(spec) as cluster:
            return cluster.nodes()

    found, answer = asyncio.run(scan())
    assert found == [dynamodb_local.endpoint] and answer["Count"] == 0
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    assert asyncio.run(nodes()) == ["https://dynamodb.eu-west-1.amazonaws.com"]


CHAIN_KEYS = {"chain-key": "chain-secret"}  # the AWS default chain's keys in these tests


def _chain_is(monkeypatch, users: dict[str, str]) -> None:
    """The AWS default chain finds the only key of `users` in the environment."""
    ((key, secret),) = users.items()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)


async def _describe(spec: TargetSpec, table: str) -> dict:
    async with node_client(spec, spec.endpoint) as client:
        return (await client.describe_table(TableName=table))["Table"]


def test_a_target_without_credentials_never_gets_the_users_aws_keys(alternator_clean, monkeypatch):
    """The front enforces signatures with the default chain's own keys as its one user, so a
    request signed with them would pass: without target.credentials neither the data plane
    nor the SDK client signs, and both are refused as unsigned. The same keys given as
    target.credentials are accepted."""
    table = unique("unsigned")
    seed.create_table(alternator_clean.url, table, **KEY)
    _chain_is(monkeypatch, CHAIN_KEYS)
    alternator_clean.front.require_signatures(CHAIN_KEYS)
    try:
        with pytest.raises(ClientError) as data_plane:
            asyncio.run(_scan(TargetSpec(endpoint=alternator_clean.url), table))
        with pytest.raises(ClientError) as control_plane:
            asyncio.run(_describe(TargetSpec(endpoint=alternator_clean.url), table))
        configured = asyncio.run(_scan(_spec(alternator_clean, Credentials("chain-key", CHAIN_KEYS["chain-key"])), table))
    finally:
        alternator_clean.front.require_signatures(None)
    assert error_code(data_plane.value) == error_code(control_plane.value) == "MissingAuthenticationTokenException"
    assert configured["Count"] == 0


def test_aws_dynamodb_without_credentials_is_signed_with_the_default_chain(alternator_clean, monkeypatch):
    """AWS is out of reach here: the front stands in for it as the HTTP proxy that requests for
    http://dynamodb.us-east-1.amazonaws.com go through (DynamoDB serves HTTP and HTTPS:
    https://docs.aws.amazon.com/general/latest/gr/ddb.html; HTTP_PROXY is honoured by the
    SDK and the data plane alike), accepting only the default chain's keys, as DynamoDB
    accepts only signed requests."""
    table = unique("aws")
    seed.create_table(alternator_clean.url, table, **KEY)
    _chain_is(monkeypatch, CHAIN_KEYS)
    monkeypatch.setenv("HTTP_PROXY", alternator_clean.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    spec = TargetSpec(endpoint="http://dynamodb.us-east-1.amazonaws.com")
    alternator_clean.front.require_signatures(CHAIN_KEYS)
    try:
        answer = asyncio.run(_scan(spec, table))
        described = asyncio.run(_describe(spec, table))
    finally:
        alternator_clean.front.require_signatures(None)
    assert answer["Count"] == 0 and described["TableName"] == table
