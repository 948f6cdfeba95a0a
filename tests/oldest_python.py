"""The oldest Python interpreter on this machine that the agent supports (3.8 or newer),
and the one the run library supports (3.6 or newer: it runs in the run's own Python).

The agent (``targets/agent/``) promises Python 3.8. No 3.8 can be installed from the
sources this project may use, but a machine may have one: this project's machine image
ships pyenv's builds (``$PYENV_ROOT/versions/3.8.*``). Found here: ``python3.N`` on PATH
or in ``/usr/bin``, ``/usr/local/bin``, and pyenv's versions; a pyenv shim that cannot
run the version is not counted.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from functools import cache
from pathlib import Path

FLOOR = (3, 8)
RUNLIB_FLOOR = (3, 6)
"""The run library (``targets/agent/runlib``) runs in the run's environment, whose conda
file may pin ``python=3.6`` (real v1 files pin 3.6.2)."""


def _version(python: str) -> tuple[int, int] | None:
    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    major, minor = done.stdout.split()
    return int(major), int(minor)


def _candidates(minor: int) -> list[str]:
    name = f"python3.{minor}"
    found = []
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/bin", "/usr/bin"])
    on_path = shutil.which(name, path=path)
    if on_path:
        found.append(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path(pwd.getpwuid(os.getuid()).pw_dir) / ".pyenv")
    found += sorted(str(p) for p in pyenv.glob(f"versions/3.{minor}.*/bin/{name}"))
    return found


@cache
def python_of(minor: int) -> str | None:
    """A working Python ``3.minor`` here, or None."""
    for python in _candidates(minor):
        if _version(python) == (3, minor):
            return python
    return None


@cache
def oldest_python(floor: tuple[int, int] = FLOOR) -> tuple[str, tuple[int, int]] | None:
    """(path, (major, minor)) of the oldest working Python >= ``floor`` here, or None."""
    for minor in range(floor[1], 30):
        python = python_of(minor)
        if python is not None:
            return python, (3, minor)
    return None
