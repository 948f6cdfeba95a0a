"""Compute names in real job files (issue 16, part 8): `targets compute map` makes a real
pipeline that says `compute: azureml:cpu-cluster` (or `serverless`, `gpu-cluster`) run
on the user's targets without editing the file; an unmapped name stops before anything is
queued; several instances on a one-machine target run there as several processes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import REPO

REAL = REPO / "tests" / "data" / "jobs-real" / "jobcli"
EXAMPLES = REAL / "azureml-examples" / "cli" / "jobs"
ENV = "name: {name}\nversion: '1'\nimage: library/python:latest\n"


@pytest.fixture
def ws(project: Path, cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace where the registry environments the files name are registered (their
    images set aside: no Docker for these runs) and `box` is a second local target."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for name in ("sklearn-1.5", "acpt-pytorch-2.8-cuda12.6"):
        (project / f"{name}.yml").write_text(ENV.format(name=name))
        assert cli("envs", "create", "--file", f"{name}.yml").code == 0
    assert cli("attach", "box", "--type", "local").code == 0
    return project


def _copy(project: Path, rel: str) -> Path:
    dest = project / "jobs" / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLES / rel, dest)
    return dest


def _runs(project: Path) -> int:
    return Workspace(project).ledger.count()


def _children(cli, parent_kind: str = "pipeline") -> list[dict]:
    runs = cli("runs", "list", "--all", "-o", "json").json()
    parent = next(r for r in runs if r["kind"] == parent_kind)
    return [r for r in runs if r.get("parent_id") == parent["id"]]


@pytest.mark.parametrize(
    ("rel", "name"),
    [
        ("basics/hello-pipeline-abc.yml", "cpu-cluster"),
        ("basics/hello-pipeline-io-serverless.yml", "serverless"),
        ("basics/hello-pipeline-settings-serverless.yml", "serverless"),
    ],
)
def test_real_pipeline_stops_unmapped_then_runs_after_one_mapping(
    ws: Path, cli, rel: str, name: str
) -> None:
    job = _copy(ws, rel)
    before = job.read_bytes()
    refused = cli("run", str(job))
    assert refused.code == 2, refused
    assert f"compute 'azureml:{name}' is not a target of this workspace" in refused.err
    assert f"targets compute map {name}=TARGET" in refused.err
    assert _runs(ws) == 0  # nothing queued

    mapped = cli("compute", "map", f"{name}=box")
    assert mapped.code == 0, mapped
    result = cli("run", str(job), timeout=300)
    assert result.code == 0, result
    assert "Completed" in result.err
    steps = _children(cli)
    assert steps and {s["target"] for s in steps} == {"box"}
    assert job.read_bytes() == before  # the file was not edited


def test_real_nyc_taxi_pipeline_runs_its_five_steps_on_the_mapped_target(ws: Path, cli) -> None:
    job = _copy(ws, "pipelines/nyc-taxi/pipeline.yml")
    shutil.copytree(REAL / "fixture" / "nyc-taxi", job.parent, dirs_exist_ok=True)
    assert cli("compute", "map", "azureml:cpu-cluster=box").code == 0

    result = cli("job", "create", "-f", str(job), "--stream", timeout=600)
    assert result.code == 0, result
    steps = {s["display_name"]: s for s in _children(cli)}
    assert set(steps) == {"prep_job", "transform_job", "train_job", "predict_job", "score_job"}
    assert {s["target"] for s in steps.values()} == {"box"}
    assert all(s["status"] == "Completed" for s in steps.values())
    score = ws / ".targets" / "runs" / steps["score_job"]["id"]
    report = (score / "outputs" / "score_report" / "score.txt").read_text()
    assert report.startswith("mae ")
    assert "prep: 10 rows" in result.out  # the steps' output, relayed by the pipeline


def test_target_option_maps_every_step_of_a_pipeline(ws: Path, cli) -> None:
    job = _copy(ws, "basics/hello-pipeline-abc.yml")
    result = cli("run", str(job), "--target", "box", timeout=300)
    assert result.code == 0, result
    steps = _children(cli)
    assert len(steps) == 3 and {s["target"] for s in steps} == {"box"}


def test_compute_map_lists_unsets_and_refuses_unattached_targets(ws: Path, cli) -> None:
    assert cli("compute", "map").out == ""  # nothing mapped yet
    assert "no compute names mapped" in cli("compute", "map").err

    bad = cli("compute", "map", "cpu-cluster=nowhere")
    assert bad.code == 2
    assert "no target 'nowhere' is attached" in bad.err
    assert not (ws / ".targets" / "compute-map.yml").exists()  # nothing written
    assert cli("compute", "map", "cpu-cluster").code == 2  # not NAME=TARGET

    assert cli("compute", "map", "cpu-cluster=box", "serverless=local").code == 0
    listed = cli("compute", "map")
    assert "azureml:cpu-cluster" in listed.out and "box" in listed.out
    assert cli("compute", "map", "-o", "json").json() == {
        "cpu-cluster": "box",
        "serverless": "local",
    }
    assert cli("compute", "map", "--unset", "serverless").code == 0
    assert cli("compute", "map", "-o", "json").json() == {"cpu-cluster": "box"}
    missing = cli("compute", "map", "--unset", "gpu-cluster")
    assert missing.code == 2 and "not mapped: gpu-cluster" in missing.err


def test_a_mapping_to_a_detached_target_stops_before_anything_is_queued(ws: Path, cli) -> None:
    job = _copy(ws, "basics/hello-pipeline-abc.yml")
    assert cli("compute", "map", "cpu-cluster=box").code == 0
    assert cli("detach", "box").code == 0
    result = cli("run", str(job))
    assert result.code == 2, result
    assert "mapped to the target 'box', which is not attached" in result.err
    assert _runs(ws) == 0


def test_real_cifar10_pipeline_validates_after_mapping_gpu_cluster(ws: Path, cli) -> None:
    job = _copy(ws, "pipelines/cifar-10/pipeline.yml")
    (job.parent / "src" / "train-model").mkdir(parents=True)
    (job.parent / "src" / "eval-model").mkdir(parents=True)
    refused = cli("job", "validate", "-f", str(job))
    assert refused.code == 2
    assert "targets compute map gpu-cluster=TARGET" in refused.err

    assert cli("compute", "map", "gpu-cluster=local").code == 0
    result = cli("job", "validate", "-f", str(job), "-o", "json")
    assert result.code == 0, result
    assert result.json()["computes"] == {
        "get_data": "local",
        "train_model": "local",
        "eval_model": "local",
    }
    assert _runs(ws) == 0  # validating queues nothing


# ------------------------------------------------------------------ one machine -------

MPI_JOB = """\
command: echo rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE
environment: {{image: library/python:latest}}
compute: azureml:cpu-cluster
resources:
  instance_count: {instances}
{distribution}"""


def test_mpi_instances_run_as_processes_on_a_one_machine_target(ws: Path, cli, write) -> None:
    job = write(
        ws / "mpi.yml",
        MPI_JOB.format(
            instances=2, distribution="distribution: {type: mpi, process_count_per_instance: 1}"
        ),
    )
    assert cli("compute", "map", "cpu-cluster=local").code == 0
    result = cli("run", str(job), timeout=300)
    assert result.code == 0, result
    assert "its 2 processes run there" in result.err
    assert "rank 0 of 2" in result.out and "rank 1 of 2" in result.out


def test_instances_without_distribution_run_once_with_a_warning(ws: Path, cli, write) -> None:
    job = write(ws / "plain.yml", MPI_JOB.format(instances=3, distribution=""))
    assert cli("compute", "map", "cpu-cluster=local").code == 0
    result = cli("run", str(job), timeout=300)
    assert result.code == 0, result
    assert "so the command runs once" in result.err


def test_tensorflow_parameter_servers_on_one_machine_are_refused_before_queueing(
    ws: Path, cli, write
) -> None:
    job = write(
        ws / "tf.yml",
        MPI_JOB.format(
            instances=3,
            distribution="distribution: {type: tensorflow, worker_count: 2, "
            "parameter_server_count: 1}",
        ),
    )
    assert cli("compute", "map", "cpu-cluster=local").code == 0
    result = cli("run", str(job))
    assert result.code == 2, result
    assert "needs 3 machines, one per task" in result.err
    assert _runs(ws) == 0


def test_pytorch_instances_become_processes_of_one_node_on_a_one_machine_target() -> None:
    from targets.distributed import Distribution, distribution_of
    from targets.jobs.execute import _distribution
    from targets.jobs.model import PyTorchDistribution
    from targets.runconfig.model import RunConfiguration

    config = RunConfiguration(command="python train.py", node_count=2)
    warnings = _distribution(
        config,
        PyTorchDistribution(type="pytorch", process_count_per_instance=1),
        one_machine=True,
    )
    assert distribution_of(config) == Distribution("pytorch", 1, 2, "nccl")
    assert "its 2 processes run there" in warnings[0]
