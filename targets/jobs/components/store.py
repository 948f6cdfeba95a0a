"""Components registered in the workspace (``targets components create --file F``), the
sibling of registered environments (:mod:`targets.assets`).

Registering takes a copy, as Azure ML does: ``.targets/components/NAME/VERSION/`` holds
``component.yml`` with the component's local ``code`` copied to ``code/`` and an inline
environment's conda file copied beside it, so later edits to the project do not change a
registered version. A pipeline component's steps are copied the same way, each local
component they use stored in ``jobs/<step>/`` (recursively). ``azureml:NAME:VERSION`` and
``azureml:NAME@latest`` resolve here.
"""

from __future__ import annotations

import copy
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from targets.errors import ConfigError, UsageError
from targets.jobs.components.expand import looks_like_component
from targets.jobs.components.model import PipelineComponent
from targets.jobs.components.source import (
    FILE_PREFIX,
    LoadedComponent,
    _validated,
    load_component_file,
    version_key,
)
from targets.workspace import Workspace

__all__ = [
    "RegisteredComponent",
    "get_component",
    "list_components",
    "register_component",
]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
_IGNORED = shutil.ignore_patterns("__pycache__", ".git", ".targets", "*.pyc")
COMPONENT_FILE = "component.yml"


@dataclass(frozen=True, slots=True)
class RegisteredComponent:
    name: str
    version: str
    type: str
    display_name: str | None
    description: str | None
    path: Path
    """The stored ``component.yml``."""


def _root(ws: Workspace) -> Path:
    return ws.dir / "components"


def _is_remote(value: str) -> bool:
    return value.startswith("azureml:") or "://" in value or value.startswith("git+")


