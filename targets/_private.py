"""Folders private to the user running ``targets``: the workspace's ``.targets/`` and a
per-user runtime folder for locks.

Other users of the machine must not read a run's variables, logs or outputs, nor block
this user's commands. Two rules give that:

- A folder that holds run data is 0700 (:func:`private_dir`). That alone protects every
  file below it, whatever its own mode, the umask of the process that wrote it, or the
  version of ``targets`` that made it: a folder left 0755 by an earlier version is
  tightened the next time it is used.
- Nothing that one user creates is shared with another through a fixed name in ``/tmp``:
  locks live in :func:`runtime_dir`, which only this user can write.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from targets.errors import TargetsError

__all__ = ["private_dir", "runtime_dir"]


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) with mode 0700, or tighten it to 0700 when it is
    this user's folder. A folder of another user is left as it is (its owner decides).
    Idempotent; raises OSError when the folder cannot be made."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def _usable(path: Path) -> bool:
    """A real folder (not a link), owned by this user, that nobody else can write."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and not stat.S_IMODE(info.st_mode) & 0o022
    )


def runtime_dir() -> Path:
    """This user's folder for locks and other short-lived files, created 0700.

    ``$XDG_RUNTIME_DIR/targets`` when ``XDG_RUNTIME_DIR`` is set and is this user's own
    folder (the systemd login session's ``/run/user/UID``), else ``~/.cache/targets/run``.
    Never a fixed name in ``/tmp``: any user can create such a name first, and then own
    the lock (blocking everyone) or make it unwritable (a ``PermissionError``).

    Raises :class:`~targets.errors.TargetsError` when the folder exists but belongs to
    another user or others can write it.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and _usable(Path(xdg)):
        folder = Path(xdg) / "targets"
    else:
        folder = Path.home() / ".cache" / "targets" / "run"
    try:
        private_dir(folder)
    except OSError as exc:
        raise TargetsError(
            f"cannot create the runtime folder {folder}: {exc.strerror or exc}",
            hint="make your home folder writable, or set XDG_RUNTIME_DIR to a folder of yours",
        ) from exc
    if not _usable(folder):
        raise TargetsError(
            f"the runtime folder {folder} is not private to you (another user owns it or "
            "can write to it)",
            hint=f"remove {folder}, or set XDG_RUNTIME_DIR to a folder only you can write",
        )
    return folder
