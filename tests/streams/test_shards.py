"""The shard graph's pure parts, and the record budget shards share."""
from __future__ import annotations

import asyncio

from transforms.state.stream_checkpoints import ShardCheckpoint
from transforms.streams.shard_reader import RecordBudget
from transforms.streams.shards import ShardTask, lineage_groups, plan_shards


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


def _shard(shard: str, parent: str | None = None, adjacent: str | None = None, *, closed: bool = False) -> dict:
    listed = {"ShardId": shard, "SequenceNumberRange": {"StartingSequenceNumber": "1",
                                                         **({"EndingSequenceNumber": "9"} if closed else {})}}
    listed.update({k: v for k, v in (("ParentShardId", parent), ("AdjacentParentShardId", adjacent)) if v})
    return listed


def test_a_merged_shard_waits_for_both_its_parents_until_they_are_applied():
    """Kinesis MergeShards: the child names ParentShardId and AdjacentParentShardId."""
    shards = [_shard("a", closed=True), _shard("b", closed=True), _shard("m", "a", "b")]
    waiting = {task.shard_id: task.parents for task in plan_shards("t", "arn", shards, {}).unfinished}
    assert waiting == {"a": (), "b": (), "m": ("a", "b")}
    done = {"a": ShardCheckpoint("9", finished=True)}
    assert [(t.shard_id, t.parents) for t in plan_shards("t", "arn", shards, done).unfinished] == \
        [("b", ()), ("m", ("b",))]


def test_a_merge_joins_its_parents_lineages_in_one_group():
    tasks = [_task("a"), _task("b"), ShardTask("t", "arn", "m", "a", "b"), _task("c")]
    groups = lineage_groups(tasks, max_shards=2)
    assert any({t.shard_id for t in group} == {"a", "b", "m"} for group in groups)


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


async def _holds_exactly(budget: RecordBudget, capacity: int) -> None:
    """Assert that `capacity` records are free now, and not one more: neither lost nor leaked."""
    await asyncio.wait_for(budget.take(capacity), 1)
    one_more = asyncio.create_task(budget.take(1))
    await asyncio.sleep(0)
    assert not one_more.done()
    one_more.cancel()
    await asyncio.gather(one_more, return_exceptions=True)
    budget.give(capacity)


def test_budget_given_back_when_a_granted_waiter_is_cancelled_before_it_runs():
    async def run():
        budget = RecordBudget(1000)
        await budget.take(1000)
        waiting = asyncio.create_task(budget.take(1000))
        await asyncio.sleep(0)
        budget.give(1000)  # granted to `waiting`, which has not run since
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert waiting.cancelled()
        await _holds_exactly(budget, 1000)

    asyncio.run(run())


def test_a_cancelled_waiter_is_skipped_by_the_next_give_and_leaves_the_queue():
    """The race of issue 20: a waiter cancelled, then budget given back before its task ran."""
    async def run():
        budget, served = RecordBudget(1000), []

        async def reader(name: str):
            await budget.take(1000)
            served.append(name)

        await budget.take(1000)
        first, second = asyncio.create_task(reader("first")), asyncio.create_task(reader("second"))
        await asyncio.sleep(0)
        first.cancel()
        budget.give(1000)  # `first` is cancelled and not yet woken: `second` is next
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError) and results[1] is None
        assert served == ["second"]
        budget.give(1000)
        await _holds_exactly(budget, 1000)

    asyncio.run(run())


def test_every_shard_cancelled_at_once_at_a_pass_end_loses_and_leaks_nothing():
    """A thousand readers taking and giving back as ShardReader does, all cancelled in one go
    at points that differ from reader to reader (waiting, granted, holding)."""
    async def run():
        budget = RecordBudget(5000)

        async def reader():
            while True:
                await budget.take(1000)
                try:
                    await asyncio.sleep(0)
                finally:
                    budget.give(1000)

        for turns in (1, 2, 3, 7, 50):
            readers = [asyncio.create_task(reader()) for _ in range(1000)]
            for _ in range(turns):
                await asyncio.sleep(0)
            for task in readers:
                task.cancel()
            results = await asyncio.gather(*readers, return_exceptions=True)
            assert all(isinstance(result, asyncio.CancelledError) for result in results), \
                {type(result).__name__ for result in results}
            await _holds_exactly(budget, 5000)  # and the next pass starts from a clean budget

    asyncio.run(run())
