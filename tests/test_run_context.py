"""Inside the run: an unchanged Azure ML v1 training script (``from azureml.core import
Run``; ``Run.get_context().log(...)``) runs on the local target, on a VM and on a docker
cluster's node, and what it logs shows in ``targets runs show`` and in the run's collected
MLflow store (issue 15, part 5; docs/azureml-v1.md)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from targets.compute._agent import agent_bundle
from targets.testing.fixtures import CLIResult
from targets.workspace import Workspace
from tests.cluster_nodes import NodeImage, node_image_fixture, remove_cluster_containers  # noqa: F401
from tests.dockerd import docker_engine_fixture  # noqa: F401
from tests.oldest_python import FLOOR
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.test_agent_python_floor import runtime_typing_problems, vermin
from tests.test_docker import docker_vm  # noqa: F401
from tests.test_vm import attach_args

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "azureml-v1" / "train"
RUNLIB = REPO / "targets" / "agent" / "runlib"


def runlib_sources() -> list[Path]:
    files = sorted(RUNLIB.rglob("*.py"))
    assert files, f"no run library in {RUNLIB}"
    return files


def copy_example(project: Path) -> None:
    for path in EXAMPLE.glob("*.py"):
        shutil.copy(path, project / path.name)


def last_run(project: Path) -> Any:
    return Workspace(project).ledger.list(limit=1)[0]


def mlflow_run(folder: Path, run_name: str) -> Path:
    """The collected MLflow run whose ``mlflow.runName`` tag is ``run_name``."""
    found = [
        tag.parent.parent
        for tag in (folder / "mlruns").glob("*/*/tags/mlflow.runName")
        if tag.read_text() == run_name
    ]
    assert len(found) == 1, found
    return found[0]


def history(run_dir: Path, metric: str) -> list[float]:
    lines = (run_dir / "metrics" / metric).read_text().splitlines()
    return [float(line.split()[1]) for line in lines]


def assert_logged_everything(cli: Any, project: Path, run_id: str) -> None:
    shown = cli("runs", "show", run_id, "-o", "json").json()
    assert shown["status"] == "Completed", shown
    metrics = shown["metrics"]
    assert metrics["accuracy"] == 0.9
    assert metrics["loss"] == 0.125
    assert metrics["lr_schedule"] == 0.01  # log_list: the last value of the list
    assert metrics["epochs.loss"] == 0.125 and metrics["epochs.epoch"] == 2  # log_row
    assert metrics["confusion.count"] == 3  # log_table
    table = cli("runs", "show", run_id)
    assert "accuracy=0.9" in table.out and "loss=0.125" in table.out

    folder = project / ".targets" / "runs" / run_id
    run_dir = mlflow_run(folder, run_id)
    assert history(run_dir, "loss") == [0.5, 0.25, 0.125]
    assert history(run_dir, "lr_schedule") == [0.1, 0.05, 0.01]
    assert history(run_dir, "confusion.label") == [0, 1]
    assert (run_dir / "tags" / "framework").read_text() == "none"
    assert (run_dir / "tags" / "quick").read_text() == ""
    assert (run_dir / "tags" / "alpha").read_text() == "0.5"
    assert "status: 3" in (run_dir / "meta.yaml").read_text()  # complete(): FINISHED
    records = [
        json.loads(line)
        for line in (run_dir / "artifacts" / "azureml" / "metrics.jsonl").read_text().splitlines()
    ]
    by_name = {(r["kind"], r["name"]): r["value"] for r in records}
    assert by_name[("scalar", "optimizer")] == "sgd"  # not a number: recorded only
    assert by_name[("table", "confusion")] == {"label": [0, 1], "count": [7, 3]}
    assert by_name[("image", "curve")] == "outputs/curve.png"
    child = mlflow_run(folder, "evaluate")
    assert history(child, "auc") == [0.8]
    assert (child / "tags" / "mlflow.parentRunId").read_text() == run_dir.name

    outputs = folder / "outputs"
    assert (outputs / "weights.txt").read_text() == "loss=0.125\n"  # not outputs/outputs/
    assert (outputs / "model" / "config.txt").read_text() == "alpha=0.5\n"
    assert (outputs / "curve.png").read_bytes().startswith(b"\x89PNG")

    # Merged into the workspace's store, where `mlflow ui` reads it.
    merged = [
        t.parent.parent
        for t in (project / ".targets" / "mlruns").glob("*/*/tags/targets.run_id")
        if t.read_text() == run_id
    ]
    assert len(merged) == 2 and any((m / "metrics" / "accuracy").exists() for m in merged)


def test_an_unchanged_v1_training_script_logs_on_the_local_target(cli, project):
    copy_example(project)
    result = cli("run", "train.py", "--experiment", "v1-train")
    assert result.code == 0, result
    run_id = last_run(project).id
    assert f"run {run_id} experiment v1-train status Running" in result.out
    assert "('quick', '')" in result.out
    # get_metrics() inside the run: everything logged, strings, tables and images too
    assert (
        "metrics ['accuracy', 'confusion', 'curve', 'epochs', 'loss', 'lr_schedule', "
        "'optimizer']" in result.out
    )
    assert_logged_everything(cli, project, run_id)


def test_a_service_only_call_fails_naming_the_call_and_what_to_use(cli, project):
    copy_example(project)
    result = cli("run", "service_call.py")
    assert result.code != 0
    text = result.out + result.err
    assert "Dataset.get_by_name() needs the Azure ML service" in text, text
    assert "targets datastores add" in text
    shown = cli("runs", "show", last_run(project).id, "-o", "json").json()
    assert shown["status"] == "Failed" and shown["metrics"] == {"started": 1.0}


def test_the_real_sdk_is_kept_when_the_run_asks(cli, project, write):
    write(project / "t.py", "import azureml.core\n")
    write(
        project / "rc.yml",
        "script: t.py\nenvironment_variables: {TARGETS_AZUREML_REAL: '1'}\n",
    )
    result = cli("run", "rc.yml")
    # No real SDK in this environment, and the run library was not put in its place.
    assert result.code != 0 and "No module named 'azureml'" in result.out + result.err
    write(project / "rc.yml", "script: t.py\n")
    assert cli("run", "rc.yml").code == 0


def test_an_unchanged_v1_training_script_logs_on_a_vm(cli, project, sshd: SSHServer):
    attached = cli(*attach_args(sshd, "dsvm", "--ssh-key", str(sshd.key), "--accept-host-key"))
    assert attached.code == 0, attached
    copy_example(project)
    result = cli("run", "train.py", "--target", "dsvm", "--experiment", "v1-train")
    assert result.code == 0, result
    run = last_run(project)
    assert run.kind == "vm"
    assert_logged_everything(cli, project, run.id)


def test_the_agent_bundle_carries_the_run_library():
    import io
    import zipfile

    _, data = agent_bundle()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "targets_agent/runlib/azureml/core/run.py" in names
    assert "targets_agent/runlib/azureml/__init__.py" in names


def test_the_run_library_is_python_3_8_and_stdlib_only():
    errors = []
    for path in runlib_sources():
        source = path.read_text()
        try:
            ast.parse(source, str(path), feature_version=FLOOR)
        except SyntaxError as exc:
            errors.append(f"{path}:{exc.lineno}: {exc.msg}")
        errors += runtime_typing_problems(source, str(path.relative_to(REPO)))
    assert not errors, "\n".join(errors)
    result = vermin(*map(str, runlib_sources()))
    assert result.returncode == 0, result.stdout


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``code`` outside any targets run, with the run library on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "TARGETS_"))}
    env["PYTHONPATH"] = str(RUNLIB)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )


def test_outside_a_run_the_context_is_an_offline_run_that_keeps_what_it_logs(tmp_path):
    code = (
        "from azureml.core import Run\n"
        "run = Run.get_context()\n"
        "run.log('loss', 0.5); run.log('loss', 0.25); run.log('name', 'x')\n"
        "run.log_list('lr', [0.1, 0.01])\n"
        "run.log_row('t', a=1, b='x'); run.log_row('t', a=2, b='y')\n"
        "run.log_table('c', {'k': [1, 2]}); run.tag('quick')\n"
        "print(run.id.startswith('OfflineRun_'), sorted(run.get_metrics().items()),"
        " run.get_tags())\n"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "True [('c', {'k': [1, 2]}), ('loss', [0.5, 0.25]), ('lr', [0.1, 0.01]), "
        "('name', 'x'), ('t', {'a': [1, 2], 'b': ['x', 'y']})] {'quick': ''}"
    )
    assert list(tmp_path.iterdir()) == []  # nothing written
    strict = run_python(
        "from azureml.core import Run\nRun.get_context(allow_offline=False)", tmp_path
    )
    assert strict.returncode != 0 and "outside a run" in strict.stderr


def test_a_bad_metric_name_is_refused_naming_it(tmp_path):
    result = run_python(
        "from azureml.core import Run\nRun.get_context().log('../escape', 1)\n", tmp_path
    )
    assert result.returncode != 0
    assert "metric name '../escape' cannot be stored" in result.stderr


NAMES_JOB = """
from azureml.core import Run

