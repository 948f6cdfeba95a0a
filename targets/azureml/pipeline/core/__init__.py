"""``azureml.pipeline.core`` for ``targets``: v1 pipelines, run by the v2 pipeline engine
(see ``docs/azureml-v1.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets._lazy import lazy_exports

if TYPE_CHECKING:
    from targets.azureml.pipeline.core.builder import (
        PipelineData,
        PipelineParameter,
        PipelineStep,
        StepSequence,
    )
    from targets.azureml.pipeline.core.pipeline import Pipeline
    from targets.azureml.pipeline.core.run import PipelineRun, StepRun

__all__ = [
    "Pipeline",
    "PipelineData",
    "PipelineParameter",
    "PipelineRun",
    "PipelineStep",
    "StepRun",
    "StepSequence",
]

_LAZY = {
    "Pipeline": "targets.azureml.pipeline.core.pipeline",
    "PipelineData": "targets.azureml.pipeline.core.builder",
    "PipelineParameter": "targets.azureml.pipeline.core.builder",
    "PipelineStep": "targets.azureml.pipeline.core.builder",
    "StepSequence": "targets.azureml.pipeline.core.builder",
    "PipelineRun": "targets.azureml.pipeline.core.run",
    "StepRun": "targets.azureml.pipeline.core.run",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
