"""Azure ML v1 pipelines with only their imports changed (``targets.azureml.pipeline``):
steps run as child runs in dependency order on their own targets (this machine, the test
sshd, the Databricks emulator), PipelineData passes from step to step, StepSequence
orders steps, ``allow_reuse`` skips a step whose inputs did not change, a failed step
stops its dependents, ParallelRunStep runs an entry script over mini-batches in worker
processes, and bad pipelines are refused before anything runs. The v2 pipeline driver
runs them all (one engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from targets.azureml.core import Workspace
from targets.azureml.pipeline.core import (
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    StepSequence,
)
from targets.azureml.pipeline.steps import (
    DatabricksStep,
    ParallelRunConfig,
    ParallelRunStep,
    PythonScriptStep,
)
from targets.errors import UsageError
from targets.experiment import Environment, Experiment
from targets.runconfig.model import RunConfiguration
from targets.runs import Run
from targets.testing.fixtures import CLIResult
from tests.databricks_emulator import DatabricksEmulator
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.test_vm import attach_args

CLI = Callable[..., CLIResult]


def v1_workspace(project: Path) -> Workspace:
    (project / ".azureml").mkdir(exist_ok=True)
    (project / ".azureml" / "config.json").write_text(
        json.dumps({"subscription_id": "0000", "resource_group": "rg", "workspace_name": "ws"})
    )
    return Workspace.from_config()


def user_managed() -> RunConfiguration:
    rc = RunConfiguration()
    rc.environment.python.user_managed_dependencies = True
    return rc


def script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


PREP = """\
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--output")
parser.add_argument("--counter")
args = parser.parse_args()
if args.counter:
    with open(args.counter, "a") as fh:
        fh.write("ran\\n")
os.makedirs(args.output, exist_ok=True)
with open(os.path.join(args.output, "rows.txt"), "w") as fh:
    fh.write("3 apples\\n")
print("prep wrote", args.output)
"""

TRAIN = """\
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--input")
parser.add_argument("--alpha")
parser.add_argument("--counter")
args = parser.parse_args()
if args.counter:
    with open(args.counter, "a") as fh:
        fh.write("ran\\n")
text = open(os.path.join(args.input, "rows.txt")).read()
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as fh:
    fh.write(text.strip() + " alpha=" + args.alpha)
