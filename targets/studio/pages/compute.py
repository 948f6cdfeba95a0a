"""The studio's compute pages: the attached targets and clusters, a target's page, the
attach form of each kind and the create form of each cluster provider.

Every page only parses and calls the library, as the CLI does
(:mod:`targets.cli.targets_cmd`, :mod:`targets.cli.clusters_cmd`):
:func:`targets.attachment.attach_target` and :func:`~targets.attachment.detach_target`,
:func:`targets.clusters.lifecycle.cluster_spec`, :func:`~targets.clusters.lifecycle.create_cluster`,
:func:`~targets.clusters.lifecycle.update_cluster` and
:func:`~targets.clusters.lifecycle.delete_cluster`. The forms are generated from the kind's
(or provider's) options model by :mod:`targets.studio.forms`.

Design choice: the host key of a new machine. The first attach answers an unknown host key
with "no" (recording what the server showed) and the page shows its fingerprint with an
"Accept this host key" button. That button re-posts the same form, which is still in the
page, with the fingerprint; the second attach accepts the key only if the server shows
that very fingerprint (a key that changed in between is refused again). The secrets are
never written into a page nor kept by the server: the browser sends again what its
password inputs hold (they are emptied once the target is attached).

Design choice: live status. A row's status is loaded by the browser, per row and after the
page (htmx), so one dead host never holds the page. Each check runs in its own thread, at
most one per target at a time, and a request waits for it a few seconds at most (then it
shows "checking..." and asks again later); results are kept a few seconds, so several tabs
do not multiply the connections. A target whose ``describe()`` says something (a cluster:
nodes, queue, events) shows that; an agent-based kind is reachable when its agent answers
(one SSH connection, shared with the CLI's commands); any other kind is probed.
"""

from __future__ import annotations

import hmac
import logging
import secrets as _secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from targets.cli._common import shown_facts
from targets.errors import TargetsError, UsageError
from targets.registry import find_kind, where
from targets.studio import web
from targets.studio.forms import FormField, form_fields, form_values
from targets.workspace import LOCAL, TargetRecord, Workspace

__all__ = ["routes"]

log = logging.getLogger("targets.studio.compute")

OPTION = "o."
"""Prefix of a kind's (or a provider's) option inputs."""
SETTING = "c."
"""Prefix of a cluster's settings inputs."""
SECRET = "s."
"""Prefix of a secret's password input."""

ROW_POLL = "every 10s"
CLUSTER_POLL = "every 3s"
PLAIN_POLL = "every 15s"


# -- reading what a kind or a provider offers ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    """A kind or provider in a chooser: its name, a description, or why it is broken."""

    name: str
    description: str = ""
    broken: str = ""


def _attachable_kinds() -> list[Choice]:
    from targets.registry import available_kinds, load_kind

    found = []
    for info in available_kinds():
        try:
            cls = load_kind(info.name)
        except TargetsError as exc:
            found.append(Choice(info.name, broken=str(exc).splitlines()[0]))
            continue
        if cls.attachable:
            found.append(Choice(info.name, cls.description))
    return found


def _providers() -> list[Choice]:
    from targets.clusters.provider import available_providers, load_provider

    found = []
    for name in available_providers():
        try:
            cls = load_provider(name)
        except TargetsError as exc:
            found.append(Choice(name, broken=str(exc).splitlines()[0]))
            continue
        found.append(Choice(name, cls.description))
    return found


# -- live status -------------------------------------------------------------------------------

StatusState = Literal["reachable", "unreachable", "live", "checking"]


@dataclass(frozen=True, slots=True)
class Status:
    """What a check found: ``live`` has the target's ``describe()`` (a cluster's nodes,
    queue and events) when it says something."""

    state: StatusState
    reason: str = ""
    live: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


def _check(root: Path, name: str) -> Status:
    """Open the target and ask it something bounded (see the module doc)."""
    from targets.compute import AgentTarget

    ws = Workspace(root)
    try:
        with ws.get_target(name) as target:
            live = target.describe()
            if live:
                return Status("live", live=live)
            if isinstance(target, AgentTarget):
                target.agent()  # connects and reads the agent's hello
            else:
                target.probe()
            return Status("reachable")
    except TargetsError as exc:
        return Status("unreachable", reason=exc.message)
    except Exception as exc:  # a plugin's bug: shown on its row, the others keep working
        log.exception("checking target %s failed", name)
        return Status("unreachable", reason=f"{type(exc).__name__}: {exc}")
    finally:
        ws.close()


