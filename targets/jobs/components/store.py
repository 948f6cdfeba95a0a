"""Components registered in the workspace (``targets components create --file F``), the
sibling of registered environments (:mod:`targets.assets`).

Registering takes a copy, as Azure ML does: ``.targets/components/NAME/VERSION/`` holds
``component.yml`` with the component's local ``code`` copied to ``code/`` and an inline
environment's conda file copied beside it, so later edits to the project do not change a
registered version. ``azureml:NAME:VERSION`` and ``azureml:NAME@latest`` resolve here.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from targets.errors import ConfigError, UsageError
from targets.jobs.components.model import CommandComponent
from targets.jobs.components.source import LoadedComponent, load_component_file, version_key
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
    """Register the command component YAML ``file`` (``name`` required; ``version``: the
    option, else the file's, else one more than the latest registered)."""
    file = file.expanduser().resolve()
    if not file.is_file():
        raise UsageError(f"component file {str(file)!r} not found")
    loaded = load_component_file(file)
    component = loaded.component
    if not isinstance(component, CommandComponent):
        raise ConfigError(
            "only command components can be registered here; a pipeline component's steps "
            "refer to files: register each command component and use it by name",
            path=str(file),
            key_path="type",
        )
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
        raw: dict[str, Any] = dict(loaded.raw)
        raw["name"], raw["version"] = name, chosen
        code = raw.get("code")
        if isinstance(code, str) and not _is_remote(code):
            source = (loaded.folder / code).resolve()
            if not source.exists():
                raise ConfigError(
                    f"code path {code!r} not found (resolved to {source})",
                    path=str(file),
                    key_path="code",
                )
            if source.is_dir():
                shutil.copytree(source, staging / "code", ignore=_IGNORED, symlinks=False)
            else:
                (staging / "code").mkdir()
                shutil.copy2(source, staging / "code" / source.name)
            raw["code"] = "./code"
        environment = raw.get("environment")
        if isinstance(environment, dict):
            environment = dict(environment)
            conda = environment.get("conda_file")
            if isinstance(conda, str):
                source = (loaded.folder / conda).resolve()
                if not source.is_file():
                    raise ConfigError(
                        f"the conda file {conda!r} does not exist",
                        path=str(file),
                        key_path="environment.conda_file",
                    )
                shutil.copyfile(source, staging / "conda.yml")
                environment["conda_file"] = "./conda.yml"
            build = environment.get("build")
            path = build.get("path") if isinstance(build, dict) else None
            if isinstance(build, dict) and isinstance(path, str) and not _is_remote(path):
                shutil.copytree(
                    (loaded.folder / path).resolve(), staging / "build", ignore=_IGNORED
                )
                environment["build"] = {**build, "path": "./build"}
            raw["environment"] = environment
        (staging / COMPONENT_FILE).write_text(
            "# Registered with targets components create\n"
            + yaml.safe_dump(_plain(raw), sort_keys=False)
        )
        load_component_file(staging / COMPONENT_FILE)  # what is stored reads back
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _record(folder / COMPONENT_FILE)


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
