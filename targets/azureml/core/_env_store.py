"""Registered environments for ``Environment.register/get/list``: the workspace's one
store of environments, shared with Azure ML v2 references.

An environment registered from Python lands where ``targets envs create`` puts a v2
environment YAML (:mod:`targets.assets`): ``.targets/environments/<name>/<version>.yml``
holds ``name``, ``version``, ``image`` (when Docker is enabled) and ``conda_file`` (a
``<version>.conda.yml`` beside it), so a v2 job's ``environment: azureml:<name>:<version>``
finds it too. The same record keeps the whole v1 definition under ``targets_environment``
(interpreter, environment variables, Docker settings ...), which ``Environment.get``
gives back unchanged; a v2-registered environment is rebuilt from its image and conda
file.

Versions are ``1``, ``2``, ... per name. Registering a definition equal to the latest
version returns that version instead of adding one, as Azure ML does. Writers take a lock
per name, every file is written atomically, and the folder is private (0700).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from targets._private import private_dir
from targets.errors import ConfigError, UsageError
from targets.runconfig.conda import load_conda_file
from targets.runconfig.files import write_text_atomically
from targets.runconfig.yaml_lines import dump_yaml
from targets.workspace import Workspace

if TYPE_CHECKING:
    from targets.assets import RegisteredEnvironment
    from targets.experiment import Environment

__all__ = ["RECORD_KEY", "get_registered", "latest_registered", "register"]

RECORD_KEY = "targets_environment"
"""The key of the v1 definition in a registered environment's record."""


def _root(ws: Workspace) -> Path:
    return ws.dir / "environments"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def _definition(env: Environment) -> dict[str, Any]:
    """The part of the definition that makes a version (name and version left out)."""
    return env.model_dump(mode="json", exclude={"name", "version"}, exclude_defaults=True)


def _numeric(version: str) -> int:
    return int(version) if version.isdigit() else 0


def register(ws: Workspace, env: Environment) -> Environment:
    """Store ``env`` as the next version of its name; returns the stored copy (with
    ``version`` set). Refuses a missing or reserved name (UsageError) before writing."""
    from targets.assets import _NAME, list_environments
    from targets.azureml.core._curated import is_reserved_name

    name = env.name
    if not name or not _NAME.match(name):
        raise UsageError(
            f"cannot register an environment named {name!r}",
            hint="give it a name of letters, digits, '.', '_' and '-': Environment('my-env')",
        )
    if is_reserved_name(name):
        raise UsageError(
            f"the environment name {name!r} starts with a prefix Azure ML keeps for its "
            "curated environments (AzureML, Microsoft)",
            hint="choose another name, e.g. " + repr("my-" + name),
        )
    stored = env.model_copy(deep=True)
    python = stored.python
    if python.conda_dependencies_file:
        # The file is read now: a registered environment must not depend on the folder
        # it was registered from.
        python.conda_dependencies = load_conda_file(Path(python.conda_dependencies_file))
        python.conda_dependencies_file = None
    ws.ensure()
    folder = private_dir(private_dir(_root(ws)) / name)
    with _locked(folder):
        existing = [e for e in list_environments(ws) if e.name == name]
        latest = max(existing, key=lambda e: _numeric(e.version), default=None)
        if latest is not None:
            previous = _environment_of(latest)
            if _definition(previous) == _definition(stored):
                return previous
        version = str(max((_numeric(e.version) for e in existing), default=0) + 1)
        stored.version = version
        record: dict[str, Any] = {"name": name, "version": version}
        docker = stored.docker
        if docker.enabled and docker.base_image:
            record["image"] = docker.base_image
        if python.conda_dependencies is not None and not python.user_managed_dependencies:
            conda_file = folder / f"{version}.conda.yml"
            conda = python.conda_dependencies.model_dump(mode="json", exclude_defaults=True)
            write_text_atomically(conda_file, dump_yaml(conda))
            record["conda_file"] = conda_file.name
        record[RECORD_KEY] = stored.model_dump(mode="json", exclude_defaults=True)
        write_text_atomically(folder / f"{version}.yml", dump_yaml(record))
    return stored


def _environment_of(registered: RegisteredEnvironment) -> Environment:
    """The v1 Environment of a stored record (v1's own definition, or one rebuilt from a
    v2 record's image and conda file)."""
    from targets.experiment import Environment

    try:
        data = yaml.safe_load(registered.path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot read the registered environment {registered.name}:{registered.version}: {exc}",
            path=str(registered.path),
        ) from exc
    definition = data.get(RECORD_KEY)
    if isinstance(definition, dict):
        env = Environment.model_validate(definition)
    else:
        env = Environment(registered.name)
        if registered.image:
            env.docker.enabled = True
            env.docker.base_image = registered.image
        if registered.conda_file is not None:
            env.python.conda_dependencies = load_conda_file(registered.conda_file)
    env.name = registered.name
    env.version = registered.version
    return env


def get_registered(ws: Workspace, name: str, version: str | None) -> Environment | None:
    """The registered environment ``name`` at ``version`` (None or ``latest``: the
    highest), or None when there is none."""
    from targets.assets import list_environments

    candidates = [e for e in list_environments(ws) if e.name == name]
    if version not in (None, "latest"):
        candidates = [e for e in candidates if e.version == str(version)]
    if not candidates:
        return None
    return _environment_of(max(candidates, key=lambda e: (_numeric(e.version), e.version)))


def latest_registered(ws: Workspace) -> dict[str, Environment]:
    """The highest version of every registered environment, by name."""
    from targets.assets import list_environments

    best: dict[str, RegisteredEnvironment] = {}
    for entry in list_environments(ws):
        current = best.get(entry.name)
        if current is None or _numeric(entry.version) > _numeric(current.version):
            best[entry.name] = entry
    return {name: _environment_of(entry) for name, entry in sorted(best.items())}
