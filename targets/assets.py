"""Workspace assets that v2 jobs refer to: datastores and registered environments.

- A **datastore** is a name for a local or mounted folder (``targets datastores add NAME
  --path DIR``); ``azureml://datastores/NAME/paths/P`` then means ``DIR/P``. Kept in
  ``.targets/datastores.yml``.
- A **registered environment** is an Azure ML v2 environment YAML (``name``, ``version``,
  ``image`` and/or ``conda_file``) registered with ``targets envs create --file env.yml``;
  ``azureml:NAME:VERSION`` and ``azureml:NAME@latest`` resolve to it. Kept in
  ``.targets/environments/NAME/VERSION.yml`` with the conda file copied beside it.
- A registered environment with a Docker **build context** (``build: {path,
  dockerfile_path}``) keeps a copy of the context folder in
  ``.targets/environments/NAME/VERSION.build/``, so that editing or deleting the source
  folder later does not change the registered version (as Azure ML uploads it). Jobs that
  name it build that copy exactly as an inline ``environment.build``
  (:mod:`targets.jobs.job_environment`).
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
    build: Path | None = None
    """The stored copy of the build context folder."""
    dockerfile_path: str = "Dockerfile"
    """The Dockerfile's path inside :attr:`build`."""


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
    build = _build_section(file, data)
    if build is None and not data.get("image") and not data.get("conda_file"):
        raise ConfigError(
            "give an image, a conda_file, or both; or a build context (build: {path: FOLDER})",
            path=str(file),
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
    if build is not None:
        source, dockerfile = build
        stored = folder / f"{version}.build"
        if stored.exists():
            shutil.rmtree(stored)
        shutil.copytree(source, stored, symlinks=True)
        record["build"] = {"path": stored.name, "dockerfile_path": dockerfile}
    (folder / f"{version}.yml").write_text(yaml.safe_dump(record, sort_keys=False))
    return get_environment(ws, name, version)


def _build_section(file: Path, data: dict[str, Any]) -> tuple[Path, str] | None:
    """(source folder, Dockerfile path inside it) of the file's ``build:``, checked; None
    without one. ConfigError (exit 2) naming what is wrong, before anything is stored."""
    build = data.get("build")
    if build is None:
        return None
    if not isinstance(build, dict) or not isinstance(build.get("path"), str):
        raise ConfigError(
            "build is a mapping with the context folder as path (build: {path: FOLDER})",
            path=str(file),
            key_path="build",
        )
    unknown = sorted(set(build) - {"path", "dockerfile_path"})
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r}", path=str(file), key_path=f"build.{unknown[0]}"
        )
    if data.get("image") or data.get("conda_file"):
        raise ConfigError(
            "an environment with a build context gives no image or conda_file: its "
            "Dockerfile makes the image",
            path=str(file),
            key_path="build",
        )
    context = build["path"]
    if "://" in context or context.startswith(("azureml:", "git+", "git@")):
        raise ConfigError(
            f"the build context {context!r} is not a local folder: targets registers "
            "contexts from folders on this machine",
            path=str(file),
            key_path="build.path",
            hint=f"clone or download it (e.g. git clone {context} docker-context) and point "
            "build.path at that folder",
        )
    folder = (file.parent / Path(context).expanduser()).resolve()
    if not folder.is_dir():
        raise ConfigError(
            f"the build context {context!r} is not a folder (looked for {folder})",
            path=str(file),
            key_path="build.path",
        )
    dockerfile = Path(str(build.get("dockerfile_path") or "Dockerfile").replace("\\", "/"))
    relative = dockerfile.as_posix().lstrip("/")
    if not (folder / relative).is_file():
        raise ConfigError(
            f"the build context {context!r} has no {relative} (looked for {folder / relative})",
            path=str(file),
            key_path="build.dockerfile_path",
        )
    return folder, relative


def list_environments(ws: Workspace) -> list[RegisteredEnvironment]:
    found = []
    root = _env_root(ws)
    for path in sorted(root.glob("*/*.yml")) if root.is_dir() else ():
        if path.name.endswith(".conda.yml") or not path.is_file():
            continue
        data = yaml.safe_load(path.read_text()) or {}
        conda = data.get("conda_file")
        build = data.get("build") or {}
        found.append(
            RegisteredEnvironment(
                name=str(data["name"]),
                version=str(data["version"]),
                image=data.get("image"),
                conda_file=path.parent / conda if conda else None,
                description=data.get("description"),
                path=path,
                build=path.parent / build["path"] if build.get("path") else None,
                dockerfile_path=str(build.get("dockerfile_path") or "Dockerfile"),
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
