# targets-migrate: control
# Uses only Run, but its author marks it as control code.
from azureml.core import Run

print(Run)
