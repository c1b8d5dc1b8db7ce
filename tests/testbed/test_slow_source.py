"""The far-source front: Scans held, and with `replay_scans`, a repeated Scan answered from memory."""
import pytest

from testbed import seed
from testbed.slow_source import SlowSource
from tests.support.cli_runs import unique

pytestmark = pytest.mark.integration


def _keys(endpoint: str, table: str, **scan) -> list[str]:
    items = seed.client_for(endpoint).scan(TableName=table, **scan)["Items"]
    return sorted(item["id"]["S"] for item in items)


def test_a_repeated_scan_is_answered_from_memory_and_any_other_request_by_the_backend(dynamodb_local):
    table = unique("replayed")
    seed.create_table(dynamodb_local.endpoint, table, **seed.keyed_by("id"))
    seed.put_items(dynamodb_local.endpoint, table, ({"id": {"S": key}} for key in ("a", "b", "c")))
    with SlowSource(dynamodb_local.endpoint, replay_scans=True) as front:
        first = _keys(front.url, table)
        seed.client_for(dynamodb_local.endpoint).delete_item(TableName=table, Key={"id": {"S": "b"}})
        repeated = _keys(front.url, table)  # the same body: the kept page, "b" still in it
        other = _keys(front.url, table, Limit=10)  # another body: asked of the backend
        described = seed.client_for(front.url).describe_table(TableName=table)["Table"]["ItemCount"]
        replayed, cpu = front.replayed, front.cpu_seconds()

    assert first == repeated == ["a", "b", "c"]
    assert other == ["a", "c"] and described == 2
    assert replayed == 1
    assert 0 < cpu < 60


def test_without_replay_every_scan_reaches_the_backend(dynamodb_local):
    table = unique("forwarded")
    seed.create_table(dynamodb_local.endpoint, table, **seed.keyed_by("id"))
    seed.put_items(dynamodb_local.endpoint, table, ({"id": {"S": key}} for key in ("a", "b")))
    with SlowSource(dynamodb_local.endpoint) as front:
        first = _keys(front.url, table)
        seed.client_for(dynamodb_local.endpoint).delete_item(TableName=table, Key={"id": {"S": "b"}})
        again = _keys(front.url, table)

    assert (first, again, front.replayed) == (["a", "b"], ["a"], 0)
