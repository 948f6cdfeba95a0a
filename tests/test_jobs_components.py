"""Components in v2 jobs: command components from files, registered in the workspace
(``targets components create``) and from a local registry folder; pipeline components;
a sweep over a component. Real azureml-examples files (tests/data/jobs-real/components,
see its SOURCES.md) run to completion on the local target, with small scripts of ours
under the names they use; bad input stops with exit code 2 before anything is queued."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import REPO

REAL = REPO / "tests" / "data" / "jobs-real" / "components" / "azureml-examples" / "cli"
EXAMPLES = REAL / "jobs" / "pipelines-with-components"
ENV = "name: {name}\nversion: '1'\nimage: library/python:latest\n"

pytestmark = pytest.mark.xdist_group("jobs-components")


@pytest.fixture
def jobs(project: Path, cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples in a workspace where the environment they name is registered and
    their compute is a local target (no Docker: images are set aside, never pulled)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.delenv("TARGETS_REGISTRY_PATH", raising=False)
    root = project / "jobs"
    shutil.copytree(EXAMPLES, root)
    (project / "env.yml").write_text(ENV.format(name="sklearn-1.5"))
    assert cli("envs", "create", "--file", "env.yml").code == 0
    assert cli("attach", "cpu-cluster", "--type", "local").code == 0
    return root


def runs(project: Path) -> int:
    return Workspace(project).ledger.count()


def step_output(project: Path, cli, pipeline_out: str, step: str) -> Path:
    """The outputs folder of the pipeline step ``step`` (from the parent's log)."""
    line = next(x for x in pipeline_out.splitlines() if x.startswith(f"step {step}: started"))
    return project / ".targets" / "runs" / line.split()[3] / "outputs"


def refused(result, project: Path, *texts: str) -> None:
    assert result.code == 2, result
    for text in texts:
        assert text in result.err, result
    assert "Traceback" not in result.err
    assert runs(project) == 0  # nothing was queued


# ------------------------------------------------------------------ real files --------


def test_local_components_pass_data_between_steps(jobs: Path, cli, project: Path):
    result = cli("run", str(jobs / "basics" / "1a_e2e_local_components" / "pipeline.yml"))
    assert result.code == 0, result
    # The pipeline's literal inputs reach the component (max_epocs: 20, learning_rate: 1.8),
    # the data folder is read, and each step reads the previous step's output.
    assert '[train_job] trained {"epochs": 20, "learning_rate": 1.8, "rows": 3' in result.out
    assert "[evaluate_job] report: score 5.4 over 3 rows" in result.out
    report = step_output(project, cli, result.out, "evaluate_job") / "eval_output" / "report.txt"
    assert report.read_text() == "score 5.4 over 3 rows\n"


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("2a_basic_component", "[hello_python_world_job] Hello Python World"),
        # sample_input_string is not given: the component's default is used.
        (
            "2b_component_with_input_output",
            "[hello_python_world_job] input string: hello_python_world_default",
        ),
        ("3b_pipeline_with_data", "[component_c] component C wrote ['sample.csv']"),
    ],
)
def test_real_component_pipelines_run(jobs: Path, cli, example: str, expected: str):
    result = cli("run", str(jobs / "basics" / example / "pipeline.yml"))
    assert result.code == 0, result
    assert expected in result.out


def test_three_steps_each_add_to_the_data(jobs: Path, cli, project: Path):
    result = cli("run", str(jobs / "basics" / "3b_pipeline_with_data" / "pipeline.yml"))
    assert result.code == 0, result
    out = step_output(project, cli, result.out, "component_c") / "component_c_output"
    assert (out / "sample.csv").read_text() == "data\ncomponent_a\ncomponent_b\ncomponent_c\n"


def test_pipeline_component_steps_run_inside_the_pipeline(jobs: Path, cli, project: Path):
    folder = (
        jobs / "pipeline_with_pipeline_component" / "pipeline_with_train_eval_pipeline_component"
    )
    result = cli("run", str(folder / "pipeline.yml"), timeout=300)
    assert result.code == 0, result
    # Two uses of one pipeline component, each with its own learning rate (0.1, 0.01),
    # and their outputs reach the compare step through the component's outputs.
    assert "[train_and_evaluate_model1__evaluate_job] report: score 0.4 over 4 rows" in result.out
    assert "[train_and_evaluate_model2__evaluate_job] report: score 0.04 over 4 rows" in result.out
    assert "[compare] best: model1" in result.out
    pipeline = next(r for r in Workspace(project).ledger.list(limit=None) if r.kind == "pipeline")
    children = cli("runs", "list", "--parent", pipeline.id, "-o", "json").json()
    assert len(children) == 7


