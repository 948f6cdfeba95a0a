"""Garbage collection of the agent's object store and run folders (target side).

Stdlib only, Python >= 3.8: this module is shipped to remote targets.

What is kept, what goes:

- A run folder goes only when its run has ended *and* carries the ``collected`` marker,
  written when the client has brought its logs and outputs back (:func:`mark_collected`).
  A running, queued or uncollected run's folder is never removed.
- An object is *needed* while something else links it: run folders are materialised by
  hard links, so an object whose link count is 1 is held by the store alone. It is garbage
  unless a *claim* names it.
- A claim (``<root>/claims/<run_id>``) lists the objects a submit is about to use. The
  ``missing`` request writes it, under a shared lock, before it answers which objects the
  client must send; ``start`` releases it once the run folder links them. Garbage
  collection holds the same lock exclusively while it reads the claims and deletes, so a
  concurrent submit either sees the object gone (and sends it again) or has claimed it.

  Design choice: a claim rather than an age grace period. Removing a run folder lowers
  its objects' link counts, which also moves their ctime to *now*; a grace period on ctime
  would keep every object freed by a collection for the length of the period, and a grace
  period long enough for a slow upload would hold gigabytes. A claim names exactly the
  objects in flight, and is released as soon as they are linked. A claim whose submit
  never arrived (the client died) expires after :data:`CLAIM_TTL` seconds.

- The cap (``<root>/storage.json``, default :data:`DEFAULT_CAP`) is applied after each
  collection: when the store and run folders together exceed it, unneeded objects go
  first, then the oldest collected run folders, until the total is under the cap.
  Design choice: that takes a walk of every object and run folder, so each full walk
  records the usage it found (``<root>/storage-usage.json``), and a collection adds the
  size of the collected run's folder to it; while that estimate (an over-estimate for
  what collected runs hold) is under the cap and the last walk is less than an hour old,
  no walk is made.

Sizes are apparent sizes (``st_size``), each inode counted once however many links it has.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Tuple  # noqa: UP035 - runtime use on Python 3.8

from . import rundir, store
from .protocol import ManifestRow, StatusRecord

__all__ = [
    "CLAIM_TTL",
    "DEFAULT_CAP",
    "MARKER",
    "claim_for_start",
    "collect",
    "enforce_cap",
    "mark_collected",
    "missing_and_claim",
    "pending_rows",
    "read_cap",
    "release",
    "set_cap",
]

MARKER = "collected"
DEFAULT_CAP = 5 * 1000**3
CLAIM_TTL = 7 * 86400
TEMP_TTL = 86400
_LOCK = "storage.lock"
_CONFIG = "storage.json"
_CLAIMS = "claims"
_PENDING = "pending"
_OBJECT = re.compile(r"^[0-9a-f]{64}(\.x)?$")

_Inode = Tuple[int, int]  # noqa: UP006 - evaluated at runtime, on Python 3.8 too


@contextlib.contextmanager
def _locked(root: str, exclusive: bool, wait: bool = True) -> Iterator[bool]:
    """Hold the storage lock (shared for submits, exclusive for garbage collection).
    Yields False when ``wait`` is false and the lock is taken."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, _LOCK), "a+b") as fh:
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fh.fileno(), flags if wait else flags | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# -- claims --------------------------------------------------------------------------------


