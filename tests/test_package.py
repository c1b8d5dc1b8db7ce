"""What a Dataflow worker does with `setup_file`: build the sdist the way Beam's stager builds
it, install it into a fresh virtualenv, and run a migration from that install alone.

The fresh virtualenv stands for Dataflow's SDK container: Beam and the other libraries are
already there (this venv's site-packages, reached through a .pth file, which does not run
that directory's own .pth files, so the editable install of this checkout is not
visible), and pip finds every dependency satisfied and installs the package alone. The
package comes only from the sdist: the run happens outside the checkout, and the test
checks where the modules were imported from, and that the sdist holds none of the local
servers (testbed/), the tests or the benchmarks.
"""
from __future__ import annotations

import json
import site
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest
from apache_beam.runners.portability.stager import Stager

from testbed import seed
from testbed.servers import REPO_ROOT
from tests.support.cli_runs import alternator_target, run_script, unique, write_config

pytestmark = pytest.mark.integration


def test_the_sdist_alone_runs_a_migration(dynamodb_local, alternator_clean, tmp_path):
    sdist = Path(Stager._build_setup_package(str(REPO_ROOT / "setup.py"), str(tmp_path)))  # noqa: SLF001 - Beam's own
    fresh = tmp_path / "worker"
    venv.EnvBuilder(with_pip=False).create(fresh)
    fresh_python = fresh / "bin" / "python"
    fresh_site = Path(subprocess.check_output([str(fresh_python), "-c", "import site; print(site.getsitepackages()[0])"],
                                              text=True).strip())
    (fresh_site / "sdk_container.pth").write_text(site.getsitepackages()[0] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(fresh_python), "install", str(sdist)],
                               capture_output=True, text=True, check=True, cwd=tmp_path, timeout=300)
    assert "Successfully installed alternator-migrate-0.1.0\n" in installed.stdout  # and nothing else

    where = subprocess.check_output([str(fresh_python), "-c", "import pipeline, transforms.write; "
                                     "print(pipeline.__file__); print(transforms.write.__file__)"],
                                    text=True, cwd=tmp_path)
    assert all(line.startswith(str(fresh_site)) for line in where.split()), where
    with tarfile.open(sdist) as archive:
        folders = {name.split("/")[1] for name in archive.getnames() if name.count("/") > 1}
    assert "pipeline" in folders and not folders & {"testbed", "tests", "bench"}, folders  # only the package

    table = unique("from_sdist")
    seed.seed_all_types(dynamodb_local.endpoint, table, count=300)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator_clean), [{"source": table}],
                          scan={"segments": 2, "page_size": 100},
                          pipeline_options={"runner": "DirectRunner", "direct_num_workers": 2,
                                            "direct_running_mode": "multi_processing"})
    completed = run_script("migrate", "--config", str(config), "--report", str(tmp_path / "r.json"), cwd=tmp_path,
                           script=fresh / "bin" / "alternator-migrate")

    assert completed.returncode == 0, completed.stderr
    assert json.loads((tmp_path / "r.json").read_text())["tables"][table]["written"] == 300
    assert seed.assert_same_items(dynamodb_local.endpoint, alternator_clean.url, table) == 300
