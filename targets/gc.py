"""Garbage collection of targets' storage: the agent's object store and run folders.

The work happens on the target, in the agent (``targets/agent/storage.py``): this module
chooses the targets, tells the agent which runs this workspace has collected, and turns
its answer into a :class:`GcReport`. See docs/storage.md for what is kept and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from targets.errors import TargetsError, UsageError
from targets.workspace import LOCAL, Workspace

__all__ = [
    "GcReport",
    "RemovedRun",
    "collect_garbage",
    "collect_many",
    "gc_target_names",
    "parse_size",
    "set_storage_cap",
]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, *, what: str = "size") -> int:
    """Bytes in ``text``: a number with an optional unit, ``5GB``, ``500MB``, ``1.5GiB``,
    ``1024`` (KB, MB, GB, TB count in powers of 1000; KiB, MiB, GiB, TiB in powers of
    1024). Raises :class:`UsageError` naming the value otherwise."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UsageError(
            f"{what} {text!r} is not a size",
            hint="write a number with a unit, e.g. 5GB, 500MB or 2GiB",
        )
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True, slots=True)
class RemovedRun:
    """A run folder that went (or would go) from the target."""

    run_id: str
    ended_at: float | None
    bytes: int
    """Bytes its own files freed; its snapshot files are objects, counted there."""


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one garbage collection on one target removed (or, dry, would remove)."""

    target: str
    dry_run: bool
    runs: tuple[RemovedRun, ...]
    objects: int
    object_bytes: int
    run_bytes: int
    freed_bytes: int
    usage_before: int
    usage_after: int
    cap_bytes: int | None

    @classmethod
    def from_agent(cls, target: str, raw: Mapping[str, Any]) -> GcReport:
        return cls(
            target=target,
            dry_run=bool(raw["dry_run"]),
            runs=tuple(
                RemovedRun(str(r["run_id"]), r.get("ended_at"), int(r["bytes"]))
                for r in raw["runs"]
            ),
            objects=len(raw["objects"]),
            object_bytes=int(raw["object_bytes"]),
            run_bytes=int(raw["run_bytes"]),
            freed_bytes=int(raw["freed_bytes"]),
            usage_before=int(raw["usage_before"]),
            usage_after=int(raw["usage_after"]),
            cap_bytes=None if raw.get("cap_bytes") is None else int(raw["cap_bytes"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "runs": [
                {"run_id": r.run_id, "ended_at": r.ended_at, "bytes": r.bytes} for r in self.runs
            ],
            "objects": self.objects,
            "object_bytes": self.object_bytes,
            "run_bytes": self.run_bytes,
            "freed_bytes": self.freed_bytes,
            "usage_before": self.usage_before,
            "usage_after": self.usage_after,
            "cap_bytes": self.cap_bytes,
        }


def gc_target_names(workspace: Workspace, name: str | None, *, every: bool) -> list[str]:
    """The targets a ``targets gc`` works on: ``name``, every attached target with
    ``every``, else ``local``.

    Design choice: ``local`` by default, not every attached target, because collecting on
    a remote target connects to it, and a command without arguments should not reach
    out to machines that may be switched off (or cost money to wake)."""
    if name is not None and every:
        raise UsageError("give a TARGET or --all, not both")
    if every:
        return sorted(workspace.targets())
    return [name or LOCAL]


def _collected_here(workspace: Workspace, target: str) -> list[str]:
    """Ids (on the target) of the runs this workspace ran there and collected."""
    if not (workspace.dir / "runs.db").is_file():
        return []  # reading the ledger must not create one
    ids = []
    for record in workspace.ledger.list(target=target, limit=None):
        if record.collected and record.ended_at is not None and record.handle:
            ids.append(str(record.handle.get("run_id") or record.id))
    return ids


def collect_garbage(
    workspace: Workspace,
    target: str,
    *,
    keep_days: float | None = None,
    max_size: int | None = None,
    dry_run: bool = False,
) -> GcReport:
    """Remove, on ``target``, the folders of runs already collected (oldest first; those
    that ended within ``keep_days`` are kept; with ``max_size``, only until the target's
    storage is at most that many bytes) and the stored files no kept run needs. With
    ``dry_run`` nothing is removed. Blocks while another collection runs there.

    Raises :class:`UnsupportedOperation` for a kind that keeps no such storage."""
    if keep_days is not None and keep_days < 0:
        raise UsageError(f"--keep-days {keep_days:g} is negative", hint="give 0 or more days")
    with workspace.get_target(target) as t:
        raw = t.collect_garbage(
            collected=_collected_here(workspace, target),
            keep_days=keep_days,
            max_size=max_size,
            dry_run=dry_run,
        )
    return GcReport.from_agent(target, raw)


def set_storage_cap(workspace: Workspace, target: str, cap_bytes: int | None) -> int | None:
    """Record ``target``'s storage cap on the target itself (None: no cap); returns it."""
    with workspace.get_target(target) as t:
        return t.set_storage_cap(cap_bytes)


def collect_many(
    workspace: Workspace, targets: Sequence[str], **policy: Any
) -> list[GcReport | TargetsError]:
    """:func:`collect_garbage` on each target. A target that fails (a kind without
    storage, a machine that does not answer) gives its error in its place, and the others
    are still collected."""
    results: list[GcReport | TargetsError] = []
    for name in targets:
        try:
            results.append(collect_garbage(workspace, name, **policy))
        except TargetsError as exc:
            results.append(exc)
    return results
