"""Azure ML v1 HyperDrive with only its imports changed
(``targets.azureml.train.hyperdrive``), on the local target with real runs: the trials
are the ScriptRunConfig with the sampled values appended as v1 passes them, an unchanged
v1 training script logs the primary metric with ``Run.get_context().log``, the best
trial is found, a grid covers every point, a bandit policy stops a bad trial while it
runs, ``cancel()`` stops the sweep, and bad input is refused before anything runs
(issue 15, part 4)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from targets.azureml.core import Workspace
from targets.azureml.train.hyperdrive import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperDriveConfig,
    HyperDriveConfigException,
    HyperDriveRun,
    PrimaryMetricGoal,
    RandomParameterSampling,
    choice,
    quniform,
    uniform,
)
from targets.azureml.train.hyperdrive import parameter_expressions as pe
from targets.errors import UsageError
from targets.experiment import Experiment, ScriptRunConfig
from targets.runconfig.model import RunConfiguration
from targets.runs import Run

Write = Callable[[Path, str], Path]

# An unchanged v1 training script: argparse for the hyperparameters, the metric through
# Run.get_context(). Its score is a known function of its arguments.
SCORE_SCRIPT = """
import argparse, json, sys
from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--learning_rate", type=float)
parser.add_argument("--optimizer", type=str, default="sgd")
args = parser.parse_args()
run = Run.get_context()
score = 1 - abs(args.learning_rate - 0.3) + (0.5 if args.optimizer == "adam" else 0)
run.log("accuracy", score)
print("argv", json.dumps(sys.argv[1:]))
"""


def score_of(arguments: list[str]) -> float:
    """What SCORE_SCRIPT logs for these arguments (the last of a repeated flag wins)."""
    values = dict(zip(arguments[::2], arguments[1::2], strict=True))
    rate = float(values["--learning_rate"])
    return 1 - abs(rate - 0.3) + (0.5 if values.get("--optimizer", "sgd") == "adam" else 0)


def trial_arguments(run: Run) -> list[str]:
    manifest = json.loads((run.folder / "run.json").read_text())
    return list(manifest["runconfig"].get("arguments", []))


def nothing_ran(project: Path) -> None:
    runs = project / ".targets" / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    assert Workspace(project).ledger.count() == 0


def submit(project: Path, config: HyperDriveConfig) -> HyperDriveRun:
    ws = Workspace.from_config()
    assert ws.root == project
    run = Experiment(ws, "tune").submit(config)
    assert isinstance(run, HyperDriveRun)
    return run


def children(run: HyperDriveRun) -> list[Run]:
    records = run.workspace.ledger.list(parent_id=run.id, limit=None)
    return [Run(run.workspace, r.id) for r in sorted(records, key=lambda r: r.id)]


def test_random_sweep_runs_the_trials_and_finds_the_best(project: Path, write: Write) -> None:
    write(project / "train.py", SCORE_SCRIPT)
    src = ScriptRunConfig(
        source_directory=".", script="train.py", arguments=["--epochs", 2], compute_target="local"
    )
    sampling = RandomParameterSampling(
        {"--learning_rate": uniform(0.05, 0.95), "optimizer": choice("sgd", "adam")}
    )
    config = HyperDriveConfig(
        run_config=src,
        hyperparameter_sampling=sampling,
        primary_metric_name="accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=4,
        max_concurrent_runs=2,
    )
    hd_run = submit(project, config)
    hd_run.wait_for_completion(show_output=True)
    assert hd_run.get_status() == "Completed"

    trials = children(hd_run)
    assert [t.id for t in trials] == [f"{hd_run.id}_{n}" for n in range(4)]  # v1's names
    scores = {}
    for trial in trials:
        assert trial.get_status() == "Completed"
        arguments = trial_arguments(trial)
        assert arguments[:2] == ["--epochs", "2"]
        assert arguments[2] == "--learning_rate" and 0.05 <= float(arguments[3]) <= 0.95
        assert arguments[4] == "--optimizer" and arguments[5] in ("sgd", "adam")
        scores[trial.id] = score_of(arguments)

    metrics = hd_run.get_metrics()
    assert set(metrics) == set(scores)
    for run_id, score in scores.items():
        assert metrics[run_id]["accuracy"] == pytest.approx(score)

    best_id = max(scores, key=lambda k: scores[k])
    best = hd_run.get_best_run_by_primary_metric()
    assert best is not None and best.id == best_id
    ranked = hd_run.get_children_sorted_by_primary_metric()
    assert [c["run_id"] for c in ranked] == sorted(scores, key=lambda k: -scores[k])
    assert ranked[0]["status"] == "Completed"
    assert ranked[0]["best_primary_metric"] == pytest.approx(scores[best_id])
    top = hd_run.get_children_sorted_by_primary_metric(top=1, reverse=True)
    assert [c["run_id"] for c in top] == [min(scores, key=lambda k: scores[k])]

    # At most two trials at a time.
    spans = [(t.record.started_at or 0, t.record.ended_at or 0) for t in trials]
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 2

    # Opened again by id, as a later v1 script does.
    again = HyperDriveRun(Experiment(Workspace.from_config(), "tune"), hd_run.id)
    assert again.get_best_run_by_primary_metric().id == best_id  # type: ignore[union-attr]
    assert again.hyperdrive_config.max_total_runs == 4
    assert again.hyperdrive_config.hyperparameter_sampling == sampling


def test_grid_sweep_tries_every_point_once(project: Path, write: Write) -> None:
    write(project / "train.py", SCORE_SCRIPT)
    src = ScriptRunConfig(source_directory=".", script="train.py")
    sampling = GridParameterSampling(
        {"--learning_rate": choice(0.1, 0.3, 0.9), "--optimizer": choice(["sgd", "adam"])}
    )
    config = HyperDriveConfig(
        run_config=src,
        hyperparameter_sampling=sampling,
        primary_metric_name="accuracy",
        primary_metric_goal="minimize",
        max_total_runs=50,  # more than the grid has: the grid ends the sweep
        max_concurrent_runs=3,
    )
    hd_run = submit(project, config)
    hd_run.wait_for_completion()
    trials = children(hd_run)
    points = sorted((float(trial_arguments(t)[1]), trial_arguments(t)[3]) for t in trials)
    assert points == sorted((r, o) for r in (0.1, 0.3, 0.9) for o in ("sgd", "adam"))
    best = hd_run.get_best_run_by_primary_metric()
    assert best is not None
    assert trial_arguments(best) == ["--learning_rate", "0.9", "--optimizer", "sgd"]


def test_bandit_policy_stops_a_bad_trial_while_it_runs(project: Path, write: Write) -> None:
    write(
        project / "steps.py",
        """
