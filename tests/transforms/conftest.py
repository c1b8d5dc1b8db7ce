"""Fixtures of the transform tests: the two sides as the transforms take them, and a source
table seeded once for every test that only reads it."""
from __future__ import annotations

import pytest

from testbed import seed
from tests.support.cli_runs import unique
from tests.transforms.items import ITEMS, KEYED_TABLE
from transforms.dynamo.endpoints import Credentials, SourceSpec, TargetSpec


@pytest.fixture(scope="session")
def source(dynamodb_local) -> SourceSpec:
    """DynamoDB Local as the migration source."""
    return SourceSpec(endpoint=dynamodb_local.endpoint, credentials=Credentials("test", "test"))


@pytest.fixture(scope="session")
def target(alternator) -> TargetSpec:
    """The Alternator front as the target cluster, found from its seed."""
    return TargetSpec(alternator_seeds=("127.0.0.1",), alternator_port=alternator.port)


@pytest.fixture(scope="session")
def source_table(dynamodb_local) -> str:
    """A source table holding `ITEMS`; tests only read it."""
    table = unique("transforms_source")
    seed.create_table(dynamodb_local.endpoint, table, **KEYED_TABLE)
    seed.put_items(dynamodb_local.endpoint, table, ITEMS)
    return table
