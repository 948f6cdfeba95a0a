"""Whether the user's active Python environment can run migrated control scripts.

``targets`` is often installed on its own (pipx-style), while the control scripts run
with the project's virtualenv or conda env; after ``from targets.azureml...`` they need
``targets`` importable there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["DISTRIBUTION", "missing_in_active_environment"]

DISTRIBUTION = "compute-targets"


def missing_in_active_environment() -> str | None:
    """A note when the active virtualenv or conda env (``VIRTUAL_ENV``, else
    ``CONDA_PREFIX``) cannot import ``targets``; None when it can, when it is the
    environment this process runs in, or when none is active."""
    prefix = os.environ.get("VIRTUAL_ENV") or os.environ.get("CONDA_PREFIX")
    if not prefix:
        return None
    python = Path(prefix) / "bin" / "python"
    if not python.exists():
        return None
    try:
        if Path(sys.prefix).resolve() == Path(prefix).resolve():
            return None
        found = subprocess.run(
            [str(python), "-c", "import targets.azureml"],
            cwd=prefix,  # not this folder: -c puts the current folder on sys.path
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if found.returncode == 0:
        return None
    return (
        f"the active environment {prefix} cannot import targets, which the migrated "
        f"control scripts now import: install it there ({python} -m pip install "
        f"{DISTRIBUTION})"
    )
