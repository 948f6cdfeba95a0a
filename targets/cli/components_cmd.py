"""``targets components``: components registered in the workspace (``az ml component``)."""

from __future__ import annotations

from pathlib import Path

import click

from targets.cli._common import emit_json, err_console, output_option, print_table, workspace_of


@click.group()
def components() -> None:
    """Register, list and show components (for azureml:NAME:VERSION in pipeline steps)."""


@components.command()
@click.option(
    "--file",
    "-f",
    "file",
    required=True,
    type=click.Path(dir_okay=False),
    help="A command or pipeline component YAML (name, version, inputs, outputs; command, "
    "code and environment, or jobs).",
)
@click.option(
    "--version", "-v", "version", help="The version (default: the file's, else the next)."
)
@output_option
@click.pass_context
def create(ctx: click.Context, file: str, version: str | None, output: str) -> None:
    """Register a component, with a copy of its code, for jobs that name it
    (azureml:NAME:VERSION or azureml:NAME@latest)."""
    from targets.jobs.components.store import register_component

    registered = register_component(workspace_of(ctx), Path(file), version=version)
    if output == "json":
        emit_json(
            {"name": registered.name, "version": registered.version, "path": str(registered.path)}
        )
        return
    err_console().print(
        f"registered component {registered.name}:{registered.version}", highlight=False
    )


@components.command("list")
@click.option("--name", "-n", help="Only the versions of this component.")
@output_option
@click.pass_context
def list_(ctx: click.Context, name: str | None, output: str) -> None:
    """List registered components, oldest version first."""
    from targets.jobs.components.store import list_components

    found = list_components(workspace_of(ctx), name)
    if output == "json":
        emit_json(
            [
                {
                    "name": c.name,
                    "version": c.version,
                    "type": c.type,
                    "display_name": c.display_name,
                    "description": c.description,
                }
                for c in found
            ]
        )
        return
    if not found:
        err_console().print("no components registered", highlight=False)
        return
    print_table(
        ["NAME", "VERSION", "TYPE", "DISPLAY NAME"],
        [[c.name, c.version, c.type, c.display_name or ""] for c in found],
    )


@components.command()
@click.option("--name", "-n", required=True)
@click.option("--version", "-v", "version", help="Default: the latest.")
@click.option("--label", "-l", type=click.Choice(["latest"]), help="latest: the highest version.")
@output_option
@click.pass_context
def show(
    ctx: click.Context, name: str, version: str | None, label: str | None, output: str
) -> None:
    """Show one registered component: its inputs, outputs and command."""
    from targets.jobs.components.store import get_component

    loaded = get_component(workspace_of(ctx), name, version or label)
    component = loaded.component
    data = component.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data["name"], data["type"] = component.name, component.type
    data["path"] = str(loaded.folder)
    if output == "json":
        emit_json(data)
        return
    import yaml

    click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())
