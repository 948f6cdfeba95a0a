"""Distributed runs on the local target with the real launchers (torchrun, mpirun), and the
pure planning functions: Azure ML v1 runconfigs, v2 job distributions, the Estimator."""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from targets.clusters.distributed import (
    IDENTITY_FILE,
    Distribution,
    distribution_of,
    plan,
    request_part,
)
from targets.clusters.provider import Node, NodeState
from targets.errors import UsageError
from targets.runconfig.model import RunConfiguration
from targets.runs import Run, submit_run
from targets.workspace import Workspace
from tests.sshd import skip_or_fail

VENV_PYTHON = sys.executable  # the dev venv: it has torch

ALLREDUCE = """
import json, os, pathlib
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
print("rank", rank, "of", world, "sum", int(value.item()), "node", os.environ.get("NODE_RANK"))
if rank == 0:
    pathlib.Path("outputs").mkdir(exist_ok=True)
    pathlib.Path("outputs/result.json").write_text(
        json.dumps({"world_size": world, "sum": int(value.item())})
    )
dist.destroy_process_group()
"""


def user_managed(config: RunConfiguration) -> RunConfiguration:
    config.environment.python.user_managed_dependencies = True
    config.environment.python.interpreter_path = VENV_PYTHON
    return config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def finished(run: Run) -> dict:
    details = run.wait_for_completion(raise_on_error=False)
    return details


def script_lines(log: str) -> list[str]:
    """driver.log lines written by the user's processes (not torchrun's own banner)."""
    return [line for line in log.splitlines() if "rank" in line or "Traceback" in line]


@pytest.fixture
def ws(project: Path) -> Workspace:
    return Workspace(project)


# ----------------------------------------------------------------- real launchers ----


@pytest.mark.slow
def test_single_node_pytorch_two_processes(ws, project, write):
    write(project / "allreduce.py", ALLREDUCE)
    config = user_managed(RunConfiguration(script="allreduce.py", communicator="Gloo"))
    config.pytorch.process_count = 2
    run = submit_run(ws, config, source_dir=project)
    details = finished(run)
    log = (run.folder / "driver.log").read_text()
    assert details["status"] == "Completed", log
    result = json.loads((run.folder / "outputs" / "result.json").read_text())
    assert result == {"world_size": 2, "sum": 3}
    ours = [line for line in log.splitlines() if " of 2 sum " in line]
    assert sorted(ours) == [
        "[rank 0] rank 0 of 2 sum 3 node 0",
        "[rank 1] rank 1 of 2 sum 3 node 0",
    ]
    for line in log.splitlines():
        if "of 2 sum" in line:
            assert re.match(r"\[rank [01]\] ", line)
    for rank in (0, 1):
        own = (run.folder / "logs" / "user_logs" / f"std_log_process_0{rank}.txt").read_text()
        assert f"rank {rank} of 2 sum 3" in own and "[rank" not in own


