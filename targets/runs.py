"""Orchestration of runs: submit, refresh, stream, cancel, collect.

This is the loop around the target kinds' primitives (see
:mod:`targets.compute.base`): kinds start runs and answer questions about them; this
module decides when to ask, records answers in the ledger, streams logs into the run's
folder (whose file sizes are the resume offsets, so a client that went away continues
where it stopped) and brings outputs back once a run ends. No kind can get this wrong
because no kind implements it.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from targets.compute.base import (
    TERMINAL_STATUSES,
    ComputeTarget,
    LogChunk,
    Progress,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
)
from targets.errors import RunFailedError, RunNotFoundError, TargetsError, UsageError
from targets.ledger import RunRecord
from targets.workspace import Workspace, new_run_id

if TYPE_CHECKING:
    from targets.runconfig.model import RunConfiguration
    from targets.snapshot import Snapshot
    from targets.tracking import MetricPoint, TrackedRun

__all__ = ["CollectionError", "Run", "list_runs", "refresh_open_runs", "submit_run"]

SYSTEM_LOGS = ("prepare.log", "driver.log")
PARENT_VARIABLE = "TARGETS_PARENT_RUN_ID"
"""The parent's run id, in a child run's environment (``run.parent`` of the run library)."""
_MARK = ".collect-error"
"""In a run's folder while its last collection failed: the reason (see CollectionError)."""
_WAIT_SECONDS = 1.0
"""The longest one :meth:`ComputeTarget.wait_news` call of a follower blocks: Ctrl-C
stops streaming within about this long."""


