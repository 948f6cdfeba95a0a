"""The walk behind :func:`targets.snapshot.take_snapshot`: which paths a snapshot holds.

One pass of ``os.scandir`` over the source directory decides, for each entry, in order:

1. never included: ``.git`` and ``always`` (the workspace folder), and the hash cache;
2. the ignore files (one per folder, :data:`IGNORE_FILES`), git's semantics: the deepest
   file with an opinion on a path decides;
3. when no ignore file has an opinion: the default exclusions, folders named in
   :data:`DEFAULT_EXCLUDED_DIRS` and any folder holding a virtual environment
   (``pyvenv.cfg``) or a conda environment (``conda-meta/``). An ignore file's ``!pattern``
   therefore brings them back, as if the defaults were the first lines of the root's file;
4. for a symlink, the :data:`SymlinkPolicy` when it resolves outside the root.

Design choice: environments are recognised by their marker, not their name. ``env/`` is
a common name for source code, and ``.venv-3.12/`` or ``conda-env/`` are common names for
environments; the marker is what every venv and conda tool writes. An environment holds
machine-specific absolute symlinks and thousands of files, and is never what a run needs
on another machine: the target builds its own from the runconfig.

Followed symlinks (policy ``follow``) are copied: a file's content is read through the
resolved path, a folder is walked under the link's name with the same rules. Loops are cut
by remembering the real path of every folder on the way down (a folder is never entered
inside itself), and the walk stops following links as soon as the limits are exceeded, so
a link to ``/`` or ``$HOME`` ends in a limit error naming the link instead of a long walk.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pathspec import GitIgnoreSpec

#: Ignore file names, highest precedence first; one per folder is used.
IGNORE_FILES: tuple[str, ...] = (".targetsignore", ".amlignore", ".gitignore")

#: Folders left out by name unless an ignore file includes them again with ``!``.
DEFAULT_EXCLUDED_DIRS: tuple[str, ...] = (
    "__pycache__",
    "node_modules",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
)

#: What to do with a symlink that resolves outside the root.
SymlinkPolicy = Literal["follow", "skip", "refuse"]
SYMLINK_POLICIES: tuple[SymlinkPolicy, ...] = ("follow", "skip", "refuse")
ENV_SYMLINKS = "TARGETS_SNAPSHOT_SYMLINKS"

LINK_MODE = 0o644

_Chain = tuple[tuple[str, GitIgnoreSpec], ...]


@dataclass(slots=True)
class Found:
    path: str  # in the snapshot, POSIX, relative to the root
    abspath: str  # where the content is read (the resolved path for followed links)
    size: int
    mode: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    link: str | None
    via: str | None = None  # the outside symlink this was copied through


@dataclass(slots=True)
class Walk:
    found: list[Found] = field(default_factory=list)
    escaping: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    followed: dict[str, str] = field(default_factory=dict)  # link path -> resolved path
    size: int = 0
    truncated: bool = False  # stopped following links: the limits were exceeded


@dataclass(frozen=True, slots=True)
class _Dir:
    path: str  # where it is listed (the resolved path inside a followed link)
    rel: str  # its path in the snapshot: "" or ending in "/"
    real: str  # its real path, inside a followed link only ("" elsewhere)
    chain: _Chain
    ancestors: frozenset[str]  # real paths of the followed folders down to this one
    via: str | None  # the outside symlink it was reached through
    check_env: bool  # left out when it holds an environment (no ignore file decided)


def mode_of(st_mode: int) -> int:
    return 0o755 if st_mode & stat.S_IXUSR else 0o644


def _within(path: str, real_root: str) -> bool:
    prefix = real_root if real_root.endswith(os.sep) else real_root + os.sep
    return path == real_root or path.startswith(prefix)


def _opinion(chain: _Chain, probe: str) -> bool | None:
    """True: excluded; False: included by a ``!pattern``; None: no ignore file matches."""
    for base, spec in reversed(chain):
        check = spec.check_file(probe[len(base) :])
        if check.include is not None:
            return bool(check.include)
    return None


def _matcher(spec: GitIgnoreSpec) -> Callable[[str], bool]:
    """``spec.match_file`` for paths as the walk makes them ('/'-separated, relative): one
    regular expression for all of its patterns when none is a negation (then "excluded"
    is "any pattern matches"), instead of pathspec's loop over patterns and path
    normalisation, which ran once per file of the project. Any other spec: its own."""
    import re

    patterns = [p for p in spec.patterns if p.include is not None]
    regexes = [r for r in (getattr(p, "regex", None) for p in patterns) if r is not None]
    if not patterns or any(not p.include for p in patterns) or len(regexes) < len(patterns):
        return spec.match_file
    try:
        # Named groups (pathspec's ``ps_d``) would clash once joined: make them plain.
        named = re.compile(r"[(][?]P<\w+>")
        parts = ["(?:" + named.sub("(?:", r.pattern) + ")" for r in regexes]
        joined = re.compile("|".join(parts))
    except (re.error, AttributeError, TypeError):
        return spec.match_file
    match = joined.match
    return lambda path: match(path) is not None


def _holds_environment(names: dict[str, os.DirEntry[str]]) -> bool:
    if "pyvenv.cfg" in names:
        return True
    meta = names.get("conda-meta")
    return meta is not None and meta.is_dir()


def _is_environment(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "pyvenv.cfg")) or os.path.isdir(
        os.path.join(path, "conda-meta")
    )


class Walker:
    """One walk of ``root``; :meth:`run` returns what it found. Reads the file system only."""

    def __init__(
        self,
        root: str,
        real_root: str,
        always: GitIgnoreSpec,
        skip: Callable[[os.DirEntry[str]], bool],
        policy: SymlinkPolicy,
        max_files: int,
        max_bytes: int,
    ) -> None:
        self.root = root
        self.real_root = real_root
        self.always = always
        self.skip = skip
        self.policy = policy
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.out = Walk()
        self.stack: list[_Dir] = []
        self.match_always = _matcher(always)

    def _over(self) -> bool:
        return len(self.out.found) > self.max_files or self.out.size > self.max_bytes

    def run(self) -> Walk:
        self.stack.append(
            _Dir(self.root, "", self.real_root, (), frozenset([self.real_root]), None, False)
        )
        while self.stack:
            folder = self.stack.pop()
            if folder.via is not None and self._over():
                self.out.truncated = True
                continue
            self._folder(folder)
        return self.out

    def _folder(self, folder: _Dir) -> None:
        rel = folder.rel
        try:
            with os.scandir(folder.path) as it:
                entries = {e.name: e for e in it}
        except OSError as exc:
            self.out.unreadable.append(f"{rel or './'}: {exc.strerror or exc}")
            return
        if folder.check_env and _holds_environment(entries):
            return  # a virtual or conda environment: left out by default
        chain = folder.chain
        spec = self._ignore_spec(folder.path, rel, entries)
        if spec is not None:
            chain = (*chain, (rel, spec))
        # Locals: this loop runs once per entry of the project.
        skip, match_always, found, via = (
            self.skip,
            self.match_always,
            self.out.found,
            folder.via,
        )
        for entry in entries.values():
            relpath = rel + entry.name
            if skip(entry):
                continue
            if entry.is_symlink():
                if not match_always(relpath) and not _opinion(chain, relpath):
                    self._symlink(entry, folder, chain, relpath)
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            probe = relpath + "/" if is_dir else relpath
            if match_always(probe):
                continue
            opinion = _opinion(chain, probe) if chain else None
            if opinion:
                continue
            if is_dir:
                if opinion is None and entry.name in DEFAULT_EXCLUDED_DIRS:
                    continue
                # Only folders reached through an outside link can be reached twice.
                real = folder.real + os.sep + entry.name if via is not None else ""
                ancestors = folder.ancestors | {real} if via is not None else folder.ancestors
                self.stack.append(
                    _Dir(entry.path, probe, real, chain, ancestors, via, opinion is None)
                )
            elif entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    self.out.unreadable.append(f"{relpath}: {exc.strerror or exc}")
                    continue
                found.append(
                    Found(
                        relpath,
                        entry.path,
                        st.st_size,
                        mode_of(st.st_mode),
                        st.st_mtime_ns,
                        st.st_ctime_ns,
                        st.st_ino,
                        None,
                        via,
                    )
                )
                self.out.size += st.st_size
            # Anything else (socket, FIFO, device) cannot be shipped: left out.

    def _followed_file(self, path: str, relpath: str, via: str) -> None:
        try:
            st = os.stat(path)
        except OSError as exc:
            self.out.unreadable.append(f"{relpath}: {exc.strerror or exc}")
            return
        self.out.found.append(
            Found(
                relpath,
                path,
                st.st_size,
                mode_of(st.st_mode),
                st.st_mtime_ns,
                st.st_ctime_ns,
                st.st_ino,
                None,
                via,
            )
        )
        self.out.size += st.st_size

    def _ignore_spec(
        self, folder: str, rel: str, entries: dict[str, os.DirEntry[str]]
    ) -> GitIgnoreSpec | None:
        for name in IGNORE_FILES:
            if name in entries:
                path = os.path.join(folder, name)
                try:
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        return GitIgnoreSpec.from_lines(fh.read().splitlines())
                except OSError as exc:
                    self.out.unreadable.append(f"{rel}{name}: {exc.strerror or exc}")
                    return None
        return None

    def _symlink(self, entry: os.DirEntry[str], folder: _Dir, chain: _Chain, relpath: str) -> None:
        try:
            written = os.readlink(entry.path)
        except OSError as exc:
            self.out.unreadable.append(f"{relpath}: {exc.strerror or exc}")
            return
        resolved = os.path.realpath(entry.path)
        if _within(resolved, self.real_root):
            self._inside_link(written, resolved, folder, relpath)
            return
        try:
            st: os.stat_result | None = os.stat(resolved)
        except OSError:
            st = None  # dangling, or a loop of links
        is_dir = st is not None and stat.S_ISDIR(st.st_mode)
        if is_dir:
            # Ignore rules for folders (``data/``) apply to a link that would be copied as one.
            probe = relpath + "/"
            opinion = _opinion(chain, probe)
            if self.match_always(probe) or opinion:
                return
            if opinion is None and (
                entry.name in DEFAULT_EXCLUDED_DIRS or _is_environment(resolved)
            ):
                return
        shown = f"{relpath} -> {written}"
        if self.policy == "refuse":
            self.out.escaping.append(f"{shown} (resolves to {resolved})")
        elif self.policy == "skip":
            self.out.warnings.append(
                f"{shown} points outside the project: left out ({ENV_SYMLINKS}=skip)"
            )
        elif st is None or not (is_dir or stat.S_ISREG(st.st_mode)):
            self.out.warnings.append(
                f"{shown} points outside the project to nothing that can be copied: "
                "sent as a link, as it is"
            )
            self._add_link(relpath, written.replace(os.sep, "/"), folder.via)
        elif folder.via is not None and self._over():
            self.out.truncated = True
        else:
            via = folder.via or relpath
            self.out.followed.setdefault(via, resolved)
            if not is_dir:
                self._followed_file(resolved, relpath, via)
            elif resolved in folder.ancestors:
                self.out.warnings.append(
                    f"{shown} leads back into a folder that holds it (a symlink loop): left out"
                )
            else:
                ancestors = folder.ancestors | {resolved}
                self.stack.append(
                    _Dir(resolved, relpath + "/", resolved, chain, ancestors, via, False)
                )

    def _inside_link(self, written: str, resolved: str, folder: _Dir, relpath: str) -> None:
        link = written.replace(os.sep, "/")
        rel = folder.rel.rstrip("/")
        lexical = posixpath.normpath(posixpath.join(rel, link))
        # Rewrite so the link still works wherever the snapshot is materialised. Inside a
        # copied folder, ``written`` is relative to where that folder really is: rewrite too.
        if (
            os.path.isabs(written)
            or lexical == ".."
            or lexical.startswith("../")
            or folder.via is not None
        ):
            target_rel = os.path.relpath(resolved, self.real_root).replace(os.sep, "/")
            link = posixpath.relpath(target_rel, rel or ".")
        self._add_link(relpath, link, folder.via)

    def _add_link(self, relpath: str, link: str, via: str | None) -> None:
        self.out.found.append(Found(relpath, relpath, 0, LINK_MODE, 0, 0, 0, link, via))
