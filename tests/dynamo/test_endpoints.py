"""Endpoint specs: secrets stay hidden; which target requests are signed."""
from __future__ import annotations

import pytest

from transforms.dynamo.endpoints import Credentials, TargetSpec, is_aws_dynamodb


def test_credentials_never_show_their_secrets():
    creds = Credentials("AKIDSECRETID", "very-secret-value", "session-secret")
    assert "very-secret-value" not in repr(creds) and "AKIDSECRETID" not in repr(creds)
    assert "session-secret" not in str(creds)


# DynamoDB's endpoints as listed at https://docs.aws.amazon.com/general/latest/gr/ddb.html
# (standard, FIPS, dual-stack, account-based) and a VPC endpoint's name
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/privatelink-interface-endpoints.html).
@pytest.mark.parametrize("url", [
    "https://dynamodb.us-east-1.amazonaws.com",
    "http://dynamodb.eu-west-1.amazonaws.com/",
    "https://dynamodb-fips.us-gov-west-1.amazonaws.com",
    "https://dynamodb.us-east-2.api.aws",
    "https://111122223333.ddb.us-east-1.amazonaws.com",
    "https://dynamodb.cn-north-1.amazonaws.com.cn",
    "https://vpce-1a2b3c4d-5e6f.dynamodb.us-east-1.vpce.amazonaws.com",
    "https://DynamoDB.US-EAST-1.amazonaws.com.:443",
])
def test_aws_dynamodb_endpoints_are_recognised(url):
    assert is_aws_dynamodb(url)
    assert TargetSpec(endpoint=url).signed  # with the default chain


# Anyone's cluster may sit behind an EC2 instance's or a load balancer's AWS name.
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000",
    "https://scylla.example.com:8043",
    "http://ec2-54-1-2-3.us-west-2.compute.amazonaws.com:8000",
    "https://alternator-123.us-east-1.elb.amazonaws.com",
    "https://dynamodb.us-east-1.amazonaws.com.example.com",
    "https://dynamodb.amazonaws.com",
    "http://localhost:8000",
])
def test_other_endpoints_are_not_aws_dynamodb(url):
    assert not is_aws_dynamodb(url)
    assert not TargetSpec(endpoint=url).signed
    assert TargetSpec(endpoint=url, credentials=Credentials("role", "salted-hash")).signed


def test_an_alternator_cluster_is_signed_only_with_credentials():
    assert not TargetSpec(alternator_seeds=("10.0.0.1",)).signed
    assert TargetSpec(alternator_seeds=("10.0.0.1",), credentials=Credentials("role", "salted-hash")).signed
