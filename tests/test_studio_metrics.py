"""The studio's metrics in a real browser: a run's charts hold the points its script logged
(and grow while it runs), runs overlaid on the compare page, a sweep's trials with the best
marked, a pipeline's steps with their statuses, and the experiments pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from targets.workspace import Workspace
from tests.studio_browser import (  # noqa: F401
    Studio,
    browser_fixture,
    page_fixture,
    studio_fixture,
    wait_for,
)

NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # job images set aside

TRAIN = """
import sys, mlflow
scale = float(sys.argv[1])
with mlflow.start_run():
    mlflow.log_param("scale", scale)
    for step, loss in enumerate([0.9, 0.4, 0.2]):
        mlflow.log_metric("loss", loss * scale, step=step * 10)
    mlflow.log_metric("accuracy", 0.5 * scale)
"""


def newest_run(project: Path, **filters: Any) -> str:
    return Workspace(project).ledger.list(limit=1, **filters)[0].id


def series(page: Any, metric: str, scope: str = "#metrics") -> list[dict[str, Any]]:
    """What the chart of ``metric`` shows: [{"run", "label", "points": [[step, time, value]]}]."""
    chart = page.locator(f'{scope} .metric-chart[data-metric="{metric}"]')
    chart.locator("canvas").first.wait_for()
    return json.loads(chart.get_attribute("data-series") or "[]")


def steps_and_values(shown: dict[str, Any]) -> list[tuple[int, float]]:
    return [(step, value) for step, _, value in shown["points"]]


def test_a_runs_chart_holds_the_points_it_logged(project: Path, cli, write, page, studio: Studio):
    write(project / "train.py", TRAIN)
    assert cli("run", "train.py", "1", "-e", "charts").code == 0
    run_id = newest_run(project)

    page.goto(f"{studio.base}/runs/{run_id}")
    page.locator('#metrics .metric-chart[data-metric="loss"] canvas').first.wait_for()
    (loss,) = series(page, "loss")
    assert loss["run"] == run_id
    assert steps_and_values(loss) == [(0, 0.9), (10, 0.4), (20, 0.2)]
    (accuracy,) = series(page, "accuracy")
    assert steps_and_values(accuracy) == [(0, 0.5)]
    params = page.locator("#metrics table.params")
    assert params.locator("td").all_inner_texts() == ["scale", "1.0"]

    # Against time: the same points, the chart drawn again with a time axis.
    page.locator('#metrics button[data-axis="time"]').click()
    assert page.locator('#metrics button[data-axis="time"]').get_attribute("aria-pressed") == "true"
    assert (
        page.locator('#metrics .metric-chart[data-metric="loss"] .u-legend')
        .inner_text()
        .startswith("time")
    )
    assert steps_and_values(series(page, "loss")[0]) == [(0, 0.9), (10, 0.4), (20, 0.2)]

    # The same data as JSON, as the charts read it.
    answer = page.request.get(f"{studio.base}/runs/{run_id}/metrics.json").json()
    assert [(p["step"], p["value"]) for p in answer["metrics"]["loss"]] == [
        (0, 0.9),
        (10, 0.4),
        (20, 0.2),
    ]
    assert answer["params"] == {"scale": "1.0"} and answer["open"] is False


def test_v1_logged_rows_and_tables_show_as_tables(project: Path, cli, write, page, studio):
    write(
        project / "v1.py",
        """
from azureml.core import Run
run = Run.get_context()
run.log("loss", 0.5)
run.log("loss", 0.25)
run.log("optimizer", "adam")
run.log_row("epoch", n=1, acc=0.5)
run.log_row("epoch", n=2, acc=0.75)
""",
    )
    assert cli("run", "v1.py", "-e", "v1").code == 0
    page.goto(f"{studio.base}/runs/{newest_run(project)}")
    assert steps_and_values(series(page, "loss")[0]) == [(0, 0.5), (1, 0.25)]
    table = page.locator('#metrics table.logged-table[data-name="epoch"]')
    assert table.locator("th").all_inner_texts() == ["n", "acc"]
    assert table.locator("tbody td").all_inner_texts() == ["1", "0.5", "2", "0.75"]
    assert page.locator('#metrics pre.logged-value[data-name="optimizer"]').inner_text() == "adam"


def test_a_live_runs_chart_grows_while_it_runs(project: Path, cli, write, page, studio):
    go = project / "go"
    write(
        project / "live.py",
        f"""
import os, time, mlflow
with mlflow.start_run():
    mlflow.log_metric("loss", 1.0, step=0)
    mlflow.log_metric("loss", 0.5, step=1)
    while not os.path.exists({str(go)!r}):
        time.sleep(0.1)
    mlflow.log_metric("loss", 0.25, step=2)
    mlflow.log_metric("loss", 0.125, step=3)
    while os.path.exists({str(go)!r}):
        time.sleep(0.1)
