"""A v2 environment's build context (``environment.build``), built by the target's Docker
engine before the job is queued.

- :func:`read_context` packs the local folder ``build.path`` (honouring its
  ``.dockerignore``; the Dockerfile named by ``dockerfile_path`` and the
  ``.dockerignore`` itself are always sent, as Docker does) into a tar archive and hashes
  its content: paths, modes, file bytes and link targets, not modification times.
- :func:`build_on_target` makes sure the target's engine has the image
  ``targets-build:<hash>``: an unchanged context is not built again. Before a build, each
  ``FROM`` image (the base images) must be on the engine or pullable by it; otherwise the
  job is refused (UsageError, exit 2) naming the image and how to provide it. A failed
  build is refused too (exit 2), with the end of Docker's output; nothing is queued.

The engine is reached the way the target's own runs reach it: on the local target
through the Docker SDK (the agent's :class:`~targets.agent.docker_sdk.SDKDriver`), on a
``vm`` target with the ``docker`` command over the target's SSH connection
(:meth:`~targets.compute.vm.VMTarget.run_command`), the archive on its standard input
(``docker build -f DOCKERFILE -``). Other kinds have no engine that can be reached before
the run (a cluster's node is chosen later): :func:`engine_for` returns None for them.

Design choice: the image is built at submission, not during the run's preparation on the
target, so that a missing base image or a broken Dockerfile is reported at once with exit
code 2 and no run is queued; the run's own environment image then starts ``FROM`` it
like any ``base_image`` (cached by the environment hash, which includes this image's
content hash).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from targets.errors import ConfigError, UsageError
from targets.jobs.dockerignore import IgnoreRules, read_dockerignore

__all__ = [
    "BuildContext",
    "Engine",
    "base_images",
    "build_on_target",
    "engine_for",
    "read_context",
]

IMAGE_REPOSITORY = "targets-build"
LABEL = "compute-targets.build"
MAX_CONTEXT_BYTES = 1 << 30
"""Contexts larger than this are refused: a .dockerignore should leave data out."""


@dataclass(frozen=True, slots=True)
class BuildContext:
    """A packed build context."""

    name: str
    """``build.path`` as the job file gives it (for messages)."""
    folder: Path
    dockerfile: str
    """The Dockerfile's path inside the context (slash-separated)."""
    text: str
    """The Dockerfile's text."""
    archive: bytes
    digest: str
    """sha256 of the context's content and the Dockerfile's path."""

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.digest[:20]}"


