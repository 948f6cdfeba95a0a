"""``azureml.train.hyperdrive`` for ``targets``: hyperparameter tuning with v1's names,
run by the v2 sweep engine (:mod:`targets.jobs.sweep`, Optuna).

>>> from targets.azureml.train.hyperdrive import (
...     HyperDriveConfig, RandomParameterSampling, BanditPolicy, PrimaryMetricGoal,
...     choice, uniform)
>>> sampling = RandomParameterSampling(
...     {"--learning_rate": uniform(0.001, 0.1), "--batch_size": choice(16, 32, 64)})
>>> config = HyperDriveConfig(run_config=src, hyperparameter_sampling=sampling,
...     policy=BanditPolicy(evaluation_interval=1, slack_factor=0.1),
...     primary_metric_name="accuracy", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
...     max_total_runs=20, max_concurrent_runs=4)
>>> hd_run = Experiment(ws, "tune").submit(config)
>>> hd_run.wait_for_completion(show_output=True)
>>> best = hd_run.get_best_run_by_primary_metric()

Each trial is the ``ScriptRunConfig`` with the sampled values appended to its arguments
(``--learning_rate 0.01 --batch_size 32``); the training script logs the primary metric
with ``Run.get_context().log(name, value)`` (or ``mlflow.log_metric``). See
``docs/azureml-v1.md``.
"""

from __future__ import annotations

from targets.azureml.train.hyperdrive.exceptions import HyperDriveConfigException
from targets.azureml.train.hyperdrive.parameter_expressions import (
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from targets.azureml.train.hyperdrive.policy import (
    BanditPolicy,
    EarlyTerminationPolicy,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    TruncationSelectionPolicy,
)
from targets.azureml.train.hyperdrive.run import HyperDriveRun
from targets.azureml.train.hyperdrive.runconfig import (
    HyperDriveConfig,
    HyperDriveRunConfig,
    PrimaryMetricGoal,
)
from targets.azureml.train.hyperdrive.sampling import (
    BayesianParameterSampling,
    GridParameterSampling,
    HyperParameterSampling,
    RandomParameterSampling,
)

__all__ = [
    "BanditPolicy",
    "BayesianParameterSampling",
    "EarlyTerminationPolicy",
    "GridParameterSampling",
    "HyperDriveConfig",
    "HyperDriveConfigException",
    "HyperDriveRun",
    "HyperDriveRunConfig",
    "HyperParameterSampling",
    "MedianStoppingPolicy",
    "NoTerminationPolicy",
    "PrimaryMetricGoal",
    "RandomParameterSampling",
    "TruncationSelectionPolicy",
    "choice",
    "lognormal",
    "loguniform",
    "normal",
    "qlognormal",
    "qloguniform",
    "qnormal",
    "quniform",
    "randint",
    "uniform",
]
