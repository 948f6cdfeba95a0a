"""The studio's experiments pages: runs grouped by experiment, and one experiment's runs
with checkboxes to compare them (``/compare?run=...``, :mod:`targets.studio.pages.metrics`).

The groups are the ledger's own counts (:meth:`targets.ledger.Ledger.distinct` and
:meth:`~targets.ledger.Ledger.count`, per experiment and status): no page reads every
run. An experiment's runs are paged on the server (``limit``/``offset``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from targets.agent import protocol
from targets.ledger import RunRecord
from targets.studio import web
from targets.workspace import Workspace

__all__ = ["PAGE_SIZE", "ExperimentSummary", "experiment_summaries", "routes"]

PAGE_SIZE = 200
"""Runs shown per page of an experiment."""


@dataclass(slots=True)
class ExperimentSummary:
    """One experiment: its name, how many runs it has, when its last run was created, and
    how many runs are in each status."""

    name: str
    runs: int = 0
    last_created: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def status_summary(self) -> list[tuple[str, int]]:
        """(status, count), in the order a run goes through them."""
        order = {status: i for i, status in enumerate(protocol.STATUSES)}
        return sorted(self.statuses.items(), key=lambda item: (order.get(item[0], 99), item[0]))


def experiment_summaries(ws: Workspace) -> list[ExperimentSummary]:
    """Every experiment of the workspace, the one with the latest run first."""
    ledger = ws.ledger
    statuses = ledger.distinct("status")
    found = []
    for name in ledger.distinct("experiment"):
        newest = ledger.list(experiment=name, limit=1)
        summary = ExperimentSummary(
            name,
            runs=ledger.count(experiment=name),
            last_created=newest[0].created_at if newest else 0.0,
        )
        for status in statuses:
            count = ledger.count(experiment=name, status=status)
            if count:
                summary.statuses[status] = count
        found.append(summary)
    return sorted(found, key=lambda s: -s.last_created)


def experiments_page(request: Request) -> Response:
    with web.workspace(request) as ws:
        return web.render(
            request,
            "experiments/list.html",
            nav="experiments",
            experiments=experiment_summaries(ws),
        )


def _page(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


def experiment_page(request: Request) -> Response:
    name = request.path_params["name"]
    page = _page(request)
    with web.workspace(request) as ws:
        # Newest first; one more than a page says whether there is a next one.
        records: list[RunRecord] = ws.ledger.list(
            experiment=name, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
        )
        shown = records[:PAGE_SIZE]
        context: dict[str, Any] = {
            "nav": "experiments",
            "experiment": name,
            "runs": shown,
            "page": page,
            "has_next": len(records) > PAGE_SIZE,
            "total": ws.ledger.count(experiment=name),
            "children": ws.ledger.child_counts([r.id for r in shown]),
        }
        return web.render(request, "experiments/experiment.html", **context)


routes: list[BaseRoute] = [
    Route("/experiments", experiments_page),
    Route("/experiments/{name:path}", experiment_page),
]
