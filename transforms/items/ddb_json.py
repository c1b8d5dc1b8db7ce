"""DynamoDB JSON text for items and keys, as the wire format writes it (B as base64).

Used wherever an item leaves the pipeline as text: dead-letter files, checkpoints
(LastEvaluatedKey) and nested M/L values inside Arrow batches.
"""
from __future__ import annotations

import base64
from typing import Any


def _encode(value: dict) -> dict:
    (tag, inner), = value.items()
    if tag == "B":
        return {"B": base64.b64encode(inner).decode("ascii")}
    if tag == "BS":
        return {"BS": [base64.b64encode(b).decode("ascii") for b in inner]}
    if tag == "M":
        return {"M": {k: _encode(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [_encode(v) for v in inner]}
    return value


def _decode(value: dict) -> dict:
    (tag, inner), = value.items()
    if tag == "B":
        return {"B": base64.b64decode(inner)}
    if tag == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if tag == "M":
        return {"M": {k: _decode(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [_decode(v) for v in inner]}
    return value


def encode_value(value: dict) -> Any:
    """A botocore attribute value ({'B': b'..'}) as JSON-ready DynamoDB JSON."""
    return _encode(value)


def encode_item(item: dict[str, dict] | None) -> dict | None:
    """A whole item (or key) as a JSON-ready object; None stays None."""
    return None if item is None else {k: _encode(v) for k, v in item.items()}


def decode_item(obj: dict | None) -> dict[str, dict] | None:
    return None if obj is None else {k: _decode(v) for k, v in obj.items()}
