"""``targets job validate -f FILE``: every check ``targets job create`` makes before
anything is queued, and nothing queued (``az ml job validate``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from targets.workspace import Workspace

__all__ = ["validate_job"]


def validate_job(
    ws: Workspace,
    file: str | Path,
    *,
    overrides: Sequence[str] = (),
    target: str | None = None,
) -> dict[str, Any]:
    """Read and check the v2 job ``file`` as a submission would, without submitting.

    Returns ``{"path", "type", "computes", "warnings"}``: ``computes`` maps ``job`` (or
    each pipeline step) to the target it would run on. Raises ConfigError/UsageError
    (exit 2) for what a submission would refuse: the file, the overrides, a pipeline's
    bindings and cycles, a sweep's sampling, an unmapped compute, an unregistered
    environment or datastore, a missing local input. Reading only, except that an
    http(s) input is downloaded into the workspace cache as a submission would.
    """
    from targets.jobs.execute import compute_name, precheck
    from targets.jobs.model import PipelineJob, SweepJob
    from targets.jobs.reader import load_job

    loaded = load_job(file, overrides=overrides)
    job = loaded.job
    if target is not None:
        ws.target_record(target)
    precheck(ws, loaded, target)
    computes: dict[str, str]
    if isinstance(job, PipelineJob):
        from targets.jobs.bindings import check_pipeline

        check_pipeline(job)
        computes = {node: target or compute_name(job.node_compute(node), ws) for node in job.jobs}
    else:
        if isinstance(job, SweepJob):
            from targets.jobs.sweep import sampler_for

            sampler_for(job)
        computes = {"job": target or compute_name(job.compute, ws)}
    return {
        "path": str(loaded.path),
        "type": job.type,
        "computes": computes,
        "warnings": list(loaded.warnings),
    }
