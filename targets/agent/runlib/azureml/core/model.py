"""``azureml.core.model`` inside a run (see ``_service``)."""

from ._service import Model

__all__ = ["Model"]