def _claim_path(root: str, name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError("bad claim name %r" % name)
    return os.path.join(root, _CLAIMS, name)


def missing_and_claim(root: str, rows: Iterable[Sequence[Any]], claim: str | None) -> list[str]:
    """:func:`store.missing_objects`, after recording (when ``claim`` is given) that every
    object of ``rows`` is about to be used, so garbage collection spares them until
    :func:`release`."""
    rows = list(rows)
    with _locked(root, exclusive=False):
        if claim:
            keys = sorted({r.key for r in map(ManifestRow.from_wire, rows) if r.link is None})
            path = _claim_path(root, claim)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = "%s.tmp-%d" % (path, os.getpid())
            with open(tmp, "w") as fh:
                fh.write("\n".join(keys))
            os.replace(tmp, path)
        return store.missing_objects(root, rows)


def _pending_path(root: str, run_id: str) -> str:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError("bad run id %r" % run_id)
    return os.path.join(root, _PENDING, run_id + ".json")


def claim_for_start(root: str, rows: Sequence[Sequence[Any]], run_id: str) -> list[str]:
    """What a ``start`` that checks first does: claim every object of ``rows`` for
    ``run_id`` (as :func:`missing_and_claim`) and return the keys the store lacks. When
    some are missing, the rows are also kept (``<root>/pending/<run_id>.json``) so that
    the ``start`` that follows the upload need not carry them again (see
    :func:`pending_rows`); :func:`release` drops them with the claim."""
    missing = missing_and_claim(root, rows, run_id)
    if missing:
        path = _pending_path(root, run_id)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = "%s.tmp-%d" % (path, os.getpid())
        with open(tmp, "w") as fh:
            json.dump([list(r) for r in rows], fh, separators=(",", ":"))
        os.replace(tmp, path)
    return missing


def pending_rows(root: str, run_id: str) -> list[list[Any]] | None:
    """The rows a checking ``start`` kept for ``run_id`` (None: none kept)."""
    try:
        with open(_pending_path(root, run_id)) as fh:
            rows = json.load(fh)
    except (OSError, ValueError):
        return None
    return rows if isinstance(rows, list) else None


def release(root: str, claim: str) -> None:
    """Drop a claim, and the rows kept with it (idempotent)."""
    with contextlib.suppress(OSError):
        os.unlink(_claim_path(root, claim))
    with contextlib.suppress(OSError, ValueError):
        os.unlink(_pending_path(root, claim))


def _claimed(root: str, now: float, dry_run: bool) -> set[str]:
    """Object keys named by live claims; expired claims (and the rows kept with them)
    are removed (unless dry-run)."""
    pending = os.path.join(root, _PENDING)
    for name in os.listdir(pending) if os.path.isdir(pending) and not dry_run else ():
        with contextlib.suppress(OSError):
            if now - os.path.getmtime(os.path.join(pending, name)) > CLAIM_TTL:
                os.unlink(os.path.join(pending, name))
    folder = os.path.join(root, _CLAIMS)
    keys: set[str] = set()
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        try:
            if now - os.path.getmtime(path) > CLAIM_TTL:
                if not dry_run:
                    os.unlink(path)
                continue
            with open(path) as fh:
                keys.update(line.strip() for line in fh if line.strip())
        except OSError:
            continue
    return keys


# -- the cap -------------------------------------------------------------------------------


def read_cap(root: str) -> int | None:
    """The cap in bytes (None: no cap). :data:`DEFAULT_CAP` until one is set."""
    try:
        with open(os.path.join(root, _CONFIG)) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return DEFAULT_CAP
    if not isinstance(data, dict) or "cap_bytes" not in data:
        return DEFAULT_CAP
    cap = data["cap_bytes"]
    return None if cap is None else int(cap)


def set_cap(root: str, cap_bytes: int | None) -> dict[str, Any]:
    """Record the cap (None: no cap). Returns ``{"cap_bytes": ...}``."""
    if cap_bytes is not None and int(cap_bytes) < 0:
        raise ValueError("the cap must be a positive size, or off")
    os.makedirs(root, exist_ok=True)
    rundir.write_json_atomic(
        os.path.join(root, _CONFIG), {"cap_bytes": None if cap_bytes is None else int(cap_bytes)}
    )
    return {"cap_bytes": read_cap(root)}


# -- collection markers ----------------------------------------------------------------------


def _ended(root: str, run_id: str) -> StatusRecord | None:
    """The run's status when it has ended, else None."""
    status = rundir.read_status(root, run_id)
    return status if status.get("status") in rundir.TERMINAL else None


def _mark(root: str, run_id: str) -> bool:
    run_dir = rundir.run_path(root, run_id)
    if not os.path.isdir(run_dir) or _ended(root, run_id) is None:
        return False
    marker = os.path.join(run_dir, MARKER)
    if not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(time.time()))
    return True


