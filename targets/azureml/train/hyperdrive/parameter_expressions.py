"""``azureml.train.hyperdrive.parameter_expressions``: the distributions of a search space.

Each function returns v1's "stochastic expression", a list ``[name, [arguments]]``
(``choice(1, 2)`` is ``["choice", [[1, 2]]]``, ``uniform(0, 1)`` is ``["uniform", [0, 1]]``),
so code that builds or inspects these lists keeps working. :func:`to_search_space`
turns one into the v2 sweep distribution the engine (:mod:`targets.jobs.sweep`) draws
from; the meaning of each is Azure ML's (``loguniform(a, b)`` is ``exp(uniform(a, b))``,
``randint(n)`` is in ``[0, n)``, ``q*`` round to a multiple of ``q``).

Bad arguments raise :class:`HyperDriveConfigException` (exit code 2) when the expression
is made, as in v1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from targets.azureml.train.hyperdrive.exceptions import HyperDriveConfigException

__all__ = [
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

EXPRESSIONS = (
    "choice",
    "randint",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
)


def _number(function: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HyperDriveConfigException(
            f"{function}(): {name} must be a number, got {value!r}",
            hint=f"e.g. {function}({_EXAMPLES[function]})",
        )
    return value


def _q(function: str, q: Any) -> float:
    if isinstance(q, bool) or not (isinstance(q, int) or (isinstance(q, float) and q.is_integer())):
        raise HyperDriveConfigException(
            f"{function}(): q must be a whole number, got {q!r}",
            hint=f"e.g. {function}({_EXAMPLES[function]})",
        )
    if q <= 0:
        raise HyperDriveConfigException(f"{function}(): q must be positive, got {q!r}")
    return q


def _ordered(function: str, min_value: float, max_value: float) -> None:
    if min_value >= max_value:
        raise HyperDriveConfigException(
            f"{function}(): min_value ({min_value!r}) must be less than max_value ({max_value!r})"
        )


def _sigma(function: str, sigma: float) -> None:
    if sigma <= 0:
        raise HyperDriveConfigException(f"{function}(): sigma must be positive, got {sigma!r}")


_EXAMPLES = {
    "choice": "16, 32, 64",
    "randint": "10",
    "uniform": "0.001, 0.1",
    "quniform": "16, 128, 16",
    "loguniform": "-6, -1",
    "qloguniform": "0, 5, 1",
    "normal": "10, 3",
    "qnormal": "10, 3, 1",
    "lognormal": "0, 1",
    "qlognormal": "0, 1, 1",
}


def choice(*options: Any) -> list[Any]:
    """One of ``options``: given one by one, or as a single list or ``range``."""
    if len(options) == 1 and isinstance(options[0], list | tuple | range):
        values = list(options[0])
    else:
        for item in options:
            if isinstance(item, list | range):
                raise HyperDriveConfigException(
                    "choice(): give the options one by one, or a single list or range()",
                    hint="choice(16, 32, 64) or choice([16, 32, 64]) or choice(range(1, 5))",
                )
        values = list(options)
    if not values:
        raise HyperDriveConfigException(
            "choice(): at least one option is needed", hint="e.g. choice(16, 32, 64)"
        )
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise HyperDriveConfigException(
                f"choice(): options must be numbers or strings, got {value!r}",
                hint="nested search spaces (dictionaries) are not supported",
            )
    return ["choice", [values]]


def randint(upper: int) -> list[Any]:
    """A whole number in ``[0, upper)``."""
    if isinstance(upper, bool) or not isinstance(upper, int) or upper <= 0:
        raise HyperDriveConfigException(
            f"randint(): upper must be a positive whole number, got {upper!r}",
            hint="e.g. randint(10)",
        )
    return ["randint", [upper]]


def uniform(min_value: float, max_value: float) -> list[Any]:
    """A number drawn uniformly between ``min_value`` and ``max_value``."""
    low = _number("uniform", "min_value", min_value)
    high = _number("uniform", "max_value", max_value)
    _ordered("uniform", low, high)
    return ["uniform", [low, high]]


def quniform(min_value: float, max_value: float, q: float) -> list[Any]:
    """``round(uniform(min_value, max_value) / q) * q``."""
    low = _number("quniform", "min_value", min_value)
    high = _number("quniform", "max_value", max_value)
    step = _q("quniform", q)
    _ordered("quniform", low, high)
    return ["quniform", [low, high, step]]


def loguniform(min_value: float, max_value: float) -> list[Any]:
    """``exp(uniform(min_value, max_value))``: the bounds are those of the logarithm."""
    low = _number("loguniform", "min_value", min_value)
    high = _number("loguniform", "max_value", max_value)
    _ordered("loguniform", low, high)
    return ["loguniform", [low, high]]


def qloguniform(min_value: float, max_value: float, q: float) -> list[Any]:
    """``round(exp(uniform(min_value, max_value)) / q) * q``."""
    low = _number("qloguniform", "min_value", min_value)
    high = _number("qloguniform", "max_value", max_value)
    step = _q("qloguniform", q)
    _ordered("qloguniform", low, high)
    return ["qloguniform", [low, high, step]]


def normal(mu: float, sigma: float) -> list[Any]:
    """A number drawn from the normal distribution of mean ``mu``, deviation ``sigma``."""
    mean = _number("normal", "mu", mu)
    deviation = _number("normal", "sigma", sigma)
    _sigma("normal", deviation)
    return ["normal", [mean, deviation]]


def qnormal(mu: float, sigma: float, q: float) -> list[Any]:
    """``round(normal(mu, sigma) / q) * q``."""
    mean = _number("qnormal", "mu", mu)
    deviation = _number("qnormal", "sigma", sigma)
    step = _q("qnormal", q)
    _sigma("qnormal", deviation)
    return ["qnormal", [mean, deviation, step]]


def lognormal(mu: float, sigma: float) -> list[Any]:
    """``exp(normal(mu, sigma))``."""
    mean = _number("lognormal", "mu", mu)
    deviation = _number("lognormal", "sigma", sigma)
    _sigma("lognormal", deviation)
    return ["lognormal", [mean, deviation]]


def qlognormal(mu: float, sigma: float, q: float) -> list[Any]:
    """``round(exp(normal(mu, sigma)) / q) * q``."""
    mean = _number("qlognormal", "mu", mu)
    deviation = _number("qlognormal", "sigma", sigma)
    step = _q("qlognormal", q)
    _sigma("qlognormal", deviation)
    return ["qlognormal", [mean, deviation, step]]


_V2_ARGUMENTS = {
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "loguniform": ("min_value", "max_value"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"),
    "qlognormal": ("mu", "sigma", "q"),
}


def expression_name(name: str, expression: Any) -> str:
    """The distribution name of the expression given for parameter ``name``; raises
    HyperDriveConfigException when it is not one of this module's expressions."""
    if (
        isinstance(expression, Sequence)
        and not isinstance(expression, str)
        and len(expression) == 2
        and expression[0] in EXPRESSIONS
        and isinstance(expression[1], Sequence)
    ):
        return str(expression[0])
    raise HyperDriveConfigException(
        f"parameter {name!r}: {expression!r} is not a parameter expression",
        hint="use the functions of targets.azureml.train.hyperdrive.parameter_expressions, "
        "e.g. {'--learning_rate': uniform(0.001, 0.1), '--batch_size': choice(16, 32)}",
    )