class StatusChecks:
    """At most one check per target at a time; results kept ``ttl`` seconds (``live_ttl``
    for a target that describes itself, whose answer is read from local files)."""

    def __init__(self, *, ttl: float = 8.0, live_ttl: float = 1.0, wait: float = 4.0) -> None:
        self.ttl = ttl
        self.live_ttl = live_ttl
        self.wait = wait
        self._lock = threading.Lock()
        self._results: dict[tuple[str, str], Status] = {}
        self._running: dict[tuple[str, str], threading.Thread] = {}

    def _fresh(self, status: Status | None) -> bool:
        if status is None:
            return False
        ttl = self.live_ttl if status.state == "live" else self.ttl
        return time.time() - status.at < ttl

    def _run(self, key: tuple[str, str]) -> None:
        result = _check(Path(key[0]), key[1])
        with self._lock:
            self._results[key] = result
            self._running.pop(key, None)

    def get(self, root: Path, name: str) -> Status:
        """The target's status: a fresh one, or the result of a check that ends within
        ``wait`` seconds, else the last one known (or "checking")."""
        key = (str(root), name)
        with self._lock:
            cached = self._results.get(key)
            if self._fresh(cached):
                assert cached is not None
                return cached
            thread = self._running.get(key)
            if thread is None:
                thread = threading.Thread(
                    target=self._run, args=(key,), name=f"studio-check-{name}", daemon=True
                )
                self._running[key] = thread
                thread.start()
        thread.join(self.wait)
        with self._lock:
            result = self._results.get(key)
        if result is not None and (not thread.is_alive() or result is not cached):
            return result
        if cached is not None:
            return cached
        return Status("checking")

    def forget(self, root: Path, name: str) -> None:
        with self._lock:
            self._results.pop((str(root), name), None)


CHECKS = StatusChecks()


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    """A cluster's ``describe()`` in a few numbers, for its row."""

    nodes: int
    states: dict[str, int]
    queued: dict[str, int]

    @property
    def main_state(self) -> str:
        for state in ("busy", "creating", "idle"):
            if self.states.get(state):
                return state
        return "idle"


def _cluster_summary(live: Mapping[str, Any]) -> ClusterSummary:
    states: Counter[str] = Counter()
    for node in live.get("nodes") or []:
        state = str(node.get("state"))
        if state == "running":
            state = "busy" if node.get("run") else "idle"
        states[state] += 1
    queued: Counter[str] = Counter(str(q.get("status")) for q in live.get("queue") or [])
    return ClusterSummary(sum(states.values()), dict(states), dict(queued))


# -- background jobs: creating and deleting clusters --------------------------------------------

JobState = Literal["running", "done", "failed"]


@dataclass
class Job:
    """A creation or deletion running in a thread of the studio, polled by the page."""

    id: str
    title: str
    state: JobState = "running"
    phase: str = ""
    message: str = ""
    hint: str | None = None
    link: str | None = None
    link_text: str = ""
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.ended_at or time.time()) - self.started_at


class _Phase(AbstractContextManager[None]):
    """The ``busy`` of the library's operations: names the provider's step on the job."""

    def __init__(self, job: Job, text: str) -> None:
        self.job = job
        self.text = text

    def __enter__(self) -> None:
        self.job.phase = self.text

    def __exit__(self, *exc: object) -> None:
        self.job.phase = ""


