"""``azureml.train.hyperdrive.policy``: early termination of poor trials.

Each policy is the v2 sweep's ``early_termination`` (:mod:`targets.jobs.sweep` applies
it with Optuna pruners while the trials run). A "step" is one logged value of the
primary metric: the n-th ``run.log(primary_metric_name, value)`` of a trial is step
n - 1, and ``evaluation_interval``/``delay_evaluation`` count in those, as in v1.

- ``BanditPolicy``: stop a trial whose metric is worse than the best trial's at the same
  step by more than ``slack_factor`` (a ratio) or ``slack_amount`` (an absolute amount).
- ``MedianStoppingPolicy``: stop a trial whose metric is worse than the median of the
  other trials' at the same step.
- ``TruncationSelectionPolicy``: stop a trial in the worst ``truncation_percentage``
  percent at the step.
- ``NoTerminationPolicy``: none (the same as ``policy=None``).
"""

from __future__ import annotations

from typing import Any

from targets.azureml.train.hyperdrive.exceptions import HyperDriveConfigException

__all__ = [
    "BanditPolicy",
    "EarlyTerminationPolicy",
    "MedianStoppingPolicy",
    "NoTerminationPolicy",
    "TruncationSelectionPolicy",
]


def _whole(policy: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HyperDriveConfigException(
            f"{policy}: {name} must be a whole number >= {minimum}, got {value!r}"
        )
    return value


class EarlyTerminationPolicy:
    """The base of the early-termination policies."""

    POLICY_NAME = ""

    def __init__(self, name: str, properties: dict[str, Any] | None = None) -> None:
        self._name = name
        self._properties: dict[str, Any] = dict(properties or {})

    def to_json(self) -> dict[str, Any]:
        """v1's JSON form: ``{"name", "properties"}``."""
        return {"name": self._name, "properties": dict(self._properties)}

    def _early_termination(self) -> dict[str, Any] | None:
        """The v2 sweep's ``early_termination`` (None: no policy)."""
        return None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EarlyTerminationPolicy)
            and type(other) is type(self)
            and self.to_json() == other.to_json()
        )


class _EvaluatedPolicy(EarlyTerminationPolicy):
    def __init__(
        self, name: str, evaluation_interval: int, delay_evaluation: int, **extra: Any
    ) -> None:
        interval = _whole(name, "evaluation_interval", evaluation_interval, 1)
        delay = _whole(name, "delay_evaluation", delay_evaluation, 0)
        super().__init__(
            name, {"evaluation_interval": interval, "delay_evaluation": delay, **extra}
        )

    @property
    def evaluation_interval(self) -> int:
        return int(self._properties["evaluation_interval"])

    @property
    def delay_evaluation(self) -> int:
        return int(self._properties["delay_evaluation"])


class BanditPolicy(_EvaluatedPolicy):
    """Stop a trial whose metric falls outside the slack allowed from the best trial.
    Give exactly one of ``slack_factor`` and ``slack_amount``."""

    POLICY_NAME = "Bandit"

    def __init__(
        self,
        evaluation_interval: int = 1,
        slack_factor: float | None = None,
        slack_amount: float | None = None,
        delay_evaluation: int = 0,
    ) -> None:
        if (slack_factor is None) == (slack_amount is None):
            raise HyperDriveConfigException(
                "BanditPolicy: give exactly one of slack_factor and slack_amount",
                hint="e.g. BanditPolicy(evaluation_interval=1, slack_factor=0.1)",
            )
        slack = slack_factor if slack_factor is not None else slack_amount
        which = "slack_factor" if slack_factor is not None else "slack_amount"
        if isinstance(slack, bool) or not isinstance(slack, int | float) or slack < 0:
            raise HyperDriveConfigException(
                f"BanditPolicy: {which} must be a number >= 0, got {slack!r}"
            )
        super().__init__(
            self.POLICY_NAME,
            evaluation_interval,
            delay_evaluation,
            **{which: float(slack)},
        )

    @property
    def slack_factor(self) -> float | None:
        return self._properties.get("slack_factor")

    @property
    def slack_amount(self) -> float | None:
        return self._properties.get("slack_amount")

    def _early_termination(self) -> dict[str, Any]:
        return {"type": "bandit", **self._properties}


class MedianStoppingPolicy(_EvaluatedPolicy):
    """Stop a trial whose metric is worse than the median of the others at that step."""

    POLICY_NAME = "MedianStopping"

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 5) -> None:
        super().__init__(self.POLICY_NAME, evaluation_interval, delay_evaluation)

    def _early_termination(self) -> dict[str, Any]:
        return {"type": "median_stopping", **self._properties}


class TruncationSelectionPolicy(_EvaluatedPolicy):
    """Stop the trials in the worst ``truncation_percentage`` percent (1-99) at a step."""

    POLICY_NAME = "TruncationSelection"

    def __init__(
        self, truncation_percentage: int, evaluation_interval: int = 1, delay_evaluation: int = 0
    ) -> None:
        if (
            isinstance(truncation_percentage, bool)
            or not isinstance(truncation_percentage, int)
            or not 1 <= truncation_percentage <= 99
        ):
            raise HyperDriveConfigException(
                "TruncationSelectionPolicy: truncation_percentage must be a whole number "
                f"from 1 to 99, got {truncation_percentage!r}"
            )
        super().__init__(
            self.POLICY_NAME,
            evaluation_interval,
            delay_evaluation,
            truncation_percentage=truncation_percentage,
        )

    @property
    def truncation_percentage(self) -> int:
        return int(self._properties["truncation_percentage"])

    def _early_termination(self) -> dict[str, Any]:
        return {"type": "truncation_selection", **self._properties}


class NoTerminationPolicy(EarlyTerminationPolicy):
    """No early termination: every trial runs to its end."""

    POLICY_NAME = "Default"

    def __init__(self) -> None:
        super().__init__(self.POLICY_NAME)
