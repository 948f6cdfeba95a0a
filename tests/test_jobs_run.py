"""Running Azure ML CLI v2 job files: every corpus YAML runs on the local target (its
compute names attached as local targets) or stops before running with a precise error."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import REPO

CORPUS = REPO / "tests" / "data" / "azureml-corpus" / "v2" / "azureml-examples" / "cli" / "jobs"
FIXTURE = REPO / "tests" / "data" / "jobs-fixture"
BASICS = sorted((CORPUS / "basics").glob("*.yml"))
ENV = "name: {name}\nversion: '1'\nimage: library/python:latest\nconda_file: conda.yml\n"
# The image is set aside (no Docker here), so the job's packages come from its conda file:
# a job never borrows targets' own virtualenv (where mlflow happens to be installed).
CONDA = "dependencies:\n  - pip:\n    - mlflow-skinny\n"


@pytest.fixture
def jobs(project: Path, cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The corpus jobs with the fixture scripts beside them, in a workspace where the
    environments they name are registered and their computes are local targets."""
    # No Docker for these runs: the jobs' images are set aside (and never pulled).
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    root = project / "jobs"
    shutil.copytree(CORPUS, root)
    shutil.copytree(FIXTURE / "basics" / "src", root / "basics" / "src")
    shutil.copytree(
        FIXTURE / "single-step" / "scikit-learn" / "iris" / "src",
        root / "single-step" / "scikit-learn" / "iris" / "src",
        dirs_exist_ok=True,
    )
    (project / "conda.yml").write_text(CONDA)
    for name in ("AzureML-sklearn-1.5", "sklearn-1.5"):
        (project / f"{name}.yml").write_text(ENV.format(name=name))
        assert cli("envs", "create", "--file", f"{name}.yml").code == 0
    for target in ("cpu-cluster", "serverless"):
        assert cli("attach", target, "--type", "local").code == 0
    return root / "basics"


def ledger(project: Path) -> Workspace:
    return Workspace(project)


# What each corpus file does here: 0 runs and completes; a string: exit 2 before running,
# with that text in the error. (hello-iris-file and hello-iris-literal have tests below.)
EXPECTED: dict[str, int | str] = {
    "hello-iris-datastore-file.yml": "the datastore 'workspaceblobstore' is not registered",
    "hello-iris-datastore-folder.yml": "the datastore 'workspaceblobstore' is not registered",
    "hello-iris-folder.yml": "cannot reach azuremlexamples.blob.core.windows.net:443",
}


@pytest.mark.parametrize(
    "job",
    [p.name for p in BASICS if p.name not in ("hello-iris-file.yml", "hello-iris-literal.yml")],
)
def test_corpus_job(job: str, jobs: Path, cli, project: Path):
    result = cli("run", str(jobs / job), timeout=180)
    expected = EXPECTED.get(job, 0)
    if expected == 0:
        assert result.code == 0, result
        assert "Completed" in result.err
    else:
        assert result.code == 2, result
        assert str(expected) in result.err
        assert "Traceback" not in result.err
        assert ledger(project).ledger.count() == 0  # nothing started


def test_single_step_job_with_a_wasbs_input_stops_with_advice(jobs: Path, cli, project):
    result = cli("run", str(jobs.parent / "single-step" / "scikit-learn" / "iris" / "job.yml"))
    assert result.code == 2, result
    assert "wasbs://" in result.err and "datastores add" in result.err
    assert ledger(project).ledger.count() == 0


def test_hello_world_and_inputs_with_set(jobs: Path, cli):
    hello = cli("run", str(jobs / "hello-world.yml"), "--stream")
    # The log starts with the preparation of the job's own environment (never targets').
    assert hello.code == 0 and hello.out.strip().splitlines()[-1] == "hello world", hello
    assert "is set aside" in hello.err  # no Docker: the image is set aside, said so
    given = cli(
        "run",
        str(jobs / "hello-world-input.yml"),
        "--set",
        "inputs.hello_string=bonjour",
        "--set",
        "inputs.hello_number=7",
    )
    assert given.code == 0, given
    assert given.out.split()[-2:] == ["bonjour", "7"]


def test_outputs_come_back(jobs: Path, cli, project):
    result = cli("run", str(jobs / "hello-world-output.yml"), "--name", "my-run-1")
    assert result.code == 0, result
    folder = project / ".targets" / "runs" / "my-run-1"
    assert (folder / "outputs" / "helloworld.txt").read_text() == "hello world\n"
    again = cli("run", str(jobs / "hello-world-output.yml"), "--name", "my-run-1")
    assert again.code == 2 and "exists already" in again.err


def test_job_create_for_az_ml_habits(jobs: Path, cli):
    result = cli("job", "create", "--file", str(jobs / "hello-world.yml"), "--stream")
    assert result.code == 0 and "hello world" in result.out, result


