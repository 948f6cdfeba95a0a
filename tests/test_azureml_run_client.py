"""The client-side v1 ``Run`` (issue 15, part 6): a run on the local target logs through
``Run.get_context()``; the control script then reads it back as v1 does (``get_metrics``
shapes, ``get_details`` keys, tags, properties, children, files), opens it with v1's
``Run(experiment, run_id)``, and a child run's ``run.parent.log`` lands on the parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from targets.azureml.core.run import Run, get_run
from targets.azureml.core.workspace import Workspace
from targets.errors import UsageError
from targets.experiment import Experiment, ScriptRunConfig
from targets.runconfig.model import RunConfiguration
from targets.runs import submit_run

TRAIN = """
from azureml.core import Run

run = Run.get_context()
run.log("loss", 0.5)
run.log("loss", 0.25)
run.log("accuracy", 0.9)
run.log("optimizer", "adam")
run.log_list("lr", [0.1, 0.01])
run.log_row("epoch", n=1, acc=0.5)
run.log_row("epoch", n=2, acc=0.75)
run.log_table("confusion", {"label": [0, 1], "count": [7, 3]})
run.tag("stage", "dev")
run.add_properties({"seed": "7"})
with open("model.txt", "w") as fh:
    fh.write("weights")
run.upload_file("model.txt", "model.txt")
child = run.child_run("evaluate")
child.log("auc", 0.8)
child.complete()
print("trained", run.id)
"""

METRICS = {
    "loss": [0.5, 0.25],
    "accuracy": 0.9,
    "optimizer": "adam",
    "lr": [0.1, 0.01],
    "epoch": {"n": [1, 2], "acc": [0.5, 0.75]},
    "confusion": {"label": [0, 1], "count": [7, 3]},
}


def test_a_submitted_run_reads_back_as_v1_returns_it(project, write, tmp_path, capfd):
    write(project / "train.py", TRAIN)
    ws = Workspace.from_config()
    experiment = Experiment(ws, "client")
    run = experiment.submit(
        ScriptRunConfig(source_directory=str(project), script="train.py"), tags={"team": "ml"}
    )
    details = run.wait_for_completion(show_output=True, wait_post_processing=True)
    assert f"trained {run.id}" in capfd.readouterr().out

    # get_details(): v1's keys
    assert details["runId"] == run.id and details["status"] == "Completed"
    assert details["target"] == "local"
    assert details["startTimeUtc"].endswith("Z") and details["endTimeUtc"].endswith("Z")
    assert details["startTimeUtc"] <= details["endTimeUtc"]
    assert details["properties"]["seed"] == "7"
    assert details["inputDatasets"] == [] and details["outputDatasets"] == []
    assert details["runDefinition"]["script"] == "train.py"
    assert "driver.log" in details["logFiles"]
    assert run.get_details()["runId"] == run.id

    # get_metrics(): a value once, a list several times, tables as {column: [values]}
    assert run.get_metrics() == METRICS
    assert run.get_metrics("loss") == {"loss": [0.5, 0.25]}
    assert run.get_metrics("missing") == {}
    assert run.get_metrics(recursive=True) == {run.id: METRICS, f"{run.id}_1": {"auc": 0.8}}
    assert run.get_tags() == {"team": "ml", "stage": "dev"}
    assert run.get_properties()["seed"] == "7"
    assert run.get_properties()["targets.target"] == "local"
    assert run.get_children() == []
    assert run.parent is None

    # files
    names = run.get_file_names()
    assert "outputs/model.txt" in names and "driver.log" in names
    got = run.download_files(
        prefix="outputs/", output_directory=tmp_path / "flat", append_prefix=False
    )
    assert (tmp_path / "flat" / "model.txt").read_text() == "weights"
    assert got == [tmp_path / "flat" / "model.txt"]
    run.download_files(prefix="outputs", output_directory=tmp_path / "kept")
    assert (tmp_path / "kept" / "outputs" / "model.txt").read_text() == "weights"
    run.download_file("outputs/model.txt", tmp_path / "one.txt")
    assert (tmp_path / "one.txt").read_text() == "weights"

    # v1's constructor and get_run; the experiment is still its name as a str
    again = Run(experiment, run.id)
    assert again.get_metrics() == METRICS
    assert again.experiment == "client" and again.experiment.name == "client"
    assert again.experiment.workspace.root == ws.root
    assert [r.id for r in again.experiment.get_runs()] == [run.id]
    assert again.display_name == run.id
    again.display_name = "first try"
    assert Run(ws, run.id).display_name == "first try"
    assert get_run(experiment, run.id).get_status() == "Completed"
    with pytest.raises(UsageError, match="belongs to the experiment 'client'"):
        Run(Experiment(ws, "other"), run.id)
    with pytest.raises(UsageError, match="neither an Experiment nor a Workspace"):
        Run("client", run.id)


def test_outside_a_run_the_control_script_gets_the_offline_run(project, monkeypatch):
    from targets.agent.runlib.azureml.core.run import Run as LibraryRun

    for name in ("AZUREML_RUN_ID", "TARGETS_RUN_ID", "TARGETS_MLFLOW_STORE"):
        monkeypatch.delenv(name, raising=False)
    LibraryRun._context = None
    context = Run.get_context()
    assert context.id.startswith("OfflineRun_")
    context.log("x", 1.0)
    assert context.get_metrics() == {"x": 1.0}
    assert list((project / ".targets").iterdir()) == []  # nothing written
    LibraryRun._context = None  # the next test's process state stays clean
    with pytest.raises(RuntimeError, match="outside a run"):
        Run.get_context(allow_offline=False)


CHILD = """
import sys
from azureml.core import Run

