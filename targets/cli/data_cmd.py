"""``targets data create | list | show``: data assets that jobs name as
``azureml:NAME:VERSION`` or ``azureml:NAME@latest`` (``az ml data`` habits)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from targets.cli._common import emit_json, output_option, print_table, say, workspace_of


@click.group()
def data() -> None:
    """Register data assets for azureml:NAME:VERSION inputs."""


def _json(asset: Any) -> dict[str, Any]:
    found = asdict(asset)
    found["record"] = str(found["record"])
    return found


@data.command()
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False), help="A v2 data asset YAML.")
@click.option("--name", "-n", help="The asset's name (overrides the file's).")
@click.option("--version", "-v", help="Its version (default: one more than the latest).")
@click.option(
    "--path",
    "-p",
    "path",
    help="A local file or folder, or a wasbs://, abfss://, https://, s3://, gs:// or "
    "azureml://datastores/ URI.",
)
@click.option(
    "--type",
    "-t",
    "type_",
    type=click.Choice(["uri_file", "uri_folder", "mltable"]),
    help="Default: the file's, else uri_folder.",
)
@click.option("--description", "-d", help="A description.")
@output_option
@click.pass_context
def create(
    ctx: click.Context,
    file: str | None,
    name: str | None,
    version: str | None,
    path: str | None,
    type_: str | None,
    description: str | None,
    output: str,
) -> None:
    """Register a data asset from --file or from --name and --path."""
    from targets.data.assets import DataAssetSpec, load_spec, register_data
    from targets.errors import UsageError

    base = Path.cwd()
    if file is not None:
        spec = load_spec(Path(file))
        base = Path(file).resolve().parent
    elif name is None or path is None:
        raise UsageError("give --file, or --name and --path", hint="targets data create --help")
    else:
        spec = DataAssetSpec(name=name, path=path)
    changes = {
        key: value
        for key, value in (
            ("name", name),
            ("version", version),
            ("path", path),
            ("type", type_),
            ("description", description),
        )
        if value is not None
    }
    if "path" in changes:
        base = Path.cwd()  # a path given on the command line is relative to here
    spec = spec.model_copy(update=changes)
    asset = register_data(workspace_of(ctx), spec, base)
    if output == "json":
        emit_json(_json(asset))
        return
    say(f"data asset {asset.name}:{asset.version} ({asset.type}) -> {asset.path}")


@data.command("list")
@click.option("--name", "-n", help="Only this asset's versions.")
@output_option
@click.pass_context
def list_(ctx: click.Context, name: str | None, output: str) -> None:
    """List the registered data assets."""
    from targets.data.assets import list_data

    found = [a for a in list_data(workspace_of(ctx)) if name is None or a.name == name]
    if output == "json":
        emit_json([_json(a) for a in found])
        return
    print_table(
        ["NAME", "VERSION", "TYPE", "PATH"],
        [[a.name, a.version, a.type, a.path] for a in found],
        keep=["PATH"],
    )


@data.command()
@click.argument("name")
@click.option("--version", "-v", help="Default: the latest.")
@click.option("--label", "-l", type=click.Choice(["latest"]), help="latest (as az ml).")
@output_option
@click.pass_context
def show(
    ctx: click.Context, name: str, version: str | None, label: str | None, output: str
) -> None:
    """Show one data asset."""
    from targets.data.assets import get_data

    asset = get_data(workspace_of(ctx), name, version or label)
    if output == "json":
        emit_json(_json(asset))
        return
    for key, value in _json(asset).items():
        if value is not None and key != "record":
            click.echo(f"{key}: {value}")
