"""``azureml.core.runconfig`` for ``targets``: :class:`RunConfiguration` (the one model
every target kind takes), :class:`DockerConfiguration`, and v1's default base images.

``RunConfiguration.save(path, name)`` / ``RunConfiguration.load(path, name)`` use v1's
project folder: ``<path>/.azureml/<name>.runconfig`` (``aml_config/`` when that legacy
folder exists). ``DEFAULT_CPU_IMAGE`` / ``DEFAULT_GPU_IMAGE`` are mapped to images that
build on a target (see :mod:`targets.azureml.core._images`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from targets.runconfig.conda import CondaDependencies
from targets.runconfig.model import RunConfiguration

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "CondaDependencies",
    "DockerConfiguration",
    "RunConfiguration",
]


class DockerConfiguration(BaseModel):
    """Whether and how a run uses Docker, as v1's ``DockerConfiguration``; pass it as
    ``ScriptRunConfig(docker_runtime_config=...)``. It sets the run's
    ``environment.docker`` (``enabled``, ``shared_volumes``, ``arguments``, ``shm_size``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    use_docker: bool = False
    shared_volumes: bool = True
    arguments: list[str] = Field(default_factory=list)
    shm_size: str | None = None

    def __init__(
        self,
        use_docker: bool = False,
        shared_volumes: bool = True,
        arguments: list[str] | None = None,
        shm_size: str | None = None,
    ) -> None:
        super().__init__(
            use_docker=use_docker,
            shared_volumes=shared_volumes,
            arguments=list(arguments or []),
            shm_size=shm_size,
        )

    def apply(self, config: RunConfiguration) -> None:
        """Set ``config.environment.docker`` from this configuration."""
        docker = config.environment.docker
        docker.enabled = self.use_docker
        docker.shared_volumes = self.shared_volumes
        docker.arguments = list(self.arguments)
        if self.shm_size is not None:
            docker.shm_size = self.shm_size


# Annotated only: each import reads the current value through __getattr__ (see _images).
DEFAULT_CPU_IMAGE: str
DEFAULT_GPU_IMAGE: str


def __getattr__(name: str) -> Any:
    if name in ("DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE"):
        from targets.azureml.core._images import default_image

        return default_image(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
