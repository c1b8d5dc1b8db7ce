"""The shard graph of a stream: which shards exist, and which may be read now.

A child shard may be read only once its parent was fully applied (its checkpoint says
`finished`) or the parent left the stream before this replication began. Rounds start
only the shards that are ready; the streaming reader starts every unfinished shard and
lets a child wait (defer) until its parent's checkpoint says finished. A shard we
checkpointed but that left the stream before we finished it means changes were lost.
Used by the launcher's rounds and by the streaming runner's discovery step alike.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    def ready(self) -> list[ShardTask]:
        return [task for task in self.unfinished if task.parent_id is None]

    @property
    def waiting(self) -> int:
        """Shards whose parent is not applied yet."""
        return len(self.unfinished) - len(self.ready)


async def describe_shards(client, table: str, stream_arn: str) -> list[dict]:
    """Every shard of the stream (DescribeStream pages followed); an error when disabled."""
    shards, start = [], None
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
