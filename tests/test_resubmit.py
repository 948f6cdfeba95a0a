"""`targets runs submit-again RUN` (targets.resubmit): the same work as a new run. A plain
run is its recorded run configuration submitted again from its source folder; a run of a
v2 job file is the job file submitted again; child runs, v1 Python API parents and runs
whose source folder is gone are refused with a message and a hint (exit 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from targets.testing.fixtures import CLIResult

CLI = Callable[..., CLIResult]
IMAGE_SET_ASIDE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
"""v2 jobs name an image; with no Docker engine it is set aside and they run here."""


def run_json(project: Path, run_id: str) -> dict[str, Any]:
    data = json.loads((project / ".targets" / "runs" / run_id / "run.json").read_text())
    assert isinstance(data, dict)
    return data


def show(cli: CLI, run_id: str) -> dict[str, Any]:
    result = cli("runs", "show", run_id, "-o", "json")
    assert result.code == 0, result
    data = result.json()
    assert isinstance(data, dict)
    return data


def follow(cli: CLI, run_id: str) -> CLIResult:
    """`targets runs logs RUN -f`: the run's output, to its end."""
    return cli("runs", "logs", run_id, "-f", timeout=180)


def test_a_run_is_submitted_again_with_its_configuration_source_and_names(
    project: Path, cli: CLI
) -> None:
    (project / "train.py").write_text(
        "import sys\nprint('args', *sys.argv[1:])\n"
        "import os\nos.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/a.txt', 'w').write('made')\n"
    )
    first = cli("run", "train.py", "-e", "exp1", "--name", "first try", "--", "--lr", "0.5")
    assert first.code == 0, first
    old = cli("runs", "list", "-o", "json").json()[0]["id"]

    again = cli("runs", "submit-again", old)
    assert again.code == 0, again
    new = again.out.strip()
    assert new and new != old
    assert f"targets runs logs {new} --follow" in again.err
    followed = follow(cli, new)
    assert followed.code == 0, followed
    assert "args --lr 0.5" in followed.out

    details = show(cli, new)
    assert details["status"] == "Completed"
    assert details["experiment"] == "exp1"
    assert details["display_name"] == "first try"
    assert details["origin"] == {"resubmitted_from": old}
    assert details["runconfig"] == show(cli, old)["runconfig"]
    assert "outputs/a.txt" in details["files"]
    assert run_json(project, new)["source_directory"] == str(project)


def test_a_unique_prefix_names_the_run_and_json_output_gives_the_new_record(
    project: Path, cli: CLI
) -> None:
    assert cli("run", "-c", "echo hi").code == 0
    old = cli("runs", "list", "-o", "json").json()[0]["id"]
    result = cli("runs", "submit-again", old[:-2], "-o", "json")
    assert result.code == 0, result
    record = result.json()
    assert isinstance(record, dict)
    assert record["id"] != old
    assert record["entry"] == "echo hi"
    assert follow(cli, record["id"]).out.strip() == "hi"


def test_a_v2_command_job_is_submitted_again_from_its_job_file(project: Path, cli: CLI) -> None:
    job = project / "hello.yml"
    job.write_text(
        "command: echo hello ${{inputs.who}}\n"
        "environment: {image: library/python:latest}\n"
        "inputs:\n  who: world\n"
    )
    first = cli("run", str(job), env=IMAGE_SET_ASIDE)
    assert first.code == 0, first
    old = cli("runs", "list", "-o", "json").json()[0]["id"]
    # The file is read as it is now: submitting again takes its changes.
    job.write_text(job.read_text().replace("who: world", "who: again"))

    again = cli("runs", "submit-again", old, env=IMAGE_SET_ASIDE)
    assert again.code == 0, again
    new = again.out.strip()
    assert follow(cli, new).out.strip().splitlines()[-1] == "hello again"
    assert run_json(project, new)["origin"]["job"] == str(job)


