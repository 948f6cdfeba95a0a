"""Sweep jobs: trials are child runs; Optuna samples the search space and prunes.

- Sampling: ``random`` → ``RandomSampler(seed)``, ``grid`` → ``GridSampler`` (choice
  parameters only, as in Azure ML), ``bayesian`` → ``TPESampler(seed)``.
- Distributions (Azure ML's meaning): ``choice``, ``randint(upper)`` in [0, upper),
  ``uniform``, ``quniform`` (rounded to q), ``loguniform``/``qloguniform`` (``exp`` of a
  uniform between min_value and max_value), ``normal``/``qnormal``/``lognormal``/
  ``qlognormal`` (drawn by Optuna as a uniform quantile, mapped through the normal
  distribution's inverse CDF).
- The objective is the trial's last logged value of ``primary_metric`` (``mlflow.log_metric``
  or v1's ``Run.get_context().log``, collected with the run; the trial's own MLflow run
  before nested ones); a trial that logged none does not count.
- Trials are submitted by :func:`targets.jobs.submit.submit_command`, or by the
  ``submitter`` the parent's ``run.json`` names (v1 HyperDrive's, in
  :mod:`targets.azureml.train.hyperdrive._submit`).
- Early termination uses Optuna pruners on the metric's history, read while trials run:
  ``median_stopping`` → ``MedianPruner``, ``truncation_selection`` →
  ``PercentilePruner``, ``bandit`` → Azure ML's slack rule as a small Optuna pruner.
- The best trial is recorded in the parent's folder (:data:`BEST_TRIAL`, read with
  :func:`best_trial`): a sweep step's outputs in a pipeline are that trial's outputs.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from targets.agent import protocol
from targets.errors import ConfigError, TargetsError
from targets.jobs.model import SweepJob, SweepNode
from targets.jobs.reader import LoadedJob
from targets.runs import Run
from targets.workspace import Workspace

__all__ = ["BEST_TRIAL", "best_trial", "drive_sweep", "sampler_for", "suggest"]

BEST_TRIAL = "best_trial.json"
"""In a sweep parent's folder once it completed: ``{"run_id", "metric", "value",
"params"}`` of the best trial."""


def best_trial(parent: Run) -> dict[str, Any] | None:
    """What :func:`drive_sweep` recorded about the best trial of the sweep ``parent``;
    None when it recorded none (the sweep failed, was canceled, or is running)."""
    try:
        found = json.loads((parent.folder / BEST_TRIAL).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _require_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        from targets.errors import MissingExtraError

        raise MissingExtraError("optuna", "sweep") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def suggest(trial: Any, name: str, dist: Any) -> Any:
    """A value for parameter ``name`` drawn by an Optuna trial, Azure ML's way."""
    kind = dist.type
    if kind == "choice":
        values = list(dist.values)
        if any(isinstance(v, dict) for v in values):
            raise ConfigError(f"search_space.{name}: nested search spaces are not supported")
        return trial.suggest_categorical(name, values)
    if kind == "randint":
        return trial.suggest_int(name, 0, int(dist.upper) - 1)
    if kind in ("uniform", "quniform"):
        value = trial.suggest_float(name, dist.min_value, dist.max_value)
    elif kind in ("loguniform", "qloguniform"):
        value = math.exp(trial.suggest_float(name, dist.min_value, dist.max_value))
    elif kind in ("normal", "qnormal", "lognormal", "qlognormal"):
        quantile = trial.suggest_float(name, 1e-6, 1 - 1e-6)
        value = statistics.NormalDist(dist.mu, dist.sigma).inv_cdf(quantile)
        if kind.endswith("lognormal"):
            value = math.exp(value)
    else:  # pragma: no cover - the model allows no other type
        raise ConfigError(f"search_space.{name}: unknown distribution {kind!r}")
    q = getattr(dist, "q", None)
    if kind.startswith("q") and q:
        value = round(value / q) * q
    return value


