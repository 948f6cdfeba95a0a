"""A two-step v1 pipeline: prepare data, then train on it. Azure ML v1 control code; only
the imports say ``targets.azureml``.

    python pipeline.py                       # on this machine
    TRAIN_TARGET=my-vm python pipeline.py    # the training step on an attached VM
"""

import os

from targets.azureml.core import Experiment, Workspace
from targets.azureml.core.runconfig import RunConfiguration
from targets.azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter
from targets.azureml.pipeline.steps import PythonScriptStep

here = os.path.dirname(os.path.abspath(__file__))
ws = Workspace.from_config()

run_config = RunConfiguration()
run_config.environment.python.user_managed_dependencies = True

prepared_data = PipelineData("prepared_data")
learning_rate = PipelineParameter(name="learning_rate", default_value=0.01)

prep_step = PythonScriptStep(
    name="prepare data",
    script_name="prep.py",
    arguments=["--output", prepared_data, "--rows", 100],
    outputs=[prepared_data],
    compute_target="local",
    source_directory=os.path.join(here, "prep"),
    runconfig=run_config,
    allow_reuse=True,
)

train_step = PythonScriptStep(
    name="train",
    script_name="train.py",
    arguments=["--input", prepared_data, "--learning-rate", learning_rate],
    inputs=[prepared_data],
    compute_target=os.environ.get("TRAIN_TARGET", "local"),
    source_directory=os.path.join(here, "train"),
    runconfig=run_config,
    allow_reuse=False,
)

pipeline = Pipeline(workspace=ws, steps=[prep_step, train_step])
pipeline.validate()
print("Pipeline validated")

pipeline_run = Experiment(ws, "prep-and-train").submit(
    pipeline, pipeline_parameters={"learning_rate": 0.05}
)
pipeline_run.wait_for_completion(show_output=True)

for step_run in pipeline_run.get_steps():
    print(step_run.name, step_run.get_status())
