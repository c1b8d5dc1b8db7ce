"""The manifests of a DynamoDB export in S3 (or a copy of one on any Beam filesystem).

AWS's layout (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html),
one folder per export, `<prefix>/AWSDynamoDB/<ExportId>/`:

    _started                 empty; written first (may be deleted: not required here)
    manifest-summary.json    one JSON object: exportType, outputFormat, exportTime, itemCount, s3Prefix...
    manifest-files.json      one JSON line per data file: dataFileS3Key, itemCount, md5Checksum, etag
    data/<name>.json.gz      a full export's data files: gzipped DYNAMODB_JSON, one `{"Item": ...}` a line

An incremental export keeps its manifests there too, but writes its data files into the
folder all incremental exports of that prefix share, `<prefix>/AWSDynamoDB/data/`; one
line a changed key: `{"Metadata": {"WriteTimestampMicros": ...}, "Keys", "NewImage", "OldImage"}`.

`dataFileS3Key` is the file's object key in the export's bucket, `<s3Prefix>/AWSDynamoDB/...`.
It is found again below the folder that stands for `<s3Prefix>`: the export's folder's
parent's parent. In the export's own bucket that is the key itself; a copy elsewhere (another
bucket, prefix or filesystem) reads alike as long as it keeps the layout below
`AWSDynamoDB/`. A full export's files are found in the export's own folder, so that folder
alone may also be copied anywhere, under any name. `md5Checksum` is the base64 MD5 of the
file's gzipped bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from transforms.errors import ExitCode, MigrateError
from transforms.state.files import matching, read_bytes
from transforms.state.paths import with_slashes

__all__ = ["FULL", "INCREMENTAL", "DataFile", "ExportManifest", "ExportError", "ExportMismatch", "read_manifest"]

FULL, INCREMENTAL = "FULL_EXPORT", "INCREMENTAL_EXPORT"
_VIEWS = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")


class ExportError(MigrateError):
    """An export that cannot be read as it is: the message names the file and the fix (exit 2)."""


class ExportMismatch(MigrateError):
    """A data file that does not match its manifest (checksum, item count) or holds a bad line,
    found while the run reads it (exit 4: the file is not recorded as done)."""

    code = ExitCode.FAILED


@dataclass(frozen=True)
class DataFile:
    """One data file of an export, as its manifest lists it."""

    path: str
    items: int
    md5: str  # base64 MD5 of the gzipped bytes


@dataclass(frozen=True)
class ExportManifest:
    """What an export's manifests say: its kind, time, item count and data files (manifest order)."""

    path: str
    export_type: str
    export_time: str  # FULL: the point in time; INCREMENTAL: the end of its window
    from_time: str | None  # INCREMENTAL only: the start of its window
    output_view: str | None  # INCREMENTAL only
    items: int
    files: tuple[DataFile, ...]