def test_registered_components_by_latest(jobs: Path, cli, project: Path):
    folder = jobs / "basics" / "1b_e2e_registered_components"
    missing = cli("run", str(folder / "pipeline.yml"))
    refused(missing, project, "the component 'my_train' is not registered", "components create")
    for name in ("train", "score", "eval"):
        created = cli("components", "create", "--file", str(folder / f"{name}.yml"))
        assert created.code == 0, created
        assert f"registered component my_{name}:1" in created.err
    # Registration keeps a copy of the code: a later edit does not change version 1.
    (folder / "eval_src" / "eval.py").write_text("raise SystemExit('edited')\n")
    result = cli("run", str(folder / "pipeline.yml"))
    assert result.code == 0, result
    assert "[evaluate_job] report: score 5.4 over 3 rows" in result.out
    listed = cli("components", "list", "-o", "json").json()
    assert [(c["name"], c["version"]) for c in listed] == [
        ("my_eval", "1"),
        ("my_score", "1"),
        ("my_train", "1"),
    ]


def test_registry_component_without_its_yaml_is_refused_naming_where_to_put_it(
    jobs: Path, cli, project: Path
):
    shutil.copytree(REAL / "foundation-models", project / "foundation-models")
    job = (
        project
        / "foundation-models"
        / "system"
        / "evaluation"
        / "fill-mask"
        / "fill-mask-pipeline.yml"
    )
    result = cli("run", str(job))
    wanted = (
        project / ".targets" / "registries" / "azureml" / "components" / "model_evaluation_pipeline"
    )
    refused(
        result,
        project,
        "fill-mask-pipeline.yml:23: jobs.pipeline_component_job.component",
        "the registry component 'model_evaluation_pipeline' of registry 'azureml' is not "
        "available here",
        str(wanted / "<version>.yml"),
        "TARGETS_REGISTRY_PATH",
    )


# ------------------------------------------------------------------ our own files -----

ECHO_COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: echo
version: {version}
type: command
inputs:
  word:
    type: string
    default: hello
  times:
    type: integer
    default: 1
    min: 1
    max: 3
  extra:
    type: string
    optional: true
  data:
    type: uri_folder
    optional: true
code: ./src
environment: azureml:sklearn-1.5@latest
command: >-
  python echo.py v{version} ${{{{inputs.word}}}} ${{{{inputs.times}}}}
  $[[--extra ${{{{inputs.extra}}}}]] $[[--data ${{{{inputs.data}}}}]]
