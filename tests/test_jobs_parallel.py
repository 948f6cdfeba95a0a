"""``type: parallel`` pipeline steps (issue 16, part 6): the entry script's
``init()``/``run(mini_batch)`` over mini-batches of a folder's files or an MLTable's rows,
in instance_count x max_concurrency_per_instance worker processes, with
``error_threshold``, ``mini_batch_error_threshold``, ``retry_settings`` and the
``append_row`` output; real azureml-examples files (tests/data/jobs-real/parallel, see its
SOURCES.md) run with local data or stop with exit 2 naming what they need. The driver is
the one v1's ParallelRunStep uses (tests/test_azureml_pipeline.py keeps testing that)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import REPO

REAL = REPO / "tests" / "data" / "jobs-real" / "parallel" / "azureml-examples" / "cli" / "jobs"

pytestmark = pytest.mark.xdist_group("jobs-parallel")

SCORE = """\
import argparse
import os
import time

def init():
    global prefix
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", default="row")
    known, _ = parser.parse_known_args()
    prefix = known.prefix
    print("init in", os.getpid())

tries = {}

def run(mini_batch):
    rows = []
    for path in mini_batch:
        name = os.path.basename(path)
        if name.startswith("bad"):
            raise ValueError("cannot score " + name)
        if name.startswith("flaky"):
            tries[name] = tries.get(name, 0) + 1
            if tries[name] == 1:
                raise RuntimeError("flaky the first time")
        if name.startswith("slow"):
            time.sleep(30)
        words = len(open(path).read().split())
        rows.append(f"{prefix} {name} {words} {os.getpid()}")
    time.sleep(0.3)  # long enough for both workers to take mini-batches
    print("scored", len(rows), "files")
    return rows
