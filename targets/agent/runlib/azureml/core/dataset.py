"""``azureml.core.dataset`` inside a run (see ``_service``)."""

from ._service import Dataset

__all__ = ["Dataset"]
