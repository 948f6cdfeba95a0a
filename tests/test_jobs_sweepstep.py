"""Sweep steps inside pipelines, and registered pipeline components.

A sweep step is a child run of the pipeline that is itself a sweep parent: its trials are
its children, and a later step reads the best trial's outputs. The real azureml-examples
pipeline (tests/data/jobs-real/components, see its SOURCES.md) runs to completion on the
local target with local data; canceling a pipeline (or Ctrl-C on the client) leaves no
step or trial without an end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import REPO, pid_alive, wait_until
from tests.test_environments import make_wheel

REAL = REPO / "tests" / "data" / "jobs-real" / "components" / "azureml-examples" / "cli"
EXAMPLES = REAL / "jobs" / "pipelines-with-components"
SWEEP_EXAMPLE = EXAMPLES / "pipeline_with_hyperparameter_sweep"
ENV = "name: sklearn-1.5\nversion: '1'\nimage: library/python:latest\n"
TERMINAL = {"Completed", "Failed", "Canceled"}

pytestmark = pytest.mark.xdist_group("jobs-sweepstep")


@pytest.fixture
def offline_pip(tmp_path: Path) -> dict[str, str]:
    """The example's trials run ``pip install 'mlflow<2.19'`` first. Offline, pip finds a
    small stand-in wheel of ours in a local folder (our train.py logs with the run
    library, not MLflow), beside the pip wheel Python bundles (the job's isolated
    environment installs pip): the environment variables that tell pip and uv so."""
    import ensurepip

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "mlflow", "2.18.0")
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    for wheel in bundled.glob("pip-*.whl"):
        shutil.copy(wheel, wheels / wheel.name)
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


@pytest.fixture
def jobs(project: Path, cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples in a workspace where the environment they name is registered and
    their compute is a local target (no Docker: images are set aside, never pulled)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.delenv("TARGETS_REGISTRY_PATH", raising=False)
    root = project / "jobs"
    shutil.copytree(EXAMPLES, root)
    (project / "env.yml").write_text(ENV)
    assert cli("envs", "create", "--file", "env.yml").code == 0
    assert cli("attach", "cpu-cluster", "--type", "local").code == 0
    return root


def records(project: Path) -> list:
    return Workspace(project).ledger.list(limit=None)


def descendants(project: Path, root: str) -> list:
    """Every run under ``root`` (steps, sweep steps, their trials)."""
    every = records(project)
    found, frontier = [], {root}
    while frontier:
        children = [r for r in every if r.parent_id in frontier]
        found.extend(children)
        frontier = {r.id for r in children}
    return found


def local_data(jobs: Path) -> str:
    """The --set that replaces the example's wasbs:// input with the local copy."""
    data = jobs / "pipeline_with_hyperparameter_sweep" / "data" / "iris.csv"
    return f"jobs.sweep_step.inputs.data.path={data}"


# ------------------------------------------------------------------ the real file -----


def test_real_sweep_pipeline_runs_and_predict_reads_the_best_trial(
    jobs: Path, cli, project: Path, offline_pip: dict[str, str]
):
    job = jobs / "pipeline_with_hyperparameter_sweep" / "pipeline.yml"
    result = cli("run", str(job), "--set", local_data(jobs), env=offline_pip, timeout=600)
    assert result.code == 0, result
    pipeline = next(r for r in records(project) if r.kind == "pipeline")
    steps = {r.display_name: r for r in records(project) if r.parent_id == pipeline.id}
    assert set(steps) == {"sweep_step", "predict_step"}
    sweep = steps["sweep_step"]
    assert sweep.kind == "sweep" and sweep.status == "Completed"
    trials = [r for r in records(project) if r.parent_id == sweep.id]
    assert len(trials) == 5 and {t.status for t in trials} == {"Completed"}
    # The objective is minimized: the best trial is the one with the lowest score, and
    # the predict step was given that trial's model folder (and its test data).
    scores = {}
    for trial in trials:
        model = Workspace(project).run_dir(trial.id) / "outputs" / "model_output" / "MLmodel"
        scores[trial.id] = float(model.read_text().split("score: ")[1])
    best = min(scores, key=lambda t: scores[t])
    recorded = json.loads((Workspace(project).run_dir(sweep.id) / "best_trial.json").read_text())
    assert recorded["run_id"] == best
    assert f"[predict_step] model score: {scores[best]} rows: 3" in result.out
    predictions = (
        Workspace(project).run_dir(steps["predict_step"].id)
        / "outputs"
        / "predict_result"
        / "predictions.csv"
    )
    assert predictions.read_text() == "prediction\nx\nx\nx\n"


