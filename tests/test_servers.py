"""The real local servers start and answer."""
import boto3
import pytest

pytestmark = pytest.mark.integration


def test_dynamodb_local_answers_list_tables(dynamodb_local):
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    assert client.list_tables()["TableNames"] == []
