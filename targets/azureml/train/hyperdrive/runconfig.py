"""``azureml.train.hyperdrive.runconfig``: ``HyperDriveConfig`` and ``PrimaryMetricGoal``.

``Experiment(ws, name).submit(HyperDriveConfig(...))`` starts a v2 sweep (the engine of
``targets run sweep.yml``, :mod:`targets.jobs.sweep`) whose trials are the
``ScriptRunConfig`` with the sampled values appended to its arguments, as v1 passes them
(``--learning_rate 0.01``). It returns a :class:`~targets.azureml.train.hyperdrive.run.
HyperDriveRun` at once; the sweep runs in a detached driver process and outlives the
script that submitted it.

Every check runs when the configuration is made (as in v1) or when it is submitted
(the script, the source folder, the compute target), before anything is written.
"""

from __future__ import annotations

import enum
import warnings
from typing import TYPE_CHECKING, Any

from targets.azureml.train.hyperdrive.exceptions import HyperDriveConfigException
from targets.azureml.train.hyperdrive.policy import EarlyTerminationPolicy, NoTerminationPolicy
from targets.azureml.train.hyperdrive.sampling import (
    BayesianParameterSampling,
    HyperParameterSampling,
)
from targets.experiment import ScriptRunConfig

if TYPE_CHECKING:
    from targets.azureml.train.hyperdrive.run import HyperDriveRun
    from targets.experiment import Experiment

__all__ = ["MAX_DURATION_MINUTES", "HyperDriveConfig", "HyperDriveRunConfig", "PrimaryMetricGoal"]

MAX_DURATION_MINUTES = 10080
"""v1's limit of a HyperDrive run's duration (7 days); a larger value is lowered to it."""


class PrimaryMetricGoal(enum.Enum):
    """Whether a larger or a smaller primary metric is better."""

    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"

    @staticmethod
    def from_str(goal: str) -> PrimaryMetricGoal:
        """The goal named ``goal`` (``maximize``/``minimize``, any case)."""
        if isinstance(goal, str):
            for member in PrimaryMetricGoal:
                if goal.strip().lower() == member.name.lower():
                    return member
        raise HyperDriveConfigException(
            f"unknown primary_metric_goal {goal!r}",
            hint="use PrimaryMetricGoal.MAXIMIZE or PrimaryMetricGoal.MINIMIZE",
        )


def _goal(goal: Any) -> PrimaryMetricGoal:
    if isinstance(goal, PrimaryMetricGoal):
        return goal
    if goal is None:
        raise HyperDriveConfigException(
            "HyperDriveConfig: primary_metric_goal is required",
            hint="primary_metric_goal=PrimaryMetricGoal.MAXIMIZE (or MINIMIZE)",
        )
    return PrimaryMetricGoal.from_str(goal)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HyperDriveConfigException(
            f"HyperDriveConfig: {name} must be a whole number >= 1, got {value!r}",
            hint=f"e.g. {name}=20",
        )
    return value


