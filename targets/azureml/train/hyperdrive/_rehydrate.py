"""A :class:`HyperDriveConfig` rebuilt from what a HyperDrive run recorded (for
``HyperDriveRun(experiment, run_id).hyperdrive_config``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from targets.azureml.train.hyperdrive.exceptions import HyperDriveConfigException
from targets.azureml.train.hyperdrive.policy import (
    BanditPolicy,
    EarlyTerminationPolicy,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    TruncationSelectionPolicy,
)
from targets.azureml.train.hyperdrive.runconfig import HyperDriveConfig, PrimaryMetricGoal
from targets.azureml.train.hyperdrive.sampling import (
    BayesianParameterSampling,
    GridParameterSampling,
    HyperParameterSampling,
    RandomParameterSampling,
)

if TYPE_CHECKING:
    from targets.azureml.train.hyperdrive._submit import TrialSpec

__all__ = ["config_of"]


def sampling_of(data: dict[str, Any]) -> HyperParameterSampling:
    name = str(data.get("name", "")).lower()
    space = data.get("parameter_space") or {}
    if name == RandomParameterSampling.SAMPLING_NAME.lower():
        return RandomParameterSampling(space, data.get("properties"))
    if name == GridParameterSampling.SAMPLING_NAME.lower():
        return GridParameterSampling(space)
    if name == BayesianParameterSampling.SAMPLING_NAME.lower():
        return BayesianParameterSampling(space)
    raise HyperDriveConfigException(f"unknown sampling {data.get('name')!r} in the run's record")


def policy_of(data: dict[str, Any]) -> EarlyTerminationPolicy:
    name = str(data.get("name", ""))
    properties = dict(data.get("properties") or {})
    kinds: dict[str, type[EarlyTerminationPolicy]] = {
        BanditPolicy.POLICY_NAME: BanditPolicy,
        MedianStoppingPolicy.POLICY_NAME: MedianStoppingPolicy,
        TruncationSelectionPolicy.POLICY_NAME: TruncationSelectionPolicy,
        NoTerminationPolicy.POLICY_NAME: NoTerminationPolicy,
    }
    kind = kinds.get(name)
    if kind is None:
        raise HyperDriveConfigException(f"unknown policy {name!r} in the run's record")
    return kind(**properties)


def config_of(spec: TrialSpec) -> HyperDriveConfig:
    from targets.experiment import ScriptRunConfig
    from targets.runconfig.model import RunConfiguration

    trial = ScriptRunConfig(
        source_directory=spec.source_directory,
        run_config=RunConfiguration.model_validate(spec.runconfig),
    )
    return HyperDriveConfig(
        hyperparameter_sampling=sampling_of(spec.generator_config),
        primary_metric_name=spec.primary_metric,
        primary_metric_goal=PrimaryMetricGoal.from_str(spec.goal),
        max_total_runs=spec.max_total_runs,
        max_concurrent_runs=spec.max_concurrent_runs,
        max_duration_minutes=spec.max_duration_minutes,
        policy=policy_of(spec.policy_config),
        run_config=trial,
    )
