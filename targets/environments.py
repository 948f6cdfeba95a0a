"""Which Python environment a run needs: a normalised, hashable :class:`EnvironmentSpec`.

:func:`resolve_environment` reads a :class:`~targets.runconfig.model.RunConfiguration`
(and the conda file it names) into an :class:`EnvironmentSpec`. The spec travels to the
target as JSON (:meth:`EnvironmentSpec.to_json` plus ``"hash"``), where the agent
(:mod:`targets.agent.envs`) builds it once into ``<root>/envs/<hash>/`` and reuses it.

The rules, in order:

- ``user_managed_dependencies: true`` -> user-managed: the run uses ``interpreter_path``
  (or the target's default Python; on the local target, the Python of the user's shell:
  an active virtualenv or conda env, then PATH) as it is; nothing is built.
- System-managed with a conda file (``conda_dependencies_file``, relative to the source
  directory) or inline ``conda_dependencies`` -> managed: an isolated environment built
  from that spec.
- System-managed with no conda dependencies at all -> user-managed with the default
  interpreter. Design choice: this is what Azure ML CLI v2 does for a job without an
  environment, and building an empty environment would only hide the user's packages.

Azure ML's own packages that only give a training script ``Run`` (``azureml-core``,
``azureml-defaults``, ``azureml-mlflow``, ``azureml-sdk``, ``azureml-train``,
``azureml-train-core``) are left out of a managed environment: the run library that the
agent ships stands in for them (``RUN_LIBRARY_REPLACES``; ``azureml-mlflow`` becomes the
``mlflow-skinny`` it would have brought). The caller is told with a
:class:`RunLibraryWarning`, and the hash is that of the environment actually built. The
run keeps them with ``TARGETS_AZUREML_REAL=1`` among its environment variables.

A bad conda file (missing, bad YAML, a malformed spec like ``numpy==``, an item that is
neither a string nor a ``pip:`` block, an unsupported pip option) raises
:class:`~targets.errors.ConfigError` (exit code 2) before anything runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.agent.envs import describe_spec
from targets.errors import ConfigError, UsageError
from targets.runconfig.conda import load_conda_file
from targets.runconfig.model import CondaSpec, PipBlock, RunConfiguration

__all__ = [
    "RUN_LIBRARY_REPLACES",
    "EnvironmentSpec",
    "RunLibraryWarning",
    "is_user_managed",
    "keeps_real_sdk",
    "resolve_environment",
    "use_interpreter",
]

RUN_LIBRARY_REPLACES = (
    "azureml-core",
    "azureml-defaults",
    "azureml-mlflow",
    "azureml-sdk",
    "azureml-train",
    "azureml-train-core",
)
"""Distributions a training script needs only for ``azureml.core.Run``: the run library
stands in for them. Not replaced: data and model packages with code of their own
(``azureml-dataprep``, ``azureml-opendatasets``, ``azureml-automl-*``...), which stay
importable next to the run library."""
KEEP_REAL_SDK = "TARGETS_AZUREML_REAL"


class RunLibraryWarning(UserWarning):
    """Azure ML packages of a run's environment were replaced by the run library."""


HASH_LENGTH = 16
"""Hex digits of the environment hash. 64 bits make a collision between one user's
environments practically impossible, and short paths matter: conda prefixes end up in
shebang lines, which are limited to about 127 characters."""

_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_VERSION = r"[A-Za-z0-9_.*+!]+"
_OP = r"(?:==|>=|<=|!=|~=|>|<|=)"
_CLAUSE = rf"{_OP}?\s*{_VERSION}(?:\s*[,|]\s*{_OP}?\s*{_VERSION})*"
_BUILD = r"[A-Za-z0-9_.*+]+"
_CONDA_SPEC = re.compile(
    rf"^(?:[^\s:]+::)?{_NAME}"
    rf"(?:\[[^\]]*\])?"  # bracket form: numpy[version='>=1.2']
    rf"(?:\s*{_OP}\s*{_VERSION}(?:\s*[,|]\s*{_OP}?\s*{_VERSION})*(?:={_BUILD})?"
    rf"|\s+{_CLAUSE}(?:\s+{_BUILD})?)?$"
)
_PIP_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_OPTION = re.compile(r"^(-{1,2}[A-Za-z][A-Za-z-]*)(?:[=\s]\s*(.*))?$")
_DANGLING_OPERATOR = re.compile(r"(===|==|>=|<=|!=|~=|>|<)\s*(,|;|$)")

