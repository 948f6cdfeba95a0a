"""Find or create a cluster, v1's persistent AmlCompute. Who makes its nodes is the
workspace's choice: ``cluster_provider`` in ``.azureml/config.json`` (default docker),
with ``cluster_provider_options`` (for docker: ``{"image": "<a node image with sshd>"}``).
Azure ML v1 code; only the imports say ``targets.azureml``."""

from targets.azureml.core import Workspace
from targets.azureml.core.compute import AmlCompute, ComputeTarget
from targets.azureml.core.compute_target import ComputeTargetException

ws = Workspace.from_config()

# Choose a name for your CPU cluster
cpu_cluster_name = "cpu-cluster"

# Verify that the cluster does not exist already
try:
    cpu_cluster = ComputeTarget(workspace=ws, name=cpu_cluster_name)
    print("Found existing cluster, use it.")
except ComputeTargetException:
    compute_config = AmlCompute.provisioning_configuration(
        vm_size="STANDARD_D2_V2", max_nodes=4, idle_seconds_before_scaledown=600
    )
    cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)

cpu_cluster.wait_for_completion(show_output=True)
print(cpu_cluster.get_status().serialize())

# Scale settings change at once; delete() removes the nodes and the cluster's key.
cpu_cluster.update(min_nodes=0, max_nodes=2, idle_seconds_before_scaledown=300)
