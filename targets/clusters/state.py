"""What one cluster knows about itself: its nodes, its runs (queued, running, ended) and a
short history of events. One SQLite database per cluster
(``.targets/clusters/<name>/state.db``), WAL and a busy timeout, so `targets run`,
`targets show` and the reconcile process can use it at once. The reconcile process is the
only writer of node rows; clients insert queued runs and ask for cancellation.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets.agent import protocol
from targets.clusters.provider import Node

__all__ = ["ClusterRun", "ClusterState", "NodeRow", "cluster_dir"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    busy_run    TEXT,
    idle_since  REAL,
    first_seen  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    nodes_needed  INTEGER NOT NULL,
    submitted_at  REAL NOT NULL,
    request       TEXT NOT NULL,
    assigned      TEXT NOT NULL DEFAULT '[]',
    roles         TEXT NOT NULL DEFAULT '[]',
    exit_code     INTEGER,
    message       TEXT,
    phases        TEXT NOT NULL DEFAULT '{}',
    started_at    REAL,
    ended_at      REAL,
    cancel        INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    at    REAL NOT NULL,
    text  TEXT NOT NULL
);
"""

_TERMINAL = protocol.TERMINAL
_TERMINAL_SQL = ", ".join(f"'{status}'" for status in protocol.TERMINAL)


def cluster_dir(state_dir: Path, name: str) -> Path:
    """The folder of cluster ``name`` in a workspace's ``.targets`` folder."""
    return state_dir / "clusters" / name


@dataclass(frozen=True, slots=True)
class NodeRow:
    node: Node
    busy_run: str | None
    idle_since: float | None
    first_seen: float


@dataclass(frozen=True, slots=True)
class ClusterRun:
    run_id: str
    status: str
    nodes_needed: int
    submitted_at: float
    request: dict[str, Any]
    assigned: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    exit_code: int | None = None
    message: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    cancel: bool = False
    attempts: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in _TERMINAL


class ClusterState:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            folder / "state.db", timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- nodes -------------------------------------------------------------------------

    def nodes(self) -> list[NodeRow]:
        rows = self._db.execute(
            "SELECT data, busy_run, idle_since, first_seen FROM nodes ORDER BY first_seen, id"
        ).fetchall()
        return [NodeRow(Node.from_json(json.loads(r[0])), r[1], r[2], r[3]) for r in rows]

    def upsert_node(self, node: Node, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._db.execute(
            "INSERT INTO nodes (id, data, idle_since, first_seen) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (node.id, json.dumps(node.to_json()), now, now),
        )

    def remove_node(self, node_id: str) -> None:
        self._db.execute("DELETE FROM nodes WHERE id = ?", (node_id,))

    def set_busy(
        self, node_ids: list[str], run_id: str | None, *, now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        for node_id in node_ids:
            self._db.execute(
                "UPDATE nodes SET busy_run = ?, idle_since = ? WHERE id = ?",
                (run_id, None if run_id else now, node_id),
            )

    # -- runs --------------------------------------------------------------------------

    def _run(self, row: tuple[Any, ...]) -> ClusterRun:
        return ClusterRun(
            run_id=row[0],
            status=row[1],
            nodes_needed=row[2],
            submitted_at=row[3],
            request=json.loads(row[4]) if row[4] else {},
            assigned=json.loads(row[5]),
            roles=json.loads(row[6]),
            exit_code=row[7],
            message=row[8],
            phases=json.loads(row[9]),
            started_at=row[10],
            ended_at=row[11],
            cancel=bool(row[12]),
            attempts=row[13],
        )

    _RUN_COLUMNS = (
        "run_id, status, nodes_needed, submitted_at, request, assigned, roles, exit_code, "
        "message, phases, started_at, ended_at, cancel, attempts"
    )
    # The same without the stored request (the run's config and snapshot manifest, which
    # can be megabytes): for readers that poll a run's progress.
    _PROGRESS_COLUMNS = _RUN_COLUMNS.replace("request", "''")

    def _columns(self, request: bool) -> str:
        return self._RUN_COLUMNS if request else self._PROGRESS_COLUMNS

    def enqueue(self, run_id: str, nodes_needed: int, request: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO runs (run_id, status, nodes_needed, submitted_at, request) "
            "VALUES (?, ?, ?, ?, ?)",
            (run_id, protocol.QUEUED, nodes_needed, time.time(), json.dumps(request)),
        )

    def run(self, run_id: str, *, request: bool = True) -> ClusterRun | None:
        """One run; without ``request``, its ``request`` is left empty (not read)."""
        row = self._db.execute(
            f"SELECT {self._columns(request)} FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return self._run(row) if row else None

    def runs(self, *, open_only: bool = False, request: bool = True) -> list[ClusterRun]:
        """Every run (or the open ones) in queue order; ``request`` as in :meth:`run`."""
        where = f" WHERE status NOT IN ({_TERMINAL_SQL})" if open_only else ""
        rows = self._db.execute(
            f"SELECT {self._columns(request)} FROM runs{where} ORDER BY submitted_at, run_id"
        ).fetchall()
        return [self._run(r) for r in rows]

    def update_run(self, run_id: str, **changes: Any) -> None:
        if not changes:
            return
        for key in ("assigned", "roles", "phases", "request"):
            if key in changes:
                changes[key] = json.dumps(changes[key])
        if "cancel" in changes:
            changes["cancel"] = int(bool(changes["cancel"]))
        sets = ", ".join(f"{k} = ?" for k in changes)
        self._db.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*changes.values(), run_id))

    def request_cancel(self, run_id: str) -> None:
        self._db.execute("UPDATE runs SET cancel = 1 WHERE run_id = ?", (run_id,))

    # -- events ------------------------------------------------------------------------

    def event(self, text: str) -> None:
        self._db.execute("INSERT INTO events (at, text) VALUES (?, ?)", (time.time(), text))
        self._db.execute(
            "DELETE FROM events WHERE rowid NOT IN "
            "(SELECT rowid FROM events ORDER BY at DESC LIMIT 200)"
        )

    def events(self, limit: int = 50) -> list[tuple[float, str]]:
        rows = self._db.execute(
            "SELECT at, text FROM events ORDER BY at DESC, rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return [(float(a), str(t)) for a, t in reversed(rows)]
