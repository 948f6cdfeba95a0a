"""Issue 6's "done when": the same pyspark project runs on the local target (local
Spark), on an HDInsight-style head node over SSH, and (against the REST emulator) on
Databricks, with its outputs back each time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import REPO
from tests.databricks_emulator import DatabricksEmulator
from tests.spark_fixtures import head_node_spark_fixture, local_spark_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

TOKEN = "dapi-everywhere-token"


@pytest.fixture
def example(project: Path) -> Path:
    """The repository's pyspark example, as a user's clone has it."""
    for folder in ("runconfigs", "examples"):
        shutil.copytree(REPO / folder, project / folder)
    return project / "runconfigs" / "pyspark-local.yml"


def counts_of(project: Path) -> dict[str, int]:
    run = Workspace(project).ledger.list(limit=1)[0]
    data = json.loads(
        (project / ".targets" / "runs" / run.id / "outputs" / "counts.json").read_text()
    )
    return dict(data["counts"])


def test_the_same_pyspark_project_on_three_kinds_of_target(
    example: Path, project: Path, cli, local_spark, head_node_spark, sshd: SSHServer
):
    local = cli("run", str(example), timeout=300)
    assert local.code == 0, local
    expected = counts_of(project)
    assert expected["the"] == 4 and expected["fox"] == 2

    attached = cli(
        "attach",
        "hdi",
        "--type",
        "hdinsight",
        "--address",
        sshd.host,
        "--ssh-port",
        str(sshd.port),
        "--username",
        sshd.user,
        "--ssh-key",
        str(sshd.key),
        "--accept-host-key",
        "--spark-master",
        "local[2]",
    )
    assert attached.code == 0, attached
    on_hdi = cli("run", str(example), "--target", "hdi", timeout=300)
    assert on_hdi.code == 0, on_hdi
    assert counts_of(project) == expected

    with DatabricksEmulator(token=TOKEN) as dbx:
        attached = cli(
            "attach",
            "dbx",
            "--type",
            "databricks",
            "--host",
            dbx.host,
            "--token-stdin",
            "--cluster-id",
            next(iter(dbx.clusters)),
            input=TOKEN + "\n",
        )
        assert attached.code == 0, attached
        on_dbx = cli("run", str(example), "--target", "dbx", timeout=300)
    assert on_dbx.code == 0, on_dbx
    assert counts_of(project) == expected