def test_sweep_runs_trials_as_children_and_reports_the_best(jobs: Path, cli, project):
    result = cli("run", str(jobs / "hello-sweep.yml"), timeout=300)
    assert result.code == 0, result
    parent = ledger(project).ledger.list(limit=None)
    sweep = next(r for r in parent if r.kind == "sweep")
    children = cli("runs", "list", "--parent", sweep.id, "-o", "json").json()
    assert len(children) == 4 and {c["status"] for c in children} == {"Completed"}
    metrics = {}
    for child in children:
        shown = cli("runs", "show", child["id"], "-o", "json").json()
        metrics[child["id"]] = shown["metrics"]["random_metric"]
        assert shown["params"]["B"] in ("hello", "world", "hello_world")
    best = min(metrics, key=lambda k: metrics[k])
    assert f"best trial {best}" in result.out
    assert sweep.message and best in sweep.message


def test_pipeline_steps_pass_outputs_in_order(jobs: Path, cli, project):
    result = cli("run", str(jobs / "hello-pipeline-io.yml"), timeout=300)
    assert result.code == 0, result
    assert "[hello_job] hello" in result.out and "[world_job] world" in result.out
    lines = result.out.splitlines()
    assert lines.index("step hello_job: Completed") < next(
        i for i, line in enumerate(lines) if line.startswith("step world_job: started")
    )
    pipeline = next(r for r in ledger(project).ledger.list(limit=None) if r.kind == "pipeline")
    children = cli("runs", "list", "--parent", pipeline.id, "-o", "json").json()
    assert len(children) == 2


def test_a_failed_step_stops_its_dependents(jobs: Path, cli, write):
    job = jobs / "broken-pipeline.yml"
    write(
        job,
        """
type: pipeline
jobs:
  first:
    command: echo trying && exit 3
    environment: azureml:sklearn-1.5@latest
    outputs:
      out:
  second:
    command: ls ${{inputs.x}}
    environment: azureml:sklearn-1.5@latest
    inputs:
      x: ${{parent.jobs.first.outputs.out}}
  apart:
    command: echo independent
    environment: azureml:sklearn-1.5@latest
""",
    )
    result = cli("run", str(job), timeout=300)
    assert result.code == 1, result
    assert "step second: not run: step first failed" in result.out
    assert "pipeline steps did not complete" in result.err


def test_datastore_inputs(jobs: Path, cli, tmp_path):
    store = tmp_path / "blob"
    (store / "example-data").mkdir(parents=True)
    shutil.copy(FIXTURE / "data" / "iris.csv", store / "example-data" / "iris.csv")
    assert cli("datastores", "add", "workspaceblobstore", "--path", str(store)).code == 0
    listed = cli("datastores", "list", "-o", "json").json()
    assert listed == {"workspaceblobstore": str(store.resolve())}
    result = cli("run", str(jobs / "hello-iris-datastore-file.yml"))
    assert result.code == 0, result
    assert "--iris-csv: _inputs/iris_csv/iris.csv" in result.out


def test_direct_datastore_input_is_read_through_the_datastore(jobs: Path, cli, project, tmp_path):
    """`mode: direct` on azureml://datastores/...: only Azure ML resolves that URI, so the
    command gets the file through the registered datastore, never the URI itself."""
    store = tmp_path / "blob"
    (store / "data").mkdir(parents=True)
    (store / "data" / "note.txt").write_text("from the datastore\n")
    assert cli("datastores", "add", "workspaceblobstore", "--path", str(store)).code == 0
    (project / "job.yml").write_text(
        "environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest\n"
        "command: cat ${{inputs.d}}\n"
        "inputs:\n"
        "  d: {type: uri_file, mode: direct,\n"
        "      path: azureml://datastores/workspaceblobstore/paths/data/note.txt}\n"
    )
    result = cli("run", "job.yml", "--stream")
    assert result.code == 0, result
    assert "from the datastore" in result.out
    assert "azureml://" not in result.out


class _Server(http.server.ThreadingHTTPServer):
    hits: list[str]


@pytest.fixture
def data_server(tmp_path: Path) -> Iterator[_Server]:
    """A loopback HTTP server with iris.csv, honouring If-None-Match."""
    body = (FIXTURE / "data" / "iris.csv").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.hits.append(self.headers.get("If-None-Match") or "")
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = _Server(("127.0.0.1", 0), Handler)
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_url_inputs_are_downloaded_once_and_revalidated(jobs: Path, cli, data_server):
    url = f"http://127.0.0.1:{data_server.server_address[1]}/datasets/iris.csv"
    for _ in range(2):
        result = cli(
            "run", str(jobs / "hello-iris-file.yml"), "--set", f"inputs.iris_csv.path={url}"
        )
        assert result.code == 0, result
        assert "--iris-csv: _inputs/iris_csv/iris.csv" in result.out
    assert data_server.hits[0] == ""  # the first download
    assert '"v1"' in data_server.hits[1:]  # later: revalidated by ETag, not sent again