import argparse, time
from azureml.core import Run
parser = argparse.ArgumentParser()
parser.add_argument("--b", type=float)
b = parser.parse_args().b
run = Run.get_context()
for step in range(40):
    run.log("loss", b)
    time.sleep(0.15)
print("finished all steps")
""",
    )
    # The grid is walked in a fixed order: b=1 first (good), then b=50 (worse: stopped
    # while it runs).
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=".", script="steps.py"),
        hyperparameter_sampling=GridParameterSampling({"--b": choice(50, 1)}),
        policy=BanditPolicy(evaluation_interval=1, slack_factor=0.5, delay_evaluation=1),
        primary_metric_name="loss",
        primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
        max_total_runs=2,
        max_concurrent_runs=1,
    )
    hd_run = submit(project, config)
    hd_run.wait_for_completion()
    assert "stopped early by the policy" in (hd_run.folder / "driver.log").read_text()
    by_value = {trial_arguments(t)[1]: t for t in children(hd_run)}
    assert by_value["1"].get_status() == "Completed"
    assert by_value["50"].get_status() == "Canceled"
    metrics = hd_run.get_metrics()
    assert len(metrics[by_value["1"].id]["loss"]) == 40
    assert len(metrics[by_value["50"].id]["loss"]) < 40  # stopped before its end
    best = hd_run.get_best_run_by_primary_metric()
    assert best is not None and best.id == by_value["1"].id


def test_the_trial_gets_the_values_as_v1_passes_them(project: Path, write: Write) -> None:
    write(
        project / "echo.py",
        """
