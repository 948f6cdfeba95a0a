"""``azureml.train.hyperdrive.sampling``: how the search space is walked.

``RandomParameterSampling`` is the engine's ``random`` (Optuna's random sampler; the
``properties`` ``{"seed": n}`` fixes it, ``{"rule": "sobol"}`` is accepted),
``GridParameterSampling`` is ``grid`` (``choice`` expressions only: every combination
once), ``BayesianParameterSampling`` is ``bayesian`` (Optuna's TPE sampler, where v1
used a Gaussian process; ``choice``, ``uniform`` and ``quniform`` only, as in v1).

The keys of ``parameter_space`` are the script's arguments: ``"--learning_rate"`` or
``"learning_rate"`` both give ``--learning_rate <value>`` on the trial's command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from targets.azureml.train.hyperdrive.exceptions import HyperDriveConfigException
from targets.azureml.train.hyperdrive.parameter_expressions import (
    expression_name,
    to_search_space,
)

__all__ = [
    "BayesianParameterSampling",
    "GridParameterSampling",
    "HyperParameterSampling",
    "RandomParameterSampling",
]


def flag_of(key: str) -> str:
    """The command-line flag of search-space key ``key``: itself when it starts with
    ``-``, else ``--key`` (v1's two spellings)."""
    return key if key.startswith("-") else f"--{key}"


def safe_name(key: str) -> str:
    """A v2 search-space name for ``key`` (letters, digits, underscores)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", key.lstrip("-"))
    return name if re.match(r"[A-Za-z_]", name) else f"p_{name}"


class HyperParameterSampling:
    """A search space and how to sample it (the base of the three v1 samplings)."""

    SAMPLING_NAME = ""
    _SUPPORTED: frozenset[str] | None = None  # None: every expression

    def __init__(
        self,
        sampling_method_name: str,
        parameter_space: Mapping[str, Any],
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self._sampling_method_name = sampling_method_name
        if not isinstance(parameter_space, Mapping) or not parameter_space:
            raise HyperDriveConfigException(
                f"{type(self).__name__}: parameter_space must be a non-empty dictionary "
                f"of argument name -> parameter expression, got {parameter_space!r}",
                hint="e.g. {'--learning_rate': uniform(0.001, 0.1), "
                "'--batch_size': choice(16, 32)}",
            )
        self._parameter_space: dict[str, Any] = dict(parameter_space)
        self._properties: dict[str, Any] = dict(properties or {})
        self._names: dict[str, str] = {}  # v2 name -> the key as given
        flags: dict[str, str] = {}
        for key, expression in self._parameter_space.items():
            if not isinstance(key, str) or not key.strip("-"):
                raise HyperDriveConfigException(
                    f"{type(self).__name__}: parameter name {key!r} is not an argument name",
                    hint="use the script's argument, e.g. '--learning_rate' or 'learning_rate'",
                )
            kind = expression_name(key, expression)
            if self._SUPPORTED is not None and kind not in self._SUPPORTED:
                raise HyperDriveConfigException(
                    f"{type(self).__name__}: parameter {key!r} uses {kind}(), but this "
                    f"sampling takes only {', '.join(sorted(self._SUPPORTED))}",
                    hint=self._unsupported_hint(),
                )
            to_search_space(key, expression)  # checks the arguments
            flag = flag_of(key)
            clash = flags.get(flag)
            if clash is not None:
                raise HyperDriveConfigException(
                    f"{type(self).__name__}: parameters {clash!r} and {key!r} name the "
                    "same argument",
                    hint="give each argument once",
                )
            flags[flag] = key
            name, n = safe_name(key), 1
            while name in self._names:  # '--a-b' and '--a_b' are two arguments
                n += 1
                name = f"{safe_name(key)}_{n}"
            self._names[name] = key

    @staticmethod
    def _unsupported_hint() -> str:
        return "use RandomParameterSampling for other distributions"

    @property
    def parameter_space(self) -> dict[str, Any]:
        return dict(self._parameter_space)

    def to_json(self) -> dict[str, Any]:
        """v1's JSON form: ``{"name", "parameter_space"[, "properties"]}``."""
        definition: dict[str, Any] = {
            "name": self._sampling_method_name,
            "parameter_space": self._parameter_space,
        }
        if self._properties:
            definition["properties"] = self._properties
        return definition

    # -- what the sweep engine reads -------------------------------------------------------

    def _argument_names(self) -> dict[str, str]:
        """v2 search-space name -> the key as given (its flag is :func:`flag_of`)."""
        return dict(self._names)

    def _search_space(self) -> dict[str, dict[str, Any]]:
        return {
            name: to_search_space(key, self._parameter_space[key])
            for name, key in self._names.items()
        }

    def _sampling_algorithm(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HyperParameterSampling)
            and type(other) is type(self)
            and self.to_json() == other.to_json()
        )


