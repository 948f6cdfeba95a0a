"""The studio's page of one run: ``/runs/{run_id}``.

What it shows and does, each through the library as the CLI does (``targets runs show``,
``logs``, ``download``, ``cancel``, ``submit-again``):

- the run's status and phases, its facts, configuration, environment, git state,
  parameters and tags (:meth:`targets.runs.Run.get_details`), kept current by
  ``/runs/{id}/events`` (server-sent events: the ledger record each time it changes);
- its log, streamed by ``/runs/{id}/log/events?file=NAME&offset=N`` (server-sent
  events; each event's id is the byte offset after it, so a reconnecting EventSource
  resumes where the page left it). While the run is open each poll pulls what is new
  from the target (:meth:`Run.stream` once, with ``follow=False``), then sends what
  the run folder's file holds past the offset;
- its outputs as a file tree (``/runs/{id}/outputs``) with downloads
  (``/runs/{id}/files/PATH``: only files under ``outputs/`` and ``logs/`` and the two
  system logs, never through a link);
- *Cancel* (:meth:`Run.cancel`) and *Submit again* (:func:`targets.resubmit.submit_again`).

The metrics charts (``/runs/{id}/metrics``) and the children of sweeps and pipelines
(``/runs/{id}/children``) are other page modules' fragments; this page only holds their
places.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from targets.agent import protocol
from targets.errors import TargetsError
from targets.ledger import RunRecord
from targets.runs import SYSTEM_LOGS, Run
from targets.studio import web
from targets.workspace import Workspace

__all__ = ["routes"]

log = logging.getLogger("targets.studio")
T = TypeVar("T")

CHUNK = 64 * 1024
"""At most this many bytes of log in one event."""
TAIL = 256 * 1024
"""A page that does not say where to start shows the last this many bytes of a log."""
SYNC_WAIT = 10.0
"""Seconds the outputs fragment waits for an open run's files to arrive before it shows
what is there (the bringing goes on; the next look shows more)."""
MAX_LISTED = 2000
"""Files listed in the outputs tree at most."""
_TOPS = ("outputs", "logs")


def _ended(record: RunRecord) -> bool:
    return record.status in protocol.TERMINAL


def _done(record: RunRecord) -> bool:
    """Nothing more will change: ended and its logs and outputs collected."""
    return _ended(record) and record.collected


# -- what the page shows -----------------------------------------------------------------


def _phases(record: RunRecord) -> list[dict[str, str]]:
    """The run's phases, in order, each with its time or duration and whether it is
    done, going on, or still to come."""
    from targets.cli._common import fmt_duration, fmt_time

    shown: list[dict[str, str]] = []
    started = record.started_at is not None or bool(record.phases)
    shown.append(
        {
            "name": "queued",
            "text": f"at {fmt_time(record.created_at)}",
            "state": "done" if started or _ended(record) else "current",
        }
    )
    current = {
        protocol.PREPARING: "preparing",
        protocol.RUNNING: "running",
        protocol.FINALIZING: "finalizing",
    }.get(record.status)
    names = list(record.phases)
    if current and current not in names:
        names.append(current)
    for name in names:
        if name in record.phases:
            text = fmt_duration(record.phases[name])
        elif name == "running" and record.started_at is not None:
            text = f"since {fmt_time(record.started_at)}"
        else:
            text = "now"
        state = "current" if name == current and not _ended(record) else "done"
        shown.append({"name": name, "text": text, "state": state})
    if _ended(record):
        shown.append(
            {
                "name": "collecting",
                "text": "done" if record.collected else "not yet",
                "state": "done" if record.collected else "current",
            }
        )
    return shown


def _summary(record: RunRecord, collection_error: str | None) -> dict[str, Any]:
    """What the summary fragment (``run/_summary.html``) needs."""
    from targets.cli._common import fmt_duration

    return {
        "record": record,
        "phases": _phases(record),
        "ended": _ended(record),
        "done": _done(record),
        "duration": fmt_duration(record.duration),
        "collection_error": None if record.collected else collection_error,
    }


def _render_summary(record: RunRecord, collection_error: str | None) -> str:
    return web.templates.get_template("run/_summary.html").render(
        s=_summary(record, collection_error), oob=False
    )


def _yaml(value: Any) -> str:
    import yaml

    if not value:
        return ""
    return str(yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=100))


def _details(run: Run) -> tuple[dict[str, Any], str | None]:
    """:meth:`Run.get_details`, or (the target cannot be asked) the record and the run's
    ``run.json`` as they are, with the reason."""
    import json

    try:
        return run.get_details(), None
    except TargetsError as exc:
        details = run.record.to_json()
        try:
            manifest = json.loads((run.folder / "run.json").read_text())
        except (OSError, ValueError):
            manifest = {}
        if not isinstance(manifest, dict):
            manifest = {}
        details.update(
            runconfig=manifest.get("runconfig"),
            environment=manifest.get("environment"),
            git=(manifest.get("snapshot") or {}).get("git"),
            origin=manifest.get("origin"),
            params={},
            tags={},
            collection_error=run.collection_error,
        )
        return details, exc.message


def _tags(details: dict[str, Any]) -> dict[str, str]:
    """The tags given at submission and those the run set (as ``Run.get_tags``)."""
    system = ("mlflow.", "targets.", "azureml.")
    tags = dict(((details.get("origin") or {}).get("tags")) or {})
    tags.update({k: v for k, v in (details.get("tags") or {}).items() if not k.startswith(system)})
    return {str(k): str(v) for k, v in sorted(tags.items())}


def _log_files(folder: Path) -> list[str]:
    """The run's logs that the page can show: the system logs, then ``logs/`` (links
    are never followed)."""
    names = [name for name in SYSTEM_LOGS if _regular(folder / name)]
    if "driver.log" not in names:
        names.append("driver.log")  # the default, even before it exists
    names.extend(name for name, _ in _walk(folder, "logs", limit=500))
    return names


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _walk(folder: Path, top: str, *, limit: int) -> list[tuple[str, int]]:
    """``(relative name, size)`` of the regular files under ``folder/top``, sorted;
    links (to files or folders) are left out, at most ``limit``."""
    base = folder / top
    if not base.is_dir() or base.is_symlink():
        return []
    found: list[tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(filenames):
            try:
                info = os.lstat(here / name)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append(((here / name).relative_to(folder).as_posix(), info.st_size))
            if len(found) >= limit:
                return found
    return found


@dataclass
class _Node:
    """A folder of the outputs tree."""

    name: str
    folders: dict[str, _Node] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)


def _tree(run_id: str, files: list[tuple[str, int]]) -> _Node:
    from targets.cli._common import fmt_size

    root = _Node("")
    for name, size in files:
        parts = name.split("/")
        node = root
        for part in parts[:-1]:
            node = node.folders.setdefault(part, _Node(part))
        node.files.append(
            {
                "name": parts[-1],
                "path": name,
                "size": fmt_size(size),
                "href": f"/runs/{quote(run_id, safe='')}/files/{quote(name, safe='/')}",
            }
        )
    return root


def _file_path(folder: Path, name: str) -> Path | None:
    """The run's file ``name`` when the page may hand it out: under ``outputs/`` or
    ``logs/`` or a system log, inside the run's folder, a regular file reached through
    no link. Else None."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    if not ((parts[0] in _TOPS and len(parts) > 1) or (len(parts) == 1 and name in SYSTEM_LOGS)):
        return None
    path = folder
    try:
        for part in parts:
            path = path / part
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                return None
    except OSError:
        return None
    if not stat.S_ISREG(mode) or not path.resolve().is_relative_to(folder.resolve()):
        return None
    return path