@pytest.mark.slow
def test_two_node_ranks_on_one_machine_make_world_size_four(ws, project, write):
    write(project / "allreduce.py", ALLREDUCE)
    config = user_managed(
        RunConfiguration(script="allreduce.py", communicator="Gloo", node_count=2)
    )
    config.pytorch.process_count = 4
    dist = distribution_of(config)
    assert dist == Distribution("pytorch", 2, 2, communication_backend="gloo")
    nodes = [
        Node(
            id=f"n{i}",
            state=NodeState.RUNNING,
            address="127.0.0.1",
            hostname=f"node{i}",
            network_interface="lo",
        )
        for i in range(2)
    ]
    parts = plan(config, dist, nodes, master_port=free_port(), ssh_private_key=None)
    assert [p["node_rank"] for p in parts] == [0, 1]
    # The local target runs one machine: a multi-node runconfig is refused there...
    with pytest.raises(UsageError, match="cluster"):
        submit_run(ws, config, source_dir=project)
    assert not ws.ledger.list(limit=None)  # ...before anything is recorded
    # ...so each node's part is submitted as the cluster does: same run, own `distributed`.
    target = ws.get_target("local")
    from targets.compute.base import SubmitRequest
    from targets.environments import resolve_environment
    from targets.snapshot import take_snapshot

    snapshot = take_snapshot(project)
    environment = resolve_environment(config, project)
    handles = []
    for rank, part in enumerate(parts):
        handles.append(
            target.submit(
                SubmitRequest(
                    run_id=f"two-node-{rank}",
                    config=config,
                    snapshot=snapshot,
                    environment=environment,
                    distributed=part,
                ),
                lambda phase, done, total: None,
            )
        )
    import time

    deadline = time.monotonic() + 240
    states = []
    while time.monotonic() < deadline:
        states = [target.status(h) for h in handles]
        if all(s.status.terminal for s in states):
            break
        time.sleep(0.2)
    root = Path(target.root) / "runs"  # type: ignore[attr-defined]
    logs = [(root / f"two-node-{r}" / "driver.log").read_text() for r in range(2)]
    assert [s.status.value for s in states] == ["Completed", "Completed"], logs
    assert (root / "two-node-0" / "ready").exists() and (root / "two-node-1" / "ready").exists()
    result = json.loads((root / "two-node-0" / "wd" / "outputs" / "result.json").read_text())
    assert result == {"world_size": 4, "sum": 10}
    node0 = [line for line in logs[0].splitlines() if " of 4 sum " in line]
    node1 = [line for line in logs[1].splitlines() if " of 4 sum " in line]
    assert sorted(node0) == [f"[rank {r}] rank {r} of 4 sum 10 node 0" for r in (0, 1)]
    assert sorted(node1) == [f"[rank {r}] rank {r} of 4 sum 10 node 1" for r in (2, 3)]
    user_logs = root / "two-node-1" / "wd" / "logs" / "user_logs"
    assert sorted(p.name for p in user_logs.iterdir()) == [
        "std_log_process_02.txt",
        "std_log_process_03.txt",
    ]


@pytest.mark.slow
def test_single_node_mpi_two_processes(ws, project, write):
    if shutil.which("mpirun") is None:
        skip_or_fail(
            "OpenMPI is not installed: `apt-get install openmpi-bin` "
            "(scripts/test-services.sh does)"
        )
    write(
        project / "hello.py",
        """
import os
print("hello", os.environ["OMPI_COMM_WORLD_RANK"], "of", os.environ["OMPI_COMM_WORLD_SIZE"],
      "rank", os.environ["RANK"], "master", os.environ["AZ_BATCH_MASTER_NODE"].split(":")[0])
""",
    )
    config = user_managed(RunConfiguration(script="hello.py", communicator="OpenMpi"))
    config.mpi.process_count_per_node = 2
    run = submit_run(ws, config, source_dir=project)
    details = finished(run)
    log = (run.folder / "driver.log").read_text()
    assert details["status"] == "Completed", log
    ours = sorted(line for line in log.splitlines() if "hello" in line)
    assert ours == [
        "[rank 0] hello 0 of 2 rank 0 master 127.0.0.1",
        "[rank 1] hello 1 of 2 rank 1 master 127.0.0.1",
    ]
    for rank in (0, 1):
        own = run.folder / "logs" / "user_logs" / f"std_log_process_0{rank}.txt"
        assert own.read_text() == f"hello {rank} of 2 rank {rank} master 127.0.0.1\n"


@pytest.mark.slow
def test_a_failing_rank_fails_the_run(ws, project, write):
    write(
        project / "fail.py",
        """
import os, sys
print("rank", os.environ["RANK"], "exits")
sys.exit(3 if os.environ["RANK"] == "1" else 0)
""",
    )
    config = user_managed(RunConfiguration(script="fail.py", communicator="Gloo"))
    config.pytorch.process_count = 2
    run = submit_run(ws, config, source_dir=project)
    details = finished(run)
    assert details["status"] == "Failed"
    assert "[rank 1] rank 1 exits" in (run.folder / "driver.log").read_text()


# ----------------------------------------------------------------- pure planning -----


