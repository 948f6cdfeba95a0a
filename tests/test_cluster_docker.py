"""Clusters of docker-provider nodes, end to end through the CLI: containers with sshd on
host networking (distinct loopback ports), made from the test node image (OpenSSH,
OpenMPI, CPU PyTorch). A 2-node torchrun job, an MPI hello across 2 nodes in a managed
environment, scale-up from 0 and back, and a node that disappears mid-run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_nodes import NodeImage, node_image_fixture, remove_cluster_containers  # noqa: F401
from tests.conftest import wait_for_status, wait_until
from tests.dockerd import docker_engine_fixture  # noqa: F401

pytestmark = pytest.mark.xdist_group("docker")

USER_PYTHON = (
    "environment:\n  python:\n    user_managed_dependencies: true\n    interpreter_path: python3\n"
)

DDP = """\
import os, socket
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print(f"rank {dist.get_rank()} of {dist.get_world_size()} on {socket.gethostname()}: "
      f"sum {t.item():g}", flush=True)
if dist.get_rank() == 0:
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/result.json", "w") as fh:
        fh.write('{"world_size": %d, "sum": %g}' % (dist.get_world_size(), t.item()))
dist.destroy_process_group()
"""


@pytest.fixture
def cluster(node_image: NodeImage, project: Path, cli, shared_wheels: Path) -> Iterator[str]:
    """A docker-provider cluster of 0 to 2 nodes whose idle nodes go after 3 s (the test
    wheel folder mounted read-only at the same path on every node)."""
    name = "c" + uuid.uuid4().hex[:8]
    result = cli(
        "create", name, "--type", "cluster", "--provider", "docker",
        "--image", node_image.name, "--min-nodes", "0", "--max-nodes", "2",
        "--idle-seconds-before-scaledown", "3", "--volumes", f"{shared_wheels}:{shared_wheels}:ro",
    )  # fmt: skip
    assert result.code == 0, result
    yield name
    cli("delete", name, "--force")
    remove_cluster_containers(node_image.engine, name)


def status(cli, name: str) -> dict[str, Any]:
    data = cli("show", name, "-o", "json").json()
    assert isinstance(data, dict)
    return dict(data["status"])


def containers(node_image: NodeImage, name: str) -> list[str]:
    out = node_image.engine.run(
        "ps", "-q", "--filter", f"label=targets.cluster={name}", check=False
    ).stdout
    return out.split()


def start_long_run(cluster: str, project: Path, write, cli) -> tuple[str, str]:
    """A one-node run that sleeps for 2 minutes, once it runs: its id and its node."""
    write(project / "long.py", "import time\nprint('working', flush=True)\ntime.sleep(120)\n")
    write(project / "long.yml", f"script: long.py\ntarget: {cluster}\n" + USER_PYTHON)
    started = cli("run", "long.yml", "--detach", "-o", "json")
    assert started.code == 0, started
    run_id = started.json()["id"]
    wait_for_status(cli, run_id, "Running", timeout=60, what="the run to start")
    return run_id, status(cli, cluster)["nodes"][0]["id"]


def test_a_two_node_pytorch_job_scales_the_cluster_up_from_zero_and_back(
    cluster: str, node_image: NodeImage, project: Path, write, cli
) -> None:
    write(project / "ddp.py", DDP)
    write(
        project / "ddp.yml",
        f"script: ddp.py\ntarget: {cluster}\ncommunicator: Gloo\nnode_count: 2\n"
        "pytorch:\n  communication_backend: gloo\n  process_count: 4\n" + USER_PYTHON,
    )
    assert status(cli, cluster)["nodes"] == []
    assert containers(node_image, cluster) == []

    result = cli("run", "ddp.yml")
    assert result.code == 0, result
    # The user following the run sees the cluster grow for it.
    assert f"[cluster {cluster}] waiting for 2 node(s): adding 2 (0 now, max 2)" in result.out
    # Every line says which node and which rank wrote it.
    for rank in range(4):
        node = rank // 2
        assert f"[node {node}] [rank {rank}] rank {rank} of 4 on {cluster}-{node}: sum 10" in (
            result.out
        ), result.out

    run = cli("runs", "list", "-o", "json").json()[0]
    assert run["status"] == "Completed" and run["target"] == cluster
    folder = project / ".targets" / "runs" / run["id"]
    assert json.loads((folder / "outputs" / "result.json").read_text()) == {
        "world_size": 4,
        "sum": 10,
    }
    # Both nodes' logs are kept, per node and per rank.
    for node, ranks in ((0, (0, 1)), (1, (2, 3))):
        log = (folder / "logs" / "nodes" / str(node) / "driver.log").read_text()
        for rank in ranks:
            assert f"[rank {rank}] rank {rank} of 4" in log
            per_rank = folder / "logs" / "nodes" / str(node) / "user_logs"
            assert f"rank {rank} of 4" in (per_rank / f"std_log_process_{rank:02d}.txt").read_text()

    one = cli("runs", "logs", run["id"], "--node", "1")
    assert one.code == 0 and "[rank 2] rank 2 of 4" in one.out and "[rank 0]" not in one.out
    missing = cli("runs", "logs", run["id"], "--node", "5")
    assert missing.code == 2 and "nodes: 0, 1" in missing.err, missing
    events = [e["text"] for e in status(cli, cluster)["events"]]
    assert any("scaling up: adding 2 node(s) (0 now" in e for e in events), events
    # Nobody is connected any more; the idle nodes go after 3 s, down to min_nodes (0).
    wait_until(lambda: status(cli, cluster)["nodes"] == [], timeout=60, what="scale-down to 0")
    assert containers(node_image, cluster) == []
    assert any("scaling down" in e["text"] for e in status(cli, cluster)["events"])


def test_an_mpi_hello_across_two_nodes_in_a_managed_environment(
    cluster: str, project: Path, write, cli, shared_wheels: Path
) -> None:
    write(
        project / "hello.py",
        "import os, socket, tinypkg\n"
        "print('hello from rank', os.environ['OMPI_COMM_WORLD_RANK'], 'of',\n"
        "      os.environ['OMPI_COMM_WORLD_SIZE'], 'on', socket.gethostname(), flush=True)\n",
    )
    write(
        project / "mpi.yml",
        f"script: hello.py\ntarget: {cluster}\ncommunicator: OpenMpi\nnode_count: 2\n"
        "mpi:\n  process_count_per_node: 2\n"
        "environment:\n  python:\n    conda_dependencies:\n      dependencies:\n"
        "        - python=3.11\n        - pip:\n          - --no-index\n"
        f"          - --find-links {shared_wheels}\n          - tinypkg==1.0\n",
    )
    result = cli("run", "mpi.yml")
    assert result.code == 0, result
    for rank in range(4):
        host = f"{cluster}-{rank // 2}"
        assert f"[rank {rank}] hello from rank {rank} of 4 on {host}" in result.out, result.out
    run = cli("runs", "list", "-o", "json").json()[0]
    folder = project / ".targets" / "runs" / run["id"]
    # The environment was prepared on both nodes (the run's packages import on each).
    for node in (0, 1):
        assert (folder / "logs" / "nodes" / str(node) / "prepare.log").exists()


def test_a_node_that_disappears_fails_its_run_and_is_replaced(
    cluster: str, node_image: NodeImage, project: Path, write, cli
) -> None:
    run_id, node = start_long_run(cluster, project, write, cli)
    node_image.engine.run("rm", "-f", node)
    wait_for_status(cli, run_id, "Failed", timeout=60, what="the run to fail")
    shown = cli("runs", "show", run_id, "-o", "json").json()
    assert node in shown["message"] and "lost" in shown["message"], shown
    # The cluster replaces the node for the next run.
    write(project / "quick.py", "print('fine again')\n")
    write(project / "quick.yml", f"script: quick.py\ntarget: {cluster}\n" + USER_PYTHON)
    result = cli("run", "quick.yml")
    assert result.code == 0 and "fine again" in result.out, result


def test_a_node_gone_while_idle_does_not_fail_the_next_run(
    node_image: NodeImage, project: Path, write, cli
) -> None:
    """A queued run starts at once on the nodes listed last, without listing them again
    first; when one of them has gone meanwhile, the run goes back to the queue and is
    placed again once the nodes are listed: it does not fail."""
    name = "c" + uuid.uuid4().hex[:8]
    created = cli(
        "create", name, "--type", "cluster", "--provider", "docker", "--image",
        node_image.name, "--max-nodes", "1", "--idle-seconds-before-scaledown", "600",
    )  # fmt: skip
    assert created.code == 0, created
    try:
        write(project / "quick.py", "import socket\nprint('ran on', socket.gethostname())\n")
        write(project / "quick.yml", f"script: quick.py\ntarget: {name}\n" + USER_PYTHON)
        first = cli("run", "quick.yml")
        assert first.code == 0 and "ran on" in first.out, first
        (node,) = [n["id"] for n in status(cli, name)["nodes"]]
        node_image.engine.run("rm", "-f", node)  # behind the cluster's back
        second = cli("run", "quick.yml", timeout=180)
        assert second.code == 0 and "ran on" in second.out, second
        runs = cli("runs", "list", "-o", "json").json()
        assert [r["status"] for r in runs] == ["Completed", "Completed"], runs
    finally:
        cli("delete", name, "--force")
        remove_cluster_containers(node_image.engine, name)


def test_run_based_compute_makes_a_cluster_for_the_run_and_deletes_it_after(
    node_image: NodeImage, project: Path, write, cli
) -> None:
    write(project / "train.py", "import socket\nprint('trained on', socket.gethostname())\n")
    write(
        project / "rb.yml",
        "script: train.py\ntarget: amlcompute\n"
        "amlcompute:\n  vm_size: STANDARD_D2_V2\n  cluster_max_node_count: 1\n" + USER_PYTHON,
    )
    refused = cli("run", "rb.yml")
    assert refused.code == 2 and "targets create amlcompute" in refused.err, refused
    created = cli(
        "create", "amlcompute", "--type", "cluster", "--run-based", "--provider", "docker",
        "--image", node_image.name, "--max-nodes", "2",
    )  # fmt: skip
    assert created.code == 0, created
    try:
        result = cli("run", "rb.yml")
        assert result.code == 0, result
        assert "trained on aml-" in result.out, result.out
        run = cli("runs", "list", "-o", "json").json()[0]
        assert run["status"] == "Completed" and run["target"] == "amlcompute"
        # The run's own cluster goes away with it; the template stays.
        wait_until(
            lambda: (
                [t["name"] for t in cli("list", "-o", "json").json()] == ["local", "amlcompute"]
            ),
            timeout=60,
            what="the run-based cluster to be deleted",
        )
        wait_until(
            lambda: (
                not any(
                    "aml-" in line
                    for line in node_image.engine.run(
                        "ps", "-a", "--format", "{{.Names}}", check=False
                    ).stdout.split()
                )
            ),
            timeout=30,
            what="the run-based cluster's containers to go",
        )
        # What the run produced is still there after its cluster is gone.
        logs = cli("runs", "logs", run["id"])
        assert "trained on aml-" in logs.out, logs
    finally:
        cli("delete", "amlcompute", "--force")


def test_a_parameter_server_run_ends_when_its_workers_do(
    cluster: str, project: Path, write, cli
) -> None:
    write(
        project / "tf.py",
        "import json, os, time\n"
        "task = json.loads(os.environ['TF_CONFIG'])['task']\n"
        "print('task', task['type'], task['index'], flush=True)\n"
        "if task['type'] == 'ps':\n"
        "    time.sleep(600)  # a parameter server serves until it is stopped\n"
        # The parameter server is stopped once the worker ends, which the cluster notices
        # within milliseconds: the worker works a while, so that the server has started.
        "else:\n"
        "    time.sleep(3)\n",
    )
    write(
        project / "tf.yml",
        f"script: tf.py\ntarget: {cluster}\ncommunicator: ParameterServer\n"
        "tensorflow:\n  worker_count: 1\n  parameter_server_count: 1\n" + USER_PYTHON,
    )
    result = cli("run", "tf.yml", timeout=180)
    assert result.code == 0, result
    assert "task worker 0" in result.out and "task ps 0" in result.out, result.out


def test_a_frozen_node_fails_its_run_and_is_removed(
    cluster: str, node_image: NodeImage, project: Path, write, cli
) -> None:
    run_id, node = start_long_run(cluster, project, write, cli)
    node_image.engine.run("pause", node)  # frozen: still there, but nothing runs on it
    try:
        wait_for_status(cli, run_id, "Failed", timeout=120, what="the run to fail")
        message = cli("runs", "show", run_id, "-o", "json").json()["message"]
        assert node in message and "lost" in message and "paused" in message, message
        wait_until(
            lambda: node not in [n["id"] for n in status(cli, cluster)["nodes"]],
            timeout=60,
            what="the frozen node to be removed",
        )
    finally:
        node_image.engine.run("unpause", node, check=False)


def test_a_missing_node_image_is_refused_and_nothing_is_written(
    node_image: NodeImage, project: Path, cli
) -> None:
    result = cli(
        "create", "pool", "--type", "cluster", "--provider", "docker",
        "--image", "targets-no-such-image:1", "--max-nodes", "2",
    )  # fmt: skip
    assert result.code == 2 and "targets never pulls" in result.err, result
    assert not (project / ".targets" / "clusters").exists()
    assert [t["name"] for t in cli("list", "-o", "json").json()] == ["local"]