def sampler_for(job: SweepJob | SweepNode) -> Any:
    optuna = _require_optuna()
    algo = job.sampling_algorithm
    kind = getattr(algo, "type", algo) if algo is not None else "random"
    seed = getattr(algo, "seed", None)
    if kind == "grid":
        grid = {}
        for name, dist in job.search_space.items():
            if dist.type != "choice":
                raise ConfigError(
                    f"search_space.{name}: grid sampling takes choice parameters only",
                    hint="use sampling_algorithm: random or bayesian",
                )
            grid[name] = list(dist.values)
        # A fixed seed: the grid is walked in the same order on every run.
        return optuna.samplers.GridSampler(grid, seed=0 if seed is None else seed)
    if kind == "bayesian":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(job: SweepJob | SweepNode) -> Any:
    optuna = _require_optuna()
    policy = job.early_termination
    if policy is None:
        return optuna.pruners.NopPruner()
    interval = int(getattr(policy, "evaluation_interval", None) or 1)
    delay = int(getattr(policy, "delay_evaluation", None) or 0)
    if policy.type == "median_stopping":
        # One finished trial is enough to compare with (Azure ML's policy has no warm-up
        # in trials, only `delay_evaluation` in steps).
        return optuna.pruners.MedianPruner(
            n_startup_trials=1, n_warmup_steps=delay, interval_steps=interval
        )
    if policy.type == "truncation_selection":
        return optuna.pruners.PercentilePruner(
            float(policy.truncation_percentage),
            n_startup_trials=1,
            n_warmup_steps=delay,
            interval_steps=interval,
        )
    return _bandit(optuna, policy, delay, interval)


def _bandit(optuna: Any, policy: Any, delay: int, interval: int) -> Any:
    slack_factor = getattr(policy, "slack_factor", None)
    slack_amount = getattr(policy, "slack_amount", None)

    class BanditPruner(optuna.pruners.BasePruner):  # type: ignore[misc]
        """Azure ML's bandit policy: stop a trial whose metric falls outside the slack
        allowed from the best trial at the same step."""

        def prune(self, study: Any, trial: Any) -> bool:
            step = trial.last_step
            if step is None or step < delay or step % interval:
                return False
            value = trial.intermediate_values[step]
            others = [
                t.intermediate_values[step]
                for t in study.trials
                if t.number != trial.number and step in t.intermediate_values
            ]
            if not others:
                return False
            maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
            best = max(others) if maximize else min(others)
            if maximize:
                limit = best / (1 + slack_factor) if slack_factor else best - slack_amount
                return bool(value < limit)
            limit = best * (1 + slack_factor) if slack_factor else best + slack_amount
            return bool(value > limit)

    return BanditPruner()


def _tell(study: Any, trial: Any, value: float | None = None, state: Any = None) -> None:
    """``study.tell`` for ask-and-tell use: the grid sampler calls ``study.stop()`` once
    its grid is used up, which Optuna allows only inside ``optimize``; the trial is
    recorded before that, and our loop stops by itself."""
    try:
        if state is None:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _metric(run: Run, name: str) -> list[float]:
    from targets.tracking import read_run_metrics

    tracked = read_run_metrics(run.folder)
    # The trial's own MLflow run first: a nested run (mlflow.start_run(nested=True), v1's
    # run.child_run()) may log a metric of the same name, and is not the trial's result.
    runs = sorted(tracked.get("runs", []), key=lambda r: bool(r.get("child")))
    for mlflow_run in runs:
        if name in mlflow_run.get("history", {}):
            return list(mlflow_run["history"][name])
    return []


def _await_ended(runs: list[Run], limit: float = 120.0) -> None:
    """Wait until the trials the sweep stopped have ended (their status recorded), so the
    sweep ends after its trials, never before: a canceled trial's process may take a
    moment to stop and be collected."""
    deadline = time.monotonic() + limit
    for run in runs:
        while time.monotonic() < deadline:
            if run.refresh().status in protocol.TERMINAL:
                break
            time.sleep(0.3)
        run.close()


