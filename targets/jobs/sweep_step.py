"""Sweep steps in pipelines (``type: sweep`` under a pipeline's ``jobs:``).

A sweep step becomes a child run of the pipeline that is itself a sweep parent: the
step is written out as a standalone v2 sweep document (``sweep.yml`` in the child's
folder: the trial inline, every local path absolute, the inputs already bound to the
other steps' output folders and the pipeline's inputs) and driven by the same detached
driver and engine as a sweep job (:mod:`targets.jobs.drive`,
:func:`targets.jobs.sweep.drive_sweep`); its trials are that child's children. This is
how the Azure ML v1 front end runs a HyperDrive run too (a document in the parent's
folder, :mod:`targets.azureml.train.hyperdrive._submit`).

As in Azure ML, the step's outputs are the **best trial's** outputs: a later step's
``${{parent.jobs.<sweep step>.outputs.x}}`` reads ``outputs/x`` of the best trial
(recorded by the engine in the sweep's ``best_trial.json``, see
:func:`targets.jobs.sweep.best_trial`).

Design choice: ``search_space`` values are literals. Azure ML's sweep schema takes
numbers and lists of choices there, not bindings; a ``${{...}}`` in a search space is
refused before anything starts (ConfigError, exit 2) instead of being sampled as text.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from targets.errors import ConfigError
from targets.jobs.model import InlineEnvironment, JobInput, JobOutput, PipelineJob, SweepNode
from targets.jobs.reader import LoadedJob
from targets.runs import Run
from targets.workspace import Workspace, new_run_id

__all__ = ["JOB_FILE", "check_sweep_step", "start_sweep_step", "sweep_document"]

JOB_FILE = "sweep.yml"
"""The sweep step's v2 sweep document, in its run folder."""

_SWEEP_KEYS = (
    "display_name",
    "description",
    "tags",
    "properties",
    "sampling_algorithm",
    "search_space",
    "objective",
    "limits",
    "early_termination",
    "resources",
    "queue_settings",
)


def _is_remote(value: str) -> bool:
    return value.startswith(("azureml:", "git+")) or "://" in value


def _absolute(loaded: LoadedJob, value: str) -> str:
    """A local path written in the job made absolute (the document lives elsewhere)."""
    if _is_remote(value) or "${{" in value:
        return value
    return str(loaded.local_path(value))


def _trial(loaded: LoadedJob, step: SweepNode, node: str) -> dict[str, Any]:
    trial: dict[str, Any] = step.trial.model_dump(mode="json", exclude_unset=True)
    code = loaded.code_dir(node)
    if code is not None:
        trial["code"] = str(code)
    env = step.trial.environment
    if isinstance(env, InlineEnvironment):
        dumped = trial["environment"]
        if isinstance(env.conda_file, str):
            dumped["conda_file"] = _absolute(loaded, env.conda_file)
        if env.build is not None:
            dumped["build"] = {**dumped["build"], "path": _absolute(loaded, env.build.path)}
    return trial


def _input(loaded: LoadedJob, value: Any) -> Any:
    """One bound input as it is written in the document."""
    if isinstance(value, Path):  # another step's output (the best trial's, for a sweep)
        kind = "uri_folder" if value.is_dir() else "uri_file"
        return {"type": kind, "path": str(value)}
    if isinstance(value, JobInput):
        dumped: dict[str, Any] = value.model_dump(mode="json", exclude_none=True)
        if value.path is not None:
            dumped["path"] = _absolute(loaded, value.path)
        return dumped
    return value


def _output(value: Any, declared: Any) -> Any:
    """A step output: its own declaration, or the pipeline output's it is bound to (the
    type only: the trials write into their own folders; the best one is the step's)."""
    if isinstance(declared, JobOutput):
        return {"type": declared.type}
    if isinstance(value, JobOutput):
        return value.model_dump(mode="json", exclude_none=True)
    return None


