"""The studio's web application: the page modules' routes behind the security middleware,
the vendored static files, and the refresher that keeps the ledger current.

:func:`create_app` builds it for a workspace; :mod:`targets.studio.server` serves it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from targets.errors import TargetsError
from targets.studio.security import Access, SecurityMiddleware
from targets.studio.web import HERE, error_response, render

__all__ = ["PAGES", "Refresher", "create_app"]

PAGES = ("compute", "runs", "run", "experiments", "metrics")
"""The page modules (``targets.studio.pages.<name>``); each has a ``routes`` list."""

log = logging.getLogger("targets.studio")


class Refresher:
    """A thread that asks the targets of open runs for news every ``interval`` seconds
    (:func:`targets.runs.refresh_open_runs`, as ``targets runs list`` does), so the pages,
    which read the ledger, show statuses as they change. One failing target never stops
    it; the pages show what was recorded last."""

    def __init__(self, root: Path, interval: float = 1.0) -> None:
        self.root = root
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="studio-refresher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        from targets.runs import refresh_open_runs
        from targets.workspace import Workspace

        while not self._stop.is_set():
            ws = Workspace(self.root)
            try:
                refresh_open_runs(ws, warn=lambda message: log.warning("%s", message))
            except Exception:  # never let the refresher die: the pages would go stale
                log.exception("refreshing the open runs failed")
            finally:
                ws.close()
            self._stop.wait(self.interval)


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/", lambda request: RedirectResponse("/runs", status_code=303)),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    for name in PAGES:
        module = importlib.import_module(f"targets.studio.pages.{name}")
        routes.extend(module.routes)
    return routes


async def _targets_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TargetsError)
    return error_response(request, exc)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return render(
        request,
        "_error.html" if request.headers.get("HX-Request") == "true" else "error.html",
        status_code=status,
        message=f"{status}: {detail}",
        hint=None,
    )


def create_app(
    root: Path,
    access: Access,
    *,
    refresh_interval: float | None = 1.0,
) -> Starlette:
    """The studio for the workspace at ``root``, reachable as ``access`` allows.
    ``refresh_interval`` None: no refresher thread (the pages show the ledger as it is)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        refresher = Refresher(root, refresh_interval) if refresh_interval else None
        if refresher is not None:
            refresher.start()
        try:
            yield
        finally:
            if refresher is not None:
                refresher.stop()

    app = Starlette(
        routes=_routes(),
        middleware=[Middleware(SecurityMiddleware, access=access)],
        exception_handlers={TargetsError: _targets_error, HTTPException: _not_found},
        lifespan=lifespan,
    )
    app.state.root = Path(root)
    app.state.access = access
    return app