import json, sys, pathlib
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/argv.json").write_text(json.dumps(sys.argv[1:]))
from azureml.core import Run
Run.get_context().log("ok", 1)
""",
    )
    sampling = RandomParameterSampling(
        {
            "--learning_rate": choice(0.01),
            "batch_size": choice(16),  # without dashes: passed as --batch_size
            "--units": quniform(15, 17, 16),  # q-values are whole numbers
            "--kernel-size": choice("3x3"),
        }
    )
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(
            source_directory=".", script="echo.py", arguments=["--epochs", 3, "--data", "d"]
        ),
        hyperparameter_sampling=sampling,
        primary_metric_name="ok",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=1,
    )
    hd_run = submit(project, config)
    hd_run.wait_for_completion()
    (trial,) = children(hd_run)
    argv = json.loads((trial.folder / "outputs" / "argv.json").read_text())
    assert argv == [
        "--epochs", "3", "--data", "d",
        "--learning_rate", "0.01",
        "--batch_size", "16",
        "--units", "16",
        "--kernel-size", "3x3",
    ]  # fmt: skip
    hyper = json.loads(hd_run.get_hyperparameters()[trial.id])
    assert hyper == {
        "--learning_rate": 0.01,
        "batch_size": 16,
        "--units": 16,
        "--kernel-size": "3x3",
    }
    # The parent's v2 sweep document says what the trial runs.
    document = json.loads((hd_run.folder / "hyperdrive.yml").read_text())
    assert document["trial"]["command"] == (
        "python echo.py --epochs 3 --data d --learning_rate ${{search_space.learning_rate}} "
        "--batch_size ${{search_space.batch_size}} --units ${{search_space.units}} "
        "--kernel-size ${{search_space.kernel_size}}"
    )


def test_cancel_stops_the_sweep_and_its_running_trials(project: Path, write: Write) -> None:
    write(project / "slow.py", "import time\ntime.sleep(120)\n")
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=".", script="slow.py"),
        hyperparameter_sampling=GridParameterSampling({"--a": choice(1, 2, 3)}),
        primary_metric_name="loss",
        primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
        max_total_runs=3,
        max_concurrent_runs=2,
    )
    hd_run = submit(project, config)
    deadline = time.monotonic() + 60
    while len(children(hd_run)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(children(hd_run)) == 2
    record = hd_run.cancel()
    assert record.status == "Canceled"
    trials = children(hd_run)
    assert len(trials) == 2  # the third never started
    assert [t.get_status() for t in trials] == ["Canceled", "Canceled"]


def _config(**changes: Any) -> HyperDriveConfig:
    arguments: dict[str, Any] = {
        "run_config": ScriptRunConfig(source_directory=".", script="train.py"),
        "hyperparameter_sampling": RandomParameterSampling({"--lr": uniform(0, 1)}),
        "primary_metric_name": "accuracy",
        "primary_metric_goal": PrimaryMetricGoal.MAXIMIZE,
        "max_total_runs": 2,
    }
    arguments.update(changes)
    return HyperDriveConfig(**arguments)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: GridParameterSampling({"--lr": uniform(0, 1)}),
            "parameter '--lr' uses uniform(), but this sampling takes only choice",
        ),
        (
            lambda: BayesianParameterSampling({"--lr": pe.loguniform(-3, 0)}),
            "takes only choice, quniform, uniform",
        ),
        (lambda: _config(primary_metric_goal="biggest"), "unknown primary_metric_goal 'biggest'"),
        (lambda: _config(max_total_runs=0), "max_total_runs must be a whole number >= 1"),
        (lambda: _config(max_concurrent_runs=-1), "max_concurrent_runs must be a whole number"),
        (lambda: _config(primary_metric_name=None), "primary_metric_name is required"),
        (lambda: _config(primary_metric_goal=None), "primary_metric_goal is required"),
        (
            lambda: _config(run_config=RunConfiguration(script="train.py")),
            "run_config must be a ScriptRunConfig, got RunConfiguration",
        ),
        (
            lambda: _config(
                hyperparameter_sampling=BayesianParameterSampling({"--lr": uniform(0, 1)}),
                policy=BanditPolicy(slack_factor=0.1),
            ),
            "Bayesian sampling takes no early-termination policy",
        ),
        (lambda: BanditPolicy(slack_factor=0.1, slack_amount=1), "exactly one of slack_factor"),
        (lambda: uniform(1, 0), "min_value (1) must be less than max_value (0)"),
        (lambda: choice(), "at least one option is needed"),
        (lambda: quniform(0, 10, 0.5), "q must be a whole number"),
        (
            lambda: RandomParameterSampling({"--lr": choice(1), "lr": choice(2)}),
            "parameters '--lr' and 'lr' name the same argument",
        ),
        (
            lambda: RandomParameterSampling({"--lr": [0.1, 0.2]}),
            "is not a parameter expression",
        ),
    ],
)
def test_bad_configurations_are_refused_when_made(
    project: Path, make: Callable[[], object], expected: str
) -> None:
    with pytest.raises(HyperDriveConfigException) as info:
        make()
    assert expected in str(info.value)
    assert info.value.exit_code == 2
    nothing_ran(project)


@pytest.mark.parametrize(
    ("trial", "expected"),
    [
        (
            ScriptRunConfig(source_directory=".", script="missing.py"),
            "the script 'missing.py' does not exist",
        ),
        (
            ScriptRunConfig(source_directory="no-such-dir", script="train.py"),
            "no-such-dir' does not exist",
        ),
        (
            ScriptRunConfig(source_directory=".", script="train.py", compute_target="gpu-vm"),
            "gpu-vm",
        ),
    ],
)
def test_a_trial_that_cannot_run_is_refused_before_anything_is_written(
    project: Path, write: Write, trial: ScriptRunConfig, expected: str
) -> None:
    write(project / "train.py", SCORE_SCRIPT)
    config = _config(run_config=trial)
    with pytest.raises(UsageError) as info:
        Experiment(Workspace.from_config(), "tune").submit(config)
    assert expected in str(info.value)
    nothing_ran(project)


def test_the_v1_hyperdrive_example_runs_with_only_its_imports_changed(project: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "azureml-v1" / "hyperdrive"
    for name in ("tune.py", "train.py"):
        shutil.copy(example / name, project / name)
    done = subprocess.run(
        [sys.executable, "tune.py"], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    finished = re.findall(r"^trial \d+: validation_acc=([\d.]+) \((\S+)\)$", done.stdout, re.M)
    assert len(finished) == 6, done.stdout
    best_value = max(float(value) for value, _ in finished)
    assert f"best validation_acc {best_value}" in done.stdout
    best = re.search(r"^best run (\S+)$", done.stdout, re.M)
    assert best is not None
    assert best.group(1) in {run_id for value, run_id in finished if float(value) == best_value}
    assert re.fullmatch(r"hyperdrive-example_\S+_\d+", best.group(1))  # <parent id>_<n>


def test_the_trials_own_metric_counts_not_a_child_runs(project: Path, write: Write) -> None:
    write(
        project / "nested.py",
        """
import argparse
from azureml.core import Run
parser = argparse.ArgumentParser()
parser.add_argument("--v", type=float)
v = parser.parse_args().v
run = Run.get_context()
evaluation = run.child_run(name="evaluate")
evaluation.log("score", -v)  # a nested run's metric of the same name
evaluation.complete()
run.log("score", v)
""",
    )
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=".", script="nested.py"),
        hyperparameter_sampling=GridParameterSampling({"--v": choice(1, 2, 3)}),
        primary_metric_name="score",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=3,
        max_concurrent_runs=3,
    )
    hd_run = submit(project, config)
    hd_run.wait_for_completion()
    by_value = {trial_arguments(t)[1]: t.id for t in children(hd_run)}
    log = (hd_run.folder / "driver.log").read_text()
    assert f"best trial {by_value['3']}: score=3 " in log, log
    best = hd_run.get_best_run_by_primary_metric()
    assert best is not None and best.id == by_value["3"]
    assert hd_run.get_metrics()[by_value["1"]] == {"score": 1}
