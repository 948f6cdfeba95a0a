"""The studio's metrics pages: a run's metric charts and parameters, runs compared side
by side, and the children of a sweep (its trials) or of a pipeline (the graph of its steps).

- ``GET /runs/{id}/metrics``: a fragment the run page loads into ``<div id="metrics">``:
  a chart per metric (drawn by ``static/metrics.js`` from the JSON below), the
  parameters, and what v1's run library logged that is no series (strings, tables).
- ``GET /runs/{id}/metrics.json``: ``{"id", "label", "status", "open", "sync_error",
  "metrics": {name: [{"step", "timestamp", "value"}]}, "params", "last"}``.
- ``GET /compare?run=A&run=B``: a series per run on each metric's chart, the parameters
  and last values side by side (``/compare.json`` is ``{"runs": [...], "open"}``).
- ``GET /runs/{id}/children``: a fragment the run page loads into ``<div id="children">``:
  trials and the primary metric per trial for a sweep (best trial marked), the graph of
  the steps for a pipeline, else a table of the children. It polls itself while open.

A run still going is brought up to date with :meth:`targets.runs.Run.sync` (what it
logged so far), at most every :data:`SYNC_INTERVAL` seconds per run however many tabs
ask; when its target cannot be reached the page shows what was collected before.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from targets.agent import protocol
from targets.errors import TargetsError, UsageError
from targets.ledger import RunRecord
from targets.runs import Run
from targets.studio import web
from targets.tracking import MetricPoint, read_metric_points, tracked_runs, v1_metrics
from targets.workspace import Workspace

__all__ = [
    "MAX_POINTS",
    "SYNC_INTERVAL",
    "Step",
    "Trial",
    "compare_data",
    "pipeline_view",
    "routes",
    "run_data",
    "sweep_view",
]

SYNC_INTERVAL = 3.0
"""Seconds between two syncs of one open run (its metrics so far), whatever asks."""
MAX_POINTS = 5000
"""Points per series sent to the browser; a longer series is thinned evenly (its first
and last points kept)."""
MAX_COMPARED = 20
"""Runs on one compare page."""
MAX_TRIAL_SYNCS = 8
"""Open trials of a sweep synced per request of its children fragment."""


# -- keeping open runs current -----------------------------------------------------------


class _Syncs:
    """When each open run was last synced, and why that failed: one sync per run per
    :data:`SYNC_INTERVAL`, shared by every request thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, str | None]] = {}

    def sync(self, run: Run) -> str | None:
        """Bring what ``run`` logged so far into its folder, unless that was done in the
        last :data:`SYNC_INTERVAL` seconds; returns why the last sync failed, or None.
        Blocking (it asks the run's target). An ended and collected run is left alone."""
        record = run.record
        if record.status in protocol.TERMINAL and record.collected:
            return None
        now = time.monotonic()
        with self._lock:
            last = self._last.get(run.id)
            if last is not None and now - last[0] < SYNC_INTERVAL:
                return last[1]
            self._last[run.id] = (now, last[1] if last else None)
            if len(self._last) > 1000:  # forget runs not asked about for a while
                cutoff = now - 60 * SYNC_INTERVAL
                self._last = {k: v for k, v in self._last.items() if v[0] > cutoff}
        error: str | None = None
        try:
            run.sync()
        except TargetsError as exc:
            error = exc.message if hasattr(exc, "message") else str(exc)
        finally:
            run.close()
        with self._lock:
            self._last[run.id] = (now, error)
        return error


_syncs = _Syncs()


def _open(record: RunRecord) -> bool:
    return record.status not in protocol.TERMINAL or not record.collected


# -- one run's metrics -------------------------------------------------------------------


def _number(value: float) -> float | None:
    """JSON has no NaN or infinity: those are sent as null (a gap in the chart)."""
    return value if math.isfinite(value) else None


def _series(points: list[MetricPoint]) -> list[dict[str, Any]]:
    if len(points) > MAX_POINTS:
        stride = len(points) / (MAX_POINTS - 1)
        points = [points[int(i * stride)] for i in range(MAX_POINTS - 1)] + [points[-1]]
    return [{"step": p.step, "timestamp": p.timestamp, "value": _number(p.value)} for p in points]


def _logged(run: Run) -> tuple[dict[str, str], dict[str, Any]]:
    """The params of the run's own MLflow runs and what they logged, shaped as v1's
    ``Run.get_metrics()``."""
    own = [t for t in tracked_runs(run.folder) if not t.is_child and t.logged_by is None]
    params: dict[str, str] = {}
    for tracked in own:
        params.update(tracked.params)
    return params, v1_metrics(own)


