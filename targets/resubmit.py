"""Submitting a run again: the same work, as a new run (``targets runs submit-again RUN``
and the studio's *Submit again*).

What was submitted is read from the run's ``run.json`` and given to the same operation
that submitted it the first time:

- a run of an Azure ML v2 job file (a command job: ``origin.job``; a sweep or pipeline
  parent: ``job``) is the job file submitted again with :func:`targets.jobs.submit.submit_job`,
  as ``targets job create -f FILE`` does, with the overrides and compute recorded for it;
- any other run (``targets run``, ``Experiment.submit``) is its recorded run configuration
  submitted again with :func:`targets.runs.submit_run`, from the same source folder, into
  the same experiment, under the same display name, with ``origin.resubmitted_from``.

Refused with a :class:`~targets.errors.UsageError` (exit code 2), before anything is
written: a child run (a sweep's trial, a pipeline's step: its parent decides what it
runs), a sweep or pipeline submitted from the Azure ML v1 Python API (its trials and
steps are built by that program), a run whose source folder or job file is gone.

Design choice: the job file is read again as it is now, not as it was; the source folder
too (a new snapshot). That is what "submit again" means in Azure ML's studio as well: the
run's recorded snapshot is not resurrected.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.errors import UsageError
from targets.runs import Run, submit_run
from targets.workspace import Workspace, new_run_id

__all__ = ["submit_again"]


def _manifest(run: Run) -> dict[str, Any]:
    path = run.folder / "run.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"run {run.id} cannot be submitted again: its record {path} is missing or damaged",
            hint="submit it as you did the first time (targets run ...)",
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"run {run.id} cannot be submitted again: {path} is damaged")
    return data


def submit_again(ws: Workspace, run_id: str, *, warn: Callable[[str], None] | None = None) -> Run:
    """Submit the run ``run_id`` (an id or a unique prefix) again as a new run and return
    the new run, started and not waited for (the caller closes it). ``warn`` receives the
    submission's warnings. Raises UsageError for a run that cannot be submitted again
    (see the module doc) and whatever the submission itself raises."""
    old = Run(ws, run_id)
    try:
        return _again(ws, old, warn)
    finally:
        old.close()


def _again(ws: Workspace, old: Run, warn: Callable[[str], None] | None) -> Run:
    record = old.record
    if record.parent_id:
        raise UsageError(
            f"run {old.id} is a child of {record.parent_id} (a sweep's trial or a "
            "pipeline's step) and cannot be submitted on its own",
            hint=f"submit the parent again: targets runs submit-again {record.parent_id}",
        )
    manifest = _manifest(old)
    if manifest.get("submitter"):
        raise UsageError(
            f"run {old.id} was started by the Azure ML v1 Python API (a HyperDrive sweep or "
            "a v1 pipeline): its trials and steps are built by that program",
            hint="run the Python program that submitted it again",
        )
    given = manifest.get("origin")
    origin: dict[str, Any] = given if isinstance(given, dict) else {}
    if isinstance(manifest.get("job"), str):  # a sweep or pipeline parent of a v2 job file
        overrides = manifest.get("overrides") or []
        compute = manifest.get("compute")
        return _job_again(
            ws,
            old,
            Path(manifest["job"]),
            tuple(str(o) for o in overrides),
            compute if isinstance(compute, str) else None,
            warn,
        )
    if isinstance(origin.get("job"), str):  # a v2 command job
        overrides = origin.get("overrides") or []
        return _job_again(
            ws,
            old,
            Path(origin["job"]),
            tuple(str(o) for o in overrides),
            record.target,
            warn,
        )
    return _run_again(ws, old, manifest, origin, warn)


def _job_again(
    ws: Workspace,
    old: Run,
    job_file: Path,
    overrides: tuple[str, ...],
    compute: str | None,
    warn: Callable[[str], None] | None,
) -> Run:
    """The job file submitted again (as ``targets job create -f FILE`` does)."""
    from targets.jobs.reader import load_job
    from targets.jobs.submit import submit_job

    if not job_file.is_file():
        raise UsageError(
            f"run {old.id} cannot be submitted again: its job file {job_file} is gone",
            hint="submit the job from where it is now: targets job create -f FILE",
        )
    loaded = load_job(job_file, overrides=overrides, workspace=ws)
    name = None
    wanted = getattr(loaded.job, "name", None)
    if wanted and ws.ledger.get(wanted) is not None:
        # The file names its run; that name is taken (by the run submitted before).
        name = new_run_id(old.record.experiment)
    return submit_job(ws, loaded, compute=compute, name=name, warn=warn, overrides=overrides)


def _run_again(
    ws: Workspace,
    old: Run,
    manifest: dict[str, Any],
    origin: dict[str, Any],
    warn: Callable[[str], None] | None,
) -> Run:
    """The recorded run configuration submitted again from the same source folder."""
    from pydantic import ValidationError

    from targets.runconfig.model import RunConfiguration

    recorded = manifest.get("runconfig")
    source = manifest.get("source_directory")
    if not isinstance(recorded, dict) or not isinstance(source, str):
        raise UsageError(
            f"run {old.id} cannot be submitted again: its record has no run configuration "
            "(a sweep or pipeline parent, or a run of an older version)",
            hint="submit it as you did the first time",
        )
    if not Path(source).is_dir():
        raise UsageError(
            f"run {old.id} cannot be submitted again: its source folder {source} is gone",
            hint="restore the folder, or submit from where the code is now (targets run ...)",
        )
    try:
        config = RunConfiguration.model_validate(recorded)
    except ValidationError as exc:
        raise UsageError(
            f"run {old.id} cannot be submitted again: its recorded run configuration is not "
            f"valid any more: {exc.errors()[0].get('msg', exc)}",
            hint="submit it as you did the first time (targets run ...)",
        ) from None
    new_origin: dict[str, Any] = {"resubmitted_from": old.id}
    if origin.get("tags"):
        new_origin["tags"] = origin["tags"]
    return submit_run(
        ws,
        config,
        source_dir=source,
        experiment=old.record.experiment,
        display_name=old.record.display_name,
        origin=new_origin,
        warn=warn,
    )