def test_a_pipeline_is_submitted_again_and_its_steps_cannot_be_alone(
    project: Path, cli: CLI
) -> None:
    job = project / "pipe.yml"
    job.write_text(
        "type: pipeline\njobs:\n  a:\n    type: command\n    command: echo step-a\n"
        "    environment: {image: library/python:latest}\n"
    )
    first = cli("run", str(job), timeout=180, env=IMAGE_SET_ASIDE)
    assert first.code == 0, first
    listed = cli("runs", "list", "--all", "-o", "json").json()
    parent = next(r["id"] for r in listed if r["kind"] == "pipeline")
    step = next(r["id"] for r in listed if r["parent_id"] == parent)

    refused = cli("runs", "submit-again", step)
    assert refused.code == 2, refused
    assert f"run {step} is a child of {parent}" in refused.err
    assert f"hint: submit the parent again: targets runs submit-again {parent}" in refused.err
    assert "Traceback" not in refused.err

    again = cli("runs", "submit-again", parent, env=IMAGE_SET_ASIDE)
    assert again.code == 0, again
    new = again.out.strip()
    followed = follow(cli, new)
    assert followed.code == 0, followed
    assert "step-a" in followed.out
    children = cli("runs", "list", "--parent", new, "-o", "json").json()
    assert [c["status"] for c in children] == ["Completed"]


def test_a_run_whose_source_folder_is_gone_is_refused(project: Path, cli: CLI) -> None:
    src = project / "src"
    src.mkdir()
    (src / "job.py").write_text("print('ok')\n")
    assert cli("run", "src/job.py", "--source-dir", "src").code == 0
    old = cli("runs", "list", "-o", "json").json()[0]["id"]
    shutil.rmtree(src)
    refused = cli("runs", "submit-again", old)
    assert refused.code == 2, refused
    assert f"its source folder {src} is gone" in refused.err
    assert "hint: restore the folder" in refused.err
    assert len(cli("runs", "list", "-o", "json").json()) == 1  # nothing was submitted


def test_an_unknown_run_is_refused(project: Path, cli: CLI) -> None:
    refused = cli("runs", "submit-again", "nope")
    assert refused.code == 2, refused
    assert "no run 'nope'" in refused.err


V1_PIPELINE = textwrap.dedent(
    """
    import json, pathlib
    from targets.azureml.core import Workspace, Experiment
    from targets.azureml.pipeline.core import Pipeline
    from targets.azureml.pipeline.steps import PythonScriptStep
    from targets.runconfig.model import RunConfiguration

    pathlib.Path(".azureml").mkdir(exist_ok=True)
    pathlib.Path(".azureml/config.json").write_text(json.dumps(
        {"subscription_id": "0", "resource_group": "rg", "workspace_name": "ws"}))
    ws = Workspace.from_config()
    rc = RunConfiguration()
    rc.environment.python.user_managed_dependencies = True
    step = PythonScriptStep("step.py", name="one", source_directory="src", runconfig=rc)
    run = Experiment(ws, "v1").submit(Pipeline(ws, [step]))
    run.wait_for_completion()
    print(run.id)
    """
)


def test_a_v1_python_api_pipeline_is_refused_with_advice(project: Path, cli: CLI) -> None:
    (project / "src").mkdir()
    (project / "src" / "step.py").write_text("print('step')\n")
    (project / "submit.py").write_text(V1_PIPELINE)
    made = subprocess.run(
        [sys.executable, "submit.py"], cwd=project, capture_output=True, text=True, timeout=180
    )
    assert made.returncode == 0, made.stderr
    parent = made.stdout.strip().splitlines()[-1]
    refused = cli("runs", "submit-again", parent)
    assert refused.code == 2, refused
    assert "was started by the Azure ML v1 Python API" in refused.err
    assert "hint: run the Python program that submitted it again" in refused.err


@pytest.mark.parametrize("damage", ["missing", "not json"])
def test_a_run_without_its_record_is_refused(project: Path, cli: CLI, damage: str) -> None:
    assert cli("run", "-c", "echo hi").code == 0
    old = cli("runs", "list", "-o", "json").json()[0]["id"]
    manifest = project / ".targets" / "runs" / old / "run.json"
    if damage == "missing":
        manifest.unlink()
    else:
        manifest.write_text("{not json")
    refused = cli("runs", "submit-again", old)
    assert refused.code == 2, refused
    assert "is missing or damaged" in refused.err