def mark_collected(root: str, run_id: str, apply_cap: bool = True) -> dict[str, Any]:
    """Record that the client has brought the ended run's logs and outputs back, then
    apply the cap (unless ``apply_cap`` is false: the caller applies it later, with
    :func:`enforce_cap`). A run that has not ended is not marked. Returns ``{"marked":
    bool, "pruned": [run ids removed by the cap], "freed_bytes": int}``."""
    marked = _mark(root, run_id)
    if not apply_cap:
        return {"marked": marked, "pruned": [], "freed_bytes": 0}
    report = enforce_cap(root, run_id if marked else None)
    return {
        "marked": marked,
        "pruned": [r["run_id"] for r in report["runs"]] if report else [],
        "freed_bytes": report["freed_bytes"] if report else 0,
    }


def enforce_cap(root: str, run_id: str | None = None) -> dict[str, Any] | None:
    """Remove the oldest collected runs (and unneeded objects) while the store is over
    its cap; the report of :func:`collect`, or None when nothing was walked (no cap, or
    the store is surely under it). After the collection of ``run_id`` the full walk is
    skipped when the last walk's usage plus what the runs collected since hold (see
    :func:`_surely_under`) is under the cap. The agent's server does this after answering
    ``collected``."""
    cap = read_cap(root)
    if cap is None:
        return None
    if run_id is not None and _surely_under(root, cap, run_id):
        return None
    # The cap never waits: a garbage collection under way does the same work.
    return collect(root, max_size=cap, wait=False)


_USAGE = "storage-usage.json"
FULL_WALK_SECONDS = 3600.0
"""The longest the cap goes on estimates (see :func:`_surely_under`) without a full walk."""


