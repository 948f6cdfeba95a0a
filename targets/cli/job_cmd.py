"""``targets job``: the ``az ml job`` family for v2 job files, with az ml's option names.

A job is a run: ``job show``/``stream``/``download``/``cancel`` work on every run and
share their implementation with ``targets runs`` (one implementation, two front ends).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from targets.cli._common import (
    STATUS_STYLE,
    emit_json,
    err_console,
    fmt_time,
    output_option,
    print_table,
    say,
    warn,
    workspace_of,
)
from targets.errors import UsageError

F = Callable[..., Any]


def _az_workspace(func: F) -> F:
    """az ml's ``--workspace-name/-w`` and ``--resource-group/-g``: here the workspace is
    a project folder, so ``-w`` names that folder, and ``-g`` has no meaning."""
    func = click.option(
        "--workspace-name",
        "-w",
        "workspace_name",
        metavar="DIR",
        help="The project folder holding .targets/ (same as `targets -w`).",
    )(func)
    return click.option(
        "--resource-group",
        "-g",
        "resource_group",
        metavar="NAME",
        hidden=True,
        help="Accepted for az ml scripts and ignored.",
    )(func)


def _use_workspace(
    ctx: click.Context, workspace_name: str | None, resource_group: str | None
) -> None:
    if resource_group:
        warn(f"--resource-group {resource_group} is ignored: targets has no resource groups")
    if workspace_name is None:
        return
    folder = Path(workspace_name).expanduser()
    if not folder.is_dir():
        raise UsageError(
            f"--workspace-name {workspace_name!r}: no such folder; a targets workspace is "
            "a project folder, not an Azure ML workspace name",
            hint="drop -w (the workspace is found from the current folder) or give the "
            "project folder",
        )
    root = ctx.find_root()
    root.obj = {**(root.obj or {}), "workspace": str(folder)}


def _name_option(func: F) -> F:
    return click.option("--name", "-n", "name", required=True, help="The job's name (its run id).")(
        func
    )


@click.group()
def job() -> None:
    """Azure ML CLI v2-style job commands (az ml job ...)."""


@job.command()
@click.option("--file", "-f", "file", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a key of the file (repeatable), e.g. inputs.learning_rate=0.01.",
)
@click.option("--stream", "-s", is_flag=True, help="Stream the output until the job ends.")
@click.option("--name", "-n", help="The job's name (its run id).")
@click.option("--experiment-name", help="The experiment (same as --set experiment_name=...).")
@click.option("--display-name", help="The display name (same as --set display_name=...).")
@click.option("--description", help="The description (same as --set description=...).")
@click.option("--target", "-t", help="The compute target of the job and of every step.")
@click.option("--web", "-e", is_flag=True, hidden=True, help="No studio here: ignored.")
@click.option("--skip-validation", is_flag=True, hidden=True, help="Ignored: always validated.")
@_az_workspace
@output_option
@click.pass_context
def create(
    ctx: click.Context,
    file: str,
    overrides: tuple[str, ...],
    stream: bool,
    name: str | None,
    experiment_name: str | None,
    display_name: str | None,
    description: str | None,
    target: str | None,
    web: bool,
    skip_validation: bool,
    workspace_name: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Submit the job FILE; with --stream, follow it to the end (az ml job create).

    Exit code with --stream: 0 when the job completed, 1 when it failed or was
    canceled; 2 for bad input (nothing is queued).

    \b
      targets job create -f pipeline.yml --stream
      targets job create -f train.yml --set inputs.learning_rate=0.01 -n my-run-1
    """
    from targets.cli.run_cmd import run_job

    _use_workspace(ctx, workspace_name, resource_group)
    if web:
        say("--web: there is no studio; follow the job with targets job stream -n NAME", dim=True)
    extra = [
        f"{key}={value}"
        for key, value in (
            ("experiment_name", experiment_name),
            ("display_name", display_name),
            ("description", description),
        )
        if value is not None
    ]
    run_job(ctx, file, (*overrides, *extra), target, name, detach=not stream, output=output)


