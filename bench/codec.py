"""Throughput of transforms.items.arrow_codec vs boto3's TypeDeserializer/TypeSerializer.

Run: .venv/bin/python -m bench.codec [N_ITEMS] (or `make bench` for every benchmark)
Prints items/s for encode, decode and the round trip, and the round-trip
ratio against boto3 (deserialize to Python values + serialize back) on the
same generated items. No assertions: figures only.
"""

from __future__ import annotations

import gc
import random
import sys
import time

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from transforms.items.arrow_codec import batch_to_items, items_to_batch


def make_items(n: int, seed: int = 7) -> list[dict]:
    """Mixed-type items resembling a real table: keys, scalars, sets, nesting."""
    rnd = random.Random(seed)
    items = []
    for i in range(n):
        item = {
            "pk": {"S": f"user#{i:08d}"},
            "sk": {"N": str(rnd.randint(0, 10**12))},
            "name": {"S": "".join(rnd.choices("abcdefghijklmnopqrstuvwxyzé ", k=rnd.randint(3, 24)))},
            "price": {"N": f"{rnd.randint(0, 99999)}.{rnd.randint(0, 99):02d}"},
            "active": {"BOOL": rnd.random() < 0.5},
        }
        r = rnd.random()
        if r < 0.3:
            item["blob"] = {"B": rnd.randbytes(rnd.randint(0, 64))}
        if r < 0.1:
            item["gone"] = {"NULL": True}
        if rnd.random() < 0.4:
            item["tags"] = {"SS": rnd.sample(["red", "green", "blue", "x", "y", "z"], k=rnd.randint(1, 4))}
        if rnd.random() < 0.2:
            item["scores"] = {"NS": [str(rnd.randint(-1000, 1000)) for _ in range(3)]}
            item["scores"]["NS"] = list(dict.fromkeys(item["scores"]["NS"]))
        if rnd.random() < 0.1:
            item["keys"] = {"BS": [rnd.randbytes(8), rnd.randbytes(4)]}
        if rnd.random() < 0.5:
            item["address"] = {"M": {
                "street": {"S": f"{rnd.randint(1, 999)} Main St"},
                "zip": {"N": str(rnd.randint(10000, 99999))},
                "geo": {"L": [{"N": "52.52"}, {"N": "13.405"}]},
            }}
        if rnd.random() < 0.3:
            item["history"] = {"L": [{"M": {"at": {"N": str(rnd.randint(0, 2**31))},
                                             "ok": {"BOOL": True}}} for _ in range(rnd.randint(0, 3))]}
        if rnd.random() < 0.2:
            # mixed types in one column across items
            item["mixed"] = {"S": "text"} if rnd.random() < 0.5 else {"N": "1.000"}
        items.append(item)
    return items


def best_of(fn, repeats: int = 5) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(n: int = 50_000) -> None:
    items = make_items(n)

    t_enc, batch = best_of(lambda: items_to_batch(items))
    t_enc_nv, _ = best_of(lambda: items_to_batch(items, validate=False))
    t_dec, back = best_of(lambda: batch_to_items(batch))
    assert back == items, "round trip mismatch"

    deser, ser = TypeDeserializer(), TypeSerializer()

    def boto_deserialize():
        d = deser.deserialize
        return [{k: d(v) for k, v in it.items()} for it in items]

    t_bdes, plain = best_of(boto_deserialize)

    def boto_serialize():
        s = ser.serialize
        return [{k: s(v) for k, v in it.items()} for it in plain]

    t_bser, _ = best_of(boto_serialize)

    # arrow_codec pauses the cyclic GC internally; give boto3 the same help so
    # the ratio is not just a GC artefact.
    gc.disable()
    try:
        t_bdes_nogc, _ = best_of(boto_deserialize)
        t_bser_nogc, _ = best_of(boto_serialize)
    finally:
        gc.enable()

    rate = lambda t: n / t  # noqa: E731
    print(f"items: {n}, batch: {batch.num_columns} columns, {batch.nbytes / 1e6:.1f} MB")
    print(f"arrow_codec encode (items_to_batch):        {rate(t_enc):>12,.0f} items/s")
    print(f"arrow_codec encode, validate=False:  {rate(t_enc_nv):>12,.0f} items/s")
    print(f"arrow_codec decode (batch_to_items):        {rate(t_dec):>12,.0f} items/s")
    print(f"arrow_codec round trip:                     {rate(t_enc + t_dec):>12,.0f} items/s")
    print(f"boto3 TypeDeserializer:                     {rate(t_bdes):>12,.0f} items/s")
    print(f"boto3 TypeSerializer:                       {rate(t_bser):>12,.0f} items/s")
    print(f"boto3 round trip:                           {rate(t_bdes + t_bser):>12,.0f} items/s")
    print(f"boto3 round trip, GC paused:                {rate(t_bdes_nogc + t_bser_nogc):>12,.0f} items/s")
    print(f"round-trip speed ratio arrow_codec / boto3:           {(t_bdes + t_bser) / (t_enc + t_dec):.2f}x")
    print(f"round-trip speed ratio arrow_codec / boto3 GC paused: "
          f"{(t_bdes_nogc + t_bser_nogc) / (t_enc + t_dec):.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