def to_search_space(name: str, expression: Any) -> dict[str, Any]:
    """The v2 sweep distribution (``{"type": "uniform", "min_value": ..}``) of a v1
    expression, checked again (an expression written by hand as a list is checked as the
    function that makes it would)."""
    kind = expression_name(name, expression)
    arguments = list(expression[1])
    if kind == "choice":
        values = arguments[0] if len(arguments) == 1 else None
        if not isinstance(values, list | tuple):
            raise HyperDriveConfigException(
                f"parameter {name!r}: a choice expression is ['choice', [[values]]]",
                hint="make it with choice(...)",
            )
        return {"type": "choice", "values": choice(list(values))[1][0]}
    fields = _V2_ARGUMENTS[kind]
    if len(arguments) != len(fields):
        raise HyperDriveConfigException(
            f"parameter {name!r}: {kind} takes {len(fields)} arguments "
            f"({', '.join(fields)}), got {arguments!r}",
            hint=f"make it with {kind}(...)",
        )
    checked = _MAKERS[kind](*arguments)[1]
    return {"type": kind, **dict(zip(fields, checked, strict=True))}


_MAKERS: dict[str, Any] = {
    "randint": randint,
    "uniform": uniform,
    "quniform": quniform,
    "loguniform": loguniform,
    "qloguniform": qloguniform,
    "normal": normal,
    "qnormal": qnormal,
    "lognormal": lognormal,
    "qlognormal": qlognormal,
}
