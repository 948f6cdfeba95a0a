"""``targets create | update | delete``: managed clusters.

``create`` takes the cluster settings (Azure ML's provisioning names: --vm-size,
--vm-priority, --min-nodes, --max-nodes, --idle-seconds-before-scaledown, the vnet triple)
and the provider's own options (``--image`` for docker; ``--subscription``,
``--resource-group``, ``--location`` for azure; ``--hosts`` for ssh), all validated before
anything is created. The cluster's SSH key is generated here and kept in the keyring.
"""

from __future__ import annotations

import time
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


def _validation_error(exc: Any, what: str) -> UsageError:
    lines = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"] if p != "provider_options")
        lines.append(f"--{loc.replace('_', '-')}: {e['msg']}" if loc else e["msg"])
    return UsageError(f"invalid {what}:\n  " + "\n  ".join(lines))


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
    from pydantic import ValidationError

    from targets.clusters.model import ClusterSpec
    from targets.clusters.provider import load_provider
    from targets.clusters.provisioning import provision
    from targets.clusters.reconciler import ensure_running
    from targets.secrets import check_backend
    from targets.workspace import LOCAL, validate_target_name

    if kind != "cluster":
        raise UsageError(
            f"`targets create` makes clusters, not {kind!r} targets",
            hint=f"targets attach {name} --type {kind} ... attaches an existing machine",
        )
    validate_target_name(name)
    if name == LOCAL:
        raise UsageError("the name 'local' is reserved for this machine")
    ws = workspace_of(ctx)
    if name in ws.targets():
        raise UsageError(
            f"a target named {name!r} exists already",
            hint=f"targets update {name} ... changes a cluster; targets delete {name} removes it",
        )
    raw = list(ctx.args)
    provider_cls = load_provider(_provider_of(raw))
    spec_values, option_values = _split(raw, dict(provider_cls.options_model.model_fields))
    try:
        options = provider_cls.options_model.model_validate(option_values)
    except ValidationError as exc:
        raise _validation_error(exc, f"options for the {provider_cls.name} provider") from None
    try:
        spec = ClusterSpec.model_validate(
            {**spec_values, "provider_options": options.model_dump(mode="json")}
        )
    except ValidationError as exc:
        raise _validation_error(exc, "cluster settings") from None
    if spec.vm_priority == "lowpriority" and not provider_cls.supports_low_priority:
        raise UsageError(
            f"the {provider_cls.name} provider has no low-priority nodes",
            hint="leave out --vm-priority lowpriority",
        )
    check_backend()  # the cluster's key must have somewhere to go before anything is made
    if spec.run_based:
        _create_template(ws, name, spec, output)
        return
    busy = err_console().status(f"creating cluster {name} ({spec.provider}) ...")
    record = provision(ws, name, spec, busy=busy if output == "table" else None)
    if spec.min_nodes:
        ensure_running(ws.root, name)
    if output == "json":
        emit_json({"name": name, **record.to_yaml()})
    else:
        err_console().print(
            f"created cluster [bold]{name}[/] ({spec.provider}, {spec.min_nodes}-"
            f"{spec.max_nodes} nodes, idle nodes removed after "
            f"{spec.idle_seconds_before_scaledown} s)",
            highlight=False,
        )


def _create_template(ws: Any, name: str, spec: Any, output: str) -> None:
    """``--run-based``: record the settings every run's own cluster is made from."""
    from targets.clusters.provisioning import make_provider
    from targets.clusters.state import cluster_dir
    from targets.workspace import TargetRecord

    provider = make_provider(
        name, spec, cluster_dir(ws.dir, name), lambda n: None, make_folder=False
    )
    try:
        provider.check()
    finally:
        provider.close()
    record = TargetRecord(
        name=name,
        kind="cluster",
        options=spec.model_dump(mode="json", exclude_defaults=True),
        facts={"provider": spec.provider},
        attached_at=time.time(),
    )
    ws.save_target(record)
    if output == "json":
        emit_json({"name": name, **record.to_yaml()})
    else:
        err_console().print(
            f"created [bold]{name}[/]: each run with target: {name} gets a {spec.provider} "
            f"cluster of its own (up to {spec.max_nodes} nodes), deleted when the run ends",
            highlight=False,
        )


def _cluster_record(ws: Any, name: str) -> Any:
    record = ws.target_record(name)
    if record.kind != "cluster":
        raise UsageError(
            f"{name!r} is a {record.kind} target, not a cluster",
            hint=f"targets detach {name}" if record.kind != "local" else None,
        )
    return record


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
    from pydantic import ValidationError

    from targets.clusters.model import ClusterSpec
    from targets.clusters.reconciler import ensure_running
    from targets.workspace import TargetRecord

    ws = workspace_of(ctx)
    record = _cluster_record(ws, name)
    changes = {
        k: v
        for k, v in {
            "min_nodes": min_nodes,
            "max_nodes": max_nodes,
            "idle_seconds_before_scaledown": idle_seconds_before_scaledown,
        }.items()
        if v is not None
    }
    if not changes:
        raise UsageError(
            "nothing to change",
            hint="give --min-nodes, --max-nodes or --idle-seconds-before-scaledown",
        )
    try:
        spec = ClusterSpec.model_validate({**dict(record.options), **changes})
    except ValidationError as exc:
        raise _validation_error(exc, "cluster settings") from None
    ws.save_target(
        TargetRecord(
            name=record.name,
            kind=record.kind,
            options=spec.model_dump(mode="json", exclude_defaults=True),
            facts=record.facts,
            attached_at=record.attached_at,
            secrets=record.secrets,
        )
    )
    ensure_running(ws.root, name, wake=True)
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
    import shutil

    from targets.clusters.keys import SECRET_NAME
    from targets.clusters.model import ClusterSpec
    from targets.clusters.provisioning import make_provider
    from targets.clusters.state import ClusterState, cluster_dir
    from targets.secrets import delete_secret, get_secret

    ws = workspace_of(ctx)
    record = _cluster_record(ws, name)
    spec = ClusterSpec.model_validate(dict(record.options))
    cdir = cluster_dir(ws.dir, name)
    state = ClusterState(cdir)
    try:
        open_runs = state.runs(open_only=True)
        if open_runs and not force:
            raise UsageError(
                f"cluster {name!r} has {len(open_runs)} run(s) queued or running: "
                + ", ".join(r.run_id for r in open_runs[:5]),
                hint=f"wait for them, or targets delete {name} --force (cancels them)",
            )
        for run in open_runs:
            state.update_run(
                run.run_id,
                status="Canceled",
                message="the cluster was deleted",
                ended_at=time.time(),
            )
    finally:
        state.close()
    # Forget the cluster first: a reconcile process still running stops at its next pass.
    ws.remove_target(name)
    from targets.clusters.reconciler import is_running

    deadline = time.time() + 30
    while is_running(cdir) and time.time() < deadline:
        time.sleep(0.2)
    if not spec.run_based:
        provider = make_provider(name, spec, cdir, lambda n: get_secret(ws.secret_ref(name, n)))
        try:
            with err_console().status(f"deleting cluster {name} and its nodes ..."):
                provider.delete_cluster()
        finally:
            provider.close()
    delete_secret(ws.secret_ref(name, SECRET_NAME))
    shutil.rmtree(cdir / "provider", ignore_errors=True)
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
