"""Small background processes of our own (a cluster's reconcile process, a target's
shared SSH connection): each holds an ``flock`` on its lock file while it lives and
writes its pid next to it; commands start them detached and signal them by that pid."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["lock_held", "signal_holder", "spawn"]


def lock_held(path: Path) -> bool:
    """Whether a live process holds the lock at ``path``."""
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def signal_holder(lock: Path, pid_file: Path, signum: int, marker: bytes) -> bool:
    """Send ``signum`` to the process named in ``pid_file``, only while the lock is held
    and only when that pid's command line contains ``marker``: a pid file left by a process
    that died may name another process by now. True when the signal was sent."""
    if not lock_held(lock):
        return False
    try:
        pid = int(pid_file.read_text())
        if marker not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        os.kill(pid, signum)
    except (OSError, ValueError):
        return False
    return True


def spawn(argv: Sequence[str], log: Path, cwd: Path | None = None) -> None:
    """Start ``argv`` in its own session, detached from this one, its output appended to
    ``log``."""
    with open(log, "ab") as out:
        subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd=str(cwd) if cwd is not None else None,
            start_new_session=True,
            close_fds=True,
        )