def sweep_document(
    loaded: LoadedJob,
    node: str,
    *,
    compute: str,
    experiment: str,
    given_inputs: Mapping[str, Any],
    output_types: Mapping[str, Any],
) -> dict[str, Any]:
    """The v2 sweep job that pipeline step ``node`` stands for, with its inputs bound
    (``given_inputs``: other steps' output folders as Paths, pipeline inputs, literals)."""
    job = loaded.job
    assert isinstance(job, PipelineJob)
    step = job.jobs[node]
    assert isinstance(step, SweepNode)
    document: dict[str, Any] = step.model_dump(
        mode="json", exclude_unset=True, include=set(_SWEEP_KEYS)
    )
    # Defaults the engine relies on are written out (exclude_unset dropped them).
    document["sampling_algorithm"] = step.sampling_algorithm.model_dump(
        mode="json", exclude_none=True
    )
    document["objective"] = step.objective.model_dump(mode="json")
    document["limits"] = step.limits.model_dump(mode="json", exclude_none=True)
    document.update(
        type="sweep",
        experiment_name=experiment,
        compute=compute,
        trial=_trial(loaded, step, node),
    )
    document.setdefault("display_name", node)
    inputs = {}
    for port, value in given_inputs.items():
        if value is not None:
            inputs[port] = _input(loaded, value)
    document["inputs"] = inputs
    document["outputs"] = {
        port: _output(value, output_types.get(port)) for port, value in step.outputs.items()
    }
    return document


def check_sweep_step(loaded: LoadedJob, node: str) -> None:
    """Refuse, before anything starts, what a sweep step cannot run with: a binding in
    its search space, an invalid sampling setup. Raises ConfigError (exit 2)."""
    from targets.jobs.sweep import sampler_for

    job = loaded.job
    assert isinstance(job, PipelineJob)
    step = job.jobs[node]
    assert isinstance(step, SweepNode)
    for name, dist in step.search_space.items():
        for value in getattr(dist, "values", None) or ():
            if isinstance(value, str) and "${{" in value:
                raise ConfigError(
                    f"search_space.{name}: {value!r}: a search space takes literal values, "
                    "not bindings (Azure ML's sweep schema has numbers and choices there)",
                    key_path=f"jobs.{node}.search_space.{name}",
                    hint="write the values in the search space; give fixed values to the "
                    "trial through the sweep step's inputs (which may bind "
                    "${{parent.inputs.x}})",
                )
    try:
        sampler_for(step)
    except ConfigError as exc:
        raise ConfigError(
            f"step {node!r}: {exc.args[0] if exc.args else exc}",
            key_path=f"jobs.{node}",
            hint=exc.hint,
        ) from exc


def _check_document(ws: Workspace, document: dict[str, Any]) -> None:
    """Read the document as the driver will: a problem fails the step now, before its
    run is recorded."""
    from targets.jobs.reader import load_job

    with tempfile.TemporaryDirectory(prefix="targets-sweep-step-") as folder:
        path = Path(folder) / JOB_FILE
        path.write_text(json.dumps(document, indent=1))
        load_job(path, workspace=ws)


def start_sweep_step(
    ws: Workspace,
    loaded: LoadedJob,
    node: str,
    *,
    compute: str,
    given_inputs: Mapping[str, Any],
    output_types: Mapping[str, Any],
    parent: Run,
) -> Run:
    """Record pipeline step ``node`` (a sweep) as a sweep parent run, a child of the
    pipeline run ``parent``, and start its detached driver. Returns at once; the run
    ends when its trials have. Raises TargetsError (the step fails) when its document
    cannot be read."""
    from targets.jobs.parent import create_parent, launch_driver

    job = loaded.job
    assert isinstance(job, PipelineJob)
    step = job.jobs[node]
    document = sweep_document(
        loaded,
        node,
        compute=compute,
        experiment=parent.experiment,
        given_inputs=given_inputs,
        output_types=output_types,
    )
    _check_document(ws, document)
    run_id = new_run_id(parent.experiment)
    path = ws.run_dir(run_id) / JOB_FILE
    run = create_parent(
        ws,
        kind="sweep",
        loaded_path=path,
        overrides=(),
        compute=compute,
        experiment=parent.experiment,
        display_name=step.display_name or node,
        name=run_id,
        entry=f"sweep step {node} of {loaded.path.name}",
        extra={"pipeline": parent.id, "step": node},
    )
    path.write_text(
        "# The sweep step "
        + json.dumps(node)
        + " of "
        + json.dumps(str(loaded.path))
        + ", as a sweep job (written by targets)\n"
        + json.dumps(document, indent=1)
        + "\n"
    )
    ws.ledger.update(run.id, parent_id=parent.id)
    launch_driver(ws, run.id)
    return Run(ws, run.id)
