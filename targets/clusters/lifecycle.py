"""Creating, changing and deleting managed clusters: the library operations behind
``targets create | update | delete`` (and the Python API's), with every rule inside.

- :func:`create_cluster`: validate the settings and the provider's options (a provider
  without low-priority nodes refuses ``vm_priority: lowpriority``), make the key pair and
  the cluster (or, ``run_based``, record the template every run's own cluster is made
  from), start its reconcile process when it keeps nodes.
- :func:`update_cluster`: change the scale settings; the cluster follows at once.
- :func:`delete_cluster`: refuse while runs are open (unless ``force``: they are
  canceled), forget the cluster, remove its nodes and its key.

Each raises a UsageError (exit code 2) for bad input before anything is made or written.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from targets.agent import protocol
from targets.clusters.model import ClusterSpec
from targets.clusters.provisioning import (
    CLUSTER_KIND,
    check_cluster_spec,
    cluster_record,
    make_provider,
    provision,
)
from targets.errors import UsageError

if TYPE_CHECKING:
    from targets.workspace import TargetRecord, Workspace

__all__ = ["SCALE_SETTINGS", "cluster_spec", "create_cluster", "delete_cluster", "update_cluster"]

SCALE_SETTINGS = ("min_nodes", "max_nodes", "idle_seconds_before_scaledown")
"""What :func:`update_cluster` changes."""


def cluster_spec(
    settings: Mapping[str, Any], provider_options: Mapping[str, Any] | None = None
) -> ClusterSpec:
    """The validated settings of a cluster (Azure ML's provisioning names, see
    :class:`ClusterSpec`) with its provider's options, checked against the provider.
    Raises a UsageError naming each refused setting."""
    from pydantic import ValidationError

    from targets.attachment import options_error

    values = dict(settings)
    if provider_options is not None:
        values["provider_options"] = dict(provider_options)
    if not values.get("provider"):
        raise UsageError(
            "which provider makes the nodes? give --provider",
            hint="--provider docker (containers on a Docker engine), azure (a VM scale set) "
            "or ssh (attached vm targets)",
        )
    try:
        spec = ClusterSpec.model_validate(values)
    except ValidationError as exc:
        raise options_error(exc, "cluster settings", skip=("provider_options",)) from None
    check_cluster_spec(spec)
    return spec


def create_cluster(
    ws: Workspace,
    name: str,
    spec: ClusterSpec,
    *,
    busy: AbstractContextManager[Any] | None = None,
) -> TargetRecord:
    """Create the managed cluster ``name`` (see the module doc). ``busy`` wraps the
    provider's work (a spinner). Returns its record in ``targets.yml``."""
    from targets.attachment import check_new_name
    from targets.clusters.reconciler import ensure_running
    from targets.clusters.state import cluster_dir
    from targets.secrets import check_backend

    check_new_name(
        ws,
        name,
        hint=f"targets update {name} ... changes a cluster; targets delete {name} removes it",
    )
    check_cluster_spec(spec)
    check_backend()  # the cluster's key must have somewhere to go before anything is made
    if spec.run_based:
        provider = make_provider(
            name, spec, cluster_dir(ws.dir, name), lambda n: None, make_folder=False
        )
        try:
            provider.check()
        finally:
            provider.close()
        record = cluster_record(name, spec, {"provider": spec.provider}, secrets=())
        ws.save_target(record)
        return record
    record = provision(ws, name, spec, busy=busy)
    if spec.min_nodes:
        ensure_running(ws.root, name)
    return record


def _cluster(ws: Workspace, name: str) -> TargetRecord:
    record = ws.target_record(name)
    if record.kind != CLUSTER_KIND:
        raise UsageError(
            f"{name!r} is a {record.kind} target, not a cluster",
            hint=f"targets detach {name}" if name != "local" else None,
        )
    return record


def update_cluster(ws: Workspace, name: str, **changes: int | None) -> ClusterSpec:
    """Change the scale settings (:data:`SCALE_SETTINGS`; None leaves one as it is) of
    cluster ``name``; its reconcile process applies them at once. Returns the settings."""
    from pydantic import ValidationError

    from targets.attachment import options_error
    from targets.clusters.reconciler import ensure_running

    unknown = sorted(set(changes) - set(SCALE_SETTINGS))
    if unknown:
        raise UsageError(
            f"a cluster's {', '.join(unknown)} cannot be changed",
            hint="delete it and create it again with the new settings",
        )
    record = _cluster(ws, name)
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise UsageError(
            "nothing to change",
            hint="give --min-nodes, --max-nodes or --idle-seconds-before-scaledown",
        )
    try:
        spec = ClusterSpec.model_validate({**dict(record.options), **given})
    except ValidationError as exc:
        raise options_error(exc, "cluster settings") from None
    ws.save_target(
        cluster_record(
            name, spec, record.facts, attached_at=record.attached_at, secrets=record.secrets
        )
    )
    ensure_running(ws.root, name, wake=True)
    return spec


def delete_cluster(
    ws: Workspace,
    name: str,
    *,
    force: bool = False,
    busy: AbstractContextManager[Any] | None = None,
) -> TargetRecord:
    """Delete cluster ``name``: its nodes and cloud resources, its key, its record.
    Refused while it has queued or running runs, unless ``force`` (they are canceled).
    ``busy`` wraps the provider's work. Returns the record that was removed."""
    from targets.clusters.keys import SECRET_NAME
    from targets.clusters.reconciler import is_running
    from targets.clusters.state import ClusterState, cluster_dir
    from targets.secrets import delete_secret, get_secret

    record = _cluster(ws, name)
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
                status=protocol.CANCELED,
                message="the cluster was deleted",
                ended_at=time.time(),
            )
    finally:
        state.close()
    # Forget the cluster first: a reconcile process still running stops at its next pass.
    ws.remove_target(name)
    deadline = time.time() + 30
    while is_running(cdir) and time.time() < deadline:
        time.sleep(0.2)
    if not spec.run_based:
        provider = make_provider(name, spec, cdir, lambda n: get_secret(ws.secret_ref(name, n)))
        try:
            with busy or nullcontext():
                provider.delete_cluster()
        finally:
            provider.close()
    delete_secret(ws.secret_ref(name, SECRET_NAME))
    shutil.rmtree(cdir / "provider", ignore_errors=True)
    return record
