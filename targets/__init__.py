"""targets: attach compute targets and run Azure ML-style run configurations on them.

The public API is this module's ``__all__`` (pinned by a test). Names are imported on
first use, so ``import targets`` is cheap and pulls in no SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets._lazy import lazy_exports
from targets._version import __version__

if TYPE_CHECKING:
    from targets.compute.base import Capability, ComputeTarget, RunStatus
    from targets.errors import TargetsError
    from targets.estimator import Estimator
    from targets.experiment import Environment, Experiment, ScriptRunConfig
    from targets.runconfig.conda import CondaDependencies
    from targets.runconfig.model import RunConfiguration
    from targets.runs import Run
    from targets.workspace import Workspace

__all__ = [
    "Capability",
    "ComputeTarget",
    "CondaDependencies",
    "Environment",
    "Estimator",
    "Experiment",
    "Run",
    "RunConfiguration",
    "RunStatus",
    "ScriptRunConfig",
    "TargetsError",
    "Workspace",
    "__version__",
]

_LAZY = {
    "Capability": "targets.compute.base",
    "ComputeTarget": "targets.compute.base",
    "RunStatus": "targets.compute.base",
    "CondaDependencies": "targets.runconfig.conda",
    "Environment": "targets.experiment",
    "Estimator": "targets.estimator",
    "Experiment": "targets.experiment",
    "ScriptRunConfig": "targets.experiment",
    "Run": "targets.runs",
    "RunConfiguration": "targets.runconfig.model",
    "TargetsError": "targets.errors",
    "Workspace": "targets.workspace",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
