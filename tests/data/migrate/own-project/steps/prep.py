# A pipeline step (training script) written for the targets test suite: it runs inside a
# run, where azureml.core.Run comes from the run library, so it must stay as it is.
from azureml.core import Dataset, Run

run = Run.get_context()
run.log("rows", 3)
print(Dataset)
