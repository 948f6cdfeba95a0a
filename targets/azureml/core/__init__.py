"""``azureml.core`` for ``targets``: the workspace, experiments, run configurations,
environments, compute targets and runs (see ``docs/azureml-v1.md``).

Each name is imported from its module on first use, so ``import targets.azureml.core``
stays cheap. ``Environment``, ``Experiment``, ``ScriptRunConfig`` and ``RunConfiguration``
are the classes of :mod:`targets` itself: one implementation, two front ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets._lazy import lazy_exports

if TYPE_CHECKING:
    from targets.azureml.core.compute import ComputeTarget
    from targets.azureml.core.environment import Environment
    from targets.azureml.core.experiment import Experiment
    from targets.azureml.core.run import Run
    from targets.azureml.core.runconfig import RunConfiguration
    from targets.azureml.core.script_run_config import ScriptRunConfig
    from targets.azureml.core.workspace import Workspace

__all__ = [
    "ComputeTarget",
    "Environment",
    "Experiment",
    "Run",
    "RunConfiguration",
    "ScriptRunConfig",
    "Workspace",
]

_LAZY = {
    "ComputeTarget": "targets.azureml.core.compute",
    "Environment": "targets.azureml.core.environment",
    "Experiment": "targets.azureml.core.experiment",
    "Run": "targets.azureml.core.run",
    "RunConfiguration": "targets.azureml.core.runconfig",
    "ScriptRunConfig": "targets.azureml.core.script_run_config",
    "Workspace": "targets.azureml.core.workspace",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
