"""Where an export's data files are found: by their `dataFileS3Key`, in AWS's layout
(`testbed.exports` writes it as the AWS page it cites describes: a full export's files
in its own `data/`, incremental exports' files side by side in the shared
`<prefix>/AWSDynamoDB/data/`), in place or in a copy of the layout elsewhere."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from testbed.exports import LocalBucket, write_full_export, write_incremental_export
from transforms.errors import ExitCode
from transforms.exports.manifest import ExportError, read_manifest

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _change(n: int) -> dict:
    key = {"pk": {"S": f"k{n}"}}
    return {"keys": key, "new": {**key, "v": {"N": str(n)}}, "old": None, "micros": 1_000_000 + n}


@pytest.fixture
def exports(tmp_path):
    """A full export and two incremental ones under the prefix `exports` of the bucket `b`."""
    bucket = LocalBucket(tmp_path / "s3")
    full = write_full_export(bucket, "b", "exports", [{"pk": {"S": f"k{n}"}} for n in range(6)], files=2,
                             export_time=T0)
    first = write_incremental_export(bucket, "b", "exports", [_change(n) for n in range(5)], files=2,
                                     start=T0, end=T0 + timedelta(hours=1))
    second = write_incremental_export(bucket, "b", "exports", [_change(n) for n in range(3)], files=2,
                                      start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2))
    return tmp_path / "s3" / "b" / "exports", full, first, second


def _folders(manifest) -> set[str]:
    return {str(Path(f.path).parent) for f in manifest.files}


def test_incremental_exports_read_their_own_files_from_the_shared_data_folder(exports):
    root, full, first, second = exports
    shared = root / "AWSDynamoDB" / "data"
    assert len(list(shared.iterdir())) == 4  # both exports' files, side by side

    read = [read_manifest(path) for path in (first, second)]

    assert [_folders(m) for m in read] == [{str(shared)}, {str(shared)}]
    assert [m.items for m in read] == [5, 3]
    names = [{Path(f.path).name for f in m.files} for m in read]
    assert not names[0] & names[1] and names[0] | names[1] == {p.name for p in shared.iterdir()}
    full_manifest = read_manifest(full)
    assert _folders(full_manifest) == {str(Path(full) / "data")} and full_manifest.items == 6


def test_a_copy_of_the_layout_elsewhere_reads_alike(exports, tmp_path):
    root, full, first, _second = exports
    copy = tmp_path / "archive" / "orders"
    shutil.copytree(root, copy)
    incremental = copy / "AWSDynamoDB" / Path(first).name

    assert _folders(read_manifest(str(incremental))) == {str(copy / "AWSDynamoDB" / "data")}
    # A full export's folder alone, under another name, still finds its files in it.
    alone = tmp_path / "full-export-copy"
    shutil.copytree(full, alone)
    assert _folders(read_manifest(str(alone))) == {str(alone / "data")}


def test_an_incremental_export_copied_without_the_shared_folder_is_refused_naming_it(exports, tmp_path):
    _root, _full, first, _second = exports
    alone = tmp_path / "copied" / "AWSDynamoDB" / Path(first).name
    shutil.copytree(first, alone)

    with pytest.raises(ExportError) as refused:
        read_manifest(str(alone))

    shared = tmp_path / "copied" / "AWSDynamoDB" / "data"
    assert refused.value.code == ExitCode.USAGE
    assert f"is listed in {alone / 'manifest-files.json'} but does not exist (1 more missing)" in str(refused.value)
    assert f"copy the data folder incremental exports share ({shared}) along with the export's folder" \
        in str(refused.value)


def test_a_data_file_key_outside_the_export_prefix_is_refused(exports):
    _root, _full, first, _second = exports
    files = Path(first) / "manifest-files.json"
    entries = [json.loads(line) for line in files.read_text().splitlines()]
    entries[1]["dataFileS3Key"] = "elsewhere/data/x.json.gz"
    files.write_text("".join(json.dumps(entry) + "\n" for entry in entries))

    with pytest.raises(ExportError, match=r"line 2: dataFileS3Key 'elsewhere/data/x.json.gz' is not a file below "
                                          r"exports/AWSDynamoDB/ \(the summary's s3Prefix\)"):
        read_manifest(first)
