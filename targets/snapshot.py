"""Snapshot of a project's source directory: ignore rules, limits, content hashes, manifest.

:func:`take_snapshot` walks the directory once (``os.scandir``), decides what is included,
checks the limits, hashes the included files (reusing a cache of earlier hashes) and reads
the git state. The result, a :class:`Snapshot`, turns into a JSON-able manifest that the
target kinds send to their agent.

What is included
----------------
Every regular file and every symlink under the root, except:

- anything named ``.git`` (a folder or a worktree/submodule file), at any depth;
- whatever matches ``always_exclude`` (default ``.targets/``, the workspace folder), written
  as gitignore patterns relative to the root; these cannot be re-included;
- the hash cache file itself when it lies inside the root;
- whatever the ignore files exclude (below);
- by default, unless an ignore file has an opinion on them (a ``!pattern`` brings them
  back): folders named in :data:`DEFAULT_EXCLUDED_DIRS` (``__pycache__``,
  ``node_modules``, tool caches) and every folder that holds a virtual environment
  (``pyvenv.cfg``) or a conda environment (``conda-meta/``), whatever its name.

Sockets, FIFOs and device files are left out: they cannot be shipped.

Ignore files, as Azure ML reads them
------------------------------------
In each folder, at most one ignore file counts, picked in this order:

1. ``.targetsignore`` -- if it exists, the other two in that folder are not read;
2. ``.amlignore`` -- used when there is no ``.targetsignore``;
3. ``.gitignore`` -- used when there is neither.

Patterns use git's wildmatch syntax (``pathspec.GitIgnoreSpec``), relative to the folder
that holds the ignore file, and apply to that folder's subtree. As in git, a deeper ignore
file overrides a shallower one for the paths it has an opinion on (the last matching
pattern of the deepest file that matches decides), ``!pattern`` re-includes, and a file
inside an excluded folder cannot be re-included because the folder is never entered.
The ignore files themselves are included unless a pattern says otherwise.

Limits
------
At most :attr:`SnapshotLimits.max_files` entries (2000) and
:attr:`SnapshotLimits.max_bytes` bytes (300 MiB), like Azure ML. ``TARGETS_SNAPSHOT_MAX_FILES``
and ``TARGETS_SNAPSHOT_MAX_BYTES`` raise them (:func:`limits_from_env`). The walk stats every
file before anything is hashed; over the limit, :class:`~targets.errors.SnapshotError` lists
the ten largest files and top-level folders.

Symlinks
--------
A symlink whose target resolves inside the root is recorded as a link entry
(``FileEntry.link``, a relative POSIX path), never followed. One that resolves outside the
root is handled by the :data:`SymlinkPolicy` (``symlinks=``, or ``TARGETS_SNAPSHOT_SYMLINKS``
through :func:`symlinks_from_env`):

- ``follow`` (the default, it loses nothing): its content is copied into the snapshot
  under the link's name, a file as a file, a folder walked with the same rules; the limits
  count what is copied, a loop is cut with a warning, and over a limit the error names the
  link. One that resolves to nothing (or to a device) is kept as a link, with a warning;
- ``skip``: left out, with a warning;
- ``refuse``: :class:`~targets.errors.SnapshotError` naming every such link.

Hash cache
----------
The sha256 of each file is cached by (path, size, mtime_ns, ctime_ns, inode) in a JSON file
(``cache_path``), written atomically (temporary file + ``os.replace``) so that concurrent
snapshots never see a torn file; the last writer wins, which only costs re-hashing. A file
modified less than two seconds before it was hashed is not cached (git's "racily clean"
problem: a second write within the file system's timestamp granularity would go unnoticed).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from pathspec import GitIgnoreSpec

from targets._snapshot_walk import (
    DEFAULT_EXCLUDED_DIRS,
    ENV_SYMLINKS,
    IGNORE_FILES,
    LINK_MODE,
    SYMLINK_POLICIES,
    Found,
    SymlinkPolicy,
    Walker,
    mode_of,
)
from targets.errors import SnapshotError

__all__ = [
    "DEFAULT_EXCLUDED_DIRS",
    "IGNORE_FILES",
    "SYMLINK_POLICIES",
    "FileEntry",
    "GitState",
    "Snapshot",
    "SnapshotLimits",
    "SymlinkPolicy",
    "git_state",
    "limits_from_env",
    "strip_credentials",
    "symlinks_from_env",
    "take_snapshot",
]

ENV_MAX_BYTES = "TARGETS_SNAPSHOT_MAX_BYTES"
ENV_MAX_FILES = "TARGETS_SNAPSHOT_MAX_FILES"

_ALWAYS_OUT = (".git",)
_RACY_WINDOW_NS = 2_000_000_000
_CACHE_VERSION = 1
_PARALLEL_MIN_FILES = 32
_GIT_TIMEOUT_S = 10.0
_TOP_N = 10
_MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One included file or symlink."""

    path: str  # POSIX path relative to the root
    size: int
    mode: int  # 0o755 when executable by owner, else 0o644
    digest: str  # sha256 hex of the content ("" for symlinks)
    link: str | None = None  # for a symlink inside the tree: its target, relative