""",
    )
    assert cli("run", "live.py", "-e", "live", "--detach").code == 0
    run_id = newest_run(project)
    page.goto(f"{studio.base}/runs/{run_id}")

    def shown() -> list[tuple[int, float]]:
        chart = page.locator('#metrics .metric-chart[data-metric="loss"]')
        if not chart.count():
            return []
        return steps_and_values(json.loads(chart.get_attribute("data-series") or "[]")[0])

    wait_for(lambda: shown() == [(0, 1.0), (1, 0.5)], 60, "the first two points")
    assert page.locator("#metrics .studio-metrics").get_attribute("data-live") == "true"
    go.touch()  # the script logs two more points, then waits
    wait_for(lambda: len(shown()) == 4, 60, "the chart to grow")
    assert shown() == [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)]
    go.unlink()  # the run ends; the page loads the charts once more, and stops refreshing
    section = page.locator("#metrics .studio-metrics")
    wait_for(
        lambda: (
            section.get_attribute("data-live") == "false"
            and section.get_attribute("data-loaded")
            and shown() == [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)]
        ),
        60,
        "the whole series once the run ended",
    )


def test_experiments_group_runs_and_compare_overlays_the_selected(
    project: Path, cli, write, page, studio
):
    write(project / "train.py", TRAIN)
    for scale in ("1", "2"):
        assert cli("run", "train.py", scale, "-e", "tuning").code == 0
    assert cli("run", "train.py", "3", "-e", "other").code == 0
    tuning = [r.id for r in Workspace(project).ledger.list(experiment="tuning")]

    page.goto(f"{studio.base}/experiments")
    rows = page.locator("table.experiments tbody tr")
    assert rows.count() == 2
    row = page.locator('tr[data-experiment="tuning"]')
    assert row.locator("td.runs").inner_text() == "2"
    assert "2 Completed" in row.inner_text()
    assert page.locator('tr[data-experiment="other"] td.runs').inner_text() == "1"

    row.locator("a").click()
    page.wait_for_url("**/experiments/tuning")
    assert page.locator("table.experiment-runs tbody tr").count() == 2
    for run_id in tuning:
        page.locator(f'input[name="run"][value="{run_id}"]').check()
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/compare?**")

    overlaid = {s["run"]: steps_and_values(s) for s in series(page, "loss", "main")}
    scale_of = {
        tuning[0]: 2.0,  # the newest first
        tuning[1]: 1.0,
    }
    assert overlaid == {
        run_id: [(0, 0.9 * scale), (10, 0.4 * scale), (20, 0.2 * scale)]
        for run_id, scale in scale_of.items()
    }
    assert page.locator('.metric-chart[data-metric="loss"] canvas').count() == 1  # one chart
    params = page.locator('table[data-role="compare-params"] tr[data-name="scale"] td')
    assert params.all_inner_texts() == ["2.0", "1.0"]
    last = page.locator('table[data-role="compare-last"] tr[data-name="accuracy"] td')
    assert last.all_inner_texts() == ["1.0", "0.5"]


SWEEP = """
type: sweep
experiment_name: sweeps
trial:
  command: python train.py ${{search_space.x}}
  code: ./src
  environment: {image: library/python:latest}
search_space:
  x: {type: choice, values: [1, 3, 2]}
sampling_algorithm: grid
objective: {goal: maximize, primary_metric: score}
limits: {max_total_trials: 3, max_concurrent_trials: 3}
compute: local
"""

TRIAL = """
import sys
from azureml.core import Run
run = Run.get_context()
x = float(sys.argv[1])
for step in range(3):
    run.log("score", x * (step + 1))
"""


def test_a_sweep_shows_its_trials_with_the_best_marked(project: Path, cli, write, page, studio):
    write(project / "src" / "train.py", TRIAL)
    write(project / "sweep.yml", SWEEP)
    result = cli("job", "create", "--file", "sweep.yml", "--stream", env=NO_DOCKER, timeout=300)
    assert result.code == 0, result
    sweep = next(r for r in Workspace(project).ledger.list(limit=None) if r.kind == "sweep")

    page.goto(f"{studio.base}/runs/{sweep.id}")
    trials = page.locator("#children table.trials tbody tr")
    trials.nth(2).wait_for()
    assert trials.count() == 3
    by_x = {}
    for i in range(3):
        cells = trials.nth(i).locator("td").all_inner_texts()
        by_x[cells[3]] = (cells[2], float(cells[4]), trials.nth(i).get_attribute("class"))
    assert by_x == {
        "1": ("Completed", 3.0, None),
        "2": ("Completed", 6.0, None),
        "3": ("Completed", 9.0, "best"),
    }
    assert "primary metric score (maximize)" in page.locator("#children").inner_text()
    best = page.locator("#children tr.best").get_attribute("data-run")
    assert page.locator("#children a.best-trial").inner_text() == best
    chart = page.locator("#children .trial-chart")
    chart.locator("canvas").wait_for()
    points = json.loads(chart.get_attribute("data-trials") or "[]")
    assert sorted((p["value"], p["best"]) for p in points) == [
        (3.0, False),
        (6.0, False),
        (9.0, True),
    ]


PIPELINE = """
type: pipeline
experiment_name: pipes
jobs:
  prepare:
    command: echo prepared > ${{{{outputs.data}}}}/data.txt
    environment: {{image: library/python:latest}}
    compute: local
    outputs:
      data:
  train:
    command: while [ ! -f {go} ]; do sleep 0.1; done; cat ${{{{inputs.data}}}}/data.txt
    environment: {{image: library/python:latest}}
    compute: local
    inputs:
      data: ${{{{parent.jobs.prepare.outputs.data}}}}
  report:
    command: cat ${{{{inputs.model}}}}/data.txt
    environment: {{image: library/python:latest}}
    compute: local
    inputs:
      model: ${{{{parent.jobs.prepare.outputs.data}}}}