def _json_object(text: str | bytes, where: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ExportError(f"{where} is not a JSON object; is this a DynamoDB export?")
    return value


def _json_field(summary: dict, name: str, kind: type, where: str):
    value = summary.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ExportError(f"{where}: field {name} is missing or not a {kind.__name__}; is this a DynamoDB export?")
    return value


def read_manifest(path: str) -> ExportManifest:
    """Read and check an export's manifests (not its data files: workers check those).

    Raises ExportError for a missing or unfinished export, another output format, or
    manifests that disagree (file item counts not adding up to the summary's, a data file
    listed twice or not there)."""
    folder = path.rstrip("/")
    summary_path = FileSystems.join(folder, "manifest-summary.json")
    raw = read_bytes(summary_path)
    if raw is None:
        started = read_bytes(FileSystems.join(folder, "_started")) is not None
        raise ExportError(f"{summary_path} does not exist: " + (
            "the export has not finished yet; wait until its status is COMPLETED" if started else
            "check the path, it must be the export's own folder (.../AWSDynamoDB/<ExportId>/)"))
    summary = _json_object(raw, summary_path)
    output_format = summary.get("outputFormat")
    if output_format != "DYNAMODB_JSON":
        raise ExportError(f"{summary_path}: outputFormat is {output_format!r}; only DYNAMODB_JSON exports can be "
                          f"read (export the table again with --export-format DYNAMODB_JSON)")
    export_type = summary.get("exportType", FULL)
    if export_type not in (FULL, INCREMENTAL):
        raise ExportError(f"{summary_path}: unknown exportType {export_type!r}")
    view = summary.get("outputView") if export_type == INCREMENTAL else None
    if export_type == INCREMENTAL and view not in _VIEWS:
        raise ExportError(f"{summary_path}: outputView is {view!r}; an incremental export must be "
                          f"NEW_AND_OLD_IMAGES or NEW_IMAGE")
    items = _json_field(summary, "itemCount", int, summary_path)
    time_field = "exportTime" if export_type == FULL else "exportToTime"
    export_time = str(summary.get(time_field) or summary.get("exportTime") or "?")
    files = _data_files(folder, summary)
    listed = sum(f.items for f in files)
    if listed != items:
        raise ExportError(f"{FileSystems.join(folder, 'manifest-files.json')}: its data files hold {listed:,} "
                          f"items, but {summary_path} says {items:,}; the export is damaged or incomplete, export "
                          f"the table again")
    return ExportManifest(folder, export_type, export_time,
                          str(summary.get("exportFromTime")) if export_type == INCREMENTAL else None,
                          view, items, files)


def _data_files(folder: str, summary: dict) -> tuple[DataFile, ...]:
    files_path = FileSystems.join(folder, "manifest-files.json")
    raw = read_bytes(files_path)
    if raw is None:
        raise ExportError(f"{files_path} does not exist; the export is incomplete, export the table again")
    files = []
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{files_path} line {number}"
        entry = _json_object(line, where)
        key = _json_field(entry, "dataFileS3Key", str, where)
        items = _json_field(entry, "itemCount", int, where)
        md5 = _json_field(entry, "md5Checksum", str, where)
        files.append(DataFile(_data_path(folder, summary, key, where), items, md5))
    paths = [f.path for f in files]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise ExportError(f"{files_path} lists {twice[0]} twice; the export is damaged, export the table again")
    folders = sorted({FileSystems.split(path)[0] for path in paths})  # its own data/, or the shared one
    present = {with_slashes(found) for where in folders for found in matching(FileSystems.join(where, "*"))}
    missing = [p for p in paths if with_slashes(p) not in present]
    if missing:
        place = FileSystems.split(missing[0])[0]
        fix = ("copy the whole export folder" if place == FileSystems.join(folder, "data") else
               f"copy the data folder incremental exports share ({place}) along with the export's folder")
        more = f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise ExportError(f"{missing[0]} is listed in {files_path} but does not exist{more}; {fix}, or export the "
                          f"table again")
    return tuple(files)


def _data_path(folder: str, summary: dict, key: str, where: str) -> str:
    """Where the data file of object key `key` is, for the export in `folder` (see the module docstring)."""
    prefix = str(summary.get("s3Prefix") or "").strip("/")
    relative = key[len(prefix) + 1:] if prefix and key.startswith(prefix + "/") else key
    parts = relative.split("/")
    if len(parts) < 3 or parts[0] != "AWSDynamoDB" or {"", ".", ".."} & set(parts):
        raise ExportError(f"{where}: dataFileS3Key {key!r} is not a file below {prefix + '/' if prefix else ''}"
                          f"AWSDynamoDB/ (the summary's s3Prefix); is this a DynamoDB export?")
    export_id = str(summary.get("exportArn") or "").rpartition("/")[2] or FileSystems.split(folder)[1]
    if parts[1] == export_id:  # in the export's own folder (a full export's data/)
        return FileSystems.join(folder, *parts[2:])
    return FileSystems.join(FileSystems.split(folder)[0], *parts[1:])  # beside it (incremental: the shared data/)
