"""Item formats and what is computed from items alone: the lossless Arrow codec (the unit
that travels between stages), DynamoDB JSON text, number canonicalisation, keys, and the
digests and attribute diffs validation compares. No I/O."""
