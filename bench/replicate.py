"""Replication speed on a backlog, and end-to-end lag under a steady load, in one run.

- Backlog: 20,000 changes (puts, updates, deletes) wait in a DynamoDB Local stream;
  one `replicate` round applies them (Beam start-up included). The baseline applies
  the same stream records one PutItem/DeleteItem at a time to another table on the
  same target (the first 3,000, timed; reading the records is not timed).
- Steady load: a writer puts 100 items/s on the source for 30 s while
  `replicate --follow` runs; a prober notes when each sampled item arrives in the
  target. DynamoDB Local rounds ApproximateCreationDateTime down to the minute, so the
  tool's own lag figure is coarse there; this end-to-end figure is exact.

Run: .venv/bin/python -m bench.replicate
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import yaml

from tests.support import seed
from tests.support.servers import REPO_ROOT, DynamoDBLocal, LocalAlternator

BACKLOG = 20_000
BASELINE = 3_000
KEYS = 5_000


def _create(endpoint: str, table: str, stream: bool) -> None:
    extra = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}
    seed.create_table(endpoint, table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST", **extra)


def _cli(config: Path, *args: str, wait: bool = True):
    command = [sys.executable, "-m", "pipeline.cli", *args, "--config", str(config)]
    if not wait:
        return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(command + (["--no-progress"] if args[0] == "migrate" else []), cwd=REPO_ROOT,
                          check=True, capture_output=True)


def _backlog(source: str, table: str) -> None:
    client = seed.client_for(source)
    for n in range(BACKLOG):
        key = {"S": f"k{n % KEYS:05d}"}
        if n % 10 == 9:
            client.delete_item(TableName=table, Key={"id": key})
        else:
            client.put_item(TableName=table, Item={"id": key, "n": {"N": str(n)}, "pad": {"S": "x" * 100}})


def _stream_records(source: str, table: str, limit: int) -> list[dict]:
    streams = boto3.client("dynamodbstreams", endpoint_url=source, region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench")
    arn = seed.client_for(source).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records: list[dict] = []
    while len(records) < limit:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        records.extend(page["Records"])
        iterator = page.get("NextShardIterator")
        if not page["Records"] or not iterator:
            break
    return records[:limit]


def _one_at_a_time(target: str, table: str, records: list[dict]) -> float:
    client = seed.client_for(target)
    started = time.perf_counter()
    for record in records:
        if record["eventName"] == "REMOVE":
            client.delete_item(TableName=table, Key=record["dynamodb"]["Keys"])
        else:
            client.put_item(TableName=table, Item=record["dynamodb"]["NewImage"])
    return len(records) / (time.perf_counter() - started)


def _steady_lag(source: str, target: str, table: str, config: Path, seconds: float = 30, rate: float = 100) -> list[float]:
    follower = _cli(config, "replicate", "--follow", wait=False)
    written: dict[str, float] = {}
    stop = threading.Event()

    def write() -> None:
        client = seed.client_for(source)
        n = 0
        while not stop.is_set():
            key = f"steady{n:06d}"
            written[key] = time.time()
            client.put_item(TableName=table, Item={"id": {"S": key}, "n": {"N": str(n)}})
            n += 1
            time.sleep(max(0.0, written[key] + 1 / rate - time.time()))

    lags: list[float] = []
    writer = threading.Thread(target=write)
    try:
        time.sleep(5)  # the follower's first round
        writer.start()
        deadline = time.time() + seconds
        client = seed.client_for(target)
        while time.time() < deadline:
            key = max(written) if written else None
            if key is None:
                time.sleep(0.1)
                continue
            while time.time() < deadline + 30:
                if "Item" in client.get_item(TableName=table, Key={"id": {"S": key}}):
                    lags.append(time.time() - written[key])
                    break
                time.sleep(0.05)
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
        os.killpg(follower.pid, signal.SIGTERM)
        follower.wait(timeout=30)
    return lags


def main() -> dict:
    with DynamoDBLocal() as source, LocalAlternator() as target, tempfile.TemporaryDirectory() as tmp:
        table = "bench_streams"
        _create(source.endpoint, table, stream=True)
        config = Path(tmp) / "bench.yaml"
        config.write_text(yaml.safe_dump({
            "source": {"endpoint": source.endpoint, "credentials": {"access_key_id": "b", "secret_access_key": "b"}},
            "target": {"alternator": {"seeds": ["127.0.0.1"], "port": target.port}},
            "tables": [{"source": table}], "checkpoint_dir": str(Path(tmp) / "checkpoints"),
            "dead_letter_dir": str(Path(tmp) / "dead-letter"), "pipeline_options": {"runner": "DirectRunner"}}))
        _cli(config, "migrate", "--streams", "--until-caught-up")  # target table + stream checkpoints
        _backlog(source.endpoint, table)
        started = time.perf_counter()
        _cli(config, "replicate")  # one round: the whole backlog
        ours = BACKLOG / (time.perf_counter() - started)
        _create(target.url, "bench_one_at_a_time", stream=False)
        baseline = _one_at_a_time(target.url, "bench_one_at_a_time", _stream_records(source.endpoint, table, BASELINE))
        lags = _steady_lag(source.endpoint, target.url, table, config)
    print(f"replication of a backlog of {BACKLOG:,} changes, one run:")
    print(f"  alternator-migrate replicate (one round, incl. Beam start-up): {ours:>8,.0f} changes/s")
    print(f"  one PutItem/DeleteItem at a time (first {BASELINE:,}):            {baseline:>8,.0f} changes/s")
    print(f"  speed-up: {ours / baseline:.1f}x (target: at least 10x)")
    if lags:
        print(f"  end-to-end lag under 100 writes/s with --follow: median {statistics.median(lags):.2f} s, "
              f"max {max(lags):.2f} s ({len(lags)} probes)")
    return {"changes_per_s": round(ours), "baseline_per_s": round(baseline), "speedup": round(ours / baseline, 1),
            "lag_median_s": round(statistics.median(lags), 2) if lags else None}


if __name__ == "__main__":
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    main()
