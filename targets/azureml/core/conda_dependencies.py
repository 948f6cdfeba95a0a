"""``azureml.core.conda_dependencies`` for ``targets``: :class:`CondaDependencies` (the
one of :mod:`targets.runconfig.conda`)."""

from __future__ import annotations

from targets.runconfig.conda import CondaDependencies

__all__ = ["CondaDependencies"]