def _log_name(name: str) -> str:
    """A log the stream may read (a system log or a file under ``logs/``), else 404."""
    parts = name.split("/")
    bad = not name or "\\" in name or "\x00" in name or name.startswith("/")
    bad = bad or any(part in ("", ".", "..") for part in parts)
    if bad or not (name in SYSTEM_LOGS or (parts[0] == "logs" and len(parts) > 1)):
        raise HTTPException(404, f"no log {name!r}")
    return name


# -- pages and fragments -----------------------------------------------------------------


def page(request: Request) -> HTMLResponse:
    with web.workspace(request) as ws:
        run = Run(ws, request.path_params["run_id"])
        try:
            details, problem = _details(run)
            record = run.record
            children = ws.ledger.child_counts([run.id]).get(run.id, 0)
        finally:
            run.close()
        files = _log_files(run.folder)
    wanted = request.query_params.get("file") or "driver.log"
    if wanted not in files:
        wanted = "driver.log"
    offset = request.query_params.get("offset", "")
    return web.render(
        request,
        "run/page.html",
        nav="runs",
        run_id=run.id,
        record=record,
        summary=_summary(record, details.get("collection_error")),
        problem=problem,
        details=details,
        runconfig=_yaml(details.get("runconfig")),
        environment=_yaml(details.get("environment")),
        git=details.get("git") if isinstance(details.get("git"), dict) else None,
        params=dict(sorted((details.get("params") or {}).items())),
        tags=_tags(details),
        children=children,
        log_files=files,
        log_file=wanted,
        log_offset=offset if offset.isdigit() else "",
        quoted_id=quote(run.id, safe=""),
    )


