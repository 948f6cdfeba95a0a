"""``azureml.core.compute`` for ``targets``: compute targets by name, attached and made
through the same library operations as ``targets attach | create | update | detach |
delete`` (see ``docs/azureml-v1.md``)."""

from targets.azureml.core.compute.amlcompute import (
    AmlCompute,
    AmlComputeProvisioningConfiguration,
    AmlComputeStatus,
)
from targets.azureml.core.compute.compute import (
    ComputeTarget,
    ComputeTargetAttachConfiguration,
    ComputeTargetProvisioningConfiguration,
)
from targets.azureml.core.compute.databricks import DatabricksAttachConfiguration, DatabricksCompute
from targets.azureml.core.compute.hdinsight import HDInsightAttachConfiguration, HDInsightCompute
from targets.azureml.core.compute.remote import RemoteCompute, RemoteComputeAttachConfiguration
from targets.azureml.core.compute_target import ComputeTargetException

__all__ = [
    "AmlCompute",
    "AmlComputeProvisioningConfiguration",
    "AmlComputeStatus",
    "ComputeTarget",
    "ComputeTargetAttachConfiguration",
    "ComputeTargetException",
    "ComputeTargetProvisioningConfiguration",
    "DatabricksAttachConfiguration",
    "DatabricksCompute",
    "HDInsightAttachConfiguration",
    "HDInsightCompute",
    "RemoteCompute",
    "RemoteComputeAttachConfiguration",
]
