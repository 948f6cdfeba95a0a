"""The layout of one run on its target, and the operations on it (target side).

Stdlib only, Python >= 3.8. ``<root>/runs/<run_id>/`` holds:

- ``spec.json``   what to run (argv form, environment spec, variables, limits)
- ``status.json`` written atomically by the supervisor: status, pids, exit code, phases
- ``cancel``      present once a cancel was requested (the durable record of it)
- ``prepare.log`` environment preparation output
- ``driver.log``  the script's stdout and stderr, interleaved as written
- ``wd/``         the working directory: the snapshot, plus ``outputs/`` and ``logs/``
- ``.reserve``    a little space held while the run is live, given up when the disk is
                  full so the run's end can still be recorded
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import tempfile
import time
from typing import Any, TypedDict, cast

from .protocol import QUEUED, UNKNOWN, StatusRecord
from .protocol import TERMINAL as TERMINAL

__all__ = [
    "cancel_run",
    "disk_nearly_full",
    "make_private",
    "read_logs",
    "read_status",
    "release_space",
    "reserve_space",
    "run_path",
    "wait_news",
    "write_status",
]

# What is collected from a run's working directory: name in the workspace run folder ->
# path inside ``wd``. ``.targets/`` is never part of a snapshot, so the MLflow store there
# cannot collide with the project's own files.
COLLECTED = {"outputs": "outputs", "logs": "logs", "mlruns": ".targets/mlruns"}
MLFLOW_STORE = COLLECTED["mlruns"]
SYSTEM_LOGS = ("prepare.log", "driver.log")
MAX_CHUNK = 1 << 20


def make_private(root: str) -> None:
    """Create the agent's root as a 0700 folder, or tighten one an earlier version left
    open (0755), when it belongs to this user.

    The root holds every run's variables (``spec.json``), uploaded source, logs and
    outputs. A private root keeps all of it from other users whatever the modes inside:
    files made before this change, objects hard-linked into run folders (links share one
    mode) and files that scripts create. The processes that read them (the supervisor,
    the script, containers started with ``--user`` set to this user) are this user.
    Idempotent."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    info = os.stat(root)
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        os.chmod(root, 0o700)


def run_path(root: str, run_id: str) -> str:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"bad run id {run_id!r}")
    return os.path.join(root, "runs", run_id)


RESERVE = ".reserve"
_RESERVE_BYTES = 256 << 10


def reserve_space(run_dir: str) -> None:
    """Hold a little space for the run's status and last log lines (best effort)."""
    path = os.path.join(run_dir, RESERVE)
    try:
        with open(path, "wb") as fh:
            fh.write(b"\0" * _RESERVE_BYTES)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)


def release_space(run_dir: str) -> bool:
    """Give up the space :func:`reserve_space` held; True when there was some."""
    try:
        os.unlink(os.path.join(run_dir, RESERVE))
    except OSError:
        return False
    return True


def disk_nearly_full(path: str) -> bool:
    """Whether the file system of ``path`` has less than 1 MiB left for this user."""
    try:
        info = os.statvfs(path)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < (1 << 20)


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON, whole or not at all. On a full disk the
    folder's reserve (:func:`reserve_space`) is given up and the write tried again."""
    folder = os.path.dirname(path)
    for attempt in (0, 1):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
            return
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            if attempt or not full or not release_space(folder):
                raise


def write_status(run_dir: str, **fields: Any) -> StatusRecord:
    """Merge ``fields`` (of :class:`~.protocol.StatusRecord`) into ``status.json`` (only
    the supervisor writes it)."""
    current = _load(os.path.join(run_dir, "status.json")) or {}
    current.update(fields)
    current["updated_at"] = time.time()
    write_json_atomic(os.path.join(run_dir, "status.json"), current)
    return cast(StatusRecord, current)


def load_status(run_dir: str) -> StatusRecord | None:
    """``status.json`` as written (None when it is missing or not a JSON object)."""
    return cast("StatusRecord | None", _load(os.path.join(run_dir, "status.json")))


def _load(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            data = json.load(fh)
            return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live process from a reused pid)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":  # a zombie has finished
        return None
    return fields[19] if len(fields) > 19 else None


def process_identity(pid: int) -> str | None:
    return _proc_start_time(pid)


def is_alive(pid: int | None, identity: str | None) -> bool:
    if not pid:
        return False
    if os.path.isdir("/proc"):
        current = _proc_start_time(pid)
        return current is not None and (identity is None or current == identity)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(root: str, run_id: str) -> StatusRecord:
    """The run's status. A run whose supervisor died without finishing is reported as
    Failed (the machine restarted or the process was killed)."""
    run_dir = run_path(root, run_id)
    status = load_status(run_dir)
    if status is None:
        return missing_status(run_dir)
    if status.get("status") not in TERMINAL and not is_alive(
        status.get("supervisor_pid"), status.get("supervisor_identity")
    ):
        # Re-read: the supervisor may have written its final status just now.
        status = load_status(run_dir) or status
        if status.get("status") not in TERMINAL:
            # Its processes are ended and the end recorded before anyone collects.
            from .orphans import end_orphaned_run

            status = end_orphaned_run(root, run_id, status)
    return status