def summary(request: Request) -> HTMLResponse:
    with web.workspace(request) as ws:
        run = Run(ws, request.path_params["run_id"])
        html = _render_summary(run.record, run.collection_error)
    return HTMLResponse(html)


def log_files(request: Request) -> Response:
    """The names of the run's logs (JSON), for the page's log chooser."""
    from starlette.responses import JSONResponse

    with web.workspace(request) as ws:
        run = Run(ws, request.path_params["run_id"])
        return JSONResponse(_log_files(run.folder))


_syncing: dict[tuple[str, str], threading.Thread] = {}
_syncing_lock = threading.Lock()


def _sync_in_background(root: Path, run_id: str) -> threading.Thread:
    """:meth:`Run.sync` of an open run in a thread of its own (one per run at a time):
    over a slow link it may take longer than a page should wait."""
    key = (str(root), run_id)
    with _syncing_lock:
        thread = _syncing.get(key)
        if thread is not None and thread.is_alive():
            return thread

        def work() -> None:
            ws = Workspace(root)
            run: Run | None = None
            try:
                run = Run(ws, run_id)
                run.sync()
            except TargetsError as exc:
                log.info("bringing the files of run %s: %s", run_id, exc.message)
            except Exception:  # the page shows what is there; the log says why not more
                log.exception("bringing the files of run %s failed", run_id)
            finally:
                if run is not None:
                    run.close()
                ws.close()

        thread = threading.Thread(target=work, name=f"studio-sync-{run_id}", daemon=True)
        _syncing[key] = thread
        thread.start()
        return thread


def outputs(request: Request) -> HTMLResponse:
    """The file tree of the run's outputs and logs; an open run's files are brought
    first (waiting at most SYNC_WAIT seconds)."""
    root: Path = request.app.state.root
    with web.workspace(request) as ws:
        run = Run(ws, request.path_params["run_id"])
        record = run.record
        folder = run.folder
    still = False
    if not _done(record):
        thread = _sync_in_background(root, run.id)
        thread.join(SYNC_WAIT)
        still = thread.is_alive()
    with web.workspace(request) as ws:
        record = Run(ws, run.id).record
        error = None if record.collected else Run(ws, run.id).collection_error
    files = [(name, size) for name in SYSTEM_LOGS for size in _sizes(folder / name)]
    for top in _TOPS:
        files.extend(_walk(folder, top, limit=MAX_LISTED))
    return web.render(
        request,
        "run/_outputs.html",
        run_id=run.id,
        tree=_tree(run.id, files[:MAX_LISTED]),
        count=len(files),
        cut=len(files) > MAX_LISTED,
        limit=MAX_LISTED,
        still=still,
        error=error,
        ended=_ended(record),
    )


def _sizes(path: Path) -> list[int]:
    try:
        info = os.lstat(path)
    except OSError:
        return []
    return [info.st_size] if stat.S_ISREG(info.st_mode) else []


