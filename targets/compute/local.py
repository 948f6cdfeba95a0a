"""The ``local`` target: this machine.

It uses the agent in-process: the same object store, environment cache and detached
supervisor that remote kinds drive over SSH, rooted at ``$TARGETS_HOME`` (default
``~/.targets``). Environments and snapshot objects are therefore shared by every project
of the user on this machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from targets.agent import envs, rundir, store, supervisor
from targets.compute.base import (
    Capability,
    ComputeTarget,
    LogChunk,
    Progress,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
    _no_progress,
)
from targets.errors import TargetsError

__all__ = ["LocalTarget", "agent_root", "run_spec"]


def agent_root() -> Path:
    """Where the agent keeps objects, environments and runs on this machine."""
    return Path(os.environ.get("TARGETS_HOME") or Path.home() / ".targets")


def _uv_bin() -> str | None:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def run_spec(
    request: SubmitRequest, *, default_python: str | None, uv: str | None
) -> dict[str, Any]:
    """The ``spec.json`` the supervisor reads: what to run, in which environment."""
    config = request.config
    entry: dict[str, Any]
    if config.script:
        entry = {"script": config.script, "arguments": list(config.arguments)}
    else:
        entry = {"command": config.command}
    variables = dict(config.environment.environment_variables)
    variables.update(config.environment_variables)
    return {
        "run_id": request.run_id,
        "entry": entry,
        "environment": dict(request.environment.to_json(), hash=request.environment.hash),
        "environment_variables": variables,
        "max_run_duration_seconds": config.max_run_duration_seconds,
        "default_python": default_python,
        "uv": uv,
    }


def state_from_status(raw: Mapping[str, Any]) -> RunState:
    """Translate the agent's ``status.json`` into a :class:`RunState`."""
    name = raw.get("status", "Queued")
    try:
        status = RunStatus(name)
    except ValueError:
        status = RunStatus.FAILED
    return RunState(
        status=status,
        exit_code=raw.get("exit_code"),
        message=raw.get("message"),
        phases=dict(raw.get("phases") or {}),
        started_at=raw.get("running_at"),
        ended_at=raw.get("ended_at"),
    )


class LocalTarget(ComputeTarget):
    """Runs on this machine, detached from the client."""

    kind = "local"
    description = "this machine"
    capabilities = frozenset(
        {Capability.VIRTUALENV, Capability.CONDA, Capability.CANCEL, Capability.LIVE_LOGS}
    )

    @property
    def root(self) -> Path:
        return agent_root()

    def probe(self) -> dict[str, Any]:
        return {
            "os": f"{platform.system()} {platform.release()}",
            "python": sys.executable,
            "python_version": platform.python_version(),
            "cores": os.cpu_count(),
            "conda": next((t for t in ("micromamba", "mamba", "conda") if shutil.which(t)), None),
        }

    def submit(self, request: SubmitRequest, progress: Progress = _no_progress) -> RunHandle:
        root = str(self.root)
        snapshot = request.snapshot
        rows = snapshot.to_manifest()["files"]
        missing = set(store.missing_objects(root, rows))
        by_key: dict[str, str] = {}
        for path, _size, mode, digest, link in rows:
            if link is None:
                by_key.setdefault(digest + (".x" if mode & 0o111 else ""), path)
        todo = [k for k in by_key if k in missing]
        for done, key in enumerate(todo, 1):
            try:
                store.put_file(root, key, str(snapshot.root / by_key[key]))
            except ValueError as exc:
                raise TargetsError(str(exc)) from exc
            progress("upload", done, len(todo))
        run_dir = Path(rundir.run_path(root, request.run_id))
        (run_dir / "wd").mkdir(parents=True)
        store.materialise(root, rows, str(run_dir / "wd"))
        spec = run_spec(request, default_python=sys.executable, uv=_uv_bin())
        (run_dir / "spec.json").write_text(json.dumps(spec))
        try:
            supervisor.launch(root, request.run_id)
        except RuntimeError as exc:
            raise TargetsError(str(exc)) from exc
        return RunHandle(
            kind=self.kind,
            target=self.name,
            run_id=request.run_id,
            data={"root": root, "uploaded": len(todo)},
        )

    def _root_of(self, handle: RunHandle) -> str:
        return str(handle.data.get("root") or self.root)

    def status(self, handle: RunHandle) -> RunState:
        supervisor.reap()
        return state_from_status(rundir.read_status(self._root_of(handle), handle.run_id))

    def read_logs(self, handle: RunHandle, offsets: Mapping[str, int]) -> list[LogChunk]:
        chunks = rundir.read_logs(self._root_of(handle), handle.run_id, dict(offsets))
        return [LogChunk(c["name"], c["offset"], c["data"]) for c in chunks]

    def fetch_outputs(self, handle: RunHandle, dest: Path) -> None:
        wd = Path(rundir.run_path(self._root_of(handle), handle.run_id)) / "wd"
        for sub in ("outputs", "logs"):
            _sync_tree(wd / sub, dest / sub)

    def cancel(self, handle: RunHandle) -> None:
        rundir.cancel_run(self._root_of(handle), handle.run_id)

    def environments(self) -> list[dict[str, Any]]:
        return envs.list_environments(str(self.root))

    def prune_environments(self, *, older_than_seconds: float | None = None) -> list[str]:
        return envs.prune_environments(
            str(self.root), keep_hashes=self._hashes_in_use(), older_than_seconds=older_than_seconds
        )

    def _hashes_in_use(self) -> set[str]:
        """Environment hashes of runs that have not ended: pruning must spare them."""
        in_use = set()
        runs = self.root / "runs"
        for run_dir in runs.iterdir() if runs.is_dir() else ():
            state = rundir.read_status(str(self.root), run_dir.name)
            if state.get("status") in rundir.TERMINAL:
                continue
            try:
                spec = json.loads((run_dir / "spec.json").read_text())
            except (OSError, ValueError):
                continue
            in_use.add(str(spec.get("environment", {}).get("hash")))
        return in_use


def _sync_tree(src: Path, dest: Path) -> None:
    """Bring new or changed files of ``src`` into ``dest`` (by size and mtime).

    Design choice: files are hard-linked where possible, so a large model written to
    ``./outputs`` does not take its disk space twice on this machine."""
    if not src.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        for name in filenames:
            s = Path(dirpath) / name
            d = dest / rel / name
            try:
                st = s.stat()
                if d.exists():
                    dt = d.stat()
                    if dt.st_size == st.st_size and int(dt.st_mtime) == int(st.st_mtime):
                        continue
                d.parent.mkdir(parents=True, exist_ok=True)
                tmp = d.with_name(f".{d.name}.tmp")
                try:
                    os.link(s, tmp)
                except OSError:
                    shutil.copy2(s, tmp)
                os.replace(tmp, d)
            except FileNotFoundError:
                continue  # removed by the script meanwhile
