"""Number keys kept exactly as written, as Alternator keeps them, in front of moto.

Alternator does not normalise numbers in keys: `N "1"`, `N "1.0"` and `N "1E0"` are three
items there. moto (like DynamoDB) treats them as one. So the Alternator front stores a
table's number key attributes in moto as strings holding the exact text, and turns them
back into numbers in every response: CreateTable and DescribeTable show N, items and keys
carry N, and moto keeps one item per spelling. Only base-table key attributes are
rewritten, and only for tables created through the front (it remembers them).
"""
from __future__ import annotations

import threading


class ExactNumberKeys:
    def __init__(self) -> None:
        self._keys: dict[str, frozenset[str]] = {}  # table -> its N key attributes
        self._lock = threading.Lock()

    def _of(self, table: str | None) -> frozenset[str]:
        with self._lock:
            return self._keys.get(table or "", frozenset())

    # --- requests (to moto) ---------------------------------------------------------------

    def request(self, op: str, body: dict) -> dict:
        if op == "CreateTable":
            return self._create_table(body)
        if op == "DeleteTable":
            with self._lock:
                self._keys.pop(body.get("TableName", ""), None)
            return body
        if op in ("BatchWriteItem", "BatchGetItem"):
            for table, entries in body.get("RequestItems", {}).items():
                keys = self._of(table)
                if op == "BatchGetItem":
                    entries["Keys"] = [_rewrite(key, keys, "N", "S") for key in entries.get("Keys", [])]
                    continue
                for write in entries:
                    for kind, field in (("PutRequest", "Item"), ("DeleteRequest", "Key")):
                        if kind in write:
                            write[kind][field] = _rewrite(write[kind][field], keys, "N", "S")
            return body
        keys = self._of(body.get("TableName"))
        for field in ("Key", "Item", "ExclusiveStartKey"):
            if field in body:
                body[field] = _rewrite(body[field], keys, "N", "S")
        return body

    def _create_table(self, body: dict) -> dict:
        key_names = {key["AttributeName"] for key in body.get("KeySchema", [])}
        numbers = frozenset(d["AttributeName"] for d in body.get("AttributeDefinitions", [])
                            if d["AttributeName"] in key_names and d["AttributeType"] == "N")
        if numbers:
            with self._lock:
                self._keys[body["TableName"]] = numbers
            for definition in body["AttributeDefinitions"]:
                if definition["AttributeName"] in numbers:
                    definition["AttributeType"] = "S"
        return body

    # --- responses (from moto) ------------------------------------------------------------

    def response(self, op: str, request: dict, body: dict) -> dict:
        if op in ("BatchWriteItem", "BatchGetItem"):
            for table, items in body.get("Responses", {}).items():
                body["Responses"][table] = [_rewrite(item, self._of(table), "S", "N") for item in items]
            for table, entries in body.get("UnprocessedKeys", {}).items():
                entries["Keys"] = [_rewrite(key, self._of(table), "S", "N") for key in entries.get("Keys", [])]
            for table, writes in body.get("UnprocessedItems", {}).items():
                for write in writes:
                    for kind, field in (("PutRequest", "Item"), ("DeleteRequest", "Key")):
                        if kind in write:
                            write[kind][field] = _rewrite(write[kind][field], self._of(table), "S", "N")
            return body
        keys = self._of(request.get("TableName"))
        for field in ("Item", "Attributes", "LastEvaluatedKey"):
            if field in body:
                body[field] = _rewrite(body[field], keys, "S", "N")
        if "Items" in body:
            body["Items"] = [_rewrite(item, keys, "S", "N") for item in body["Items"]]
        for field in ("Table", "TableDescription"):
            for definition in body.get(field, {}).get("AttributeDefinitions", []):
                if definition["AttributeName"] in keys:
                    definition["AttributeType"] = "N"
        return body


def _rewrite(item: dict, names: frozenset[str], old: str, new: str) -> dict:
    if not names:
        return item
    return {name: ({new: value[old]} if name in names and old in value else value) for name, value in item.items()}
