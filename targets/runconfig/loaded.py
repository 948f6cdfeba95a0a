"""What a run configuration reader returns: :class:`LoadedRunConfig` and the format names.

One job: the result type shared by the readers (:mod:`targets.runconfig.ours`,
:mod:`targets.runconfig.azureml_v1`) and :mod:`targets.runconfig.io`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from targets.runconfig.model import RunConfiguration

__all__ = ["LoadedRunConfig", "RunConfigFormat"]

RunConfigFormat = Literal["targets", "azureml-v1", "azureml-workbench"]


@dataclass(frozen=True, slots=True)
class LoadedRunConfig:
    """A run configuration as read from a file.

    ``config.source_directory`` keeps what the file said; ``source_directory`` here is
    the resolved absolute folder to snapshot. ``warnings`` has one line per key that was
    unknown, obsolete or ignored, naming the key (and its line).
    """

    config: RunConfiguration
    path: Path
    source_directory: Path
    format: RunConfigFormat
    warnings: tuple[str, ...] = ()
