"""A pipeline whose second step runs a Python script on Databricks. Azure ML v1 control
code; only the imports say ``targets.azureml``. Attach the Databricks workspace first
(``DatabricksCompute.attach_configuration``, see ../compute/attach_databricks.py, or
``targets attach NAME --type databricks ...``).

    DATABRICKS_TARGET=my-dbx python databricks_step.py
"""

import os

from targets.azureml.core import Experiment, Workspace
from targets.azureml.core.compute import ComputeTarget
from targets.azureml.core.runconfig import RunConfiguration
from targets.azureml.pipeline.core import Pipeline, PipelineData
from targets.azureml.pipeline.steps import DatabricksStep, PythonScriptStep

here = os.path.dirname(os.path.abspath(__file__))
ws = Workspace.from_config()
databricks_compute = ComputeTarget(workspace=ws, name=os.environ["DATABRICKS_TARGET"])

run_config = RunConfiguration()
run_config.environment.python.user_managed_dependencies = True
prepared = PipelineData("prepared")
prep_step = PythonScriptStep(
    name="prepare data",
    script_name="prep.py",
    arguments=["--output", prepared, "--rows", 20],
    outputs=[prepared],
    source_directory=os.path.join(here, "prep"),
    runconfig=run_config,
)

summary = PipelineData("summary")
dbx_step = DatabricksStep(
    name="summarize on databricks",
    inputs=[prepared],
    outputs=[summary],
    python_script_name="summarize.py",
    python_script_params=["--column", "y"],
    source_directory=os.path.join(here, "dbx"),
    run_name="summarize",
    compute_target=databricks_compute,
    allow_reuse=False,
)

pipeline_run = Experiment(ws, "databricks-pipeline").submit(Pipeline(ws, [prep_step, dbx_step]))
pipeline_run.wait_for_completion(show_output=True)
step = pipeline_run.find_step_run("summarize on databricks")[0]
with open(os.path.join(step.get_output_data("summary").path, "summary.txt")) as fh:
    print(fh.read(), end="")
