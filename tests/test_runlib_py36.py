"""The run library on Python 3.6: an unchanged v1 training script logs in a run whose
environment pins ``python=3.6`` (real v1 conda files pin 3.6.2).

The run library (``targets/agent/runlib``, what ``from azureml.core import Run`` finds
inside a run) runs in the run's own interpreter. Here the example training script
(examples/azureml-v1/train/train.py, every run-library call it supports) runs on this
machine's pyenv 3.6: once directly, with the environment the supervisor gives a run
(``targets.agent.supervisor._environ``), and once through ``targets run`` on the local
target with a conda file that pins ``python=3.6``, whose environment targets builds from
pyenv's 3.6 (tests/test_interpreters.py). The static 3.6 checks are in
tests/test_agent_python_floor.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from targets.agent import supervisor
from targets.agent.protocol import RunSpec
from targets.testing.fixtures import CLIResult
from targets.tracking import read_run_metrics, tracked_runs, v1_metrics
from tests.oldest_python import RUNLIB_FLOOR, python_of
from tests.sshd import skip_or_fail
from tests.test_run_context import assert_logged_everything, copy_example, last_run

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "azureml-v1" / "train"

# What train.py logs, as v1's Run.get_metrics() shapes it (inside the run and on the client).
V1_METRICS = {
    "loss": [0.5, 0.25, 0.125],
    "epochs": {"epoch": [0, 1, 2], "loss": [0.5, 0.25, 0.125]},
    "accuracy": 0.9,
    "optimizer": "sgd",
    "lr_schedule": [0.1, 0.05, 0.01],
    "confusion": {"label": [0, 1], "count": [7, 3]},
    "curve": "outputs/curve.png",
}


def python_3_6() -> str:
    python = python_of(RUNLIB_FLOOR[1])
    if python is None:
        skip_or_fail("no Python 3.6 on this machine (pyenv's versions/3.6.* is looked for)")
        raise AssertionError("unreachable")
    return python


def test_the_v1_training_script_logs_on_python_3_6(tmp_path: Path) -> None:
    python = python_3_6()
    run_dir = tmp_path / "run"
    wd = run_dir / "wd"
    wd.mkdir(parents=True)
    shutil.copy(EXAMPLE / "train.py", wd / "train.py")
    spec = cast(
        RunSpec,
        {
            "run_id": "py36-run",
            "experiment": "v1-py36",
            "entry": {"script": "train.py", "arguments": []},
            "environment": {},
            "environment_variables": {},
        },
    )
    # The variables the supervisor gives the run: the run library first on PYTHONPATH,
    # TARGETS_MLFLOW_STORE, AZUREML_RUN_ID, the experiment's name, the outputs folder.
    env = supervisor._environ(spec, python, str(run_dir))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == supervisor.RUN_LIBRARY
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no cpython-36 caches in the source tree
    done = subprocess.run(
        [python, "train.py"], cwd=wd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "run py36-run experiment v1-py36 status Running" in done.stdout
    assert "('quick', '')" in done.stdout
    assert (
        "metrics ['accuracy', 'confusion', 'curve', 'epochs', 'loss', 'lr_schedule', "
        "'optimizer']" in done.stdout
    )

    # The store the run wrote, read as targets reads a collected run (wd/.targets/mlruns).
    collected = wd / ".targets"
    found = read_run_metrics(collected)
    assert found["metrics"]["loss"] == 0.125 and found["metrics"]["accuracy"] == 0.9
    assert found["metrics"]["lr_schedule"] == 0.01  # log_list: the last value
    assert found["metrics"]["epochs.epoch"] == 2 and found["metrics"]["confusion.count"] == 3
    assert found["tags"]["framework"] == "none" and found["tags"]["alpha"] == "0.5"
    own = [r for r in found["runs"] if not r["child"]]
    assert len(own) == 1 and own[0]["history"]["loss"] == [0.5, 0.25, 0.125]
    children = [r for r in found["runs"] if r["child"]]
    assert [c["metrics"] for c in children] == [{"auc": 0.8}]
    runs = [r for r in tracked_runs(collected) if not r.is_child]
    assert v1_metrics(runs) == V1_METRICS
    assert "status: 3" in (runs[0].folder / "meta.yaml").read_text()  # complete(): FINISHED

    outputs = wd / "outputs"
    assert (outputs / "weights.txt").read_text() == "loss=0.125\n"
    assert (outputs / "model" / "config.txt").read_text() == "alpha=0.5\n"
    assert (outputs / "curve.png").read_bytes().startswith(b"\x89PNG")


# The run library's other calls, in a child run of a submitted parent (as
# ``targets.runs.Run.submit_child`` starts one: TARGETS_PARENT_RUN_ID).
EVERY_OTHER_CALL = """
import os, sys
from azureml.core import Dataset, Run
from azureml.exceptions import ServiceCallError