class Jobs:
    """The studio's jobs by id; ended ones are forgotten after ``keep`` seconds."""

    def __init__(self, keep: float = 3600.0) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def start(
        self,
        root: Path,
        title: str,
        work: Callable[[Workspace, Job], str],
        *,
        link: str | None = None,
        link_text: str = "",
    ) -> Job:
        """Run ``work(ws, job)`` in a thread with a workspace of its own; its return is
        the job's message when it ends well, a TargetsError's message and hint when not."""
        job = Job(_secrets.token_urlsafe(12), title, link=link, link_text=link_text)
        with self._lock:
            now = time.time()
            for key in [
                k for k, j in self._jobs.items() if j.ended_at and now - j.ended_at > self.keep
            ]:
                del self._jobs[key]
            self._jobs[job.id] = job

        def run() -> None:
            ws = Workspace(root)
            try:
                job.message = work(ws, job)
                job.state = "done"
            except TargetsError as exc:
                job.message, job.hint, job.state = exc.message, exc.hint, "failed"
            except Exception as exc:  # shown on the page rather than lost in a thread
                log.exception("%s failed", title)
                job.message, job.state = f"{type(exc).__name__}: {exc}", "failed"
            finally:
                ws.close()
                job.phase = ""
                job.ended_at = time.time()

        threading.Thread(target=run, name=f"studio-job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)


JOBS = Jobs()


# -- request helpers -----------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body htmx sends for a form (no multipart parser needed)."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _fragment(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A fragment answering an htmx request. Expected failures (a refused option, a
    name taken) are answered 200 with the CLI's message in it: the form shows them where
    the result would go, and the browser's console stays clean."""
    return web.render(request, template, **context)


def _error(request: Request, exc: TargetsError) -> HTMLResponse:
    return _fragment(request, "_error.html", message=exc.message, hint=exc.hint)


def _redirect(location: str) -> Response:
    return Response(status_code=200, headers={"HX-Redirect": location})


# -- the list and a target's page ----------------------------------------------------------------


def compute_list(request: Request) -> HTMLResponse:
    rows = []
    with web.workspace(request) as ws:
        for record in ws.targets().values():
            cls = find_kind(record.kind)
            rows.append(
                {
                    "record": record,
                    "where": where(record.kind, record.options),
                    "broken": cls is None,
                    "made": cls is not None and not cls.attachable,
                }
            )
    return web.render(request, "compute/list.html", nav="compute", rows=rows)


def target_page(request: Request) -> HTMLResponse:
    name = request.path_params["name"]
    with web.workspace(request) as ws:
        record = ws.target_record(name)
        cls = find_kind(record.kind)
        facts = dict(record.facts)
        if not facts and name == LOCAL:
            try:  # never attached: what is there now, as `targets show local` prints
                with ws.get_target(name) as target:
                    facts = target.probe()
            except TargetsError:
                pass
    options = cls.shown_options(record.options) if cls is not None else dict(record.options)
    return web.render(
        request,
        "compute/target.html",
        nav="compute",
        record=record,
        where=where(record.kind, record.options),
        broken=cls is None,
        attachable=cls is not None and cls.attachable,
        made=cls is not None and not cls.attachable,
        settings=[(k.replace("_", " "), v) for k, v in options.items()],
        facts=shown_facts(facts),
        scale=_scale_values(record) if cls is not None and not cls.attachable else None,
        poll=CLUSTER_POLL if cls is not None and not cls.attachable else PLAIN_POLL,
    )


def _scale_values(record: TargetRecord) -> dict[str, Any]:
    from targets.clusters.lifecycle import SCALE_SETTINGS
    from targets.clusters.model import ClusterSpec

    try:
        spec = ClusterSpec.model_validate(dict(record.options))
    except ValueError:
        return {}
    return {k: getattr(spec, k) for k in SCALE_SETTINGS}


def status_fragment(request: Request) -> Response:
    name = request.path_params["name"]
    view = "full" if request.query_params.get("view") == "full" else "row"
    root = request.app.state.root
    with web.workspace(request) as ws:
        exists = name in ws.targets()
    if not exists:
        CHECKS.forget(root, name)
        # 286: htmx stops polling.
        response = _fragment(
            request, "compute/_status.html", view=view, gone=True, target_name=name
        )
        response.status_code = 286
        return response
    status = CHECKS.get(root, name)
    summary = _cluster_summary(status.live) if "nodes" in status.live else None
    other = [(k, v) for k, v in status.live.items() if k not in ("nodes", "queue", "events")]
    return _fragment(
        request,
        "compute/_status.html",
        view=view,
        gone=False,
        target_name=name,
        status=status,
        summary=summary,
        other=other,
    )


# -- attach ------------------------------------------------------------------------------------


def _kind_form(kind: str) -> tuple[Any, list[FormField]]:
    from targets.registry import load_kind, resolve_kind_name

    cls = load_kind(resolve_kind_name(kind))
    return cls, form_fields(cls.options_model, prefix=OPTION)


