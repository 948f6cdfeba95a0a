"""Runs that something else starts: a batch scheduler, a cluster manager (target side).

Stdlib only, Python >= 3.8. The ``start`` operation normally launches the run's
supervisor detached (:func:`supervisor.launch`). With ``launch="external"`` it prepares the
run folder exactly the same way (snapshot materialised from the store, ``spec.json``
written) but starts nothing: it returns the command that runs the supervisor in the
foreground, for the caller to hand to its scheduler (``sbatch``, ``qsub``, a Kubernetes
Job ...). The supervisor then behaves as always: it prepares the environment through the
shared environment cache, runs the entry, writes ``status.json`` and the logs.

Design choice: the supervisor of an externally launched run may live on another machine
than the agent that answers ``status`` (a compute node of a shared filesystem), so its pid
says nothing here. :func:`read_status` therefore reports ``status.json`` as written, and
the scheduler (which the caller asks) is the judge of whether the job is still alive.
"""

from __future__ import annotations

import os

from . import rundir
from .protocol import ExternalCommand, StatusRecord

__all__ = ["MARKER", "command", "read_status"]

#: A file in the run folder that records that the run was launched externally.
MARKER = "external"


def _package() -> str:
    return __name__.rsplit(".", 1)[0]


def _agent_parent() -> str:
    """The folder or zipapp holding the agent's top-level package."""
    parent = os.path.dirname(os.path.abspath(__file__))
    for _part in _package().split("."):
        parent = os.path.dirname(parent)
    return parent


def command(root: str, run_id: str, python: str | None = None) -> ExternalCommand:
    """Mark a prepared run folder as externally launched and return how to supervise it:
    ``{"run_dir", "argv", "env"}``. ``argv`` runs the supervisor in the foreground (it
    exits when the run has ended, always with code 0; the run's own exit code is in
    ``status.json``). ``env`` must be added to the environment it runs in; the caller
    should pass the user's own ``PYTHONPATH`` on as ``TARGETS_USER_PYTHONPATH``."""
    run_dir = rundir.run_path(root, run_id)
    with open(os.path.join(run_dir, MARKER), "w") as fh:
        fh.write("1\n")
    return {
        "run_dir": run_dir,
        "argv": [python or "python3", "-m", _package(), "supervise", root, run_id],
        "env": {"PYTHONPATH": _agent_parent()},
    }


def read_status(root: str, run_id: str) -> StatusRecord:
    """``status.json`` as the supervisor wrote it, without judging its pid: ``Queued``
    before the supervisor started, ``Unknown`` when there is no such run."""
    run_dir = rundir.run_path(root, run_id)
    return rundir.load_status(run_dir) or rundir.missing_status(run_dir)
