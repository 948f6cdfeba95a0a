"""Writing files the client receives, safely: into a run's folder in the workspace while it
is collected, and into a user's folder by ``runs download``.

- :func:`check_received_name` refuses a name sent by a target that could land outside
  the folder it is meant for (``..``, absolute, NUL, empty parts, over-long).
- :func:`make_way` mirrors a change of type in the target's tree (a file that became a
  folder, or the other way round) instead of failing on what was collected before.
- :func:`temporary_beside` gives a unique temporary name in the destination folder, so
  two processes writing the same file never share a temporary.
- :func:`collection_lock` serialises the collection of one run between processes.
- :class:`NoFollowWriter` writes under a folder without following any link below it.

Design choice: the workspace run folder is ours, so what is in the way there is replaced
(it is a copy of the target's tree); a user's download folder is not, so a link found
there is refused, never followed and never removed (see docs/quickstart.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from targets.errors import TargetsError, UsageError

__all__ = [
    "MAX_NAME_BYTES",
    "NoFollowWriter",
    "check_log_chunk",
    "check_received_name",
    "collection_lock",
    "make_way",
    "remove_temporaries",
    "temporary_beside",
    "write_log_chunk",
]

MAX_NAME_BYTES = 4096
"""The longest relative name accepted from a target (Linux's PATH_MAX)."""
_MAX_PART_BYTES = 255
TEMP_SUFFIX = ".targets-part"
"""How the temporaries of received files end (see :func:`remove_temporaries`)."""
MAX_LOG_CHUNK = 64 << 20
"""The largest log chunk accepted in one reply."""
MAX_LOG_OFFSET = 1 << 46
"""The largest log offset accepted (64 TiB): beyond that a reply is nonsense."""


def check_received_name(name: object, tops: Sequence[str], singles: Sequence[str] = ()) -> str:
    """Why ``name`` (from a target) is not a safe relative name under one of ``tops``
    (or exactly one of ``singles``); ``""`` when it is."""
    if not isinstance(name, str):
        return f"the name {name!r} is not a string"
    if not name:
        return "an empty name"
    if "\0" in name:
        return f"the name {name!r} holds a NUL character"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"a name of {len(name)} characters"
    if name in singles:
        return ""
    if name.startswith("/"):
        return f"the absolute name {name!r}"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"the name {name!r} has an empty, '.' or '..' part"
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_PART_BYTES for part in parts):
        return f"the name {name[:80]!r}... has a part longer than {_MAX_PART_BYTES} bytes"
    if parts[0] not in tops or len(parts) < 2:
        allowed = ", ".join([*(f"{t}/" for t in tops), *singles])
        return f"the name {name!r} is not under {allowed}"
    return ""


def check_log_chunk(name: object, offset: object, data: object, singles: Sequence[str]) -> str:
    """Why a log chunk from a target is refused (``""`` when it is not): a name under
    ``logs/`` or one of ``singles`` (the system logs), an offset in range, bounded data."""
    problem = check_received_name(name, ("logs",), singles)
    if problem:
        return problem
    if isinstance(offset, bool) or not isinstance(offset, int):
        return f"the log {name!r} at the offset {offset!r}"
    if not 0 <= offset <= MAX_LOG_OFFSET:
        return f"the log {name!r} at the offset {offset}"
    if not isinstance(data, bytes):
        return f"the log {name!r} with data of type {type(data).__name__}"
    if len(data) > MAX_LOG_CHUNK:
        return f"a chunk of {len(data)} bytes of the log {name!r}"
    return ""


def write_log_chunk(root: Path, parts: Sequence[str], name: str, offset: int, data: bytes) -> None:
    """Write a checked log chunk at ``offset`` of ``root/parts...`` (truncating after it),
    never through a link, never past what was collected (no sparse file): an offset
    beyond the file's size raises :class:`TargetsError`."""
    root.mkdir(parents=True, exist_ok=True)
    path = make_way(root, parts)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "r+b") as fh:
        have = os.fstat(fd).st_size
        if offset > have:
            raise TargetsError(
                f"the target sent a bad reply: the log {name!r} at the offset {offset}, "
                f"beyond the {have} bytes collected"
            )
        fh.seek(offset)
        fh.write(data)
        fh.truncate()


