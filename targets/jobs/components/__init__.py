"""Azure ML components in v2 job files: command and pipeline components from local
files, registered in the workspace, or from a local copy of a registry.

- :mod:`~targets.jobs.components.model`: the component YAML models;
- :mod:`~targets.jobs.components.source`: finding a component from a reference;
- :mod:`~targets.jobs.components.store`: ``targets components create/list/show``;
- :mod:`~targets.jobs.components.expand`: steps and trials that use components become
  inline steps (used by :func:`targets.jobs.reader.load_job`).
"""

from __future__ import annotations

from targets.jobs.components.model import (
    CommandComponent,
    Component,
    ComponentInput,
    ComponentOutput,
    PipelineComponent,
)

__all__ = [
    "CommandComponent",
    "Component",
    "ComponentInput",
    "ComponentOutput",
    "PipelineComponent",
]
