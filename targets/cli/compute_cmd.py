"""``targets compute map``: the compute names of job files -> attached targets."""

from __future__ import annotations

import click

from targets.cli._common import (
    emit_json,
    err_console,
    output_option,
    print_table,
    say,
    workspace_of,
)
from targets.cli._common import warn as warn_line
from targets.errors import UsageError


@click.group()
def compute() -> None:
    """Map the compute names of job files (azureml:cpu-cluster) to attached targets."""


@compute.command("map")
@click.argument("pairs", nargs=-1, metavar="[NAME=TARGET]...")
@click.option("--unset", "unset", multiple=True, metavar="NAME", help="Forget the mapping of NAME.")
@output_option
@click.pass_context
def map_(ctx: click.Context, pairs: tuple[str, ...], unset: tuple[str, ...], output: str) -> None:
    """Map compute names to attached targets; with no argument, list the mappings.

    A job that says `compute: azureml:cpu-cluster` then runs on the target mapped to
    cpu-cluster, without editing the file (`--target` still wins).

    \b
      targets compute map cpu-cluster=pool serverless=local
      targets compute map                      # list
      targets compute map --unset serverless
    """
    from targets.compute_map import compute_map, map_computes, parse_mapping, unmap_computes

    ws = workspace_of(ctx)
    if pairs and unset:
        raise UsageError("give NAME=TARGET pairs or --unset NAME, not both")
    if pairs:
        parsed = dict(parse_mapping(p) for p in pairs)
        attached = ws.targets()
        for name, target in parsed.items():
            if name in attached and name != target:
                warn_line(
                    f"{name!r} is also an attached target; jobs naming it now run on {target!r}"
                )
        current = map_computes(ws, parsed)
    elif unset:
        current = unmap_computes(ws, unset)
    else:
        current = compute_map(ws)
    if output == "json":
        emit_json(current)
        return
    if not current:
        say("no compute names mapped - e.g. targets compute map cpu-cluster=local")
        return
    if pairs or unset:
        err_console().print(f"{len(current)} compute names mapped", highlight=False)
    print_table(["COMPUTE", "TARGET"], [[f"azureml:{k}", v] for k, v in current.items()])
