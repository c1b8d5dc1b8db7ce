"""A local stand-in for DynamoDB Streams, whose shards the test controls.

DynamoDB Local, the real source in the other tests, has a single stream shard per table and
never trims it, so shard lineage (a parent closing and two children taking over), records
lost to the 24-hour trim horizon and expired shard iterators can't be tested against it.
This aiohttp server speaks the real DynamoDB Streams wire protocol (JSON 1.0,
`X-Amz-Target: DynamoDBStreams_20120810.<Op>`), so the real boto3/aiobotocore
`dynamodbstreams` clients talk to it over HTTP, while the test builds each stream by hand
with `FakeStream`: adds, closes and splits shards (thousands of them, also while a
follower reads), puts records, trims, expires iterators and disables the stream. It
notes when each shard was read (`read_times`), and with `reads_per_second` it answers
LimitExceededException to a shard read more often than that, as DynamoDB Streams does.

With `retention_seconds` it keeps records for that long, as DynamoDB Streams keeps them
for 24 hours ("All data in DynamoDB Streams is subject to a 24-hour lifetime",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html), so tests
compress a day into seconds: older records are trimmed, TRIM_HORIZON starts after them,
an iterator or a sequence number before them gets TrimmedDataAccessException ("You request
a shard iterator with a sequence number older than the trim point", "before you use the
iterator in a GetRecords request, a stream record in the shard exceeds the 24 hour period
and is trimmed": the API reference of TrimmedDataAccessException,
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html),
and a closed shard whose records are all trimmed leaves DescribeStream.

It implements DescribeStream, GetShardIterator, GetRecords and ListStreams, with errors in
the DynamoDB JSON protocol. Credentials and signatures are ignored. It is a test fixture:
nothing here talks to AWS, and it listens on 127.0.0.1 only.

    stream = FakeStream()
    stream.add_shard("shardId-00000000000000000001-aaaaaaaa")
    stream.put_record("shardId-00000000000000000001-aaaaaaaa", "INSERT", {"pk": {"S": "a"}},
                      new_image={"pk": {"S": "a"}, "v": {"N": "1"}})
    with FakeStreamsServer() as server:
        server.add_stream(stream)
        client = boto3.client("dynamodbstreams", endpoint_url=server.url, ...)
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import collections
import copy
import gzip
import json
import threading
import time
import uuid
import zlib
from collections import Counter
from typing import Callable

from aiohttp import web

from testbed.threaded_server import ThreadedServer

DEFAULT_STREAM_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/T/stream/2026-01-01T00:00:00.000"
TARGET_PREFIX = "DynamoDBStreams_20120810."
VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
ITERATOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")
MIN_SHARD_ID_LENGTH, MAX_SHARD_ID_LENGTH = 28, 65  # DynamoDB Streams' limits
SEQUENCE_DIGITS = 21  # DynamoDB Local's width: "000000000000000000001"
MAX_GET_RECORDS_LIMIT = 1000
MAX_DESCRIBE_LIMIT = 100
MAX_LIST_STREAMS_LIMIT = 100
_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
_ITERATOR_PREFIX = "fake-streams-iterator:"
GZIP_ABOVE_BYTES = 4096  # DynamoDB compresses a reply larger than this for a client that accepts it


def streams_error(status: int, error_type: str, message: str) -> web.Response:
    """An error in the DynamoDB JSON protocol, as DynamoDB Streams sends it."""
    return _json_response({"__type": _ERROR_PREFIX + error_type, "message": message}, status)


def _json_response(body: dict, status: int = 200, accept_encoding: str = "") -> web.Response:
    """The reply as DynamoDB (Streams) sends it: gzipped when larger than 4 KB and the request
    accepts gzip (the threshold and "no Accept-Encoding, no compression" are from ScyllaDB's
    tests run against DynamoDB, scylladb/scylladb test/alternator/test_compressed_response.py),
    with `x-amz-crc32` over the bytes as sent, compressed or not (aws-sdk-go-v2
    service/dynamodb/internal/customizations/doc.go; aws-sdk-java-v2
    services/dynamodb/src/main/resources/codegen-resources/dynamodbstreams/customization.config:
    calculateCrc32FromCompressedData).
    DynamoDB also does deflate, which nothing here asks for."""
    # Bytes and an explicit header, so aiohttp adds no "; charset=utf-8", as DynamoDB sends it.
    data = json.dumps(body).encode()
    headers = {"Content-Type": _JSON_CONTENT_TYPE, "x-amzn-RequestId": uuid.uuid4().hex}
    if len(data) > GZIP_ABOVE_BYTES and _accepts_gzip(accept_encoding):
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    headers["x-amz-crc32"] = str(zlib.crc32(data))
    return web.Response(status=status, body=data, headers=headers)


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value admits gzip: named, or "*", with a q-value above 0 (RFC 9110, 12.5.3)."""
    weights = {}
    for coding in accept_encoding.split(","):
        name, *params = (part.strip() for part in coding.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if name:
            weights[name.lower()] = weight
    return weights.get("gzip", weights.get("*", 0.0)) > 0


class StreamsApiError(Exception):
    """Raised inside an operation; the server answers it as a DynamoDB JSON error."""

    def __init__(self, error_type: str, message: str, status: int = 400):
        super().__init__(f"{error_type}: {message}")
        self.error_type, self.message, self.status = error_type, message, status


def shard_id(n: int, suffix: str = "aaaaaaaa") -> str:
    """A valid shard id; ids sort (and DescribeStream lists them) in the order of `n`."""
    return f"shardId-{n:020d}-{suffix}"


def format_sequence_number(number: int) -> str:
    return str(number).zfill(SEQUENCE_DIGITS)


def _parse_sequence_number(value, what: str = "SequenceNumber") -> int:
    """A sequence number as an int; StreamsApiError(ValidationException) when not one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise StreamsApiError("ValidationException", f"Invalid {what}: {value!r}")


class _Shard:
    def __init__(self, shard_id: str, parent: str | None, starting: int):
        self.shard_id = shard_id
        self.parent = parent
        self.starting = starting  # lower bound of the shard's sequence numbers
        self.ending: int | None = None  # set when closed
        self.numbers: list[int] = []  # sequence numbers of `records`, increasing
        self.records: list[dict] = []
        self.read_times: list[float] = []  # time.monotonic() of every GetRecords call answered

    @property
    def closed(self) -> bool:
        return self.ending is not None


class FakeStream:
    """One DynamoDB stream whose shards and records the test controls.

    Sequence numbers are increasing across all shards of the stream. Every method is safe to
    call from the test thread while the server thread reads the stream.
    """

    def __init__(self, stream_arn: str = DEFAULT_STREAM_ARN, table_name: str = "T",
                 key_schema: list[dict] | None = None, view_type: str = "NEW_AND_OLD_IMAGES",
                 reads_per_second: float | None = None, retention_seconds: float | None = None,
                 records_as: str = "dynamodb"):
        """`reads_per_second`: GetRecords calls a shard answers in any second (None: no limit);
        `retention_seconds`: how long a record stays before it is trimmed (None: for ever).
        `records_as`: "dynamodb", or "alternator" for records shaped as Alternator's GetRecords
        writes them (alternator/streams.cc of scylla-2026.1.0; docs/alternator/compatibility.md):
        `eventSource` "scylladb:alternator", `awsRegion` the datacenter's name, no `SizeBytes`.
        Alternator calls every write MODIFY (or INSERT) whether the item existed or not, and a
        PutItem a REMOVE then a MODIFY: the test puts those records as such."""
        if view_type not in VIEW_TYPES:
            raise ValueError(f"view_type must be one of {VIEW_TYPES}, got {view_type!r}")
        if records_as not in ("dynamodb", "alternator"):
            raise ValueError(f"records_as must be 'dynamodb' or 'alternator', got {records_as!r}")
        self.records_as = records_as
        if "/stream/" not in stream_arn:
            raise ValueError(f"not a stream ARN (no '/stream/'): {stream_arn!r}")
        self.stream_arn = stream_arn
        self.table_name = table_name
        self.key_schema = copy.deepcopy(key_schema or [{"AttributeName": "pk", "KeyType": "HASH"}])
        self.view_type = view_type
        self.stream_label = stream_arn.rpartition("/stream/")[2]
        self.created = time.time()
        self._lock = threading.Lock()
        self._shards: dict[str, _Shard] = {}  # every shard ever added, in order
        self._last_sequence = 0
        self._trim_point = 0  # records below it are gone
        self._retention = retention_seconds
        self._put_times: list[float] = []    # when each record was put, oldest first
        self._put_numbers: list[int] = []    # its sequence number
        self._expirations = 0
        self._status = "ENABLED"
        self._calls: Counter[str] = Counter()
        self._reads_per_second = reads_per_second
        self._describe_starts: list[str | None] = []
        self._recent_reads: dict[str, collections.deque] = collections.defaultdict(collections.deque)

    # --- control, called by the test ------------------------------------------------------

    def add_shard(self, shard_id: str, parent: str | None = None) -> None:
        """Open a shard; `parent` must be a shard added earlier (even if trimmed since)."""
        _check_shard_id(shard_id, "shard_id")
        if parent is not None:
            _check_shard_id(parent, "parent")
        with self._lock:
            if shard_id in self._shards:
                raise ValueError(f"shard {shard_id} already exists")
            if parent is not None and parent not in self._shards:
                raise ValueError(f"parent shard {parent} was never added")
            self._shards[shard_id] = _Shard(shard_id, parent, self._last_sequence + 1)

    def close_shard(self, shard_id: str) -> None:
        """Close a shard at its last record (at its start when empty); closing twice is a no-op."""
        with self._lock:
            shard = self._shard_for_control(shard_id)
            if not shard.closed:
                shard.ending = shard.numbers[-1] if shard.numbers else shard.starting

    def split_shard(self, shard_id: str, *children: str) -> None:
        """Close a shard and open its children at once, as DynamoDB does when a shard rolls over."""
        self.close_shard(shard_id)
        for child in children:
            self.add_shard(child, parent=shard_id)

    def put_record(self, shard_id: str, event_name: str, keys: dict, new_image: dict | None = None,
                   old_image: dict | None = None, created: float | None = None) -> str:
        """Append a stream record to an open shard; returns its sequence number.

        `keys` and the images are DynamoDB JSON ({"pk": {"S": "a"}}); images are dropped as
        the stream's view type says. `created` is epoch seconds (default: now).
        """
        if event_name not in EVENT_NAMES:
            raise ValueError(f"event_name must be one of {EVENT_NAMES}, got {event_name!r}")
        key_names = {key["AttributeName"] for key in self.key_schema}
        if not isinstance(keys, dict) or set(keys) != key_names:
            raise ValueError(f"keys must hold exactly the key attributes {sorted(key_names)}, got {keys!r}")
        data: dict = {"ApproximateCreationDateTime": time.time() if created is None else created,
                      "Keys": copy.deepcopy(keys)}
        if new_image is not None and self.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
            data["NewImage"] = copy.deepcopy(new_image)
        if old_image is not None and self.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
            data["OldImage"] = copy.deepcopy(old_image)
        # An approximation of DynamoDB's size: keys and images as compact JSON.
        size = len(json.dumps([data["Keys"], data.get("NewImage"), data.get("OldImage")],
                              separators=(",", ":")).encode())
        with self._lock:
            shard = self._shard_for_control(shard_id)
            if shard.closed:
                raise ValueError(f"shard {shard_id} is closed")
            if self._status != "ENABLED":
                raise ValueError(f"stream {self.stream_arn} is {self._status}")
            self._last_sequence += 1
            sequence_number = format_sequence_number(self._last_sequence)
            data.update(SequenceNumber=sequence_number, StreamViewType=self.view_type)
            record = {"eventID": uuid.uuid4().hex, "eventName": event_name, "eventVersion": "1.1", "dynamodb": data}
            if self.records_as == "alternator":
                record.update(eventSource="scylladb:alternator", awsRegion="datacenter1")
            else:
                data["SizeBytes"] = size
                record.update(eventSource="aws:dynamodb", awsRegion="us-east-1")
            shard.numbers.append(self._last_sequence)
            shard.records.append(record)
            if self._retention is not None:
                self._put_times.append(time.time())
                self._put_numbers.append(self._last_sequence)
        return sequence_number

    def trim_before(self, sequence_number: str | int) -> None:
        """Drop every record numbered below `sequence_number`; closed shards left empty vanish.

        The trim point only moves forward. Iterators pointing before it fail with
        TrimmedDataAccessException in GetRecords, as do AT/AFTER_SEQUENCE_NUMBER requests
        for a number below it.
        """
        try:
            point = _parse_sequence_number(sequence_number, "sequence_number")
        except StreamsApiError as exc:
            raise ValueError(exc.message) from None
        with self._lock:
            self._trim_point = max(self._trim_point, point)

    def expire_iterators_once(self, count: int = 1) -> None:
        """The next `count` GetRecords calls on this stream fail with ExpiredIteratorException."""
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an int >= 0, got {count!r}")
        with self._lock:
            self._expirations += count

    def disable(self) -> None:
        """StreamStatus becomes DISABLED; shards stay as they are and records stay readable."""
        with self._lock:
            self._status = "DISABLED"

    def read_times(self, shard_id: str) -> list[float]:
        """When `shard_id` was read (time.monotonic() of each GetRecords answered), oldest first."""
        with self._lock:
            return list(self._shard_for_control(shard_id).read_times)

    @property
    def describe_starts(self) -> list[str | None]:
        """The ExclusiveStartShardId of every DescribeStream call (None: from the first shard)."""
        with self._lock:
            return list(self._describe_starts)

    @property
    def shard_ids(self) -> list[str]:
        """Every shard ever added, oldest first."""
        with self._lock:
            return list(self._shards)

    @property
    def calls(self) -> Counter[str]:
        """Requests addressed to this stream, per operation (a snapshot; missing ones are 0);
        `LimitExceeded` counts GetRecords calls refused for going over `reads_per_second`."""
        with self._lock:
            return Counter(self._calls)

    def _shard_for_control(self, shard_id: str) -> _Shard:
        if shard_id not in self._shards:
            raise ValueError(f"no shard {shard_id} in {self.stream_arn}")
        return self._shards[shard_id]

    # --- operations, called by the server thread -------------------------------------------

    def count_call(self, op: str) -> None:
        with self._lock:
            self._calls[op] += 1

    def _expire(self) -> None:
        """Move the trim point past the records older than the retention (under the lock)."""
        if self._retention is None:
            return
        aged = bisect.bisect_left(self._put_times, time.time() - self._retention)
        if aged:
            point = self._put_numbers[aged] if aged < len(self._put_numbers) else self._last_sequence + 1
            self._trim_point = max(self._trim_point, point)
            del self._put_times[:aged], self._put_numbers[:aged]

    def _visible(self, shard: _Shard) -> bool:
        """A closed shard whose every record is trimmed has disappeared."""
        return not (shard.closed and shard.ending < self._trim_point)

    def _visible_shard(self, shard_id) -> _Shard:
        shard = self._shards.get(shard_id) if isinstance(shard_id, str) else None
        if shard is None or not self._visible(shard):
            raise StreamsApiError("ResourceNotFoundException",
                                  f"Requested resource not found: Shard does not exist: {shard_id}")
        return shard

    def describe_stream(self, params: dict) -> dict:
        limit = _limit(params, MAX_DESCRIBE_LIMIT)
        start = params.get("ExclusiveStartShardId")
        with self._lock:
            self._expire()
            self._describe_starts.append(start)
            shard_ids = list(self._shards)
            if start is not None:
                if not isinstance(start, str) or start not in self._shards:
                    raise StreamsApiError("ValidationException", f"Unknown ExclusiveStartShardId: {start}")
                shard_ids = shard_ids[shard_ids.index(start) + 1:]
            visible = [self._shards[s] for s in shard_ids if self._visible(self._shards[s])]
            page = visible[:limit]
            shards = []
            for shard in page:
                description: dict = {"ShardId": shard.shard_id}
                if shard.parent is not None:
                    description["ParentShardId"] = shard.parent
                sequence_range = {"StartingSequenceNumber": format_sequence_number(shard.starting)}
                if shard.closed:
                    sequence_range["EndingSequenceNumber"] = format_sequence_number(shard.ending)
                description["SequenceNumberRange"] = sequence_range
                shards.append(description)
            result = {"StreamArn": self.stream_arn, "StreamLabel": self.stream_label,
                      "StreamStatus": self._status, "StreamViewType": self.view_type,
                      "CreationRequestDateTime": self.created, "TableName": self.table_name,
                      "KeySchema": copy.deepcopy(self.key_schema), "Shards": shards}
            if len(visible) > len(page):
                result["LastEvaluatedShardId"] = page[-1].shard_id
        return {"StreamDescription": result}

    def get_shard_iterator(self, params: dict) -> dict:
        iterator_type = params.get("ShardIteratorType")
        if iterator_type not in ITERATOR_TYPES:
            raise StreamsApiError("ValidationException", f"Invalid ShardIteratorType: {iterator_type!r}")
        with self._lock:
            self._expire()
            shard = self._visible_shard(params.get("ShardId"))
            if iterator_type == "TRIM_HORIZON":
                after = max(shard.starting, self._trim_point) - 1
            elif iterator_type == "LATEST":
                after = shard.ending if shard.closed else self._last_sequence
            else:
                if "SequenceNumber" not in params:
                    raise StreamsApiError("ValidationException", f"SequenceNumber is required for {iterator_type}")
                number = _parse_sequence_number(params["SequenceNumber"])
                if number < shard.starting or (shard.closed and number > shard.ending):
                    raise StreamsApiError("ValidationException",
                                          f"SequenceNumber {params['SequenceNumber']} is not in the range "
                                          f"of shard {shard.shard_id}")
                if number < self._trim_point:
                    raise StreamsApiError("TrimmedDataAccessException",
                                          f"SequenceNumber {params['SequenceNumber']} of shard "
                                          f"{shard.shard_id} is beyond the trim horizon")
                after = number - 1 if iterator_type == "AT_SEQUENCE_NUMBER" else number
            return {"ShardIterator": _encode_iterator(self.stream_arn, shard.shard_id, after)}

    def get_records(self, shard_id: str, after: int, params: dict) -> dict:
        """One page of `shard_id` after sequence number `after` (decoded from the iterator)."""
        limit = _limit(params, MAX_GET_RECORDS_LIMIT)
        with self._lock:
            if self._expirations > 0:
                self._expirations -= 1
                raise StreamsApiError("ExpiredIteratorException", "Iterator expired")
            shard = self._shards.get(shard_id)
            if shard is None:
                raise StreamsApiError("ValidationException", "Invalid ShardIterator")
            self._check_read_rate(shard_id)
            self._expire()
            start = bisect.bisect_right(shard.numbers, after)
            if start < len(shard.numbers) and shard.numbers[start] < self._trim_point:
                raise StreamsApiError("TrimmedDataAccessException",
                                      f"The iterator of shard {shard_id} points to trimmed records")
            end = min(start + limit, len(shard.numbers))
            # Records are never changed once put, so the page can share them.
            result: dict = {"Records": shard.records[start:end]}
            position = shard.numbers[end - 1] if end > start else after
            if not (shard.closed and end == len(shard.numbers)):
                result["NextShardIterator"] = _encode_iterator(self.stream_arn, shard_id, position)
            shard.read_times.append(time.monotonic())
        return result

    def _check_read_rate(self, shard_id: str) -> None:
        """LimitExceededException for a shard read more than `reads_per_second` times in the last second."""
        if self._reads_per_second is None:
            return
        now, recent = time.monotonic(), self._recent_reads[shard_id]
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) >= self._reads_per_second:
            self._calls["LimitExceeded"] += 1
            raise StreamsApiError("LimitExceededException",
                                  f"Rate exceeded for shard {shard_id}: at most {self._reads_per_second:g} "
                                  f"GetRecords calls a second")
        recent.append(now)

    def list_entry(self) -> dict:
        return {"StreamArn": self.stream_arn, "TableName": self.table_name, "StreamLabel": self.stream_label}


def _check_shard_id(shard_id, what: str) -> None:
    if not isinstance(shard_id, str) or not MIN_SHARD_ID_LENGTH <= len(shard_id) <= MAX_SHARD_ID_LENGTH:
        raise ValueError(f"{what} must be a string of {MIN_SHARD_ID_LENGTH} to {MAX_SHARD_ID_LENGTH} "
                         f"characters, like 'shardId-00000000000000000001-aaaaaaaa'; got {shard_id!r}")


def _limit(params: dict, maximum: int) -> int:
    limit = params.get("Limit", maximum)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise StreamsApiError("ValidationException", f"Limit must be between 1 and {maximum}, got {limit!r}")
    return limit


def _encode_iterator(stream_arn: str, shard_id: str, after: int) -> str:
    payload = json.dumps([stream_arn, shard_id, after], separators=(",", ":")).encode()
    return _ITERATOR_PREFIX + base64.urlsafe_b64encode(payload).decode()


def _decode_iterator(iterator) -> tuple[str, str, int]:
    invalid = StreamsApiError("ValidationException", "Invalid ShardIterator")
    if not isinstance(iterator, str) or not iterator.startswith(_ITERATOR_PREFIX):
        raise invalid
    try:
        stream_arn, shard_id, after = json.loads(base64.urlsafe_b64decode(iterator[len(_ITERATOR_PREFIX):]))
    except (ValueError, TypeError, binascii.Error):
        raise invalid from None
    if not (isinstance(stream_arn, str) and isinstance(shard_id, str) and isinstance(after, int)):
        raise invalid
    return stream_arn, shard_id, after


class FakeStreamsServer(ThreadedServer):
    """DynamoDB Streams' API on 127.0.0.1:`port`, serving the registered `FakeStream`s."""

    thread_name = "fake-streams"

    def __init__(self, port: int = 0):
        super().__init__()
        self.port = port
        self._lock = threading.Lock()
        self._streams: dict[str, FakeStream] = {}
        self._calls: Counter[str] = Counter()
        self._bad_checksums = 0
        self._bad_checksum_text: str | None = None
        self._replacements = 0
        self._replacement = b""
        self._gzipped = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_stream(self, stream: FakeStream) -> FakeStream:
        with self._lock:
            if stream.stream_arn in self._streams:
                raise ValueError(f"a stream {stream.stream_arn} is already registered")
            self._streams[stream.stream_arn] = stream
        return stream

    def remove_stream(self, stream_arn: str) -> None:
        with self._lock:
            self._streams.pop(stream_arn, None)

    @property
    def calls(self) -> Counter[str]:
        """Every request received, per operation (a snapshot)."""
        with self._lock:
            return Counter(self._calls)

    def corrupt_checksums(self, count: int = 1, header: str | None = None) -> None:
        """The next `count` successful answers carry a wrong x-amz-crc32 (a reply damaged on the
        way), or `header` as its text."""
        with self._lock:
            self._bad_checksums += count
            self._bad_checksum_text = header

    def replace_replies(self, body: bytes, count: int = 1) -> None:
        """The next `count` successful answers are `body` with status 200 and no x-amz-crc32 (a
        page from something in between, like a captive proxy's)."""
        with self._lock:
            self._replacements += count
            self._replacement = body

    @property
    def gzipped_replies(self) -> int:
        """How many replies went out gzipped."""
        with self._lock:
            return self._gzipped

    # --- lifecycle --------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event, on_ready: Callable[[], None] = lambda: None) -> None:
        """Listen until `stop` is set; call `on_ready` once listening."""
        app = web.Application()
        app.router.add_post("/", self._handle)
        await self.serve_app(app, stop, on_ready)

    # --- the API ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        with self._lock:
            self._calls[op or target] += 1
        try:
            try:
                params = json.loads(await request.read() or b"{}")
            except ValueError:
                raise StreamsApiError("SerializationException", "Request body is not valid JSON") from None
            if not isinstance(params, dict):
                raise StreamsApiError("SerializationException", "Request body is not a JSON object")
            handler = {"DescribeStream": self._describe_stream, "GetShardIterator": self._get_shard_iterator,
                       "GetRecords": self._get_records, "ListStreams": self._list_streams}.get(op)
            if handler is None:
                raise StreamsApiError("UnknownOperationException", f"Unknown operation: {target!r}")
            result = handler(params)
        except StreamsApiError as exc:
            return streams_error(exc.status, exc.error_type, exc.message)
        return self._reply(result, request.headers.get("Accept-Encoding", ""))

    def _reply(self, result: dict, accept_encoding: str) -> web.Response:
        """A successful answer, damaged on its way if the test asked for it."""
        with self._lock:
            if self._replacements > 0:
                self._replacements -= 1
                return web.Response(status=200, body=self._replacement, content_type="text/html")
            corrupt, self._bad_checksums = self._bad_checksums > 0, max(0, self._bad_checksums - 1)
            wrong_text = self._bad_checksum_text
        response = _json_response(result, accept_encoding=accept_encoding)
        with self._lock:
            self._gzipped += "Content-Encoding" in response.headers
        if corrupt:
            right = int(response.headers["x-amz-crc32"])
            response.headers["x-amz-crc32"] = wrong_text or str((right + 1) % 2**32)
        return response

    def _stream(self, stream_arn, op: str) -> FakeStream:
        with self._lock:
            stream = self._streams.get(stream_arn) if isinstance(stream_arn, str) else None
        if stream is None:
            raise StreamsApiError("ResourceNotFoundException",
                                  f"Requested resource not found: Stream: {stream_arn} not found")
        stream.count_call(op)
        return stream

    def _describe_stream(self, params: dict) -> dict:
        return self._stream(params.get("StreamArn"), "DescribeStream").describe_stream(params)

    def _get_shard_iterator(self, params: dict) -> dict:
        return self._stream(params.get("StreamArn"), "GetShardIterator").get_shard_iterator(params)

    def _get_records(self, params: dict) -> dict:
        stream_arn, shard_id, after = _decode_iterator(params.get("ShardIterator"))
        return self._stream(stream_arn, "GetRecords").get_records(shard_id, after, params)

    def _list_streams(self, params: dict) -> dict:
        limit = _limit(params, MAX_LIST_STREAMS_LIMIT)
        table, start = params.get("TableName"), params.get("ExclusiveStartStreamArn")
        with self._lock:
            arns = list(self._streams)
            if start is not None:
                arns = arns[arns.index(start) + 1:] if start in arns else []
            streams = [self._streams[arn] for arn in arns]
        matching = [s.list_entry() for s in streams if table is None or s.table_name == table]
        result: dict = {"Streams": matching[:limit]}
        if len(matching) > limit:
            result["LastEvaluatedStreamArn"] = matching[limit - 1]["StreamArn"]
        return result
