"""Content-addressed object store and run-folder materialisation (target side).

Stdlib only, Python >= 3.8: this module is shipped to remote targets.

Objects live in ``<root>/objects/<2 hex>/<sha256>`` (``.x`` suffix for executables, so
a file's mode is part of its identity). An object is read-only and its mtime is set to
the epoch when stored: a later write through a hard link (a script rewriting its own
snapshot file, as root) changes the mtime, and :func:`missing_objects` then treats the
object as absent, so a damaged object is replaced rather than shipped into later runs.

A run's working directory is materialised from objects by hard links, so preparing a run
costs one link per file however large the project is.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from .protocol import ManifestRow, check_object_key, mode_key, parse_object_key

__all__ = [
    "finish_object",
    "materialise",
    "missing_objects",
    "object_path",
    "put_bytes",
    "put_file",
]

_CHUNK = 1 << 20


def no_space(exc: BaseException) -> str | None:
    """The user's message when ``exc`` is the target's disk (or quota) being full, else
    ``None``: what was refused, and how to make room."""
    if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    what = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on device"
    where = " writing %s" % exc.filename if exc.filename else ""
    return (
        "the target's disk is full (%s%s): free space there, or remove old runs and "
        "environments with `targets gc`" % (what, where)
    )


def object_path(root: str, digest: str, mode: int) -> str:
    """The stored object of content ``digest`` for a file of permission bits ``mode``."""
    return os.path.join(root, "objects", digest[:2], mode_key(digest, mode))


def key_path(root: str, key: str) -> str:
    """The stored object of a key (ValueError when ``key`` is not one)."""
    digest, executable = parse_object_key(check_object_key(key))
    return object_path(root, digest, 0o755 if executable else 0o644)


def _intact(path: str, size: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size == size and int(st.st_mtime) == 0


def _objects_prefix(root: str) -> str:
    """``<root>/objects/``: an object's path is this, its key's first two characters, a
    separator and its key (what :func:`object_path` gives, without parsing the key again
    for each of a manifest's thousands of rows)."""
    return os.path.join(root, "objects", "")


def missing_objects(root: str, entries: Iterable[Sequence[Any]]) -> list[str]:
    """Digests (with ``.x`` for executables) of manifest entries not intact in the store.

    ``entries`` are manifest rows (:class:`~.protocol.ManifestRow`, or its wire list).
    """
    missing = []
    seen = set()
    prefix = _objects_prefix(root)
    for raw in entries:
        row = ManifestRow.from_wire(raw)
        if row.link is not None:
            continue
        key = check_object_key(row.key)
        if key in seen:
            continue
        seen.add(key)
        if not _intact(prefix + key[:2] + os.sep + key, row.size):
            missing.append(key)
    return missing


def finish_object(tmp: str, final: str, mode: int) -> None:
    """Make a verified temporary file the stored object (read-only for its owner only,
    epoch mtime). Run folders hard-link objects, so this is also the mode of the files
    a run sees: the executable bit is kept, and nobody else may read them."""
    os.chmod(tmp, 0o500 if mode & 0o111 else 0o400)
    os.utime(tmp, (0, 0))
    os.replace(tmp, final)


def put_file(root: str, key: str, source: str) -> None:
    """Copy ``source`` into the store under ``key`` (a digest, ``.x`` for executable),
    verifying its content. Raises ValueError when the content does not match (the file
    changed after it was snapshotted)."""
    digest, executable = parse_object_key(check_object_key(key))
    final = object_path(root, digest, 0o755 if executable else 0o644)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".in-")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != digest:
            raise ValueError(f"{source} changed while it was being sent; run again")
        finish_object(tmp, final, 0o755 if executable else 0o644)
    except BaseException:
        _remove(tmp)
        raise


def put_bytes(root: str, key: str, data: bytes) -> None:
    """Store ``data`` under ``key`` after checking its digest."""
    digest, executable = parse_object_key(check_object_key(key))
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"object {digest} arrived damaged")
    final = object_path(root, digest, 0o755 if executable else 0o644)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".in-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        finish_object(tmp, final, 0o755 if executable else 0o644)
    except BaseException:
        _remove(tmp)
        raise


def materialise(root: str, entries: Iterable[Sequence[Any]], dest: str) -> int:
    """Create the snapshot's tree under ``dest`` from the store (hard links; a copy where
    links are impossible). Returns the number of files placed."""
    count = 0
    made = set()
    prefix = _objects_prefix(root)
    for raw in entries:
        path, _size, mode, digest, link = ManifestRow.from_wire(raw)
        rel = path
        if rel.startswith("/") or ".." in rel.split("/"):
            raise ValueError(f"unsafe path in manifest: {rel!r}")
        target = os.path.join(dest, *rel.split("/"))
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if link is not None:
            os.symlink(str(link), target)
            continue
        key = check_object_key(mode_key(digest, mode))
        src = prefix + key[:2] + os.sep + key
        try:
            os.link(src, target)
        except OSError:
            shutil.copyfile(src, target)
            os.chmod(target, 0o700 if int(mode) & 0o111 else 0o600)
        count += 1
    return count


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
