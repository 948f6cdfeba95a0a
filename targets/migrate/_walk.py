"""Which files a migration reads, and how it writes them.

The walk stays inside the folder it is given: it never follows a symbolic link (to a
file or a folder), and it leaves out version control, virtual environments (``.venv``,
or any folder holding a ``pyvenv.cfg``), ``node_modules``, ``.targets``, caches and
notebook checkpoints.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SKIPPED_DIRS", "changed_since", "walk", "write_atomic"]

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "node_modules",
        ".targets",
        "__pycache__",
        ".ipynb_checkpoints",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
    }
)
SUFFIXES = (".py", ".ipynb", ".runconfig")


def walk(root: Path) -> Iterator[Path]:
    """The ``.py``, ``.ipynb`` and ``.runconfig`` files under ``root`` (or ``root``
    itself when it is a file), in a stable order, links left out."""
    if root.is_file():
        yield root
        return
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIPPED_DIRS
            and not (here / d).is_symlink()
            and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            path = here / name
            if name.endswith(SUFFIXES) and not path.is_symlink() and path.is_file():
                yield path


def changed_since(path: Path, content: bytes) -> bool:
    """Whether ``path`` no longer holds ``content`` (someone edited it meanwhile)."""
    try:
        return path.read_bytes() != content
    except OSError:
        return True


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step: a temporary beside it, flushed to
    disk, given the file's permission bits, then renamed over it. A reader sees the old
    file or the new one, never half of one. Raises :class:`OSError`."""
    mode = stat.S_IMODE(os.lstat(path).st_mode)
    fd, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".targets-migrate"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
