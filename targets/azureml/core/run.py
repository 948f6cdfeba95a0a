"""``azureml.core.run`` for ``targets``: :class:`Run` (the run of :mod:`targets.runs`, with
v1's constructor) and :func:`get_run`.

On the client, ``Run(experiment, run_id)`` opens a run of the experiment's workspace; every
method (``get_metrics``, ``get_details``, ``get_children``, ``download_files``,
``wait_for_completion``...) is :class:`targets.runs.Run`'s, so a run returned by
``Experiment.submit`` has them too. ``Run.get_context()`` is the run library's: inside a
``targets`` run (a process the run's supervisor started, or one of its children) the run
itself, logging into the run's MLflow store; elsewhere v1's offline run, which keeps what
it is given in memory.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from targets.errors import UsageError
from targets.experiment import Experiment
from targets.runs import Run as _Run
from targets.workspace import Workspace

__all__ = ["Run", "get_run"]


class Run(_Run):
    """A run in a workspace, opened as v1 does: ``Run(experiment, run_id)``. ``Run(workspace,
    run_id)`` (the form of :class:`targets.runs.Run`) works too."""

    def __init__(
        self,
        experiment: Experiment | Workspace | Any,
        run_id: str,
        outputs: Any = None,
        **kwargs: Any,
    ) -> None:
        workspace = _workspace_of(experiment)
        super().__init__(workspace, run_id, target=kwargs.get("target"))
        if isinstance(experiment, Experiment) and self.experiment != experiment.name:
            raise UsageError(
                f"run {self.id} belongs to the experiment {str(self.experiment)!r}, "
                f"not {experiment.name!r}",
                hint=f"Run(Experiment(ws, {str(self.experiment)!r}), {self.id!r})",
            )

    @classmethod
    def get_context(
        cls, allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any
    ) -> Any:
        """The run this process belongs to (inside a ``targets`` run), else an offline
        run (``allow_offline=False``: RuntimeError). It is the run library's ``Run``:
        the one ``from azureml.core import Run`` gives a training script."""
        return _run_library().Run.get_context(
            allow_offline=allow_offline, used_for_context_manager=used_for_context_manager
        )


def get_run(experiment: Experiment, run_id: str, rehydrate: bool = True, **kwargs: Any) -> Run:
    """v1's ``azureml.core.run.get_run``: ``Run(experiment, run_id)``."""
    return Run(experiment, run_id)


def _workspace_of(experiment: Any) -> Workspace:
    if isinstance(experiment, Workspace):
        return experiment
    workspace = getattr(experiment, "workspace", None)
    if isinstance(workspace, Workspace):
        return workspace
    raise UsageError(
        f"Run(experiment, run_id): {experiment!r} is neither an Experiment nor a Workspace",
        hint="Run(Experiment(ws, name), run_id), or Run(ws, run_id)",
    )


def _run_library() -> Any:
    """The run library's ``azureml.core.run``: the one already imported in this process
    (a training script's ``from azureml.core import Run``), so that both share one
    context; else the copy shipped in :mod:`targets.agent`."""
    module = sys.modules.get("azureml.core.run")
    package = sys.modules.get("azureml")
    if module is not None and getattr(package, "TARGETS_RUN_LIBRARY", False):
        return module
    import importlib

    library = Path(__file__).resolve().parents[2] / "agent" / "runlib"
    if not library.is_dir():  # pragma: no cover - a broken install
        raise RuntimeError(f"the targets run library is missing ({library})")
    return importlib.import_module("targets.agent.runlib.azureml.core.run")
