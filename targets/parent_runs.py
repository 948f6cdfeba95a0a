"""The target of sweep and pipeline parents: a driver process on this machine.

A parent run has no script of its own. Its driver (:mod:`targets.jobs.drive`, started
by :mod:`targets.jobs.parent`) submits and follows the children, writes what it does
to :data:`DRIVER_LOG` in the parent's run folder and records the parent's state in the
ledger; the client collects that log into the parent's ``driver.log`` like any run's.
:class:`ParentRunTarget` answers the primitives of
:class:`~targets.compute.base.ComputeTarget` for such a run, so that :mod:`targets.runs`
follows, cancels and collects a parent like any other run.

It is not a kind of the registry (nothing is attached as one); :func:`open_target`
gives it to a run whose handle it made (:meth:`ParentRunTarget.handle_for`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from targets.compute.base import (
    Capability,
    ComputeTarget,
    LogChunk,
    Progress,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
    TargetContext,
)
from targets.errors import UnsupportedOperation

if TYPE_CHECKING:
    from targets.ledger import RunRecord
    from targets.workspace import Workspace

__all__ = ["DRIVER_LOG", "ParentRunTarget", "open_target"]

DRIVER_LOG = ".driver.log"
"""What the driver writes, in the parent's folder; collected into its ``driver.log``."""
_CHUNK = 1 << 20


def _pid_alive(pid: int) -> bool:
    from targets.agent.rundir import is_alive

    return is_alive(pid, None)


class ParentRunTarget(ComputeTarget):
    """Sweep and pipeline parents, driven by a local process (see the module doc)."""

    kind = "driver"
    description = "the local driver of a sweep or pipeline parent run"
    capabilities = frozenset({Capability.CANCEL, Capability.LIVE_LOGS})
    attachable = False

    def __init__(self, workspace: Workspace, name: str) -> None:
        super().__init__(
            name, context=TargetContext(state_dir=workspace.dir, workspace=workspace.root)
        )
        self.workspace = workspace

    @classmethod
    def handle_for(cls, run_id: str, pid: int, target: str = "local") -> RunHandle:
        """The handle of the parent ``run_id`` whose driver is process ``pid``."""
        return RunHandle(kind=cls.kind, target=target, run_id=run_id, data={"pid": pid})

    def submit(self, request: SubmitRequest, progress: Progress | None = None) -> RunHandle:
        raise UnsupportedOperation(
            "a sweep or pipeline parent is started by its job (targets.jobs), not submitted"
        )

    def status(self, handle: RunHandle) -> RunState:
        """The state the driver recorded; Failed when the driver died before recording
        an end."""
        record = self.workspace.ledger.get(handle.run_id)
        if record is None:
            return RunState(RunStatus.FAILED, message="the parent run is not in the ledger")
        status = RunStatus(record.status)
        pid = int(handle.data.get("pid") or 0)
        if not status.terminal and pid and not _pid_alive(pid):
            record = self.workspace.ledger.get(handle.run_id) or record  # it may just have ended
            status = RunStatus(record.status)
            if not status.terminal:
                return RunState(
                    RunStatus.FAILED,
                    message="the driver process ended unexpectedly",
                    ended_at=time.time(),
                    started_at=record.started_at,
                )
        return RunState(
            status,
            exit_code=record.exit_code,
            message=record.message,
            phases=dict(record.phases),
            started_at=record.started_at,
            ended_at=record.ended_at,
        )

    def read_logs(self, handle: RunHandle, offsets: Mapping[str, int]) -> list[LogChunk]:
        """New bytes of the driver's log (``.driver.log`` in the parent's folder), as the
        parent's ``driver.log``: collected into the folder like any run's."""
        offset = offsets.get("driver.log", 0)
        try:
            with open(self.workspace.run_dir(handle.run_id) / DRIVER_LOG, "rb") as fh:
                fh.seek(offset)
                data = fh.read(_CHUNK)
        except FileNotFoundError:
            return []
        return [LogChunk(name="driver.log", offset=offset, data=data)] if data else []

    def fetch_outputs(self, handle: RunHandle, dest: Path) -> None:
        return None  # a parent's results are its children's

    def cancel(self, handle: RunHandle) -> None:
        """Ask the driver to stop (a ``cancel`` file it polls, and SIGTERM); it cancels
        the children and records the parent's end."""
        folder = self.workspace.run_dir(handle.run_id)
        (folder / "cancel").write_text(str(time.time()))
        pid = int(handle.data.get("pid") or 0)
        if pid and _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def open_target(workspace: Workspace, record: RunRecord) -> ComputeTarget:
    """The target that answers for the run ``record``: its parent driver when it is a
    sweep or pipeline parent, else the attached target it ran on."""
    raw: Any = record.handle or {}
    if raw.get("kind") == ParentRunTarget.kind:
        return ParentRunTarget(workspace, record.target)
    return workspace.get_target(record.target)
