"""``azureml.core.datastore`` inside a run (see ``_service``)."""

from ._service import Datastore

__all__ = ["Datastore"]
