"""What a run needs from its target, checked before the run is queued.

Two things a real Azure ML v1 file asks for that a target may not have, each found out
here (exit code 2, nothing written or sent) instead of during environment preparation on
the target, after the run was queued:

- **The Python version** a conda file pins (``python=3.6.2``): a managed environment is
  built from an interpreter of that major.minor found on the target (PATH, pyenv, uv's
  interpreters; see :func:`targets.agent.envs.find_pythons`) or installed by conda there.
  When there is none, the run is refused with the versions the target has. The run's
  variable ``TARGETS_PYTHON_VERSION`` (``targets run --python-version``) overrides the
  pin: ``nearest`` takes the nearest version of the same major the target has, ``X.Y``
  that version; either with a warning.
- **A usable Docker engine** for ``environment.docker.enabled: true``. When the target has
  none, the run is refused naming the way out: ``TARGETS_NO_DOCKER=1`` among the run's
  variables (``targets run --no-docker``) sets the Docker section aside and builds the
  same conda environment with conda or uv on the target, with a warning.

Design choice: both overrides are run variables (like ``TARGETS_AZUREML_REAL``), not new
runconfig keys, so that they can be written into every format the run can come from
unchanged (an Azure ML v1 ``.runconfig``'s ``environmentVariables``, our runconfig, a v2
job's ``environment_variables``, ``RunConfiguration.environment_variables`` from Python),
and the run records the choice with its configuration.

The interpreters of a target are asked once and kept in ``.targets/cache/pythons/`` for
an hour; a version that is not in the kept list is asked again before a run is refused,
so a refusal is never based on an old answer.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

from targets.errors import TargetsError, UsageError

if TYPE_CHECKING:
    from targets.agent.protocol import PythonsFound
    from targets.compute.base import ComputeTarget
    from targets.environments import EnvironmentSpec
    from targets.runconfig.model import RunConfiguration
    from targets.workspace import Workspace

__all__ = [
    "NO_DOCKER",
    "PYTHON_VERSION",
    "PreflightWarning",
    "checked_python",
    "run_variable",
    "valid_python_setting",
    "without_docker",
]

NO_DOCKER = "TARGETS_NO_DOCKER"
"""Run variable: ``1`` sets ``environment.docker`` aside (``targets run --no-docker``)."""
PYTHON_VERSION = "TARGETS_PYTHON_VERSION"
"""Run variable: ``nearest`` or ``X.Y`` instead of the conda file's Python version
(``targets run --python-version``)."""
NEAREST = "nearest"
CACHE_SECONDS = 3600.0
"""How long a target's list of interpreters is reused."""

_VERSION = re.compile(r"^\d+\.\d+$")
_TRUE = ("1", "true", "yes", "on")


class PreflightWarning(UserWarning):
    """A run's environment was changed by an override (no Docker, another Python)."""


def run_variable(config: RunConfiguration, name: str) -> str | None:
    """The run's variable ``name`` (``environment_variables`` wins over the older
    ``environment.environment_variables``), stripped; None when unset."""
    for variables in (config.environment_variables, config.environment.environment_variables):
        value = variables.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def without_docker(
    target: ComputeTarget,
    config: RunConfiguration,
    warn: Callable[[str], None] | None = None,
) -> RunConfiguration:
    """``config``, or a copy without its Docker section when the run asks for that
    (:data:`NO_DOCKER`). Without the setting, a Docker run on a target whose engine is
    unusable raises UsageError (exit 2) naming the setting; for that, an agent target is
    asked (one round trip). Other runs are returned as they are, without I/O."""
    docker = config.environment.docker
    if not docker.enabled:
        return config
    setting = run_variable(config, NO_DOCKER)
    if setting is not None and setting.lower() not in (*_TRUE, "0", "false", "no", "off"):
        raise UsageError(f"{NO_DOCKER}={setting!r}: give 1 (run without Docker) or 0")
    if setting is None or setting.lower() not in _TRUE:
        error = _docker_unusable(target, config)
        if error is None:
            return config
        raise UsageError(
            f"target {target.name!r} cannot run this Docker environment "
            f"(image {docker.base_image or 'from base_dockerfile'}): {error}",
            hint="run the same environment without Docker, built with conda or uv on the "
            f"target: `targets run ... --no-docker`, or {NO_DOCKER}: 1 among the run "
            "configuration's environment variables; or make Docker usable there",
        )
    if docker.base_dockerfile:
        raise UsageError(
            f"{NO_DOCKER} cannot apply: the environment is a Docker build context (its "
            "Dockerfile), which runs only in the image it builds",
            hint="make Docker usable on the target, or give the run a conda file instead",
        )
    plain = config.model_copy(deep=True)
    plain.environment.docker.enabled = False
    from targets.environments import is_user_managed

    where, missing = (
        ("in the target's default Python (the run has no conda dependencies)", "")
        if is_user_managed(plain)
        else (
            "in an environment built from its conda dependencies with conda or uv",
            " that the conda file does not name",
        )
    )
    _warn(
        warn,
        f"[no-docker] environment.docker (image {docker.base_image or 'from base_dockerfile'}) "
        f"is set aside ({NO_DOCKER}): the run goes {where} on {target.name!r}; what the "
        f"image held{missing} is not there",
    )
    return plain


def _docker_unusable(target: ComputeTarget, config: RunConfiguration) -> str | None:
    from targets.compute._agent import AgentError, AgentTarget

    if not isinstance(target, AgentTarget):
        return None  # other kinds check Docker themselves when they start the run
    try:
        found = target.agent().docker_check(target.docker_driver, config.environment.docker.gpu)
    except AgentError:
        return None  # an agent that cannot tell: the submission checks again
    return None if found.get("ok") else str(found.get("error") or "Docker is not usable")


