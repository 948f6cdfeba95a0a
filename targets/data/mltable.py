"""``mltable`` inputs: a folder holding an ``MLTable`` file whose ``paths`` name the data.

Each entry of ``paths`` (``file:``, ``folder:`` or ``pattern:``) is read where it points:
a relative path inside the folder stays as it is; a cloud URI (``wasbs://``, ``abfss://``,
blob ``https://``, ``s3://``, ``gs://``), an ``azureml://datastores/`` URI or a relative
path outside the folder is brought in under ``_paths/<n>/`` and the entry is rewritten to
point there. The job then gets a self-contained folder: ``mltable.load(path)`` (or any
reader of the YAML) finds every file beside the MLTable file, on any target.

Design choice: when nothing needs bringing in, the folder is shipped as it is; otherwise
a staged copy is made in ``.targets/cache/mltable/`` (hard links where possible).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from targets.errors import ConfigError
from targets.workspace import Workspace

__all__ = ["materialize_mltable"]

_GLOB = re.compile(r"[*?\[]")
_KINDS = ("file", "folder", "pattern")


def _split_pattern(value: str) -> tuple[str, str]:
    """``(folder part, glob part)`` of a pattern: the glob starts at the first component
    with a wildcard."""
    parts = value.split("/")
    for i, part in enumerate(parts):
        if _GLOB.search(part):
            return "/".join(parts[:i]), "/".join(parts[i:])
    return value, ""


def _link_tree(source: Path, target: Path) -> None:
    def link(src: str, dst: str) -> object:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return dst

    if source.is_dir():
        shutil.copytree(source, target, copy_function=link, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        link(str(source), str(target))


def materialize_mltable(
    ws: Workspace, folder: Path, locate: Callable[[str], Path | None], key_path: str
) -> Path:
    """The folder to ship for the MLTable folder ``folder``.

    ``locate(value)`` returns the local copy of a URI (fetching it), or None when the
    value is not one it knows (a relative path). Raises ConfigError (exit 2) for a
    folder without an MLTable file, an unreadable one, or a path that does not exist."""
    if folder.is_file() and folder.name == "MLTable":
        folder = folder.parent
    table = folder / "MLTable"
    if not table.is_file():
        raise ConfigError(
            f"{folder} has no MLTable file",
            key_path=key_path,
            hint="an mltable input is a folder holding a file named MLTable",
        )
    text = table.read_text()
    try:
        spec = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read {table}: {exc}", key_path=key_path) from exc
    paths = spec.get("paths") if isinstance(spec, dict) else None
    if not isinstance(paths, list):
        raise ConfigError(
            f"{table}: 'paths' must be a list of file/folder/pattern entries", key_path=key_path
        )
    inside = folder.resolve()
    staged: list[tuple[int, Path, str]] = []  # (entry index, local source, new relative value)
    rewritten: list[Any] = []
    for i, entry in enumerate(paths):
        kinds = [k for k in _KINDS if isinstance(entry, dict) and k in entry]
        if len(kinds) != 1:
            raise ConfigError(
                f"{table}: paths[{i}] needs exactly one of file, folder, pattern", key_path=key_path
            )
        kind = kinds[0]
        value = str(entry[kind])
        base, glob = _split_pattern(value) if kind == "pattern" else (value, "")
        local = locate(base) if "://" in base else None
        if local is None:
            if "://" in base:
                raise ConfigError(
                    f"{table}: paths[{i}]: {base!r} cannot be read", key_path=key_path
                )
            local = (folder / base).resolve()
            if local == inside or inside in local.parents:
                rewritten.append(entry)
                continue
        if not glob and not local.exists():
            raise ConfigError(
                f"{table}: paths[{i}]: {value} does not exist ({local})", key_path=key_path
            )
        name = local.name if kind == "file" else ""
        new_value = f"./_paths/{i}/{name}".rstrip("/") + (f"/{glob}" if glob else "")
        staged.append((i, local, f"_paths/{i}/{name}".rstrip("/")))
        rewritten.append({**entry, kind: new_value})
    if not staged:
        return folder
    digest = hashlib.sha256(
        "\n".join([str(inside), text, *(f"{i}:{src}" for i, src, _ in staged)]).encode()
    ).hexdigest()[:24]
    stage = ws.cache_dir / "mltable" / digest
    shutil.rmtree(stage, ignore_errors=True)  # rebuilt: the sources may have changed
    _link_tree(folder, stage)
    for _, source, relative in staged:
        _link_tree(source, stage / relative)
    spec["paths"] = rewritten
    (stage / "MLTable").unlink()
    (stage / "MLTable").write_text(yaml.safe_dump(spec, sort_keys=False))
    return stage
