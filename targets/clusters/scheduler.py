"""What a cluster should do next: a pure function of its settings, its nodes and its queue.

The reconcile process asks :func:`decide` on every tick and carries out the answer.
Keeping the policy free of I/O makes it testable on its own and easy to read:

- Runs start in submission order (first in, first out): the oldest queued run gets nodes
  first, and a younger, smaller run does not overtake it (no starvation of big runs).
- A run asking for N nodes starts when N running nodes are free. The cluster grows (up to
  ``max_nodes``) by what the oldest run still lacks, counting nodes already on their way.
- A node idle for ``idle_seconds_before_scaledown`` is removed, oldest idle first, as long
  as more than ``min_nodes`` remain and no queued run could use it.
- Broken and preempted nodes are removed at once; demand (or ``min_nodes``) replaces them.
- Free nodes above ``max_nodes`` (after the maximum was lowered) are removed at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from targets.clusters.model import ClusterSpec
from targets.clusters.provider import NodeState

__all__ = ["Decision", "NodeView", "QueuedRun", "decide"]


@dataclass(frozen=True, slots=True)
class NodeView:
    id: str
    state: NodeState
    busy_run: str | None = None
    idle_since: float | None = None


@dataclass(frozen=True, slots=True)
class QueuedRun:
    run_id: str
    nodes_needed: int


@dataclass(frozen=True, slots=True)
class Decision:
    add: int = 0
    """Nodes to ask the provider for."""
    remove: list[str] = field(default_factory=list)
    """Nodes to remove."""
    start: list[tuple[str, list[str]]] = field(default_factory=list)
    """Runs to start now, with the nodes they get (rank order)."""
    next_check: float | None = None
    """When an idle node becomes removable (None: no node is waiting for that)."""


def decide(
    spec: ClusterSpec, nodes: Sequence[NodeView], queue: Sequence[QueuedRun], now: float
) -> Decision:
    broken = [n.id for n in nodes if n.state in (NodeState.FAILED, NodeState.PREEMPTED)]
    alive = [n for n in nodes if n.state in (NodeState.CREATING, NodeState.RUNNING)]
    free = sorted(
        (n for n in alive if n.state is NodeState.RUNNING and n.busy_run is None),
        key=lambda n: (n.idle_since or 0.0, n.id),
    )
    creating = sum(1 for n in alive if n.state is NodeState.CREATING)

    start: list[tuple[str, list[str]]] = []
    waiting: QueuedRun | None = None
    for run in queue:
        if run.nodes_needed <= len(free):
            taken, free = free[: run.nodes_needed], free[run.nodes_needed :]
            start.append((run.run_id, sorted(n.id for n in taken)))
        else:
            waiting = run
            break

    add = 0
    room = spec.max_nodes - len(alive)
    if waiting is not None:
        lacking = waiting.nodes_needed - len(free) - creating
        add = max(0, min(lacking, room))
    if len(alive) + add < spec.min_nodes:
        add = spec.min_nodes - len(alive)

    remove = list(broken)
    next_check: float | None = None
    # Above max_nodes (after `targets update --max-nodes`): free nodes go at once.
    excess = len(alive) - spec.max_nodes
    while excess > 0 and free:
        remove.append(free.pop(0).id)
        excess -= 1
    if waiting is None:
        keep = len(alive) + add - (len(remove) - len(broken))
        for node in free:  # longest idle first
            if keep <= spec.min_nodes:
                break
            since = node.idle_since if node.idle_since is not None else now
            due = since + spec.idle_seconds_before_scaledown
            if due <= now:
                remove.append(node.id)
                keep -= 1
            else:
                next_check = due if next_check is None else min(next_check, due)
    return Decision(add=add, remove=remove, start=start, next_check=next_check)