"""

COUNT = """\
import os, sys
folder = sys.argv[1]
(lines,) = [open(os.path.join(folder, n)).read().splitlines() for n in os.listdir(folder)]
print("downstream read", len(lines), "rows:", " ".join(l.split()[1] for l in lines))
"""


def pipeline(**step: str) -> str:
    """A pipeline whose step ``score`` runs score.py over ``data/`` (settings in
    ``step`` are YAML lines added to the step), and ``count`` reads its output."""
    extra = "".join(f"    {key}: {value}\n" for key, value in step.items())
    return (
        "type: pipeline\n"
        "jobs:\n"
        "  score:\n"
        "    type: parallel\n"
        "    inputs:\n"
        "      docs: {type: uri_folder, path: data}\n"
        "    outputs:\n"
        "      scored: {type: uri_folder}\n"
        "    input_data: ${{inputs.docs}}\n"
        f"{extra}"
        "    task:\n"
        "      type: run_function\n"
        "      code: src\n"
        "      entry_script: score.py\n"
        "      environment: {image: python:3.11}\n"
        "      program_arguments: --prefix p\n"
        "      append_row_to: ${{outputs.scored}}\n"
        "  count:\n"
        "    command: python count.py ${{inputs.rows}}\n"
        "    code: src\n"
        "    environment: {image: python:3.11}\n"
        "    inputs:\n"
        "      rows: ${{parent.jobs.score.outputs.scored}}\n"
    )


@pytest.fixture
def job(project: Path, write, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with five documents, the entry script and the downstream script. No
    Docker: the steps' images are set aside (isolated environments, never pulled)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for i in range(5):
        write(project / "data" / f"doc{i}.txt", "word " * (i + 1))
    write(project / "src" / "score.py", SCORE)
    write(project / "src" / "count.py", COUNT)
    return project / "pipeline.yml"


def runs(project: Path) -> int:
    return Workspace(project).ledger.count()


def step_folder(out: str, project: Path, step: str) -> Path:
    line = next(x for x in out.splitlines() if x.startswith(f"step {step}: started"))
    return project / ".targets" / "runs" / line.split()[3]


def test_files_in_two_workers_one_row_per_file_and_a_step_downstream_reads_them(
    job: Path, project: Path, cli
):
    job.write_text(pipeline(mini_batch_size='"2"', max_concurrency_per_instance="2"))
    result = cli("run", str(job), timeout=300)
    assert result.code == 0, result
    folder = step_folder(result.out, project, "score")
    lines = (folder / "outputs" / "scored" / "parallel_run_step.txt").read_text().splitlines()
    # One row per file, in the files' order, with the entry script's program_arguments.
    assert [line.split()[:3] for line in lines] == [
        ["p", f"doc{i}.txt", str(i + 1)] for i in range(5)
    ]
    assert len({line.split()[3] for line in lines}) == 2  # two worker processes
    assert "parallel run: 5 files, 3 mini-batches, 2 worker processes" in result.out
    # Each worker's output is in its own log file, under logs/user.
    logs = sorted((folder / "logs" / "user" / "stdout").iterdir())
    assert [p.name for p in logs] == ["process000.stdout.txt", "process001.stdout.txt"]
    assert all("init in" in p.read_text() for p in logs)
    assert "[count] downstream read 5 rows: doc0.txt doc1.txt doc2.txt doc3.txt doc4.txt" in (
        result.out
    )


def test_instances_on_one_machine_are_processes_there_with_a_warning(job: Path, project: Path, cli):
    job.write_text(
        pipeline(mini_batch_size='"1"', resources="{instance_count: 2}") + "    compute: local\n"
    )
    result = cli("run", str(job), timeout=300)
    assert result.code == 0, result
    assert "parallel run: 5 files, 5 mini-batches, 2 worker processes" in result.out
    assert "the 2 instances asked for run as worker processes on this machine" in result.out


def test_error_threshold_exceeded_fails_the_step_naming_the_count(
    job: Path, project: Path, cli, write
):
    write(project / "data" / "bad.txt", "x")
    job.write_text(
        pipeline(mini_batch_size='"1"', error_threshold="0", retry_settings="{max_retries: 0}")
    )
    result = cli("run", str(job), timeout=300)
    assert result.code == 1, result
    assert "1 failed files exceed error_threshold 0" in result.out + result.err
    assert "ValueError: cannot score bad.txt" in result.out + result.err
    assert "step count: not run" in result.out


def test_error_threshold_minus_one_completes_without_the_failed_files(
    job: Path, project: Path, cli, write
):
    write(project / "data" / "bad.txt", "x")
    job.write_text(
        pipeline(mini_batch_size='"1"', error_threshold="-1", retry_settings="{max_retries: 0}")
    )
    result = cli("run", str(job), timeout=300)
    assert result.code == 0, result
    assert "1 of 6 files failed, 1 of 6 mini-batches failed" in result.out
    assert "[count] downstream read 5 rows" in result.out


def test_a_failed_mini_batch_is_tried_again(job: Path, project: Path, cli, write):
    write(project / "data" / "flaky.txt", "one two")
    job.write_text(pipeline(mini_batch_size='"10"', error_threshold="0"))
    result = cli("run", str(job), timeout=300)
    assert result.code == 0, result
    assert "mini-batch 0: 6 rows (try 2)" in result.out
    # The failed try is in the worker's own log.
    stderr = step_folder(result.out, project, "score") / "logs" / "user" / "stderr"
    logged = (stderr / "process000.stderr.txt").read_text()
    assert "mini-batch 0: try 1 of 3 failed" in logged
    assert "RuntimeError: flaky the first time" in logged


def test_a_mini_batch_over_its_timeout_fails(job: Path, project: Path, cli, write):
    write(project / "data" / "slow.txt", "z")
    job.write_text(
        pipeline(
            mini_batch_size='"1"',
            mini_batch_error_threshold="0",
            retry_settings="{max_retries: 0, timeout: 2}",
        )
    )
    result = cli("run", str(job), timeout=300)
    assert result.code == 1, result
    text = result.out + result.err
    assert "run() did not return within the timeout of 2 s" in text
    assert "1 failed mini-batches exceed mini_batch_error_threshold 0" in text


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"mini_batch_size": "ten"}, "mini_batch_size 'ten' is neither a number of files"),
        ({"mini_batch_size": "10kb"}, "mini_batch_size '10kb' is a size"),
        ({"error_threshold": "-2"}, "error_threshold"),
        ({"input_data": "${{inputs.nope}}"}, "input_data names no input of this step: 'nope'"),
    ],
)
def test_bad_values_are_refused_before_anything_is_queued(
    job: Path, project: Path, cli, setting: dict[str, str], message: str
):
    text = pipeline(**setting) if "input_data" not in setting else pipeline()
    if "input_data" in setting:
        text = text.replace("input_data: ${{inputs.docs}}", f"input_data: {setting['input_data']}")
    job.write_text(text)
    result = cli("run", str(job))
    assert result.code == 2, result
    assert message in result.err, result
    assert "Traceback" not in result.err
    assert runs(project) == 0


def test_a_missing_entry_script_is_refused_before_anything_is_queued(job: Path, project: Path, cli):
    job.write_text(pipeline().replace("      entry_script: score.py\n", ""))
    missing_key = cli("run", str(job))
    assert missing_key.code == 2, missing_key
    assert "entry_script" in missing_key.err
    job.write_text(pipeline().replace("entry_script: score.py", "entry_script: nope.py"))
    missing_file = cli("run", str(job))
    assert missing_file.code == 2, missing_file
    assert "entry_script 'nope.py' not found" in missing_file.err
    assert runs(project) == 0


# ------------------------------------------------------------------ tabular ------------

TABLE = """\
import os

def init():
    print("tabular init")

def run(mini_batch):
    mini_batch["double"] = mini_batch["value"] * 2
    return mini_batch[["name", "double"]]
