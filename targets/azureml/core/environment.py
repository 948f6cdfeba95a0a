"""``azureml.core.environment`` for ``targets``: :class:`Environment` (the one of
:mod:`targets.experiment`) and the sections it is made of, as v1 names them.

``DEFAULT_CPU_IMAGE`` / ``DEFAULT_GPU_IMAGE`` are v1's default base images mapped to
images that build on a target (see :mod:`targets.azureml.core._images`).
"""

from __future__ import annotations

from typing import Any

from targets.experiment import Environment
from targets.runconfig.conda import CondaDependencies
from targets.runconfig.model import DockerSection, PythonSection
from targets.runconfig.model import SparkEnvSection as SparkSection

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "CondaDependencies",
    "DockerSection",
    "Environment",
    "PythonSection",
    "SparkSection",
]


# Annotated only: each import reads the current value through __getattr__ (see _images).
DEFAULT_CPU_IMAGE: str
DEFAULT_GPU_IMAGE: str


def __getattr__(name: str) -> Any:
    if name in ("DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE"):
        from targets.azureml.core._images import default_image

        return default_image(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
