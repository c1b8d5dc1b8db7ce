"""The shard graph of a stream: which shards exist, and which may be read now.

A child shard may be read only once its parent was fully applied (its checkpoint says
`finished`) or the parent left the stream before this replication began. The follower
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


@dataclass(frozen=True)
class ShardPlan:
    unfinished: list[ShardTask]
    open_shards: int

    @property
    def waiting(self) -> int:
        """Shards whose parent is not applied yet."""
        return sum(1 for task in self.unfinished if task.parent_id is not None)


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


def plan_shards(table: str, stream_arn: str, shards: list[dict], done: dict[str, ShardCheckpoint]) -> ShardPlan:
    """The shards not finished yet, given the checkpoints `done` (shard id -> checkpoint);
    each names the parent it must wait for, if any."""
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
        parent = shard.get("ParentShardId")
        waits_for = parent if parent in listed and parent not in finished else None
        unfinished.append(ShardTask(table, stream_arn, shard["ShardId"], waits_for))
    open_shards = sum(1 for shard in shards if "EndingSequenceNumber" not in shard["SequenceNumberRange"])
    return ShardPlan(unfinished, open_shards)


def lineage_groups(tasks: Sequence[ShardTask], max_shards: int) -> list[list[ShardTask]]:
    """The tasks in groups that keep each lineage (a shard and its unfinished descendants)
    together, so a child starts in the same pass as its parent; lineages are packed into
    groups of up to `max_shards` (a longer lineage stays whole)."""
    by_id = {(task.table, task.shard_id): task for task in tasks}

    def root(task: ShardTask) -> tuple[str, str]:
        while task.parent_id is not None and (task.table, task.parent_id) in by_id:
            task = by_id[(task.table, task.parent_id)]
        return task.table, task.shard_id

    lineages: dict[tuple[str, str], list[ShardTask]] = defaultdict(list)
    for task in tasks:
        lineages[root(task)].append(task)
    groups: list[list[ShardTask]] = []
    for lineage in sorted(lineages.values(), key=len, reverse=True):
        fits = next((group for group in groups if len(group) + len(lineage) <= max_shards), None)
        if fits is None:
            groups.append(list(lineage))
        else:
            fits.extend(lineage)
    return groups
