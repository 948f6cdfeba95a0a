"""``azureml.pipeline.core.graph``: the names v1 code imports from here."""

from __future__ import annotations

from targets.azureml.pipeline.core.builder import PipelineData, PipelineParameter

__all__ = ["PipelineData", "PipelineParameter"]
