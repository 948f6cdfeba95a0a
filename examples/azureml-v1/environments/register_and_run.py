"""Register an environment, get it back by name and version, list the workspace's
environments, and run a training script in it on the local target.

Azure ML v1 code; only the imports changed (azureml.core -> targets.azureml.core).
"""

from targets.azureml.core import Environment, Experiment, ScriptRunConfig, Workspace

ws = Workspace.from_config()

# A user-managed environment: the run uses the Python you run this script with.
env = Environment(name="example-env")
env.python.user_managed_dependencies = True
env.environment_variables = {"MODE": "first"}
env = env.register(workspace=ws)
print("registered", env.name, "version", env.version)

env.environment_variables["MODE"] = "second"
env = env.register(workspace=ws)
print("registered", env.name, "version", env.version)

first = Environment.get(workspace=ws, name="example-env", version="1")
for name, listed in Environment.list(workspace=ws).items():
    if not name.startswith("AzureML-"):
        print("environment", name, "latest version", listed.version)

src = ScriptRunConfig(source_directory=".", script="train.py", environment=first)
run = Experiment(workspace=ws, name="environments").submit(config=src)
run.wait_for_completion(show_output=True)
print("status:", run.get_status())
