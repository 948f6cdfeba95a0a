"""``targets datastores add | list``: names for folders that jobs reach as
``azureml://datastores/NAME/paths/...``."""

from __future__ import annotations

from pathlib import Path

import click

from targets.cli._common import emit_json, output_option, print_table, say, workspace_of


@click.group()
def datastores() -> None:
    """Register folders for azureml://datastores/NAME/paths/... inputs."""


@datastores.command()
@click.argument("name")
@click.option(
    "--path",
    "folder",
    required=True,
    type=click.Path(file_okay=False),
    help="A local or mounted folder.",
)
@click.pass_context
def add(ctx: click.Context, name: str, folder: str) -> None:
    """Register the datastore NAME for the folder --path."""
    from targets.assets import add_datastore

    add_datastore(workspace_of(ctx), name, Path(folder))
    say(f"datastore {name} -> {Path(folder).resolve()}")


@datastores.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """List the registered datastores."""
    from targets.assets import datastores as registered

    found = registered(workspace_of(ctx))
    if output == "json":
        emit_json({name: str(path) for name, path in found.items()})
        return
    print_table(["NAME", "PATH"], [[n, str(p)] for n, p in sorted(found.items())])
