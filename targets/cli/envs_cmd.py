"""``targets envs``: environments prepared on a target."""

from __future__ import annotations

from typing import Any

import click

from targets.cli._common import (
    emit_json,
    err_console,
    fmt_size,
    fmt_time,
    output_option,
    print_table,
    workspace_of,
)


@click.group()
def envs() -> None:
    """List and prune the environments prepared on a target."""


@envs.command("list")
@click.option("--target", "-t", default="local", show_default=True)
@output_option
@click.pass_context
def list_(ctx: click.Context, target: str, output: str) -> None:
    """List prepared environments: hash, builder, size, last use."""
    with workspace_of(ctx).get_target(target) as t:
        items = t.environments()
    if output == "json":
        emit_json(items)
        return
    if not items:
        err_console().print(f"no environments prepared on {target} yet")
        return
    rows = [
        [
            e.get("hash"),
            e.get("builder"),
            e.get("describe"),
            fmt_size(e.get("size_bytes")),
            fmt_time(e.get("last_used")),
            "yes" if e.get("ready") else "no",
        ]
        for e in items
    ]
    print_table(["HASH", "BUILDER", "SPEC", "SIZE", "LAST USED", "READY"], rows)


@envs.command()
@click.option("--target", "-t", default="local", show_default=True)
@click.option(
    "--older-than",
    "older_than_days",
    type=click.FloatRange(min=0),
    default=None,
    help="Only environments unused for this many days (default: all).",
)
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@output_option
@click.pass_context
def prune(
    ctx: click.Context, target: str, older_than_days: float | None, yes: bool, output: str
) -> None:
    """Remove prepared environments that no run is using. They are rebuilt on demand.

    Shows what would go and how much, and asks first; --yes skips the question. Without a
    terminal to ask on, it refuses (exit code 2) unless --yes is given.
    """
    seconds = older_than_days * 86400 if older_than_days is not None else None
    with workspace_of(ctx).get_target(target) as t:
        plan = t.prunable_environments(older_than_seconds=seconds)
        if plan and not yes:
            _confirm(ctx, plan, target, show=output == "table")
        removed = (
            t.prune_environments(older_than_seconds=seconds, only=[e["hash"] for e in plan])
            if plan
            else []
        )
    if output == "json":
        emit_json({"removed": removed})
        return
    err_console().print(f"removed {len(removed)} environment(s)", highlight=False)


def _confirm(ctx: click.Context, plan: list[dict[str, Any]], target: str, *, show: bool) -> None:
    """Show what would go and ask; refuse (exit code 2) without a terminal to ask on."""
    import sys

    from targets.errors import UsageError

    total = sum(int(e.get("size_bytes") or 0) for e in plan)
    what = f"{len(plan)} environment(s) ({fmt_size(total)}) on {target}"
    if show:
        print_table(
            ["HASH", "BUILDER", "SPEC", "SIZE", "LAST USED"],
            [
                [
                    e.get("hash"),
                    e.get("builder"),
                    e.get("describe"),
                    fmt_size(e.get("size_bytes")),
                    fmt_time(e.get("last_used")),
                ]
                for e in plan
            ],
        )
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to delete {what} without asking, and there is no terminal to ask on",
            hint="add --yes to delete them",
        )
    if not click.confirm(f"Delete {what}?", default=False, err=True):
        err_console().print("nothing deleted", highlight=False)
        ctx.exit(1)


@envs.command()
@click.option(
    "--file",
    "-f",
    "file",
    required=True,
    type=click.Path(dir_okay=False),
    help="An Azure ML v2 environment YAML (name, version, image, conda_file, or build).",
)
@output_option
@click.pass_context
def create(ctx: click.Context, file: str, output: str) -> None:
    """Register an environment in the workspace, for jobs that name it
    (azureml:NAME:VERSION or azureml:NAME@latest)."""
    from pathlib import Path

    from targets.assets import register_environment

    env = register_environment(workspace_of(ctx), Path(file))
    if output == "json":
        emit_json(_describe(env))
        return
    err_console().print(f"registered environment {env.name}:{env.version}", highlight=False)
    if env.build is not None:
        err_console().print(f"build context stored at {env.build}", highlight=False)


@envs.command()
@click.argument("name")
@click.option("--version", "version", default=None, help="A version (default: the latest).")
@output_option
@click.pass_context
def show(ctx: click.Context, name: str, version: str | None, output: str) -> None:
    """Show a registered environment (NAME, or NAME:VERSION / NAME@latest)."""
    from targets.assets import get_environment

    name = name.removeprefix("azureml:")
    if version is None and ":" in name:
        name, version = name.split(":", 1)
    elif version is None and "@" in name:
        name, version = name.split("@", 1)
    env = get_environment(workspace_of(ctx), name, version)
    described = _describe(env)
    if output == "json":
        emit_json(described)
        return
    for key, value in described.items():
        if value is not None:
            click.echo(f"{key}: {value}")


def _describe(env: Any) -> dict[str, Any]:
    """A registered environment (:class:`targets.assets.RegisteredEnvironment`) for output."""
    return {
        "name": env.name,
        "version": env.version,
        "description": env.description,
        "image": env.image,
        "conda_file": str(env.conda_file) if env.conda_file else None,
        "build_context": str(env.build) if env.build else None,
        "dockerfile": env.dockerfile_path if env.build else None,
    }
