"""DynamoDB Streams: the shard graph (which shards may be read now) and the shard reader
that applies a shard's changes to the target in order, checkpointing after each
acknowledged window. `transforms.replicate` wraps them as transforms."""
