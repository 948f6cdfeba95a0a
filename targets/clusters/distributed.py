"""Per-node launch plans of distributed runs, for the cluster code: the plan is a core
concept and lives in :mod:`targets.distributed`; this module re-exports it."""

from __future__ import annotations

from targets.distributed import (
    IDENTITY_FILE,
    KNOWN_HOSTS_FILE,
    LOCAL_NODE,
    Distribution,
    PlannedNode,
    PlanNode,
    distribution_of,
    plan,
    request_part,
)

__all__ = [
    "IDENTITY_FILE",
    "KNOWN_HOSTS_FILE",
    "LOCAL_NODE",
    "Distribution",
    "PlanNode",
    "PlannedNode",
    "distribution_of",
    "plan",
    "request_part",
]
