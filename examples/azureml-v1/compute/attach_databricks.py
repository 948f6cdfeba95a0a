"""Attach an Azure Databricks workspace as Azure ML v1's documentation does (resource
group, workspace name, access token: no cluster), then run a script on it. The access
token goes to the OS keyring. Azure ML v1 code; only the imports say ``targets.azureml``.

v1 gave the cluster to each run or DatabricksStep, and so does this: the run names it in
``environment.databricks.cluster`` (v1's ``DatabricksCluster`` fields: an
``existing_cluster_id``, or ``spark_version``, ``node_type`` and ``num_workers``)."""

import os

from targets.azureml.core import Experiment, ScriptRunConfig, Workspace
from targets.azureml.core.compute import ComputeTarget, DatabricksCompute
from targets.azureml.core.compute_target import ComputeTargetException
from targets.azureml.core.runconfig import RunConfiguration
from targets.runconfig.model import DatabricksSection

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
    )
    databricks_compute = ComputeTarget.attach(ws, databricks_compute_name, attach_config)
    databricks_compute.wait_for_completion(True)

print(sorted(ws.compute_targets))

if os.environ.get("AML_DATABRICKS_CLUSTER_ID"):
    run_config = RunConfiguration()
    run_config.target = databricks_compute_name
    run_config.environment.python.user_managed_dependencies = True
    run_config.environment.databricks = DatabricksSection(
        cluster={"existing_cluster_id": os.environ["AML_DATABRICKS_CLUSTER_ID"]}
    )
    src = ScriptRunConfig(source_directory=".", script="train.py", run_config=run_config)
    run = Experiment(workspace=ws, name="databricks-example").submit(src)
    run.wait_for_completion(show_output=True)