print("train read", text.strip())
"""


def finished(run: Run) -> str:
    run.wait_for_completion(raise_on_error=False)
    return run.get_status()


def submitted(ws: Workspace, experiment: str, pipeline: Pipeline, **kwargs: Any) -> PipelineRun:
    run = Experiment(ws, experiment).submit(pipeline, **kwargs)
    assert isinstance(run, PipelineRun)
    return run


def test_pipeline_data_passes_from_one_step_to_the_next(project: Path, cli: CLI) -> None:
    ws = v1_workspace(project)
    prep_dir = script(project / "prep", "prep.py", PREP)
    train_dir = script(project / "train", "train.py", TRAIN)
    rows = PipelineData("rows")
    alpha = PipelineParameter("alpha", default_value=0.1)
    PythonScriptStep(
        script_name="prep.py", arguments=["--output", rows], outputs=[rows],
        source_directory=str(prep_dir), compute_target="local", runconfig=user_managed(),
    )  # fmt: skip
    train = PythonScriptStep(
        script_name="train.py", name="train", arguments=["--input", rows, "--alpha", alpha],
        inputs=[rows], source_directory=str(train_dir), compute_target="local",
        runconfig=user_managed(),
    )  # fmt: skip
    # Only the last step is listed: v1's resolve_closure brings in the step writing its input.
    run = submitted(
        ws, "pipe", Pipeline(workspace=ws, steps=[train]), pipeline_parameters={"alpha": 0.5}
    )
    assert isinstance(run, PipelineRun)
    assert finished(run) == "Completed"
    steps = run.get_steps()
    assert [s.name for s in steps] == ["prep.py", "train"]
    assert [s.get_status() for s in steps] == ["Completed", "Completed"]
    (trained,) = run.find_step_run("train")
    assert (trained.folder / "outputs" / "model.txt").read_text() == "3 apples alpha=0.5"
    out = steps[0].get_output_data("rows").download(project / "got")
    assert (Path(out) / "rows.txt").read_text() == "3 apples\n"
    # One implementation, two front ends: the CLI shows the steps as the pipeline's children.
    children = cli("runs", "list", "--parent", run.id, "-o", "json").json()
    assert isinstance(children, list)
    assert sorted(c["display_name"] for c in children) == ["prep.py", "train"]
    log = (run.folder / "driver.log").read_text()
    assert log.index("step prep_py: started") < log.index("step train: started")


def test_step_sequence_runs_steps_one_after_another(project: Path) -> None:
    ws = v1_workspace(project)
    trace = project / "trace.txt"
    # Without the sequence "slow" would finish last: the three would start together.
    src = script(
        project / "src",
        "mark.py",
        "import sys, time\ntime.sleep(float(sys.argv[2]))\n"
        "open(sys.argv[3], 'a').write(sys.argv[1] + '\\n')\n",
    )
    steps = [
        PythonScriptStep(
            "mark.py",
            name=name,
            arguments=[name, delay, str(trace)],
            source_directory=str(src),
            runconfig=user_managed(),
            allow_reuse=False,
        )
        for name, delay in (("slow", 1.5), ("middle", 0.5), ("fast", 0))
    ]
    run = submitted(ws, "seq", Pipeline(ws, StepSequence(steps=steps)))
    assert finished(run) == "Completed"
    assert trace.read_text().split() == ["slow", "middle", "fast"]


def test_allow_reuse_skips_a_step_whose_inputs_did_not_change(project: Path) -> None:
    ws = v1_workspace(project)
    counter_prep, counter_train = project / "prep-count", project / "train-count"
    prep_dir = script(project / "prep", "prep.py", PREP)
    train_dir = script(project / "train", "train.py", TRAIN)

    def pipeline() -> Pipeline:
        rows = PipelineData("rows")
        prep = PythonScriptStep(
            "prep.py", arguments=["--output", rows, "--counter", str(counter_prep)],
            outputs=[rows], source_directory=str(prep_dir), runconfig=user_managed(),
        )  # fmt: skip
        train = PythonScriptStep(
            "train.py", arguments=["--input", rows, "--alpha", 1, "--counter", str(counter_train)],
            inputs=[rows], source_directory=str(train_dir), runconfig=user_managed(),
            allow_reuse=False,
        )  # fmt: skip
        return Pipeline(ws, [prep, train])

    first = submitted(ws, "reuse", pipeline())
    assert finished(first) == "Completed"
    second = submitted(ws, "reuse", pipeline())
    assert finished(second) == "Completed"
    assert counter_prep.read_text() == "ran\n"  # prep did not run again
    assert counter_train.read_text() == "ran\nran\n"  # allow_reuse=False: it ran again
    prep_first, _ = first.get_steps()
    prep_second, train_second = second.get_steps()
    assert prep_second.reused_from == prep_first.id and prep_second.id != prep_first.id
    assert train_second.reused_from is None
    # The reused outputs were passed on: the second train step read them.
    assert (train_second.folder / "outputs" / "model.txt").read_text() == "3 apples alpha=1"
    assert (
        f"reused the outputs of run {prep_first.id}" in (second.folder / "driver.log").read_text()
    )

    # A changed source folder is a changed step; regenerate_outputs ignores reuse.
    (prep_dir / "notes.txt").write_text("changed\n")
    third = submitted(ws, "reuse", pipeline())
    assert finished(third) == "Completed"
    assert counter_prep.read_text() == "ran\nran\n"
    fourth = pipeline().submit("reuse", regenerate_outputs=True)
    assert finished(fourth) == "Completed"
    assert counter_prep.read_text() == "ran\nran\nran\n"


def test_a_failed_step_stops_the_steps_after_it(project: Path) -> None:
    ws = v1_workspace(project)
    marker = project / "second-ran"
    bad = script(project / "bad", "bad.py", "raise SystemExit('the input is broken')\n")
    later = script(
        project / "later", "later.py", "import sys\nopen(sys.argv[-1], 'w').write('x')\n"
    )
    data = PipelineData("data")
    first = PythonScriptStep(
        "bad.py", arguments=["--out", data], outputs=[data], source_directory=str(bad),
        runconfig=user_managed(),
    )  # fmt: skip
    second = PythonScriptStep(
        "later.py", arguments=[data, str(marker)], inputs=[data], source_directory=str(later),
        runconfig=user_managed(),
    )  # fmt: skip
    run = submitted(ws, "fails", Pipeline(ws, [first, second]))
    assert finished(run) == "Failed"
    assert [(s.name, s.get_status()) for s in run.get_steps()] == [("bad.py", "Failed")]
    assert not marker.exists()
    log = (run.folder / "driver.log").read_text()
    assert "the input is broken" in log
    assert "step later_py: not run: step bad_py failed" in log

    # A step that completes without writing its PipelineData: the reader fails, named.
    lazy = script(project / "lazy", "lazy.py", "print('wrote nothing')\n")
    empty = PipelineData("empty")
    writer = PythonScriptStep(
        "lazy.py", arguments=[empty], outputs=[empty], source_directory=str(lazy),
        runconfig=user_managed(),
    )  # fmt: skip
    reader = PythonScriptStep(
        "later.py", arguments=[empty, str(marker)], source_directory=str(later),
        runconfig=user_managed(),
    )  # fmt: skip
    run = submitted(ws, "fails", Pipeline(ws, [writer, reader]))
    assert finished(run) == "Failed"
    log = (run.folder / "driver.log").read_text()
    assert "left no folder outputs/empty" in log
    assert not marker.exists()


def test_bad_pipelines_are_refused_before_anything_runs(project: Path) -> None:
    ws = v1_workspace(project)
    src = script(project / "src", "s.py", "print('x')\n")
    exp = Experiment(ws, "bad")

    orphan = PipelineData("orphan")
    reader = PythonScriptStep("s.py", name="reader", arguments=[orphan], source_directory=str(src))
    with pytest.raises(UsageError, match="reads PipelineData 'orphan', which no step"):
        exp.submit(Pipeline(ws, [reader]))

    x, y = PipelineData("x"), PipelineData("y")
    a = PythonScriptStep("s.py", name="a", inputs=[y], outputs=[x], source_directory=str(src))
    b = PythonScriptStep("s.py", name="b", inputs=[x], outputs=[y], source_directory=str(src))
    with pytest.raises(UsageError, match="cycle: step 'a' -> 'b' -> 'a'"):
        exp.submit(Pipeline(ws, [a, b]))

    lost = PythonScriptStep("s.py", name="lost", source_directory=str(src), compute_target="gpu9")
    with pytest.raises(UsageError, match=r"step 'lost'.*gpu9") as caught:
        exp.submit(Pipeline(ws, [lost]))
    assert caught.value.exit_code == 2

    missing = PythonScriptStep("nope.py", source_directory=str(src))
    with pytest.raises(UsageError, match=r"'nope\.py' does not exist"):
        exp.submit(Pipeline(ws, [missing]))

    with pytest.raises(UsageError, match="notebook_path is not supported"):
        DatabricksStep(name="nb", notebook_path="/Users/me/prep", compute_target="dbx")
    with pytest.raises(UsageError, match="node_count 2"):
        ParallelRunConfig(None, "score.py", 10, "append_row", "local", node_count=2)
    assert ws.ledger.list(limit=None) == []
    assert not (project / ".targets" / "runs").exists()


def test_a_step_runs_on_an_attached_vm(sshd: SSHServer, project: Path, cli: CLI) -> None:
    attached = cli(*attach_args(sshd, "dsvm", "--ssh-key", str(sshd.key), "--accept-host-key"))
    assert attached.code == 0, attached
    ws = v1_workspace(project)
    from targets.azureml.core.compute import ComputeTarget

    vm = ComputeTarget(workspace=ws, name="dsvm")
    rows = PipelineData("rows")
    prep = PythonScriptStep(
        "prep.py", arguments=["--output", rows], outputs=[rows],
        source_directory=str(script(project / "prep", "prep.py", PREP)), runconfig=user_managed(),
    )  # fmt: skip
    train = PythonScriptStep(
        "train.py", arguments=["--input", rows, "--alpha", "2"], inputs=[rows],
        source_directory=str(script(project / "train", "train.py", TRAIN)), compute_target=vm,
        runconfig=user_managed(),
    )  # fmt: skip
    run = submitted(ws, "onvm", Pipeline(ws, [prep, train]))
    assert finished(run) == "Completed", (run.folder / "driver.log").read_text()
    first, second = run.get_steps()
    assert (first.record.target, second.record.target) == ("local", "dsvm")
    assert (second.folder / "outputs" / "model.txt").read_text() == "3 apples alpha=2"


ENTRY = """\
import argparse, os, time
prefix = None

