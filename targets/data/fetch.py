"""Local copies of cloud files and folders, kept in the workspace cache and kept in step.

``fetch(ws, uri)`` returns ``.targets/cache/data/<key>/file/<name>`` for a file and
``.targets/cache/data/<key>/folder`` for a folder. The first call downloads; later calls
list the remote side and download only the files whose size or ETag (else modification
time) changed, and delete the ones that are gone. When the storage cannot be reached and
a copy exists, the copy is used (offline), as for http(s) inputs.

Design choice: a copy, not a FUSE mount. Every target kind gets its inputs through the
snapshot (content-addressed, hard-linked, read-only on the target), so ``ro_mount`` and
``download`` both mean this copy; nothing needs FUSE on the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from targets._files import temporary_beside
from targets.data.uris import (
    RemoteUri,
    _azure_secret,
    needs_login,
    open_filesystem,
    translated_errors,
)
from targets.errors import ConfigError
from targets.workspace import Workspace

__all__ = ["fetch", "remote_kind"]


def _cache(ws: Workspace, remote: RemoteUri) -> Path:
    return ws.cache_dir / "data" / hashlib.sha256(remote.uri.encode()).hexdigest()[:24]


def _signature(info: dict[str, Any]) -> str:
    for key in ("etag", "ETag", "md5Hash", "content_settings"):
        value = info.get(key)
        if value and isinstance(value, str):
            return f"{info.get('size')}:{value}"
    modified = info.get("last_modified") or info.get("LastModified") or info.get("updated")
    return f"{info.get('size')}:{modified}"


def _listing(fs: Any, remote: RemoteUri) -> tuple[str, dict[str, dict[str, Any]]]:
    """("file"|"folder", relative name -> info). A file's relative name is its own."""
    try:
        info = fs.info(remote.path)
    except FileNotFoundError:
        info = None
    if info is not None and info.get("type") == "file":
        return "file", {remote.path.rsplit("/", 1)[-1]: info}
    found = fs.find(remote.path, detail=True)
    if not found:
        if info is None:
            raise FileNotFoundError(remote.path)
        return "folder", {}
    prefix = remote.path.rstrip("/") + "/"
    files = {}
    for name, detail in found.items():
        if detail.get("type", "file") != "file" or not name.startswith(prefix):
            continue
        files[name[len(prefix) :]] = detail
    return "folder", files


def _open_and_list(remote: RemoteUri) -> tuple[Any, str, dict[str, dict[str, Any]]]:
    """The file system and listing, trying anonymous access before the user's Azure login
    when no secret is in the environment (public data needs no login)."""
    fs = open_filesystem(remote)
    try:
        with translated_errors(remote):
            kind, files = _listing(fs, remote)
        return fs, kind, files
    except ConfigError as exc:
        retry = remote.protocol == "az" and not _azure_secret()
        cause = exc.__cause__
        if not retry or not (isinstance(cause, FileNotFoundError) or needs_login(cause or exc)):
            raise
    fs = open_filesystem(remote, anonymous=False)
    with translated_errors(remote):
        kind, files = _listing(fs, remote)
    return fs, kind, files


def remote_kind(remote: RemoteUri) -> str:
    """``"file"`` or ``"folder"``: what ``remote`` is (ConfigError when unreadable)."""
    return _open_and_list(remote)[1]


def fetch(ws: Workspace, remote: RemoteUri) -> Path:
    """The local copy of ``remote`` (a file or a folder), brought up to date.

    Blocks while downloading. Raises ConfigError (exit 2) naming the URI when it cannot
    be read and no earlier copy exists, MissingExtraError when the file system's package
    is not installed."""
    cache = _cache(ws, remote)
    meta_file = cache / "meta.json"
    try:
        fs, kind, files = _open_and_list(remote)
    except ConfigError as exc:
        # Offline (the host cannot be reached): use what we have. Never when the storage
        # answered: a denied or deleted file is not replaced by an old copy.
        cause = exc.__cause__
        offline = isinstance(cause, OSError) and not isinstance(
            cause, FileNotFoundError | PermissionError
        )
        if offline and meta_file.exists():
            meta = json.loads(meta_file.read_text())
            return cache / str(meta["kind"]) / str(meta.get("name", ""))
        raise
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    known: dict[str, str] = meta.get("files", {}) if meta.get("kind") == kind else {}
    root = cache / kind
    if kind == "file":
        name = next(iter(files))
        if meta.get("name") not in (None, name):
            shutil.rmtree(root, ignore_errors=True)
            known = {}
        remote_paths = {name: remote.path}
        local_root = root
    else:
        name = ""
        remote_paths = {rel: f"{remote.path}/{rel}" for rel in files}
        local_root = root
    local_root.mkdir(parents=True, exist_ok=True)
    synced: dict[str, str] = {}
    with translated_errors(remote):
        for rel, info in files.items():
            signature = _signature(info)
            target = local_root / rel
            if known.get(rel) == signature and target.is_file():
                synced[rel] = signature
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = temporary_beside(target)  # unique: two runs may fetch one URI
            os.close(fd)
            try:
                fs.get_file(remote_paths[rel], str(tmp))
                tmp.replace(target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            synced[rel] = signature
    for rel in set(known) - set(synced):  # gone on the remote side
        (local_root / rel).unlink(missing_ok=True)
    meta_file.write_text(
        json.dumps({"uri": remote.uri, "kind": kind, "name": name, "files": synced})
    )
    return local_root / name if name else local_root
