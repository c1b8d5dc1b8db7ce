"""The shard graph's pure parts, and the record budget shards share."""
from __future__ import annotations

import asyncio

from transforms.streams.shard_reader import RecordBudget
from transforms.streams.shards import ShardTask, lineage_groups


def _task(shard: str, parent: str | None = None, table: str = "t") -> ShardTask:
    return ShardTask(table, "arn", shard, parent)


def test_lineages_stay_together_and_groups_are_bounded():
    tasks = [_task("a"), _task("a1", "a"), _task("a2", "a"), _task("a11", "a1"),
             _task("b"), _task("c"), _task("d"), _task("a", table="other"), _task("x", "gone")]

    groups = lineage_groups(tasks, max_shards=3)

    assert sorted(len(group) for group in groups) == [2, 3, 4]
    assert {t for group in groups for t in group} == set(tasks)
    family = {"a", "a1", "a2", "a11"}
    assert any({t.shard_id for t in group if t.table == "t"} >= family for group in groups)  # longer than 3: whole
    assert all(len(group) <= 3 for group in groups if not {t.shard_id for t in group} >= family)


def test_budget_serves_first_come_first_served():
    async def run():
        budget, order = RecordBudget(10), []

        async def reader(name: str, count: int):
            await budget.take(count)
            order.append(name)

        await budget.take(8)
        big = asyncio.create_task(reader("big", 10))      # must wait for all 10
        await asyncio.sleep(0)
        small = asyncio.create_task(reader("small", 1))   # would fit now, but queues behind big
        await asyncio.sleep(0)
        assert order == []
        budget.give(8)
        await big
        await asyncio.sleep(0)
        assert order == ["big"]  # small waits until big gives back
        budget.give(10)
        await small
        return order

    assert asyncio.run(run()) == ["big", "small"]
