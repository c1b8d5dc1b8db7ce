"""`WriteFindings`: what it writes is what the validation's reader reads back."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing import test_pipeline

from pipeline.checks.runners import LOCAL_RUNNER
from transforms.findings import Findings, Tally, WriteFindings, read_findings
from transforms.state.files import read_json
from transforms.state.storage import StorageOptions

MISSING = {"table": "music", "kind": "missing", "key": {"Artist": {"S": "Acme Band"}}}
DIFFERENT = {"table": "music", "kind": "different", "key": {"Artist": {"S": "No One You Know"}},
             "diff": [{"path": "Awards", "source": {"N": "1"}, "target": {"N": "2"}}]}
EXTRA = {"table": "mutants", "kind": "extra", "key": {"last_name": {"S": "Jeffries \u00e9\u6f22"}}}


def _order(finding: dict) -> tuple[str, str]:
    return finding["table"], finding["kind"]


def test_findings_and_summed_counts_read_back_as_written(tmp_path):
    folder = str(tmp_path / "findings")
    records = [Findings("music", (MISSING, DIFFERENT)), Findings("mutants", (EXTRA,)),
               Tally("music", "matched", 3), Tally("music", "matched", 4), Tally("music", "lagging", 1),
               Tally("mutants", "sampled", 2)]

    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        _ = p | beam.Create(records) | WriteFindings(folder, storage=StorageOptions())

    assert sorted(read_findings(folder), key=_order) == sorted([MISSING, DIFFERENT, EXTRA], key=_order)
    assert read_json(FileSystems.join(folder, "counts-music.json")) == {"matched": 7, "lagging": 1}
    assert read_json(FileSystems.join(folder, "counts-mutants.json")) == {"sampled": 2}
