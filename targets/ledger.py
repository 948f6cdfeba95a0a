"""The run ledger: one SQLite database per workspace (``.targets/runs.db``).

WAL journal and a busy timeout make it safe for several processes at once (a detached
``targets run`` streaming while another shell lists runs). Every write is one short
transaction.

Reading never creates the database: a missing ``runs.db`` reads as a ledger with no runs,
so ``targets runs list`` in a fresh folder writes nothing. The first write creates it,
after calling ``before_create`` (the workspace creates its folder whole there).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from targets._private import private_dir
from targets.agent import protocol

__all__ = ["Ledger", "RunRecord"]

_List = list  # `Ledger.list` shadows the builtin inside the class body

_TERMINAL_SQL = ", ".join(f"'{status}'" for status in protocol.TERMINAL)
"""The ended statuses as an SQL list (the open-runs index and its query must match)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id           TEXT PRIMARY KEY,
    experiment   TEXT NOT NULL,
    target       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    parent_id    TEXT,
    display_name TEXT,
    entry        TEXT,
    created_at   REAL NOT NULL,
    started_at   REAL,
    ended_at     REAL,
    exit_code    INTEGER,
    message      TEXT,
    handle       TEXT,
    phases       TEXT NOT NULL DEFAULT '{}',
    collected    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at DESC);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment, created_at DESC);
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_id);
CREATE INDEX IF NOT EXISTS runs_open ON runs (status) WHERE status NOT IN
    (@TERMINAL@);
""".replace("@TERMINAL@", _TERMINAL_SQL)

_COLUMNS = (
    "id",
    "experiment",
    "target",
    "kind",
    "status",
    "parent_id",
    "display_name",
    "entry",
    "created_at",
    "started_at",
    "ended_at",
    "exit_code",
    "message",
    "handle",
    "phases",
    "collected",
)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of the ledger."""

    id: str
    experiment: str
    target: str
    kind: str
    status: str
    created_at: float
    parent_id: str | None = None
    display_name: str | None = None
    entry: str | None = None
    """What runs: the script and arguments or the command, for listings."""
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    message: str | None = None
    handle: Mapping[str, Any] | None = None
    phases: Mapping[str, float] = field(default_factory=dict)
    collected: bool = False
    """True once outputs and logs were brought back after the run ended."""

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "experiment": self.experiment,
            "target": self.target,
            "kind": self.kind,
            "status": self.status,
            "parent_id": self.parent_id,
            "display_name": self.display_name,
            "entry": self.entry,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_seconds": self.duration,
            "exit_code": self.exit_code,
            "message": self.message,
            "phases": dict(self.phases),
            "collected": self.collected,
        }


def _row_to_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        experiment=row["experiment"],
        target=row["target"],
        kind=row["kind"],
        status=row["status"],
        created_at=row["created_at"],
        parent_id=row["parent_id"],
        display_name=row["display_name"],
        entry=row["entry"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        exit_code=row["exit_code"],
        message=row["message"],
        handle=json.loads(row["handle"]) if row["handle"] else None,
        phases=json.loads(row["phases"] or "{}"),
        collected=bool(row["collected"]),
    )


