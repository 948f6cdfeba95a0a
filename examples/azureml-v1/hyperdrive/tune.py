"""An Azure ML v1 HyperDrive control script with only its imports changed
(``azureml.core`` -> ``targets.azureml.core``, ``azureml.train.hyperdrive`` ->
``targets.azureml.train.hyperdrive``): tune ``train.py``'s learning rate and batch size
with random sampling and a bandit policy on the local target, wait, and read the best
trial back."""

from targets.azureml.core import Experiment, ScriptRunConfig, Workspace
from targets.azureml.train.hyperdrive import (
    BanditPolicy,
    HyperDriveConfig,
    PrimaryMetricGoal,
    RandomParameterSampling,
    choice,
    loguniform,
)

ws = Workspace.from_config()
experiment = Experiment(workspace=ws, name="hyperdrive-example")

src = ScriptRunConfig(
    source_directory=".",
    script="train.py",
    arguments=["--epochs", 4],
    compute_target="local",
)

param_sampling = RandomParameterSampling(
    {
        "--learning_rate": loguniform(-9, -1),  # exp(-9) .. exp(-1)
        "--batch_size": choice(16, 32, 64),
    },
    properties={"seed": 11},
)
early_termination_policy = BanditPolicy(evaluation_interval=1, slack_factor=0.2, delay_evaluation=3)

hyperdrive_config = HyperDriveConfig(
    run_config=src,
    hyperparameter_sampling=param_sampling,
    policy=early_termination_policy,
    primary_metric_name="validation_acc",
    primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
    max_total_runs=6,
    max_concurrent_runs=3,
)

hyperdrive_run = experiment.submit(hyperdrive_config)
hyperdrive_run.wait_for_completion(show_output=True)

best_run = hyperdrive_run.get_best_run_by_primary_metric()
metrics = hyperdrive_run.get_metrics()
print("best run", best_run.id)
print("best validation_acc", metrics[best_run.id]["validation_acc"][-1])
print("best hyperparameters", hyperdrive_run.get_hyperparameters()[best_run.id])
for child in hyperdrive_run.get_children_sorted_by_primary_metric(top=3):
    print("top", child["run_id"], child["best_primary_metric"], child["status"])
