"""The shard graph of a stream: which shards exist, and which may be read now.

A child shard may be read only once its parents were fully applied (their checkpoints say
`finished`) or left the stream before this replication began. A DynamoDB stream's shard has
at most one parent; a Kinesis data stream's shard made by MergeShards has two
(`ParentShardId` and `AdjacentParentShardId`), and waits for both. The follower
starts every unfinished shard and lets a child wait until its parent is applied; the
rounds of a batch runner apply whole lineages together (`lineage_groups`), so a child
starts in the same round as its parent; the streaming reader defers a child until its
parent's checkpoint says finished. A shard we checkpointed but that left the stream
before we finished it means changes were lost.

Discovery is incremental: DescribeStream lists shards oldest first, so after the first
full listing a follower asks only for the shards after the last one it has seen.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from transforms.errors import ChangesLost, StreamDisabled
from transforms.state.stream_checkpoints import ShardCheckpoint

@dataclass(frozen=True)
class ShardTask:
    table: str
    stream_arn: str
    shard_id: str
    parent_id: str | None = None  # a parent still to be applied before this shard
    adjacent_parent_id: str | None = None  # a merge's second parent still to be applied (Kinesis)

    @property
    def parents(self) -> tuple[str, ...]:
        """The parents still to be applied before this shard."""
        return tuple(p for p in (self.parent_id, self.adjacent_parent_id) if p is not None)


@dataclass(frozen=True)
class ShardPlan:
    unfinished: list[ShardTask]
    open_shards: int

    @property
    def waiting(self) -> int:
        """Shards whose parent is not applied yet."""
        return sum(1 for task in self.unfinished if task.parents)


async def describe_shards(client, table: str, stream_arn: str, after: str | None = None) -> list[dict]:
    """The shards of the stream listed after shard `after` (None: every shard), every
    DescribeStream page followed; an error when the stream is disabled."""
    shards, start = [], after
    while True:
        kwargs = {"StreamArn": stream_arn, **({"ExclusiveStartShardId": start} if start else {})}
        description = (await client.describe_stream(**kwargs))["StreamDescription"]
        shards.extend(description.get("Shards", []))
        start = description.get("LastEvaluatedShardId")
        if not start:
            break
    if description.get("StreamStatus") in ("DISABLED", "DISABLING"):
        raise StreamDisabled(f"the stream of {table} is disabled: changes are no longer recorded; enable it and "
                             f"copy the table again with `migrate --streams --restart`")
    return shards


def parents_of(shard: dict) -> tuple[str | None, str | None]:
    """A listed shard's parent and, for a Kinesis merge, its adjacent parent."""
    return shard.get("ParentShardId"), shard.get("AdjacentParentShardId")


def plan_shards(table: str, stream_arn: str, shards: list[dict], done: dict[str, ShardCheckpoint]) -> ShardPlan:
    """The shards not finished yet, given the checkpoints `done` (shard id -> checkpoint);
    each names the parents it must wait for, if any."""
    listed = {shard["ShardId"] for shard in shards}
    lost = sorted(s for s, checkpoint in done.items() if s not in listed and not checkpoint.finished)
    if lost:
        raise ChangesLost(f"{table}: shard {lost[0]} was trimmed from the stream before it was fully applied: "
                            f"changes were lost; copy the table again with `migrate --streams --restart`")
    finished = {s for s, checkpoint in done.items() if checkpoint.finished}
    unfinished = []
    for shard in shards:
        if shard["ShardId"] in finished:
            continue
        waits_for = [parent if parent in listed and parent not in finished else None for parent in parents_of(shard)]
        unfinished.append(ShardTask(table, stream_arn, shard["ShardId"], *waits_for))
    open_shards = sum(1 for shard in shards if "EndingSequenceNumber" not in shard["SequenceNumberRange"])
    return ShardPlan(unfinished, open_shards)


def lineage_groups(tasks: Sequence[ShardTask], max_shards: int) -> list[list[ShardTask]]:
    """The tasks in groups that keep each lineage (a shard and its unfinished descendants)
    together, so a child starts in the same pass as its parent; lineages are packed into
    groups of up to `max_shards` (a longer lineage stays whole)."""
    family = {(task.table, task.shard_id): (task.table, task.shard_id) for task in tasks}  # a merge joins two

    def root(key: tuple[str, str]) -> tuple[str, str]:
        while family[key] != key:
            key = family[key]
        return key

    for task in tasks:
        for parent in task.parents:
            if (task.table, parent) in family:
                family[root((task.table, task.shard_id))] = root((task.table, parent))
    lineages: dict[tuple[str, str], list[ShardTask]] = defaultdict(list)
    for task in tasks:
        lineages[root((task.table, task.shard_id))].append(task)
    groups: list[list[ShardTask]] = []
    for lineage in sorted(lineages.values(), key=len, reverse=True):
        fits = next((group for group in groups if len(group) + len(lineage) <= max_shards), None)
        if fits is None:
            groups.append(list(lineage))
        else:
            fits.extend(lineage)
    return groups