@contextlib.contextmanager
def _usage_locked(root: str) -> Iterator[None]:
    with open(os.path.join(root, _USAGE + ".lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _record_usage(root: str, usage: int) -> None:
    """What a full walk found (the base of later estimates)."""
    with _usage_locked(root):
        rundir.write_json_atomic(
            os.path.join(root, _USAGE), {"usage": int(usage), "added": 0, "at": time.time()}
        )


def _surely_under(root: str, cap: int, run_id: str) -> bool:
    """Whether the store is surely under ``cap`` without walking it: the usage the last
    full walk found, plus every byte of each run collected since (its folder's files,
    each inode once: an over-estimate, since objects it shares with the store were
    counted already), is under the cap, and that walk is less than
    :data:`FULL_WALK_SECONDS` old. Bytes no collected run holds (uploads for runs that
    never started, runs not yet collected) wait for the next full walk."""
    path = os.path.join(root, _USAGE)
    with _usage_locked(root):
        try:
            with open(path) as fh:
                known = json.load(fh)
            usage, added, at = int(known["usage"]), int(known["added"]), float(known["at"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not 0 <= time.time() - at < FULL_WALK_SECONDS:
            return False
        seen: set[_Inode] = set()
        for _path, st in _walk_files(rundir.run_path(root, run_id)):
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                added += st.st_size
        if usage + added > cap:
            return False
        rundir.write_json_atomic(path, {"usage": usage, "added": added, "at": at})
        return True


# -- garbage collection ----------------------------------------------------------------------


class _Inodes:
    """Each inode under the agent's folders once: its size and its links left."""

    def __init__(self) -> None:
        self.size: dict[_Inode, int] = {}
        self.links: dict[_Inode, int] = {}
        self.usage = 0
        self.freed = 0

    def add(self, st: os.stat_result) -> _Inode:
        key = (st.st_dev, st.st_ino)
        if key not in self.size:
            self.size[key] = st.st_size
            self.links[key] = st.st_nlink
            self.usage += st.st_size
        return key

    def unlink(self, key: _Inode) -> int:
        """Drop one link; returns the bytes freed (the inode's size when it was the last)."""
        self.links[key] -= 1
        if self.links[key] > 0:
            return 0
        self.usage -= self.size[key]
        self.freed += self.size[key]
        return self.size[key]


def _walk_files(top: str) -> Iterator[tuple[str, os.stat_result]]:
    for dirpath, _dirnames, filenames in os.walk(top):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                yield path, os.lstat(path)


def collect(
    root: str,
    collected: Sequence[str] = (),
    keep_days: float | None = None,
    max_size: int | None = None,
    dry_run: bool = False,
    wait: bool = True,
) -> dict[str, Any]:
    """Remove what no kept run needs; return what went (or would go, with ``dry_run``).

    ``collected``: run ids the client knows it collected (marked first, so runs collected
    before markers existed can go too). ``keep_days``: collected runs that ended within
    that many days are kept. ``max_size``: stop as soon as objects and run folders take at
    most this many bytes (unneeded objects go first, then the oldest collected runs);
    without it everything that may go, goes. Blocks while another collection runs, unless
    ``wait`` is false (then nothing is done).
    """
    with _locked(root, exclusive=True, wait=wait) as held:
        if not held:
            return _report([], [], 0, 0, 0, dry_run, read_cap(root))
        now = time.time()
        chosen = set(collected)
        inodes = _Inodes()
        objects: dict[_Inode, tuple[str, str]] = {}  # inode -> (path, key)
        temps: list[str] = []
        for path, st in _walk_files(os.path.join(root, "objects")):
            name = os.path.basename(path)
            if _OBJECT.match(name):
                objects[inodes.add(st)] = (path, name)
            elif ".in-" in name and now - st.st_mtime > TEMP_TTL:
                temps.append(path)  # an upload that died; a live one writes to it
        runs_dir = os.path.join(root, "runs")
        candidates: list[tuple[float, str, list[_Inode]]] = []
        for run_id in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else ():
            run_dir = os.path.join(runs_dir, run_id)
            if run_id.startswith(".") or not os.path.isdir(run_dir):
                continue
            files = [inodes.add(st) for _path, st in _walk_files(run_dir)]
            status = _ended(root, run_id)
            marker = os.path.join(run_dir, MARKER)
            if status is None:
                continue
            if not os.path.exists(marker):
                if run_id not in chosen:
                    continue
                if not dry_run:
                    _mark(root, run_id)
            ended = float(status.get("ended_at") or _mtime(marker) or now)
            if keep_days is not None and now - ended < keep_days * 86400:
                continue
            candidates.append((ended, run_id, files))
        candidates.sort()
        claimed = _claimed(root, now, dry_run)

        def over() -> bool:
            return max_size is None or inodes.usage > max_size

        gone_objects: list[tuple[str, str, int]] = []

        def drop_garbage(keys: Iterable[_Inode]) -> None:
            for key in keys:
                if key in objects and inodes.links[key] == 1:
                    path, name = objects.pop(key)
                    if name not in claimed:
                        gone_objects.append((path, name, inodes.unlink(key)))

        if over():
            drop_garbage(list(objects))
        gone_runs: list[dict[str, Any]] = []
        for ended, run_id, files in candidates:
            if not over():
                break
            freed = sum(inodes.unlink(key) for key in files)
            drop_garbage(files)
            gone_runs.append({"run_id": run_id, "ended_at": ended, "bytes": freed})
        if not dry_run:
            for run in gone_runs:
                # Under the lock, and only what still carries the marker of an ended run.
                run_dir = os.path.join(runs_dir, run["run_id"])
                if _ended(root, run["run_id"]) and os.path.exists(os.path.join(run_dir, MARKER)):
                    shutil.rmtree(run_dir, ignore_errors=True)
            for path, _name, _size in gone_objects:
                with contextlib.suppress(OSError):
                    if os.lstat(path).st_nlink == 1:
                        os.unlink(path)
            for path in temps:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            with contextlib.suppress(OSError):
                _record_usage(root, inodes.usage)
        usage_before = inodes.usage + inodes.freed
        return _report(
            gone_runs, gone_objects, usage_before, inodes.usage, len(temps), dry_run, read_cap(root)
        )


def _report(
    runs: list[dict[str, Any]],
    objects: list[tuple[str, str, int]],
    usage_before: int,
    usage_after: int,
    temps: int,
    dry_run: bool,
    cap: int | None,
) -> dict[str, Any]:
    run_bytes = sum(int(r["bytes"]) for r in runs)
    object_bytes = sum(size for _p, _n, size in objects)
    return {
        "dry_run": dry_run,
        "runs": runs,
        "run_bytes": run_bytes,
        "objects": [name for _p, name, _s in objects],
        "object_bytes": object_bytes,
        "temporary_files": temps,
        "freed_bytes": run_bytes + object_bytes,
        "usage_before": usage_before,
        "usage_after": usage_after,
        "cap_bytes": cap,
    }


def _mtime(path: str) -> float | None:
    try:
        return os.path.getmtime(path)
    except OSError:
        return None