@dataclass(frozen=True, slots=True)
class GitState:
    """The git state of the repository holding the root, as ``git`` reports it."""

    remote: str | None  # origin's URL without credentials
    branch: str | None  # None when HEAD is detached
    commit: str | None  # None before the first commit
    dirty: bool  # tracked changes or untracked (not ignored) files


@dataclass(frozen=True, slots=True)
class SnapshotLimits:
    """Upper bounds on what a snapshot may hold (Azure ML's defaults)."""

    max_bytes: int = 300 * 1024 * 1024
    max_files: int = 2000


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What :func:`take_snapshot` found. ``digest`` identifies the content.

    ``hashed_files`` counts the files whose content was read (cache misses) while taking
    this snapshot; ``changed_paths`` names the files that are new to the hash cache or
    whose content differs from what it had (a submit sends such small ones ahead of
    asking the target what it lacks). Neither is part of the manifest, nor of equality.
    """

    root: Path
    files: tuple[FileEntry, ...]  # sorted by path
    total_size: int
    git: GitState | None
    digest: str  # sha256 of the canonical manifest (paths, modes, digests, links)
    hashed_files: int = field(default=0, compare=False)
    changed_paths: frozenset[str] = field(default=frozenset(), compare=False)
    sources: Mapping[str, Path] | None = field(default=None, compare=False)
    """Where files that are not under ``root`` are read from (see :func:`combine`)."""

    def source(self, path: str) -> Path:
        """The local file holding the content of the entry ``path``."""
        if self.sources and path in self.sources:
            return self.sources[path]
        return self.root / path

    def to_manifest(self) -> dict[str, Any]:
        """A JSON-able dict: ``{"digest", "total_size", "files", "git"}``.

        ``files`` is a list of ``[path, size, mode, digest, link]``.
        """
        git = None
        if self.git is not None:
            git = {
                "remote": self.git.remote,
                "branch": self.git.branch,
                "commit": self.git.commit,
                "dirty": self.git.dirty,
            }
        return {
            "digest": self.digest,
            "total_size": self.total_size,
            "files": [[f.path, f.size, f.mode, f.digest, f.link] for f in self.files],
            "git": git,
        }

    @classmethod
    def from_manifest(cls, root: Path, manifest: dict[str, Any]) -> Snapshot:
        """Rebuild a snapshot from :meth:`to_manifest` output.

        Raises :class:`SnapshotError` when the manifest is malformed or its digest does not
        match its files.
        """
        try:
            files = tuple(
                FileEntry(
                    path=_typed(row[0], str),
                    size=_typed(row[1], int),
                    mode=_typed(row[2], int),
                    digest=_typed(row[3], str),
                    link=None if row[4] is None else _typed(row[4], str),
                )
                for row in manifest["files"]
            )
            raw_git = manifest["git"]
            git = None
            if raw_git is not None:
                git = GitState(
                    remote=_optional_str(raw_git["remote"]),
                    branch=_optional_str(raw_git["branch"]),
                    commit=_optional_str(raw_git["commit"]),
                    dirty=_typed(raw_git["dirty"], bool),
                )
            digest = _typed(manifest["digest"], str)
            total_size = _typed(manifest["total_size"], int)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise SnapshotError(f"malformed snapshot manifest: {exc!r}") from exc
        files = tuple(sorted(files, key=lambda f: f.path))
        if _manifest_digest(files) != digest:
            raise SnapshotError(
                "snapshot manifest digest does not match its files; the manifest was altered"
            )
        return cls(root=root, files=files, total_size=total_size, git=git, digest=digest)


def _typed(value: Any, kind: type[Any]) -> Any:
    # bool is an int subclass; keep sizes and modes honest.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(_typed(value, str))


def _manifest_digest(files: Iterable[FileEntry]) -> str:
    canonical = json.dumps(
        [[f.path, f.mode, f.digest, f.link] for f in files],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------- limits


def limits_from_env() -> SnapshotLimits:
    """The default limits, overridden by ``TARGETS_SNAPSHOT_MAX_BYTES`` and
    ``TARGETS_SNAPSHOT_MAX_FILES`` when set.

    Byte counts accept a binary suffix: ``500M``, ``2G``, ``1024K``. Raises
    :class:`SnapshotError` for a value that is not a positive whole number.
    """
    defaults = SnapshotLimits()
    max_bytes = _env_int(ENV_MAX_BYTES, defaults.max_bytes, suffixes=True)
    max_files = _env_int(ENV_MAX_FILES, defaults.max_files, suffixes=False)
    return SnapshotLimits(max_bytes=max_bytes, max_files=max_files)


def _env_int(name: str, default: int, *, suffixes: bool) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    factor = 1
    text = raw.upper().removesuffix("B").removesuffix("I")
    if suffixes and text and text[-1] in "KMGT":
        factor = 1024 ** ("KMGT".index(text[-1]) + 1)
        text = text[:-1]
    try:
        value = int(text) * factor
    except ValueError:
        value = 0
    if value <= 0:
        example = "500M" if suffixes else "5000"
        raise SnapshotError(
            f"{name}={raw!r} is not a positive whole number",
            hint=f"set it like {name}={example}, or unset it for the default",
        )
    return value


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def symlinks_from_env() -> SymlinkPolicy:
    """The symlink policy from ``TARGETS_SNAPSHOT_SYMLINKS`` (``follow`` when unset).

    Raises :class:`SnapshotError` (exit code 2) for a value that is not a policy.
    """
    return _policy(os.environ.get(ENV_SYMLINKS, "").strip() or "follow", ENV_SYMLINKS)


def _policy(value: str, name: str) -> SymlinkPolicy:
    for policy in SYMLINK_POLICIES:
        if value.lower() == policy:
            return policy
    raise SnapshotError(
        f"{name}={value!r} is not a symlink policy: use one of {', '.join(SYMLINK_POLICIES)}",
        hint=f"set it like {ENV_SYMLINKS}=skip, or unset it for the default (follow)",
    )


# --------------------------------------------------------------------------- walk


def _check_limits(
    found: list[Found], limits: SnapshotLimits, followed: Mapping[str, str], truncated: bool
) -> None:
    count = len(found)
    total = sum(f.size for f in found)
    if count <= limits.max_files and total <= limits.max_bytes:
        return
    # A truncated walk stopped following symlinks once over a limit: there is more.
    more = "at least " if truncated else ""
    over = []
    if count > limits.max_files:
        over.append(f"{more}{count} files (limit {limits.max_files})")
    if total > limits.max_bytes:
        over.append(f"{more}{_human(total)} (limit {_human(limits.max_bytes)})")
    largest = sorted(found, key=lambda f: (-f.size, f.path))[:_TOP_N]
    folders: dict[str, list[int]] = {}
    for f in found:
        top, sep, _ = f.path.partition("/")
        if sep:
            acc = folders.setdefault(top + "/", [0, 0])
            acc[0] += f.size
            acc[1] += 1
    top_folders = sorted(folders.items(), key=lambda kv: (-kv[1][0], kv[0]))[:_TOP_N]
    lines = [f"the snapshot is too large: {' and '.join(over)}", "", "largest files:"]
    lines += [f"  {_human(f.size):>10}  {f.path}" for f in largest]
    if top_folders:
        lines += ["", "largest top-level folders:"]
        lines += [f"  {_human(s):>10}  {name} ({n} files)" for name, (s, n) in top_folders]
    hint = (
        "leave files out by adding patterns to .targetsignore (gitignore syntax), "
        f"or raise the limits with {ENV_MAX_FILES}=N / {ENV_MAX_BYTES}=SIZE (e.g. 1G)"
    )
    if followed:
        copied: dict[str, list[int]] = {}
        for f in found:
            if f.via is not None:
                acc = copied.setdefault(f.via, [0, 0])
                acc[0] += f.size
                acc[1] += 1
        lines += ["", "copied through symlinks that point outside the project:"]
        lines += [
            f"  {_human(copied.get(link, [0, 0])[0]):>10}  {link} -> {resolved} "
            f"({copied.get(link, [0, 0])[1]} files)"
            for link, resolved in sorted(followed.items())
        ]
        hint += f"; or leave such symlinks out with {ENV_SYMLINKS}=skip"
    raise SnapshotError("\n".join(lines), hint=hint)


def _listed(items: list[str]) -> str:
    shown = [f"  {item}" for item in sorted(items)[:_MAX_LISTED_PROBLEMS]]
    if len(items) > _MAX_LISTED_PROBLEMS:
        shown.append(f"  ... and {len(items) - _MAX_LISTED_PROBLEMS} more")
    return "\n".join(shown)


# --------------------------------------------------------------------------- hashing


_CacheRow = tuple[int, int, int, int, str]  # size, mtime_ns, ctime_ns, inode, digest
_RACY_MTIME = -1
"""The mtime of a cached row whose file was racily clean: it matches no file."""


def _load_cache(cache_path: Path, root_key: str) -> dict[str, _CacheRow]:
    # A missing, unreadable or corrupt cache only costs re-hashing: never an error.
    try:
        data = json.loads(cache_path.read_bytes())
        rows = data["roots"][root_key] if data.get("version") == _CACHE_VERSION else {}
        return {
            path: (int(row[0]), int(row[1]), int(row[2]), int(row[3]), str(row[4]))
            for path, row in rows.items()
            if isinstance(path, str) and isinstance(row, list) and len(row) == 5
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _save_cache(cache_path: Path, root_key: str, rows: dict[str, _CacheRow]) -> None:
    try:
        data = json.loads(cache_path.read_bytes())
        if data.get("version") != _CACHE_VERSION or not isinstance(data.get("roots"), dict):
            raise ValueError
    except (OSError, ValueError, AttributeError):
        data = {"version": _CACHE_VERSION, "roots": {}}
    data["roots"][root_key] = rows
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_path.parent, prefix=f".{cache_path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, separators=(",", ":"))
            os.replace(tmp, cache_path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        # Design choice: the cache is an optimisation; a read-only workspace must not stop
        # a run. The next snapshot hashes again.
        pass


class _Unhashable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _file_digest(fh: IO[bytes]) -> str:
    if sys.version_info >= (3, 11):
        return hashlib.file_digest(fh, "sha256").hexdigest()
    h = hashlib.sha256()  # pragma: no cover - Python 3.10
    for chunk in iter(lambda: fh.read(1 << 20), b""):  # pragma: no cover
        h.update(chunk)
    return h.hexdigest()  # pragma: no cover


def _hash_file(abspath: str) -> tuple[str, os.stat_result]:
    """sha256 of a regular file, and its fstat. Raises :class:`_Unhashable`."""
    # O_NOFOLLOW: a file swapped for a symlink since the walk must not be followed out of
    # the tree; O_NONBLOCK: a file swapped for a FIFO must not hang the open.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _attempt in range(3):
        try:
            fd = os.open(abspath, flags)
        except OSError as exc:
            raise _Unhashable(exc.strerror or str(exc)) from exc
        with open(fd, "rb") as fh:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise _Unhashable("no longer a regular file")
            try:
                digest = _file_digest(fh)
            except OSError as exc:
                raise _Unhashable(exc.strerror or str(exc)) from exc
            after = os.fstat(fd)
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            return digest, before
    raise _Unhashable("it kept changing while being read")


# --------------------------------------------------------------------------- git


def strip_credentials(url: str) -> str:
    """``url`` without credentials.

    http(s)/ftp(s) URLs lose their whole user-info part (tokens are often passed as the
    user name); other URLs (``ssh://git@host/...``) keep the user name but lose any
    password. scp-like ``git@host:path`` and local paths are returned unchanged.
    """
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if parts.scheme.lower() in ("http", "https", "ftp", "ftps"):
        netloc = hostport
    else:
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{hostport}" if user else hostport
    return urlunsplit(parts._replace(netloc=netloc))


def _git(root: Path, *args: str) -> str | None:
    env = dict(os.environ)
    # No index.lock taken by `git status` (other tools may be using the repo), no prompts.
    env.update(GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0")
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=_GIT_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _maybe_in_repository(root: Path) -> bool:
    """False only when git could not find a repository for ``root``: no ``GIT_DIR`` or
    ``GIT_WORK_TREE`` in the environment, and neither ``root`` nor a folder above it holds
    a ``.git`` (folder or file) or is a repository itself (``HEAD`` and ``objects``). Saves
    starting ``git`` for a project outside any repository."""
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE"):
        return True
    folder = os.path.abspath(root)
    while True:
        if os.path.lexists(os.path.join(folder, ".git")):
            return True
        if os.path.lexists(os.path.join(folder, "HEAD")) and os.path.isdir(
            os.path.join(folder, "objects")
        ):
            return True
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent


def git_state(root: Path) -> GitState | None:
    """The git state of the repository that holds ``root``; None when ``root`` is not in
    a repository, ``git`` is missing or fails. Blocking: runs ``git`` twice (not at all
    outside a repository)."""
    if not _maybe_in_repository(root):
        return None
    status = _git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=normal")
    if status is None:
        return None
    branch: str | None = None
    commit: str | None = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ").strip()
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.removeprefix("# branch.head ").strip()
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    remote = _git(root, "config", "--get", "remote.origin.url")
    remote = strip_credentials(remote.strip()) if remote and remote.strip() else None
    return GitState(remote=remote, branch=branch, commit=commit, dirty=dirty)


# --------------------------------------------------------------------------- snapshot


def take_snapshot(
    root: Path,
    *,
    limits: SnapshotLimits = SnapshotLimits(),
    cache_path: Path | None = None,
    always_exclude: Sequence[str] = (".targets/",),
    progress: Callable[[int, int], None] | None = None,
    symlinks: SymlinkPolicy = "follow",
    warn: Callable[[str], None] | None = None,
) -> Snapshot:
    """Snapshot ``root``: see the module docstring for what is included and why.

    Blocking; reads every included file whose cached hash is stale, and writes
    ``cache_path`` (atomically) when it learnt new hashes. ``progress(done, total)`` is
    called from this thread while hashing regular files (symlinks are not counted).
    ``symlinks`` says what happens to a symlink that resolves outside ``root``;
    ``warn(message)`` receives what the user should hear about (a skipped link, a loop);
    without it, they are issued with :func:`warnings.warn`.

    Raises :class:`SnapshotError` when ``root`` is not a folder, ``symlinks`` is not a
    policy, a symlink points outside it under the ``refuse`` policy, a file or folder
    cannot be read, or the limits are exceeded (checked before anything is hashed).
    """
    if not root.is_dir():
        raise SnapshotError(f"cannot snapshot {root}: not a folder")
    policy = _policy(str(symlinks), "symlinks")
    root_str = os.fspath(root)
    real_root = os.path.realpath(root_str)
    always = GitIgnoreSpec.from_lines([*_ALWAYS_OUT, *always_exclude])
    skip = _cache_skipper(cache_path)

    walker = Walker(root_str, real_root, always, skip, policy, limits.max_files, limits.max_bytes)
    walk = walker.run()
    if walk.escaping:
        raise SnapshotError(
            f"symlinks in {root} point outside it:\n{_listed(walk.escaping)}",
            hint=(
                "add them to .targetsignore, copy what they point to into the project, or "
                f"set {ENV_SYMLINKS}=follow (copy their content) or =skip (leave them out)"
            ),
        )
    if walk.unreadable:
        raise SnapshotError(
            f"cannot read these paths in {root}:\n{_listed(walk.unreadable)}",
            hint="fix their permissions, or add them to .targetsignore",
        )
    _check_limits(walk.found, limits, walk.followed, walk.truncated)
    for message in walk.warnings:
        if warn is not None:
            warn(message)
        else:
            warnings.warn(message, stacklevel=2)

    cached = _load_cache(cache_path, real_root) if cache_path is not None else {}
    entries, rows, hashed, changed = _hash_all(walk.found, cached, progress)
    if cache_path is not None and rows != cached:
        _save_cache(cache_path, real_root, rows)

    files = tuple(sorted(entries, key=lambda f: f.path))
    return Snapshot(
        root=root,
        files=files,
        total_size=sum(f.size for f in files),
        git=git_state(root),
        digest=_manifest_digest(files),
        hashed_files=hashed,
        # Without a cache every file is read every time: nothing is known to be new.
        changed_paths=frozenset(changed) if cache_path is not None else frozenset(),
        sources={f.path: Path(f.abspath) for f in walk.found if f.via and f.link is None} or None,
    )


def _cache_skipper(cache_path: Path | None) -> Callable[[os.DirEntry[str]], bool]:
    if cache_path is None:
        return lambda _entry: False
    real = os.path.realpath(cache_path)
    folder, name = os.path.split(real)
    tmp_prefix = f".{name}."

    def skip(entry: os.DirEntry[str]) -> bool:
        # Cheap test first: only entries whose name matches are resolved.
        if entry.name != name and not entry.name.startswith(tmp_prefix):
            return False
        return os.path.dirname(os.path.realpath(entry.path)) == folder

    return skip


def _hash_all(
    found: list[Found],
    cached: dict[str, _CacheRow],
    progress: Callable[[int, int], None] | None,
) -> tuple[list[FileEntry], dict[str, _CacheRow], int, list[str]]:
    entries: list[FileEntry] = []
    rows: dict[str, _CacheRow] = {}
    todo: list[Found] = []
    total = sum(1 for f in found if f.link is None)
    done = 0
    for f in found:
        if f.link is not None:
            entries.append(FileEntry(f.path, 0, LINK_MODE, "", f.link))
            continue
        row = cached.get(f.path)
        if row is not None and row[:4] == (f.size, f.mtime_ns, f.ctime_ns, f.ino):
            entries.append(FileEntry(f.path, f.size, f.mode, row[4]))
            rows[f.path] = row
            done += 1
        else:
            todo.append(f)
    if progress is not None:
        progress(done, total)

    racy_after = time.time_ns() - _RACY_WINDOW_NS
    failures: list[str] = []
    changed: list[str] = []  # new, or another digest than the cache had

    def one(f: Found) -> tuple[Found, str, os.stat_result] | None:
        try:
            digest, st = _hash_file(f.abspath)
        except _Unhashable as exc:
            failures.append(f"{f.path}: {exc.reason}")
            return None
        return f, digest, st

    if len(todo) >= _PARALLEL_MIN_FILES:
        # hashlib releases the GIL, so threads overlap reading and hashing.
        pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
        results: Iterable[tuple[Found, str, os.stat_result] | None] = pool.map(one, todo)
    else:
        pool = None
        results = map(one, todo)
    try:
        for result in results:
            done += 1
            if progress is not None:
                progress(done, total)
            if result is None:
                continue
            f, digest, st = result
            entries.append(FileEntry(f.path, st.st_size, mode_of(st.st_mode), digest))
            before = cached.get(f.path)
            if before is None or before[4] != digest:
                changed.append(f.path)
            if st.st_mtime_ns < racy_after:
                rows[f.path] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest)
            else:
                # Racily clean: hashed again next time (no stat matches -1), but its
                # digest is kept, so that an unchanged file does not count as changed.
                rows[f.path] = (st.st_size, _RACY_MTIME, st.st_ctime_ns, st.st_ino, digest)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise SnapshotError(
            f"cannot read these files:\n{_listed(failures)}",
            hint="fix their permissions, or add them to .targetsignore",
        )
    return entries, rows, len(todo), changed


def snapshot_file(path: Path) -> Snapshot:
    """A snapshot holding the single file ``path`` (under its own name)."""
    try:
        digest, st = _hash_file(str(path))
    except _Unhashable as exc:
        raise SnapshotError(f"cannot read {path}: {exc.reason}") from exc
    entry = FileEntry(path=path.name, size=st.st_size, mode=mode_of(st.st_mode), digest=digest)
    return Snapshot(
        root=path.parent,
        files=(entry,),
        total_size=st.st_size,
        git=None,
        digest=_manifest_digest((entry,)),
    )


def combine(main: Snapshot, extra: Mapping[str, Snapshot]) -> Snapshot:
    """``main`` plus the files of each ``extra`` snapshot under the folder named by its key
    (for example a job's inputs under ``_inputs/<name>``). The result's :meth:`source`
    finds every file; its manifest is one tree."""
    files = list(main.files)
    sources = dict(main.sources or {})
    taken = {f.path for f in files}
    for prefix, part in extra.items():
        for entry in part.files:
            path = f"{prefix.strip('/')}/{entry.path}"
            if path in taken:
                raise SnapshotError(f"{path} exists in the source directory and as an input")
            taken.add(path)
            files.append(FileEntry(path, entry.size, entry.mode, entry.digest, entry.link))
            if entry.link is None:
                sources[path] = part.source(entry.path)
    files.sort(key=lambda f: f.path)
    return Snapshot(
        root=main.root,
        files=tuple(files),
        total_size=sum(f.size for f in files),
        git=main.git,
        digest=_manifest_digest(files),
        sources=sources,
    )