def test_the_wasbs_input_is_named_before_anything_is_queued(jobs: Path, cli, project: Path):
    """Without --set the example reads Azure storage: with no credentials for it here,
    the run stops with exit 2 naming the input, and nothing is queued."""
    job = jobs / "pipeline_with_hyperparameter_sweep" / "pipeline.yml"
    env = {k: "" for k in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY")}
    result = cli("run", str(job), env=env, timeout=300)
    assert result.code == 2, result
    assert "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv" in result.err
    assert "Traceback" not in result.err
    assert records(project) == []


# ------------------------------------------------------------------ our own pipeline --

PIPELINE = """\
type: pipeline
settings: {{default_compute: local}}
inputs:
  seconds: 1
jobs:
  prepare:
    type: command
    command: echo 7 > ${{{{outputs.data}}}}/value.txt
    environment: azureml:sklearn-1.5@latest
    outputs: {{data: }}
  tune:
    type: sweep
    inputs:
      data: ${{{{parent.jobs.prepare.outputs.data}}}}
      seconds: ${{{{parent.inputs.seconds}}}}
    outputs: {{model: }}
    trial:
      code: ./src
      command: >-
        python trial.py ${{{{inputs.data}}}} ${{{{inputs.seconds}}}}
        ${{{{search_space.lr}}}} ${{{{outputs.model}}}}
      environment: azureml:sklearn-1.5@latest
      environment_variables: {{PIDS: {pids}}}
    search_space:
      lr: {{type: choice, values: [0.1, 0.2, 0.3, 0.4]}}
    sampling_algorithm: grid
    objective: {{goal: minimize, primary_metric: loss}}
    limits: {{max_total_trials: 4, max_concurrent_trials: 2}}
  report:
    type: command
    inputs:
      model: ${{{{parent.jobs.tune.outputs.model}}}}
    command: echo best lr $(cat ${{{{inputs.model}}}}/lr.txt)
    environment: azureml:sklearn-1.5@latest
"""

TRIAL = """\
import os
import sys
import time
from pathlib import Path

from azureml.core import Run

data, seconds, lr, out = sys.argv[1:5]
Path(os.environ["PIDS"], str(os.getpid())).write_text(lr)
value = float((Path(data) / "value.txt").read_text())
time.sleep(float(seconds))
Path(out).mkdir(parents=True, exist_ok=True)
(Path(out) / "lr.txt").write_text(lr)
Run.get_context().log("loss", abs(float(lr) - 0.3) * value)
print("trial", lr, "value", value)
"""


@pytest.fixture
def ours(jobs: Path, write, tmp_path: Path) -> tuple[Path, Path]:
    """Our pipeline (a step, a sweep step over an inline trial bound to that step's
    output and to a pipeline input, a step reading the sweep's output) and the folder
    where each trial writes its process id."""
    pids = tmp_path / "pids"
    pids.mkdir()
    folder = jobs / "ours"
    write(folder / "src" / "trial.py", TRIAL)
    return write(folder / "pipeline.yml", PIPELINE.format(pids=pids)), pids


def trials_of(project: Path, pipeline: str) -> list:
    sweeps = [r.id for r in descendants(project, pipeline) if r.kind == "sweep"]
    return [r for r in records(project) if r.parent_id in sweeps]


def test_an_inline_sweep_step_reads_other_steps_and_gives_its_best_trial(
    ours: tuple[Path, Path], cli, project: Path, offline_pip: dict[str, str]
):
    job, _ = ours
    result = cli("run", str(job), env=offline_pip, timeout=600)
    assert result.code == 0, result
    # Every trial read the prepare step's output (7) and the pipeline input; the best
    # (lr 0.3, loss 0) is what the report step was given.
    pipeline = next(r for r in records(project) if r.kind == "pipeline")
    logs = [cli("runs", "logs", t.id).out for t in trials_of(project, pipeline.id)]
    assert sorted(line for text in logs for line in text.splitlines() if "value" in line) == [
        f"trial {lr} value 7.0" for lr in ("0.1", "0.2", "0.3", "0.4")
    ]
    assert "[report] best lr 0.3" in result.out
    every = descendants(project, pipeline.id)
    assert len(every) == 3 + 4 and {r.status for r in every} == {"Completed"}
    listed = cli("runs", "list", "--parent", pipeline.id, "-o", "json").json()
    assert sorted(c["display_name"] for c in listed) == ["prepare", "report", "tune"]


def test_cancel_mid_sweep_leaves_no_trial_running(
    ours: tuple[Path, Path], cli, project: Path, offline_pip: dict[str, str]
):
    job, pids = ours
    started = cli(
        "run", str(job), "--detach", "--set", "inputs.seconds=600", env=offline_pip, timeout=300
    )
    assert started.code == 0, started
    pipeline = started.out.strip().splitlines()[-1]
    wait_until(lambda: len(list(pids.iterdir())) == 2, timeout=300, what="two trials running")
    canceled = cli("job", "cancel", "--name", pipeline, env=offline_pip)
    assert canceled.code == 0, canceled
    wait_until(
        lambda: cli("runs", "show", pipeline, "-o", "json").json()["status"] in TERMINAL,
        timeout=180,
        what="the pipeline to end",
    )
    # The pipeline ends after its steps, and the sweep step after its trials: at that
    # moment every run under it has ended, and no trial process is left.
    every = descendants(project, pipeline)
    assert {r.status for r in every} <= TERMINAL, [(r.id, r.status) for r in every]
    assert cli("runs", "show", pipeline, "-o", "json").json()["status"] == "Canceled"
    tune = next(r for r in every if r.kind == "sweep")
    assert tune.status == "Canceled"
    assert len(trials_of(project, pipeline)) == 2
    assert {r.status for r in trials_of(project, pipeline)} == {"Canceled"}
    for pid in pids.iterdir():
        assert not pid_alive(int(pid.name)), f"trial process {pid.name} still runs"
    assert not any(r.display_name == "report" for r in every)  # never started


def test_ctrl_c_on_the_client_leaves_the_pipeline_to_end_every_child(
    ours: tuple[Path, Path], project: Path, offline_pip: dict[str, str]
):
    from targets.testing.fixtures import TARGETS

    job, pids = ours
    client = subprocess.Popen(
        [*TARGETS, "run", str(job), "--stream", "--set", "inputs.seconds=3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **offline_pip},
    )
    try:
        wait_until(lambda: any(pids.iterdir()), timeout=300, what="a trial running")
        client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 130, (out, err)
    assert "stopped streaming; the run goes on" in err
    pipeline = next(r for r in records(project) if r.kind == "pipeline")
    wait_until(
        lambda: next(r for r in records(project) if r.id == pipeline.id).status in TERMINAL,
        timeout=300,
        what="the pipeline to end",
    )
    every = descendants(project, pipeline.id)
    # Nothing is left without an end: every step, the sweep step and its four trials.
    assert len(every) == 3 + 4
    assert {r.status for r in every} == {"Completed"}, [(r.id, r.status) for r in every]
    for pid in pids.iterdir():
        assert not pid_alive(int(pid.name))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "      lr: {type: choice, values: [0.1, 0.2, 0.3, 0.4]}",
                "      lr: {type: choice, values: ['${{parent.inputs.seconds}}']}",
            ),
            "a search space takes literal values, not bindings",
        ),
        (
            (
                "      lr: {type: choice, values: [0.1, 0.2, 0.3, 0.4]}",
                "      lr: {type: uniform, min_value: 0.1, max_value: 0.4}",
            ),
            "grid sampling takes choice parameters only",
        ),
    ],
)
def test_a_sweep_step_it_cannot_run_is_refused_before_anything_is_queued(
    ours: tuple[Path, Path], cli, project: Path, write, change, expected
):
    job, _ = ours
    bad = write(job.with_name("bad.yml"), job.read_text().replace(*change))
    result = cli("run", str(bad))
    assert result.code == 2, result
    assert expected in result.err and "jobs.tune" in result.err
    assert "Traceback" not in result.err
    assert records(project) == []


