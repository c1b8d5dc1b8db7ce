"""Spilled validation digests: what a bundle appends is what a bucket reads back."""
from __future__ import annotations

import pickle

from transforms.state.digest_spill import BucketFiles, read_records


def test_records_come_back_per_bucket_across_many_appends(tmp_path):
    files = BucketFiles(str(tmp_path / "source"), buffer_bytes=500)  # appends every few records
    written = {}
    for i in range(300):
        key = {"pk": {"S": f"k{i}"}, "raw": {"B": bytes([i % 256])}}
        bucket = i % 3
        record = (i.to_bytes(16, "big"), (i * 7).to_bytes(16, "big"), key)
        files.add("t", bucket, *record)
        written.setdefault(bucket, []).append(record)
    paths = files.close()

    assert [where for where, _ in paths] == [("t", 0), ("t", 1), ("t", 2)]
    for (_, bucket), path in paths:
        read = [(digest, content, pickle.loads(key)) for digest, content, key in read_records([path])]
        assert read == written[bucket]


def test_two_bundles_never_share_a_file(tmp_path):
    one, two = BucketFiles(str(tmp_path)), BucketFiles(str(tmp_path))
    for files in (one, two):
        files.add("t", 0, b"k" * 16, b"c" * 16, {"pk": {"N": "1"}})
    assert one.close()[0][1] != two.close()[0][1]
