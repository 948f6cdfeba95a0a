"""Submitting v2 jobs: a command job is one run; sweeps and pipelines are a parent run
whose children are ordinary runs (see :mod:`targets.jobs.sweep` and
:mod:`targets.jobs.pipeline`)."""

from __future__ import annotations

from typing import Any

from targets.compute.base import Capability, ComputeTarget
from targets.errors import UsageError
from targets.jobs.execute import compute_name, prepare_command
from targets.jobs.model import CommandJob, PipelineJob, SparkJob, SweepJob
from targets.jobs.reader import LoadedJob
from targets.runs import Run, submit_run
from targets.workspace import Workspace

__all__ = ["docker_problem", "docker_reason", "submit_command", "submit_job"]


def docker_problem(target: ComputeTarget) -> str | None:
    """None when ``target`` can run containers now, else the reason it cannot."""
    if Capability.DOCKER not in target.capabilities:
        return f"target kind {target.kind!r} does not run containers"
    from targets.compute import AgentTarget

    if isinstance(target, AgentTarget):
        found = target.agent().docker_check(target.docker_driver, False)
        if not found.get("ok"):
            return str(found.get("error"))
    return None


def docker_reason(target: ComputeTarget, body: Any) -> str | None:
    """None when the job's image (or build context) is to be used on ``target``, else
    why not: ``--no-docker`` (``TARGETS_NO_DOCKER`` among the job's variables) sets
    Docker aside whether or not the target has it; then the target's own answer."""
    from targets.jobs.job_environment import NO_DOCKER_REASON, no_docker_requested

    if no_docker_requested(getattr(body, "environment_variables", None)):
        return NO_DOCKER_REASON
    return docker_problem(target)


def _needs_image(loaded: LoadedJob, body: Any) -> bool:
    env = body.environment
    return (
        isinstance(env, str)
        or bool(getattr(env, "image", None))
        or bool(getattr(env, "build", None))
    )


def submit_command(
    ws: Workspace,
    loaded: LoadedJob,
    body: Any,
    *,
    compute: str,
    node: str | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    given_inputs: dict[str, Any] | None = None,
    extra_values: dict[str, str] | None = None,
    experiment: str | None = None,
    display_name: str | None = None,
    run_id: str | None = None,
    parent_id: str | None = None,
    origin: dict[str, Any] | None = None,
    warn: Any = None,
    max_run_duration_seconds: int | None = None,
    output_types: dict[str, Any] | None = None,
    python: str | None = None,
) -> Run:
    """Submit one command (job, trial or step) to the target ``compute``; ``python``
    becomes its ``interpreter_path`` (see :func:`targets.environments.use_interpreter`)."""
    target = ws.get_target(compute)
    docker = docker_reason(target, body) if _needs_image(loaded, body) else None
    prepared = prepare_command(
        ws,
        loaded,
        body,
        target_name=compute,
        docker_ok=docker,
        node=node,
        inputs=inputs,
        outputs=outputs,
        given_inputs=given_inputs,
        extra_values=extra_values,
        run_name=run_id or "",
        output_types=output_types,
    )
    if warn is not None:
        for line in prepared.warnings:
            warn(line)
    if max_run_duration_seconds:
        prepared.config.max_run_duration_seconds = max_run_duration_seconds
    if python is not None:
        from targets.environments import use_interpreter
        from targets.jobs.job_environment import ISOLATED_NAME

        section = prepared.config.environment.python
        conda = section.conda_dependencies
        if conda is not None and getattr(conda, "name", None) == ISOLATED_NAME:
            # The isolated environment only stands in for an image set aside; the user's
            # own interpreter (--python) is as safe: it is not targets' environment.
            section.conda_dependencies = None
            section.user_managed_dependencies = True
        use_interpreter(prepared.config, python)
    from targets.data.upload import plan_uploads

    uploads = plan_uploads(ws, outputs, output_types)
    return submit_run(
        ws,
        prepared.config,
        source_dir=prepared.source_dir,
        experiment=experiment,
        display_name=display_name,
        parent_id=parent_id,
        run_id=run_id,
        origin={
            **(origin or {}),
            "job": str(loaded.path),
            "outputs": prepared.outputs,
            "uploads": uploads,
        },
        extra_files=prepared.extra,
        entry=prepared.entry,
        warn=warn,
    )


def submit_job(
    ws: Workspace,
    loaded: LoadedJob,
    *,
    compute: str | None = None,
    name: str | None = None,
    warn: Any = None,
    overrides: tuple[str, ...] = (),
    python: str | None = None,
) -> Run:
    """Start the job. A command job returns its run; sweeps and pipelines return their
    parent run, which the caller follows with :func:`targets.jobs.drive.follow`.

    ``python`` (``targets run --python``) is the interpreter of a command job without a
    conda environment; sweeps and pipelines refuse it (UsageError): their children are
    submitted later, with the Python that is active where they were started."""
    job = loaded.job
    if python is not None and not isinstance(job, CommandJob | SparkJob):
        raise UsageError(
            "--python applies to command jobs",
            hint="activate the virtualenv or conda env before `targets run`: the trials "
            "and steps of sweeps and pipelines on the local target use the active Python",
        )
    if warn is not None:
        for line in loaded.warnings:
            warn(line)
    from targets.jobs.execute import precheck

    precheck(ws, loaded, compute)
    if isinstance(job, CommandJob | SparkJob):
        return submit_command(
            ws,
            loaded,
            job,
            compute=compute or compute_name(job.compute, ws),
            inputs=dict(job.inputs),
            outputs=dict(job.outputs),
            experiment=job.experiment_name,
            display_name=job.display_name,
            run_id=name or job.name,
            # The overrides: `targets runs submit-again` reads the job file with them.
            origin={
                "tags": dict(job.tags),
                "description": job.description,
                "overrides": list(overrides),
            },
            warn=warn,
            python=python,
        )
    if isinstance(job, SweepJob | PipelineJob):
        return _start_parent(ws, loaded, compute=compute, name=name, overrides=overrides)
    raise TypeError(f"unexpected job {type(job).__name__}")  # the reader allows no other


def _start_parent(
    ws: Workspace,
    loaded: LoadedJob,
    *,
    compute: str | None,
    name: str | None,
    overrides: tuple[str, ...],
) -> Run:
    """Record the parent run and start its detached driver."""
    from targets.jobs.parent import create_parent, launch_driver

    job = loaded.job
    assert isinstance(job, SweepJob | PipelineJob)
    if compute is not None:
        ws.get_target(compute)  # an unknown target is an error before anything starts
    kind = "sweep" if isinstance(job, SweepJob) else "pipeline"
    if isinstance(job, SweepJob):
        from targets.jobs.sweep import sampler_for

        sampler_for(job)  # an invalid sampling setup is refused before anything starts
    else:
        from targets.jobs.bindings import check_pipeline

        check_pipeline(job)
    parent = create_parent(
        ws,
        kind=kind,
        loaded_path=loaded.path,
        overrides=overrides,
        compute=compute,
        experiment=job.experiment_name or ws.default_experiment(),
        display_name=job.display_name,
        name=name or job.name,
        entry=f"{kind} {loaded.path.name}",
    )
    launch_driver(ws, parent.id)
    return Run(ws, parent.id)
