"""``azureml.core`` inside a run under ``targets``: ``Run`` and the names training scripts
import with it. Calls that need the Azure ML service raise ``ServiceCallError``."""

from ._service import Dataset, Datastore, Experiment, Model, Workspace
from .run import Run

__all__ = ["Dataset", "Datastore", "Experiment", "Model", "Run", "Workspace"]
