"""moto's server, its Kinesis Data Streams amended where moto (5.2) does not do what Kinesis documents.

Run as a script (`python testbed/moto_kinesis.py -H 127.0.0.1 -p PORT`, see
`servers.KinesisMotoServer`): it amends moto's Kinesis model and handler, then starts moto's
own server. moto's Kinesis is right about streams, shards, iterators (TRIM_HORIZON, LATEST,
AT_/AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP on arrival time), GetRecords' pages and
`MillisBehindLatest`, PutRecord(s) with `ExplicitHashKey`, SplitShard, MergeShards (the
child names `ParentShardId` and `AdjacentParentShardId`), UpdateShardCount and
DescribeStreamSummary's `RetentionPeriodHours`; it is not in four places a reader of a
resharded stream meets, which are amended here:

- After SplitShard or MergeShards, moto routes new records to the closed parent (it picks
  the first shard of the stream whose hash range holds the key, open or not). Kinesis:
  "data records that were flowing to the parent shards are re-routed to flow to the child
  shards" (Kinesis developer guide, "Data routing, data persistence, and shard state after a
  reshard", https://docs.aws.amazon.com/streams/latest/dev/kinesis-using-sdk-java-after-resharding.html).
  Here a record goes to the open shard whose range holds its hash key.
- SplitShard moves the parent's records into the children, and MergeShards copies both
  parents' records into the child (so they would be read twice). Kinesis: "any data records
  that were in the parent shards before the reshard remain in those shards" (same page).
  Here the parents keep their records and the children start empty.
- GetRecords on a closed shard read to its end keeps returning an iterator. Kinesis: "If
  the shard has been closed, the shard iterator can't return more data and GetRecords
  returns null in NextShardIterator" (GetRecords, Kinesis API reference,
  https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html). Here it is
  null once the page ends at the closed shard's last record. (`ChildShards`, which Kinesis
  adds to that page, is still missing: the tool finds children with ListShards.)
- ListShards ignores `ExclusiveStartShardId` and lists every shard. Kinesis lists "the
  shards starting with the shard whose ID immediately follows ExclusiveStartShardId"
  (ListShards, https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListShards.html).

What moto still does not do, so no test relies on it: records are never trimmed (the
retention is reported, not enforced), shards never expire, sequence numbers count from 1 in
each shard (on Kinesis they grow across the stream), and nothing is throttled.
"""
from __future__ import annotations

import hashlib
import sys

from moto.kinesis.models import KinesisBackend, Stream
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.server import main


def _open_shard_for_key(original):
    def shard_for_key(self: Stream, partition_key: str, explicit_hash_key: str):
        shard = original(self, partition_key, explicit_hash_key)  # moto's checks of the key; maybe a closed shard
        if shard is None or shard.is_open:
            return shard
        # Kinesis maps a partition key to a 128-bit hash key with MD5 (PutRecord, Kinesis API reference)
        hash_key = int(explicit_hash_key) if explicit_hash_key else \
            int(hashlib.md5(partition_key.encode()).hexdigest(), 16)
        return next(s for s in self.shards.values() if s.is_open and s.starting_hash <= hash_key <= s.ending_hash)
    return shard_for_key


def _parents_keep_their_records(original):
    def reshard(self: Stream, *args, **kwargs):
        before = {shard_id: shard.records.copy() for shard_id, shard in self.shards.items()}
        original(self, *args, **kwargs)
        for shard_id, shard in self.shards.items():
            if shard_id in before:
                shard.records = before[shard_id]
            else:
                shard.records.clear()  # a child made just now
    return reshard


def _closed_shard_ends(original):
    def get_records(self: KinesisBackend, stream_arn, shard_iterator, limit):
        next_iterator, records, behind = original(self, stream_arn, shard_iterator, limit)
        stream_name, shard_id, read_up_to = decompose_shard_iterator(next_iterator)
        shard = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name).get_shard(shard_id)
        if not shard.is_open and int(read_up_to) >= shard.get_max_sequence_number():
            next_iterator = None
        return next_iterator, records, behind
    return get_records


def _list_shards_after(original):
    def list_shards(self: KinesisResponse):
        response = original(self)
        after = self._get_param("ExclusiveStartShardId")  # noqa: SLF001 - moto's own parameter reader
        if after:
            response.result["Shards"] = [s for s in response.result["Shards"] if s["ShardId"] > after]
        return response
    return list_shards


def amend_moto() -> None:
    Stream.get_shard_for_key = _open_shard_for_key(Stream.get_shard_for_key)
    Stream.split_shard = _parents_keep_their_records(Stream.split_shard)
    Stream.merge_shards = _parents_keep_their_records(Stream.merge_shards)
    KinesisBackend.get_records = _closed_shard_ends(KinesisBackend.get_records)
    KinesisResponse.list_shards = _list_shards_after(KinesisResponse.list_shards)


if __name__ == "__main__":
    amend_moto()
    main(sys.argv[1:])