class HyperDriveConfig:
    """A HyperDrive run: which script runs (``run_config``, a ``ScriptRunConfig``, or
    v1's ``estimator``), the search space and its sampling, the early-termination
    ``policy``, the metric the trials log and its goal, and the limits.

    ``resume_from``, ``resume_child_runs`` and ``pipeline`` are refused (warm starts and
    pipeline trials are not supported); ``debug_flag`` is accepted and unused.
    Raises HyperDriveConfigException (exit code 2) for bad input.
    """

    def __init__(
        self,
        hyperparameter_sampling: HyperParameterSampling | None = None,
        primary_metric_name: str | None = None,
        primary_metric_goal: PrimaryMetricGoal | str | None = None,
        max_total_runs: int | None = None,
        max_concurrent_runs: int | None = None,
        max_duration_minutes: int = MAX_DURATION_MINUTES,
        policy: EarlyTerminationPolicy | None = None,
        estimator: ScriptRunConfig | None = None,
        run_config: ScriptRunConfig | None = None,
        resume_from: Any = None,
        resume_child_runs: Any = None,
        pipeline: Any = None,
        debug_flag: Any = None,
    ) -> None:
        for name, value in (
            ("resume_from", resume_from),
            ("resume_child_runs", resume_child_runs),
            ("pipeline", pipeline),
        ):
            if value is not None:
                raise HyperDriveConfigException(
                    f"HyperDriveConfig: {name} is not supported by targets",
                    hint="give the trial as run_config=ScriptRunConfig(...) and start a new "
                    "HyperDrive run",
                )
        given = [v for v in (estimator, run_config) if v is not None]
        if len(given) != 1:
            raise HyperDriveConfigException(
                "HyperDriveConfig: give exactly one of run_config and estimator",
                hint="run_config=ScriptRunConfig(source_directory=..., script=..., ...)",
            )
        trial = given[0]
        if not isinstance(trial, ScriptRunConfig):
            raise HyperDriveConfigException(
                "HyperDriveConfig: run_config must be a ScriptRunConfig, got "
                f"{type(trial).__name__}",
                hint="wrap a RunConfiguration: ScriptRunConfig(source_directory='.', "
                "script='train.py', run_config=rc)",
            )
        if not trial.run_config.script and not trial.run_config.command:
            raise HyperDriveConfigException(
                "HyperDriveConfig: the ScriptRunConfig has no script or command to run",
                hint="ScriptRunConfig(source_directory='.', script='train.py')",
            )
        if not isinstance(hyperparameter_sampling, HyperParameterSampling):
            raise HyperDriveConfigException(
                "HyperDriveConfig: hyperparameter_sampling must be a RandomParameterSampling, "
                f"GridParameterSampling or BayesianParameterSampling, got "
                f"{hyperparameter_sampling!r}",
                hint="e.g. RandomParameterSampling({'--learning_rate': uniform(0.001, 0.1)})",
            )
        if not isinstance(primary_metric_name, str) or not primary_metric_name.strip():
            raise HyperDriveConfigException(
                "HyperDriveConfig: primary_metric_name is required: the name of the metric "
                "the training script logs",
                hint="e.g. primary_metric_name='accuracy' for run.log('accuracy', value)",
            )
        goal = _goal(primary_metric_goal)
        total = _count("max_total_runs", max_total_runs)
        concurrent = (
            None
            if max_concurrent_runs is None
            else _count("max_concurrent_runs", max_concurrent_runs)
        )
        duration = _count("max_duration_minutes", max_duration_minutes)
        if duration > MAX_DURATION_MINUTES:
            warnings.warn(
                f"max_duration_minutes {duration} is above Azure ML's limit of "
                f"{MAX_DURATION_MINUTES}; {MAX_DURATION_MINUTES} is used",
                stacklevel=2,
            )
            duration = MAX_DURATION_MINUTES
        if policy is not None and not isinstance(policy, EarlyTerminationPolicy):
            raise HyperDriveConfigException(
                f"HyperDriveConfig: policy must be an early-termination policy, got {policy!r}",
                hint="BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy, "
                "NoTerminationPolicy or None",
            )
        policy = policy or NoTerminationPolicy()
        if isinstance(hyperparameter_sampling, BayesianParameterSampling) and not isinstance(
            policy, NoTerminationPolicy
        ):
            raise HyperDriveConfigException(
                "HyperDriveConfig: Bayesian sampling takes no early-termination policy",
                hint="leave policy out (or NoTerminationPolicy()), or use random sampling",
            )
        self._estimator = estimator
        self._run_config = run_config
        self._trial = trial
        self._sampling = hyperparameter_sampling
        self._policy = policy
        self._primary_metric_config = {"name": primary_metric_name, "goal": goal.name.lower()}
        self._max_total_runs = total
        # v1: None runs every trial at once (as far as the compute allows).
        self._max_concurrent_runs = concurrent or total
        self._max_duration_minutes = duration
        self._debug_flag = debug_flag

    # -- v1's read-only properties ---------------------------------------------------------

    @property
    def estimator(self) -> ScriptRunConfig | None:
        return self._estimator

    @property
    def run_config(self) -> ScriptRunConfig | None:
        return self._run_config

    @property
    def pipeline(self) -> None:
        return None

    @property
    def source_directory(self) -> str:
        return self._trial.source_directory

    @property
    def hyperparameter_sampling(self) -> HyperParameterSampling:
        return self._sampling

    @property
    def policy(self) -> EarlyTerminationPolicy:
        return self._policy

    @property
    def primary_metric_name(self) -> str:
        return self._primary_metric_config["name"]

    @property
    def primary_metric_goal(self) -> PrimaryMetricGoal:
        return PrimaryMetricGoal.from_str(self._primary_metric_config["goal"])

    @property
    def max_total_runs(self) -> int:
        return self._max_total_runs

    @property
    def max_concurrent_runs(self) -> int:
        return self._max_concurrent_runs

    @property
    def max_duration_minutes(self) -> int:
        return self._max_duration_minutes

    # -- submission (Experiment.submit calls this) -----------------------------------------

    def _targets_submit(
        self, experiment: Experiment, tags: dict[str, str], **kwargs: Any
    ) -> HyperDriveRun:
        """Start the HyperDrive run in ``experiment``; return it without waiting."""
        from targets.azureml.train.hyperdrive._submit import start_sweep
        from targets.azureml.train.hyperdrive.run import HyperDriveRun

        if kwargs:
            raise HyperDriveConfigException(
                f"Experiment.submit(HyperDriveConfig): unknown arguments {sorted(kwargs)}",
                hint="submit(config) or submit(config, tags={...})",
            )
        run_id = start_sweep(self, experiment, tags)
        return HyperDriveRun(experiment, run_id, hyperdrive_config=self)


class HyperDriveRunConfig(HyperDriveConfig):
    """v1's older name, with the estimator first."""

    def __init__(
        self,
        estimator: ScriptRunConfig | None = None,
        hyperparameter_sampling: HyperParameterSampling | None = None,
        primary_metric_name: str | None = None,
        primary_metric_goal: PrimaryMetricGoal | str | None = None,
        max_total_runs: int | None = None,
        max_concurrent_runs: int | None = None,
        max_duration_minutes: int = MAX_DURATION_MINUTES,
        policy: EarlyTerminationPolicy | None = None,
    ) -> None:
        super().__init__(
            hyperparameter_sampling=hyperparameter_sampling,
            primary_metric_name=primary_metric_name,
            primary_metric_goal=primary_metric_goal,
            max_total_runs=max_total_runs,
            max_concurrent_runs=max_concurrent_runs,
            max_duration_minutes=max_duration_minutes,
            policy=policy,
            estimator=estimator,
        )
