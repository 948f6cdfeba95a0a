"""Workspace assets that v2 jobs refer to: datastores and registered environments.

- A **datastore** is a name for a local or mounted folder (``targets datastores add NAME
  --path DIR``); ``azureml://datastores/NAME/paths/P`` then means ``DIR/P``. Kept in
  ``.targets/datastores.yml``.
- A **registered environment** is an Azure ML v2 environment YAML (``name``, ``version``,
  ``image`` and/or ``conda_file``) registered with ``targets envs create --file env.yml``;
  ``azureml:NAME:VERSION`` and ``azureml:NAME@latest`` resolve to it. Kept in
  ``.targets/environments/NAME/VERSION.yml`` with the conda file copied beside it.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from targets.errors import ConfigError, UsageError
from targets.workspace import Workspace

__all__ = [
    "RegisteredEnvironment",
    "add_datastore",
    "datastores",
    "find_environment",
    "get_environment",
    "list_environments",
    "register_environment",
    "resolve_datastore_uri",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_DATASTORE_URI = re.compile(r"^azureml://datastores/(?P<name>[^/]+)/paths/(?P<path>.*)$")


def _datastores_file(ws: Workspace) -> Path:
    return ws.dir / "datastores.yml"


def datastores(ws: Workspace) -> dict[str, Path]:
    path = _datastores_file(ws)
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {str(k): Path(v["path"]) for k, v in (data.get("datastores") or {}).items()}


def add_datastore(ws: Workspace, name: str, folder: Path) -> None:
    if not _NAME.match(name):
        raise UsageError(f"invalid datastore name {name!r}: use letters, digits, '.', '_', '-'")
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder", hint="give a local or mounted folder")
    current = {k: {"path": str(v)} for k, v in datastores(ws).items()}
    current[name] = {"path": str(folder)}
    ws.ensure()
    _datastores_file(ws).write_text(
        "# Datastores for azureml://datastores/NAME/paths/... (targets datastores add)\n"
        + yaml.safe_dump({"datastores": current}, sort_keys=True)
    )


def resolve_datastore_uri(ws: Workspace, uri: str) -> Path:
    """The local path an ``azureml://datastores/NAME/paths/P`` URI stands for."""
    found = _DATASTORE_URI.match(uri)
    if not found:
        raise ConfigError(f"{uri!r} is not an azureml://datastores/NAME/paths/PATH URI")
    name = found.group("name")
    stores = datastores(ws)
    if name not in stores:
        known = ", ".join(sorted(stores)) or "none"
        raise ConfigError(
            f"the datastore {name!r} is not registered in this workspace (registered: {known})",
            hint=f"targets datastores add {name} --path /folder/holding/the/data",
        )
    return stores[name] / found.group("path")


@dataclass(frozen=True, slots=True)
class RegisteredEnvironment:
    name: str
    version: str
    image: str | None
    conda_file: Path | None
    description: str | None
    path: Path


def _env_root(ws: Workspace) -> Path:
    return ws.dir / "environments"


def register_environment(ws: Workspace, file: Path) -> RegisteredEnvironment:
    """Register the v2 environment YAML ``file`` (``name`` required; ``version`` defaults
    to one more than the latest)."""
    from targets.runconfig.io import load_yaml_file

    data = load_yaml_file(file, "environment")
    if not isinstance(data, dict):
        raise ConfigError("an environment file is a mapping", path=str(file))
    allowed = {
        "$schema",
        "name",
        "version",
        "image",
        "conda_file",
        "description",
        "tags",
        "os_type",
        "build",
    }
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}", path=str(file), key_path=unknown[0])
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            "the environment needs a name (letters, digits, '.', '_', '-')",
            path=str(file),
            key_path="name",
        )
    if not data.get("image") and not data.get("conda_file"):
        raise ConfigError("give an image, a conda_file, or both", path=str(file))
    if data.get("build"):
        raise ConfigError(
            "build contexts are not supported; use image and conda_file",
            path=str(file),
            key_path="build",
        )
    existing = [e.version for e in list_environments(ws) if e.name == name]
    version = str(
        data.get("version") or (max((int(v) for v in existing if v.isdigit()), default=0) + 1)
    )
    folder = _env_root(ws) / name
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"name": name, "version": version}
    for key in ("image", "description"):
        if data.get(key):
            record[key] = str(data[key])
    conda = data.get("conda_file")
    if isinstance(conda, str):
        source = (file.parent / conda).resolve()
        if not source.is_file():
            raise ConfigError(
                f"the conda file {conda!r} does not exist", path=str(file), key_path="conda_file"
            )
        target = folder / f"{version}.conda.yml"
        shutil.copyfile(source, target)
        record["conda_file"] = target.name
    elif isinstance(conda, dict):
        target = folder / f"{version}.conda.yml"
        target.write_text(yaml.safe_dump(conda, sort_keys=False))
        record["conda_file"] = target.name
    (folder / f"{version}.yml").write_text(yaml.safe_dump(record, sort_keys=False))
    return get_environment(ws, name, version)


def list_environments(ws: Workspace) -> list[RegisteredEnvironment]:
    found = []
    root = _env_root(ws)
    for path in sorted(root.glob("*/*.yml")) if root.is_dir() else ():
        if path.name.endswith(".conda.yml"):
            continue
        data = yaml.safe_load(path.read_text()) or {}
        conda = data.get("conda_file")
        found.append(
            RegisteredEnvironment(
                name=str(data["name"]),
                version=str(data["version"]),
                image=data.get("image"),
                conda_file=path.parent / conda if conda else None,
                description=data.get("description"),
                path=path,
            )
        )
    return found


def get_environment(ws: Workspace, name: str, version: str | None) -> RegisteredEnvironment:
    """``version`` None or ``"latest"``: the highest version. Raises ConfigError when
    there is none (v2 jobs look further, in the curated catalogue: see
    :mod:`targets.jobs.job_environment`)."""
    found = find_environment(ws, name, version)
    if found is None:
        what = f"{name}:{version}" if version not in (None, "latest") else name
        raise ConfigError(
            f"the environment {what!r} is not registered in this workspace",
            hint="write an environment YAML (name, version, image and/or conda_file) and "
            "register it: targets envs create --file env.yml",
        )
    return found


def find_environment(ws: Workspace, name: str, version: str | None) -> RegisteredEnvironment | None:
    """The registered environment ``name`` (``version`` None or ``"latest"``: the highest
    version), or None."""
    candidates = [e for e in list_environments(ws) if e.name == name]
    if version not in (None, "latest"):
        candidates = [e for e in candidates if e.version == version]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda e: (
            e.version.isdigit(),
            int(e.version) if e.version.isdigit() else 0,
            e.version,
        ),
    )
