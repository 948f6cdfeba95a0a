"""What a v2 job's ``environment`` becomes on a target (used by
:func:`targets.jobs.execute.prepare_command`).

- ``azureml:NAME:VERSION``, ``azureml:NAME@latest`` and
  ``azureml://registries/R/environments/NAME/versions/V|labels/L``: an environment
  registered in the workspace (``targets envs create``) first; else one of Azure ML's
  curated environments from the catalogue in the package (:mod:`targets.curated`), whose
  conda specification is built like any other; else an error that says how to register it.
- ``image: mcr.microsoft.com/azureml/...``: Azure's build images map to a local equivalent
  (:func:`targets.azureml.core._images.azureml_image_equivalent`).
- ``build: {path, dockerfile_path}``: the Dockerfile is built by the target's Docker
  engine (as ``base_dockerfile``) and the job runs in the image. Where the target has no
  usable engine, or the Dockerfile needs files of its context, the job is refused (exit 2)
  naming the build context: it never runs without it.
- An image set aside because the target has no usable Docker: the job gets an isolated,
  empty environment of its own (a virtualenv or conda env the agent builds and caches),
  never the Python ``targets`` runs in, so the job's ``pip install`` changes only that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from targets.errors import ConfigError, UsageError
from targets.jobs.model import InlineEnvironment
from targets.jobs.reader import LoadedJob
from targets.runconfig.model import CondaSpec
from targets.workspace import Workspace

__all__ = [
    "ENV_REF",
    "REGISTRY_ENV",
    "ResolvedReference",
    "build_dockerfile",
    "isolated_environment",
    "mapped_image",
    "resolve_reference",
]

ENV_REF = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$")
REGISTRY_ENV = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/environments/(?P<name>[^/]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+))?$"
)
ISOLATED_NAME = "targets-isolated-job"
_CONTEXT_FILE = re.compile(r"^\s*(COPY|ADD)\s+(?!--from)(.*)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ResolvedReference:
    """What an ``azureml:`` environment reference stands for."""

    image: str | None
    conda: Path | CondaSpec | None
    python: str | None = None
    warnings: list[str] = field(default_factory=list)


def resolve_reference(ws: Workspace, reference: str) -> ResolvedReference:
    """The environment ``reference`` names: registered in ``ws`` first, then curated.
    Raises ConfigError (exit 2) for a reference of another shape or a name neither
    registered nor curated, naming how to register it."""
    from targets.assets import find_environment
    from targets.curated import describe, find_curated, find_in_registry

    found = ENV_REF.match(reference) or REGISTRY_ENV.match(reference)
    if not found:
        raise ConfigError(
            f"environment {reference!r} is not a reference targets understands",
            key_path="environment",
            hint="write azureml:NAME:VERSION, azureml:NAME@latest or "
            "azureml://registries/REGISTRY/environments/NAME/versions/VERSION",
        )
    name = found.group("name")
    version = found.group("version") or found.group("label")
    registered = find_environment(ws, name, version)
    if registered is not None:
        return ResolvedReference(registered.image, registered.conda_file)
    groups = found.groupdict()
    registry = groups.get("registry")
    entry = find_in_registry(registry, name) if registry else find_curated(name)
    if entry is not None:
        return ResolvedReference(
            image=None,
            conda=entry.conda,
            python=entry.python,
            warnings=[describe(entry, version)],
        )
    what = f"{name}:{version}" if version not in (None, "latest") else name
    where = f"in the registry {registry!r} " if registry else ""
    raise ConfigError(
        f"the environment {what!r} {where}is not registered in this workspace, and it is "
        "not one of Azure ML's curated environments that targets knows",
        key_path="environment",
        hint="write an environment YAML (name, version, image and/or conda_file) and "
        "register it: targets envs create --file env.yml; the curated ones are listed in "
        "docs/jobs.md",
    )


def mapped_image(image: str, python: str | None) -> tuple[str, list[str]]:
    """``image``, or its local equivalent for an Azure ML build image (with a warning)."""
    from targets.azureml.core._images import azureml_image_equivalent

    local = azureml_image_equivalent(image, python)
    if local is None:
        return image, []
    return local, [
        f"the image {image!r} is Azure ML's build image; {local!r} stands in for it "
        "(TARGETS_DEFAULT_CPU_IMAGE / TARGETS_DEFAULT_GPU_IMAGE choose another; "
        "TARGETS_AZUREML_IMAGES=pull keeps the original)"
    ]


def build_dockerfile(loaded: LoadedJob, env: InlineEnvironment, docker_ok: str | None) -> str:
    """The Dockerfile text of ``env.build``, which the target's Docker engine builds.

    Raises UsageError (exit 2) naming the build context when ``docker_ok`` says the
    target cannot build it, when the context is remote, and when the Dockerfile copies
    files from its context (only the Dockerfile reaches the target's engine); ConfigError
    when the context or its Dockerfile is missing."""
    assert env.build is not None  # the caller checks
    context = env.build.path
    if "://" in context or context.startswith(("azureml:", "git+")):
        raise UsageError(
            f"the environment's build context {context!r} is not a local folder",
            hint="clone or download the context and give its local path in build.path",
        )
    if docker_ok is not None:
        raise UsageError(
            f"the environment's build context {context!r} needs a Docker engine to build "
            f"it, and the target has none: {docker_ok}; the job would not run without it",
            hint="run the job on a target with Docker (targets attach ... with Docker "
            "installed, or start Docker here), or build the image yourself and give it "
            "as environment.image",
        )
    folder = loaded.local_path(context)
    dockerfile = folder / env.build.dockerfile_path
    if not dockerfile.is_file():
        raise ConfigError(
            f"the build context {context!r} has no {env.build.dockerfile_path} "
            f"(looked for {dockerfile})",
            key_path="environment.build.dockerfile_path",
        )
    text = dockerfile.read_text(encoding="utf-8")
    copied = _CONTEXT_FILE.search(text)
    if copied:
        raise UsageError(
            f"the environment's build context {context!r}: its Dockerfile copies files "
            f"from the context ({copied.group(1).upper()} {copied.group(2).strip()}), and "
            "targets sends only the Dockerfile to the target's Docker engine",
            hint="build the image yourself (docker build -t NAME "
            f"{folder}) and give it as environment.image, or write the copied files' "
            "content into RUN steps",
        )
    return text


def isolated_environment(python: str | None = None) -> CondaSpec:
    """A conda specification with nothing but pip: the agent builds an isolated
    environment from it (a virtualenv or conda env of the job's own, cached by its
    hash), so a job whose image is set aside never runs in, or installs into, the Python
    ``targets`` runs in.

    Design choice: pip is named. ``uv venv`` makes environments without pip, and a job's
    ``pip install`` would then reach the next ``pip`` on PATH, which may be the one of
    the environment ``targets`` is installed in."""
    return CondaSpec(
        name=ISOLATED_NAME,
        channels=[],
        dependencies=[*([f"python={python}"] if python else []), {"pip": ["pip"]}],
    )
