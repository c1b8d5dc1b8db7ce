"""`make bench`: every benchmark, one after the other, figures printed (no pass/fail on time)."""
import os

from bench import bulk, capture, codec, export_read, far_source, http_client, replicate, startup, state, validate

if __name__ == "__main__":
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    print("== Start-up ==")
    startup.main()
    print("\n== Item codec vs boto3 (50,000 items) ==")
    codec.main(50_000)
    print("\n== HTTP transport of the data plane vs aiohttp and a bare stream ==")
    http_client.main(4_000)
    print("\n== Bulk copy to the Alternator stand-in and to a fast target (DynamoDB Local), "
          "then to the fast target on a core of its own ==")
    bulk.main(100_000)
    print("\n== Bulk copy from a far source (250 ms a Scan page) ==")
    far_source.main(20_000)
    print("\n== Read side: DynamoDB export vs Scan ==")
    export_read.main(100_000)
    print("\n== Bulk-copy state (checkpoints) ==")
    state.main()
    print("\n== Validation vs plain scans, and its memory ==")
    validate.main(20_000)
    print("\n== Replication ==")
    replicate.main()
    print("\n== Change spool (a copy longer than the stream) ==")
    capture.main()
