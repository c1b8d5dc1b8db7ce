"""Beam building blocks, in packages by concern; nothing here reads the YAML config.

The public transforms live at the top: `scan.ScanTables`, `write.WriteTables`,
`compare.CompareTables` / `compare.SampleTables`, `replicate.ReplicateShards` /
`replicate.FollowStreams`. They take plain, picklable arguments (specs, settings,
`table_pair.TablePair`) and keep their DoFns private. Below them:

- `items`: item formats (the Arrow codec, DynamoDB JSON, numbers, keys) and digests;
- `dynamo`: clients and their event loop, retry, rate limits, point reads, the writer;
- `state`: checkpoints, stop notes and dead letters on any Beam filesystem;
- `streams`: DynamoDB Streams shards and the shard reader.
"""