def init():
    global prefix
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix")
    prefix = parser.parse_known_args()[0].prefix

def run(mini_batch):
    time.sleep(0.3)
    rows = []
    for path in mini_batch:
        if path.endswith("bad.txt"):
            continue
        words = len(open(path).read().split())
        rows.append(f"{prefix} {os.path.basename(path)} {words} {os.getpid()}")
    return rows
"""


def test_parallel_run_step_runs_mini_batches_in_two_workers(project: Path) -> None:
    ws = v1_workspace(project)
    data = project / "data"
    data.mkdir()
    for i in range(7):
        (data / f"doc{i}.txt").write_text("word " * (i + 1))
    src = script(project / "score", "score.py", ENTRY)
    env = Environment("score-env")
    env.python.user_managed_dependencies = True
    config = ParallelRunConfig(
        source_directory=str(src), entry_script="score.py", mini_batch_size="2",
        error_threshold=0, output_action="append_row", environment=env,
        compute_target="local", node_count=1, process_count_per_node=2,
    )  # fmt: skip
    scored = PipelineData("scored")
    step = ParallelRunStep(
        name="score", parallel_run_config=config, inputs=[str(data)], output=scored,
        arguments=["--prefix", "p"],
    )  # fmt: skip
    run = submitted(ws, "batch", Pipeline(ws, [step]))
    assert finished(run) == "Completed", (run.folder / "driver.log").read_text()
    (score,) = run.get_steps()
    lines = (
        (score.get_output_data("scored").path / "parallel_run_step.txt").read_text().splitlines()
    )
    assert [line.split()[:3] for line in lines] == [
        ["p", f"doc{i}.txt", str(i + 1)] for i in range(7)
    ]
    assert len({line.split()[3] for line in lines}) == 2  # two worker processes

    # A file for which run() returns no row is a failure; over error_threshold the step fails.
    (data / "bad.txt").write_text("x")
    failing = submitted(ws, "batch", Pipeline(ws, [step]))
    assert finished(failing) == "Failed"
    assert "exceed error_threshold 0" in (failing.get_steps()[0].folder / "driver.log").read_text()


TOKEN = "dapi-test-0123456789abcdef"
CLUSTER = "0123-456789-abcde"


@pytest.fixture
def emulator() -> Iterator[DatabricksEmulator]:
    pytest.importorskip("databricks.sdk")
    with DatabricksEmulator(token=TOKEN) as dbx:
        yield dbx


def test_databricks_step_runs_its_script_on_the_databricks_target(
    emulator: DatabricksEmulator, project: Path, cli: CLI
) -> None:
    host = emulator.host
    attached = cli(
        "attach", "dbx", "--type", "databricks", "--host", host, "--token-stdin",
        "--cluster-id", CLUSTER, input=TOKEN + "\n",
    )  # fmt: skip
    assert attached.code == 0, attached
    ws = v1_workspace(project)
    rows = PipelineData("rows")
    prep = PythonScriptStep(
        "prep.py", arguments=["--output", rows], outputs=[rows],
        source_directory=str(script(project / "prep", "prep.py", PREP)), runconfig=user_managed(),
    )  # fmt: skip
    dbx_src = script(
        project / "dbx",
        "count.py",
        "import argparse, os\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--scale')\nparser.add_argument('-rows')\n"
        "parser.add_argument('-counted')\nargs = parser.parse_args()\n"
        "n = int(open(os.path.join(args.rows, 'rows.txt')).read().split()[0])\n"
        "os.makedirs(args.counted, exist_ok=True)\n"
        "open(os.path.join(args.counted, 'n.txt'), 'w').write(str(n * int(args.scale)))\n",
    )
    counted = PipelineData("counted")
    # A bad cluster in the step is refused when the step is made, before anything runs.
    with pytest.raises(UsageError, match=r"DatabricksStep 'count'.*spark_version"):
        DatabricksStep(
            name="count", num_workers=1, node_type="Standard_DS3_v2",
            python_script_name="count.py", source_directory=str(dbx_src), compute_target="dbx",
        )  # fmt: skip
    # The step's own cluster (v1's DatabricksStep fields) wins over the target's.
    count = DatabricksStep(
        name="count", inputs=[rows], outputs=[counted], num_workers=1,
        spark_version="15.4.x-scala2.12", node_type="Standard_DS3_v2",
        python_script_name="count.py", python_script_params=["--scale", "10"],
        source_directory=str(dbx_src), compute_target="dbx", allow_reuse=False,
    )  # fmt: skip
    run = submitted(ws, "dbx", Pipeline(ws, [prep, count]))
    assert finished(run) == "Completed", (run.folder / "driver.log").read_text()
    _, second = run.get_steps()
    assert (second.name, second.record.target, second.record.kind) == ("count", "dbx", "databricks")
    assert (second.folder / "outputs" / "counted" / "n.txt").read_text() == "30"
    submits = [body for _, path, body in emulator.calls if path.endswith("/jobs/runs/submit")]
    (task,) = submits[-1]["tasks"]
    assert task["new_cluster"] == {
        "spark_version": "15.4.x-scala2.12",
        "node_type_id": "Standard_DS3_v2",
        "num_workers": 1,
    }
    assert "existing_cluster_id" not in task

    ran = run_example("databricks_step.py", project, DATABRICKS_TARGET="dbx")
    assert "y: n=20 mean=" in ran.stdout.splitlines()[-1]


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "azureml-v1" / "pipeline"


def run_example(name: str, project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    ran = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran


def test_the_pipeline_examples_run_with_only_their_imports_changed(project: Path, cli: CLI) -> None:
    v1_workspace(project)
    ran = run_example("pipeline.py", project)
    assert ran.stdout.splitlines()[-2:] == ["prepare data Completed", "train Completed"]
    assert "[train] trained on 100 rows" in ran.stdout
    # The unchanged training script logged through Run.get_context(): targets runs show has it.
    (train,) = [
        r for r in Workspace.from_config().ledger.list(limit=None) if r.display_name == "train"
    ]
    shown = cli("runs", "show", train.id, "-o", "json").json()
    assert isinstance(shown, dict) and "loss" in shown["metrics"]

    scored = run_example("parallel_run.py", project)
    assert scored.stdout.splitlines()[-5:] == [
        "batch.txt 8 1",
        "fox.txt 9 2",
        "pipeline.txt 10 1",
        "rows.txt 8 2",
        "workers.txt 9 0",
    ]


def test_pipeline_steps_exist_at_the_v1_module_paths() -> None:
    import importlib

    for module, names in {
        "targets.azureml.pipeline.core": ["Pipeline", "PipelineData", "PipelineParameter",
                                          "StepSequence", "PipelineRun", "StepRun"],
        "targets.azureml.pipeline.core.graph": ["PipelineData", "PipelineParameter"],
        "targets.azureml.pipeline.core.run": ["PipelineRun", "StepRun"],
        "targets.azureml.pipeline.steps": ["PythonScriptStep", "DatabricksStep",
                                           "ParallelRunStep", "ParallelRunConfig"],
    }.items():  # fmt: skip
        loaded = importlib.import_module(module)
        for name in names:
            assert hasattr(loaded, name), f"{module}.{name}"
    assert os.path.basename(__file__) == "test_azureml_pipeline.py"


def test_mpi_step_starts_its_processes_with_mpirun(project: Path) -> None:
    from targets.azureml.pipeline.steps import MpiStep

    ws = v1_workspace(project)
    src = script(
        project / "mpi",
        "hello.py",
        "import os, sys\nrank = os.environ['OMPI_COMM_WORLD_RANK']\n"
        "os.makedirs(sys.argv[1], exist_ok=True)\n"
        "open(os.path.join(sys.argv[1], 'rank' + rank), 'w').write(rank)\n",
    )
    ranks = PipelineData("ranks")
    step = MpiStep(
        name="hello", source_directory=str(src), script_name="hello.py", arguments=[ranks],
        outputs=[ranks], compute_target="local", node_count=1, process_count_per_node=2,
    )  # fmt: skip
    run = submitted(ws, "mpi", Pipeline(ws, [step]))
    assert finished(run) == "Completed", (run.folder / "driver.log").read_text()
    (hello,) = run.get_steps()
    assert sorted(p.name for p in hello.get_output_data("ranks").path.iterdir()) == [
        "rank0",
        "rank1",
    ]
