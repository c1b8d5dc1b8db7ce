"""Alternator's authorization (RBAC), for the test front: which CQL permission each operation
needs on which resource, given the roles' GRANTs.

As ScyllaDB checks it with `alternator_enforce_authorization: true` (scylladb/scylladb):

- alternator/executor_util.cc: `verify_permission` asks for a permission on the table's
  CQL resource, keyspace `alternator_<table>`, table `<table>`, and refuses with
  AccessDeniedException "<PERMISSION> access on table <ks>.<table> is denied to role <role>,
  client address <address>"; `verify_create_permission` asks for CREATE on ALL KEYSPACES
  ("CREATE access on ALL KEYSPACES is denied to role <role>").
- service/client_state.cc `check_has_permission`: a permission granted on a resource's
  parent (the keyspace, then ALL KEYSPACES) counts for it.
- The operations: alternator/executor.cc (CreateTable: CREATE; DeleteTable: DROP;
  UpdateTable, TagResource, UntagResource: ALTER; PutItem, UpdateItem, DeleteItem,
  BatchWriteItem on each table: MODIFY), alternator/executor_read.cc (GetItem, Query, Scan,
  BatchGetItem on each table: SELECT), alternator/ttl.cc (UpdateTimeToLive: ALTER); the
  others (DescribeTable, ListTables, ListTagsOfResource, DescribeTimeToLive, ...) need none.
  docs/alternator/compatibility.md ("Authentication and Authorization") lists the same.
- CreateTable's "auto-grant" (alternator/executor.cc, `grant_applicable_permissions`): the
  creator gets every permission that applies to a table (auth/resource.cc: ALTER, DROP,
  SELECT, MODIFY, AUTHORIZE) on the new table and on its indexes' views (`<table>:<index>`
  for a GSI, `<table>!:<index>` for an LSI).

Not modelled (the tool needs none of it): superusers, roles granted to roles, REVOKE,
GetRecords (SELECT on the table's CDC log, `<table>_scylla_cdc_log`; the front's streams
are moto's), and Query or Scan of an index, which ScyllaDB checks on the index's view and
this model checks on the base table.
"""
from __future__ import annotations

import re
from typing import Iterable

CREATE, DROP, ALTER, SELECT, MODIFY, AUTHORIZE = "CREATE", "DROP", "ALTER", "SELECT", "MODIFY", "AUTHORIZE"
_ON_TABLE = frozenset({ALTER, DROP, SELECT, MODIFY, AUTHORIZE})  # what applies to a table (auth/resource.cc)

NEEDED = {
    "CreateTable": CREATE, "DeleteTable": DROP,
    "UpdateTable": ALTER, "TagResource": ALTER, "UntagResource": ALTER, "UpdateTimeToLive": ALTER,
    "PutItem": MODIFY, "UpdateItem": MODIFY, "DeleteItem": MODIFY, "BatchWriteItem": MODIFY,
    "GetItem": SELECT, "Query": SELECT, "Scan": SELECT, "BatchGetItem": SELECT,
}

Resource = tuple[str, ...]  # (): ALL KEYSPACES; (keyspace,); (keyspace, table)

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z0-9_]+)'
_GRANT = re.compile(rf"^\s*GRANT\s+(?P<permission>\w+)(?:\s+PERMISSIONS?)?\s+ON\s+"
                    rf"(?P<resource>ALL\s+KEYSPACES|KEYSPACE\s+{_NAME}|(?:TABLE\s+)?{_NAME}\.{_NAME})"
                    rf"\s+TO\s+(?P<role>{_NAME})\s*;?\s*$", re.IGNORECASE)


def _identifier(text: str) -> str:
    """A CQL name: quoted names keep their case, others are lower-cased."""
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def _resource(text: str) -> Resource:
    words = text.split(None, 1)
    if words[0].upper() == "ALL":
        return ()
    if words[0].upper() == "KEYSPACE":
        return (_identifier(words[1].strip()),)
    if words[0].upper() == "TABLE":
        text = words[1]
    keyspace, table = re.findall(_NAME, text)
    return _identifier(keyspace), _identifier(table)


def table_resource(table: str) -> Resource:
    """The CQL resource of an Alternator table (its keyspace is `alternator_<table>`)."""
    return f"alternator_{table}", table


class Grants:
    """The permissions each role holds, from CQL GRANT statements."""

    def __init__(self, statements: Iterable[str]):
        self._held: dict[str, set[tuple[str, Resource]]] = {}
        for statement in statements:
            match = _GRANT.match(statement)
            if match is None:
                raise ValueError(f"not a GRANT statement this model reads: {statement!r}")
            resource = _resource(match["resource"])
            permission = match["permission"].upper()
            permissions = (_ON_TABLE | ({CREATE} if len(resource) < 2 else set())) if permission == "ALL" \
                else {permission}
            self._held.setdefault(_identifier(match["role"]), set()).update((p, resource) for p in permissions)

    def holds(self, role: str, permission: str, resource: Resource) -> bool:
        """Whether the role holds the permission on the resource or one of its parents."""
        held = self._held.get(role, set())
        return any((permission, resource[:depth]) in held for depth in range(len(resource), -1, -1))

    def refusal(self, role: str, operation: str, tables: Iterable[str], address: str) -> str | None:
        """The AccessDeniedException message for this request, or None when it is allowed."""
        permission = NEEDED.get(operation)
        if permission is None:
            return None
        if permission == CREATE:
            return None if self.holds(role, CREATE, ()) else f"CREATE access on ALL KEYSPACES is denied to role {role}"
        for table in tables:
            keyspace, name = table_resource(table)
            if not self.holds(role, permission, (keyspace, name)):
                return (f"{permission} access on table {keyspace}.{name} is denied to role {role}, "
                        f"client address {address}")
        return None

    def auto_grant(self, role: str, create_table: dict) -> None:
        """CreateTable's auto-grant: every table permission on the new table and its indexes."""
        table = create_table["TableName"]
        keyspace = table_resource(table)[0]
        names = [table] + [f"{table}:{index['IndexName']}" for index in create_table.get("GlobalSecondaryIndexes") or []] \
            + [f"{table}!:{index['IndexName']}" for index in create_table.get("LocalSecondaryIndexes") or []]
        self._held.setdefault(role, set()).update((p, (keyspace, name)) for name in names for p in _ON_TABLE)


def tables_of(operation: str, body: dict) -> list[str]:
    """The tables a request names (the ones its permission is checked on)."""
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return list(body.get("RequestItems") or {})
    if "ResourceArn" in body:  # tags: .../table/<name>
        return [str(body["ResourceArn"]).partition("table/")[2].split("/")[0]]
    return [body["TableName"]] if "TableName" in body else []
