"""Save a run configuration in the project's .azureml folder and load it back, then
run it with the CLI: targets run .azureml/example.runconfig

Azure ML v1 code; only the imports changed.
"""

from targets.azureml.core import Environment, RunConfiguration
from targets.azureml.core.runconfig import DEFAULT_CPU_IMAGE

run_config = RunConfiguration()
run_config.script = "train.py"
run_config.environment = Environment("example-env")
run_config.environment.python.user_managed_dependencies = True
run_config.environment.environment_variables = {"MODE": "from a runconfig file"}
run_config.save(path=".", name="example")

loaded = RunConfiguration.load(path=".", name="example")
print(loaded.script, loaded.environment.environment_variables)
print("a Docker run would build on", DEFAULT_CPU_IMAGE)
