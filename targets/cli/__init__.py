"""The ``targets`` command line. Thin: parse, call the API, render.

Subcommands are imported only when invoked, so ``targets --help`` and ``targets
--version`` stay fast and import no SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from targets._version import __version__

__all__ = ["cli", "main"]

# name -> (module, attribute, short help). Modules are imported on first use.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": (
        "targets.cli.run_cmd",
        "run",
        "Run a script, a runconfig or an Azure ML run configuration.",
    ),
    "runs": ("targets.cli.runs_cmd", "runs", "List, inspect, follow, download and cancel runs."),
    "attach": ("targets.cli.targets_cmd", "attach", "Attach a compute target to the workspace."),
    "create": (
        "targets.cli.clusters_cmd",
        "create",
        "Create a managed cluster that scales with its queue.",
    ),
    "update": ("targets.cli.clusters_cmd", "update", "Change a cluster's scale settings."),
    "delete": ("targets.cli.clusters_cmd", "delete", "Delete a cluster and its nodes."),
    "detach": ("targets.cli.targets_cmd", "detach", "Detach a compute target."),
    "list": ("targets.cli.targets_cmd", "list_targets", "List the attached compute targets."),
    "show": ("targets.cli.targets_cmd", "show", "Show one attached compute target."),
    "kinds": ("targets.cli.targets_cmd", "kinds", "List the installed target kinds."),
    "envs": ("targets.cli.envs_cmd", "envs", "List and prune prepared environments."),
    "components": (
        "targets.cli.components_cmd",
        "components",
        "Register, list and show components for v2 pipeline steps.",
    ),
    "gc": (
        "targets.cli.gc_cmd",
        "gc",
        "Free targets' storage: collected run folders, unneeded files.",
    ),
    "runconfig": (
        "targets.cli.runconfig_cmd",
        "runconfig",
        "Validate and convert run configurations.",
    ),
    "schema": ("targets.cli.runconfig_cmd", "schema", "Print the JSON Schema of a file format."),
    "job": ("targets.cli.job_cmd", "job", "Submit Azure ML v2 job files (az ml habits)."),
    "compute": ("targets.cli.compute_cmd", "compute", "Map job files' compute names to targets."),
    "data": (
        "targets.cli.data_cmd",
        "data",
        "Register data assets for azureml:NAME:VERSION inputs.",
    ),
    "datastores": (
        "targets.cli.datastores_cmd",
        "datastores",
        "Register folders for azureml://datastores/ inputs.",
    ),
    "migrate": (
        "targets.cli.migrate_cmd",
        "migrate",
        "Rewrite Azure ML v1 imports in scripts and notebooks to targets.azureml.",
    ),
    "plugin": ("targets.cli.plugin_cmd", "plugin", "Create the skeleton of a new target kind."),
    "studio": (
        "targets.cli.studio_cmd",
        "studio",
        "Serve the studio: targets, runs, logs and metrics in a browser.",
    ),
    "registry": (
        "targets.cli.registry_cmd",
        "registry",
        "Store or forget private image registry passwords.",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        command: click.Command = getattr(module, spec[1])
        return command

    def invoke(self, ctx: click.Context) -> Any:
        from targets.cli._common import handle_errors

        with handle_errors():
            return super().invoke(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in sorted(_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="targets")
@click.option(
    "--workspace",
    "-w",
    "workspace",
    envvar="TARGETS_WORKSPACE",
    metavar="DIR",
    help="The project folder holding .targets/ (default: found upwards from here).",
)
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """Attach compute targets and run your Azure ML-style projects on them."""
    from targets._caller import mark_command_line

    mark_command_line()
    ctx.obj = {"workspace": workspace}


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point. Errors become a message and an exit code (see
    ``_common.handle_errors``), never a traceback."""
    return cli.main(args=argv, prog_name="targets")