# pip options the builders understand, with their short spellings.
_VALUE_OPTIONS = {
    "--index-url": "--index-url",
    "-i": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "--find-links": "--find-links",
    "-f": "--find-links",
    "--trusted-host": "--trusted-host",
}
_FLAG_OPTIONS = {"--no-index", "--pre"}
_REQUIREMENT_OPTIONS = {"-r", "--requirement"}


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    """The environment one run needs, as written by the user.

    ``conda_packages`` holds the conda specs as written, including the ``python`` spec
    (``python=3.11.4``: a conda builder installs exactly that) but without a bare ``pip``
    (builders add it when there are pip packages). ``python_version`` is its major.minor
    (``"3.11"``), which is what a venv builder asks for. ``pip_options`` are normalised
    ``"--opt value"`` strings (``--index-url``, ``--extra-index-url``, ``--find-links``,
    ``--trusted-host``, ``--no-index``, ``--pre``).
    """

    managed: bool
    interpreter: str | None
    python_version: str | None
    channels: tuple[str, ...]
    conda_packages: tuple[str, ...]
    pip_packages: tuple[str, ...]
    pip_options: tuple[str, ...]
    variables: tuple[tuple[str, str], ...]
    docker: dict[str, Any] | None = None

    @property
    def hash(self) -> str:
        """Hex digest of the normalised spec: the same environment written differently
        (reordered packages, spacing, name case, ``numpy_x`` vs ``numpy-x`` on PyPI) gives
        the same hash. Channel and pip-option order is kept: it changes which package
        wins."""
        canonical = json.dumps(self._normalised(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]

    def _normalised(self) -> dict[str, Any]:
        if not self.managed:
            return {"managed": False, "interpreter": self.interpreter, "docker": self.docker}
        return {
            "managed": True,
            "python_version": self.python_version,
            "channels": _unique(c.strip() for c in self.channels),
            "conda_packages": sorted(set(map(_normalise_conda, self.conda_packages))),
            "pip_packages": sorted(set(map(_normalise_pip, self.pip_packages))),
            "pip_options": _unique(_normalise_option(o) for o in self.pip_options),
            "variables": sorted({k.strip(): v for k, v in self.variables}.items()),
            "docker": self.docker,
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (without ``hash``; the caller adds it for the agent)."""
        return {
            "managed": self.managed,
            "interpreter": self.interpreter,
            "python_version": self.python_version,
            "channels": list(self.channels),
            "conda_packages": list(self.conda_packages),
            "pip_packages": list(self.pip_packages),
            "pip_options": list(self.pip_options),
            "variables": [list(pair) for pair in self.variables],
            "docker": self.docker,
        }

    @classmethod
    def from_json(cls, raw: Any) -> EnvironmentSpec:
        """Rebuild a spec from :meth:`to_json` output (an extra ``hash`` key is ignored).
        Raises ValueError when ``raw`` does not have that shape."""
        if not isinstance(raw, dict):
            raise ValueError("an environment spec must be a JSON object")
        try:
            variables = tuple((str(k), str(v)) for k, v in raw.get("variables") or [])
            docker = raw.get("docker")
            if docker is not None and not isinstance(docker, dict):
                raise ValueError("docker must be an object or null")
            return cls(
                managed=bool(raw["managed"]),
                interpreter=_opt_str(raw.get("interpreter")),
                python_version=_opt_str(raw.get("python_version")),
                channels=_str_tuple(raw.get("channels")),
                conda_packages=_str_tuple(raw.get("conda_packages")),
                pip_packages=_str_tuple(raw.get("pip_packages")),
                pip_options=_str_tuple(raw.get("pip_options")),
                variables=variables,
                docker=docker,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an environment spec: {exc}") from exc

    def describe(self) -> str:
        """One line for listings, e.g. ``python 3.11; conda: numpy=1.26; pip: torch``."""
        return describe_spec(self.to_json())


def resolve_environment(
    config: RunConfiguration,
    source_dir: Path,
    warn: Callable[[str], None] | None = None,
) -> EnvironmentSpec:
    """The environment ``config`` needs. Reads the conda file (relative to
    ``source_dir``) if there is one; otherwise no I/O. Raises ConfigError for a bad
    conda file or spec, or a Docker section that names both or neither of
    ``base_image`` and ``base_dockerfile``. Azure ML packages the run library replaces
    are left out and reported through ``warn`` (else a :class:`RunLibraryWarning`)."""
    spec = _python_environment(config, source_dir)
    if spec.managed and not keeps_real_sdk(config, spec):
        spec = _replace_azureml(spec, warn)
    docker = config.environment.docker
    if not docker.enabled:
        return spec
    if docker.base_image and docker.base_dockerfile:
        raise ConfigError(
            "give either base_image or base_dockerfile, not both",
            key_path="environment.docker",
        )
    if not docker.base_image and not docker.base_dockerfile:
        raise ConfigError(
            "docker.enabled is true but no image is named",
            key_path="environment.docker.base_image",
            hint="set base_image (e.g. python:3.11-slim) or base_dockerfile (the Dockerfile text)",
        )
    registry = docker.base_image_registry
    image: dict[str, Any] = {
        "base_image": docker.base_image,
        "base_dockerfile": docker.base_dockerfile,
        "registry": registry.model_dump() if registry and registry.address else None,
    }
    return dataclasses.replace(spec, docker=image)


def keeps_real_sdk(config: RunConfiguration, spec: EnvironmentSpec | None = None) -> bool:
    """Does the run ask for the real Azure ML SDK (``TARGETS_AZUREML_REAL=1`` among its
    variables: the runconfig's, the environment's, or the conda file's)?"""
    variables = dict(spec.variables if spec is not None else ())
    variables.update(config.environment.environment_variables)
    variables.update(config.environment_variables)
    return str(variables.get(KEEP_REAL_SDK, "")).strip().lower() in ("1", "true", "yes")


def _replace_azureml(spec: EnvironmentSpec, warn: Callable[[str], None] | None) -> EnvironmentSpec:
    def replaced(name: str) -> bool:
        return re.sub(r"[-_.]+", "-", name.lower()) in RUN_LIBRARY_REPLACES

    pip_names = [_pip_name(p) for p in spec.pip_packages]
    dropped_pip = [p for p, n in zip(spec.pip_packages, pip_names, strict=True) if replaced(n)]
    dropped_conda = [c for c in spec.conda_packages if replaced(_conda_name(c))]
    if not dropped_pip and not dropped_conda:
        return spec
    pip = [p for p, n in zip(spec.pip_packages, pip_names, strict=True) if not replaced(n)]
    dropped_names = [_pip_name(p) for p in dropped_pip] + [_conda_name(c) for c in dropped_conda]
    mlflow_added = ""
    wants_mlflow = any(re.sub(r"[-_.]+", "-", n.lower()) == "azureml-mlflow" for n in dropped_names)
    has_mlflow = {"mlflow", "mlflow-skinny"} & {
        re.sub(r"[-_.]+", "-", n.lower())
        for n in [*pip_names, *(_conda_name(c) for c in spec.conda_packages)]
    }
    if wants_mlflow and not has_mlflow:
        pip.append("mlflow-skinny")
        mlflow_added = "; mlflow-skinny is installed in place of azureml-mlflow"
    message = (
        f"[azureml-replaced] {', '.join(dropped_names)}: not installed; the targets run "
        f"library stands in for them (Run.get_context() and run.log work unchanged)"
        f"{mlflow_added}. To install the real packages, set {KEEP_REAL_SDK}=1 among the "
        f"run's environment_variables"
    )
    if warn is not None:
        warn(message)
    else:
        warnings.warn(message, RunLibraryWarning, stacklevel=3)
    return dataclasses.replace(
        spec,
        pip_packages=tuple(pip),
        conda_packages=tuple(c for c in spec.conda_packages if c not in dropped_conda),
    )


def _pip_name(requirement: str) -> str:
    found = _PIP_NAME.match(requirement)
    return found.group(1) if found else requirement


def is_user_managed(config: RunConfiguration) -> bool:
    """Does ``config`` run in a Python the user manages (nothing is built)? True for
    ``user_managed_dependencies: true`` and for a run without conda dependencies. Such a
    run uses ``interpreter_path``, else the target's default Python; on the local target
    that is the user's own Python (see :mod:`targets.compute._python`). No I/O."""
    python = config.environment.python
    return python.user_managed_dependencies or (
        not python.conda_dependencies_file and python.conda_dependencies is None
    )


def use_interpreter(config: RunConfiguration, python: str) -> None:
    """Make ``config`` run with ``python`` (``targets run --python``): it becomes the
    ``interpreter_path``. Only a user-managed run has an interpreter to choose; a run that
    builds its environment from conda dependencies raises UsageError (exit 2)."""
    if not is_user_managed(config):
        raise UsageError(
            "--python chooses the interpreter of a user-managed run, but this run builds "
            "its environment from conda dependencies",
            hint="drop --python, or set environment.python.user_managed_dependencies: true",
        )
    config.environment.python.interpreter_path = python


def _python_environment(config: RunConfiguration, source_dir: Path) -> EnvironmentSpec:
    python = config.environment.python
    if python.user_managed_dependencies:
        return _user_managed(python.interpreter_path)
    if python.conda_dependencies_file:
        path = Path(python.conda_dependencies_file)
        if not path.is_absolute():
            path = Path(source_dir) / path
        if not path.is_file():
            raise ConfigError(
                "the conda dependencies file does not exist",
                path=str(path),
                key_path="environment.python.conda_dependencies_file",
                hint=f"the path is relative to the source directory {source_dir}",
            )
        return _managed(load_conda_file(path), path.parent, str(path))
    if python.conda_dependencies is not None:
        return _managed(
            python.conda_dependencies,
            Path(source_dir),
            "environment.python.conda_dependencies",
        )
    # No conda dependencies at all: run with the target's default interpreter.
    return _user_managed(python.interpreter_path)


def _user_managed(interpreter: str | None) -> EnvironmentSpec:
    return EnvironmentSpec(
        managed=False,
        interpreter=interpreter or None,
        python_version=None,
        channels=(),
        conda_packages=(),
        pip_packages=(),
        pip_options=(),
        variables=(),
    )


def _managed(conda: CondaSpec, base_dir: Path, where: str) -> EnvironmentSpec:
    python_version: str | None = None
    conda_packages: list[str] = []
    pip_items: list[str] = []
    for index, item in enumerate(conda.dependencies):
        if isinstance(item, PipBlock):
            pip_items.extend(item.pip)
            continue
        spec = " ".join(item.split())
        key = f"dependencies[{index}]"
        if not _CONDA_SPEC.match(spec):
            raise ConfigError(
                f"{spec!r} is not a valid conda package spec",
                path=where,
                key_path=key,
                hint="write it like `numpy`, `numpy=1.26`, `numpy>=1.2,<2` or `numpy 1.26.4`",
            )
        name = _conda_name(spec)
        if name == "python":
            python_version = _major_minor(spec, where, key)
        elif name == "pip" and spec.lower() == "pip":
            continue
        conda_packages.append(spec)
    pip_packages, pip_options = _split_pip(pip_items, base_dir, where, depth=0)
    return EnvironmentSpec(
        managed=True,
        interpreter=None,
        python_version=python_version,
        channels=tuple(c.strip() for c in conda.channels if c.strip()),
        conda_packages=tuple(conda_packages),
        pip_packages=tuple(pip_packages),
        pip_options=tuple(pip_options),
        variables=tuple(sorted(conda.variables.items())),
    )


def _major_minor(spec: str, where: str, key: str) -> str | None:
    found = re.search(r"(\d+)\.(\d+)", spec)
    if found:
        return f"{found.group(1)}.{found.group(2)}"
    if re.search(r"\d", spec):
        raise ConfigError(
            f"{spec!r}: give the Python version as major.minor, e.g. python=3.11",
            path=where,
            key_path=key,
        )
    return None  # bare `python`: whatever the builder finds


def _split_pip(
    items: list[str], base_dir: Path, where: str, *, depth: int
) -> tuple[list[str], list[str]]:
    packages: list[str] = []
    options: list[str] = []
    for raw in items:
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        if not item.startswith("-"):
            if _DANGLING_OPERATOR.search(item.split(" @ ")[0]) or not _PIP_NAME.match(item):
                raise ConfigError(
                    f"{item!r} is not a valid pip requirement",
                    path=where,
                    key_path="dependencies.pip",
                    hint="write it like `requests`, `requests==2.31.0` or `requests>=2,<3`",
                )
            packages.append(item)
            continue
        found = _OPTION.match(item)
        flag, value = (found.group(1), (found.group(2) or "").strip()) if found else (item, "")
        if flag in _FLAG_OPTIONS and not value:
            options.append(flag)
        elif flag in _VALUE_OPTIONS and value:
            options.append(f"{_VALUE_OPTIONS[flag]} {value}")
        elif flag in _REQUIREMENT_OPTIONS and value and depth < 5:
            path = Path(value) if Path(value).is_absolute() else base_dir / value
            try:
                lines = path.read_text().splitlines()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the requirements file {value!r}: {exc.strerror}",
                    path=where,
                    key_path="dependencies.pip",
                ) from exc
            more_packages, more_options = _split_pip(
                [line.split(" #")[0] for line in lines], path.parent, str(path), depth=depth + 1
            )
            packages.extend(more_packages)
            options.extend(more_options)
        else:
            supported = ", ".join(sorted({*_VALUE_OPTIONS.values(), *_FLAG_OPTIONS, "-r"}))
            raise ConfigError(
                f"the pip option {item!r} is not supported in an environment",
                path=where,
                key_path="dependencies.pip",
                hint=f"supported options: {supported}",
            )
    return packages, options


def _conda_name(spec: str) -> str:
    text = spec.split("::", 1)[1] if "::" in spec else spec
    found = re.match(_NAME, text)
    return found.group(0).lower() if found else text.lower()


def _normalise_conda(spec: str) -> str:
    text = " ".join(spec.split())
    text = re.sub(r"\s*([=<>!~,|]+)\s*", r"\1", text)
    name = _conda_name(text)
    start = text.find("::") + 2 if "::" in text else 0
    return text[:start] + name + text[start + len(name) :]


def _normalise_pip(requirement: str) -> str:
    text = " ".join(requirement.split())
    text = re.sub(r"\s*([=<>!~,;\[\]]+)\s*", r"\1", text)
    found = _PIP_NAME.match(text)
    if not found:
        return text
    name = re.sub(r"[-_.]+", "-", found.group(1)).lower()
    return name + text[found.end() :]


def _normalise_option(option: str) -> str:
    flag, _, value = option.strip().partition(" ")
    return f"{flag.lower()} {value.strip()}".strip()


def _unique(items: Any) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return seen


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _str_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return tuple(value)
