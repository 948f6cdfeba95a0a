"""The Python a user-managed run on this machine uses, decided on the client.

A user-managed run (``user_managed_dependencies: true``, or no conda dependencies at
all) on the ``local`` target runs with the Python the user would get by typing
``python`` in the shell that ran ``targets``:

1. the runconfig's ``interpreter_path`` (``targets run --python PATH`` sets it), else
2. an active virtualenv: ``$VIRTUAL_ENV/bin/python``, else
3. an active conda environment: ``$CONDA_PREFIX/bin/python``, else
4. ``python``, then ``python3``, on ``PATH``.

A step whose interpreter does not exist is skipped, as the shell would skip it.

Design choice: never ``sys.executable``. ``targets`` may be installed on its own (pipx, a
tool venv, a demo's ``.venv``) while the user's libraries live in another environment;
running there gives ``ModuleNotFoundError``, and a job's ``pip install`` would change the
tool's own environment. The decision is made once, here on the client, and written into
the run's spec: the detached supervisor may see a different environment.

Called as a library (``Experiment.submit`` in a notebook or a script), the default is
different: the interpreter running the caller *is* the user's Python (a Jupyter kernel's
environment is often not activated on ``PATH``), so step 2-4 become ``sys.executable``.
The command line and the drivers of sweeps and pipelines that it starts say so first
(:func:`targets._caller.mark_command_line`).

When the chosen Python belongs to a virtualenv or a conda environment, the run sees it
activated, as ``source bin/activate`` / ``conda activate`` would leave a shell:
``VIRTUAL_ENV`` (or ``CONDA_PREFIX`` and ``CONDA_DEFAULT_ENV``) set and its ``bin`` first
on ``PATH``; an environment that was active in the client but was not chosen is
deactivated (its variables unset, its ``bin`` taken off ``PATH``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets._caller import is_command_line
from targets.errors import UsageError

__all__ = ["UserPython", "chosen_python", "default_python", "find_user_python"]

_CONDA_VARIABLES = ("CONDA_PREFIX", "CONDA_DEFAULT_ENV", "CONDA_PROMPT_MODIFIER")


@dataclass(frozen=True, slots=True)
class UserPython:
    """An interpreter on this machine and where the choice came from.

    ``path`` is absolute with symlinks kept (a venv's ``bin/python`` links to its base
    interpreter but must be run by its own path). ``source`` is ``interpreter_path``,
    ``VIRTUAL_ENV``, ``CONDA_PREFIX`` or ``PATH``. ``venv``/``conda`` are the prefix of
    the environment the interpreter belongs to, if any.
    """

    path: str
    source: str
    venv: str | None = None
    conda: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "source": self.source, "venv": self.venv, "conda": self.conda}

    def activation(self, environ: Mapping[str, str]) -> dict[str, Any]:
        """How the run's environment differs from ``environ`` (the client's): variables
        to ``set`` and ``unset``, directories to drop from ``PATH`` and the one to put
        first (``path_first``, None to leave ``PATH``'s order alone). JSON-able; the
        supervisor applies it."""
        set_: dict[str, str] = {}
        unset: list[str] = ["PYTHONHOME"]
        drop: list[str] = []
        active_venv = environ.get("VIRTUAL_ENV")
        active_conda = environ.get("CONDA_PREFIX")
        if self.venv:
            set_["VIRTUAL_ENV"] = self.venv
        else:
            unset.append("VIRTUAL_ENV")
        if active_venv and active_venv != self.venv:
            drop.append(os.path.join(active_venv, "bin"))
        if self.conda:
            set_["CONDA_PREFIX"] = self.conda
            set_["CONDA_DEFAULT_ENV"] = _conda_name(self.conda, environ)
            if active_conda != self.conda:
                unset.append("CONDA_PROMPT_MODIFIER")
        elif active_conda and not self.venv:
            # A venv on top of an active conda env keeps the conda env, as in a shell.
            unset.extend(_CONDA_VARIABLES)
        if active_conda and active_conda != self.conda and not self.venv:
            drop.append(os.path.join(active_conda, "bin"))
        # Found on PATH: already the first `python` there once stale environments are gone.
        first = None if self.source == "PATH" else os.path.dirname(self.path)
        return {"set": set_, "unset": unset, "path_drop": drop, "path_first": first}


def default_python(environ: Mapping[str, str]) -> UserPython:
    """The user's Python when a run names none: the shell's rules on the command line,
    the calling interpreter in a library call (see the module doc)."""
    if is_command_line():
        return find_user_python(environ)
    return _belonging(os.path.abspath(sys.executable), "caller")


def find_user_python(environ: Mapping[str, str]) -> UserPython:
    """The Python ``python`` would start in a shell with ``environ`` (steps 2-4 above).
    No subprocess. Raises UsageError when there is none."""
    venv = environ.get("VIRTUAL_ENV")
    if venv:
        found = _executable(Path(venv) / "bin" / "python")
        if found:
            return UserPython(found, "VIRTUAL_ENV", venv=os.path.abspath(venv))
    conda = environ.get("CONDA_PREFIX")
    if conda:
        found = _executable(Path(conda) / "bin" / "python")
        if found:
            return UserPython(found, "CONDA_PREFIX", conda=os.path.abspath(conda))
    for name in ("python", "python3"):
        which = shutil.which(name, path=environ.get("PATH", os.defpath))
        if which:
            return _belonging(os.path.abspath(which), "PATH")
    raise UsageError(
        "no Python to run with: no virtualenv or conda environment is active, and there is "
        "no python or python3 on PATH",
        hint="activate your project's environment, or pass --python PATH",
    )


def chosen_python(interpreter: str, environ: Mapping[str, str], cwd: Path) -> UserPython:
    """The interpreter a runconfig's ``interpreter_path`` (or ``--python``) names: a path
    (``~`` expanded, relative to ``cwd``) or a name looked up on ``environ``'s PATH.
    Starts it once to prove it runs. Raises UsageError naming it when it does not exist
    or does not run."""
    hint = "give the path of a Python interpreter (--python or interpreter_path)"
    if os.sep in interpreter or interpreter.startswith("~"):
        path = str(cwd / Path(interpreter).expanduser())
        path = os.path.normpath(path)
        if not os.path.exists(path):
            raise UsageError(f"the Python interpreter {interpreter!r} does not exist", hint=hint)
        if not _executable(Path(path)):
            raise UsageError(f"the Python interpreter {path} is not an executable file", hint=hint)
    else:
        which = shutil.which(interpreter, path=environ.get("PATH", os.defpath))
        if which is None:
            raise UsageError(f"the Python interpreter {interpreter!r} is not on PATH", hint=hint)
        path = os.path.abspath(which)
    problem = _does_not_run(path)
    if problem:
        raise UsageError(f"the Python interpreter {path} does not run: {problem}", hint=hint)
    return _belonging(path, "interpreter_path")


def _executable(path: Path) -> str | None:
    full = os.path.abspath(path)
    return full if os.path.isfile(full) and os.access(full, os.X_OK) else None


def _belonging(path: str, source: str) -> UserPython:
    """``path`` with the virtualenv or conda environment whose ``bin`` holds it."""
    prefix = os.path.dirname(os.path.dirname(path))
    if os.path.isfile(os.path.join(prefix, "pyvenv.cfg")):
        return UserPython(path, source, venv=prefix)
    if os.path.isdir(os.path.join(prefix, "conda-meta")):
        return UserPython(path, source, conda=prefix)
    return UserPython(path, source)


def _conda_name(prefix: str, environ: Mapping[str, str]) -> str:
    """``CONDA_DEFAULT_ENV`` as ``conda activate`` sets it: the name of a named
    environment (``base`` for the root install), else the prefix."""
    if environ.get("CONDA_PREFIX") == prefix and environ.get("CONDA_DEFAULT_ENV"):
        return environ["CONDA_DEFAULT_ENV"]
    if os.path.isdir(os.path.join(prefix, "condabin")):
        return "base"
    if os.path.basename(os.path.dirname(prefix)) == "envs":
        return os.path.basename(prefix)
    return prefix


def _does_not_run(path: str) -> str | None:
    try:
        done = subprocess.run(
            [path, "-c", "import sys; sys.exit(sys.version_info < (3,))"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
    except OSError as exc:
        return exc.strerror or str(exc)
    except subprocess.TimeoutExpired:
        return "it did not answer within 60 seconds"
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        return tail[0] if tail else f"it is not Python 3 (exit code {done.returncode})"
    return None
