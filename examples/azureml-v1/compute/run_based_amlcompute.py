"""Run-based compute: a cluster made for one run and deleted after it (v1's
``run_config.target = "amlcompute"``). Azure ML v1 code; only the imports say
``targets.azureml``. The nodes come from the workspace's cluster provider
(``cluster_provider`` and ``cluster_provider_options`` in ``.azureml/config.json``).

The script may end as soon as the run is submitted: the run's cluster deletes itself
once the run has ended (its reconcile process does it, not this script). Set
``WAIT=1`` to follow the run here."""

import os

from targets.azureml.core import Experiment, ScriptRunConfig, Workspace
from targets.azureml.core.runconfig import RunConfiguration

ws = Workspace.from_config()

run_temp_compute = RunConfiguration()
# The reserved name asks for a cluster of the run's own.
run_temp_compute.target = "amlcompute"
# Its size and how large it may grow (AmlCompute.supported_vmsizes(ws) lists the sizes).
run_temp_compute.amlcompute.vm_size = "STANDARD_D2_V2"
run_temp_compute.amlcompute.cluster_max_node_count = 1

# The node image's own Python runs the script.
run_temp_compute.environment.python.user_managed_dependencies = True
run_temp_compute.environment.python.interpreter_path = "python3"

src = ScriptRunConfig(source_directory=".", script="train.py", run_config=run_temp_compute)
run = Experiment(workspace=ws, name="run-based").submit(src)
print(run.id)
if os.environ.get("WAIT"):
    run.wait_for_completion(show_output=True)