run = Run.get_context()
run.log("train/loss", 0.25)
run.log("accuracy", 0.5)
run.tag("team", "vision")
child = run.child_run()
child.log("auc", 0.75)
child.complete()
"""


def test_runs_show_keeps_logged_names_tags_and_leaves_child_metrics_to_the_child(
    cli, project, write
):
    write(project / "names.py", NAMES_JOB)
    result = cli("run", "names.py")
    assert result.code == 0, result
    run_id = last_run(project).id
    shown = cli("runs", "show", run_id, "-o", "json").json()
    assert shown["metrics"] == {"train/loss": 0.25, "accuracy": 0.5}, shown["metrics"]
    assert shown["tags"] == {"team": "vision"}, shown["tags"]
    table = cli("runs", "show", run_id)
    assert "train/loss=0.25" in table.out and "team=vision" in table.out, table
    assert "auc" not in table.out, table


MLFLOW_FIRST = """
import mlflow
from azureml.core import Run

mlflow.log_metric("mlflow_loss", 0.5)
run = Run.get_context()
run.log("v1_acc", 0.75)
mlflow.log_param("depth", "3")
run.tag("mixed", "yes")
print("metrics", sorted(run.get_metrics().items()))
"""

V1_FIRST = """
import mlflow
from azureml.core import Run

