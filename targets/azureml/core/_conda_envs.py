"""Finding a conda environment of this machine by name, for
``Environment.from_existing_conda_environment``.

The places looked, in order: ``conda env list --json`` when a ``conda`` executable is
found (``$CONDA_EXE``, else ``conda`` on PATH), then conda's own list of the environments
it created, ``~/.conda/environments.txt``. The environment named ``base`` is the conda
installation's root. No conda is started when the file already names the environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from targets.errors import UsageError

__all__ = ["conda_prefixes", "conda_python"]


def _from_file() -> list[Path]:
    listing = Path.home() / ".conda" / "environments.txt"
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [Path(line.strip()) for line in lines if line.strip()]


def _from_conda() -> list[Path]:
    conda = os.environ.get("CONDA_EXE") or shutil.which("conda")
    if not conda:
        return []
    try:
        done = subprocess.run(
            [conda, "env", "list", "--json"], capture_output=True, text=True, timeout=60
        )
        prefixes = json.loads(done.stdout).get("envs", []) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError, AttributeError):
        return []
    return [Path(p) for p in prefixes if isinstance(p, str)]


def _name_of(prefix: Path) -> str:
    # An environment's name is its folder name under <root>/envs; the root is "base".
    return prefix.name if prefix.parent.name == "envs" else "base"


def conda_prefixes() -> dict[str, Path]:
    """The conda environments named in ``~/.conda/environments.txt``, by name."""
    found: dict[str, Path] = {}
    for prefix in _from_file():
        found.setdefault(_name_of(prefix), prefix)
    return found


def conda_python(name: str) -> Path:
    """The Python interpreter of the conda environment ``name``. Raises UsageError
    naming the environments found when there is none of that name or it has no Python."""
    prefixes = conda_prefixes()
    if name not in prefixes:
        for listed in _from_conda():
            prefixes.setdefault(_name_of(listed), listed)
    prefix = prefixes.get(name)
    if prefix is None:
        known = ", ".join(sorted(prefixes)) or "none"
        raise UsageError(
            f"no conda environment named {name!r} on this machine (found: {known})",
            hint=f"create it (conda create -n {name} python=3.11 ...) or give the name "
            "`conda env list` shows",
        )
    python = prefix / "bin" / "python"
    if not os.access(python, os.X_OK):
        raise UsageError(
            f"the conda environment {name!r} ({prefix}) has no Python interpreter",
            hint=f"install one: conda install -n {name} python",
        )
    return python