@job.command()
@click.option("--file", "-f", "file", required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--target", "-t", help="Check against this compute target instead.")
@_az_workspace
@output_option
@click.pass_context
def validate(
    ctx: click.Context,
    file: str,
    overrides: tuple[str, ...],
    target: str | None,
    workspace_name: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Check the v2 job FILE as `job create` would, without running it (exit 2 if invalid).

    Checks the file, the --set overrides, the bindings of a pipeline, the search space
    of a sweep, and that every compute (through `targets compute map`), registered
    environment, datastore and local input exists here.
    """
    from targets.jobs.validate import validate_job

    _use_workspace(ctx, workspace_name, resource_group)
    report = validate_job(workspace_of(ctx), file, overrides=overrides, target=target)
    if output == "json":
        emit_json(report)
        return
    for line in report["warnings"]:
        warn(line)
    steps = ", ".join(f"{step} -> {where}" for step, where in report["computes"].items())
    err_console().print(
        f"{report['path']}: valid {report['type']} job; compute: {steps}", highlight=False
    )


@job.command()
@_name_option
@_az_workspace
@output_option
@click.pass_context
def show(
    ctx: click.Context,
    name: str,
    workspace_name: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Show a job: status, timings, what ran, where its files are (az ml job show)."""
    from targets.cli.runs_cmd import show as show_run

    _use_workspace(ctx, workspace_name, resource_group)
    ctx.invoke(show_run, run_id=name, output=output)


@job.command("stream")
@_name_option
@_az_workspace
@click.pass_context
def stream_(
    ctx: click.Context, name: str, workspace_name: str | None, resource_group: str | None
) -> None:
    """Stream a job's output until it ends (az ml job stream); exit 0 if it completed."""
    from targets.cli.runs_cmd import logs

    _use_workspace(ctx, workspace_name, resource_group)
    ctx.invoke(logs, run_id=name, follow=True, node=None)


@job.command()
@_name_option
@_az_workspace
@output_option
@click.pass_context
def cancel(
    ctx: click.Context,
    name: str,
    workspace_name: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Cancel a job and its whole process tree (az ml job cancel)."""
    from targets.cli.runs_cmd import cancel as cancel_run

    _use_workspace(ctx, workspace_name, resource_group)
    ctx.invoke(cancel_run, run_id=name, output=output)


@job.command()
@_name_option
@click.option(
    "--download-path",
    "-p",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="The folder to download into.",
)
@click.option("--output-name", help="Only this named output (into named-outputs/NAME).")
@click.option("--all", "all_", is_flag=True, help="The job's files and every named output.")
@_az_workspace
@output_option
@click.pass_context
def download(
    ctx: click.Context,
    name: str,
    download_path: str,
    output_name: str | None,
    all_: bool,
    workspace_name: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """Download a job's files (az ml job download).

    As in Azure ML: the job's outputs/ and logs/ go to DOWNLOAD_PATH/artifacts/, and a
    named output to DOWNLOAD_PATH/named-outputs/NAME/. --all downloads both.
    """
    from targets.jobs.download import download_job

    _use_workspace(ctx, workspace_name, resource_group)
    if output_name and all_:
        raise UsageError("give --output-name or --all, not both")
    written = download_job(
        workspace_of(ctx),
        name,
        Path(download_path),
        output_name=output_name,
        everything=all_,
    )
    if output == "json":
        emit_json(
            {"name": name, "download_path": download_path, "files": [str(p) for p in written]}
        )
        return
    err_console().print(f"{len(written)} files written under {download_path}", highlight=False)


@job.command("list")
@click.option(
    "--max-results",
    "-r",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many jobs, newest first.",
)
@click.option("--all-results", is_flag=True, help="Every job (no --max-results limit).")
@click.option("--include-archived", is_flag=True, help="Also archived jobs.")
@click.option("--archived-only", is_flag=True, help="Only archived jobs.")
@click.option("--parent-job-name", "-p", help="The steps or trials of this pipeline or sweep.")
@_az_workspace
@output_option
@click.pass_context
def list_(
    ctx: click.Context,
    max_results: int,
    all_results: bool,
    include_archived: bool,
    archived_only: bool,
    parent_job_name: str | None,
    workspace_name: str | None,
    resource_group: str | None,
    output: str,
) -> None:
    """List jobs, newest first; archived jobs are left out (az ml job list)."""
    from targets.jobs.archive import archived_jobs

    _use_workspace(ctx, workspace_name, resource_group)
    if include_archived and archived_only:
        raise UsageError("give --include-archived or --archived-only, not both")
    ws = workspace_of(ctx)
    if ws.ledger.open_runs():
        from targets.runs import refresh_open_runs

        refresh_open_runs(ws, warn=lambda text: say(text, fg="yellow"))
    archived = archived_jobs(ws)
    limit = None if all_results else max_results
    if parent_job_name is not None:
        from targets.runs import Run

        parent = Run(ws, parent_job_name).id
        records = ws.ledger.list(parent_id=parent, limit=None)
    else:
        records = ws.ledger.list(top_level=True, limit=None)
    if archived_only:
        records = [r for r in records if r.id in archived]
    elif not include_archived:
        records = [r for r in records if r.id not in archived]
    records = records[:limit] if limit is not None else records
    if output == "json":
        emit_json([{**r.to_json(), "archived": r.id in archived} for r in records])
        return
    if not records:
        say("no jobs - submit one with: targets job create -f JOB.yml")
        return
    rows = [
        [
            r.id,
            r.display_name or "",
            r.kind if r.kind in ("sweep", "pipeline") else "command",
            (r.status, STATUS_STYLE.get(r.status, "")),
            r.target,
            fmt_time(r.created_at, short=True),
        ]
        for r in records
    ]
    print_table(
        ["NAME", "DISPLAY NAME", "TYPE", "STATUS", "COMPUTE", "CREATED"], rows, keep=("NAME",)
    )


@job.command()
@_name_option
@_az_workspace
@click.pass_context
def archive(
    ctx: click.Context, name: str, workspace_name: str | None, resource_group: str | None
) -> None:
    """Hide an ended job from `targets job list` (az ml job archive); `restore` undoes it."""
    from targets.jobs.archive import archive_job

    _use_workspace(ctx, workspace_name, resource_group)
    full = archive_job(workspace_of(ctx), name)
    err_console().print(f"archived {full}", highlight=False)


@job.command()
@_name_option
@_az_workspace
@click.pass_context
def restore(
    ctx: click.Context, name: str, workspace_name: str | None, resource_group: str | None
) -> None:
    """List an archived job again (az ml job restore)."""
    from targets.jobs.archive import restore_job

    _use_workspace(ctx, workspace_name, resource_group)
    full = restore_job(workspace_of(ctx), name)
    err_console().print(f"restored {full}", highlight=False)
