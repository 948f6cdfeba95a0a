"""Every example runconfig in runconfigs/ runs, as a user would run it from the repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.cluster_nodes import node_image_fixture  # noqa: F401
from tests.conftest import REPO
from tests.dockerd import docker_engine_fixture  # noqa: F401
from tests.spark_fixtures import head_node_spark_fixture, local_spark_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

EXAMPLES = sorted((REPO / "runconfigs").glob("*.yml"))


def _multi_node(path: Path) -> bool:
    return int((yaml.safe_load(path.read_text()) or {}).get("node_count") or 1) > 1


PARAMS = [
    pytest.param(p, marks=pytest.mark.xdist_group("docker")) if _multi_node(p) else p
    for p in EXAMPLES
]


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


@pytest.mark.parametrize("example", PARAMS, ids=lambda p: p.name)
def test_example_runs(example: Path, repo_copy: Path, cli, request):
    data = yaml.safe_load(example.read_text()) or {}
    target = data.get("target", "local")
    if data.get("framework") == "pyspark":
        request.getfixturevalue("local_spark")
    if _multi_node(example):  # on a docker-provider cluster, as its comment says
        from tests.cluster_nodes import remove_cluster_containers

        image = request.getfixturevalue("node_image")
        created = cli(
            "create", target, "--type", "cluster", "--provider", "docker",
            "--image", image.name, "--max-nodes", "2", "--idle-seconds-before-scaledown", "0",
        )  # fmt: skip
        assert created.code == 0, created
        request.addfinalizer(lambda: remove_cluster_containers(image.engine, target))
        request.addfinalizer(lambda: cli("delete", target, "--force"))
    elif target != "local":
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
