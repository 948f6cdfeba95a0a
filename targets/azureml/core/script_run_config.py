"""``azureml.core.script_run_config`` for ``targets``: :class:`ScriptRunConfig` (the one
of :mod:`targets.experiment`)."""

from __future__ import annotations

from targets.experiment import ScriptRunConfig

__all__ = ["ScriptRunConfig"]