def _log_files(run_dir: str) -> list[str]:
    names = [n for n in SYSTEM_LOGS if os.path.exists(os.path.join(run_dir, n))]
    logs_dir = os.path.join(run_dir, "wd", "logs")
    for dirpath, dirnames, filenames in os.walk(logs_dir):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            names.append("logs/" + os.path.relpath(full, logs_dir).replace(os.sep, "/"))
    return names


def _log_source(run_dir: str, name: str) -> str:
    if name.startswith("logs/"):
        return os.path.join(run_dir, "wd", *name.split("/"))
    return os.path.join(run_dir, name)


def missing_status(run_dir: str) -> StatusRecord:
    """The status of a run without ``status.json``: Queued while its folder exists (the
    supervisor has not started), else Unknown."""
    if os.path.isdir(run_dir):
        return {"status": QUEUED}
    return {"status": UNKNOWN, "message": "no such run on this target"}


class LogRead(TypedDict):
    """New bytes of one log file (the wire form is :class:`~.protocol.LogChunkMeta`
    with the bytes in the payload)."""

    name: str
    offset: int
    data: bytes


def read_logs(
    root: str, run_id: str, offsets: dict[str, int], max_bytes: int = MAX_CHUNK
) -> list[LogRead]:
    """New bytes of every log file since ``offsets``: ``[{name, offset, data}]``."""
    run_dir = run_path(root, run_id)
    chunks: list[LogRead] = []
    budget = max_bytes
    for name in _log_files(run_dir):
        if budget <= 0:
            break
        offset = int(offsets.get(name, 0))
        path = _log_source(run_dir, name)
        try:
            size = os.path.getsize(path)
            if size <= offset:
                continue
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read(min(size - offset, budget))
        except OSError:
            continue
        budget -= len(data)
        chunks.append({"name": name, "offset": offset, "data": data})
    return chunks


def cancel_run(root: str, run_id: str) -> StatusRecord:
    """Ask the run to stop. Idempotent: a finished run is left as it is."""
    run_dir = run_path(root, run_id)
    status = read_status(root, run_id)
    if status.get("status") in TERMINAL:
        return status
    with open(os.path.join(run_dir, "cancel"), "w") as fh:
        fh.write(str(time.time()))
    pid = status.get("supervisor_pid")
    if pid and is_alive(pid, status.get("supervisor_identity")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return status


WAIT_LIMIT = 5.0
"""The longest one :func:`wait_news` blocks, whatever the client asks."""
_WAIT_TICK = 0.005
_WAIT_RECHECK = 0.5


def _log_sizes(run_dir: str) -> tuple[Any, ...]:
    """What changes when a log grows or a log file appears: cheap (stat calls only)."""
    sizes: list[Any] = []
    for name in SYSTEM_LOGS:
        try:
            sizes.append(os.stat(os.path.join(run_dir, name)).st_size)
        except OSError:
            sizes.append(-1)
    logs_dir = os.path.join(run_dir, "wd", "logs")
    for dirpath, dirnames, filenames in os.walk(logs_dir):
        dirnames.sort()
        for name in sorted(filenames):
            try:
                sizes.append((dirpath, name, os.stat(os.path.join(dirpath, name)).st_size))
            except OSError:
                continue
    return tuple(sizes)


def _status_stamp(run_dir: str) -> tuple[int, int] | None:
    """Changes whenever the supervisor replaces ``status.json``."""
    try:
        st = os.stat(os.path.join(run_dir, "status.json"))
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def wait_news(
    root: str,
    run_id: str,
    offsets: dict[str, int],
    known: str | None,
    timeout: float,
    max_bytes: int = MAX_CHUNK,
) -> tuple[StatusRecord, list[LogRead]]:
    """Block at most ``timeout`` seconds (and at most :data:`WAIT_LIMIT`) until the run
    has news: log bytes beyond ``offsets``, a status other than ``known``, or its end.
    Returns its status (as :func:`read_status`) and the new log bytes (as
    :func:`read_logs`); on timeout the status and no bytes.

    The status is read before the logs, so an ended run's logs are complete. Between
    full reads only ``stat`` calls run, every few milliseconds: status.json is replaced
    by the supervisor at each change, and logs only grow. A full read happens anyway
    every half second, which notices a supervisor that died without a word."""
    run_dir = run_path(root, run_id)
    deadline = time.monotonic() + max(0.0, min(float(timeout), WAIT_LIMIT))
    while True:
        stamp, sizes = _status_stamp(run_dir), _log_sizes(run_dir)
        status = read_status(root, run_id)
        chunks = read_logs(root, run_id, offsets, max_bytes)
        now = time.monotonic()
        if chunks or status.get("status") in TERMINAL or status.get("status") != known:
            return status, chunks
        if now >= deadline:
            return status, chunks
        recheck = min(deadline, now + _WAIT_RECHECK)
        while True:
            time.sleep(min(_WAIT_TICK, max(0.0, recheck - time.monotonic())))
            if time.monotonic() >= recheck:
                break
            if _status_stamp(run_dir) != stamp or _log_sizes(run_dir) != sizes:
                break
