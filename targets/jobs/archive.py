"""Archived jobs (``targets job archive`` / ``restore``): hidden from ``targets job
list`` unless asked for, as ``az ml job archive`` hides a job; the run, its folder and
its outputs stay. Kept in ``.targets/archived-jobs.json`` (a list of run ids), so the
ledger's format does not change. Only an ended run can be archived, as in Azure ML.

Design choice: a file beside the ledger rather than a ledger column. Archiving is a
listing preference of ``targets job``, not a fact about the run; ``targets runs list``
still shows every run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from targets.agent import protocol
from targets.errors import ConfigError, UsageError
from targets.workspace import Workspace

__all__ = ["ARCHIVE_FILE", "archive_job", "archived_jobs", "restore_job"]

ARCHIVE_FILE = "archived-jobs.json"


def _file(ws: Workspace) -> Path:
    return ws.dir / ARCHIVE_FILE


def archived_jobs(ws: Workspace) -> set[str]:
    """The ids of archived runs (empty when none; reading creates nothing)."""
    path = _file(ws)
    if not path.exists():
        return set()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the archived jobs: {exc}",
            path=str(path),
            hint="delete the file to restore every job",
        ) from exc
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ConfigError("expected a list of run ids", path=str(path))
    return set(data)


def _write(ws: Workspace, ids: set[str]) -> None:
    ws.ensure()
    fd, tmp = tempfile.mkstemp(dir=ws.dir, prefix=f".{ARCHIVE_FILE}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(sorted(ids), fh)
    os.replace(tmp, _file(ws))


def archive_job(ws: Workspace, run_id: str) -> str:
    """Archive the run ``run_id`` (a unique prefix works); returns its full id.
    Idempotent. Raises UsageError for an unknown run or one that has not ended."""
    from targets.runs import Run

    run = Run(ws, run_id)
    status = run.refresh().status
    run.close()
    if status not in protocol.TERMINAL:
        raise UsageError(
            f"job {run.id} is {status}; only a job that has ended can be archived",
            hint=f"wait for it, or cancel it first: targets job cancel -n {run.id}",
        )
    ids = archived_jobs(ws)
    if run.id not in ids:
        _write(ws, ids | {run.id})
    return run.id


def restore_job(ws: Workspace, run_id: str) -> str:
    """Undo :func:`archive_job`; returns the full id. Raises UsageError when the run is
    not archived."""
    from targets.runs import Run

    full = Run(ws, run_id).id
    ids = archived_jobs(ws)
    if full not in ids:
        raise UsageError(f"job {full} is not archived")
    _write(ws, ids - {full})
    return full