class CollectionError(TargetsError):
    """Bringing a run's logs or outputs into the workspace failed (a full disk, a file
    the client could not write, a bad reply from the target). The run is marked with the
    reason and left uncollected: the next command about it tries again. Exit code 1."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(
            f"run {run_id}: collecting its logs and outputs failed: {reason}",
            hint=f"the run itself is not affected; the next command about it (targets runs "
            f"show {run_id}) tries again",
        )


_TERMINAL_NAMES = {s.value for s in TERMINAL_STATUSES}


def _entry_text(config: RunConfiguration) -> str:
    import shlex

    if config.script:
        return shlex.join([config.script, *config.arguments])
    if isinstance(config.command, list):
        return shlex.join(config.command)
    # One line for listings: a multi-line command reads as its lines joined with "; ".
    return "; ".join(
        line.strip() for line in str(config.command or "").splitlines() if line.strip()
    )


def _in_extra_files(script: str, extra_files: Mapping[str, Snapshot] | None) -> bool:
    """``script`` is one of the files shipped beside the source directory (``extra_files``,
    e.g. the launcher jar of a spark job's ``entry.class_name``)."""
    wanted = Path(script).as_posix()
    for prefix, part in (extra_files or {}).items():
        if any(f"{prefix.strip('/')}/{entry.path}" == wanted for entry in part.files):
            return True
    return False


def _check_entry(
    config: RunConfiguration, source_dir: Path, extra_files: Mapping[str, Snapshot] | None = None
) -> None:
    """The script must be a file inside the source directory (or one of the extra files)."""
    if not config.script and not config.command:
        raise UsageError(
            "nothing to run: give a script or a command",
            hint="targets run SCRIPT.py, or set `script:` in the runconfig",
        )
    if config.script:
        script = Path(config.script)
        full = (source_dir / script).resolve()
        if script.is_absolute() or not full.is_relative_to(source_dir.resolve()):
            raise UsageError(
                f"the script {config.script!r} is not inside the source directory {source_dir}",
                hint="move it into the source directory, or set source_directory to a folder "
                "that contains it",
            )
        if not full.is_file() and not _in_extra_files(config.script, extra_files):
            raise UsageError(f"the script {config.script!r} does not exist in {source_dir}")


def submit_run(
    workspace: Workspace,
    config: RunConfiguration,
    *,
    source_dir: str | Path,
    experiment: str | None = None,
    display_name: str | None = None,
    parent_id: str | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    origin: dict[str, Any] | None = None,
    extra_files: Mapping[str, Snapshot] | None = None,
    entry: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> Run:
    """Validate, snapshot, record and start one run; return without waiting for it.

    ``entry`` is what listings show as what ran (default: the script and its arguments,
    or the command). ``warn`` receives the snapshot's warnings (a symlink left out, a
    loop cut) and the environment's (Azure ML packages the run library replaces). A
    child run (``parent_id``) gets ``TARGETS_PARENT_RUN_ID``: v1's ``run.parent`` inside
    it. Raises a UsageError (exit 2) for bad input before anything is
    written or sent.
    """
    from targets.compute import prepare_timeout
    from targets.distributed import request_part
    from targets.environments import resolve_environment
    from targets.preflight import checked_python, without_docker
    from targets.snapshot import limits_from_env, symlinks_from_env, take_snapshot

    prepare_timeout()  # a bad TARGETS_PREPARE_TIMEOUT is refused before anything is written
    source = Path(source_dir).resolve()
    if not source.is_dir():
        raise UsageError(f"the source directory {str(source)!r} does not exist")
    _check_entry(config, source, extra_files)
    target = workspace.get_target(config.target)
    # Docker or not, and which Python: refused here, before the run is queued (preflight).
    config = without_docker(target, config, warn)
    target.check_request(config)
    # Several processes: planned here on one machine; several nodes: a MULTI_NODE target.
    distributed = request_part(config, target)
    environment = resolve_environment(config, source, warn=warn)
    environment = checked_python(workspace, target, config, environment, warn)
    experiment = experiment or config.experiment_name or workspace.default_experiment()
    report = progress or (lambda phase, done, total: None)
    if run_id is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", run_id):
            raise UsageError(f"invalid run name {run_id!r}: use letters, digits, '_', '.', '-'")
        if workspace.ledger.get(run_id) is not None:
            raise UsageError(f"a run named {run_id!r} exists already; pick another name")

    # The snapshot writes its hash cache into .targets/ once it has passed its checks;
    # nothing after that can refuse the run, so the workspace is never left half-made.
    snapshot = take_snapshot(
        source,
        limits=limits_from_env(),
        cache_path=workspace.cache_dir / "snapshot-hashes.db",
        progress=lambda done, total: report("snapshot", done, total),
        symlinks=symlinks_from_env(),
        warn=warn,
    )
    if extra_files:
        from targets.snapshot import combine

        snapshot = combine(snapshot, extra_files)

    workspace.ensure()
    run_id = run_id or new_run_id(experiment)
    run_dir = workspace.run_dir(run_id)
    run_dir.mkdir(parents=True)
    record = RunRecord(
        id=run_id,
        experiment=experiment,
        target=target.name,
        kind=target.kind,
        status=RunStatus.QUEUED.value,
        created_at=time.time(),
        parent_id=parent_id,
        display_name=display_name,
        entry=entry or _entry_text(config),
    )
    manifest = {
        "run_id": run_id,
        "experiment": experiment,
        "target": target.name,
        "kind": target.kind,
        "source_directory": str(source),
        "origin": origin or {},
        "runconfig": config.model_dump(mode="json", exclude_defaults=True),
        "environment": dict(environment.to_json(), hash=environment.hash),
        "snapshot": snapshot.to_manifest(),
    }
    # Compact JSON: `indent` would switch json to its slow pure-Python encoder.
    (run_dir / "run.json").write_text(json.dumps(manifest, separators=(",", ":")))
    from targets._submitting import SubmitLock

    submitting = SubmitLock(workspace, run_id)  # until the handle or the failure is recorded
    workspace.ledger.insert(record)
    try:
        handle = target.submit(
            SubmitRequest(
                run_id=run_id,
                config=_with_parent(config, parent_id),
                snapshot=snapshot,
                environment=environment,
                experiment=experiment,
                distributed=distributed,
            ),
            report,
        )
    except BaseException as exc:
        target.close()
        workspace.ledger.update(
            run_id,
            status=RunStatus.FAILED.value,
            ended_at=time.time(),
            message=f"submission failed: {exc}",
            collected=True,
        )
        submitting.release()
        raise
    workspace.ledger.update(run_id, handle=handle.to_json())
    submitting.release()
    # The run keeps the open target: streaming reuses its connection (over SSH, one
    # connection and one agent for the whole `targets run`). Run.close() releases it.
    return Run(workspace, run_id, target=target)


def _with_parent(config: RunConfiguration, parent_id: str | None) -> RunConfiguration:
    """``config`` with the parent's id among the run's variables (what the run library's
    ``run.parent`` reads); the recorded runconfig stays as given."""
    if not parent_id or PARENT_VARIABLE in config.environment_variables:
        return config
    changed = config.model_copy(deep=True)
    changed.environment_variables[PARENT_VARIABLE] = parent_id
    return changed


class Run:
    """A run in a workspace: status, logs, outputs. The names follow Azure ML v1's ``Run``.

    Every method that asks the target refreshes the ledger as a side effect.
    """

    def __init__(
        self, workspace: Workspace, run_id: str, *, target: ComputeTarget | None = None
    ) -> None:
        self.workspace = workspace
        record = workspace.ledger.get(run_id)
        if record is None:
            matches = workspace.ledger.find(run_id)
            if len(matches) == 1:
                record = matches[0]
            elif matches:
                raise UsageError(
                    f"run id prefix {run_id!r} is ambiguous: "
                    + ", ".join(m.id for m in matches[:5])
                )
            else:
                raise RunNotFoundError(
                    f"no run {run_id!r} in the workspace {workspace.root}", hint="targets runs list"
                )
        self.id = record.id
        self._record = record
        self._target: ComputeTarget | None = target

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, status={self._record.status!r})"

    # -- basics ------------------------------------------------------------------------

    @property
    def record(self) -> RunRecord:
        return self._record

    @property
    def experiment(self) -> ExperimentName:
        """The experiment's name: a ``str`` (as before) that also answers v1's
        ``run.experiment.name`` and ``run.experiment.workspace``."""
        return ExperimentName(self._record.experiment, self.workspace)

    @property
    def display_name(self) -> str:
        """v1's ``display_name``: the name given at submission, else the run id."""
        return self._record.display_name or self.id

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._record = self.workspace.ledger.update(self.id, display_name=str(value))

    @property
    def name(self) -> str:
        """v1's ``name``: the display name."""
        return self.display_name

    @property
    def status(self) -> str:
        """The status last recorded (``get_status()`` asks the target)."""
        return self._record.status

    @property
    def parent(self) -> Run | None:
        """The parent run (a sweep or a pipeline), or None."""
        parent_id = self._record.parent_id
        if not parent_id or self.workspace.ledger.get(parent_id) is None:
            return None
        return self._parent_class()(self.workspace, parent_id)

    def _parent_class(self) -> type[Run]:
        """The class ``parent`` returns (pipeline steps: the pipeline's run class)."""
        return Run

    def _child_class(self) -> type[Run]:
        """The class ``get_children`` returns (a pipeline run: its steps' class)."""
        return Run

    def get_children(
        self,
        recursive: bool = False,
        tags: str | dict[str, str] | None = None,
        properties: str | dict[str, str] | None = None,
        type: str | None = None,
        status: str | None = None,
        _rehydrate_runs: bool = True,
    ) -> list[Run]:
        """The child runs (sweep trials, pipeline steps), oldest first; with
        ``recursive``, their children too. ``status`` filters; ``tags``/``properties``
        keep runs having that tag (a name) or those tags (a dict)."""
        found: list[Run] = []
        records = self.workspace.ledger.list(parent_id=self.id, limit=None)
        for record in reversed(records):
            child = self._child_class()(self.workspace, record.id)
            wanted = status is None or record.status == status
            if wanted and _has(child.get_tags, tags) and _has(child.get_properties, properties):
                found.append(child)
            if recursive:
                found.extend(
                    child.get_children(True, tags, properties, type, status, _rehydrate_runs)
                )
        return found

    def _tracked(self) -> list[TrackedRun]:
        from targets.tracking import tracked_runs

        return tracked_runs(self.folder)

    def _v1_own(self) -> list[TrackedRun]:
        """The MLflow runs whose metrics are this run's: its own (not the children made
        inside its script) and those its child runs wrote for it (``run.parent.log``)."""
        own = [t for t in self._tracked() if not t.is_child and t.logged_by is None]
        from targets.tracking import RUN_TAG, tracked_runs

        for record in reversed(self.workspace.ledger.list(parent_id=self.id, limit=None)):
            own += [
                t
                for t in tracked_runs(self.workspace.run_dir(record.id))
                if t.logged_by == record.id and t.tags.get(RUN_TAG) == self.id
            ]
        return own

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        """What the run logged, as v1 returns it: a value logged once is that value,
        logged several times (or with ``log_list``) a list; ``log_row``/``log_table`` a
        ``{column: [values]}``; images and the like their recorded value. Metrics its
        child runs logged on it (``run.parent.log``) are included. With ``recursive``,
        ``{run id: metrics}`` for this run, its child runs and the children its script
        made with ``child_run()``. What is logged so far, for a run still going."""
        from targets.tracking import CHILD_ID, v1_metrics

        self._collect_quietly()

        def pick(found: dict[str, Any]) -> dict[str, Any]:
            return found if name is None else {name: found[name]} if name in found else {}

        result = pick(v1_metrics(self._v1_own()))
        if not recursive:
            return result
        every: dict[str, Any] = {self.id: result}
        for tracked in self._tracked():
            if tracked.is_child and CHILD_ID in tracked.tags:
                every[tracked.tags[CHILD_ID]] = pick(tracked.v1_metrics())
        for child in self.get_children():
            nested = child.get_metrics(name, recursive=True)
            every.update(nested)
        return every

    def metric_points(self) -> dict[str, list[MetricPoint]]:
        """Metric name -> every point (step, time, value) of the metrics that are this
        run's: its own and those its child runs logged on it (``run.parent.log``), in the
        order logged. What has been collected; the target is not asked (:meth:`sync`
        brings what a run still going has logged)."""
        from targets.tracking import mlflow_run_points

        found: dict[str, list[MetricPoint]] = {}
        for tracked in self._v1_own():
            for name, points in mlflow_run_points(tracked.folder).items():
                found.setdefault(name, []).extend(points)
        return found

    def _collect_quietly(self) -> None:
        """Bring what the run has so far, when it can be had: an unreachable target or a
        failed collection leaves what was collected before."""
        with contextlib.suppress(TargetsError):
            self._collect()

    def get_tags(self) -> dict[str, str]:
        """The tags given at submission (``Experiment.submit(config, tags)``) and those
        the run set (``run.tag``, ``mlflow.set_tag``, a child's ``run.parent.tag``),
        without ``mlflow.*``, ``targets.*`` and ``azureml.*``."""
        self._collect_quietly()
        tags = dict(self._manifest().get("origin", {}).get("tags") or {})
        system = ("mlflow.", "targets.", "azureml.")
        for tracked in self._v1_own():
            tags.update({k: v for k, v in tracked.tags.items() if not k.startswith(system)})
        return {str(k): str(v) for k, v in tags.items()}

    def get_properties(self) -> dict[str, str]:
        """v1's immutable properties: what the run added with ``add_properties`` (MLflow
        params), and ``targets.*`` facts of the run (target, kind, experiment)."""
        self._collect_quietly()
        properties = {
            "targets.target": self._record.target,
            "targets.kind": self._record.kind,
            "targets.experiment": self._record.experiment,
        }
        for tracked in self._v1_own():
            if tracked.logged_by is None:
                properties.update(tracked.params)
        return properties

    def _manifest(self) -> dict[str, Any]:
        path = self.folder / "run.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def folder(self) -> Path:
        """The run's folder in the workspace (run.json, logs, outputs)."""
        return self.workspace.run_dir(self.id)

    @property
    def handle(self) -> RunHandle | None:
        raw = self._record.handle
        return RunHandle.from_json(raw) if raw else None

    def _get_target(self) -> ComputeTarget:
        if self._target is None:
            from targets.parent_runs import open_target

            self._target = open_target(self.workspace, self._record)
        return self._target

    def close(self) -> None:
        if self._target is not None:
            self._target.close()
            self._target = None

    # -- state -------------------------------------------------------------------------

    def refresh(self) -> RunRecord:
        """Ask the target for the run's state, record it, and collect logs and outputs
        once it has ended."""
        record = self._record
        if record.status in _TERMINAL_NAMES and record.collected:
            return record
        handle = self.handle
        if handle is None:
            from targets._submitting import fail_if_abandoned

            record = self._record = fail_if_abandoned(self.workspace, record)
            return record
        target = self._get_target()
        state = target.status(handle)
        record = self._record_state(state)
        if state.status.terminal and not record.collected:
            record = self._collect_ended(target, handle)
        return record

    def _collect_ended(self, target: ComputeTarget, handle: RunHandle) -> RunRecord:
        """Collect the last logs and the outputs of an ended run, once: under the run's
        collection lock, and not again when another process did it meanwhile."""
        with self._collecting():
            fresh = self.workspace.ledger.get(self.id)
            if fresh is not None and fresh.collected:
                self._record = fresh
                return fresh
            self._pull_logs_unlocked(target, handle)
            target.fetch_outputs(handle, self.folder)
            from targets.tracking import merge_into_workspace

            merge_into_workspace(self.folder, self.workspace.dir / "mlruns", self.id)
            from targets.data.upload import upload_after_run

            upload_after_run(self.workspace, self.folder, self._record.status)
            record = self._record = self.workspace.ledger.update(self.id, collected=True)
            with contextlib.suppress(OSError):
                (self.folder / _MARK).unlink()
        # Only now may the target's storage cap remove the run's folder there; a
        # failure costs disk space until `targets gc`, never the run's results.
        with contextlib.suppress(TargetsError):
            target.mark_collected(handle)
        return record

    @contextlib.contextmanager
    def _collecting(self) -> Iterator[None]:
        """The run's collection lock; a failure inside (a full disk, a bad reply of the
        target, a damaged MLflow store) marks the run and raises CollectionError."""
        from targets._files import collection_lock, remove_temporaries

        try:
            with collection_lock(self.folder):
                # A client killed while collecting leaves its temporaries: no writer
                # holds them now (we hold the lock), and what they held is fetched again.
                remove_temporaries(self.folder)
                yield
        except CollectionError:
            raise
        except OSError as exc:
            where = exc.filename
            if isinstance(where, str) and where.startswith(str(self.folder) + "/"):
                where = where[len(str(self.folder)) + 1 :]
            reason = f"{exc.strerror or exc}" + (f" ({where})" if where else "")
            self._mark(reason)
            raise CollectionError(self.id, reason) from exc
        except TargetsError as exc:
            self._mark(exc.message)
            raise CollectionError(self.id, exc.message) from exc
        except Exception as exc:  # the ledger (sqlite) or a damaged MLflow store
            reason = f"{type(exc).__name__}: {exc}"
            self._mark(reason)
            raise CollectionError(self.id, reason) from exc

    def _mark(self, reason: str) -> None:
        """Record why the last collection failed (best effort: the disk may be full)."""
        import tempfile

        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".collect-error.")
        except OSError:
            return
        try:
            with open(fd, "w") as fh:
                fh.write(reason)
            Path(tmp).replace(self.folder / _MARK)
        except OSError:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()

    @property
    def collection_error(self) -> str | None:
        """Why the last collection of this run failed, or None."""
        try:
            return (self.folder / _MARK).read_text(errors="replace")[:4000] or None
        except OSError:
            return None

    def _record_state(self, state: RunState) -> RunRecord:
        r = self._record
        changes: dict[str, Any] = {}
        if state.status.value != r.status:
            changes["status"] = state.status.value
        for name in ("exit_code", "message", "started_at", "ended_at"):
            value = getattr(state, name)
            if value is not None and value != getattr(r, name):
                changes[name] = value
        if state.phases and dict(state.phases) != dict(r.phases):
            changes["phases"] = dict(state.phases)
        if changes:
            self._record = self.workspace.ledger.update(self.id, **changes)
        return self._record

    def get_status(self) -> str:
        return self.refresh().status

    def get_details(self) -> dict[str, Any]:
        """The run's record and what its folder holds. A failed collection does not fail
        this: ``collection_error`` says why (None once collected)."""
        try:
            record = self.refresh()
        except CollectionError:
            record = self._record
        details = record.to_json()
        details["collection_error"] = None if record.collected else self.collection_error
        details["folder"] = str(self.folder)
        # The interpreter the client chose (local user-managed runs); elsewhere the
        # target's own choice, not recorded.
        details["python"] = ((record.handle or {}).get("data") or {}).get("python")
        manifest = self.folder / "run.json"
        if manifest.exists():
            data = json.loads(manifest.read_text())
            details["runconfig"] = data.get("runconfig")
            details["environment"] = data.get("environment")
            details["git"] = (data.get("snapshot") or {}).get("git")
            details["snapshot"] = {
                "digest": (data.get("snapshot") or {}).get("digest"),
                "files": len((data.get("snapshot") or {}).get("files") or []),
                "total_size": (data.get("snapshot") or {}).get("total_size"),
            }
            details["origin"] = data.get("origin")
        from targets.tracking import read_run_metrics

        tracked = read_run_metrics(self.folder)
        details["params"] = tracked.get("params", {})
        details["metrics"] = tracked.get("metrics", {})
        details["tags"] = tracked.get("tags", {})
        for logged in self._v1_own():  # what child runs logged on this one (run.parent)
            if logged.logged_by is not None:
                for key, values in logged.history.items():
                    if values:
                        details["metrics"].setdefault(key, values[-1])
        details.update(self._v1_details(record, details))
        return details

    def _v1_details(self, record: RunRecord, details: dict[str, Any]) -> dict[str, Any]:
        """The keys of v1's ``get_details()``: ``runId``, ``target``, ``status``,
        ``startTimeUtc``, ``endTimeUtc`` (once ended), ``properties``, ``inputDatasets``,
        ``outputDatasets``, ``runDefinition``, ``logFiles``, ``submittedBy``."""
        v1: dict[str, Any] = {
            "runId": record.id,
            "displayName": record.display_name or record.id,
            "target": record.target,
            "status": record.status,
        }
        if record.started_at is not None:
            v1["startTimeUtc"] = _utc(record.started_at)
        if record.ended_at is not None and record.status in _TERMINAL_NAMES:
            v1["endTimeUtc"] = _utc(record.ended_at)
        properties = {k: str(v) for k, v in (details.get("params") or {}).items()}
        properties.update(
            {
                "targets.target": record.target,
                "targets.kind": record.kind,
                "targets.experiment": record.experiment,
            }
        )
        v1["properties"] = properties
        v1["inputDatasets"] = []
        v1["outputDatasets"] = []
        v1["runDefinition"] = details.get("runconfig") or {}
        v1["logFiles"] = {
            name: str(self.folder / name)
            for name in self._iter_files()
            if name.startswith("logs/") or name in SYSTEM_LOGS
        }
        v1["submittedBy"] = _user()
        return v1

    def cancel(self) -> RunRecord:
        """Stop the run and its process tree. Idempotent."""
        record = self.refresh()
        if record.status in _TERMINAL_NAMES:
            return record
        handle = self.handle
        if handle is None:
            return self.workspace.ledger.update(
                self.id, status=RunStatus.CANCELED.value, ended_at=time.time(), collected=True
            )
        self._get_target().cancel(handle)
        return self.refresh()

    # -- logs --------------------------------------------------------------------------

    def _local_offsets(self) -> dict[str, int]:
        offsets = {}
        for name in SYSTEM_LOGS:
            path = self.folder / name
            if path.is_file() and not path.is_symlink():
                offsets[name] = path.stat().st_size
        logs = self.folder / "logs"
        if logs.is_dir() and not logs.is_symlink():
            for path in logs.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    offsets["logs/" + path.relative_to(logs).as_posix()] = path.stat().st_size
        return offsets

    def _pull_logs(self, target: ComputeTarget, handle: RunHandle) -> list[LogChunk]:
        """Append every new log byte to the run folder; return what was new. Raises
        CollectionError (and marks the run) when that fails."""
        with self._collecting():
            return self._pull_logs_unlocked(target, handle)

    def _pull_logs_unlocked(self, target: ComputeTarget, handle: RunHandle) -> list[LogChunk]:
        got: list[LogChunk] = []
        while True:
            chunks = target.read_logs(handle, self._local_offsets())
            if not chunks:
                return got
            for chunk in chunks:
                self._write_chunk(chunk)
            got.extend(chunks)

    def _write_chunk(self, chunk: LogChunk) -> None:
        """Write one chunk from the target, after checking it: a name under ``logs/`` or
        a system log, an offset no further than what was collected so far (no sparse
        file), a bounded size. A folder where the target now has a file (or a file where
        it has a folder) is replaced."""
        from targets._files import check_log_chunk, write_log_chunk

        problem = check_log_chunk(chunk.name, chunk.offset, chunk.data, SYSTEM_LOGS)
        if problem:
            raise TargetsError(f"the target sent a bad reply: {problem}")
        write_log_chunk(self.folder, chunk.name.split("/"), chunk.name, chunk.offset, chunk.data)

    def stream(
        self,
        out: IO[bytes] | None = None,
        *,
        follow: bool = True,
        from_start: bool = True,
        on_status: Callable[[str], None] | None = None,
    ) -> RunRecord:
        """Write the run's output (environment preparation, then the script's stdout and
        stderr) to ``out`` and keep the run folder's logs up to date.

        With ``from_start``, what was already collected is written first. With
        ``follow``, blocks until the run ends (Ctrl-C stops streaming, not the run).
        """
        sink = out if out is not None else sys.stdout.buffer
        if from_start:
            for name in SYSTEM_LOGS:
                path = self.folder / name
                if path.exists():
                    sink.write(path.read_bytes())
            sink.flush()
        handle = self.handle
        if handle is None:
            return self.refresh()
        target = self._get_target()
        waited = self._follow_news(target, handle, sink, follow=follow, on_status=on_status)
        if waited is not None:
            return waited
        delay = 0.02
        last_status = self._record.status
        while True:
            record = self._record
            if record.status in _TERMINAL_NAMES and record.collected:
                return record
            # Status first: whatever is printed next happened while the run was in it.
            state = target.status(handle)
            if not state.status.terminal:
                record = self._record_state(state)
                if on_status and record.status != last_status:
                    on_status(record.status)
                    last_status = record.status
            new = self._pull_logs(target, handle)
            for chunk in new:
                if chunk.name in SYSTEM_LOGS:
                    sink.write(chunk.data)
            if new:
                sink.flush()
            if state.status.terminal:
                # The target reports an end only after its logs are complete, so the pull
                # above got the last bytes; refresh() records the end and collects outputs.
                return self.refresh()
            if not follow:
                return record
            if new:
                delay = 0.02
            else:
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)

    def _follow_news(
        self,
        target: ComputeTarget,
        handle: RunHandle,
        sink: IO[bytes] | None,
        *,
        follow: bool,
        on_status: Callable[[str], None] | None,
    ) -> RunRecord | None:
        """:meth:`stream`'s loop for kinds that wait for news
        (:meth:`~targets.compute.base.ComputeTarget.wait_news`): each call returns as soon
        as the run has new log bytes, a new status or has ended, so nothing waits for a
        poll interval. Returns None, having done nothing, when the kind cannot wait."""
        last_status = self._record.status
        while True:
            record = self._record
            if record.status in _TERMINAL_NAMES and record.collected:
                return record
            news = target.wait_news(
                handle, self._local_offsets(), record.status, _WAIT_SECONDS if follow else 0.0
            )
            if news is None:
                return None
            state, chunks = news
            if not state.status.terminal:
                record = self._record_state(state)
                if on_status and record.status != last_status:
                    on_status(record.status)
                    last_status = record.status
            new = self._write_news(chunks) if chunks else []
            if sink is not None and new:
                for chunk in new:
                    if chunk.name in SYSTEM_LOGS:
                        sink.write(chunk.data)
                sink.flush()
            if state.status.terminal:
                # The end comes only once the target's logs are complete: record it and
                # collect (what this answer left out, then the outputs) without asking
                # for the status again.
                record = self._record_state(state)
                if record.collected:
                    return record
                return self._collect_ended(target, handle)
            if not follow and not chunks:
                return record  # else ask again at once: the answer may have been capped

    def _write_news(self, chunks: list[LogChunk]) -> list[LogChunk]:
        """Write chunks that :meth:`ComputeTarget.wait_news` returned (their offsets were
        taken before the wait, outside the collection lock: another process may have
        collected some of these bytes meanwhile). Returns what was new here."""
        written: list[LogChunk] = []
        with self._collecting():
            have = self._local_offsets()
            for chunk in chunks:
                size = have.get(chunk.name, 0)
                if 0 <= chunk.offset <= size:
                    if chunk.offset + len(chunk.data) <= size:
                        continue  # collected already
                    chunk = LogChunk(chunk.name, size, chunk.data[size - chunk.offset :])
                # (any other offset is refused by the check of _write_chunk)
                self._write_chunk(chunk)
                written.append(chunk)
        return written

    def wait_for_completion(
        self,
        show_output: bool = False,
        wait_post_processing: bool = False,
        raise_on_error: bool = True,
    ) -> dict[str, Any]:
        """Block until the run ends; with ``show_output``, stream its output to stdout.
        Raises RunFailedError when it failed and ``raise_on_error``."""
        if show_output:
            record = self.stream(sys.stdout.buffer)
        else:
            record = self._record
            handle = self.handle
            waited = None
            if handle is not None and (
                record.status not in _TERMINAL_NAMES or not record.collected
            ):
                waited = self._follow_news(
                    self._get_target(), handle, None, follow=True, on_status=None
                )
            record = waited if waited is not None else self.refresh()
            delay = 0.05
            while record.status not in _TERMINAL_NAMES or not record.collected:
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)
                record = self.refresh()
        self.close()  # the run has ended: release the target's connection
        if raise_on_error and record.status != RunStatus.COMPLETED.value:
            raise RunFailedError(
                self.id, record.status, record.exit_code, self.tail(), record.message or ""
            )
        return self.get_details()

    def tail(self, lines: int = 20) -> str:
        path = self.folder / "driver.log"
        if not path.exists():
            path = self.folder / "prepare.log"
        if not path.exists():
            return ""
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 16384))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- files -------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the run's logs and outputs so far into its folder, also while it is
        still going (to read what it has written, e.g. metrics)."""
        self._collect()

    def delete(self) -> str | None:
        """Forget an ended run: free what it keeps on its target, delete its folder in the
        workspace and its ledger entry. Raises a UsageError (exit code 2) while it has not
        ended. Returns why the target's copy was kept, or None."""
        import shutil

        if self.refresh().status not in _TERMINAL_NAMES:
            raise UsageError(f"run {self.id} has not ended", hint=f"targets runs cancel {self.id}")
        kept = None
        handle = self.handle
        if handle is not None:
            try:
                self._get_target().discard(handle)
            except TargetsError as exc:
                kept = f"the copy on {self._record.target} was kept: {exc}"
            finally:
                self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.workspace.ledger.delete(self.id)
        return kept

    def _collect(self) -> None:
        record = self.refresh()
        if record.status not in _TERMINAL_NAMES and self.handle is not None:
            target = self._get_target()
            with self._collecting():
                self._pull_logs_unlocked(target, self.handle)
                target.fetch_outputs(self.handle, self.folder)

    def _iter_files(self) -> Iterator[str]:
        for top in ("outputs", "logs"):
            base = self.folder / top
            if base.is_dir():
                for path in sorted(base.rglob("*")):
                    if path.is_file():
                        yield path.relative_to(self.folder).as_posix()
        for name in SYSTEM_LOGS:
            if (self.folder / name).exists():
                yield name

    def get_portal_url(self) -> str:
        """v1's link to the run in Azure ML studio: here, the run's folder (its logs,
        outputs and ``run.json``) as a ``file:`` URI; ``targets runs show ID`` prints
        the same run."""
        return self.folder.resolve().as_uri()

    def get_file_names(self) -> list[str]:
        self._collect()
        return list(self._iter_files())

    def download_file(
        self,
        name: str,
        output_file_path: str | Path | None = None,
        _validate_checksum: bool = False,
    ) -> Path:
        """Copy one file of the run (e.g. ``outputs/model.txt``) to ``output_file_path``.
        A link at the destination is replaced, never written through."""
        from targets._files import NoFollowWriter

        self._collect()
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise UsageError(f"bad file name {name!r}")
        source = self.folder / name
        if not source.is_file():
            raise UsageError(
                f"run {self.id} has no file {name!r}",
                hint=f"targets runs show {self.id} lists its files",
            )
        dest = Path(output_file_path) if output_file_path else Path(Path(name).name)
        if dest.is_dir():  # the folder the caller named (a link to one is followed)
            dest = dest / source.name
        writer = NoFollowWriter(dest.parent)
        writer.check([[dest.name]])
        with open(source, "rb") as fh:
            return writer.write([dest.name], fh)

    def download_files(
        self,
        prefix: str | None = "",
        output_directory: str | Path | None = None,
        output_paths: list[str] | None = None,
        batch_size: int = 100,
        append_prefix: bool = True,
        timeout_seconds: int | None = None,
    ) -> list[Path]:
        """Copy the run's files whose names start with ``prefix`` under ``output_directory``
        (default: the current directory), keeping their relative paths; with
        ``append_prefix=False``, without the prefix (v1). ``output_paths`` (v1) names the
        path of each file instead, in the order of ``get_file_names()``.

        Nothing below ``output_directory`` is followed: a link in the way of a file is
        replaced (what it points to is left untouched), and a folder on the way that is a
        link is refused with a UsageError before anything is written."""
        from targets._files import NoFollowWriter

        self._collect()
        prefix = prefix or ""
        names = [name for name in self._iter_files() if name.startswith(prefix)]
        if output_paths is not None:
            if len(output_paths) != len(names):
                raise UsageError(
                    f"output_paths has {len(output_paths)} paths for {len(names)} files "
                    f"starting with {prefix!r}",
                    hint="give one path per file, in the order of get_file_names()",
                )
            return [
                self.download_file(name, path)
                for name, path in zip(names, output_paths, strict=True)
            ]
        writer = NoFollowWriter(Path(output_directory or "."))
        dests = []
        for name in names:
            rel = name if append_prefix else name[len(prefix) :].lstrip("/")
            dests.append((rel or Path(name).name).split("/"))
        writer.check(dests)
        written = []
        for name, dest in zip(names, dests, strict=True):
            with open(self.folder / name, "rb") as fh:
                written.append(writer.write(dest, fh))
        return written


