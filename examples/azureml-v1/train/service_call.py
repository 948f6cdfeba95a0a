"""A v1 training script that reads a registered dataset: under targets this names the call
and what to use instead, and the run fails."""

from azureml.core import Dataset, Run

run = Run.get_context()
run.log("started", 1)
dataset = Dataset.get_by_name(run.experiment.workspace, name="mnist")
