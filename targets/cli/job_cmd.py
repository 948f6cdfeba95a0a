"""``targets job create --file JOB.yml``: `targets run` for az ml habits."""

from __future__ import annotations

import click

from targets.cli._common import output_option


@click.group()
def job() -> None:
    """Azure ML CLI v2-style job commands."""


@job.command()
@click.option("--file", "-f", "file", required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--stream", is_flag=True, help="Stream the output until the job ends.")
@click.option("--name", "-n", help="The job's name (its run id).")
@click.option("--target", "-t", help="The compute target (overrides `compute:`).")
@output_option
@click.pass_context
def create(
    ctx: click.Context,
    file: str,
    overrides: tuple[str, ...],
    stream: bool,
    name: str | None,
    target: str | None,
    output: str,
) -> None:
    """Submit the job FILE; with --stream, follow it to the end (like az ml job create)."""
    from targets.cli.run_cmd import run_job

    run_job(ctx, file, overrides, target, name, detach=not stream, output=output)
