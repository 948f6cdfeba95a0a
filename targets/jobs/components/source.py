"""Finding a component's YAML from the reference a job gives.

- ``./train.yml``, ``train.yml``, ``file:./train.yml``: that file, relative to the file
  holding the reference;
- a mapping (``component: {type: command, ...}``): an inline component;
- ``azureml:NAME:VERSION``, ``azureml:NAME@latest``: registered in the workspace
  (``targets components create``, :mod:`targets.jobs.components.store`);
- ``azureml://registries/R/components/NAME/versions/V`` (or ``/labels/latest``, or no
  suffix): a local registry folder, ``ROOT/R/components/NAME/V.yml``, where ROOT is each
  folder of ``TARGETS_REGISTRY_PATH`` (``os.pathsep``-separated), then the workspace's
  ``.targets/registries``.

A registry component that is not there is refused (ConfigError, exit code 2) with the
exact file to create. Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from targets.errors import ConfigError
from targets.jobs.components.model import CommandComponent, Component, PipelineComponent
from targets.runconfig.files import read_text
from targets.runconfig.problems import describe_value, raise_problems, validation_problems
from targets.runconfig.yaml_lines import KeyPath, YamlDocument, parse_yaml
from targets.workspace import Workspace

if TYPE_CHECKING:
    from targets.jobs.spark_component import SparkComponent

__all__ = [
    "REGISTRY_PATH_VARIABLE",
    "LoadedComponent",
    "load_component",
    "load_component_file",
    "registry_roots",
    "version_key",
]

REGISTRY_PATH_VARIABLE = "TARGETS_REGISTRY_PATH"
"""Folders (``os.pathsep``-separated) holding local copies of registries' components."""

FILE_PREFIX = "file:"
READ_ONLY_KEYS = ("$schema", "id", "creation_context", "latest_version")
_WORKSPACE_REF = re.compile(
    r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))$"
)
_REGISTRY_REF = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/components/(?P<name>[^/]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+))?/?$"
)


@dataclass(frozen=True, slots=True)
class LoadedComponent:
    """A component and where it came from: ``folder`` is what its local paths (``code``,
    ``conda_file``, a data input's default) are relative to; ``doc`` locates its keys
    (None for an inline component, whose keys are located in the job file)."""

    component: Component | SparkComponent
    raw: dict[str, Any]
    folder: Path
    label: str
    doc: YamlDocument | None = None
    prefix: KeyPath = field(default=())

    @property
    def title(self) -> str:
        """How messages name it: ``component 'train' (./train.yml)``."""
        name = self.component.name
        return f"component {name!r} ({self.label})" if name else f"component {self.label}"


def version_key(version: str) -> tuple[bool, tuple[int, ...], str]:
    """Sort key for versions: numeric ones (``2`` < ``10``, ``1.2.0`` < ``1.10``) last."""
    parts = version.split(".")
    numeric = all(p.isdigit() for p in parts)
    return numeric, tuple(int(p) for p in parts) if numeric else (), version


def registry_roots(workspace: Workspace | None) -> list[Path]:
    roots = [
        Path(p).expanduser()
        for p in os.environ.get(REGISTRY_PATH_VARIABLE, "").split(os.pathsep)
        if p
    ]
    if workspace is not None:
        roots.append(workspace.dir / "registries")
    return roots


def load_component_file(path: Path, label: str | None = None) -> LoadedComponent:
    """Read and validate the component YAML at ``path`` (ConfigError when invalid)."""
    doc = parse_yaml(read_text(path, "component"), path)
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else describe_value(doc.data)
        raise ConfigError(f"expected a mapping of component keys, got {got}", path=str(path))
    return _validated(doc.data, path.parent, label or str(path), doc, (), path)


def _validated(
    data: dict[str, Any],
    folder: Path,
    label: str,
    doc: YamlDocument | None,
    prefix: KeyPath,
    path: Path,
    locate: Callable[[KeyPath], tuple[Path, KeyPath, int | None]] | None = None,
) -> LoadedComponent:
    raw = {k: v for k, v in data.items() if k not in READ_ONLY_KEYS}
    kind = raw.get("type", "command")
    if "type" not in raw and ("nodes" in raw or path.name == "flow.dag.yaml"):
        raise ConfigError(
            "prompt flow components (flow.dag.yaml) are not supported: targets runs "
            "command, pipeline and spark components",
            path=str(path),
            hint="run the flow with prompt flow's own tools (pf flow test), or replace "
            "the step by a command component",
        )
    model: type[CommandComponent] | type[PipelineComponent] | type[SparkComponent]
    if kind in (None, "command"):
        model = CommandComponent
    elif kind == "pipeline":
        model = PipelineComponent
    elif kind == "spark":  # targets.jobs.spark_component
        from targets.jobs.spark_component import SparkComponent

        model = SparkComponent
    else:
        where = (*prefix, "type")
        file, shown, line = (
            locate(where) if locate else (path, where, doc.line_of(where) if doc else None)
        )
        raise ConfigError(
            f"{kind!r} components are not supported: targets runs command, pipeline and spark "
            "components",
            path=str(file),
            line=line,
            key_path=".".join(str(k) for k in shown) or None,
        )
    try:
        component = model.model_validate(raw)
    except ValidationError as exc:

        def here(key_path: KeyPath) -> tuple[Path, KeyPath, int | None]:
            full = (*prefix, *key_path)
            if locate is not None:
                return locate(full)
            return path, full, doc.line_of(full) if doc else None

        raise_problems(validation_problems(exc, model, raw, here), path)
        raise  # unreachable
    return LoadedComponent(component, raw, folder, label, doc, prefix)


