# A control script written for the targets test suite (not copied from anywhere): the
# shapes of import that v1 code uses, in one file.
import os

import azureml.core
import azureml.core as core
from azureml.core import Workspace, Experiment  # trailing comment stays
from azureml.core.compute import ComputeTarget, AksCompute
from azureml.core.webservice import AciWebservice
from azureml.pipeline.core import Pipeline
from azureml.pipeline.steps import PythonScriptStep

STEPS = "steps"

ws = azureml.core.Workspace.from_config()
print(core.VERSION if hasattr(core, "VERSION") else "targets")
experiment = Experiment(ws, "pipeline")
target = ComputeTarget(workspace=ws, name="cpu")
prep = PythonScriptStep(script_name="prep.py", source_directory=STEPS, compute_target=target)
batch = PythonScriptStep(
    name="batch",
    script_name="batch.py",
    source_directory=os.path.join(STEPS),
    compute_target=target,
)
run = experiment.submit(Pipeline(workspace=ws, steps=[prep, batch]))
