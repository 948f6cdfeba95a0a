"""Parent runs of sweeps and pipelines: a ledger record and a run folder whose
``driver.log`` tells what the driver does (the driver writes ``.driver.log``, collected
like any run's log: see :mod:`targets.parent_runs`); the children are ordinary runs
with ``parent_id`` set.

The driver (:mod:`targets.jobs.drive`) runs in its own process, detached from the
terminal like every run: ``targets run`` follows the parent's log, and Ctrl-C stops
following, not the sweep or pipeline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from targets.agent import protocol
from targets.ledger import RunRecord
from targets.parent_runs import DRIVER_LOG, ParentRunTarget
from targets.runs import Run
from targets.workspace import LOCAL, Workspace, new_run_id

__all__ = ["ParentLog", "create_parent", "launch_driver"]


def create_parent(
    ws: Workspace,
    *,
    kind: str,
    loaded_path: Path,
    overrides: tuple[str, ...],
    compute: str | None,
    experiment: str,
    display_name: str | None,
    name: str | None,
    entry: str,
    extra: dict[str, Any] | None = None,
) -> Run:
    """Record a sweep or pipeline parent run (Queued) with what its driver needs.

    ``extra`` adds keys to the parent's ``run.json``; ``"submitter": "module:function"``
    names a factory ``f(ws, info) -> submit`` whose ``submit`` replaces
    :func:`targets.jobs.submit.submit_command` for the children (how the Azure ML v1
    front ends give each child its own ``RunConfiguration``; see :mod:`targets.jobs.drive`)."""
    ws.ensure()
    run_id = name or new_run_id(experiment)
    if ws.ledger.get(run_id) is not None:
        from targets.errors import UsageError

        raise UsageError(f"a run named {run_id!r} exists already; pick another name")
    folder = ws.run_dir(run_id)
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "experiment": experiment,
                "kind": kind,
                "job": str(loaded_path),
                "overrides": list(overrides),
                "compute": compute,
                **(extra or {}),
            }
        )
    )
    (folder / DRIVER_LOG).touch()
    ws.ledger.insert(
        RunRecord(
            id=run_id,
            experiment=experiment,
            target=compute or LOCAL,
            kind=kind,
            status=protocol.QUEUED,
            created_at=time.time(),
            display_name=display_name,
            entry=entry,
        )
    )
    return Run(ws, run_id)


def launch_driver(ws: Workspace, run_id: str) -> None:
    """Start the driver of a parent run in its own session; it outlives this process."""
    folder = ws.run_dir(run_id)
    with open(folder / "driver-process.log", "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "targets.jobs.drive", str(ws.root), run_id],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
            env={**os.environ, "TARGETS_WORKSPACE": str(ws.root)},
        )
    ws.ledger.update(
        run_id,
        handle=ParentRunTarget.handle_for(run_id, proc.pid).to_json(),
    )


class ParentLog:
    """Lines of the parent's ``driver.log`` (what a user following the run sees)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / DRIVER_LOG

    def __call__(self, line: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(line.rstrip("\n") + "\n")


def parent_state(ws: Workspace, run_id: str) -> dict[str, Any]:
    record = ws.ledger.get(run_id)
    return record.to_json() if record else {}


def relay_output(say: ParentLog, label: str, run: Run, limit: int = 200) -> None:
    """Show a finished child's output in the parent's log, each line labelled."""
    log = run.folder / "driver.log"
    if not log.exists():
        return
    lines = log.read_text(errors="replace").splitlines()
    shown = lines[-limit:]
    if len(lines) > limit:
        say(f"[{label}] ... ({len(lines) - limit} earlier lines in {log})")
    for line in shown:
        say(f"[{label}] {line}")
