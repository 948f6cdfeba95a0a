"""Score a folder of files with a ParallelRunStep: two worker processes, two files per
mini-batch. Azure ML v1 control code; only the imports say ``targets.azureml`` and the
input is a local folder (v1 took a FileDataset, which needs the Azure ML service).

    python parallel_run.py [FOLDER]
"""

import os
import sys

from targets.azureml.core import Environment, Experiment, Workspace
from targets.azureml.pipeline.core import Pipeline, PipelineData
from targets.azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

here = os.path.dirname(os.path.abspath(__file__))
ws = Workspace.from_config()
folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "texts")

batch_env = Environment(name="batch-env")
batch_env.python.user_managed_dependencies = True

parallel_run_config = ParallelRunConfig(
    source_directory=os.path.join(here, "batch_scoring"),
    entry_script="score.py",
    mini_batch_size="2",
    error_threshold=10,
    output_action="append_row",
    environment=batch_env,
    compute_target="local",
    node_count=1,
    process_count_per_node=2,
)

output_dir = PipelineData(name="scores")
parallel_run_step = ParallelRunStep(
    name="count-words",
    parallel_run_config=parallel_run_config,
    inputs=[folder],
    output=output_dir,
    arguments=["--keyword", "the"],
    allow_reuse=True,
)

pipeline = Pipeline(workspace=ws, steps=[parallel_run_step])
pipeline_run = Experiment(ws, "batch-scoring").submit(pipeline)
pipeline_run.wait_for_completion(show_output=True)

step_run = pipeline_run.find_step_run(parallel_run_step.name)[0]
step_run.get_output_data("scores").download(local_path="scores", overwrite=True)
with open(os.path.join("scores", "outputs", "scores", "parallel_run_step.txt")) as fh:
    print(fh.read(), end="")
