"""Run configurations: the model, its readers and writers, and its JSON Schema.

Importing this package is cheap: the readers (PyYAML) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets._lazy import lazy_exports
from targets.runconfig.model import RunConfiguration, use_files

if TYPE_CHECKING:
    from pathlib import Path

    from targets.runconfig.conda import CondaDependencies
    from targets.runconfig.io import (
        LoadedRunConfig,
        convert_runconfig,
        dump_runconfig,
        load_runconfig,
        save_runconfig,
    )
    from targets.runconfig.schema import runconfig_json_schema

__all__ = [
    "CondaDependencies",
    "LoadedRunConfig",
    "RunConfiguration",
    "convert_runconfig",
    "dump_runconfig",
    "load_runconfig",
    "runconfig_json_schema",
    "save_runconfig",
]

_LAZY = {
    "CondaDependencies": "targets.runconfig.conda",
    "LoadedRunConfig": "targets.runconfig.io",
    "convert_runconfig": "targets.runconfig.io",
    "dump_runconfig": "targets.runconfig.io",
    "load_runconfig": "targets.runconfig.io",
    "runconfig_json_schema": "targets.runconfig.schema",
    "save_runconfig": "targets.runconfig.io",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


class _Files:
    """``RunConfiguration.load``/``save`` through :mod:`targets.runconfig.io`, imported on
    first use (the model cannot import it: io imports the model)."""

    def load(self, path: str | Path, name: str | None) -> RunConfiguration:
        from targets.runconfig.io import load_runconfig

        return load_runconfig(path, name=name).config

    def save(self, config: RunConfiguration, path: str | Path) -> None:
        from targets.runconfig.io import save_runconfig

        save_runconfig(config, path)


use_files(_Files())
