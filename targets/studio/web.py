"""What every page module of the studio shares: the templates, the workspace of a
request, error pages, and server-sent events.

The studio only parses, calls the library and renders: a page module reads a request,
calls :mod:`targets.attachment`, :mod:`targets.runs`, :mod:`targets.clusters.lifecycle`
... as the CLI does, and renders a template. A library error (a
:class:`~targets.errors.TargetsError`) becomes the same message and hint the CLI prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from targets.errors import TargetsError, UsageError
from targets.workspace import Workspace

__all__ = [
    "HERE",
    "error_response",
    "render",
    "sse_event",
    "sse_response",
    "templates",
    "workspace",
]

HERE = Path(__file__).parent


def _filters() -> dict[str, Callable[..., str]]:
    from targets.cli._common import fmt_duration, fmt_size, fmt_time

    return {"time": fmt_time, "duration": fmt_duration, "size": fmt_size}


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(_filters())
templates.filters["tojson_attr"] = lambda value: json.dumps(value, default=str)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template ``name`` with ``context``, the request, the CSRF token and the
    workspace's root. A request from htmx (``HX-Request``) gets the template's
    ``content`` block alone when the template asks for it with ``partial``."""
    access = request.app.state.access
    context.setdefault("request", request)
    context.setdefault("csrf_token", access.csrf)
    context.setdefault("workspace_root", str(request.app.state.root))
    context.setdefault("nav", "")
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code)


@contextmanager
def workspace(request: Request) -> Iterator[Workspace]:
    """The studio's workspace, opened for one request (its ledger connection belongs to
    the thread that serves the request) and closed after."""
    ws = Workspace(request.app.state.root)
    try:
        yield ws
    finally:
        ws.close()


def error_response(request: Request, exc: TargetsError) -> HTMLResponse:
    """The message and hint the CLI would print, as a page or (htmx) a fragment."""
    status = 400 if isinstance(exc, UsageError) else 502
    return render(
        request,
        "_error.html" if request.headers.get("HX-Request") == "true" else "error.html",
        status_code=status,
        message=exc.message if hasattr(exc, "message") else str(exc),
        hint=getattr(exc, "hint", None),
    )


def sse_event(data: Any, *, event: str | None = None, event_id: str | None = None) -> str:
    """One server-sent event; ``data`` that is not a string is sent as JSON."""
    text = data if isinstance(data, str) else json.dumps(data, default=str)
    lines = []
    if event:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return "\n".join(lines) + "\n\n"


def sse_response(request: Request, events: AsyncIterator[str], *, ping: float = 15.0) -> Response:
    """A server-sent events response of ``events``; it ends when the browser goes away
    (checked between events and at least every ``ping`` seconds, with a comment line)."""

    async def body() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        iterator = events.__aiter__()
        pending: asyncio.Task[str] | None = None
        try:
            while True:
                if await request.is_disconnected():
                    return
                if pending is None:
                    pending = asyncio.ensure_future(iterator.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=ping)
                if not done:
                    yield ": ping\n\n"
                    continue
                task, pending = pending, None
                try:
                    item = task.result()
                except StopAsyncIteration:
                    return
                yield item
        finally:
            # Shielded: the browser went away (this task is being cancelled), and the
            # events' generator must still be closed after its running step is.
            with anyio.CancelScope(shield=True):
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
                close = getattr(iterator, "aclose", None)
                if close is not None:
                    with contextlib.suppress(RuntimeError):
                        await close()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