def attach_page(request: Request) -> HTMLResponse:
    kinds = _attachable_kinds()
    kind = request.query_params.get("kind") or ""
    if not kind:
        kind = next((k.name for k in kinds if k.name == "vm"), kinds[0].name if kinds else "")
    cls: Any = None
    fields: list[FormField] = []
    problem: TargetsError | None = None
    if kind:
        try:
            cls, fields = _kind_form(kind)
            if not cls.attachable:
                raise UsageError(
                    f"a {cls.kind} target is created, not attached",
                    hint="create a cluster on the Create cluster page",
                )
        except TargetsError as exc:
            cls, fields, problem = None, [], exc
    return web.render(
        request,
        "compute/attach.html",
        nav="compute",
        kinds=kinds,
        kind=cls.kind if cls is not None else kind,
        cls=cls,
        fields=fields,
        secret_names=tuple(cls.secret_names) if cls is not None else (),
        secret_prefix=SECRET,
        problem=problem,
    )


@dataclass(frozen=True, slots=True)
class ShownKey:
    host: str
    key_type: str
    fingerprint: str


def _attach(request: Request, form: dict[str, str]) -> HTMLResponse:
    from targets.attachment import attach_target

    name = form.get("name", "").strip()
    offered = form.get("accept_host_key") or None
    shown: list[ShownKey] = []

    def policy(host: str, key_type: str, fingerprint: str) -> bool:
        shown.append(ShownKey(host, key_type, fingerprint))
        return offered is not None and hmac.compare_digest(fingerprint, offered)

    try:
        cls, fields = _kind_form(form.get("kind", ""))
        values = form_values(fields, form)
        secrets = {n: form[SECRET + n] for n in cls.secret_names if form.get(SECRET + n)}
        with web.workspace(request) as ws:
            record = attach_target(
                ws,
                name,
                cls.kind,
                values,
                secrets=secrets,
                accept_host_key=policy,
                replace=form.get("replace") is not None,
            )
    except TargetsError as exc:
        if shown and (offered is None or shown[-1].fingerprint != offered):
            return _fragment(
                request, "compute/_hostkey.html", key=shown[-1], changed=offered is not None
            )
        return _error(request, exc)
    CHECKS.forget(request.app.state.root, name)
    return _fragment(
        request, "compute/_attached.html", record=record, facts=shown_facts(record.facts)
    )


async def attach_post(request: Request) -> HTMLResponse:
    form = await _form(request)
    return await run_in_threadpool(_attach, request, form)


# -- create, update, delete clusters ---------------------------------------------------------------


def _cluster_forms(provider: str) -> tuple[Any, list[FormField], list[FormField]]:
    from targets.clusters.model import ClusterSpec
    from targets.clusters.provider import load_provider

    cls = load_provider(provider)
    settings = form_fields(ClusterSpec, prefix=SETTING, exclude=("provider", "provider_options"))
    return cls, settings, form_fields(cls.options_model, prefix=OPTION)


def create_page(request: Request) -> HTMLResponse:
    providers = _providers()
    provider = request.query_params.get("provider") or ""
    if not provider:
        usable = [p.name for p in providers if not p.broken]
        provider = "docker" if "docker" in usable else (usable[0] if usable else "")
    cls: Any = None
    settings: list[FormField] = []
    options: list[FormField] = []
    problem: TargetsError | None = None
    if provider:
        try:
            cls, settings, options = _cluster_forms(provider)
        except TargetsError as exc:
            problem = exc
    return web.render(
        request,
        "compute/create.html",
        nav="compute",
        providers=providers,
        provider=provider,
        cls=cls,
        settings=settings,
        options=options,
        problem=problem,
    )


