"""A HyperDrive run as a v2 sweep: the parent's documents and the trials' submitter.

:func:`start_sweep` records a sweep parent (:func:`targets.jobs.parent.create_parent`)
whose folder holds ``hyperdrive.yml``, the v2 sweep document the engine reads
(``search_space``, ``sampling_algorithm``, ``objective``, ``limits``,
``early_termination``), and whose ``run.json`` holds the trial (:class:`TrialSpec`: the
saved ``RunConfiguration`` and source folder) and names :func:`trial_submitter` as its
``submitter``. The detached driver (:mod:`targets.jobs.drive`) then runs
:func:`targets.jobs.sweep.drive_sweep`, which asks Optuna for each trial's values and
hands them to the submitter: the trial is the v1 ``ScriptRunConfig`` with
``--name value`` appended to its arguments, submitted by
:func:`targets.runs.submit_run` as run ``<parent id>_<n>`` (v1's naming).

Design choice: the trial's ``command`` in ``hyperdrive.yml`` only describes the trial
(``targets runs show`` and a reader of the file see what runs); the submitter never
reads it. The v1 run configuration (environment, target, framework) is richer than a v2
command, so it is kept whole and submitted as it is.
"""

from __future__ import annotations

import itertools
import json
import shlex
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from targets.errors import UsageError
from targets.runconfig.model import RunConfiguration
from targets.runs import Run, submit_run
from targets.workspace import Workspace, new_run_id

if TYPE_CHECKING:
    from targets.azureml.train.hyperdrive.runconfig import HyperDriveConfig
    from targets.experiment import Experiment

__all__ = [
    "JOB_FILE",
    "SUBMITTER",
    "TrialSpec",
    "start_sweep",
    "trial_arguments",
    "trial_submitter",
]

JOB_FILE = "hyperdrive.yml"
"""The v2 sweep document, in the parent run's folder."""
SUBMITTER = f"{__name__}:trial_submitter"
_QUANTIZED = frozenset({"quniform", "qloguniform", "qnormal", "qlognormal"})
_TRIAL_ENVIRONMENT = "azureml:hyperdrive-run-configuration"
"""The trial environment named in ``hyperdrive.yml``: a label; each trial runs in the
environment of its saved run configuration."""


class TrialSpec(BaseModel):
    """What the driver needs to submit the trials of a HyperDrive run (in the parent's
    ``run.json`` under ``hyperdrive``), and what :class:`HyperDriveRun` reads back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runconfig: dict[str, Any]
    """The trial's ``RunConfiguration`` (JSON)."""
    source_directory: str
    arguments: dict[str, str]
    """v2 search-space name -> the parameter's key as given (``--lr`` or ``lr``)."""
    quantized: list[str] = []
    """v2 names of ``q*`` parameters: their values are whole numbers."""
    primary_metric: str
    goal: Literal["maximize", "minimize"]
    generator_config: dict[str, Any]
    policy_config: dict[str, Any]
    max_total_runs: int
    max_concurrent_runs: int
    max_duration_minutes: int

    def flag(self, name: str) -> str:
        key = self.arguments[name]
        return key if key.startswith("-") else f"--{key}"

    def value(self, name: str, value: Any) -> Any:
        if name in self.quantized and isinstance(value, float) and value.is_integer():
            return int(value)
        return value


def trial_arguments(spec: TrialSpec, params: dict[str, Any]) -> list[str]:
    """``--flag value`` for each sampled parameter (v2 names), in search-space order."""
    out: list[str] = []
    for name in spec.arguments:
        if name in params:
            out += [spec.flag(name), str(spec.value(name, params[name]))]
    return out


def _describe(config: RunConfiguration, spec: TrialSpec) -> str:
    """The trial as a v2 command with ``${{search_space.x}}`` placeholders."""
    base = [config.script, *config.arguments] if config.script else []
    if not base:
        command = config.command
        text = shlex.join(command) if isinstance(command, list) else str(command or "")
    else:
        text = shlex.join(["python", *[str(part) for part in base]])
    sampled = " ".join(
        f"{shlex.quote(spec.flag(name))} ${{{{search_space.{name}}}}}" for name in spec.arguments
    )
    return f"{text} {sampled}".strip()


def _document(
    config: HyperDriveConfig, rc: RunConfiguration, spec: TrialSpec, experiment: str
) -> dict[str, Any]:
    sampling = config.hyperparameter_sampling
    document: dict[str, Any] = {
        "type": "sweep",
        "experiment_name": experiment,
        "compute": rc.target,
        "trial": {"command": _describe(rc, spec), "environment": _TRIAL_ENVIRONMENT},
        "search_space": sampling._search_space(),
        "sampling_algorithm": sampling._sampling_algorithm(),
        "objective": {"primary_metric": spec.primary_metric, "goal": spec.goal},
        "limits": {
            "max_total_trials": spec.max_total_runs,
            "max_concurrent_trials": spec.max_concurrent_runs,
            "timeout": spec.max_duration_minutes * 60,
        },
    }
    policy = config.policy._early_termination()
    if policy is not None:
        document["early_termination"] = policy
    return document


