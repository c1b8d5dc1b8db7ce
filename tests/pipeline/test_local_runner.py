"""The local runner is the one the tests run: Beam's DirectRunner would first try its Prism
runner, downloading a binary from GitHub at run time, and fall back to the FnApiRunner when
that fails; the tool runs that FnApiRunner outright (`runners.LocalRunner`)."""
from __future__ import annotations

import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner

from pipeline.checks import launch, runners
from pipeline.checks.config import parse_config
from testbed import seed
from testbed.servers import REPO_ROOT
from tests.support.cli_runs import alternator_target, script_env, unique, write_config


@pytest.mark.parametrize("name", [None, "DirectRunner", "direct", "SwitchingDirectRunner",
                                  "apache_beam.runners.direct.direct_runner.DirectRunner"])
def test_the_direct_runner_and_the_default_are_the_local_runner(name):
    config = parse_config({"source": {"endpoint": "http://127.0.0.1:1"}, "target": {"endpoint": "http://127.0.0.1:2"},
                           "tables": ["things"], "pipeline_options": {"runner": name} if name else {}})

    options = launch.pipeline_options(config, [])

    assert options.view_as(StandardOptions).runner == runners.LOCAL_RUNNER
    assert runners.runner_kind(options) == "direct" and launch.runs_locally(options)


def test_the_local_runner_is_beams_fn_api_runner():
    pipeline = beam.Pipeline(options=PipelineOptions([], runner=runners.LOCAL_RUNNER))
    _ = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2)

    result = pipeline.run()

    result.wait_until_finish()
    assert isinstance(result, fn_runner.RunnerResult)


def test_a_local_run_offline_downloads_nothing_and_falls_back_to_nothing(dynamodb_local, alternator_clean, tmp_path):
    """Run with the network cut off outside 127.0.0.0/8 (`tests.support.offline`): any
    attempt to reach another host is named on stderr, and Beam would log its Prism try."""
    table = unique("offline_local")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=40)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [{"source": table}])

    for command in (["migrate"], ["validate"]):
        completed = subprocess.run([sys.executable, "-m", "tests.support.offline", *command, "--config", str(config)],
                                   capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=script_env(),
                                   stdin=subprocess.DEVNULL)

        assert completed.returncode == 0, completed.stderr
        assert "offline run: refused" not in completed.stderr
        log_file, = (tmp_path / "checkpoints" / "logs").glob(f"{command[0]}-*.log")
        logged = log_file.read_text().lower()
        assert "prism" not in logged and "falling back" not in logged, logged
    assert seed.assert_same_items(dynamodb_local.endpoint, alternator_clean.url, table) == 40
