"""``azureml.core.workspace`` inside a run (see ``_service``)."""

from ._service import Workspace

__all__ = ["Workspace"]