class ExperimentName(str):
    """A run's experiment: its name as a ``str`` (what ``Run.experiment`` always was),
    with v1's ``.name``, ``.workspace`` and ``get_runs()``."""

    workspace: Workspace

    def __new__(cls, name: str, workspace: Workspace) -> ExperimentName:
        made = super().__new__(cls, name)
        made.workspace = workspace
        return made

    @property
    def name(self) -> str:
        return str(self)

    def get_runs(self) -> list[Run]:
        """This experiment's runs, newest first."""
        records = self.workspace.ledger.list(experiment=str(self), limit=None)
        return [Run(self.workspace, r.id) for r in records]


def _has(read: Callable[[], dict[str, str]], wanted: str | dict[str, str] | None) -> bool:
    if wanted is None:
        return True
    have = read()
    if isinstance(wanted, str):
        return wanted in have
    return all(have.get(k) == str(v) for k, v in wanted.items())


def _utc(timestamp: float) -> str:
    """ISO 8601 in UTC, as v1 writes times (``2024-01-02T03:04:05.678Z``)."""
    from datetime import datetime, timezone

    text = datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def refresh_open_runs(workspace: Workspace, *, warn: Callable[[str], None] | None = None) -> None:
    """Ask the targets of runs that have not ended (or not been collected) for news.

    One run's failure never stops the others: an unreachable target is passed over
    quietly (its runs are asked again next time); a run whose collection failed is marked
    (see :class:`CollectionError`) and reported through ``warn``; any other failure of
    one run is reported through ``warn`` too.
    """
    for record in workspace.ledger.open_runs():
        run: Run | None = None
        try:
            run = Run(workspace, record.id)
            run.refresh()
        except CollectionError as exc:
            if warn is not None:
                warn(f"{exc.message} (tried again by the next command about it)")
        except TargetsError:
            pass  # an unreachable target must not break listing
        except Exception as exc:  # one run must not break the others
            if warn is not None:
                warn(f"run {record.id}: could not be refreshed: {type(exc).__name__}: {exc}")
        finally:
            if run is not None:
                run.close()


def list_runs(workspace: Workspace, *, refresh: bool = True, **filters: Any) -> list[RunRecord]:
    """Runs newest first; runs still open are refreshed from their targets first."""
    if refresh:
        refresh_open_runs(workspace)
    return workspace.ledger.list(**filters)
