"""moto with IAM enforced authorizes requests against the resources AWS documents
(testbed/moto_iam.py), and refuses DynamoDB requests as DynamoDB does."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from testbed import seed
from testbed.servers import IamMotoServer
from tests.support.cli_runs import unique

pytestmark = pytest.mark.integration

SETUP = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
TABLES = "arn:aws:dynamodb:us-east-1:123456789012:table/"


@pytest.fixture(scope="module")
def aws():
    with IamMotoServer() as server:
        yield server


@pytest.fixture
def as_user(aws):
    """A function giving boto3 clients of a new user holding one policy (statements); IAM is
    enforced from the first call until the test ends."""
    aws.enforce_iam(False)
    iam = boto3.client("iam", endpoint_url=aws.endpoint, **SETUP)

    def clients(*statements: dict):
        name = unique("user")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **s} for s in statements]}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        keys = dict(region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                    aws_secret_access_key=key["SecretAccessKey"])
        return lambda service: boto3.client(service, endpoint_url=aws.endpoint, **keys)

    yield clients
    aws.enforce_iam(False)


def _refusal(call) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as refused:
        call()
    response = refused.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def test_dynamodb_actions_are_checked_on_the_tables_they_name(aws, as_user):
    allowed, other = unique("allowed"), unique("other")
    for table in (allowed, other):
        seed.create_table(aws.endpoint, table, **seed.STREAMED_TABLE)
    user = as_user({"Action": ["dynamodb:DescribeTable", "dynamodb:BatchWriteItem"], "Resource": TABLES + allowed})
    aws.enforce_iam()
    dynamodb = user("dynamodb")

    assert dynamodb.describe_table(TableName=allowed)["Table"]["TableName"] == allowed
    status, code, message = _refusal(lambda: dynamodb.describe_table(TableName=other))
    assert (status, code) == (400, "AccessDeniedException")  # DynamoDB's JSON error, not moto's XML 403
    assert message.endswith(f"is not authorized to perform: dynamodb:DescribeTable on resource: {TABLES}{other} "
                            f"because no identity-based policy allows the dynamodb:DescribeTable action")
    put = {"PutRequest": {"Item": {"id": {"S": "x"}}}}
    dynamodb.batch_write_item(RequestItems={allowed: [put]})
    # A batch naming two tables needs the action on both.
    assert "table/" + other in _refusal(lambda: dynamodb.batch_write_item(RequestItems={allowed: [put],
                                                                                          other: [put]}))[2]
    assert _refusal(lambda: dynamodb.scan(TableName=allowed))[1] == "AccessDeniedException"  # not granted
    unknown = boto3.client("dynamodb", endpoint_url=aws.endpoint, **{**SETUP, "aws_access_key_id": "AKIAUNKNOWN"})
    assert _refusal(lambda: unknown.list_tables())[:2] == (400, "UnrecognizedClientException")


def test_stream_reads_are_checked_on_the_stream(aws, as_user):
    table = unique("streamed")
    seed.create_table(aws.endpoint, table, **seed.STREAMED_TABLE)
    seed.stream_changes(aws.endpoint, table, 0, 2)
    stream_arn = seed.client_for(aws.endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    user = as_user({"Action": ["dynamodb:DescribeStream", "dynamodb:GetShardIterator"],
                    "Resource": f"{TABLES}{table}/stream/*"})
    aws.enforce_iam()
    streams = user("dynamodbstreams")

    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    message = _refusal(lambda: streams.get_records(ShardIterator=iterator))[2]
    assert f"dynamodb:GetRecords on resource: {stream_arn} " in message  # the iterator's stream


def test_s3_checks_the_permissions_aws_documents(aws, as_user):
    bucket = unique("bucket").replace("_", "-")
    admin = boto3.client("s3", endpoint_url=aws.endpoint, **SETUP)
    admin.create_bucket(Bucket=bucket)
    for key in ("in/a", "in/b", "out/c"):
        admin.put_object(Bucket=bucket, Key=key, Body=b"x")
    lister = as_user({"Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"})("s3")
    writer = as_user({"Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": f"arn:aws:s3:::{bucket}/out/*"})("s3")
    aws.enforce_iam()

    lister.head_bucket(Bucket=bucket)  # HeadBucket needs s3:ListBucket, as on AWS
    assert _refusal(lambda: writer.head_bucket(Bucket=bucket))[0] == 403
    # DeleteObjects: each object is checked (one refused: moto refuses them all, see moto_iam).
    refused = writer.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "out/c"}, {"Key": "in/a"}]})
    assert ("in/a", "AccessDenied") in [(e["Key"], e["Code"]) for e in refused["Errors"]]
    deleted = writer.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "out/c"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["out/c"]
    # CopyObject needs s3:GetObject on the original, which the writer lacks.
    assert _refusal(lambda: writer.copy_object(Bucket=bucket, Key="out/d", CopySource=f"{bucket}/in/b"))[1] == \
        "AccessDenied"
