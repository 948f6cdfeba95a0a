"""Attach an Azure Databricks workspace; the access token goes to the OS keyring. Azure
ML v1 code; only the imports say ``targets.azureml`` — plus ``cluster_id=`` (or
``new_cluster=``), which v1 gave to each DatabricksStep instead."""

import os

from targets.azureml.core import Workspace
from targets.azureml.core.compute import ComputeTarget, DatabricksCompute
from targets.azureml.core.compute_target import ComputeTargetException

ws = Workspace.from_config()

databricks_compute_name = os.environ.get("AML_DATABRICKS_COMPUTE_NAME", "databricks")
try:
    databricks_compute = ComputeTarget(workspace=ws, name=databricks_compute_name)
    print("Compute target already exists")
except ComputeTargetException:
    attach_config = DatabricksCompute.attach_configuration(
        resource_group=os.environ["AML_DATABRICKS_RESOURCE_GROUP"],
        workspace_name=os.environ["AML_DATABRICKS_WORKSPACE"],
        access_token=os.environ["AML_DATABRICKS_ACCESS_TOKEN"],
        cluster_id=os.environ["AML_DATABRICKS_CLUSTER_ID"],
    )
    databricks_compute = ComputeTarget.attach(ws, databricks_compute_name, attach_config)
    databricks_compute.wait_for_completion(True)
