"""Search-space distributions and samplers, as Azure ML defines them, drawn by Optuna."""

from __future__ import annotations

import math

import optuna
import pytest

from targets.errors import ConfigError
from targets.jobs.model import SweepJob
from targets.jobs.sweep import sampler_for, suggest

SPACE = {
    "c": {"type": "choice", "values": ["a", "b"]},
    "r": {"type": "randint", "upper": 5},
    "u": {"type": "uniform", "min_value": 1, "max_value": 2},
    "qu": {"type": "quniform", "min_value": 0, "max_value": 10, "q": 2},
    "lu": {"type": "loguniform", "min_value": -3, "max_value": 0},
    "qlu": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 1},
    "n": {"type": "normal", "mu": 10, "sigma": 0.1},
    "qn": {"type": "qnormal", "mu": 10, "sigma": 2, "q": 5},
    "ln": {"type": "lognormal", "mu": 0, "sigma": 0.1},
    "qln": {"type": "qlognormal", "mu": 1, "sigma": 0.1, "q": 1},
}


def sweep(space: dict, sampling: object = "random") -> SweepJob:
    return SweepJob.model_validate(
        {
            "type": "sweep",
            "trial": {"command": "echo", "environment": "azureml:e@latest"},
            "search_space": space,
            "sampling_algorithm": sampling,
            "objective": {"goal": "minimize", "primary_metric": "m"},
            "limits": {"max_total_trials": 50},
        }
    )


def test_every_distribution_draws_values_of_its_kind():
    job = sweep(SPACE, {"type": "random", "seed": 7})
    study = optuna.create_study(sampler=sampler_for(job))
    for _ in range(50):
        trial = study.ask()
        v = {name: suggest(trial, name, dist) for name, dist in job.search_space.items()}
        assert v["c"] in ("a", "b")
        assert v["r"] in range(5)
        assert 1 <= v["u"] <= 2
        assert v["qu"] % 2 == 0 and 0 <= v["qu"] <= 10
        assert math.exp(-3) <= v["lu"] <= 1
        assert v["qlu"] == round(v["qlu"]) and 1 <= v["qlu"] <= round(math.exp(3))
        assert 9 < v["n"] < 11  # mu 10, sigma 0.1
        assert v["qn"] % 5 == 0
        assert 0.5 < v["ln"] < 2
        assert v["qln"] == round(v["qln"])
        study.tell(trial, 0.0)


def test_seeded_random_sampling_repeats():
    def draws() -> list[float]:
        job = sweep({"u": SPACE["u"]}, {"type": "random", "seed": 42})
        study = optuna.create_study(sampler=sampler_for(job))
        out = []
        for _ in range(5):
            trial = study.ask()
            out.append(suggest(trial, "u", job.search_space["u"]))
            study.tell(trial, 0.0)
        return out

    assert draws() == draws()


def test_grid_takes_choices_only():
    with pytest.raises(ConfigError, match="grid sampling takes choice parameters only"):
        sampler_for(sweep({"u": SPACE["u"]}, "grid"))
    assert isinstance(sampler_for(sweep({"c": SPACE["c"]}, "grid")), optuna.samplers.GridSampler)
    assert isinstance(sampler_for(sweep({"c": SPACE["c"]}, "bayesian")), optuna.samplers.TPESampler)
