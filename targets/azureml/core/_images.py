"""``DEFAULT_CPU_IMAGE`` and ``DEFAULT_GPU_IMAGE``: v1's default Docker base images,
mapped to images that build on a target.

Azure ML v1 names ``mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04`` (CPU) and
``mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04`` (GPU). Those are
Azure's build images, pulled from Microsoft's registry and retired over time; a target
without access to that registry cannot use them. ``targets`` needs only an image with
``python3`` (and its ``venv`` module) to build an environment on, so both names map to:

- ``TARGETS_DEFAULT_CPU_IMAGE`` / ``TARGETS_DEFAULT_GPU_IMAGE`` when set (an image your
  targets have or can pull: a mirror, or one loaded with ``docker load``);
- else ``python:<major.minor>-slim`` for the Python running the control script. The GPU
  image is the same: PyTorch and TensorFlow wheels bring their own CUDA libraries, and
  ``docker.gpu`` gives the container the host's GPUs.

The value is read when the name is imported (``from ...runconfig import
DEFAULT_CPU_IMAGE``), so setting the variable before that import is enough.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "AZUREML_IMAGE_PREFIX",
    "V1_DEFAULT_CPU_IMAGE",
    "V1_DEFAULT_GPU_IMAGE",
    "azureml_image_equivalent",
    "default_image",
]

V1_DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
V1_DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"
VARIABLES = {
    "DEFAULT_CPU_IMAGE": "TARGETS_DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE": "TARGETS_DEFAULT_GPU_IMAGE",
}


def default_image(name: str) -> str:
    """The image ``name`` (``DEFAULT_CPU_IMAGE`` or ``DEFAULT_GPU_IMAGE``) stands for."""
    chosen = os.environ.get(VARIABLES[name], "").strip()
    if chosen:
        return chosen
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


AZUREML_IMAGE_PREFIX = "mcr.microsoft.com/azureml/"
KEEP_AZUREML_IMAGES = "TARGETS_AZUREML_IMAGES"
"""``pull``: keep ``mcr.microsoft.com/azureml/...`` images as written (a target that can
reach Microsoft's registry pulls them); anything else or unset: map them."""


def azureml_image_equivalent(image: str, python: str | None = None) -> str | None:
    """The local equivalent of an Azure ML build image (``mcr.microsoft.com/azureml/...``,
    e.g. ``openmpi4.1.0-ubuntu20.04``), or None when ``image`` is not one, or when
    ``TARGETS_AZUREML_IMAGES=pull`` keeps them.

    Those images are Azure's base images for curated and custom environments; they hold an
    OS, conda and MPI, and the job's packages come from its conda file. The equivalent is
    an image with Python to build that conda file on: ``TARGETS_DEFAULT_GPU_IMAGE`` for a
    CUDA image when set, else ``TARGETS_DEFAULT_CPU_IMAGE`` when set, else
    ``python:<python>-slim`` (``python`` is the environment's major.minor, else the one
    running ``targets``)."""
    if not image.startswith(AZUREML_IMAGE_PREFIX):
        return None
    if os.environ.get(KEEP_AZUREML_IMAGES, "").strip().lower() == "pull":
        return None
    rest = image[len(AZUREML_IMAGE_PREFIX) :].lower()
    if "cuda" in rest or "gpu" in rest:
        chosen = os.environ.get(VARIABLES["DEFAULT_GPU_IMAGE"], "").strip()
        if chosen:
            return chosen
    chosen = os.environ.get(VARIABLES["DEFAULT_CPU_IMAGE"], "").strip()
    if chosen:
        return chosen
    if python:
        return f"python:{python}-slim"
    return default_image("DEFAULT_CPU_IMAGE")
