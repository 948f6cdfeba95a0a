"""``azureml.core.experiment`` inside a run (see ``_service``)."""

from ._service import Experiment

__all__ = ["Experiment"]