"""

PANDAS = "dependencies:\n  - python=3.11\n  - pip:\n    - pandas\n"


@pytest.mark.slow
def test_an_mltable_is_cut_into_mini_batches_of_rows_by_size(
    project: Path, cli, write, monkeypatch
):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    rows = "".join(f"item{i:03d},{i}\n" for i in range(40))  # 40 rows of 10-11 bytes
    write(project / "table" / "rows.csv", "name,value\n" + rows)
    write(
        project / "table" / "MLTable",
        "paths:\n  - file: ./rows.csv\ntransformations:\n  - read_delimited:\n"
        "      delimiter: ','\n      encoding: utf8\n      header: all_files_same_headers\n",
    )
    write(project / "src" / "table.py", TABLE)
    write(project / "conda.yml", PANDAS)
    job = write(
        project / "pipeline.yml",
        textwrap.dedent(
            """\
            type: pipeline
            jobs:
              double:
                type: parallel
                inputs:
                  rows: {type: mltable, path: ./table, mode: direct}
                outputs:
                  doubled: {type: uri_file}
                input_data: ${{inputs.rows}}
                mini_batch_size: "100b"
                max_concurrency_per_instance: 2
                task:
                  code: src
                  entry_script: table.py
                  environment: {image: python:3.11, conda_file: conda.yml}
                  append_row_to: ${{outputs.doubled}}
            """
        ),
    )
    result = cli("run", str(job), timeout=600)
    assert result.code == 0, result
    # ~10.6 bytes a row: 9 rows per mini-batch of 100 bytes.
    assert "parallel run: 40 rows, 5 mini-batches, 2 worker processes" in result.out
    out = step_folder(result.out, project, "double") / "outputs" / "doubled" / "doubled"
    assert out.read_text().splitlines() == [f"item{i:03d} {2 * i}" for i in range(40)]


# ------------------------------------------------------------------ real files ---------


@pytest.fixture(scope="module")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uv cache for the real files' environments (their conda files pin packages
    such as tensorflow): each is downloaded once, not once per test."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def real(project: Path, cli, monkeypatch: pytest.MonkeyPatch, uv_cache: Path) -> Path:
    """The examples, unchanged, in a workspace where their compute (cpu-cluster) is the
    local machine. No Docker: their mcr.microsoft.com images are set aside and their
    conda files are built (with the Python each pins, from pyenv)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_cache))
    shutil.copytree(REAL, project / "jobs")
    assert cli("attach", "cpu-cluster", "--type", "local").code == 0
    return project / "jobs"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "output"),
    [
        ("pipelines/iris-batch-prediction-using-parallel", "job_output_file"),
        ("parallel/2a_iris_batch_prediction", "aggregated_returns.csv"),
    ],
)
def test_real_iris_batch_predictions_over_an_mltable(
    real: Path, project: Path, cli, example: str, output: str
):
    result = cli("run", str(real / example / "pipeline.yml"), timeout=900)
    assert result.code == 0, result
    # instance_count 2 x max_concurrency_per_instance 2 on one machine: 4 workers.
    assert "parallel run: 12 rows, 1 mini-batches, 1 worker processes" in result.out
    assert "the 2 instances asked for run as worker processes" in result.out
    folder = step_folder(result.out, project, "batch_prediction") / "outputs" / "job_output_file"
    rows = (folder / output).read_text().splitlines()
    assert len(rows) == 12
    assert rows[0] == "5.1 1.4 setosa" and rows[3] == "7.0 4.7 other"


@pytest.mark.slow
def test_real_mnist_pipeline_identifies_the_images_the_step_before_wrote(
    real: Path, project: Path, cli
):
    job = real / "parallel" / "3a_mnist_batch_identification" / "pipeline.yml"
    result = cli("run", str(job), timeout=900)
    assert result.code == 0, result
    assert "parallel run: 12 files, 3 mini-batches" in result.out  # mini_batch_size "5"
    folder = step_folder(result.out, project, "predict_digits_mnist") / "outputs"
    rows = (folder / "job_output_file" / "aggregated_returns.csv").read_text().splitlines()
    assert rows == [f"{i:03d}_{i % 10}.png {i % 10}" for i in range(12)]


@pytest.mark.slow
def test_real_oj_sales_pipeline_trains_one_model_per_partition(real: Path, project: Path, cli):
    job = real / "parallel" / "1a_oj_sales_prediction" / "pipeline.yml"
    result = cli("run", str(job), timeout=900)
    assert result.code == 0, result
    # partition_keys [Store, Brand]: one mini-batch per store and brand.
    assert "parallel run: 12 rows, 4 mini-batches" in result.out
    assert "parallel run: 0 of 12 rows failed" in result.out
    models = step_folder(result.out, project, "parallel_train") / "outputs" / "model_folder"
    assert sorted(p.name for p in models.iterdir()) == [
        "dominicks_1000.json", "dominicks_1001.json", "tropicana_1000.json",
        "tropicana_1001.json",
    ]  # fmt: skip
