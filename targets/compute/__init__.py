"""The plugin contract: what a target kind implements. See :mod:`targets.compute.base`."""

from targets.compute.base import (
    TERMINAL_STATUSES,
    Capability,
    ComputeTarget,
    LogChunk,
    NoOptions,
    Progress,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
    TargetContext,
)

__all__ = [
    "TERMINAL_STATUSES",
    "Capability",
    "ComputeTarget",
    "LogChunk",
    "NoOptions",
    "Progress",
    "RunHandle",
    "RunState",
    "RunStatus",
    "SubmitRequest",
    "TargetContext",
]
