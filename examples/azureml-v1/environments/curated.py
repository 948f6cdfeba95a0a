"""Look at a curated environment and derive your own from it.

Azure ML v1 code; only the imports changed. Curated names resolve to the package lists
Microsoft published for them (see the README).
"""

from targets.azureml.core import Environment, Workspace
from targets.azureml.core.conda_dependencies import CondaDependencies

ws = Workspace.from_config()

curated = Environment.get(workspace=ws, name="AzureML-Minimal")
print(curated.name, curated.python.conda_dependencies)

# The usual v1 pattern: start from your own conda specification instead of the
# curated one's pinned Python 3.6.
mine = Environment("sklearn-env")
mine.python.conda_dependencies = CondaDependencies.create(
    conda_packages=["scikit-learn"], pip_packages=["joblib"]
)
print(mine.register(workspace=ws).version)
