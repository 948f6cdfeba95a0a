"""MLflow tracking: every run logs to a store that ends up in the workspace.

Each run gets ``MLFLOW_TRACKING_URI`` pointing at an MLflow *file store* inside its own
run folder on the target (``wd/.targets/mlruns``), so ``mlflow.log_*`` and
``mlflow.autolog()`` work unchanged. The store comes back with ``./outputs`` and
``./logs`` (as ``mlruns/`` in the run's workspace folder). This module then merges it into
the workspace's store, ``.targets/mlruns``, which ``mlflow ui`` reads:

    MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri .targets/mlruns

Design choice: a file store that is collected, not a tracking server reached through the
SSH connection. A run must not depend on its client, and a tunnelled server would make
every ``log_metric`` of a detached run fail once the client goes away. A file store also
needs nothing on the target beyond the ``mlflow`` package the script already imports, and
it reads as plain files here, without MLflow installed in the client.
MLflow 3 keeps the file store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE=true``,
which the runs get.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MetricPoint",
    "TrackedRun",
    "merge_into_workspace",
    "mlflow_run_points",
    "read_metric_points",
    "read_run_metrics",
    "tracked_runs",
    "v1_metrics",
]

RUN_TAG = "targets.run_id"
LOGGED_BY = "targets.logged_by"
"""On an MLflow run that a child run wrote for its parent (v1's ``run.parent.log``): the
child's id. ``targets.run_id`` of that MLflow run is the parent's."""
CHILD_ID = "targets.child_id"
"""On an MLflow child run made inside a script (v1's ``run.child_run()``): its id."""
RECORD = ("azureml", "metrics.jsonl")
"""What the run library records besides MLflow metrics (see its ``_store.py``)."""


def _meta(path: Path) -> dict[str, Any]:
    from targets.runconfig.io import load_yaml

    try:
        data = load_yaml(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        return {}
    return data if isinstance(data, dict) else {}


def _experiments(store: Path) -> dict[str, Path]:
    """Experiment name -> folder, in a file store."""
    found = {}
    if store.is_dir():
        for folder in store.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                name = _meta(folder / "meta.yaml").get("name")
                if name:
                    found[str(name)] = folder
    return found


def _runs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "meta.yaml").exists())


def read_run_metrics(run_folder: Path) -> dict[str, Any]:
    """The params, last metric values and tags logged by the run's MLflow runs (from its
    collected store). ``{}`` when the run logged nothing.

    Names are the logged names (``train/loss``, not ``loss``). The top-level ``params``,
    ``metrics`` and ``tags`` are those of the run's own MLflow runs; child runs (tagged
    ``mlflow.parentRunId``, e.g. v1's ``run.child_run()``) are listed under ``runs``
    only. MLflow's and targets' own tags (``mlflow.*``, ``targets.*``) are left out."""
    store = run_folder / "mlruns"
    result: dict[str, Any] = {}
    for experiment in _experiments(store).values():
        for run in _runs(experiment):
            params = {
                _name(run / "params", p): p.read_text().strip() for p in _files(run / "params")
            }
            all_tags = {_name(run / "tags", p): p.read_text().strip() for p in _files(run / "tags")}
            if LOGGED_BY in all_tags:
                continue  # written for the parent run: the parent's (tracked_runs)
            tags = {k: v for k, v in all_tags.items() if not k.startswith(("mlflow.", "targets."))}
            child = "mlflow.parentRunId" in all_tags
            metrics: dict[str, float] = {}
            history: dict[str, list[float]] = {}
            for metric in _files(run / "metrics"):
                name = _name(run / "metrics", metric)
                values = _values(metric)
                if values:
                    metrics[name] = values[-1]
                    history[name] = values
            result.setdefault("runs", []).append(
                {
                    "mlflow_run_id": run.name,
                    "params": params,
                    "metrics": metrics,
                    "history": history,
                    "tags": tags,
                    "child": child,
                }
            )
            if not child:
                result.setdefault("params", {}).update(params)
                result.setdefault("metrics", {}).update(metrics)
                result.setdefault("tags", {}).update(tags)
    return result


@dataclass(frozen=True)
class TrackedRun:
    """One MLflow run of a collected run: its tags, params, metric histories (name ->
    values in the order logged) and the run library's records (``metrics.jsonl``)."""

    folder: Path
    tags: dict[str, str]
    params: dict[str, str]
    history: dict[str, list[float]]
    records: list[dict[str, Any]]

    @property
    def is_child(self) -> bool:
        """A child made inside the script (``run.child_run()``)."""
        return "mlflow.parentRunId" in self.tags

    @property
    def logged_by(self) -> str | None:
        """The child run that wrote this MLflow run for its parent, or None."""
        return self.tags.get(LOGGED_BY)

    def v1_metrics(self) -> dict[str, Any]:
        return v1_metrics([self])


def tracked_runs(run_folder: Path) -> list[TrackedRun]:
    """Every MLflow run in a run's collected store."""
    found = []
    for experiment in _experiments(run_folder / "mlruns").values():
        for run in _runs(experiment):
            tags = {_name(run / "tags", p): p.read_text().strip() for p in _files(run / "tags")}
            params = {
                _name(run / "params", p): p.read_text().strip() for p in _files(run / "params")
            }
            history = {}
            for metric in _files(run / "metrics"):
                history[_name(run / "metrics", metric)] = _values(metric)
            found.append(TrackedRun(run, tags, params, history, _records(run)))
    return found


def v1_metrics(runs: list[TrackedRun]) -> dict[str, Any]:
    """What these MLflow runs logged, together, shaped as v1's ``Run.get_metrics()``
    (the run library's own shaping: ``targets/agent/runlib/azureml/core/_shape.py``)."""
    from targets.agent.runlib.azureml.core._shape import v1_metrics as shape

    records = sorted(
        (r for run in runs for r in run.records), key=lambda r: float(r.get("time") or 0)
    )
    history: dict[str, list[float]] = {}
    for run in runs:
        for key, values in run.history.items():
            history.setdefault(key, []).extend(values)
    return shape(records, history)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One logged value of a metric: its ``step``, when it was logged (``timestamp``,
    seconds since the epoch) and its ``value``."""

    step: int
    timestamp: float
    value: float


def _points(metric: Path) -> list[MetricPoint]:
    """The points of one metric file of an MLflow file store, in the order logged.

    MLflow writes a line ``<timestamp in ms> <value> <step>`` per value (stores of old
    MLflow versions have no step: 0). A line that does not parse is skipped: a run may
    be writing the file while it is read. Raises OSError when the file cannot be read."""
    points = []
    for line in metric.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        try:
            timestamp = float(parts[0]) / 1000
            value = float(parts[1])
            step = int(parts[2]) if len(parts) > 2 else 0
        except ValueError:
            continue
        points.append(MetricPoint(step, timestamp, value))
    return points


def _values(metric: Path) -> list[float]:
    return [point.value for point in _points(metric)]


def read_metric_points(run_folder: Path) -> dict[str, list[MetricPoint]]:
    """Metric name -> every point logged, from the run's collected store: the metrics of
    the run's own MLflow runs (not the nested ones its script made, e.g. v1's
    ``run.child_run()``, nor those a child run wrote for it), in the order logged.
    ``{}`` when the run logged nothing (yet).

    Safe on a store that is being collected or written: a file that vanished or a line
    half written is passed over. Blocking file reads; raises nothing for a damaged
    store."""
    found: dict[str, list[MetricPoint]] = {}
    try:
        experiments = list(_experiments(run_folder / "mlruns").values())
        runs = [run for experiment in experiments for run in _runs(experiment)]
    except OSError:
        return found
    for run in runs:
        try:
            tags = {_name(run / "tags", p) for p in _files(run / "tags")}
        except OSError:
            continue
        if LOGGED_BY in tags or "mlflow.parentRunId" in tags:
            continue
        for name, points in mlflow_run_points(run).items():
            found.setdefault(name, []).extend(points)
    return found


def mlflow_run_points(run: Path) -> dict[str, list[MetricPoint]]:
    """Metric name -> its points, of one MLflow run's folder (a :class:`TrackedRun`'s
    ``folder``); what cannot be read is passed over."""
    found: dict[str, list[MetricPoint]] = {}
    try:
        metrics = _files(run / "metrics")
    except OSError:
        return found
    for metric in metrics:
        try:
            points = _points(metric)
        except OSError:
            continue
        if points:
            found[_name(run / "metrics", metric)] = points
    return found


def _records(run: Path) -> list[dict[str, Any]]:
    path = run / "artifacts" / RECORD[0] / RECORD[1]
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and {"kind", "name", "value"} <= entry.keys():
            found.append(entry)
    return found


def _name(folder: Path, path: Path) -> str:
    """A param, metric or tag name: its path below ``folder`` (MLflow keeps ``a/b`` as a
    file ``b`` in a folder ``a``)."""
    return path.relative_to(folder).as_posix()


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


def merge_into_workspace(run_folder: Path, workspace_store: Path, run_id: str) -> int:
    """Copy the run's MLflow runs into the workspace store (experiments matched by name,
    created when new), rewriting their ids and artifact locations, and tagging each with
    ``targets.run_id``. Idempotent. Returns how many MLflow runs were merged."""
    source = run_folder / "mlruns"
    merged = 0
    if not source.is_dir():
        return 0
    targets_exps = _experiments(workspace_store)
    for name, experiment in _experiments(source).items():
        runs = _runs(experiment)
        if not runs:
            continue
        dest_exp = targets_exps.get(name)
        if dest_exp is None:
            dest_exp = _create_experiment(workspace_store, name)
            targets_exps[name] = dest_exp
        for run in runs:
            dest = dest_exp / run.name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(run, dest)
            meta = _meta(dest / "meta.yaml")
            meta["experiment_id"] = dest_exp.name
            meta["artifact_uri"] = (dest / "artifacts").resolve().as_uri()
            (dest / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
            tags = dest / "tags"
            tags.mkdir(exist_ok=True)
            if not (tags / LOGGED_BY).exists():  # else it names the parent: kept
                (tags / RUN_TAG).write_text(run_id)
            merged += 1
    return merged


def _create_experiment(store: Path, name: str) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    if not (store / "0" / "meta.yaml").exists():
        _write_experiment(store / "0", "0", "Default")
    experiment_id = str(uuid.uuid4().int % 10**18)
    folder = store / experiment_id
    _write_experiment(folder, experiment_id, name)
    return folder


def _write_experiment(folder: Path, experiment_id: str, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    now = int(time.time() * 1000)
    meta = {
        "artifact_location": folder.resolve().as_uri(),
        "creation_time": now,
        "experiment_id": experiment_id,
        "last_update_time": now,
        "lifecycle_stage": "active",
        "name": name,
    }
    (folder / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