class Ledger:
    """Access to ``runs.db``. Opening is lazy; :meth:`close` is idempotent. Reads of a
    database that does not exist return nothing and create nothing."""

    def __init__(self, path: Path, *, before_create: Callable[[], None] | None = None) -> None:
        self.path = path
        self._before_create = before_create
        self._conn: sqlite3.Connection | None = None

    def _reader(self) -> sqlite3.Connection | None:
        """The connection, or None while the database does not exist (nothing to read)."""
        if self._conn is None and not self.path.exists():
            return None
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.path.exists() and self._before_create is not None:
                self._before_create()
            # The folder is the workspace's .targets/: private, including one an earlier
            # version left readable. The database is 0600 (SQLite gives its -wal and -shm
            # files the database's mode).
            private_dir(self.path.parent)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            info = self.path.stat()
            if info.st_mode & 0o077 and info.st_uid == os.geteuid():
                os.chmod(self.path, 0o600)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def insert(self, record: RunRecord) -> None:
        values = _record_values(record)
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders})", values
            )

    def insert_many(self, records: Sequence[RunRecord]) -> None:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._tx() as conn:
            conn.executemany(
                f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                [_record_values(r) for r in records],
            )

    def update(self, run_id: str, **changes: Any) -> RunRecord:
        """Change some columns of one run and return the new record.

        Read and written in one transaction, so that two processes changing different
        columns of one run (a sweep's driver recording its end, a client recording that
        it collected) do not undo each other. An ended run stays ended: a status that is
        not an end does not replace one (a client's stale view loses to the end)."""
        sets = ", ".join(f"{c} = ?" for c in _COLUMNS if c != "id")
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(run_id)
            current = _row_to_record(row)
            if current.status in protocol.TERMINAL and changes.get("status") not in (
                None,
                *protocol.TERMINAL,
            ):
                changes = {k: v for k, v in changes.items() if k != "status"}
            new = replace(current, **changes)
            values = dict(zip(_COLUMNS, _record_values(new), strict=True))
            conn.execute(
                f"UPDATE runs SET {sets} WHERE id = ?",
                [values[c] for c in _COLUMNS if c != "id"] + [run_id],
            )
        return new

    def get(self, run_id: str) -> RunRecord | None:
        conn = self._reader()
        if conn is None:
            return None
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _row_to_record(row) if row else None

    def find(self, prefix: str) -> list[RunRecord]:
        """Runs whose id starts with ``prefix`` (so users can type a unique prefix)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conn = self._reader()
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at DESC LIMIT 20",
            (escaped + "%",),
        ).fetchall()
        return [_row_to_record(r) for r in rows]

    def list(
        self,
        *,
        experiment: str | None = None,
        target: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        top_level: bool = False,
        search: str | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered; ``top_level`` leaves out child runs (the trials
        of a sweep, the steps of a pipeline) whose parent is in the ledger. ``search``
        keeps the runs whose id, display name, entry or experiment contains it (ASCII
        letters in any case); ``offset`` skips that many runs first (paging)."""
        conn = self._reader()
        if conn is None:
            return []
        where, args = _filters(experiment, target, status, parent_id, top_level, search)
        sql = "SELECT * FROM runs" + where + " ORDER BY created_at DESC"
        if limit is not None or offset:
            sql += f" LIMIT {int(limit) if limit is not None else -1}"
        if offset:
            sql += f" OFFSET {int(offset)}"
        return [_row_to_record(r) for r in conn.execute(sql, args).fetchall()]

    def child_counts(self, parent_ids: Sequence[str]) -> dict[str, int]:
        """How many child runs each of ``parent_ids`` has (absent: none)."""
        conn = self._reader()
        if conn is None or not parent_ids:
            return {}
        marks = ", ".join("?" for _ in parent_ids)
        rows = conn.execute(
            f"SELECT parent_id, COUNT(*) FROM runs WHERE parent_id IN ({marks}) GROUP BY parent_id",
            list(parent_ids),
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def open_runs(self) -> _List[RunRecord]:
        """Runs not yet in a terminal status, or ended but not yet collected."""
        conn = self._reader()
        if conn is None:
            return []
        rows = conn.execute(
            f"SELECT * FROM runs WHERE status NOT IN ({_TERMINAL_SQL}) "
            "OR collected = 0 ORDER BY created_at"
        ).fetchall()
        return [_row_to_record(r) for r in rows]

    def delete(self, run_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def count(
        self,
        *,
        experiment: str | None = None,
        target: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        top_level: bool = False,
        search: str | None = None,
    ) -> int:
        """How many runs :meth:`list` with the same filters and no limit would return
        (without filters: every run in the ledger)."""
        conn = self._reader()
        if conn is None:
            return 0
        where, args = _filters(experiment, target, status, parent_id, top_level, search)
        return int(conn.execute("SELECT COUNT(*) FROM runs" + where, args).fetchone()[0])

    def distinct(self, column: str) -> _List[str]:
        """The values of ``column`` (``experiment``, ``target`` or ``status``) that runs
        have, sorted: the choices of a filter."""
        if column not in ("experiment", "target", "status"):
            raise ValueError(f"no list of distinct values for the column {column!r}")
        conn = self._reader()
        if conn is None:
            return []
        rows = conn.execute(f"SELECT DISTINCT {column} FROM runs ORDER BY {column}").fetchall()
        return [str(r[0]) for r in rows]


def _filters(
    experiment: str | None,
    target: str | None,
    status: str | None,
    parent_id: str | None,
    top_level: bool,
    search: str | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading space, or empty) and arguments of a listing."""
    where: list[str] = []
    args: list[Any] = []
    if top_level:
        where.append("(parent_id IS NULL OR parent_id NOT IN (SELECT id FROM runs))")
    for column, value in (
        ("experiment", experiment),
        ("target", target),
        ("status", status),
        ("parent_id", parent_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            "(id LIKE ? ESCAPE '\\' OR display_name LIKE ? ESCAPE '\\' "
            "OR entry LIKE ? ESCAPE '\\' OR experiment LIKE ? ESCAPE '\\')"
        )
        args += [pattern] * 4
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _record_values(r: RunRecord) -> list[Any]:
    return [
        r.id,
        r.experiment,
        r.target,
        r.kind,
        r.status,
        r.parent_id,
        r.display_name,
        r.entry,
        r.created_at,
        r.started_at,
        r.ended_at,
        r.exit_code,
        r.message,
        json.dumps(dict(r.handle)) if r.handle is not None else None,
        json.dumps(dict(r.phases)),
        int(r.collected),
    ]
