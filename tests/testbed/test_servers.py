"""The real local servers start and answer; the demo's tables can be seeded into one."""
import subprocess
import sys

import pytest

from testbed import seed
from testbed.servers import REPO_ROOT, DynamoDBLocal
from tests.support.cli_runs import unique

pytestmark = pytest.mark.integration


def test_dynamodb_local_creates_and_lists_a_table(dynamodb_local):
    table = unique("listed")
    seed.create_table(dynamodb_local.endpoint, table, **seed.keyed_by("id"))
    assert table in seed.table_names(dynamodb_local.endpoint)


def _seed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.seed", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_tables_of_the_local_config_are_seeded_from_a_checkout():
    """deploy/docker-compose.yml starts an empty DynamoDB Local; this fills it for configs/local.yaml."""
    with DynamoDBLocal() as source:
        seeded = _seed(source.endpoint, "--items", "12")
        again = _seed(source.endpoint, "--items", "12")
        counts = {table: len(seed.scan_all(source.endpoint, table))
                  for table in ("MusicCollection", "mutant_data", "demo_all_types")}

    assert seeded.returncode == 0, seeded.stderr
    assert counts == {"MusicCollection": len(seed.MUSIC_ITEMS), "mutant_data": len(seed.MUTANT_ITEMS),
                      "demo_all_types": 12}
    assert again.returncode == 2 and "the tables exist already" in again.stderr and "Traceback" not in again.stderr
