"""The studio's runs table (``/runs``): every run of the workspace, newest first, paged on
the server, with filters and a search; the trials of a sweep and the steps of a pipeline
folded under their parent; statuses kept current by server-sent events.

- ``GET /runs``: the page (``?experiment= &status= &target= &q= &page=``; ``?parent=ID``
  lists the children of one run, the no-JavaScript way to open a parent). An htmx request
  aimed at the table (``HX-Target: runs-table``) gets the table alone.
- ``GET /runs/{id}/children-rows``: the child rows of one run (``<tr class="child">``),
  which the table's toggle inserts under it.
- ``GET /runs/events``: every second, the runs whose status or duration changed (open
  runs, and the page's own runs until they have ended), and how many runs newer than
  the page match its filters.

Design choice: the pages read the ledger (``ws.ledger.list``) instead of calling
:func:`targets.runs.list_runs`, the CLI's listing. ``list_runs`` first asks the targets
of open runs for news; in the studio the background refresher
(:class:`targets.studio.app.Refresher`) does that every second for every page, so a
request that did it again would only wait on the network and race the refresher.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from targets.agent import protocol
from targets.cli._common import fmt_duration
from targets.errors import UsageError
from targets.ledger import RunRecord
from targets.studio import web
from targets.workspace import Workspace

__all__ = ["PAGE_SIZE", "routes"]

PAGE_SIZE = 50
CHILDREN_SHOWN = 500
"""At most this many child rows under a parent; the rest are on ``/runs?parent=ID``."""
NEW_CAP = 100
"""The "new runs" notice counts up to this many ("100+" beyond)."""
WATCH_MAX = 1000
TICK_SECONDS = 1.0
SEARCH_MAX = 200


@dataclass(frozen=True, slots=True)
class Listing:
    """What the table shows: the filters, the search and the page, from a query string."""

    experiment: str | None = None
    status: str | None = None
    target: str | None = None
    q: str | None = None
    parent: str | None = None
    page: int = 1

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Listing:
        def text(name: str) -> str | None:
            value = (query.get(name) or "").strip()
            return value or None

        status = text("status")
        search = text("q")
        if search is not None and len(search) > SEARCH_MAX:
            raise UsageError(f"the search text is longer than {SEARCH_MAX} characters")
        raw_page = text("page") or "1"
        try:
            page = int(raw_page)
        except ValueError:
            raise UsageError(f"page {raw_page!r} is not a number") from None
        return cls(
            experiment=text("experiment"),
            # As `targets runs list --status failed` does.
            status=status.capitalize() if status else None,
            target=text("target"),
            q=search,
            parent=text("parent"),
            page=max(page, 1),
        )

    def filters(self) -> dict[str, Any]:
        """The keyword arguments of ``Ledger.list`` and ``Ledger.count``: the top-level
        runs, like ``targets runs list``; a search finds child runs too (a trial's id
        typed into the box must find it); ``parent`` lists one run's children."""
        found: dict[str, Any] = {
            "experiment": self.experiment,
            "status": self.status,
            "target": self.target,
            "search": self.q,
        }
        if self.parent is not None:
            found["parent_id"] = self.parent
        elif self.q is None:
            found["top_level"] = True
        return found

    def query(self, **changes: Any) -> dict[str, str]:
        """The query string's parameters (empty ones left out), with ``changes``."""
        state = replace(self, **changes)
        params = {
            "experiment": state.experiment,
            "status": state.status,
            "target": state.target,
            "q": state.q,
            "parent": state.parent,
            "page": str(state.page) if state.page > 1 else None,
        }
        return {k: v for k, v in params.items() if v}

    def url(self, **changes: Any) -> str:
        params = self.query(**changes)
        return "/runs" + (f"?{urlencode(params)}" if params else "")


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the table."""

    run: RunRecord
    tags: Mapping[str, str]
    children: int
    depth: int = 0

    @property
    def ended(self) -> bool:
        return self.run.status in protocol.TERMINAL


def _tags(ws: Workspace, run_id: str) -> dict[str, str]:
    """The tags given at submission (``run.json``'s ``origin.tags``), or none."""
    try:
        manifest = json.loads((ws.run_dir(run_id) / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    origin = manifest.get("origin") if isinstance(manifest, dict) else None
    tags = origin.get("tags") if isinstance(origin, dict) else None
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}


def _rows(ws: Workspace, runs: list[RunRecord], depth: int = 0) -> list[Row]:
    counts = ws.ledger.child_counts([r.id for r in runs])
    return [Row(r, _tags(ws, r.id), counts.get(r.id, 0), depth) for r in runs]


def _table_context(ws: Workspace, listing: Listing) -> dict[str, Any]:
    since = time.time()  # before the query: a run made during it is announced as new
    filters = listing.filters()
    total = ws.ledger.count(**filters)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if listing.page > pages:
        listing = replace(listing, page=pages)
    runs = ws.ledger.list(**filters, limit=PAGE_SIZE, offset=(listing.page - 1) * PAGE_SIZE)
    rows = _rows(ws, runs)
    watch = [row.run.id for row in rows if not row.ended]
    events = {**listing.query(page=1), "since": f"{since:.3f}", "watch": ",".join(watch)}
    return {
        "listing": listing,
        "rows": rows,
        "total": total,
        "pages": pages,
        "first": (listing.page - 1) * PAGE_SIZE + 1,
        "last": (listing.page - 1) * PAGE_SIZE + len(rows),
        "events_url": "/runs/events?" + urlencode({k: v for k, v in events.items() if v}),
        "parent_run": ws.ledger.get(listing.parent) if listing.parent else None,
    }


def runs_page(request: Request) -> Response:
    listing = Listing.from_query(request.query_params)
    partial = (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Target") == "runs-table"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )
    with web.workspace(request) as ws:
        context = _table_context(ws, listing)
        if partial:
            response = web.render(request, "runs/_table.html", **context)
        else:
            response = web.render(
                request,
                "runs/index.html",
                nav="runs",
                experiments=ws.ledger.distinct("experiment"),
                targets=ws.ledger.distinct("target"),
                statuses=protocol.STATUSES,
                **context,
            )
    if partial:
        # The address bar shows the listing without empty parameters (the form sends
        # them all), and a page number beyond the last becomes the last.
        response.headers["HX-Push-Url"] = context["listing"].url()
    return response


def children_rows(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    raw_depth = request.query_params.get("depth") or "1"
    depth = int(raw_depth) if raw_depth.isdigit() else 1
    with web.workspace(request) as ws:
        parent = ws.ledger.get(run_id)
        if parent is None:
            raise UsageError(f"no run {run_id!r} in this workspace")
        total = ws.ledger.count(parent_id=run_id)
        # Oldest first, as `targets runs list --all` lists them under their parent.
        children = ws.ledger.list(parent_id=run_id, limit=CHILDREN_SHOWN)[::-1]
        return web.render(
            request,
            "runs/children.html",
            parent=parent,
            rows=_rows(ws, children, depth=max(1, min(depth, 8))),
            more=total - len(children),
        )


# --------------------------------------------------------------------------- events


@dataclass(slots=True)
class _Watch:
    """What one events connection has sent: the last state of each run it follows."""

    root: Path
    listing: Listing
    since: float
    following: set[str]
    sent: dict[str, tuple[str, str, float | None]]
    new: int = -1

    def tick(self) -> dict[str, Any] | None:
        """The changes since the last tick (None: nothing to send). Blocking (SQLite):
        run it in a worker thread."""
        ws = Workspace(self.root)
        try:
            records = {r.id: r for r in ws.ledger.open_runs()}
            for run_id in self.following - records.keys():
                record = ws.ledger.get(run_id)
                if record is not None:
                    records[run_id] = record
            newest = ws.ledger.list(**self.listing.filters(), limit=NEW_CAP)
        finally:
            ws.close()
        changed = []
        for record in records.values():
            state = (record.status, fmt_duration(record.duration), record.ended_at)
            if self.sent.get(record.id) != state:
                self.sent[record.id] = state
                changed.append(
                    {
                        "id": record.id,
                        "status": record.status,
                        "duration": state[1],
                        "ended_at": record.ended_at,
                        "ended": record.status in protocol.TERMINAL,
                    }
                )
        # Follow a run until its end was sent; an open run shows up again by itself.
        self.following = {
            run_id for run_id, record in records.items() if record.status not in protocol.TERMINAL
        }
        new = sum(1 for r in newest if r.created_at > self.since)
        if not changed and new == self.new:
            return None
        self.new = new
        return {"runs": changed, "new": new, "new_capped": new >= NEW_CAP}


def runs_events(request: Request) -> Response:
    query = request.query_params
    listing = Listing.from_query(query)
    try:
        since = float(query.get("since") or time.time())
    except ValueError:
        raise UsageError("since must be a time in seconds") from None
    watched = [w for w in (query.get("watch") or "").split(",") if w][:WATCH_MAX]
    watch = _Watch(request.app.state.root, listing, since, set(watched), {})

    return web.sse_response(request, _Ticks(watch))


class _Ticks:
    """The events of one connection: every :data:`TICK_SECONDS`, the news of its
    :class:`_Watch`, if any.

    Design choice: an iterator object, not an async generator. The response cancels a
    pending ``__anext__`` when the browser goes away; a generator cancelled mid-step
    cannot be closed (``aclose(): asynchronous generator is already running``), while
    this object holds nothing that needs closing (a tick already in its thread finishes
    there and is dropped)."""

    def __init__(self, watch: _Watch) -> None:
        self.watch = watch
        self.first = True

    def __aiter__(self) -> _Ticks:
        return self

    async def __anext__(self) -> str:
        while True:
            if not self.first:
                await asyncio.sleep(TICK_SECONDS)
            self.first = False
            news = await anyio.to_thread.run_sync(self.watch.tick)
            if news is not None:
                return web.sse_event(news, event="runs")


routes: list[BaseRoute] = [
    Route("/runs", runs_page, methods=["GET"]),
    # Before the run page's /runs/{run_id} (its module comes later in PAGES).
    Route("/runs/events", runs_events, methods=["GET"]),
    Route("/runs/{run_id}/children-rows", children_rows, methods=["GET"]),
]
