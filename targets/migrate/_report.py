"""What a migration did, file by file: the records the CLI prints and ``--output json``
serialises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Change", "FileReport", "MigrationReport", "Note", "Role", "Status"]

Role = Literal["control", "training", "excluded"]
Status = Literal["changed", "unchanged", "skipped", "error"]


@dataclass(frozen=True, slots=True)
class Note:
    """A line the user should look at. ``cell`` is the notebook cell (1-based, counting
    every cell) or ``None`` in a ``.py`` file; ``line`` is 1-based within the cell."""

    line: int
    message: str
    cell: int | None = None

    def where(self, path: str) -> str:
        if self.cell is None:
            return f"{path}:{self.line}"
        return f"{path}: cell {self.cell}, line {self.line}"


@dataclass(frozen=True, slots=True)
class Change:
    line: int
    before: str
    after: str
    cell: int | None = None


@dataclass(frozen=True, slots=True)
class FileReport:
    """One file that mentions ``azureml``.

    ``role``: ``control`` (rewritten), ``training`` (left alone: it runs inside a run,
    where ``azureml.core.Run`` is provided) or ``excluded`` (by ``--exclude`` or its
    ``# targets-migrate: skip`` comment); ``reason`` says why. ``status``: ``changed``
    (the rewrite has changes; ``written`` says whether they are in the file),
    ``unchanged``, ``skipped`` (training or excluded) or ``error`` (``reason`` says what:
    not parsable, not decodable, not written).
    """

    path: str
    kind: Literal["python", "notebook"]
    role: Role
    status: Status
    reason: str = ""
    changes: tuple[Change, ...] = ()
    notes: tuple[Note, ...] = ()
    diff: str = ""
    written: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "role": self.role,
            "status": self.status,
            "reason": self.reason,
            "written": self.written,
            "changes": [
                {"cell": c.cell, "line": c.line, "before": c.before, "after": c.after}
                for c in self.changes
            ],
            "notes": [{"cell": n.cell, "line": n.line, "message": n.message} for n in self.notes],
            "diff": self.diff,
        }


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """The whole run. ``exit_code``: 0 when nothing is left to do (nothing needed, or
    every change written), 1 when a dry run found changes or a file mentioning azureml
    could not be read, parsed or written."""

    root: str
    write: bool
    files: tuple[FileReport, ...]
    environment_note: str | None = None
    """Set when the active Python environment cannot import ``targets`` (see
    :mod:`targets.migrate._environment`)."""

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def exit_code(self) -> int:
        if self.count("error"):
            return 1
        if not self.write and self.count("changed"):
            return 1
        return 0

    def summary(self) -> dict[str, int]:
        return {
            "files": len(self.files),
            "changed": self.count("changed"),
            "changed_lines": sum(len(f.changes) for f in self.files),
            "unchanged": self.count("unchanged"),
            "training": sum(1 for f in self.files if f.role == "training"),
            "excluded": sum(1 for f in self.files if f.role == "excluded"),
            "errors": self.count("error"),
            "notes": sum(len(f.notes) for f in self.files),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "write": self.write,
            "files": [f.to_json() for f in self.files],
            "summary": self.summary(),
            "environment_note": self.environment_note,
            "exit_code": self.exit_code,
        }