def register_component(
    ws: Workspace, file: Path, *, version: str | None = None
) -> RegisteredComponent:
    """Register the component YAML ``file``, a command or a pipeline component (``name``
    required; ``version``: the option, else the file's, else one more than the latest
    registered). A copy is stored: the code, conda files and build contexts it names,
    and for a pipeline component every local component its steps use (each in
    ``jobs/<step>/``, recursively), so later edits to the project change nothing
    registered. Steps that name ``azureml:`` components keep naming them. Raises
    UsageError or ConfigError (exit 2) before anything is stored."""
    file = file.expanduser().resolve()
    if not file.is_file():
        raise UsageError(f"component file {str(file)!r} not found")
    loaded = load_component_file(file)
    component = loaded.component
    name = component.name
    if not name or not _NAME.match(name):
        raise ConfigError(
            "a component needs a name to be registered (letters, digits, '_', '.', '-')",
            path=str(file),
            key_path="name",
        )
    existing = [c.version for c in list_components(ws) if c.name == name]
    chosen = version or component.version
    if chosen is None:
        numbers = [int(v) for v in existing if v.isdigit()]
        chosen = str(max(numbers, default=0) + 1)
    if not _NAME.match(chosen):
        raise UsageError(f"invalid version {chosen!r}: use letters, digits, '_', '.', '-'")
    if chosen in existing:
        raise UsageError(
            f"component {name}:{chosen} is registered already",
            hint="give the component a new version (version: in the file, or --version)",
        )
    ws.ensure()
    folder = _root(ws) / name / chosen
    staging = folder.with_name(f".{chosen}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _store(loaded, staging, file, {"name": name, "version": chosen})
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _record(folder / COMPONENT_FILE)


def _store(
    loaded: LoadedComponent, into: Path, file: Path, header: dict[str, Any] | None = None
) -> None:
    """Write ``loaded`` as ``into/component.yml`` with copies of the local files it names
    (paths in the copy relative to ``into``), and check that the copy reads back."""
    raw: dict[str, Any] = {**dict(loaded.raw), **(header or {})}
    if isinstance(loaded.component, PipelineComponent):
        raw["jobs"] = {
            step: _store_step(step, node, loaded, into / "jobs" / step, file)
            for step, node in loaded.component.jobs.items()
        }
    else:
        _copy_body(raw, loaded.folder, into, file, "")
    _copy_defaults(raw, loaded, into, file)
    (into / COMPONENT_FILE).write_text(
        "# Registered with targets components create\n"
        + yaml.safe_dump(_plain(raw), sort_keys=False)
    )
    load_component_file(into / COMPONENT_FILE)  # what is stored reads back


def _local_file_reference(value: Any) -> str | None:
    """The relative path a ``component:``/``trial:`` string names, or None when it is
    not a local file (``azureml:``, a registry, a mapping)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith(FILE_PREFIX):
        return text[len(FILE_PREFIX) :].strip()
    return None if _is_remote(text) else text


def _store_component_reference(
    value: Any, base: Path, into: Path, file: Path, key_path: str, *, trial: bool = False
) -> Any:
    """A step's ``component:`` (or with ``trial``, a sweep step's ``trial:``) for the
    stored copy: a local file or an inline component is stored in ``into`` and named by
    its path there; an ``azureml:`` reference, and an inline trial body (not a
    component), are returned as they are."""
    relative = _local_file_reference(value)
    if relative is not None:
        source = (base / Path(relative).expanduser()).resolve()
        if not source.is_file():
            raise ConfigError(
                f"component file {relative!r} not found (resolved to {source})",
                path=str(file),
                key_path=key_path,
            )
        inner = load_component_file(source)
    elif isinstance(value, dict) and (not trial or looks_like_component(value)):
        inner = _validated(value, base, "inline", None, (), file)
    else:
        return value
    into.mkdir(parents=True, exist_ok=True)
    _store(inner, into, file)
    return f"./{into.parent.name}/{into.name}/{COMPONENT_FILE}"


def _store_step(step: str, node: Any, loaded: LoadedComponent, into: Path, file: Path) -> Any:
    """One step of a pipeline component, for the stored copy (``into``: its folder)."""
    if not isinstance(node, dict):
        return node
    node = copy.deepcopy(node)
    where = f"jobs.{step}"
    prefix = f"jobs/{step}/"
    if "component" in node:
        node["component"] = _store_component_reference(
            node["component"], loaded.folder, into, file, f"{where}.component"
        )
    trial = node.get("trial")
    if trial is not None:
        stored = _store_component_reference(
            trial, loaded.folder, into, file, f"{where}.trial", trial=True
        )
        if isinstance(stored, dict):  # an inline trial: its own code and environment
            stored = dict(stored)
            _copy_body(stored, loaded.folder, into, file, prefix)
        node["trial"] = stored
    if "command" in node or isinstance(node.get("environment"), dict):
        _copy_body(node, loaded.folder, into, file, prefix)  # its own code, environment
    inputs = node.get("inputs")
    if isinstance(inputs, dict):
        for port, value in inputs.items():
            path = value.get("path") if isinstance(value, dict) else None
            if isinstance(path, str) and "${{" not in path and not _is_remote(path):
                copied = _copy_path(loaded.folder, path, into / "inputs" / port, file, where)
                inputs[port] = {**value, "path": f"./{prefix}inputs/{port}/{copied}"}
    return node


def _copy_path(base: Path, relative: str, into: Path, file: Path, key_path: str) -> str:
    """Copy the local file or folder ``relative`` (to ``base``) into the folder ``into``;
    return the name it has there."""
    source = (base / Path(relative).expanduser()).resolve()
    if not source.exists():
        raise ConfigError(
            f"{relative!r} not found (resolved to {source})", path=str(file), key_path=key_path
        )
    into.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, into / source.name, ignore=_IGNORED, symlinks=False)
    else:
        shutil.copy2(source, into / source.name)
    return source.name


def _copy_defaults(raw: dict[str, Any], loaded: LoadedComponent, into: Path, file: Path) -> None:
    """A data input's local default path is copied too (``defaults/<input>/``)."""
    inputs = raw.get("inputs")
    if not isinstance(inputs, dict):
        return
    for port, decl in loaded.component.inputs.items():
        default = decl.default
        if not decl.is_asset or not isinstance(default, str) or _is_remote(default):
            continue
        copied = _copy_path(
            loaded.folder, default, into / "defaults" / port, file, f"inputs.{port}.default"
        )
        inputs[port] = {**dict(inputs[port]), "default": f"./defaults/{port}/{copied}"}