def download(request: Request) -> Response:
    with web.workspace(request) as ws:
        run = Run(ws, request.path_params["run_id"])
        folder = run.folder
    name = request.path_params["path"]
    path = _file_path(folder, name)
    if path is None:
        raise HTTPException(404, f"run {run.id} has no file {name!r} to download")
    return FileResponse(
        path,
        filename=path.name,
        media_type="application/octet-stream",
        content_disposition_type="attachment",
    )


def cancel(request: Request) -> HTMLResponse:
    """Cancel the run (as ``targets runs cancel``: waits a little for it to end); the
    answer says the new status and replaces the summary."""
    with web.workspace(request) as ws:
        run = Run(ws, request.path_params["run_id"])
        try:
            record = run.cancel()
            deadline = time.monotonic() + 10
            while not _ended(record) and time.monotonic() < deadline:
                time.sleep(0.1)
                record = run.refresh()
        finally:
            run.close()
        error = run.collection_error
    return web.render(
        request,
        "run/_cancelled.html",
        run_id=run.id,
        status=record.status,
        s=_summary(record, error),
    )


def submit_again(request: Request) -> Response:
    """Submit the run again (:func:`targets.resubmit.submit_again`); htmx is sent to the
    new run's page."""
    from targets.resubmit import submit_again as again

    with web.workspace(request) as ws:
        new = again(ws, request.path_params["run_id"], warn=lambda text: log.warning("%s", text))
        new.close()
    location = f"/runs/{quote(new.id, safe='')}"
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


# -- live: the status and the log ----------------------------------------------------------


class _Worker:
    """One thread for one event stream: the workspace (its ledger connection belongs to
    a thread) and the run (its open target connection) live in it."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.root = root
        self.run_id = run_id
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="studio-run")
        self.ws: Workspace | None = None
        self.run: Run | None = None

    async def call(self, func: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, func)

    def open(self) -> Run:
        """In the worker thread."""
        self.ws = Workspace(self.root)
        self.run = Run(self.ws, self.run_id)
        return self.run

    def fresh(self) -> RunRecord:
        """The run's record as the ledger has it now. In the worker thread."""
        if self.ws is None or self.run is None:
            raise RuntimeError("_Worker.open first")
        return self.ws.ledger.get(self.run.id) or self.run.record

    def _close(self) -> None:
        if self.run is not None:
            self.run.close()
        if self.ws is not None:
            self.ws.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call(self._close)
        self.executor.shutdown(wait=False)


async def status_events(request: Request) -> Response:
    """The run's record each time it changes (event ``status``: the record, the summary
    rendered, whether it ended); closes once the run has ended and been collected."""
    worker = _Worker(request.app.state.root, request.path_params["run_id"])
    try:
        run = await worker.call(worker.open)
    except BaseException:
        await worker.close()
        raise

    def look() -> tuple[dict[str, Any], str, bool]:
        record = worker.fresh()
        data = record.to_json()
        data.pop("handle", None)
        html = _render_summary(record, run.collection_error)
        return data, html, _done(record)

    async def events() -> AsyncIterator[str]:
        try:
            last: dict[str, Any] | None = None
            while True:
                data, html, done = await worker.call(look)
                if data != last:
                    last = data
                    yield web.sse_event(
                        {"record": data, "html": html, "ended": done}, event="status"
                    )
                if done:
                    return
                await asyncio.sleep(0.5)
        finally:
            await worker.close()

    return web.sse_response(request, events(), ping=5.0)


def _complete(data: bytes) -> int:
    """How many bytes of ``data`` end on a whole UTF-8 character (a character cut by
    the end of a chunk goes with the next one)."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back
            continue
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if back < need:
                return end - back
        break
    return end


def _read(path: Path, offset: int, final: bool) -> tuple[str, int]:
    """The text of ``path`` from ``offset`` (at most CHUNK bytes) and the offset after
    it; an unfinished character at the end waits for the next read unless ``final``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return "", offset
    with open(fd, "rb") as fh:
        fh.seek(offset)
        data = fh.read(CHUNK)
    if not data:
        return "", offset
    cut = _complete(data)
    if cut == 0 and (final or len(data) >= 4):
        cut = len(data)  # no character will complete this: send it as it is
    return data[:cut].decode("utf-8", "replace"), offset + cut


