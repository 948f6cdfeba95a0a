"""``azureml.pipeline.steps`` for ``targets``: the step classes of a v1 pipeline (see
``docs/azureml-v1.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets._lazy import lazy_exports

if TYPE_CHECKING:
    from targets.azureml.pipeline.steps.databricks_step import DatabricksStep
    from targets.azureml.pipeline.steps.mpi_step import MpiStep
    from targets.azureml.pipeline.steps.parallel_run_config import ParallelRunConfig
    from targets.azureml.pipeline.steps.parallel_run_step import ParallelRunStep
    from targets.azureml.pipeline.steps.python_script_step import PythonScriptStep

__all__ = [
    "DatabricksStep",
    "MpiStep",
    "ParallelRunConfig",
    "ParallelRunStep",
    "PythonScriptStep",
]

_LAZY = {
    "DatabricksStep": "targets.azureml.pipeline.steps.databricks_step",
    "MpiStep": "targets.azureml.pipeline.steps.mpi_step",
    "ParallelRunConfig": "targets.azureml.pipeline.steps.parallel_run_config",
    "ParallelRunStep": "targets.azureml.pipeline.steps.parallel_run_step",
    "PythonScriptStep": "targets.azureml.pipeline.steps.python_script_step",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
