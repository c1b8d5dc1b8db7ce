"""Shared fixtures: real local servers, started once per test session (when first used).

`dynamodb_local` is the migration source, `alternator` the target (moto behind the
Alternator front; its moto serves S3 too), `kinesis` the Kinesis data streams a source
table's changes can be read from (moto, amended to reshard as Kinesis does). `gcs_emulator` holds gs:// state, and
`dask_cluster` is a scheduler with three workers for Beam's Dask runner. They stay up for
the whole session, so tests use their own table and bucket names.
"""
from __future__ import annotations

import os

import pytest

from testbed.servers import DaskCluster, DynamoDBLocal, GcsEmulator, KinesisMotoServer, LocalAlternator

# DynamoDB Local only accepts signed requests, with any credentials; moto needs a region.
FAKE_AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: talks to real local servers (DynamoDB Local, moto)")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake AWS credentials and region for this test, whatever the environment holds."""
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    return FAKE_AWS_ENV


@pytest.fixture(scope="session")
def _fake_aws_env_if_absent():
    """Fill in missing AWS settings for the session, restoring the environment after it."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS_ENV.items():
            if not os.environ.get(name):
                patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def dynamodb_local(_fake_aws_env_if_absent):
    with DynamoDBLocal() as server:
        yield server


@pytest.fixture(scope="session")
def alternator(_fake_aws_env_if_absent):
    with LocalAlternator() as server:
        yield server


@pytest.fixture(scope="session")
def kinesis(_fake_aws_env_if_absent):
    with KinesisMotoServer() as server:
        yield server


@pytest.fixture
def alternator_clean(alternator):
    """The session's Alternator with no faults, its own request size limit and zeroed stats,
    restored so after the test."""
    alternator.front.set_faults()
    alternator.front.limit_request_bytes()
    alternator.front.reset_stats()
    yield alternator
    alternator.front.set_faults()
    alternator.front.limit_request_bytes()
    alternator.front.reset_stats()


@pytest.fixture(scope="session")
def gcs_emulator():
    with GcsEmulator() as server:
        yield server


@pytest.fixture(scope="session")
def dask_cluster(_fake_aws_env_if_absent):
    with DaskCluster(workers=3) as cluster:
        yield cluster
