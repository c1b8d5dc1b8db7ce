"""Bulk copy throughput and memory, against a naive copy in the same run.

Starts DynamoDB Local and the local Alternator stand-in, seeds a table, then measures:
- `alternator-migrate migrate` as a user runs it (a subprocess, DirectRunner with two
  worker processes): items/s and peak memory (max RSS of the run's processes);
- a naive copy on the same servers: Scan and one PutItem per item, in one thread.
The ratio of the two rates is the figure to compare across machines; absolute rates
depend on the local servers (moto stores the target), which bound both.

Run: .venv/bin/python -m bench.bulk [ITEMS]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.measure import run_measured
from tests.support import seed
from transforms.items.ddb_json import encode_item
from tests.support.servers import REPO_ROOT, DynamoDBLocal, LocalAlternator

NAIVE_ITEMS = 2_000


def bench_item(i: int) -> dict:
    """A typical item (~300 bytes): keys, a few scalars, a set, a small map."""
    return {"pk": {"S": f"user#{i:08d}"}, "sk": {"N": str(i % 7)}, "name": {"S": f"name {i}"},
            "price": {"N": f"{i % 1000}.{i % 100:02d}"}, "active": {"BOOL": i % 2 == 0},
            "tags": {"SS": ["a", f"t{i % 5}"]}, "blob": {"B": i.to_bytes(8, "big") + b"\x00" * 8},
            "address": {"M": {"city": {"S": "Paris"}, "zip": {"N": str(75000 + i % 20)}}},
            "note": {"S": "x" * 120}}


def create_bench_table(endpoint: str, table: str) -> None:
    seed.create_table(endpoint, table,
                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                 {"AttributeName": "sk", "KeyType": "RANGE"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                            {"AttributeName": "sk", "AttributeType": "N"}],
                      BillingMode="PAY_PER_REQUEST")


def seed_bench_table(endpoint: str, table: str, items: int) -> None:
    """Create `table` and put `bench_item(0..items-1)` in it, in chunks (the bench's memory stays small)."""
    create_bench_table(endpoint, table)
    for start in range(0, items, 50_000):
        seed.put_items(endpoint, table, (bench_item(i) for i in range(start, min(items, start + 50_000))))


def _migrate(source: str, target_port: int, table: str, workdir: Path) -> tuple[float, float, dict]:
    config = {
        "source": {"endpoint": source, "credentials": {"access_key_id": "b", "secret_access_key": "b"}},
        "target": {"alternator": {"seeds": ["127.0.0.1"], "port": target_port}},
        "tables": [{"source": table}],
        "checkpoint_dir": str(workdir / "checkpoints"), "dead_letter_dir": str(workdir / "dead-letter"),
        "pipeline_options": {"runner": "DirectRunner", "direct_num_workers": 2,
                             "direct_running_mode": "multi_processing"},
    }
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    elapsed, max_rss_mib = run_measured([sys.executable, "-m", "pipeline.cli", "migrate", "--config", str(path),
                                         "--no-progress", "--report", str(workdir / "report.json")], REPO_ROOT)
    return elapsed, max_rss_mib, json.loads((workdir / "report.json").read_text())


def main(items: int = 20_000) -> dict:
    with DynamoDBLocal() as source, LocalAlternator() as target, tempfile.TemporaryDirectory() as tmp:
        table = "bench_bulk"
        seed_bench_table(source.endpoint, table, items)
        elapsed, max_rss_mib, report = _migrate(source.endpoint, target.port, table, Path(tmp))
        written = report["tables"][table]["written"]
        assert written == items, f"bench: only {written} of {items} items written"
        pipeline_rate = items / elapsed
        naive_table = "bench_naive"
        create_bench_table(target.url, naive_table)
        naive_rate = _naive_copy(source.endpoint, target.url, table, naive_table, NAIVE_ITEMS)
    figures = {"items": items, "pipeline_items_per_s": round(pipeline_rate),
               "pipeline_seconds_incl_startup": round(elapsed, 1), "naive_items_per_s": round(naive_rate),
               "speedup": round(pipeline_rate / naive_rate, 2), "max_rss_mib": round(max_rss_mib)}
    print(f"bulk copy of {items:,} items (~{len(json.dumps(encode_item(bench_item(1))))} B each), one run:")
    print(f"  alternator-migrate migrate: {pipeline_rate:>10,.0f} items/s ({elapsed:.1f} s incl. Beam start-up)")
    print(f"  naive Scan + PutItem:       {naive_rate:>10,.0f} items/s (first {NAIVE_ITEMS:,} items)")
    print(f"  speed-up:                   {pipeline_rate / naive_rate:>10.2f}x")
    print(f"  peak memory of one process of the run (max RSS): {max_rss_mib:,.0f} MiB")
    return figures


def _naive_copy(source: str, target: str, source_table: str, target_table: str, limit: int) -> float:
    src, dst = seed.client_for(source), seed.client_for(target)
    items = src.scan(TableName=source_table, Limit=limit)["Items"]
    # Only the puts are timed: the naive copy gets its reads for free.
    started = time.perf_counter()
    for item in items:
        dst.put_item(TableName=target_table, Item=item)
    return len(items) / (time.perf_counter() - started)


if __name__ == "__main__":
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