class RandomParameterSampling(HyperParameterSampling):
    """Random sampling over ``parameter_space``; ``properties`` may hold ``seed`` (an
    int) and ``rule`` (``random`` or ``sobol``; sobol is drawn as random)."""

    SAMPLING_NAME = "RANDOM"

    def __init__(
        self, parameter_space: Mapping[str, Any], properties: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(self.SAMPLING_NAME, parameter_space, properties)
        unknown = sorted(set(self._properties) - {"seed", "rule"})
        if unknown:
            raise HyperDriveConfigException(
                f"RandomParameterSampling: unknown properties {unknown}",
                hint="the properties are 'seed' (an int) and 'rule' ('random' or 'sobol')",
            )
        seed = self._properties.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise HyperDriveConfigException(
                f"RandomParameterSampling: seed must be an int, got {seed!r}"
            )
        rule = self._properties.get("rule")
        if rule is not None and str(rule).lower() not in ("random", "sobol"):
            raise HyperDriveConfigException(
                f"RandomParameterSampling: rule must be 'random' or 'sobol', got {rule!r}"
            )

    def _sampling_algorithm(self) -> dict[str, Any]:
        algorithm: dict[str, Any] = {"type": "random"}
        if self._properties.get("seed") is not None:
            algorithm["seed"] = self._properties["seed"]
        return algorithm


class GridParameterSampling(HyperParameterSampling):
    """Every combination of the ``choice`` expressions of ``parameter_space``, once."""

    SAMPLING_NAME = "GRID"
    _SUPPORTED = frozenset({"choice"})

    def __init__(self, parameter_space: Mapping[str, Any]) -> None:
        super().__init__(self.SAMPLING_NAME, parameter_space)
        for key, expression in self._parameter_space.items():
            values = expression[1][0]
            if 0 < sum(isinstance(v, str) for v in values) < len(values):
                raise HyperDriveConfigException(
                    f"GridParameterSampling: parameter {key!r} mixes strings and numbers",
                    hint="give all its choices as strings, or all as numbers",
                )

    @staticmethod
    def _unsupported_hint() -> str:
        return (
            "a grid needs discrete values: use choice(...), or RandomParameterSampling "
            "for continuous distributions"
        )

    def _sampling_algorithm(self) -> dict[str, Any]:
        return {"type": "grid"}


class BayesianParameterSampling(HyperParameterSampling):
    """Bayesian (TPE) sampling over ``choice``, ``uniform`` and ``quniform`` expressions;
    takes no early-termination policy (as in v1)."""

    SAMPLING_NAME = "BayesianOptimization"
    _SUPPORTED = frozenset({"choice", "uniform", "quniform"})

    def __init__(self, parameter_space: Mapping[str, Any]) -> None:
        super().__init__(self.SAMPLING_NAME, parameter_space)

    @staticmethod
    def _unsupported_hint() -> str:
        return "Bayesian sampling takes choice, uniform and quniform, as in Azure ML v1"

    def _sampling_algorithm(self) -> dict[str, Any]:
        return {"type": "bayesian"}