def _create(request: Request, form: dict[str, str]) -> HTMLResponse:
    from targets.attachment import check_new_name
    from targets.clusters.lifecycle import cluster_spec, create_cluster

    name = form.get("name", "").strip()
    try:
        _cls, settings_fields, option_fields = _cluster_forms(form.get("provider", ""))
        settings = {**form_values(settings_fields, form), "provider": form.get("provider", "")}
        spec = cluster_spec(settings, form_values(option_fields, form))
        with web.workspace(request) as ws:  # at once, rather than from the job a moment later
            check_new_name(
                ws,
                name,
                hint=f"targets update {name} ... changes a cluster; targets delete {name} "
                "removes it",
            )
    except TargetsError as exc:
        return _error(request, exc)

    def work(ws: Workspace, job: Job) -> str:
        create_cluster(ws, name, spec, busy=_Phase(job, f"the {spec.provider} provider is at work"))
        if spec.run_based:
            return (
                f"created {name}: each run with target: {name} gets a {spec.provider} cluster "
                f"of its own (up to {spec.max_nodes} nodes), deleted when the run ends"
            )
        return (
            f"created cluster {name} ({spec.provider}, {spec.min_nodes}-{spec.max_nodes} "
            f"nodes, idle nodes removed after {spec.idle_seconds_before_scaledown} s)"
        )

    job = JOBS.start(
        request.app.state.root,
        f"creating cluster {name} ({spec.provider})",
        work,
        link=f"/compute/{name}",
        link_text=f"open {name}",
    )
    return _fragment(request, "compute/_job.html", job=job)


async def create_post(request: Request) -> HTMLResponse:
    form = await _form(request)
    return await run_in_threadpool(_create, request, form)


def job_fragment(request: Request) -> Response:
    job = JOBS.get(request.path_params["job_id"])
    if job is None:
        response = _fragment(
            request,
            "_error.html",
            message="this job is not known to the studio (it was restarted)",
            hint="reload the page",
        )
        response.status_code = 286
        return response
    return _fragment(request, "compute/_job.html", job=job)


def _whole_number(form: dict[str, str], key: str) -> int | None:
    text = form.get(key, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        flag = "--" + key.replace("_", "-")
        raise UsageError(f"Invalid value for '{flag}': {text!r} is not a valid integer.") from None


def _scale(request: Request, form: dict[str, str]) -> HTMLResponse:
    from targets.clusters.lifecycle import SCALE_SETTINGS, update_cluster

    name = request.path_params["name"]
    try:
        changes = {k: _whole_number(form, k) for k in SCALE_SETTINGS}
        with web.workspace(request) as ws:
            spec = update_cluster(ws, name, **changes)
    except TargetsError as exc:
        return _error(request, exc)
    CHECKS.forget(request.app.state.root, name)
    return _fragment(
        request,
        "compute/_notice.html",
        text=f"updated {name}: {spec.min_nodes}-{spec.max_nodes} nodes, idle nodes removed "
        f"after {spec.idle_seconds_before_scaledown} s",
    )


async def scale_post(request: Request) -> HTMLResponse:
    form = await _form(request)
    return await run_in_threadpool(_scale, request, form)


def _delete(request: Request, form: dict[str, str]) -> HTMLResponse:
    from targets.clusters.lifecycle import delete_cluster

    name = request.path_params["name"]
    force = form.get("force") is not None

    def work(ws: Workspace, job: Job) -> str:
        delete_cluster(ws, name, force=force, busy=_Phase(job, "removing its nodes"))
        return f"deleted cluster {name}"

    job = JOBS.start(
        request.app.state.root,
        f"deleting cluster {name} and its nodes",
        work,
        link="/compute",
        link_text="back to the compute targets",
    )
    return _fragment(request, "compute/_job.html", job=job)


async def delete_post(request: Request) -> HTMLResponse:
    form = await _form(request)
    return await run_in_threadpool(_delete, request, form)


def _detach(request: Request) -> Response:
    from targets.attachment import detach_target

    name = request.path_params["name"]
    try:
        with web.workspace(request) as ws:
            detach_target(ws, name)
    except TargetsError as exc:
        return _error(request, exc)
    CHECKS.forget(request.app.state.root, name)
    return _redirect("/compute")


async def detach_post(request: Request) -> Response:
    return await run_in_threadpool(_detach, request)


routes: list[BaseRoute] = [
    Route("/compute", compute_list),
    Route("/compute/attach", attach_page, methods=["GET"]),
    Route("/compute/attach", attach_post, methods=["POST"]),
    Route("/compute/create", create_page, methods=["GET"]),
    Route("/compute/create", create_post, methods=["POST"]),
    Route("/compute/jobs/{job_id}", job_fragment),
    Route("/compute/{name}", target_page),
    Route("/compute/{name}/status", status_fragment),
    Route("/compute/{name}/scale", scale_post, methods=["POST"]),
    Route("/compute/{name}/detach", detach_post, methods=["POST"]),
    Route("/compute/{name}/delete", delete_post, methods=["POST"]),
]
"""The compute pages' routes (``/compute...``)."""
