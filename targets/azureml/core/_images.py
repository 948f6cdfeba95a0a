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

__all__ = ["V1_DEFAULT_CPU_IMAGE", "V1_DEFAULT_GPU_IMAGE", "default_image"]

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
