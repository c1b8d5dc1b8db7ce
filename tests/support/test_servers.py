"""The real local servers start and answer."""
import pytest

from tests.support import seed
from tests.support.cli_runs import unique

pytestmark = pytest.mark.integration


def test_dynamodb_local_creates_and_lists_a_table(dynamodb_local):
    table = unique("listed")
    seed.create_table(dynamodb_local.endpoint, table,
                      KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST")
    assert table in seed.client_for(dynamodb_local.endpoint).list_tables()["TableNames"]
