"""The az ml job family (issue 16, part 9) and the valid files refused before: `targets
job create/validate/show/stream/download/cancel/list/archive/restore` with az ml's option
names; a `--set` typo of a declared input is refused with the nearest name; `communicator:
Mpi` in a v1 run configuration; `$schema` in an environment referenced with `file:`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import REPO, wait_for_status

BASICS = REPO / "tests" / "data" / "azureml-corpus" / "v2" / "azureml-examples" / "cli" / "jobs"
BASICS = BASICS / "basics"

OUTPUT_JOB = """\
command: echo "model of ${{inputs.alpha}}" > ${{outputs.model}}/model.txt
environment: {image: library/python:latest}
inputs:
  alpha: 0.5
outputs:
  model:
    type: uri_folder
"""


@pytest.fixture
def ws(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # images set aside
    return project


def _runs(project: Path) -> int:
    return Workspace(project).ledger.count()


def test_set_with_a_typo_of_a_declared_input_is_refused_with_the_nearest_name(
    ws: Path, cli
) -> None:
    job = shutil.copy(BASICS / "hello-world-input.yml", ws / "job.yml")
    for command in ("run", "job create -f"):
        result = cli(*command.split(), str(job), "--set", "inputs.hello_numbr=7")
        assert result.code == 2, result
        assert "no input named 'hello_numbr' is declared (did you mean 'hello_number'?)" in (
            result.err
        )
        assert "declared inputs: hello_string, hello_number" in result.err
    assert _runs(ws) == 0
    ok = cli("job", "create", "-f", str(job), "--set", "inputs.hello_number=7", "--stream")
    assert ok.code == 0, ok
    assert "7" in ok.out.split()


def test_job_create_show_list_archive_restore(ws: Path, cli, write) -> None:
    job = write(ws / "train.yml", OUTPUT_JOB)
    created = cli(
        "job",
        "create",
        "--file",
        str(job),
        "--name",
        "first-job",
        "--experiment-name",
        "exp1",
        "--display-name",
        "First job",
        "--stream",
    )
    assert created.code == 0, created
    shown = cli("job", "show", "-n", "first-job", "-o", "json").json()
    assert shown["experiment"] == "exp1" and shown["display_name"] == "First job"
    assert shown["status"] == "Completed"

    listed = cli("job", "list")
    assert "first-job" in listed.out and "First job" in listed.out
    assert cli("job", "archive", "-n", "first-job").code == 0
    assert "first-job" not in cli("job", "list").out
    assert cli("runs", "list").out.count("first-job") == 1  # still a run
    archived = cli("job", "list", "--archived-only", "-o", "json").json()
    assert [r["id"] for r in archived] == ["first-job"] and archived[0]["archived"]
    assert "first-job" in cli("job", "list", "--include-archived").out
    assert cli("job", "restore", "-n", "first-job").code == 0
    assert "first-job" in cli("job", "list").out
    again = cli("job", "restore", "-n", "first-job")
    assert again.code == 2 and "is not archived" in again.err


def test_job_stream_download_and_named_outputs(ws: Path, cli, write) -> None:
    job = write(ws / "train.yml", OUTPUT_JOB)
    assert cli("job", "create", "-f", str(job), "-n", "out-job").code == 0
    streamed = cli("job", "stream", "-n", "out-job", timeout=180)
    assert streamed.code == 0, streamed

    named = cli("job", "download", "-n", "out-job", "--output-name", "model", "-p", "dl")
    assert named.code == 0, named
    assert (ws / "dl" / "named-outputs" / "model" / "model.txt").read_text() == ("model of 0.5\n")
    everything = cli("job", "download", "-n", "out-job", "--download-path", "all", "--all")
    assert everything.code == 0, everything
    assert (ws / "all" / "artifacts" / "outputs" / "model" / "model.txt").is_file()
    assert (ws / "all" / "named-outputs" / "model" / "model.txt").is_file()

    typo = cli("job", "download", "-n", "out-job", "--output-name", "modle", "-p", "x")
    assert typo.code == 2
    assert "no named output 'modle' (did you mean 'model'?)" in typo.err
    assert not (ws / "x").exists()


def test_job_cancel_and_archive_of_a_running_job(ws: Path, cli, write) -> None:
    job = write(ws / "sleep.yml", "command: sleep 60\nenvironment: {image: python:3.12}\n")
    assert cli("job", "create", "-f", str(job), "-n", "sleepy").code == 0
    wait_for_status(cli, "sleepy", "Running", timeout=60, what="the job to start")
    busy = cli("job", "archive", "-n", "sleepy")
    assert busy.code == 2 and "only a job that has ended can be archived" in busy.err
    cancelled = cli("job", "cancel", "-n", "sleepy")
    assert cancelled.code == 0, cancelled
    assert "Canceled" in cancelled.err


def test_job_validate_checks_without_running(ws: Path, cli, write) -> None:
    job = shutil.copy(BASICS / "hello-world-input.yml", ws / "job.yml")
    ok = cli("job", "validate", "-f", str(job))
    assert ok.code == 0, ok
    assert "valid command job; compute: job -> local" in ok.err
    typo = cli("job", "validate", "-f", str(job), "--set", "inputs.hello_strng=x")
    assert typo.code == 2 and "did you mean 'hello_string'" in typo.err
    bad = write(ws / "bad.yml", "command: echo\nenviroment: {image: python:3.12}\n")
    refused = cli("job", "validate", "-f", str(bad))
    assert refused.code == 2 and "did you mean 'environment'" in refused.err
    assert _runs(ws) == 0


def test_runconfig_validate_recognises_a_v2_job_and_names_job_validate(ws: Path, cli) -> None:
    job = shutil.copy(BASICS / "hello-world-input.yml", ws / "job.yml")
    result = cli("runconfig", "validate", str(job))
    assert result.code == 2, result
    assert "is an Azure ML v2 job file" in result.err
    assert f"targets job validate -f {job}" in result.err


def test_workspace_name_option_is_the_project_folder(ws: Path, cli, write, tmp_path) -> None:
    job = write(ws / "train.yml", OUTPUT_JOB)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    created = cli(
        "job",
        "create",
        "-f",
        str(job),
        "-n",
        "ws-job",
        "-w",
        str(ws),
        "-g",
        "rg",
        "--stream",
        cwd=elsewhere,
    )
    assert created.code == 0, created
    assert "--resource-group rg is ignored" in created.err
    assert "ws-job" in cli("job", "list", "-w", str(ws), cwd=elsewhere).out
    missing = cli("job", "list", "-w", "my-aml-workspace", cwd=elsewhere)
    assert missing.code == 2 and "not an Azure ML workspace name" in missing.err


def test_v1_runconfig_with_communicator_mpi_runs_under_mpirun(project: Path, cli, write) -> None:
    write(project / "train.py", "import os\nprint('rank', os.environ['OMPI_COMM_WORLD_RANK'])\n")
    config = write(
        project / ".azureml" / "mpi.runconfig",
        "script: train.py\ntarget: local\nframework: Python\ncommunicator: Mpi\n"
        "nodeCount: 1\nmpi:\n  processCountPerNode: 2\nenvironment:\n  python:\n"
        "    userManagedDependencies: true\n",
    )
    result = cli("run", str(config), timeout=300)
    assert result.code == 0, result
    assert "rank 0" in result.out and "rank 1" in result.out


def test_schema_in_an_environment_file_reference_is_ignored(ws: Path, cli, write) -> None:
    write(
        ws / "env.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
        "image: library/python:latest\n",
    )
    job = write(ws / "job.yml", "command: echo from-file-env\nenvironment: file:env.yml\n")
    result = cli("run", str(job))
    assert result.code == 0, result
    assert "from-file-env" in result.out
