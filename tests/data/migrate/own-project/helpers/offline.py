# Only Run, and no get_context call: still a training helper.
from azureml.core.run import Run

OFFLINE = Run