"""

ECHO_SCRIPT = "import sys\nprint('echo', *sys.argv[1:])\n"


@pytest.fixture
def echo(jobs: Path, write) -> Path:
    """A component with defaults and optional inputs, beside a pipeline folder."""
    folder = jobs / "mine"
    write(folder / "echo.yml", ECHO_COMPONENT.format(version=1))
    write(folder / "src" / "echo.py", ECHO_SCRIPT)
    return folder


def pipeline(component: str, inputs: str = "", compute: str = "local") -> str:
    text = f"type: pipeline\njobs:\n  say:\n    type: command\n    component: {component}\n"
    text += f"    compute: {compute}\n"
    if inputs:
        text += "    inputs:\n" + "".join(f"      {line}\n" for line in inputs.splitlines())
    return text


def test_defaults_and_optional_inputs(echo: Path, cli, write):
    plain = cli("run", str(write(echo / "p1.yml", pipeline("./echo.yml"))))
    assert plain.code == 0, plain
    assert "[say] echo v1 hello 1" in plain.out  # defaults; optional segments dropped
    assert "--extra" not in plain.out and "--data" not in plain.out
    given = cli(
        "run",
        str(
            write(
                echo / "p2.yml",
                pipeline(
                    "file:./echo.yml",
                    "word: bonjour\ntimes: 3\nextra: more\n"
                    "data:\n  type: uri_folder\n  path: ./src",
                ),
            )
        ),
    )
    assert given.code == 0, given
    assert "[say] echo v1 bonjour 3 --extra more --data _inputs/data" in given.out


def test_an_inline_component(echo: Path, cli, write):
    text = (
        "type: pipeline\njobs:\n  say:\n    compute: local\n    inputs: {n: 4}\n"
        "    component:\n      type: command\n      inputs:\n        n: {type: integer}\n"
        "      environment: azureml:sklearn-1.5@latest\n"
        "      command: echo n=${{inputs.n}}\n"
    )
    result = cli("run", str(write(echo / "inline.yml", text)))
    assert result.code == 0, result
    assert "[say] n=4" in result.out


def test_registered_component_by_version_and_latest(echo: Path, cli, write, project: Path):
    assert cli("components", "create", "--file", str(echo / "echo.yml")).code == 0
    write(echo / "echo.yml", ECHO_COMPONENT.format(version=2))
    assert cli("components", "create", "--file", str(echo / "echo.yml")).code == 0
    again = cli("components", "create", "--file", str(echo / "echo.yml"))
    assert again.code == 2 and "echo:2 is registered already" in again.err
    one = cli("run", str(write(echo / "v1.yml", pipeline("azureml:echo:1"))))
    assert one.code == 0 and "[say] echo v1 hello 1" in one.out, one
    latest = cli("run", str(write(echo / "latest.yml", pipeline("azureml:echo@latest"))))
    assert latest.code == 0 and "[say] echo v2 hello 1" in latest.out, latest
    shown = cli("components", "show", "--name", "echo", "--version", "1", "-o", "json").json()
    assert shown["version"] == "1" and shown["inputs"]["times"]["default"] == 1


def test_registry_component_from_a_local_registry_folder(echo: Path, cli, write, project, tmp_path):
    folder = project / ".targets" / "registries" / "team" / "components" / "echo"
    write(folder / "3.yml", ECHO_COMPONENT.format(version=3))
    write(folder / "src" / "echo.py", ECHO_SCRIPT)
    ref = "azureml://registries/team/components/echo"
    result = cli("run", str(write(echo / "r1.yml", pipeline(f"{ref}/versions/3"))))
    assert result.code == 0 and "[say] echo v3 hello 1" in result.out, result
    # TARGETS_REGISTRY_PATH is searched first; labels/latest takes the highest version.
    other = tmp_path / "registries" / "team" / "components" / "echo"
    write(other / "10.yml", ECHO_COMPONENT.format(version=10))
    write(other / "src" / "echo.py", ECHO_SCRIPT)
    env = {"TARGETS_REGISTRY_PATH": str(tmp_path / "registries")}
    latest = cli("run", str(write(echo / "r2.yml", pipeline(f"{ref}/labels/latest"))), env=env)
    assert latest.code == 0 and "[say] echo v10 hello 1" in latest.out, latest
    missing = cli("run", str(write(echo / "r3.yml", pipeline(f"{ref}/versions/4"))))
    assert missing.code == 2
    assert "version '4' of registry 'team' is not available here" in missing.err
    assert (
        str(project / ".targets" / "registries" / "team" / "components" / "echo" / "4.yml")
        in missing.err
    )


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (
            "wrod: hi",
            "input 'wrod': component 'echo' (./echo.yml) has no input 'wrod' "
            "(did you mean 'word'?)",
        ),
        (
            "times: many",
            "input 'times' of component 'echo' (./echo.yml): 'many' is not a valid integer",
        ),
        ("times: 7", "7 is more than the maximum 3"),
        (
            "word:\n  type: uri_folder\n  path: ./src",
            "is a string parameter; it takes a value, not a path",
        ),
        ("data: 5", "input 'data' of component 'echo' (./echo.yml) is a uri_folder"),
    ],
)
def test_bad_inputs_are_refused_before_anything_is_queued(
    echo: Path, cli, write, project, inputs, expected
):
    result = cli("run", str(write(echo / "bad.yml", pipeline("./echo.yml", inputs))))
    refused(result, project, expected, "bad.yml:")


def test_a_missing_required_input_is_refused(echo: Path, cli, write, project):
    write(
        echo / "need.yml",
        "type: command\nname: need\ninputs:\n  data: {type: uri_folder}\n"
        "environment: azureml:sklearn-1.5@latest\ncommand: ls ${{inputs.data}}\n",
    )
    result = cli("run", str(write(echo / "bad.yml", pipeline("./need.yml"))))
    refused(result, project, "required input 'data' of component 'need' (./need.yml) is not given")


def test_an_optional_input_used_outside_a_segment_is_refused(echo: Path, cli, write, project):
    write(
        echo / "opt.yml",
        "type: command\nname: opt\ninputs:\n  x: {type: string, optional: true}\n"
        "environment: azureml:sklearn-1.5@latest\ncommand: echo ${{inputs.x}}\n",
    )
    result = cli("run", str(write(echo / "bad.yml", pipeline("./opt.yml"))))
    refused(result, project, "optional input 'x' of component 'opt' (./opt.yml) is not given")


def test_an_error_in_a_component_points_into_its_file(echo: Path, cli, write, project):
    write(
        echo / "typo.yml",
        "type: command\nname: typo\ncomand: echo hi\nenvironment: azureml:sklearn-1.5@latest\n",
    )
    result = cli("run", str(write(echo / "bad.yml", pipeline("./typo.yml"))))
    refused(result, project, "typo.yml:3: comand: unknown key 'comand' (did you mean 'command'?)")


def test_a_pipeline_input_of_the_wrong_type_is_refused(echo: Path, cli, write, project):
    text = "inputs:\n  n: lots\n" + pipeline("./echo.yml", "times: ${{parent.inputs.n}}")
    result = cli("run", str(write(echo / "bad.yml", text)))
    refused(result, project, "pipeline input 'n': 'lots' is not a valid integer")


SWEEP_COMPONENT = """\
type: command
name: trainer
inputs:
  lr: {type: number, default: 0.1}
  label: {type: string, default: x}