def _check_document(document: dict[str, Any]) -> None:
    """Read the document as the driver will (the v2 reader and the engine's sampler
    checks), in a temporary folder: a problem is refused before the run is recorded."""
    from targets.jobs.model import SweepJob
    from targets.jobs.reader import load_job
    from targets.jobs.sweep import sampler_for

    with tempfile.TemporaryDirectory(prefix="targets-hyperdrive-") as folder:
        path = Path(folder) / JOB_FILE
        path.write_text(json.dumps(document, indent=1))
        job = load_job(path).job
    if isinstance(job, SweepJob):
        sampler_for(job)


def _spec(config: HyperDriveConfig, rc: RunConfiguration, source: Path) -> TrialSpec:
    sampling = config.hyperparameter_sampling
    space = sampling._search_space()
    return TrialSpec(
        runconfig=rc.model_dump(mode="json", exclude_defaults=True),
        source_directory=str(source),
        arguments=sampling._argument_names(),
        quantized=[name for name, dist in space.items() if dist["type"] in _QUANTIZED],
        primary_metric=config.primary_metric_name,
        goal="maximize" if config.primary_metric_goal.name == "MAXIMIZE" else "minimize",
        generator_config=sampling.to_json(),
        policy_config=config.policy.to_json(),
        max_total_runs=config.max_total_runs,
        max_concurrent_runs=config.max_concurrent_runs,
        max_duration_minutes=config.max_duration_minutes,
    )


def _check_trial(ws: Workspace, rc: RunConfiguration, source: Path) -> None:
    """What :func:`targets.runs.submit_run` would refuse for every trial, checked once
    before the parent is recorded: the source folder, the script, the target."""
    from targets.runs import _check_entry

    if not source.is_dir():
        raise UsageError(
            f"the source directory {str(source)!r} does not exist",
            hint="ScriptRunConfig(source_directory=...) names the folder of the script",
        )
    _check_entry(rc, source)
    target = ws.get_target(rc.target)
    try:
        target.check_request(rc)
    finally:
        target.close()


def start_sweep(config: HyperDriveConfig, experiment: Experiment, tags: dict[str, str]) -> str:
    """Record the HyperDrive parent run and start its detached driver; return its id.
    Raises UsageError (exit code 2) before anything is written when the trial cannot
    run (no script, no source folder, unknown target) or the sweep is invalid."""
    from targets.agent import protocol
    from targets.jobs.parent import create_parent, launch_driver

    ws = experiment.workspace
    trial = config._trial
    rc = trial.run_config.model_copy(deep=True)
    source = Path(trial.source_directory)
    source = (source if source.is_absolute() else Path.cwd() / source).resolve()
    _check_trial(ws, rc, source)
    spec = _spec(config, rc, source)
    document = _document(config, rc, spec, experiment.name)
    _check_document(document)

    run_id = new_run_id(experiment.name)
    job_file = ws.run_dir(run_id) / JOB_FILE
    what = rc.script or (shlex.join(rc.command) if isinstance(rc.command, list) else rc.command)
    create_parent(
        ws,
        kind="sweep",
        loaded_path=job_file,
        overrides=(),
        compute=None,
        experiment=experiment.name,
        display_name=None,
        name=run_id,
        entry=f"hyperdrive {what}",
        extra={
            "submitter": SUBMITTER,
            "hyperdrive": spec.model_dump(mode="json"),
            "tags": dict(tags),
        },
    )
    try:
        job_file.write_text(json.dumps(document, indent=1))
        launch_driver(ws, run_id)
    except BaseException as exc:  # the parent must not stay Queued without a driver
        ws.ledger.update(
            run_id,
            status=protocol.FAILED,
            ended_at=time.time(),
            message=f"the HyperDrive run could not start: {exc}",
            collected=True,
        )
        raise
    return run_id


def trial_submitter(ws: Workspace, info: dict[str, Any]) -> Callable[..., Run]:
    """The ``submitter`` factory named in the parent's ``run.json``: a function taking
    :func:`targets.jobs.submit.submit_command`'s keywords that submits one trial (the
    sampled values arrive in ``origin["params"]``)."""
    spec = TrialSpec.model_validate(info["hyperdrive"])
    numbers = itertools.count()

    def submit(
        ws: Workspace,
        loaded: Any,
        body: Any,
        *,
        compute: str,
        experiment: str | None = None,
        display_name: str | None = None,
        parent_id: str | None = None,
        origin: dict[str, Any] | None = None,
        warn: Callable[[str], None] | None = None,
        **_engine: Any,  # inputs, outputs, extra_values...: v2 bindings a v1 trial has none of
    ) -> Run:
        params = dict((origin or {}).get("params") or {})
        config = RunConfiguration.model_validate(spec.runconfig)
        config.target = compute
        sampled = trial_arguments(spec, params)
        if config.script or not config.command:
            config.arguments = [*config.arguments, *sampled]
        elif isinstance(config.command, list):
            config.command = [*config.command, *sampled]
        else:
            config.command = f"{config.command} {shlex.join(sampled)}"
        index = next(numbers)
        return submit_run(
            ws,
            config,
            source_dir=spec.source_directory,
            experiment=experiment,
            display_name=display_name,
            parent_id=parent_id,
            run_id=f"{parent_id}_{index}" if parent_id else None,
            origin={
                "hyperdrive": parent_id,
                "hyperparameters": {
                    spec.arguments[name]: spec.value(name, value)
                    for name, value in params.items()
                    if name in spec.arguments
                },
            },
            warn=warn,
        )

    return submit
