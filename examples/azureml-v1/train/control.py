"""An Azure ML v1 control script with only its imports changed (``azureml.core`` ->
``targets.azureml.core``): submit ``train.py``, wait for it, then read the run back as v1
does (metrics, details, files)."""

from targets.azureml.core import Experiment, ScriptRunConfig, Workspace
from targets.azureml.core.run import Run

ws = Workspace.from_config()
experiment = Experiment(workspace=ws, name="train-example")
config = ScriptRunConfig(
    source_directory=".",
    script="train.py",
    arguments=["--alpha", 0.5, "--epochs", 3],
    compute_target="local",
)
run = experiment.submit(config, tags={"purpose": "example"})
run.wait_for_completion(show_output=True)

details = run.get_details()
print("status", details["status"], "on", details["target"])
for name, value in sorted(run.get_metrics().items()):
    print("metric", name, value)
print("tags", sorted(run.get_tags().items()))
print("files", [name for name in run.get_file_names() if name.startswith("outputs/")])
run.download_files(prefix="outputs/", output_directory="downloaded", append_prefix=False)

# The same run, opened later as v1 does.
again = Run(experiment, run.id)
print("reopened", again.id, again.experiment.name, again.get_status())