def _size(path: Path) -> int:
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def _tail_start(path: Path, size: int) -> int:
    """Where the last TAIL bytes of a log begin, moved to the start of a line."""
    if size <= TAIL:
        return 0
    start = size - TAIL
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return start
    with open(fd, "rb") as fh:
        fh.seek(start)
        head = fh.read(CHUNK)
    newline = head.find(b"\n")
    return start + newline + 1 if newline >= 0 else start


def _start_offset(request: Request) -> int | None:
    """Where the browser wants the log from: the last event it got (a reconnect)
    wins over ``?offset``; None: the tail."""
    for given in (request.headers.get("last-event-id"), request.query_params.get("offset")):
        if given is not None and given.strip().isdigit():
            return int(given.strip())
    return None


async def log_events(request: Request) -> Response:
    """A log of the run as server-sent events (see the module doc): ``info`` (where the
    stream starts and how big the file is), ``log`` (``{"text": ...}``, id: the byte
    offset after it), ``caught-up`` (everything the file had is sent; ``ended``: the
    run has ended and been collected, and the stream closes), ``problem`` (the target
    could not be asked; what was collected is shown)."""
    name = _log_name(request.query_params.get("file") or "driver.log")
    worker = _Worker(request.app.state.root, request.path_params["run_id"])
    try:
        run = await worker.call(worker.open)
    except BaseException:
        await worker.close()
        raise
    path = run.folder / name
    wanted = _start_offset(request)

    def pull() -> tuple[bool, str | None]:
        """New log bytes from the target (an open run), then whether it is done."""
        problem = None
        if not _done(worker.fresh()):
            try:
                run.stream(io.BytesIO(), follow=False, from_start=False)
            except TargetsError as exc:
                problem = exc.message
        return _done(worker.fresh()), problem

    async def events() -> AsyncIterator[str]:
        try:
            size = await worker.call(lambda: _size(path))
            if wanted is not None:
                offset = min(wanted, size)
            else:
                offset = await worker.call(functools.partial(_tail_start, path, size))
            yield web.sse_event({"file": name, "start": offset, "size": size}, event="info")
            caught_up = False
            said: str | None = None
            delay = 0.2
            done = await worker.call(lambda: _done(worker.fresh()))
            while True:
                start = offset
                text, offset = await worker.call(functools.partial(_read, path, start, done))
                if offset > start:
                    yield web.sse_event({"text": text}, event="log", event_id=str(offset))
                    continue
                if done:
                    yield web.sse_event(
                        {"offset": offset, "ended": True}, event="caught-up", event_id=str(offset)
                    )
                    return
                if not caught_up:
                    caught_up = True
                    yield web.sse_event(
                        {"offset": offset, "ended": False},
                        event="caught-up",
                        event_id=str(offset),
                    )
                done, problem = await worker.call(pull)
                if problem and problem != said:
                    yield web.sse_event({"message": problem}, event="problem")
                said = problem
                if await worker.call(lambda: _size(path)) > offset or done:
                    delay = 0.2
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 1.0)
        finally:
            await worker.close()

    return web.sse_response(request, events(), ping=5.0)


routes: list[BaseRoute] = [
    Route("/runs/{run_id}", page, methods=["GET"]),
    Route("/runs/{run_id}/summary", summary, methods=["GET"]),
    Route("/runs/{run_id}/events", status_events, methods=["GET"]),
    Route("/runs/{run_id}/log/events", log_events, methods=["GET"]),
    Route("/runs/{run_id}/log/files", log_files, methods=["GET"]),
    Route("/runs/{run_id}/outputs", outputs, methods=["GET"]),
    Route("/runs/{run_id}/files/{path:path}", download, methods=["GET"]),
    Route("/runs/{run_id}/cancel", cancel, methods=["POST"]),
    Route("/runs/{run_id}/submit-again", submit_again, methods=["POST"]),
]
