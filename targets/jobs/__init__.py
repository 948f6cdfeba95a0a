"""Azure ML CLI v2 job files (command, sweep, pipeline): typed models and the reader.

Reading only; executing a job is elsewhere. Importing this package is cheap: the reader
(PyYAML) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets._lazy import lazy_exports
from targets.jobs.model import CommandJob, Job, PipelineJob, SparkJob, SweepJob

if TYPE_CHECKING:
    from targets.jobs.bindings import (
        Reference,
        pipeline_graph,
        references,
        render,
        topological_levels,
    )
    from targets.jobs.overrides import apply_overrides
    from targets.jobs.reader import LoadedJob, load_job

__all__ = [
    "CommandJob",
    "Job",
    "LoadedJob",
    "PipelineJob",
    "Reference",
    "SparkJob",
    "SweepJob",
    "apply_overrides",
    "load_job",
    "pipeline_graph",
    "references",
    "render",
    "topological_levels",
]

_LAZY = {
    "LoadedJob": "targets.jobs.reader",
    "load_job": "targets.jobs.reader",
    "apply_overrides": "targets.jobs.overrides",
    "Reference": "targets.jobs.bindings",
    "pipeline_graph": "targets.jobs.bindings",
    "references": "targets.jobs.bindings",
    "render": "targets.jobs.bindings",
    "topological_levels": "targets.jobs.bindings",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