def checked_python(
    workspace: Workspace,
    target: ComputeTarget,
    config: RunConfiguration,
    environment: EnvironmentSpec,
    warn: Callable[[str], None] | None = None,
) -> EnvironmentSpec:
    """``environment`` with a Python version the target can build it with.

    Applies to a managed environment outside Docker that pins a version: the target is
    asked for its interpreters (cached, see the module docstring). A version it has, or
    a target with conda (which installs any version), keeps the spec as it is. Otherwise
    :data:`PYTHON_VERSION` decides (``nearest``, or ``X.Y``; the spec then names that
    version and the caller is warned); without it, UsageError (exit 2) lists the versions
    the target has and names the setting. Targets that cannot be asked (not agent-based)
    are trusted: their preparation reports a missing version as before."""
    setting = run_variable(config, PYTHON_VERSION)
    if setting is not None and not valid_python_setting(setting):
        raise UsageError(
            f"{PYTHON_VERSION}={setting!r} is not a Python version",
            hint=f"give {NEAREST} (the nearest version the target has) or major.minor, e.g. 3.8",
        )
    pinned = environment.python_version
    if not environment.managed or environment.docker is not None or pinned is None:
        return environment
    wanted = pinned
    if setting is not None and setting.lower() != NEAREST:
        wanted = setting
    found = _interpreters(workspace, target, wanted)
    if found is None or found.get("conda") or wanted in _versions(found):
        return _using(environment, pinned, wanted, warn, target.name)
    have = _versions(found)
    nearest = _nearest(wanted, have)
    if setting is not None and setting.lower() == NEAREST and nearest is not None:
        return _using(environment, pinned, nearest, warn, target.name)
    listed = ", ".join(have) or "none"
    if nearest is None:
        accept = f"change `python=` in the conda file to one of: {listed}"
    else:
        accept = (
            f"accept the nearest version it has ({nearest}) with `targets run ... "
            f"--python-version nearest`, or {PYTHON_VERSION}: nearest among the run "
            "configuration's environment variables"
        )
    raise UsageError(
        f"the run's environment needs Python {wanted}, which target {target.name!r} does "
        f"not have (it has: {listed}; no conda there to install it)",
        hint=f"install Python {wanted} on the target (pyenv install {wanted}, uv python "
        f"install {wanted}, or conda), or {accept}",
    )


def valid_python_setting(value: str) -> bool:
    """Is ``value`` a :data:`PYTHON_VERSION` setting (``nearest`` or major.minor)?"""
    return value.strip().lower() == NEAREST or _VERSION.match(value.strip()) is not None


def _using(
    environment: EnvironmentSpec,
    pinned: str,
    version: str,
    warn: Callable[[str], None] | None,
    target_name: str,
) -> EnvironmentSpec:
    if version == pinned:
        return environment
    _warn(
        warn,
        f"[python-version] the conda file pins Python {pinned}; the environment is built with "
        f"Python {version} on {target_name!r} ({PYTHON_VERSION}). Packages pinned for "
        f"{pinned} may not install or behave the same",
    )
    packages = tuple(
        f"python={version}" if _is_python(spec) else spec for spec in environment.conda_packages
    )
    return replace(environment, python_version=version, conda_packages=packages)


def _is_python(conda_spec: str) -> bool:
    text = conda_spec.split("::", 1)[-1].strip().lower()
    return re.match(r"python(?![A-Za-z0-9_.-])", text) is not None


def _versions(found: PythonsFound) -> list[str]:
    """The major.minor versions in ``found``, oldest first."""
    versions = {".".join(p["version"].split(".")[:2]) for p in found["pythons"]}
    return sorted(versions, key=_key)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _nearest(wanted: str, have: list[str]) -> str | None:
    """The version of ``have`` with the same major nearest to ``wanted``; on a tie the
    newer one."""
    major, minor = _key(wanted)[:2]
    same = [v for v in have if _key(v)[0] == major]
    if not same:
        return None
    return min(same, key=lambda v: (abs(_key(v)[1] - minor), -_key(v)[1]))


def _interpreters(workspace: Workspace, target: ComputeTarget, wanted: str) -> PythonsFound | None:
    """What the target has: the cached answer when it is recent and holds ``wanted``,
    else a fresh one (kept when it holds ``wanted``). None when the target cannot be
    asked."""
    from targets.compute._agent import AgentTarget

    if not isinstance(target, AgentTarget):
        return None
    cache = workspace.cache_dir / "pythons" / f"{target.name}.json"
    kept = _read_cache(cache)
    if kept is not None and (kept.get("conda") or wanted in _versions(kept)):
        return kept
    try:
        found = target.agent().pythons()
    except TargetsError:
        return None  # e.g. an agent of another version: preparation reports it as before
    if (found.get("conda") or wanted in _versions(found)) and workspace.dir.is_dir():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"at": time.time(), "found": found}))
        tmp.replace(cache)
    return found


def _read_cache(path: Path) -> PythonsFound | None:
    try:
        raw = json.loads(path.read_text())
        if time.time() - float(raw["at"]) > CACHE_SECONDS:
            return None
        found = raw["found"]
        if not isinstance(found, dict) or not isinstance(found.get("pythons"), list):
            return None
        return cast("PythonsFound", found)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _warn(warn: Callable[[str], None] | None, message: str) -> None:
    if warn is not None:
        warn(message)
    else:
        warnings.warn(message, PreflightWarning, stacklevel=3)