run = Run.get_context()
score = float(sys.argv[1])
run.log("score", score)
run.parent.log("trial_score", score)
run.parent.tag("best_so_far", str(score))
print("parent", run.parent.id)
"""


def test_children_log_on_their_parent_and_the_parent_sees_them(project, write, cli):
    write(project / "parent.py", "print('parent')\n")
    write(project / "child.py", CHILD)
    ws = Workspace.from_config()
    parent = submit_run(
        ws, RunConfiguration(script="parent.py"), source_dir=project, experiment="sweep"
    )
    parent.wait_for_completion()
    children = []
    for score in ("0.25", "0.75"):
        child = submit_run(
            ws,
            RunConfiguration(script="child.py", arguments=[score]),
            source_dir=project,
            experiment="sweep",
            parent_id=parent.id,
        )
        child.wait_for_completion()
        assert f"parent {parent.id}" in child.tail()
        children.append(child.id)

    opened = Run(ws, parent.id)
    assert [c.id for c in opened.get_children()] == children
    assert [c.id for c in opened.get_children(status="Completed")] == children
    assert opened.get_children(status="Failed") == []
    assert opened.get_children(tags="nothing") == []
    assert Run(ws, children[0]).parent.id == parent.id
    assert opened.get_metrics() == {"trial_score": [0.25, 0.75]}
    assert opened.get_tags() == {"best_so_far": "0.75"}
    assert Run(ws, children[1]).get_metrics() == {"score": 0.75}
    assert opened.get_metrics(recursive=True) == {
        parent.id: {"trial_score": [0.25, 0.75]},
        children[0]: {"score": 0.25},
        children[1]: {"score": 0.75},
    }
    shown = opened.get_details()
    assert shown["metrics"]["trial_score"] in (0.25, 0.75)
    cli_shown = cli("runs", "show", parent.id, "-o", "json").json()
    assert cli_shown["metrics"]["trial_score"] in (0.25, 0.75), cli_shown["metrics"]
    # The child's own metrics are not the parent's
    assert Run(ws, children[0]).get_details()["metrics"] == {"score": 0.25}


def test_the_example_control_script_runs_with_only_its_imports_changed(project):
    import shutil
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "azureml-v1" / "train"
    for name in ("control.py", "train.py"):
        shutil.copy(example / name, project / name)
    done = subprocess.run(
        [sys.executable, "control.py"], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "status Completed on local" in out
    assert "metric loss [0.5, 0.25, 0.125]" in out
    assert "metric accuracy 0.9" in out
    assert "metric confusion {'label': [0, 1], 'count': [7, 3]}" in out
    assert "('purpose', 'example')" in out and "('framework', 'none')" in out
    assert "'outputs/weights.txt'" in out
    assert (project / "downloaded" / "weights.txt").read_text() == "loss=0.125\n"
    assert "reopened" in out and "train-example Completed" in out


INSIDE = """
from targets.azureml.core.run import Run
from azureml.core import Run as LibraryRun

run = Run.get_context()
assert run is LibraryRun.get_context()
run.log("from_control_import", 1.5)
print("context", run.id)
"""


def test_inside_a_run_the_v1_module_gives_the_run_itself(project, write, cli):
    write(project / "inside.py", INSIDE)
    result = cli("run", "inside.py")
    assert result.code == 0, result
    run_id = Workspace.from_config().ledger.list(limit=1)[0].id
    assert f"context {run_id}" in result.out
    shown = cli("runs", "show", run_id, "-o", "json").json()
    assert shown["metrics"] == {"from_control_import": 1.5}
