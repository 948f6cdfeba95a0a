"""Runs whose submission is under way, and runs whose submitting client is gone.

A run is recorded (``Queued``, no handle) before its files are uploaded and gets its
handle once the target has started it. A client killed in between (``kill -9``, a closed
laptop, a lost terminal) would leave it ``Queued`` for ever. So the submitting process
holds a lock on the file ``.submitting`` in the run's folder from before the run is
recorded until its handle (or its failure) is; the next command that looks at a ``Queued``
run without a handle and can take that lock knows the submitter is gone, and records the
run Failed with the reason.

Design choice: an ``flock``, not a recorded pid. The kernel releases it when the holder
dies however it dies, and it cannot be fooled by a reused pid. The file is opened
close-on-exec, so a process the submitter starts (an SSH mux process, a supervisor) never
keeps it held. ``flock`` locks of two open files conflict within one process too, so a
notebook that lists runs while another thread submits one sees it as still submitting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from targets.compute.base import RunStatus
from targets.ledger import RunRecord
from targets.workspace import Workspace

__all__ = ["ABANDONED", "SubmitLock", "fail_if_abandoned"]

ABANDONED = "the client that submitted it stopped before the run started"
LOCK_NAME = ".submitting"


def _lock_path(workspace: Workspace, run_id: str) -> Path:
    return workspace.run_dir(run_id) / LOCK_NAME


class SubmitLock:
    """Held by the submitting process while a run is recorded but has no handle yet.

    ``SubmitLock(workspace, run_id)`` creates and locks the file (the run folder must
    exist); :meth:`release` removes it and is idempotent. Not reentrant."""

    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self._path = _lock_path(workspace, run_id)
        self._fd: int | None = os.open(
            self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        """Remove the file, then let go of the lock: whoever takes it afterwards reads
        the ledger as the submitter left it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            self._path.unlink()
        os.close(fd)


def fail_if_abandoned(workspace: Workspace, record: RunRecord) -> RunRecord:
    """``record`` as it now is: a ``Queued`` run without a handle whose submitting
    process is gone is recorded Failed with the reason (:data:`ABANDONED`). Never
    blocks; a run still being submitted, or one recorded by a version without the lock,
    is returned unchanged."""
    if record.status != RunStatus.QUEUED.value or record.handle:
        return record
    path = _lock_path(workspace, record.id)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        # No lock file: the submitter finished meanwhile (or is older than the lock).
        return workspace.ledger.get(record.id) or record
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return record  # held: the submission is under way
        fresh = workspace.ledger.get(record.id)
        if fresh is None or fresh.status != RunStatus.QUEUED.value or fresh.handle:
            return fresh or record
        failed = workspace.ledger.update(
            record.id,
            status=RunStatus.FAILED.value,
            ended_at=time.time(),
            message=ABANDONED,
            collected=True,
        )
        with contextlib.suppress(OSError):
            path.unlink()
        return failed
    finally:
        os.close(fd)
