"""``targets runconfig validate | convert`` and ``targets schema``."""

from __future__ import annotations

from pathlib import Path

import click

from targets.cli._common import emit_json, err_console, output_option, warn
from targets.errors import UsageError


@click.group()
def runconfig() -> None:
    """Validate and convert run configurations."""


@runconfig.command()
@click.argument("file", type=click.Path())
@output_option
def validate(file: str, output: str) -> None:
    """Load FILE (our YAML or an Azure ML v1 run configuration) and print what it means."""
    from targets.cli.run_cmd import _is_job
    from targets.runconfig.io import dump_runconfig, load_runconfig

    if _is_job(Path(file)):
        raise UsageError(
            f"{file} is an Azure ML v2 job file (a command, sweep or pipeline job), not a "
            "run configuration",
            hint=f"check it with: targets job validate -f {file}",
        )
    loaded = load_runconfig(file, project_dir=Path.cwd())
    if output == "json":
        emit_json(
            {
                "path": str(loaded.path),
                "format": loaded.format,
                "source_directory": str(loaded.source_directory),
                "warnings": list(loaded.warnings),
                "runconfig": loaded.config.model_dump(mode="json", exclude_defaults=True),
            }
        )
        return
    for line in loaded.warnings:
        warn(line)
    err_console().print(
        f"{loaded.path}: valid ({loaded.format}); source directory {loaded.source_directory}",
        highlight=False,
    )
    click.echo(dump_runconfig(loaded.config), nl=False)


@runconfig.command()
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--force", is_flag=True, help="Overwrite NEW if it exists.")
def convert(old: str, new: str, force: bool) -> None:
    """Convert OLD (an Azure ML v1 run configuration) to our YAML format in NEW."""
    from targets.runconfig.io import convert_runconfig

    result = convert_runconfig(old, new, overwrite=force)
    for line in getattr(result, "warnings", ()) or ():
        warn(line)
    err_console().print(f"wrote {new}", highlight=False)


@click.command()
@click.argument("what", type=click.Choice(["runconfig"]))
def schema(what: str) -> None:
    """Print the JSON Schema of WHAT (for editors and CI validation)."""
    from targets.runconfig.schema import runconfig_json_schema

    emit_json(runconfig_json_schema())