# ------------------------------------------------------------------ pipeline components


def test_a_registered_pipeline_component_runs_by_latest(
    jobs: Path, cli, project: Path, offline_pip: dict[str, str]
):
    folder = (
        jobs / "pipeline_with_pipeline_component" / "pipeline_with_train_eval_pipeline_component"
    )
    created = cli(
        "components",
        "create",
        "--file",
        str(folder / "components" / "train_pipeline_component.yml"),
    )
    assert created.code == 0, created
    assert "registered component train_pipeline_component:1" in created.err
    listed = cli("components", "list", "-o", "json").json()
    assert [(c["name"], c["version"], c["type"]) for c in listed] == [
        ("train_pipeline_component", "1", "pipeline")
    ]
    # Registration keeps a copy of every step's component and code: a later edit of the
    # project's files changes nothing registered.
    (folder / "components" / "eval" / "eval.py").write_text("raise SystemExit('edited')\n")
    text = (folder / "pipeline.yml").read_text()
    local = "component: ./components/train_pipeline_component.yml"
    assert text.count(local) == 2
    job = folder / "registered.yml"
    job.write_text(text.replace(local, "component: azureml:train_pipeline_component@latest"))
    result = cli("run", str(job), env=offline_pip, timeout=300)
    assert result.code == 0, result
    assert "[train_and_evaluate_model1__evaluate_job] report: score 0.4 over 4 rows" in result.out
    assert "[train_and_evaluate_model2__evaluate_job] report: score 0.04 over 4 rows" in result.out
    assert "[compare] best: model1" in result.out
    pipeline = next(r for r in records(project) if r.kind == "pipeline")
    assert len(descendants(project, pipeline.id)) == 7


def test_a_pipeline_component_with_a_sweep_step_is_registered_whole(
    ours: tuple[Path, Path], cli, project: Path, write, offline_pip: dict[str, str]
):
    """A pipeline component whose sweep step has an inline trial with its own code: the
    code is stored with the component, and the sweep step runs from the stored copy."""
    job, _ = ours
    text = job.read_text().replace("type: pipeline\n", "type: pipeline\nname: tuner\n", 1)
    text = text.replace("settings: {default_compute: local}\n", "")
    text = text.replace("inputs:\n  seconds: 1\n", "inputs:\n  seconds: {type: number}\n", 1)
    component = write(job.with_name("tuner.yml"), text)
    created = cli("components", "create", "--file", str(component))
    assert created.code == 0, created
    shutil.rmtree(job.parent / "src")  # only the registered copy has trial.py now
    user = write(
        job.with_name("uses.yml"),
        "type: pipeline\nsettings: {default_compute: local}\njobs:\n  tuned:\n"
        "    type: pipeline\n    component: azureml:tuner@latest\n    inputs: {seconds: 0}\n",
    )
    result = cli("run", str(user), env=offline_pip, timeout=600)
    assert result.code == 0, result
    assert "[tuned__report] best lr 0.3" in result.out