def _is_series(value: Any) -> bool:
    """A value the charts show: a number or a list of numbers."""
    numbers = value if isinstance(value, list) else [value]
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers)


def _tables(v1: dict[str, Any]) -> list[dict[str, Any]]:
    """What v1's run library logged that is no series: rows and tables (``{column:
    [values]}``) as tables, anything else (a string, an image's record) as text."""
    shown = []
    for name, value in sorted(v1.items()):
        if _is_series(value):
            continue
        if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
            columns = list(value)
            height = max((len(v) for v in value.values()), default=0)
            rows = [
                [value[c][i] if i < len(value[c]) else "" for c in columns] for i in range(height)
            ]
            shown.append({"name": name, "columns": columns, "rows": rows})
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            shown.append({"name": name, "text": text})
    return shown


def run_data(ws: Workspace, run: Run, *, sync: bool = True) -> dict[str, Any]:
    """What the charts of one run show (the ``metrics.json`` answer); with ``sync``, an
    open run is brought up to date first (see :class:`_Syncs`)."""
    return _run_data(ws, run, sync=sync)[0]


def _run_data(ws: Workspace, run: Run, *, sync: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`run_data`, and what the run logged shaped as v1's ``get_metrics()``."""
    sync_error = _syncs.sync(run) if sync else None
    record = ws.ledger.get(run.id) or run.record
    points = run.metric_points()  # its own, and what its children logged on it
    params, v1 = _logged(run)
    data = {
        "id": record.id,
        "label": record.display_name or record.id,
        "experiment": record.experiment,
        "status": record.status,
        "open": _open(record),
        "sync_error": sync_error,
        "metrics": {name: _series(found) for name, found in sorted(points.items())},
        "last": {name: _number(found[-1].value) for name, found in sorted(points.items())},
        "params": dict(sorted(params.items())),
    }
    return data, v1


def compare_data(ws: Workspace, run_ids: list[str]) -> dict[str, Any]:
    """The runs ``run_ids`` (ids or unique prefixes, at most :data:`MAX_COMPARED`) for
    the compare page. Raises UsageError for none, too many, or an unknown run."""
    wanted = list(dict.fromkeys(i.strip() for i in run_ids if i.strip()))
    if not wanted:
        raise UsageError(
            "no runs to compare", hint="select runs on an experiment's page, or /compare?run=ID"
        )
    if len(wanted) > MAX_COMPARED:
        raise UsageError(f"{len(wanted)} runs: compare at most {MAX_COMPARED} at once")
    runs = [run_data(ws, Run(ws, run_id)) for run_id in wanted]
    return {"runs": runs, "open": any(r["open"] for r in runs)}


def _compare_rows(runs: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows of ``params`` or ``last`` values, a cell per run; ``differs`` when the runs'
    values are not all the same."""
    names = sorted({name for run in runs for name in run[key]})
    rows = []
    for name in names:
        cells = [run[key].get(name) for run in runs]
        rows.append(
            {"name": name, "cells": cells, "differs": len({json.dumps(c) for c in cells}) > 1}
        )
    return rows


# -- a parent's children -----------------------------------------------------------------


def _manifest(folder: Path) -> dict[str, Any]:
    """A run's ``run.json`` ({} when missing or unreadable)."""
    try:
        data = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_jobs: dict[tuple[str, float, tuple[str, ...]], Any] = {}
_jobs_lock = threading.Lock()


def _job(ws: Workspace, info: dict[str, Any]) -> Any:
    """The job model a sweep or pipeline parent was made from (its ``run.json`` names
    the job file and the overrides, as the driver reads them), or None when it cannot be
    read any more. Cached per file version."""
    from targets.jobs.reader import load_job

    path = info.get("job")
    if not isinstance(path, str):
        return None
    overrides = tuple(str(o) for o in info.get("overrides") or ())
    try:
        key = (path, Path(path).stat().st_mtime, overrides)
    except OSError:
        return None
    with _jobs_lock:
        if key in _jobs:
            return _jobs[key]
    try:
        job = load_job(path, overrides=overrides, workspace=ws).job
    except (TargetsError, OSError):
        job = None
    with _jobs_lock:
        if len(_jobs) > 64:
            _jobs.clear()
        _jobs[key] = job
    return job


def _kind(record: RunRecord, children: list[dict[str, Any]]) -> str:
    """``sweep``, ``pipeline`` or ``plain``: what the parent is."""
    if record.kind in ("sweep", "pipeline"):
        return record.kind
    origins = [c["origin"] for c in children]
    if any("sweep" in o or "hyperdrive" in o for o in origins):
        return "sweep"
    if any("pipeline" in o or "step" in o for o in origins):
        return "pipeline"
    return "plain"


def _children(ws: Workspace, record: RunRecord) -> list[dict[str, Any]]:
    """The parent's children, oldest first, each with its record and run.json."""
    found = []
    for child in reversed(ws.ledger.list(parent_id=record.id, limit=None)):
        info = _manifest(ws.run_dir(child.id))
        origin = info.get("origin") if isinstance(info.get("origin"), dict) else {}
        found.append({"record": child, "info": info, "origin": origin})
    return found


def _sync_open(ws: Workspace, children: list[dict[str, Any]]) -> None:
    """Bring the metrics of the open children so far (a few per request)."""
    open_ones = [c["record"] for c in children if _open(c["record"])]
    for record in open_ones[:MAX_TRIAL_SYNCS]:
        try:
            _syncs.sync(Run(ws, record.id))
        except TargetsError:
            continue


def _objective(ws: Workspace, parent: Run, info: dict[str, Any]) -> tuple[str | None, str | None]:
    """The sweep's primary metric and goal (``maximize``/``minimize``), from its job;
    when that cannot be read, the metric the sweep recorded for its best trial."""
    job = _job(ws, info)
    objective = getattr(job, "objective", None)
    if objective is not None:
        return str(objective.primary_metric), str(objective.goal)
    from targets.jobs.sweep import best_trial

    best = best_trial(parent)
    return (str(best["metric"]) if best and best.get("metric") else None), None


def _trial_params(child: dict[str, Any]) -> dict[str, str]:
    origin = child["origin"]
    params = origin.get("params") or origin.get("hyperparameters") or {}
    return {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial of a sweep as its table row shows it."""

    number: int
    id: str
    label: str
    status: str
    duration: float | None
    params: dict[str, str]
    value: float | None
    """The last value of the primary metric it logged, None before it logged one."""
    best: bool = False


def sweep_view(ws: Workspace, parent: Run, children: list[dict[str, Any]]) -> dict[str, Any]:
    """The trials of a sweep with their primary metric, and which trial is the best: the
    one the sweep recorded once it ended, else the best completed trial so far."""
    from targets.jobs.sweep import best_trial

    info = _manifest(parent.folder)
    metric, goal = _objective(ws, parent, info)
    trials: list[Trial] = []
    for number, child in enumerate(children):
        record: RunRecord = child["record"]
        points = read_metric_points(ws.run_dir(record.id)).get(metric or "", [])
        trials.append(
            Trial(
                number=number,
                id=record.id,
                label=record.display_name or record.id,
                status=record.status,
                duration=record.duration,
                params=_trial_params(child),
                value=_number(points[-1].value) if points else None,
            )
        )
    recorded = best_trial(parent)
    best_id = str(recorded["run_id"]) if recorded and recorded.get("run_id") else None
    final = best_id is not None
    if best_id is None:
        scored = [t for t in trials if t.value is not None and t.status == protocol.COMPLETED]
        if scored:
            pick = max if goal == "maximize" else min
            best_id = pick(scored, key=lambda t: t.value or 0.0).id
    trials = [replace(t, best=t.id == best_id) for t in trials]
    return {
        "metric": metric,
        "goal": goal,
        "trials": trials,
        "param_names": sorted({n for t in trials for n in t.params}),
        "best_id": best_id,
        "best_final": final,
        "chart": [
            {"x": t.number, "label": t.label, "value": t.value, "best": t.best} for t in trials
        ],
    }


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a pipeline as its graph shows it: its box at ``x``, ``y``."""

    node: str
    run_id: str | None
    status: str
    duration: float | None
    kind: str | None
    deps: list[str]
    x: int
    y: int

    @property
    def css(self) -> str:
        return self.status.replace(" ", "")


_BOX_W, _BOX_H, _GAP_X, _GAP_Y = 180, 46, 70, 22


def _layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each node's layer: one more than the deepest node it reads from (0 for none).
    A cycle (refused at submission) is cut where it closes."""
    layer: dict[str, int] = {}

    def depth(node: str, seen: frozenset[str]) -> int:
        if node not in layer:
            deps = [d for d in graph.get(node, ()) if d in graph and d not in seen]
            layer[node] = 1 + max((depth(d, seen | {node}) for d in deps), default=-1)
        return layer[node]

    for node in graph:
        depth(node, frozenset())
    return layer


def pipeline_view(ws: Workspace, parent: Run, children: list[dict[str, Any]]) -> dict[str, Any]:
    """The steps of a pipeline laid out in layers (a step one layer right of the last
    step it reads from), with their runs' statuses and the edges between them. The
    dependencies come from the pipeline's job (as its driver reads it); when that cannot
    be read any more, the steps that ran are shown without them."""
    from targets.jobs.bindings import pipeline_graph
    from targets.jobs.model import PipelineJob

    by_node: dict[str, RunRecord] = {}
    for child in children:
        record: RunRecord = child["record"]
        node = child["origin"].get("step") or child["info"].get("step") or record.display_name
        by_node[str(node or record.id)] = record
    job = _job(ws, _manifest(parent.folder))
    graph: dict[str, set[str]] = {}
    if isinstance(job, PipelineJob):
        try:
            graph = pipeline_graph(job)
        except TargetsError:
            graph = {}
    for node in by_node:
        graph.setdefault(node, set())
    layer = _layers(graph)
    rows: dict[int, int] = {}
    ended = parent.record.status in protocol.TERMINAL
    steps: list[Step] = []
    for node in sorted(graph, key=lambda n: (layer[n], n)):
        row = rows.get(layer[node], 0)
        rows[layer[node]] = row + 1
        ran = by_node.get(node)
        steps.append(
            Step(
                node=node,
                run_id=ran.id if ran else None,
                status=ran.status if ran else ("Not run" if ended else "Waiting"),
                duration=ran.duration if ran else None,
                kind=ran.kind if ran else None,
                deps=sorted(graph[node]),
                x=10 + layer[node] * (_BOX_W + _GAP_X),
                y=10 + row * (_BOX_H + _GAP_Y),
            )
        )
    where = {s.node: s for s in steps}
    edges = [
        {
            "x1": where[d].x + _BOX_W,
            "y1": where[d].y + _BOX_H // 2,
            "x2": s.x - 4,
            "y2": s.y + _BOX_H // 2,
        }
        for s in steps
        for d in s.deps
        if d in where
    ]
    return {
        "steps": steps,
        "edges": edges,
        "box_w": _BOX_W,
        "box_h": _BOX_H,
        "width": 20 + (max(layer.values(), default=0) + 1) * (_BOX_W + _GAP_X) - _GAP_X,
        "height": 20 + max(rows.values(), default=1) * (_BOX_H + _GAP_Y) - _GAP_Y,
        "graph_known": isinstance(job, PipelineJob),
    }


# -- endpoints ---------------------------------------------------------------------------


def metrics_fragment(request: Request) -> Response:
    with web.workspace(request) as ws:
        run = Run(ws, request.path_params["run_id"])
        data, v1 = _run_data(ws, run, sync=True)
        return web.render(
            request,
            "metrics/_run.html",
            run=data,
            tables=_tables(v1),
            src=f"/runs/{run.id}/metrics.json",
            quiet=run.record.kind in ("sweep", "pipeline") and not (data["metrics"] or v1),
        )


def metrics_json(request: Request) -> Response:
    with web.workspace(request) as ws:
        run = Run(ws, request.path_params["run_id"])
        return JSONResponse(run_data(ws, run), headers={"Cache-Control": "no-store"})


def _compare_query(request: Request) -> str:
    from urllib.parse import urlencode

    return urlencode([("run", r) for r in request.query_params.getlist("run")])


def compare_page(request: Request) -> Response:
    with web.workspace(request) as ws:
        data = compare_data(ws, request.query_params.getlist("run"))
        return web.render(
            request,
            "metrics/compare.html",
            nav="experiments",
            runs=data["runs"],
            params=_compare_rows(data["runs"], "params"),
            last=_compare_rows(data["runs"], "last"),
            src="/compare.json?" + _compare_query(request),
        )


def compare_json(request: Request) -> Response:
    with web.workspace(request) as ws:
        data = compare_data(ws, request.query_params.getlist("run"))
        return JSONResponse(data, headers={"Cache-Control": "no-store"})


def children_fragment(request: Request) -> Response:
    with web.workspace(request) as ws:
        parent = Run(ws, request.path_params["run_id"])
        children = _children(ws, parent.record)
        kind = _kind(parent.record, children)
        live = _open(parent.record) or any(_open(c["record"]) for c in children)
        context: dict[str, Any] = {
            "parent": parent.record,
            "kind": kind,
            "live": live,
            "children": [c["record"] for c in children],
            "url": f"/runs/{parent.id}/children",
        }
        if kind == "sweep":
            _sync_open(ws, children)
            context["sweep"] = sweep_view(ws, parent, children)
        elif kind == "pipeline":
            context["pipeline"] = pipeline_view(ws, parent, children)
        return web.render(request, "metrics/_children.html", **context)


routes: list[BaseRoute] = [
    Route("/runs/{run_id}/metrics", metrics_fragment),
    Route("/runs/{run_id}/metrics.json", metrics_json),
    Route("/runs/{run_id}/children", children_fragment),
    Route("/compare", compare_page),
    Route("/compare.json", compare_json),
]