def test_v1_mappings():
    assert distribution_of(RunConfiguration(script="a.py")) is None
    mpi = RunConfiguration(script="a.py", communicator="OpenMpi", node_count=2)
    mpi.mpi.process_count_per_node = 4
    assert distribution_of(mpi) == Distribution("mpi", 2, 4)
    assert distribution_of(mpi).world_size == 8  # type: ignore[union-attr]
    only_section = RunConfiguration(script="a.py", communicator="IntelMpi")
    only_section.mpi.node_count = 3
    assert distribution_of(only_section) == Distribution("mpi", 3, 1)
    assert distribution_of(RunConfiguration(script="a.py", communicator="OpenMpi")) is None
    torch_total = RunConfiguration(script="a.py", communicator="Nccl", node_count=2)
    torch_total.pytorch.process_count = 8
    assert distribution_of(torch_total) == Distribution("pytorch", 2, 4, "nccl")
    section = RunConfiguration(script="a.py")
    section.pytorch.process_count = 2
    section.pytorch.communication_backend = "gloo"
    assert distribution_of(section) == Distribution("pytorch", 1, 2, "gloo")
    nodes_only = RunConfiguration(script="a.py", communicator="Gloo", node_count=3)
    assert distribution_of(nodes_only) == Distribution("pytorch", 3, 1, "gloo")
    tf = RunConfiguration(script="a.py", communicator="ParameterServer")
    tf.tensorflow.worker_count = 2
    tf.tensorflow.parameter_server_count = 1
    assert distribution_of(tf) == Distribution(
        "tensorflow", 3, 1, worker_count=2, parameter_server_count=1
    )


@pytest.mark.parametrize(
    ("build", "message", "hint"),
    [
        (
            lambda c: setattr(c.pytorch, "process_count", 3),
            "multiple of the node count 2",
            "pytorch.process_count to 2",
        ),
        (
            lambda c: setattr(c.pytorch, "node_count", 3),
            "differs from pytorch.node_count",
            "same number",
        ),
        (
            lambda c: setattr(c.pytorch, "communication_backend", "nccl"),
            "contradicts",
            "communication_backend: gloo",
        ),
    ],
)
def test_v1_contradictions_are_usage_errors(build, message, hint):
    config = RunConfiguration(script="a.py", communicator="Gloo", node_count=2)
    build(config)
    with pytest.raises(UsageError, match=message) as info:
        distribution_of(config)
    assert info.value.exit_code == 2 and hint in (info.value.hint or "")


def test_more_refusals():
    with pytest.raises(UsageError, match="needs a communicator"):
        distribution_of(RunConfiguration(script="a.py", node_count=2))
    loose = RunConfiguration(script="a.py")
    loose.mpi.process_count_per_node = 2
    with pytest.raises(UsageError, match="communicator is None"):
        distribution_of(loose)
    tf = RunConfiguration(script="a.py", communicator="ParameterServer", node_count=5)
    with pytest.raises(UsageError, match="node_count 5 differs"):
        distribution_of(tf)
    spark = RunConfiguration(script="a.py", framework="pyspark", communicator="OpenMpi")
    spark.mpi.process_count_per_node = 2
    with pytest.raises(UsageError, match="pyspark"):
        distribution_of(spark)


def test_multi_node_needs_a_multi_node_target(ws):
    config = RunConfiguration(script="a.py", communicator="OpenMpi", node_count=2)
    with pytest.raises(UsageError, match="runs on one machine") as info:
        request_part(config, ws.get_target("local"))
    assert "cluster" in (info.value.hint or "")
    single = RunConfiguration(script="a.py", communicator="OpenMpi")
    single.mpi.process_count_per_node = 3
    part = request_part(single, ws.get_target("local"))
    assert part is not None
    assert (part["backend"], part["role"], part["world_size"]) == ("mpi", "launcher", 3)
    assert request_part(RunConfiguration(script="a.py"), ws.get_target("local")) is None


def nodes_for(count: int, **extra) -> list[Node]:
    return [
        Node(
            id=f"vm{i}",
            state=NodeState.RUNNING,
            address=f"10.0.0.{i + 4}",
            ssh_port=2200 + i,
            username="azureuser",
            host_keys=(f"ssh-ed25519 KEY{i}",),
            hostname=f"host{i}",
            **extra,
        )
        for i in range(count)
    ]