run = Run.get_context()
run.log("v1_acc", 0.75)
mlflow.log_metric("mlflow_loss", 0.5)
mlflow.log_metric("mlflow_loss", 0.25)
mlflow.set_tag("mixed", "yes")
print("metrics", sorted(run.get_metrics().items()))
"""


def test_mlflow_and_run_log_in_one_script_land_in_one_mlflow_run(cli, project, write):
    from targets.azureml.core.run import Run

    for name, script, loss in (("first.py", MLFLOW_FIRST, 0.5), ("second.py", V1_FIRST, 0.25)):
        write(project / name, script)
        result = cli("run", name, "--experiment", "mixed")
        assert result.code == 0, result
        run_id = last_run(project).id
        folder = project / ".targets" / "runs" / run_id
        runs = [m.parent for m in (folder / "mlruns").glob("*/*/meta.yaml")]
        assert len(runs) == 1, runs  # one MLflow run, not one per API
        assert (runs[0] / "metrics" / "v1_acc").exists()
        assert (runs[0] / "metrics" / "mlflow_loss").exists()
        shown = cli("runs", "show", run_id, "-o", "json").json()
        assert shown["metrics"] == {"mlflow_loss": loss, "v1_acc": 0.75}, shown["metrics"]
        assert shown["tags"] == {"mixed": "yes"}
        # Inside the run, run.get_metrics() sees what mlflow logged too
        assert "('mlflow_loss', " in result.out and "('v1_acc', 0.75)" in result.out
        assert Run(Workspace(project), run_id).get_metrics()["v1_acc"] == 0.75
    assert shown["metrics"]["mlflow_loss"] == 0.25
    assert Run(Workspace(project), run_id).get_metrics()["mlflow_loss"] == [0.5, 0.25]


def docker_rc(image: str, target: str = "local") -> str:
    return (
        f"script: train.py\ntarget: {target}\n"
        "environment:\n"
        "  python: {user_managed_dependencies: true}\n"
        f"  docker: {{enabled: true, base_image: {image}}}\n"
    )


@pytest.mark.xdist_group("docker")
def test_an_unchanged_v1_training_script_logs_in_a_docker_container_on_a_vm(
    cli,
    project,
    write,
    docker_engine,
    docker_vm,  # noqa: F811
):
    # The agent runs from its zipapp there: the run library is copied out of it.
    copy_example(project)
    write(project / "rc.yml", docker_rc(docker_engine.image, docker_vm))
    result = cli("run", "rc.yml", "--experiment", "v1-train")
    assert result.code == 0, result
    run = last_run(project)
    assert run.kind == "vm"
    assert_logged_everything(cli, project, run.id)


@pytest.mark.xdist_group("docker")
def test_an_unchanged_v1_training_script_logs_in_a_docker_container(
    cli, project, write, docker_engine
):
    copy_example(project)
    train = project / "train.py"
    train.write_text(
        "import os\nprint('in container', os.path.exists('/.dockerenv'))\n" + train.read_text()
    )
    write(project / "rc.yml", docker_rc(docker_engine.image))
    result = cli("run", "rc.yml", "--experiment", "v1-train")
    assert result.code == 0, result
    run_id = last_run(project).id
    assert f"run {run_id} experiment v1-train status Running" in result.out
    assert "in container True" in result.out
    assert_logged_everything(cli, project, run_id)
    # the run library reached the container through the run folder, not the image
    assert (
        docker_engine.run(
            "run",
            "--rm",
            "--network",
            "none",
            docker_engine.image,
            "python3",
            "-c",
            "import azureml",
            check=False,
        ).returncode
        != 0
    )


def test_azureml_packages_are_replaced_by_the_run_library_with_a_named_warning(
    cli, project, write, shared_wheels
):
    write(
        project / "t.py",
        "import importlib.metadata as md\n"
        "import tinypkg\n"
        "from azureml.core import Run\n"
        "for name in ('azureml-core', 'azureml-defaults'):\n"
        "    try:\n"
        "        md.version(name)\n"
        "    except md.PackageNotFoundError:\n"
        "        print('not installed', name)\n"
        "Run.get_context().log('acc', 0.5)\n",
    )
    deps = (
        "          - --no-index\n"
        f"          - --find-links {shared_wheels}\n"
        "          - tinypkg==1.0\n"
    )
    rc = (
        "script: t.py\nenvironment:\n  python:\n    conda_dependencies:\n"
        "      dependencies:\n        - pip:\n"
    )
    write(
        project / "rc.yml",
        rc + deps + "          - azureml-defaults\n          - azureml-core==1.48.0\n",
    )
    result = cli("run", "rc.yml")
    assert result.code == 0, result
    assert (
        "warning: [azureml-replaced] azureml-defaults, azureml-core: not installed; the "
        "targets run library stands in" in result.err
    ), result.err
    assert "TARGETS_AZUREML_REAL=1" in result.err
    assert "not installed azureml-core" in result.out
    assert "not installed azureml-defaults" in result.out
    first = last_run(project)
    assert cli("runs", "show", first.id, "-o", "json").json()["metrics"] == {"acc": 0.5}

    # The environment is the one without them: the same hash, reused, not rebuilt.
    write(project / "rc.yml", rc + deps)
    again = cli("run", "rc.yml")
    assert again.code == 0, again
    assert "azureml-replaced" not in again.err
    second = last_run(project)
    hashes = [
        json.loads((project / ".targets" / "runs" / r.id / "run.json").read_text())["environment"][
            "hash"
        ]
        for r in (first, second)
    ]
    assert hashes[0] == hashes[1]


def test_the_real_azureml_packages_are_kept_on_request(project, write):
    import warnings

    from targets.environments import RunLibraryWarning, resolve_environment
    from targets.runconfig.model import RunConfiguration

    def config(extra: dict[str, str]) -> RunConfiguration:
        rc = RunConfiguration.model_validate(
            {
                "script": "t.py",
                "environment_variables": extra,
                "environment": {
                    "python": {
                        "conda_dependencies": {
                            "dependencies": [{"pip": ["azureml-mlflow", "numpy"]}]
                        }
                    }
                },
            }
        )
        return rc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replaced = resolve_environment(config({}), project)
    assert [w.category for w in caught] == [RunLibraryWarning]
    assert "mlflow-skinny is installed in place of azureml-mlflow" in str(caught[0].message)
    assert replaced.pip_packages == ("numpy", "mlflow-skinny")
    kept = resolve_environment(config({"TARGETS_AZUREML_REAL": "1"}), project)
    assert kept.pip_packages == ("azureml-mlflow", "numpy")
    assert kept.hash != replaced.hash


@pytest.mark.xdist_group("docker")
def test_an_unchanged_v1_training_script_logs_on_a_docker_cluster(
    cli: Callable[..., CLIResult], project: Path, node_image: NodeImage
) -> None:
    name = "c" + uuid.uuid4().hex[:8]
    try:
        created = cli(
            "create", name, "--type", "cluster", "--provider", "docker",
            "--image", node_image.name, "--max-nodes", "1",
        )  # fmt: skip
        assert created.code == 0, created
        copy_example(project)
        result = cli("run", "train.py", "--target", name, "--experiment", "v1-train", timeout=300)
        assert result.code == 0, result
        run = last_run(project)
        assert run.kind == "cluster" and run.target == name
        # It ran on a node the cluster started for it, not on this machine.
        assert f"[cluster {name}] waiting for 1 node(s): adding 1 (0 now, max 1)" in result.out
        assert f"run {run.id} experiment v1-train status Running" in result.out
        assert_logged_everything(cli, project, run.id)
    finally:
        cli("delete", name, "--force")
        remove_cluster_containers(node_image.engine, name)
