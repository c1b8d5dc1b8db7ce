"""Windows of many shards written together, against the Alternator front (moto behind it)."""
from __future__ import annotations

import asyncio

import pytest

from testbed import seed
from tests.support.cli_runs import unique
from transforms.dynamo.endpoints import TargetSpec
from transforms.dynamo.write_requests import delete, put
from transforms.dynamo.writer import WriterSettings, open_writer
from transforms.streams.windows import WindowWriter
from transforms.table_pair import TablePair

pytestmark = pytest.mark.integration


def _table(alternator) -> TablePair:
    name = unique("windows")
    seed.create_table(alternator.url, name, **seed.keyed_by("id"))
    return TablePair(name, name, ("id",))


def _write(alternator, table: TablePair, windows: list[list[dict]], attempts: int = 10):
    """Hand every window in at once, as that many shards would; the failures per window."""
    async def run():
        target = TargetSpec(alternator_seeds=("127.0.0.1",), alternator_port=alternator.port)
        settings = WriterSettings(max_items_per_batch=100, concurrency=4, max_attempts=attempts)
        async with open_writer(target, settings) as writer:
            shared = WindowWriter(writer, max_items_per_batch=100, max_requests=400)
            try:
                return await asyncio.gather(*(shared.write(table, window) for window in windows))
            finally:
                await shared.close()
    return asyncio.run(run())


def _item(shard: int, n: int) -> dict:
    return {"id": {"S": f"s{shard}-k{n}"}, "v": {"N": str(n)}}


def test_windows_of_many_shards_share_requests(alternator_clean):
    table = _table(alternator_clean)
    windows = [[put(_item(shard, n)) for n in range(3)] + [delete({"id": {"S": f"s{shard}-gone"}})]
               for shard in range(200)]
    alternator_clean.front.reset_stats()

    failures = _write(alternator_clean, table, windows)

    assert failures == [[]] * 200
    assert seed.table_items(alternator_clean.url, table.target) == sorted(
        seed.canonical(_item(shard, n)) for shard in range(200) for n in range(3))
    requests = alternator_clean.front.stats()["requests_by_operation"]["BatchWriteItem"]
    assert requests < 200 / 2  # 800 writes of 200 windows in far fewer requests than one per window
    writers = alternator_clean.front.stats()["write_addresses_by_key"]
    assert all(len(addresses) == 1 for key, addresses in writers.items() if key.startswith(table.target))


def test_each_window_gets_its_own_failures(alternator_clean):
    table = _table(alternator_clean)
    windows = [[put(_item(shard, n)) for n in range(shard + 1)] for shard in range(5)]
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])

    failures = _write(alternator_clean, table, windows, attempts=2)

    assert [len(f) for f in failures] == [1, 2, 3, 4, 5]
    for window, failed in zip(windows, failures):
        assert sorted(f.request["PutRequest"]["Item"]["id"]["S"] for f in failed) == \
            sorted(r["PutRequest"]["Item"]["id"]["S"] for r in window)
        assert all("RequestLimitExceeded" in f.error for f in failed)


def test_a_window_never_passes_an_earlier_one_naming_a_key_of_it(alternator_clean):
    """One caller hands in three windows without waiting (as the spool's apply does): the second
    must wait for the first (both name x), and so the third (y, as the second) for the second,
    although nothing in flight names y."""
    table = _table(alternator_clean)
    windows = [[put({"id": {"S": "x"}, "v": {"N": "0"}})],
               [put({"id": {"S": "x"}, "v": {"N": "1"}}), put({"id": {"S": "y"}, "v": {"N": "1"}})],
               [put({"id": {"S": "y"}, "v": {"N": "2"}})]]

    assert _write(alternator_clean, table, windows) == [[], [], []]

    assert {i["id"]["S"]: i["v"]["N"] for i in seed.scan_all(alternator_clean.url, table.target)} == \
        {"x": "1", "y": "2"}