def test_mpi_plan_has_launcher_standby_and_a_verified_ssh_config():
    config = RunConfiguration(script="a.py", communicator="OpenMpi", node_count=2)
    config.mpi.process_count_per_node = 2
    dist = distribution_of(config)
    assert dist is not None
    parts = plan(config, dist, nodes_for(2), master_port=6105, ssh_private_key="PRIVATE")
    assert [p["role"] for p in parts] == ["launcher", "standby"]
    first = parts[0]
    assert first["master_addr"] == "10.0.0.4" and first["master_port"] == 6105
    assert first["world_size"] == 4 and first["process_count_per_node"] == 2
    assert first["peers"][1] == {
        "hostname": "host1",
        "peer_address": "10.0.0.5",
        "ssh_port": 2201,
        "username": "azureuser",
    }
    ssh = first["ssh"]
    assert ssh["private_key"] == "PRIVATE"
    assert (
        ssh["known_hosts"] == "[10.0.0.4]:2200 ssh-ed25519 KEY0\n[10.0.0.5]:2201 ssh-ed25519 KEY1\n"
    )
    assert "Host host1\n    HostName 10.0.0.5\n    Port 2201\n    User azureuser\n" in ssh["config"]
    assert f"IdentityFile {IDENTITY_FILE}" in ssh["config"]
    assert "StrictHostKeyChecking yes" in ssh["config"]
    assert "ssh" not in parts[1]
    json.dumps(parts)  # JSON-able
    with pytest.raises(UsageError, match="SSH key"):
        plan(config, dist, nodes_for(2), master_port=6105, ssh_private_key=None)
    with pytest.raises(UsageError, match="needs 2 nodes"):
        plan(config, dist, nodes_for(3), master_port=6105, ssh_private_key="K")