def _copy_body(raw: dict[str, Any], base: Path, into: Path, file: Path, prefix: str) -> None:
    """Copy, in place, a command body's local ``code``, conda file and build context
    (relative to ``base``) into ``into``; ``prefix`` is ``into`` relative to the stored
    component file."""
    code = raw.get("code")
    if isinstance(code, str) and not _is_remote(code):
        source = (base / code).resolve()
        if not source.exists():
            raise ConfigError(
                f"code path {code!r} not found (resolved to {source})",
                path=str(file),
                key_path="code",
            )
        if source.is_dir():
            shutil.copytree(source, into / "code", ignore=_IGNORED, symlinks=False)
        else:
            (into / "code").mkdir(parents=True)
            shutil.copy2(source, into / "code" / source.name)
        raw["code"] = f"./{prefix}code"
    environment = raw.get("environment")
    if isinstance(environment, dict):
        environment = dict(environment)
        conda = environment.get("conda_file")
        if isinstance(conda, str):
            source = (base / conda).resolve()
            if not source.is_file():
                raise ConfigError(
                    f"the conda file {conda!r} does not exist",
                    path=str(file),
                    key_path="environment.conda_file",
                )
            into.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, into / "conda.yml")
            environment["conda_file"] = f"./{prefix}conda.yml"
        build = environment.get("build")
        path = build.get("path") if isinstance(build, dict) else None
        if isinstance(build, dict) and isinstance(path, str) and not _is_remote(path):
            shutil.copytree((base / path).resolve(), into / "build", ignore=_IGNORED)
            environment["build"] = {**build, "path": f"./{prefix}build"}
        raw["environment"] = environment


def _plain(value: Any) -> Any:
    """Plain Python values (the YAML reader's numbers keep their text as a subclass)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _record(path: Path) -> RegisteredComponent:
    data = yaml.safe_load(path.read_text()) or {}
    return RegisteredComponent(
        name=str(data.get("name")),
        version=str(data.get("version")),
        type=str(data.get("type") or "command"),
        display_name=data.get("display_name"),
        description=data.get("description"),
        path=path,
    )


def list_components(ws: Workspace, name: str | None = None) -> list[RegisteredComponent]:
    """Registered components by name, then version (oldest first)."""
    root = _root(ws)
    if not root.is_dir():
        return []
    found = [
        _record(p) for p in root.glob(f"*/*/{COMPONENT_FILE}") if not p.parent.name.startswith(".")
    ]
    if name is not None:
        found = [c for c in found if c.name == name]
    return sorted(found, key=lambda c: (c.name, version_key(c.version)))


def get_component(ws: Workspace, name: str, version: str | None) -> LoadedComponent:
    """``version`` None or ``latest``: the highest registered version."""
    candidates = list_components(ws, name)
    if version not in (None, "latest"):
        candidates = [c for c in candidates if c.version == version]
    if not candidates:
        others = sorted({c.name for c in list_components(ws)})
        what = f"{name}:{version}" if version not in (None, "latest") else name
        known = ", ".join(f"{c.name}:{c.version}" for c in list_components(ws, name))
        raise ConfigError(
            f"the component {what!r} is not registered in this workspace"
            + (f" (registered versions: {known})" if known else "")
            + (f" (registered components: {', '.join(others)})" if others and not known else ""),
            hint="register it from its YAML: targets components create --file component.yml",
        )
    chosen = candidates[-1]
    return load_component_file(chosen.path, label=f"azureml:{chosen.name}:{chosen.version}")