"""


def test_a_pipeline_shows_its_steps_with_their_statuses_live(
    project: Path, cli, write, page, studio
):
    go = project / "go"
    write(project / "pipe.yml", PIPELINE.format(go=go))
    result = cli("job", "create", "--file", "pipe.yml", env=NO_DOCKER)
    assert result.code == 0, result
    pipeline = next(r for r in Workspace(project).ledger.list(limit=None) if r.kind == "pipeline")
    # The run page shows the children's part once the pipeline has a child.
    wait_for(lambda: Workspace(project).ledger.list(parent_id=pipeline.id), 60, "a first step")

    page.goto(f"{studio.base}/runs/{pipeline.id}")
    graph = page.locator("#children svg.pipeline-graph")

    def status(node: str) -> str | None:
        found = graph.locator(f'g.step[data-node="{node}"]')
        return found.get_attribute("data-status") if found.count() else None

    wait_for(lambda: status("train") == "Running", 60, "the train step to run")
    assert status("prepare") == "Completed"
    assert graph.locator("line").count() == 2  # prepare -> train, prepare -> report
    go.touch()
    wait_for(lambda: status("train") == "Completed", 60, "the train step to complete (live)")
    wait_for(lambda: status("report") == "Completed", 60, "the report step")
    after = page.locator('#children table.steps tr[data-node="train"] td').all_inner_texts()
    assert after[2] == "Completed" and after[3] == "prepare"


def test_metric_points_are_read_as_mlflow_writes_them(tmp_path: Path):
    """One parser for MLflow's metric lines: ``timestamp-ms value step``; a store of an old
    MLflow (no step) reads as step 0; a line being written is passed over."""
    from targets.tracking import MetricPoint, read_metric_points, read_run_metrics

    run = tmp_path / "mlruns" / "1" / "abc"
    (run / "metrics" / "train").mkdir(parents=True)
    (run / "tags").mkdir()
    (tmp_path / "mlruns" / "1" / "meta.yaml").write_text("name: exp\n")
    (run / "meta.yaml").write_text("run_id: abc\n")
    (run / "metrics" / "train" / "loss").write_text("1000 0.5 0\n2500 0.25 1\n3000 0.1")
    (run / "metrics" / "old").write_text("4000 7\n4001 nan 3\n40")
    points = read_metric_points(tmp_path)
    assert points["train/loss"] == [
        MetricPoint(0, 1.0, 0.5),
        MetricPoint(1, 2.5, 0.25),
        MetricPoint(0, 3.0, 0.1),  # no step: 0
    ]
    assert points["old"][0] == MetricPoint(0, 4.0, 7.0) and points["old"][1].step == 3
    assert len(points["old"]) == 2  # "40": half a line
    assert read_run_metrics(tmp_path)["metrics"]["train/loss"] == 0.1


CHILD_LOGS_ON_PARENT = """
import sys
from azureml.core import Run

run = Run.get_context()
run.parent.log("trial_score", float(sys.argv[1]))
"""


def test_metrics_children_log_on_their_parent_are_on_the_parents_chart(
    project: Path, write, page, studio: Studio
):
    """v1's ``run.parent.log`` (HyperDrive and pipeline steps report to their parent):
    the parent's page charts them, as ``parent.get_metrics()`` returns them."""
    from targets.runconfig import RunConfiguration
    from targets.runs import submit_run

    write(project / "parent.py", "print('parent')\n")
    write(project / "child.py", CHILD_LOGS_ON_PARENT)
    ws = Workspace(project)
    parent = submit_run(ws, RunConfiguration(script="parent.py"), source_dir=project)
    parent.wait_for_completion()
    for score in ("0.25", "0.75"):
        child = submit_run(
            ws,
            RunConfiguration(script="child.py", arguments=[score]),
            source_dir=project,
            parent_id=parent.id,
        )
        child.wait_for_completion()
    assert parent.get_metrics() == {"trial_score": [0.25, 0.75]}

    page.goto(f"{studio.base}/runs/{parent.id}")
    (shown,) = series(page, "trial_score")
    assert [value for _, _, value in shown["points"]] == [0.25, 0.75]