def load_component(
    reference: Any,
    folder: Path,
    *,
    workspace: Callable[[], Workspace | None],
    error: Callable[..., ConfigError],
    key_path: KeyPath,
    locate: Callable[[KeyPath], tuple[Path, KeyPath, int | None]],
    job_file: Path,
) -> LoadedComponent:
    """The component a ``component:`` (or a sweep's ``trial:``) value names.

    ``folder``: what a relative file reference is relative to; ``workspace()`` gives the
    workspace for registered components (None: none found); ``error(message, key_path,
    hint=...)`` makes a located ConfigError for the reference itself."""
    if isinstance(reference, dict):
        return _validated(reference, folder, "inline", None, key_path, job_file, locate)
    if not isinstance(reference, str) or not reference.strip():
        raise error(
            f"expected a component file path, azureml:NAME:VERSION or a mapping, got "
            f"{describe_value(reference)}",
            key_path,
        )
    text = reference.strip()
    if text.startswith("azureml://registries/"):
        return _from_registry(text, workspace(), error, key_path)
    if text.startswith("azureml:"):
        found = _WORKSPACE_REF.match(text)
        if not found:
            raise error(
                f"component reference {text!r} is not understood",
                key_path,
                hint="write azureml:NAME:VERSION or azureml:NAME@latest",
            )
        from targets.jobs.components.store import get_component

        ws = workspace()
        if ws is None:
            raise error(
                f"{text!r} names a registered component, but no workspace was found", key_path
            )
        version = found.group("version") or found.group("label")
        try:
            return get_component(ws, found.group("name"), version)
        except ConfigError as exc:
            raise error(exc.args[0] if exc.args else str(exc), key_path, hint=exc.hint) from exc
    if "://" in text:
        raise error(
            f"component reference {text!r} is not understood: targets reads component files, "
            "azureml:NAME:VERSION and azureml://registries/R/components/NAME/versions/V",
            key_path,
        )
    relative = text[len(FILE_PREFIX) :].strip() if text.startswith(FILE_PREFIX) else text
    target = (folder / Path(relative).expanduser()).resolve()
    if not target.is_file():
        raise error(
            f"component file {text!r} not found (resolved to {target}; paths are relative "
            "to the file that holds them)",
            key_path,
        )
    return load_component_file(target, label=relative)


def _from_registry(
    text: str,
    ws: Workspace | None,
    error: Callable[..., ConfigError],
    key_path: KeyPath,
) -> LoadedComponent:
    found = _REGISTRY_REF.match(text)
    if not found:
        raise error(
            f"registry component reference {text!r} is not understood",
            key_path,
            hint="write azureml://registries/R/components/NAME/versions/V or .../labels/latest",
        )
    registry, name = found.group("registry"), found.group("name")
    version, label = found.group("version"), found.group("label")
    if label not in (None, "latest"):
        raise error(f"label {label!r}: targets knows only the label 'latest'", key_path)
    roots = registry_roots(ws)
    for root in roots:
        folder = root / registry / "components" / name
        if version is not None:
            candidate = folder / f"{version}.yml"
            if candidate.is_file():
                return load_component_file(candidate, label=text)
        elif folder.is_dir():
            versions = sorted(
                (p for p in folder.glob("*.yml") if not p.name.endswith(".conda.yml")),
                key=lambda p: version_key(p.stem),
            )
            if versions:
                return load_component_file(versions[-1], label=text)
    where = roots[-1] if roots else Path(".targets/registries")
    wanted = where / registry / "components" / name / f"{version or '<version>'}.yml"
    searched = ", ".join(str(r) for r in roots) or "none"
    raise error(
        f"the registry component {name!r}"
        + (f" version {version!r}" if version else "")
        + f" of registry {registry!r} is not available here: targets does not download "
        f"from Azure ML registries (searched: {searched})",
        key_path,
        hint=f"save the component's YAML as {wanted} (its code folder beside it), or in a "
        f"folder named by {REGISTRY_PATH_VARIABLE}",
    )
