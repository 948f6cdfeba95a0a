"""What a v2 job's ``environment`` becomes on a target (used by
:func:`targets.jobs.execute.prepare_command`).

- ``azureml:NAME:VERSION``, ``azureml:NAME@latest`` and
  ``azureml://registries/R/environments/NAME/versions/V|labels/L``: an environment
  registered in the workspace (``targets envs create``) first; else one of Azure ML's
  curated environments from the catalogue in the package (:mod:`targets.curated`), whose
  conda specification is built like any other; else an error that says how to register it.
  A registered environment with a build context stands for an inline ``build:`` whose
  path is the copy kept in the workspace (:class:`RegisteredBuild`,
  :func:`registered_build`): it is built and refused exactly as an inline one.
- ``image: mcr.microsoft.com/azureml/...``: Azure's build images map to a local equivalent
  (:func:`targets.azureml.core._images.azureml_image_equivalent`).
- ``build: {path, dockerfile_path}``: the context folder (less its ``.dockerignore``)
  is built by the target's Docker engine before the job is queued, into an image keyed
  by the context's content (:mod:`targets.jobs.build_context`), and the job runs in it.
  Kinds whose engine cannot be reached before the run get the Dockerfile alone (as
  ``base_dockerfile``), when it copies nothing from its context. Where the target has no
  usable engine (or ``--no-docker`` sets Docker aside), where the context is a URL, or
  where a base image is absent and cannot be pulled, the job is refused (exit 2) naming
  the build context: it never runs without it.
- An image set aside because the target has no usable Docker, or by ``--no-docker``
  (``TARGETS_NO_DOCKER=1``): the job gets an isolated, empty environment of its own (a
  virtualenv or conda env the agent builds and caches), never the Python ``targets``
  runs in, nor the user's active virtualenv, so the job's ``pip install`` changes only
  that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from targets.errors import ConfigError, UsageError
from targets.jobs.model import Build, InlineEnvironment
from targets.jobs.reader import LoadedJob
from targets.runconfig.model import CondaSpec, RunConfiguration
from targets.workspace import Workspace

__all__ = [
    "ENV_REF",
    "ISOLATED_NAME",
    "NO_DOCKER_REASON",
    "REGISTRY_ENV",
    "RegisteredBuild",
    "ResolvedReference",
    "build_dockerfile",
    "check_build_context",
    "isolated_environment",
    "mapped_image",
    "no_docker_requested",
    "registered_build",
    "resolve_reference",
    "use_build_context",
]

ENV_REF = re.compile(r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$")
REGISTRY_ENV = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/environments/(?P<name>[^/]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+))?$"
)
ISOLATED_NAME = "targets-isolated-job"
NO_DOCKER_REASON = "--no-docker (TARGETS_NO_DOCKER=1) sets Docker aside"
"""Why Docker is not used when the job asks for that (the ``docker_ok`` of
:func:`targets.jobs.execute.prepare_command`)."""
_CONTEXT_FILE = re.compile(r"^\s*(COPY|ADD)\s+(?!--from)(.*)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ResolvedReference:
    """What an ``azureml:`` environment reference stands for."""

    image: str | None
    conda: Path | CondaSpec | None
    python: str | None = None
    warnings: list[str] = field(default_factory=list)
    build: RegisteredBuild | None = None
    """The registered environment's build context, as an inline one."""


class RegisteredBuild(InlineEnvironment):
    """A registered environment with a build context, as the inline ``build:`` it stands
    for: its ``build.path`` is the copy kept in the workspace (absolute)."""

    reference: str
    """The job's ``environment`` value (``azureml:NAME@latest``), for messages."""


def registered_build(ws: Workspace, env: object) -> object:
    """``env``, or, when it is a reference to a registered environment with a build
    context, the :class:`RegisteredBuild` it stands for (so that one path builds both)."""
    if not isinstance(env, str):
        return env
    found = ENV_REF.match(env) or REGISTRY_ENV.match(env)
    if not found:
        return env
    from targets.assets import find_environment

    registered = find_environment(
        ws, found.group("name"), found.group("version") or found.group("label")
    )
    if registered is None or registered.build is None:
        return env
    return RegisteredBuild(
        build=Build(path=str(registered.build), dockerfile_path=registered.dockerfile_path),
        reference=env,
    )


