"""``targets create | update | delete``: managed clusters.

``create`` takes the cluster settings (Azure ML's provisioning names: --vm-size,
--vm-priority, --min-nodes, --max-nodes, --idle-seconds-before-scaledown, the vnet triple)
and the provider's own options (``--image`` for docker; ``--subscription``,
``--resource-group``, ``--location`` for azure; ``--hosts`` for ssh), all validated before
anything is created. This module parses and prints; the rules and the work are in
:mod:`targets.clusters.lifecycle`.
"""

from __future__ import annotations

from typing import Any

import click

from targets.cli._common import (
    emit_json,
    err_console,
    fmt_time,
    output_option,
    print_table,
    workspace_of,
)
from targets.errors import UsageError

_SPEC_FIELDS = (
    "provider",
    "vm_size",
    "vm_priority",
    "min_nodes",
    "max_nodes",
    "idle_seconds_before_scaledown",
    "vnet_resource_group",
    "vnet_name",
    "subnet_name",
    "requeue_on_preemption",
    "run_based",
)


def _split(
    raw: list[str], provider_fields: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cluster settings and provider options from ``--name value`` flags."""
    from pydantic.fields import FieldInfo

    from targets.cli.targets_cmd import _parse_kind_options
    from targets.clusters.model import ClusterSpec

    fields: dict[str, FieldInfo] = {
        k: v for k, v in ClusterSpec.model_fields.items() if k in _SPEC_FIELDS
    }
    overlap = set(fields) & set(provider_fields)
    merged = dict(provider_fields)
    merged.update(fields)
    values = _parse_kind_options(merged, raw)
    spec = {k: v for k, v in values.items() if k in fields and k not in overlap}
    options = {k: v for k, v in values.items() if k not in spec}
    for key in ("hosts", "volumes"):
        if isinstance(options.get(key), str):
            options[key] = [p.strip() for p in str(options[key]).split(",") if p.strip()]
    return spec, options


def _provider_of(raw: list[str]) -> str:
    for i, token in enumerate(raw):
        if token == "--provider" and i + 1 < len(raw):
            return raw[i + 1]
        if token.startswith("--provider="):
            return token.split("=", 1)[1]
    raise UsageError(
        "which provider makes the nodes? give --provider",
        hint="--provider docker (containers on a Docker engine), azure (a VM scale set) "
        "or ssh (attached vm targets)",
    )


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name")
@click.option("--type", "kind", default="cluster", show_default=True, help="Only `cluster`.")
@output_option
@click.pass_context
def create(ctx: click.Context, name: str, kind: str, output: str) -> None:
    """Create the managed cluster NAME (it scales between --min-nodes and --max-nodes).

    \b
      targets create box-pool --type cluster --provider docker --image IMAGE --max-nodes 3
      targets create cpu-cluster --type cluster --provider azure --vm-size Standard_D2_v2 \\
          --min-nodes 0 --max-nodes 4 --vm-priority lowpriority \\
          --idle-seconds-before-scaledown 120 --subscription S --resource-group RG \\
          --location westeurope
    """
    from targets.clusters.lifecycle import cluster_spec, create_cluster
    from targets.clusters.provider import load_provider

    if kind != "cluster":
        raise UsageError(
            f"`targets create` makes clusters, not {kind!r} targets",
            hint=f"targets attach {name} --type {kind} ... attaches an existing machine",
        )
    ws = workspace_of(ctx)
    raw = list(ctx.args)
    provider_cls = load_provider(_provider_of(raw))
    spec_values, option_values = _split(raw, dict(provider_cls.options_model.model_fields))
    spec = cluster_spec(spec_values, option_values)
    busy = err_console().status(f"creating cluster {name} ({spec.provider}) ...")
    record = create_cluster(ws, name, spec, busy=busy if output == "table" else None)
    if output == "json":
        emit_json({"name": name, **record.to_yaml()})
    elif spec.run_based:
        err_console().print(
            f"created [bold]{name}[/]: each run with target: {name} gets a {spec.provider} "
            f"cluster of its own (up to {spec.max_nodes} nodes), deleted when the run ends",
            highlight=False,
        )
    else:
        err_console().print(
            f"created cluster [bold]{name}[/] ({spec.provider}, {spec.min_nodes}-"
            f"{spec.max_nodes} nodes, idle nodes removed after "
            f"{spec.idle_seconds_before_scaledown} s)",
            highlight=False,
        )


@click.command()
@click.argument("name")
@click.option("--min-nodes", type=int, default=None, help="Nodes kept even when idle.")
@click.option("--max-nodes", type=int, default=None, help="The most nodes.")
@click.option(
    "--idle-seconds-before-scaledown",
    type=int,
    default=None,
    help="Seconds an idle node is kept before it is removed.",
)
@output_option
@click.pass_context
def update(
    ctx: click.Context,
    name: str,
    min_nodes: int | None,
    max_nodes: int | None,
    idle_seconds_before_scaledown: int | None,
    output: str,
) -> None:
    """Change a cluster's scale settings; the cluster follows at once."""
    from targets.clusters.lifecycle import update_cluster

    spec = update_cluster(
        workspace_of(ctx),
        name,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        idle_seconds_before_scaledown=idle_seconds_before_scaledown,
    )
    if output == "json":
        emit_json({"name": name, **spec.model_dump(mode="json")})
    else:
        err_console().print(
            f"updated {name}: {spec.min_nodes}-{spec.max_nodes} nodes, idle nodes removed "
            f"after {spec.idle_seconds_before_scaledown} s",
            highlight=False,
        )


@click.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Cancel the cluster's queued and running runs.")
@click.pass_context
def delete(ctx: click.Context, name: str, force: bool) -> None:
    """Delete a cluster: remove its nodes (and cloud resources) and forget it."""
    from targets.clusters.lifecycle import delete_cluster

    busy = err_console().status(f"deleting cluster {name} and its nodes ...")
    delete_cluster(workspace_of(ctx), name, force=force, busy=busy)
    err_console().print(f"deleted cluster {name}", highlight=False)


def print_cluster_status(live: dict[str, Any]) -> None:
    nodes = live.get("nodes") or []
    rows = [
        [
            n["id"],
            n["state"],
            (n.get("address") or "-") + (f" via {n['via']}" if n.get("via") else ""),
            n.get("run") or ("idle since " + fmt_time(n.get("idle_since"))),
        ]
        for n in nodes
    ]
    print_table(["NODE", "STATE", "ADDRESS", "RUN"], rows, title=f"nodes ({len(nodes)})")
    queue = live.get("queue") or []
    if queue:
        print_table(
            ["RUN", "STATUS", "NODES"],
            [[q["run_id"], q["status"], str(q["nodes"])] for q in queue],
            title="runs",
        )
    events = live.get("events") or []
    if events:
        print_table(
            ["WHEN", "EVENT"],
            [[fmt_time(e["at"]), e["text"]] for e in events[-10:]],
            title="events",
        )