def drive_sweep(
    ws: Workspace,
    loaded: LoadedJob,
    parent: Run,
    compute: str | None,
    say: Callable[[str], None],
    cancelled: Callable[[], bool],
    *,
    submit: Callable[..., Run] | None = None,
) -> str:
    """Run the sweep's trials; return the summary message. Raises TargetsError when no
    trial logged the objective's metric."""
    from targets.jobs.execute import compute_name
    from targets.jobs.submit import submit_command

    submit_child = submit or submit_command

    optuna = _require_optuna()
    job = loaded.job
    assert isinstance(job, SweepJob)
    metric = job.objective.primary_metric
    direction = "maximize" if job.objective.goal == "maximize" else "minimize"
    study = optuna.create_study(direction=direction, sampler=sampler_for(job), pruner=_pruner(job))
    limits = job.limits
    total = limits.max_total_trials
    algo = job.sampling_algorithm
    if getattr(algo, "type", algo) == "grid":  # a grid ends when every point was tried
        total = min(
            total, math.prod(len(getattr(d, "values", ())) or 1 for d in job.search_space.values())
        )
    concurrent = max(1, int(limits.max_concurrent_trials or 1))
    deadline = time.monotonic() + limits.timeout if limits.timeout else None
    target = compute or compute_name(job.compute, ws)
    running: dict[str, tuple[Any, Run, int]] = {}  # run id -> (trial, run, steps reported)
    chosen: dict[int, dict[str, Any]] = {}  # trial number -> the values the trial ran with
    started = 0
    results: list[tuple[float, str, dict[str, Any]]] = []
    stopped: list[Run] = []  # trials stopped by the policy or the sweep, still ending
    say(f"sweep: {total} trials, {concurrent} at a time, {direction} {metric!r}")
    while started < total or running:
        if cancelled() or (deadline is not None and time.monotonic() > deadline):
            why = "canceled" if cancelled() else f"timeout of {limits.timeout} s reached"
            say(f"sweep stopping: {why}")
            for _trial, run, _steps in running.values():
                run.cancel()
                stopped.append(run)
            _await_ended(stopped)
            if cancelled():
                return "canceled"
            break
        while started < total and len(running) < concurrent:
            trial = study.ask()
            params = {name: suggest(trial, name, dist) for name, dist in job.search_space.items()}
            values = {f"search_space.{k}": str(v) for k, v in params.items()}
            chosen[trial.number] = params
            run = submit_child(
                ws,
                loaded,
                job.trial,
                compute=target,
                inputs=dict(job.inputs),
                outputs=dict(job.outputs),
                extra_values=values,
                experiment=parent.experiment,
                display_name=f"trial {started}",
                parent_id=parent.id,
                origin={"sweep": parent.id, "params": params},
                max_run_duration_seconds=limits.trial_timeout,
            )
            started += 1
            say(f"trial {trial.number}: {run.id} {params}")
            running[run.id] = (trial, run, 0)
        time.sleep(0.5)
        for run_id, (trial, run, reported) in list(running.items()):
            record = run.refresh()
            history = _metric(run, metric) if record.collected else []
            if record.status not in protocol.TERMINAL:
                if job.early_termination is not None:
                    run.sync()  # the metrics logged so far
                    live = _metric(run, metric)
                    for step in range(reported, len(live)):
                        trial.report(live[step], step)
                    running[run_id] = (trial, run, len(live))
                    if len(live) > reported and trial.should_prune():
                        say(f"trial {trial.number}: stopped early by the policy")
                        run.cancel()
                        stopped.append(run)
                        _tell(study, trial, state=optuna.trial.TrialState.PRUNED)
                        del running[run_id]
                continue
            del running[run_id]
            run.close()
            if record.status == protocol.COMPLETED and history:
                value = history[-1]
                _tell(study, trial, value)
                results.append((value, run.id, chosen[trial.number]))
                say(f"trial {trial.number}: {metric}={value:g} ({run.id})")
            else:
                _tell(study, trial, state=optuna.trial.TrialState.FAIL)
                reason = (
                    record.status
                    if record.status != protocol.COMPLETED
                    else f"no {metric!r} logged"
                )
                say(f"trial {trial.number}: {reason} ({run.id})")
    _await_ended(stopped)
    if not results:
        raise TargetsError(
            f"no trial logged the objective's metric {metric!r}",
            hint=f"log it from the trial script, e.g. mlflow.log_metric({metric!r}, value)",
        )
    best = (min if direction == "minimize" else max)(results, key=lambda r: r[0])
    summary = f"best trial {best[1]}: {metric}={best[0]:g} with {best[2]}"
    (parent.folder / BEST_TRIAL).write_text(
        json.dumps({"run_id": best[1], "metric": metric, "value": best[0], "params": best[2]})
    )
    say(summary)
    return summary