code: ./src
environment: azureml:sklearn-1.5@latest
command: python fit.py ${{inputs.lr}} ${{inputs.label}}
"""
FIT = (
    "import sys\nprint('fit', *sys.argv[1:])\ntry:\n    import mlflow\n"
    "except ImportError:\n    sys.exit(0)\n"
    "mlflow.log_metric('loss', abs(float(sys.argv[1]) - 0.3))\n"
)


def test_sweep_over_a_component(jobs: Path, cli, write, project: Path):
    folder = jobs / "sweep"
    write(folder / "train.yml", SWEEP_COMPONENT)
    write(folder / "src" / "fit.py", FIT)
    job = write(
        folder / "sweep.yml",
        "type: sweep\ntrial: ./train.yml\ncompute: local\ninputs:\n  label: given\n"
        "search_space:\n  lr: {type: choice, values: [0.1, 0.3]}\n"
        "sampling_algorithm: grid\nobjective: {goal: minimize, primary_metric: loss}\n"
        "limits: {max_total_trials: 2, max_concurrent_trials: 2}\n",
    )
    result = cli("run", str(job), timeout=300)
    # The trial's Python may lack MLflow (it is the user's environment, not targets'):
    # then the sweep ends saying no trial logged the metric; the trials still ran.
    assert result.code == 0 or "no trial logged the objective's metric 'loss'" in result.out, result
    sweep = next(r for r in Workspace(project).ledger.list(limit=None) if r.kind == "sweep")
    children = cli("runs", "list", "--parent", sweep.id, "-o", "json").json()
    assert len(children) == 2 and {c["status"] for c in children} == {"Completed"}
    logs = [cli("runs", "logs", c["id"]).out for c in children]
    assert sorted(
        line for text in logs for line in text.splitlines() if line.startswith("fit")
    ) == [
        "fit 0.1 given",
        "fit 0.3 given",
    ]
    bad = write(folder / "bad.yml", job.read_text().replace("  lr:", "  rate:"))
    refused_result = cli("run", str(bad))
    assert refused_result.code == 2
    assert (
        "search_space entry 'rate': component 'trainer' (./train.yml) has no input 'rate'"
        in refused_result.err
    )


def test_components_show_an_unknown_name(cli, project: Path):
    result = cli("components", "show", "--name", "nothing")
    assert result.code == 2 and "not registered" in result.err
    assert json.loads(cli("components", "list", "-o", "json").out) == []