with Run.get_context() as run:
    run.log_confusion_matrix("cm", {"schema_type": "confusion_matrix", "data": [[1, 0], [0, 1]]})
    run.log_accuracy_table("acc", {"schema_type": "accuracy_table"})
    run.log_predictions("pred", {"schema_type": "predictions"})
    run.log_residuals("res", {"schema_type": "residuals"})
    run.log("step", 1.5, step=4)
    run.add_properties({"owner": "py36"})
    with open("a.txt", "w") as fh:
        fh.write("a")
    run.upload_files(["outputs/x/a.txt", "logs/a.txt"], ["a.txt", "a.txt"])
    run.download_file("outputs/x/a.txt", "copy.txt")
    print("files", run.get_file_names())
    print("copy", open("copy.txt").read())
    print("details", run.get_details()["runId"], run.get_status())
    run.parent.log("from_child", 2)
    try:
        Dataset.get_by_name(None, "data")
    except ServiceCallError as exc:
        print("refused", exc.call)
print("status", run.get_status(), sys.version_info[:2])
"""


def test_every_other_run_library_call_works_on_python_3_6(tmp_path: Path) -> None:
    python = python_3_6()
    run_dir = tmp_path / "run"
    wd = run_dir / "wd"
    wd.mkdir(parents=True)
    (wd / "calls.py").write_text(EVERY_OTHER_CALL)
    spec = cast(
        RunSpec,
        {
            "run_id": "child-run",
            "experiment": "v1-py36",
            "entry": {"script": "calls.py", "arguments": []},
            "environment": {},
            "environment_variables": {"TARGETS_PARENT_RUN_ID": "parent-run"},
        },
    )
    env = supervisor._environ(spec, python, str(run_dir))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [python, "calls.py"], cwd=wd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "files ['logs/a.txt', 'outputs/x/a.txt']" in lines
    assert "copy a" in lines and "details child-run Running" in lines
    assert "refused Dataset.get_by_name()" in lines
    assert "status Completed (3, 6)" in lines

    collected = wd / ".targets"
    runs = tracked_runs(collected)
    own = next(r for r in runs if r.tags.get("targets.run_id") == "child-run")
    assert own.params == {"owner": "py36"}
    assert own.history["step"] == [1.5]
    assert (own.folder / "metrics" / "step").read_text().split()[2] == "4"  # step=4
    shaped = v1_metrics([own])
    assert shaped["cm"]["data"] == [[1, 0], [0, 1]] and shaped["res"]["schema_type"]
    assert "status: 3" in (own.folder / "meta.yaml").read_text()
    # run.parent.log: an MLflow run of this store written for the parent.
    for_parent = next(r for r in runs if r.tags.get("targets.run_id") == "parent-run")
    assert for_parent.logged_by == "child-run" and for_parent.history["from_child"] == [2.0]


@pytest.fixture
def pyenv_3_6(monkeypatch: pytest.MonkeyPatch) -> str:
    """The machine's pyenv, as a shell with ``pyenv init`` has it (the test HOME is
    empty): where targets finds the 3.6 a conda file pins. The 3.6 version's name."""
    python = Path(python_3_6())
    monkeypatch.setenv("PYENV_ROOT", str(python.parents[2]))
    # The local target runs the run library from this source tree: no cpython-36 caches.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    return python.parents[1].name


def test_targets_run_of_a_runconfig_pinning_python_3_6_logs_what_the_script_logs(
    cli: Callable[..., CLIResult],
    project: Path,
    write: Callable[[Path, str], Path],
    pyenv_3_6: str,
) -> None:
    copy_example(project)
    write(project / "env.yml", "name: py36\ndependencies:\n  - python=3.6.2\n")
    write(
        project / "rc.yml",
        "script: train.py\nenvironment:\n  python:\n    conda_dependencies_file: env.yml\n",
    )
    result = cli("run", "rc.yml", "--experiment", "v1-train", timeout=300)
    assert result.code == 0, result
    run_id = last_run(project).id
    assert f"run {run_id} experiment v1-train status Running" in result.out
    prepare = (project / ".targets" / "runs" / run_id / "prepare.log").read_text()
    assert f"/versions/{pyenv_3_6}/bin/python" in prepare
    # runs show, the collected MLflow runs, the records, the outputs, the merged store.
    assert_logged_everything(cli, project, run_id)