def test_tensorflow_plan_gives_each_node_its_tf_config():
    config = RunConfiguration(script="a.py", communicator="ParameterServer")
    config.tensorflow.worker_count = 2
    config.tensorflow.parameter_server_count = 1
    dist = distribution_of(config)
    assert dist is not None
    parts = plan(
        config, dist, nodes_for(3, network_interface="lo"), master_port=7000, ssh_private_key=None
    )
    assert [p["role"] for p in parts] == ["worker", "worker", "ps"]
    configs = [json.loads(p["tf_config"]) for p in parts]
    cluster = {"worker": ["10.0.0.4:7000", "10.0.0.5:7001"], "ps": ["10.0.0.6:7002"]}
    assert configs[0] == {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    assert configs[1]["task"] == {"type": "worker", "index": 1}
    assert configs[2]["task"] == {"type": "ps", "index": 0}
    assert parts[2]["network_interface"] == "lo"


def test_v2_job_distributions_map_onto_the_runconfig(ws, project, write):
    from targets.jobs.execute import _distribution
    from targets.jobs.model import (
        MpiDistribution,
        PyTorchDistribution,
        RayDistribution,
        TensorFlowDistribution,
    )

    def mapped(distribution, instances: int) -> RunConfiguration:
        config = RunConfiguration(command="echo hi", node_count=instances)
        _distribution(config, distribution)
        return config

    torch2 = mapped(PyTorchDistribution(type="pytorch", process_count_per_instance=2), 2)
    assert distribution_of(torch2) == Distribution("pytorch", 2, 2, "nccl")
    mpi = mapped(MpiDistribution(type="mpi", process_count_per_instance=3), 1)
    assert distribution_of(mpi) == Distribution("mpi", 1, 3)
    tf = mapped(
        TensorFlowDistribution(type="tensorflow", worker_count=2, parameter_server_count=1), 3
    )
    assert distribution_of(tf) == Distribution(
        "tensorflow", 3, 1, worker_count=2, parameter_server_count=1
    )
    assert distribution_of(mapped(None, 1)) is None
    with pytest.raises(UsageError, match="without a distribution"):
        mapped(None, 2)
    with pytest.raises(UsageError, match="ray"):
        mapped(RayDistribution(type="ray"), 1)
    with pytest.raises(UsageError, match="instance_count 4"):
        mapped(
            TensorFlowDistribution(type="tensorflow", worker_count=2, parameter_server_count=1), 4
        )


@pytest.mark.slow
def test_v2_pytorch_job_runs_two_processes(project, cli, write, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # image set aside
    write(project / "src" / "allreduce.py", ALLREDUCE)
    # The image is set aside: torch comes from the job's own conda file (a job never
    # borrows targets' virtualenv), and the launcher runs with that environment's Python.
    write(
        project / "conda.yml",
        "dependencies:\n  - python=3.11\n  - pip:\n    - torch==2.13.0\n    - numpy\n",
    )
    write(
        project / "job.yml",
        textwrap.dedent(
            """
            $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
            command: python allreduce.py
            code: src
            environment:
              image: python:3.11
              conda_file: conda.yml
            compute: local
            distribution:
              type: pytorch
              process_count_per_instance: 2
            """
        ),
    )
    result = cli("job", "create", "--file", "job.yml", "--stream")
    assert result.code == 0, result
    assert "[rank 1] rank 1 of 2 sum 3" in result.out


# ----------------------------------------------------------------- Estimator ---------


def test_estimator_makes_a_runconfig(tmp_path):
    from targets import Estimator
    from targets.estimator import Mpi, PyTorch, TensorFlow

    est = Estimator(
        source_directory=tmp_path,
        compute_target="cpu-cluster",
        entry_script="train.py",
        script_params={"--epochs": 3, "--lr": 0.1, "--verbose": ""},
        node_count=2,
        process_count_per_node=4,
        distributed_backend="mpi",
        conda_packages=["numpy"],
        pip_packages=["torch==2.13.0"],
        custom_docker_base_image="python:3.11-slim",
        environment_variables={"A": "1"},
    )
    rc = est.run_config
    assert rc.script == "train.py" and rc.target == "cpu-cluster"
    assert rc.arguments == ["--epochs", "3", "--lr", "0.1", "--verbose"]
    assert distribution_of(rc) == Distribution("mpi", 2, 4)
    assert rc.environment.docker.enabled and rc.environment.docker.base_image == "python:3.11-slim"
    deps = rc.environment.python.conda_dependencies
    assert deps is not None
    dumped = json.dumps(deps.model_dump(mode="json"))
    assert "numpy" in dumped and "torch==2.13.0" in dumped
    assert rc.environment_variables == {"A": "1"}

    nccl = PyTorch(
        tmp_path,
        entry_script="train.py",
        node_count=2,
        process_count_per_node=2,
        distributed_backend="nccl",
        compute_target="c",
    )
    assert distribution_of(nccl.run_config) == Distribution("pytorch", 2, 2, "nccl")
    ps = TensorFlow(tmp_path, entry_script="t.py", worker_count=2, parameter_server_count=1)
    assert distribution_of(ps.run_config) == Distribution(
        "tensorflow", 3, 1, worker_count=2, parameter_server_count=1
    )
    mpi = Mpi(tmp_path, entry_script="t.py", process_count_per_node=2)
    assert distribution_of(mpi.run_config) == Distribution("mpi", 1, 2)
    with pytest.raises(UsageError, match="distributed_backend"):
        Estimator(tmp_path, entry_script="t.py", distributed_backend="horovod")
    with pytest.raises(UsageError, match="distributed_backend"):
        Estimator(tmp_path, entry_script="t.py", node_count=2)


@pytest.mark.slow
def test_estimator_submits_through_experiment(ws, project, write):
    from targets import Estimator, Experiment

    write(project / "allreduce.py", ALLREDUCE)
    est = Estimator(
        source_directory=project,
        compute_target="local",
        entry_script="allreduce.py",
        process_count_per_node=2,
        distributed_backend="gloo",
        user_managed=True,
        interpreter_path=VENV_PYTHON,
    )
    run = Experiment(ws, "est").submit(est)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", (run.folder / "driver.log").read_text()
    assert json.loads((run.folder / "outputs" / "result.json").read_text())["world_size"] == 2
