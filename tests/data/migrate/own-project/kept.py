# targets-migrate: skip
from azureml.core import Workspace

print(Workspace)