def _context_name(env: InlineEnvironment) -> str:
    """How messages name ``env``'s build context."""
    assert env.build is not None  # the caller checks
    if isinstance(env, RegisteredBuild):
        return f"{env.reference} (stored at {env.build.path})"
    return env.build.path


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
        build = registered_build(ws, reference)
        return ResolvedReference(
            registered.image,
            registered.conda_file,
            build=build if isinstance(build, RegisteredBuild) else None,
        )
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


def no_docker_requested(variables: dict[str, str] | None) -> bool:
    """Do the job's ``environment_variables`` set Docker aside (``TARGETS_NO_DOCKER``,
    which ``targets run --no-docker`` sets)? A value other than 1/0 is left to the
    preflight check, which refuses it."""
    from targets.preflight import NO_DOCKER

    value = str((variables or {}).get(NO_DOCKER, "")).strip().lower()
    return value in ("1", "true", "yes", "on")


def check_build_context(loaded: LoadedJob, env: InlineEnvironment, docker_ok: str | None) -> Path:
    """The local folder of ``env.build``. Raises UsageError (exit 2) naming the build
    context when it is not a local folder (a URL: clone it first) or when ``docker_ok``
    says the target cannot build it; ConfigError when the folder is missing."""
    assert env.build is not None  # the caller checks
    context = _context_name(env)
    if "://" in env.build.path or env.build.path.startswith(("azureml:", "git+", "git@")):
        raise UsageError(
            f"the environment's build context {context!r} is not a local folder: targets "
            "builds contexts from folders on this machine",
            hint=f"clone or download it (e.g. git clone {context} docker-context) and point "
            "environment.build.path at that folder",
        )
    if docker_ok is not None:
        raise UsageError(
            f"the environment's build context {context!r} needs a Docker engine to build "
            f"it: {docker_ok}; the job would not run without it",
            hint="run the job on a target with Docker (targets attach ... with Docker "
            "installed, or start Docker here) and without --no-docker, or build the image "
            "yourself and give it as environment.image",
        )
    folder = loaded.local_path(env.build.path)
    if not folder.is_dir():
        raise ConfigError(
            f"the build context {context!r} is not a folder (looked for {folder})",
            key_path="environment.build.path",
        )
    return folder


def use_build_context(
    loaded: LoadedJob,
    env: InlineEnvironment,
    config: RunConfiguration,
    docker_ok: str | None,
    target: object,
) -> None:
    """Make ``config`` run in the image of ``env.build``: built now by ``target``'s
    engine (local and ``vm`` targets; see :mod:`targets.jobs.build_context`), or, for
    other kinds, the Dockerfile alone as ``base_dockerfile``. Raises UsageError (exit 2)
    as :func:`check_build_context` and :func:`targets.jobs.build_context.build_on_target`
    say; nothing is queued then."""
    from targets.jobs import build_context as bc

    assert env.build is not None  # the caller checks
    folder = check_build_context(loaded, env, docker_ok)
    engine = bc.engine_for(target) if target is not None else None
    docker = config.environment.docker
    docker.enabled = True
    if engine is not None:
        packed = bc.read_context(_context_name(env), folder, env.build.dockerfile_path)
        docker.base_image = bc.build_on_target(packed, engine)
        docker.base_dockerfile = None
    else:
        docker.base_image = None
        docker.base_dockerfile = build_dockerfile(loaded, env, docker_ok)
    # The image's own tools run the job (julia, Rscript, ...): nothing is built on top.
    config.environment.python.user_managed_dependencies = True


def build_dockerfile(loaded: LoadedJob, env: InlineEnvironment, docker_ok: str | None) -> str:
    """The Dockerfile text of ``env.build``, for a target whose engine builds it during
    the run's preparation (only the Dockerfile reaches it).

    Raises UsageError (exit 2) naming the build context as :func:`check_build_context`
    does, and when the Dockerfile copies files from its context; ConfigError when the
    context or its Dockerfile is missing."""
    assert env.build is not None  # the caller checks
    folder = check_build_context(loaded, env, docker_ok)
    context = _context_name(env)
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
            "this kind of target builds images during the run's preparation, where only "
            "the Dockerfile reaches its Docker engine",
            hint="run the job on the local target or a vm target (their engines build "
            f"the whole context), or build the image yourself (docker build -t NAME "
            f"{folder}) and give it as environment.image",
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