def read_context(name: str, folder: Path, dockerfile_path: str) -> BuildContext:
    """Pack ``folder`` (``build.path`` ``name``, already resolved against the job file).
    ConfigError (exit 2) when the folder or its Dockerfile is missing; UsageError when
    the context is larger than :data:`MAX_CONTEXT_BYTES`."""
    if not folder.is_dir():
        raise ConfigError(
            f"the build context {name!r} is not a folder (looked for {folder})",
            key_path="environment.build.path",
        )
    dockerfile = Path(dockerfile_path.replace("\\", "/")).as_posix().lstrip("/")
    path = folder / dockerfile
    if not path.is_file():
        raise ConfigError(
            f"the build context {name!r} has no {dockerfile_path} (looked for {path})",
            key_path="environment.build.dockerfile_path",
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    rules = read_dockerignore(folder)
    always = {dockerfile, ".dockerignore"}
    buffer = io.BytesIO()
    digest = hashlib.sha256(f"dockerfile {dockerfile}\n".encode())
    total = 0
    # GNU format, not PAX: the docker command recognises a context on its standard input
    # by the first 512 bytes parsing as a tar header, which a PAX header entry does not.
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for rel, full in _walk(folder, rules, always):
            info = tar.gettarinfo(str(full), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = int(info.mtime)
            if info.isdir():
                info.mode = 0o755
                digest.update(f"dir {rel}\n".encode())
                tar.addfile(info)
            elif info.issym():
                digest.update(f"link {rel} {info.linkname}\n".encode())
                tar.addfile(info)
            elif info.isfile():
                info.mode = 0o755 if info.mode & stat.S_IXUSR else 0o644
                total += info.size
                if total > MAX_CONTEXT_BYTES:
                    raise UsageError(
                        f"the build context {name!r} holds more than {MAX_CONTEXT_BYTES >> 20} MiB",
                        hint=f"leave data out of the image with a .dockerignore in {folder}",
                    )
                data = full.read_bytes()
                digest.update(f"file {rel} {info.mode:o} {len(data)}\n".encode())
                digest.update(hashlib.sha256(data).digest())
                tar.addfile(info, io.BytesIO(data))
    return BuildContext(
        name=name,
        folder=folder,
        dockerfile=dockerfile,
        text=text,
        archive=buffer.getvalue(),
        digest=digest.hexdigest(),
    )


def _walk(folder: Path, rules: IgnoreRules, always: set[str]) -> Iterator[tuple[str, Path]]:
    """(relative path, path) of what the context sends, parents before children,
    sorted. A folder that is left out is not entered unless an exception (``!``) may
    keep something under it."""
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        rel_dir = here.relative_to(folder).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        kept_dirs = []
        for dirname in sorted(dirnames):
            rel = prefix + dirname
            if (here / dirname).is_symlink():
                if not rules.excluded(rel):
                    yield rel, here / dirname
                continue
            holds_needed = any(name.startswith(rel + "/") for name in always)
            if rules.excluded(rel) and not rules.has_exceptions and not holds_needed:
                continue
            kept_dirs.append(dirname)
            if not rules.excluded(rel):
                yield rel, here / dirname
        dirnames[:] = kept_dirs
        for filename in sorted(filenames):
            rel = prefix + filename
            if rel in always or not rules.excluded(rel):
                yield rel, here / filename


_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?", re.IGNORECASE)
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def base_images(dockerfile: str) -> list[str]:
    """The images the Dockerfile starts ``FROM`` (in order, once each): not ``scratch``,
    not an earlier stage, and not a name whose variables have no default (``ARG``
    before the first ``FROM``)."""
    lines = _instructions(dockerfile)
    defaults: dict[str, str] = {}
    stages: set[str] = set()
    found: list[str] = []
    seen_from = False
    for line in lines:
        arg = _ARG.match(line)
        if arg and not seen_from and arg.group(2) is not None:
            defaults[arg.group(1)] = arg.group(2).strip("\"'")
            continue
        got = _FROM.match(line)
        if not got:
            continue
        seen_from = True
        image = _substitute(got.group(1), defaults)
        if got.group(2):
            stages.add(got.group(2).lower())
        if image is None or image.lower() == "scratch" or image.lower() in stages:
            continue
        if image not in found:
            found.append(image)
    return found


def _instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        out.append(current + stripped)
        current = ""
    if current:
        out.append(current)
    return out


def _substitute(value: str, defaults: dict[str, str]) -> str | None:
    missing = False

    def one(found: re.Match[str]) -> str:
        nonlocal missing
        name = found.group(1) or found.group(3)
        if name in defaults:
            return defaults[name]
        if found.group(2) is not None:
            return found.group(2)
        missing = True
        return ""

    result = _VAR.sub(one, value)
    return None if missing or not result else result


# -- the target's engine -------------------------------------------------------------------


class BuildFailed(Exception):
    """A Docker operation failed; the message is Docker's (its last lines)."""


class Engine(Protocol):
    """What building a context needs from a Docker engine."""

    where: str
    """The target, for messages (``target 'local'``)."""

    def has(self, image: str) -> bool: ...

    def pull(self, image: str) -> None:
        """Raises BuildFailed with Docker's reason."""

    def build(self, context: BuildContext, tag: str, labels: dict[str, str]) -> None:
        """Raises BuildFailed with the end of Docker's output."""


class _SDKEngine:
    """The local target's engine, through the Docker SDK (as its runs use it)."""

    def __init__(self, where: str) -> None:
        from targets.agent.containers import ContainerError
        from targets.agent.docker_sdk import SDKDriver

        try:
            self.driver = SDKDriver()
        except (ContainerError, ImportError) as exc:
            raise BuildFailed(str(exc)) from exc
        self.where = where

    def has(self, image: str) -> bool:
        return bool(self.driver.image_exists(image))

    def pull(self, image: str) -> None:
        from targets.agent.containers import ContainerError

        try:
            self.driver.pull(image, io.BytesIO())
        except ContainerError as exc:
            reason = str(exc).split(". Point base_image")[0]
            raise BuildFailed(reason.removeprefix(f"could not pull {image}: ")) from exc

    def build(self, context: BuildContext, tag: str, labels: dict[str, str]) -> None:
        import docker

        lines: list[str] = []
        try:
            for chunk in self.driver.client.api.build(
                fileobj=io.BytesIO(context.archive),
                custom_context=True,
                dockerfile=context.dockerfile,
                tag=tag,
                labels=labels,
                rm=True,
                forcerm=True,
                decode=True,
                network_mode="host",
            ):
                if "stream" in chunk:
                    lines.extend(str(chunk["stream"]).splitlines())
                if "error" in chunk:
                    lines.append(str(chunk["error"]).strip())
                    raise BuildFailed(_tail(lines))
        except docker.errors.APIError as exc:
            raise BuildFailed(_tail([*lines, str(exc.explanation or exc)])) from exc


class _SSHEngine:
    """A ``vm`` target's engine: the ``docker`` command over its SSH connection."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.where = f"target {target.name!r}"

    def _run(
        self, command: str, *, input: bytes | None = None, timeout: float = 120
    ) -> tuple[int, str]:
        code, out, err = self.target.run_command(command, input=input, timeout=timeout)
        text = (out + b"\n" + err).decode("utf-8", "replace")
        if code == 127:
            raise BuildFailed(f"docker is not installed on {self.where}")
        return int(code), text

    def has(self, image: str) -> bool:
        code, _ = self._run(f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image)}")
        return code == 0

    def pull(self, image: str) -> None:
        code, text = self._run(f"docker pull {shlex.quote(image)}", timeout=1800)
        if code != 0:
            raise BuildFailed(_tail(text.splitlines(), 3))

    def build(self, context: BuildContext, tag: str, labels: dict[str, str]) -> None:
        from targets.compute._agent import prepare_timeout

        argv = ["docker", "build", "--network", "host", "-t", tag, "-f", context.dockerfile]
        for key, value in sorted(labels.items()):
            argv += ["--label", f"{key}={value}"]
        command = "DOCKER_BUILDKIT=0 " + shlex.join([*argv, "-"])
        code, text = self._run(command, input=context.archive, timeout=prepare_timeout())
        if code != 0:
            raise BuildFailed(_tail(text.splitlines()))


def _tail(lines: list[str], count: int = 15) -> str:
    kept = [line.rstrip() for line in lines if line.strip()]
    return "\n".join("  " + line for line in kept[-count:])


def engine_for(target: Any) -> Engine | None:
    """The engine that builds contexts for ``target`` before its runs: the local
    target's, or a ``vm`` target's over SSH; None for other kinds."""
    from targets.compute.local import LocalTarget
    from targets.compute.vm import VMTarget

    if isinstance(target, LocalTarget):
        return _SDKEngine(f"target {target.name!r}")
    if isinstance(target, VMTarget) and target.kind == VMTarget.kind:
        return _SSHEngine(target)
    return None


def build_on_target(context: BuildContext, engine: Engine) -> str:
    """The tag of the context's image on ``engine``, built unless it is there already.
    UsageError (exit 2) naming the base image when one is absent and cannot be pulled,
    or with Docker's output when the build fails."""
    tag = context.tag
    if engine.has(tag):
        return tag
    for image in base_images(context.text):
        if engine.has(image):
            continue
        try:
            engine.pull(image)
        except BuildFailed as exc:
            from targets.azureml.core._images import azureml_image_equivalent

            local = azureml_image_equivalent(image, None)
            standin = (
                f" (Azure ML's build image: `docker tag {local} {image}` makes its local "
                "equivalent stand in)"
                if local
                else ""
            )
            raise UsageError(
                f"the build context {context.name!r} starts FROM {image!r}, which the "
                f"Docker engine of {engine.where} does not have and cannot pull: "
                f"{str(exc).strip()}",
                hint=f"provide the image there: `docker pull {image}` where its registry "
                f"is reachable (with `docker login` for a private one), or `docker save "
                f"{image}` on a machine that has it and `docker load` there; or tag an "
                f"image you have under that name: `docker tag IMAGE {image}`{standin}",
            ) from None
    try:
        engine.build(context, tag, {LABEL: context.digest[:20]})
    except BuildFailed as exc:
        raise UsageError(
            f"building the build context {context.name!r} ({context.folder}) on "
            f"{engine.where} failed:\n{exc}",
            hint="fix the Dockerfile (or the files it copies) and run the job again; "
            "nothing was queued",
        ) from None
    return tag
