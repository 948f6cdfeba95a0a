"""Every example runconfig in runconfigs/ runs, as a user would run it from the repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.spark_fixtures import head_node_spark_fixture, local_spark_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

EXAMPLES = sorted((REPO / "runconfigs").glob("*.yml"))


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples in a fresh folder (a new user's clone), as the current directory."""
    root = tmp_path / "clone"
    for folder in ("runconfigs", "examples", "docs"):
        shutil.copytree(REPO / folder, root / folder)
    (root / ".targets").mkdir()
    monkeypatch.chdir(root)
    return root


def test_every_example_is_listed():
    names = {p.name for p in EXAMPLES}
    assert {"hello.yml", "train.yml", "conda-env.yml", "dsvm.yml", "hdi.yml"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, repo_copy: Path, cli, request):
    data = yaml.safe_load(example.read_text()) or {}
    target = data.get("target", "local")
    if data.get("framework") == "pyspark":
        request.getfixturevalue("local_spark")
    if target != "local":
        sshd: SSHServer = request.getfixturevalue("sshd")
        kind: tuple[str, ...] = ()
        if data.get("framework") == "pyspark":  # a Spark head node (its master: local)
            request.getfixturevalue("head_node_spark")
            kind = ("--type", "hdinsight", "--spark-master", "local[2]")
        attached = cli(
            "attach", target, *kind, "--address", sshd.host, "--ssh-port", str(sshd.port),
            "--username", sshd.user, "--ssh-key", str(sshd.key), "--accept-host-key",
        )  # fmt: skip
        assert attached.code == 0, attached
    result = cli("run", f"runconfigs/{example.name}")
    assert result.code == 0, result
    assert "Completed" in result.err