def make_way(root: Path, parts: Sequence[str]) -> Path:
    """``root/parts...``, with every folder on the way made a real folder (a file or link
    of that name is removed: the target's tree has a folder there now) and a folder or
    link of the final name removed (the target has a file there now). A regular file of
    the final name is kept. ``root`` must exist; ``parts`` must be checked names."""
    current = root
    for part in parts[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)
            continue
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(current)
            os.mkdir(current)
    final = current / parts[-1]
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        return final
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(final)
    elif not stat.S_ISREG(st.st_mode):
        os.unlink(final)
    return final


def temporary_beside(path: Path) -> tuple[int, Path]:
    """A new, unique, empty file in ``path``'s folder (open descriptor, name), named after
    ``path`` and hidden. The caller renames it over ``path`` or removes it."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=TEMP_SUFFIX)
    return fd, Path(name)


def remove_temporaries(folder: Path) -> int:
    """Remove the temporaries :func:`temporary_beside` left under ``folder`` (a client
    killed while writing them); return how many. Call it only while holding the
    folder's :func:`collection_lock`, so no live writer's temporary is removed."""
    removed = 0
    if not folder.is_dir():
        return 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
    return removed


@contextlib.contextmanager
def collection_lock(folder: Path) -> Iterator[None]:
    """Hold the collection lock of the run whose workspace folder is ``folder`` (an
    ``flock`` on ``folder/.collect.lock``). Blocks while another process collects the
    run; released when the block ends or the process dies, so it is never stale."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".collect.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class NoFollowWriter:
    """Writes files under ``base`` without following a symbolic link below it.

    ``base`` itself is the folder the user named (a link there is the user's choice and
    is followed). Below it, every folder is opened with ``O_NOFOLLOW`` relative to its
    parent's descriptor, and each file is written to a new temporary (``O_CREAT |
    O_EXCL | O_NOFOLLOW``) in its folder and renamed over the destination, which replaces
    a link or file of that name without touching what it pointed to. A folder on the way
    that is a link, or a file where a folder is needed, raises :class:`UsageError`
    (exit 2). :meth:`check` finds those before anything is written.
    """

    def __init__(self, base: Path) -> None:
        self.base = base

    def _problem(self, rel: Sequence[str]) -> str:
        current = self.base
        for part in rel[:-1]:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                return ""
            if stat.S_ISLNK(st.st_mode):
                return f"{current} is a symbolic link"
            if not stat.S_ISDIR(st.st_mode):
                return f"{current} is not a folder"
        final = current / rel[-1]
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(final).st_mode):
                return f"{final} is a folder"
        return ""

    def check(self, names: Sequence[Sequence[str]]) -> None:
        """Refuse (UsageError) before writing anything when a name cannot be written."""
        for rel in names:
            problem = self._problem(rel)
            if problem:
                raise UsageError(
                    f"cannot write {self.base.joinpath(*rel)}: {problem}; downloads never "
                    "write through links nor replace folders in the destination",
                    hint="remove it, or choose another --dest",
                )

    def write(self, rel: Sequence[str], source: IO[bytes]) -> Path:
        """Copy ``source`` to ``base/rel...``; return the path written."""
        self.base.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDONLY | os.O_DIRECTORY
        dir_fd = os.open(self.base, flags)
        try:
            for part in rel[:-1]:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=dir_fd)
                try:
                    child = os.open(part, flags | os.O_NOFOLLOW, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        self.check([rel])
                    raise
                os.close(dir_fd)
                dir_fd = child
            name = rel[-1]
            fd, tmp = -1, ""
            for _ in range(100):
                tmp = f".{name[:100]}.{os.urandom(6).hex()}{TEMP_SUFFIX}"
                try:
                    fd = os.open(
                        tmp,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                        0o666,
                        dir_fd=dir_fd,
                    )
                    break
                except FileExistsError:
                    continue
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise
        finally:
            os.close(dir_fd)
        return self.base.joinpath(*rel)
