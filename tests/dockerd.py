"""The machine's Docker engine and the test base image, for tests that run containers.

``scripts/docker-test-setup.sh`` (run by ``scripts/test-services.sh``, so by ``make pytest``)
starts ``dockerd --bridge=none`` when no engine answers and builds the base image
``targets-test-python:bookworm`` (Debian bookworm minbase with python3, venv and pip,
made by debootstrap and ``docker import``: no image registry is reachable). This module
only checks that both are there; it starts and builds nothing.

Containers have no bridge network: run them with ``--network none``, or ``--network host``
to reach a server the test started on 127.0.0.1. Never create a network, and never send
traffic to an address that is not loopback.

Use the fixture from another test module by importing it (conftest.py does not load this
module). The fixture function has its own Python name, so that a test's ``docker_engine``
parameter does not shadow an imported name::

    from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401 - fixture

    def test_something(docker_engine: DockerEngine) -> None:
        out = docker_engine.run(
            "run", "--rm", "--network", "none", docker_engine.image, "python3", "-c", "print(1)"
        ).stdout
        assert out == "1\\n"

- ``docker_engine`` (session): a :class:`DockerEngine`; ``.image`` is the base image's
  name, ``.run(*args)`` runs the docker CLI and raises :class:`DockerCommandFailed` (command,
  exit code, output tail) when it exits non-zero, ``.host_ca_args()`` mounts the host's CA
  bundle for pip inside a container.

When the docker CLI is missing, no engine answers ``docker info`` or the base image is
absent, the fixture skips the test with the reason, or fails it when the environment
variable ``CI`` is set (CI must not silently skip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "BASE_IMAGE",
    "DockerCommandFailed",
    "DockerEngine",
    "docker_engine_fixture",
]

BASE_IMAGE = "targets-test-python:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SETUP_HINT = "run `bash scripts/test-services.sh` as root"


class DockerCommandFailed(Exception):
    """A docker CLI call exited non-zero; ``str()`` shows the command, code and output tail."""

    def __init__(self, args: list[str], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(args, proc.returncode)
        self.command = args
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def __str__(self) -> str:
        def tail(text: str) -> str:
            return "\n".join(text.rstrip().splitlines()[-20:]) or "(empty)"

        return (
            f"{' '.join(self.command)} exited with {self.returncode}\n"
            f"stdout (last lines):\n{tail(self.stdout)}\n"
            f"stderr (last lines):\n{tail(self.stderr)}"
        )


@dataclass(frozen=True, slots=True)
class DockerEngine:
    """The docker CLI of this machine, talking to an engine that answers, and the base image.

    Creating it runs nothing; every method blocks until the docker command ends."""

    docker: str
    """Path of the docker CLI."""
    image: str = BASE_IMAGE

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker *args`` and return its completed process (text stdout/stderr).

        Raises :class:`DockerCommandFailed` when it exits non-zero and ``check`` is true,
        and ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        command = [self.docker, *args]
        proc = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise DockerCommandFailed(command, proc)
        return proc

    def host_ca_args(self) -> list[str]:
        """``docker run`` arguments that make pip in the container trust the host's CA bundle.

        Design choice: the bundle is mounted read-only at run time rather than copied into
        the base image, because it belongs to the machine (a proxy's CA may be in it), not
        to the cached image. Empty when the host has no bundle at the Debian path."""
        if not HOST_CA_BUNDLE.is_file():
            return []
        inside = "/etc/ssl/certs/ca-certificates.crt"
        return [
            "-v",
            f"{HOST_CA_BUNDLE}:{inside}:ro",
            "-e",
            f"PIP_CERT={inside}",
            "-e",
            f"SSL_CERT_FILE={inside}",
        ]


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``CI`` is set (CI must not silently skip)."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so this cannot be skipped: {reason}")
    pytest.skip(reason)


def unavailable_reason(engine: DockerEngine) -> str | None:
    """Why the Docker tests cannot run here, or ``None`` when they can (engine and image)."""
    try:
        info = engine.run("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if info.returncode != 0 or not info.stdout.strip():
        detail = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers `docker info` ({detail}): {SETUP_HINT}"
    image = engine.run("image", "inspect", engine.image, check=False, timeout=30)
    if image.returncode != 0:
        return f"the test base image {engine.image} is missing: {SETUP_HINT}"
    return None


_ENGINE: DockerEngine | None = None


@pytest.fixture(scope="session", name="docker_engine")
def docker_engine_fixture() -> DockerEngine:
    """The machine's Docker engine with the base image (checked once per process)."""
    global _ENGINE
    if _ENGINE is None:
        # Shared even when several modules import this fixture (each import is its own
        # fixture definition to pytest): one check per process.
        docker = shutil.which("docker")
        if docker is None:
            skip_or_fail(f"the docker CLI is not installed: {SETUP_HINT}")
        engine = DockerEngine(docker)
        reason = unavailable_reason(engine)
        if reason:
            skip_or_fail(reason)
        _ENGINE = engine
    return _ENGINE