def test_the_literal_url_sample_bug_reaches_the_script_verbatim(jobs: Path, cli):
    # In hello-iris-literal.yml `type: uri_file` sits among the inputs, so iris_csv is a
    # literal string: the script gets the URL text (and no download happens).
    result = cli("run", str(jobs / "hello-iris-literal.yml"))
    assert (
        "--iris-csv: https://azuremlexamples.blob.core.windows.net/datasets/iris.csv" in result.out
    ), result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("type: automl\ntask: classification\n", "automl"),
        ("type: Command\ncommand: echo\nenvironment: azureml:sklearn-1.5@latest\n", "Command"),
        (
            "command: echo ${{inputs.nope}}\nenvironment: azureml:sklearn-1.5@latest\n",
            "inputs.nope",
        ),
        (
            "command: echo hi\nenvironment: azureml:not-registered@latest\n",
            "targets envs create --file",
        ),
        (
            "command: echo hi\nenvironment: azureml:sklearn-1.5@latest\ncompute: azureml:nowhere\n",
            "compute 'azureml:nowhere' is not a target of this workspace",
        ),
        (
            "type: pipeline\njobs:\n  a:\n    command: echo ${{inputs.x}}\n"
            "    environment: azureml:sklearn-1.5@latest\n"
            "    inputs:\n      x: ${{parent.jobs.b.outputs.y}}\n    outputs:\n      y:\n"
            "  b:\n    command: echo ${{inputs.x}}\n    environment: azureml:sklearn-1.5@latest\n"
            "    inputs:\n      x: ${{parent.jobs.a.outputs.y}}\n    outputs:\n      y:\n",
            "cycle",
        ),
        (
            "type: sweep\ntrial:\n  command: echo ${{search_space.b}}\n"
            "  environment: azureml:sklearn-1.5@latest\n"
            "search_space:\n  b:\n    type: uniform\n    min_value: 1\n"
            "objective: {goal: minimize, primary_metric: m}\nlimits: {max_total_trials: 2}\n",
            "max_value",
        ),
    ],
)
def test_bad_jobs_exit_2_and_start_nothing(jobs: Path, cli, project, write, text, expected):
    job = write(jobs / "bad.yml", text)
    result = cli("run", str(job))
    assert result.code == 2, result
    assert expected in result.err
    assert "Traceback" not in result.err
    assert ledger(project).ledger.count() == 0


def test_a_sweep_whose_metric_is_never_logged_fails_and_says_so(jobs: Path, cli, write):
    job = write(
        jobs / "silent-sweep.yml",
        """
type: sweep
trial:
  command: echo b=${{search_space.b}}
  environment: azureml:sklearn-1.5@latest
search_space:
  b: {type: choice, values: [1, 2]}
sampling_algorithm: grid
objective: {goal: maximize, primary_metric: accuracy}
limits: {max_total_trials: 2, max_concurrent_trials: 2}
""",
    )
    result = cli("run", str(job), timeout=300)
    assert result.code == 1, result
    assert "no trial logged the objective's metric 'accuracy'" in result.out + result.err


@pytest.mark.parametrize(
    "policy",
    [
        "{type: median_stopping, evaluation_interval: 1, delay_evaluation: 1}",
        "{type: bandit, slack_factor: 0.5, evaluation_interval: 1, delay_evaluation: 1}",
        "{type: truncation_selection, truncation_percentage: 50, evaluation_interval: 1}",
    ],
)
def test_early_termination_stops_a_worse_trial_while_it_runs(
    jobs: Path, cli, write, project, policy
):
    write(
        jobs / "src" / "steps.py",
        """
import sys, time, mlflow
b = float(sys.argv[1])
for step in range(40):
    mlflow.log_metric("loss", b, step=step)
    time.sleep(0.15)
print("finished all steps")
""",
    )
    # The grid is walked in a fixed order: b=1 first (good), then b=50 (worse: to be stopped
    # early while it runs).
    job = write(
        jobs / "pruned-sweep.yml",
        f"""
type: sweep
trial:
  command: python steps.py ${{{{search_space.b}}}}
  code: src
  environment: azureml:sklearn-1.5@latest
search_space:
  b: {{type: choice, values: [50, 1]}}
sampling_algorithm: grid
objective: {{goal: minimize, primary_metric: loss}}
limits: {{max_total_trials: 2, max_concurrent_trials: 1}}
early_termination: {policy}
""",
    )
    result = cli("run", str(job), timeout=300)
    assert result.code == 0, result
    assert "stopped early by the policy" in result.out
    sweep = next(r for r in Workspace(project).ledger.list(limit=None) if r.kind == "sweep")
    children = cli("runs", "list", "--parent", sweep.id, "-o", "json").json()
    assert sorted(c["status"] for c in children) == ["Canceled", "Completed"]
    assert "loss=1" in result.out  # the good trial is the best one
