"""``azureml.core.experiment`` for ``targets``: :class:`Experiment` (the one of
:mod:`targets.experiment`)."""

from __future__ import annotations

from targets.experiment import Experiment

__all__ = ["Experiment"]
