"""Run-based compute from Python: v1's ``run_config.target = "amlcompute"`` with
``run_config.amlcompute.vm_size = ...`` (and ``cluster_max_node_count``) runs on a cluster
made for that one run and deleted after it.

The library already does this (:mod:`targets.clusters.target`): a *run-based template*
cluster named ``amlcompute`` gives each run submitted to it a cluster of its own, made from
the template and the runconfig's ``amlcompute`` section (``vm_size``, ``vm_priority``,
``cluster_max_node_count``, ``name``, ``retain_cluster``). Who deletes that cluster: its
reconcile process, a detached process started when the cluster is made, deletes it (nodes,
key, record) once the run has ended, unless ``retain_cluster`` is set. So the control
script may exit right after ``submit``: nothing it runs is needed for the deletion.

v1 code makes no template (in Azure ML ``amlcompute`` is a reserved name).
:func:`ensure_run_based` makes it, from the workspace's cluster provider (``config.json``'s
``cluster_provider`` and ``cluster_provider_options``, as ``AmlCompute`` does), the first
time a run asks for the target ``amlcompute``; :class:`targets.azureml.core.Workspace`
calls it when a run resolves that target, so ``Experiment.submit`` needs no change. A
template made here is made again when those settings have changed; one the user made
(``targets create amlcompute --type cluster --run-based ...``) is used as it is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from targets.errors import TargetsError, UnknownTargetError, UsageError

if TYPE_CHECKING:
    from targets.clusters.model import ClusterSpec
    from targets.workspace import TargetRecord, Workspace

__all__ = ["MADE_BY", "RUN_BASED_TARGET", "ensure_run_based", "template_spec"]

RUN_BASED_TARGET = "amlcompute"
"""v1's target name for run-based compute."""
MADE_BY = "targets.azureml"
"""The ``made_by`` fact of a template made by :func:`ensure_run_based`."""
TEMPLATE_MAX_NODES = 4
"""The template's ``max_nodes`` (a run's own cluster gets its ``cluster_max_node_count``,
else the nodes the run asks for)."""


def template_spec(ws: Workspace) -> ClusterSpec:
    """The run-based template the workspace's cluster provider makes (a UsageError naming
    ``config.json`` when its provider settings are refused)."""
    from targets.azureml.core.compute.amlcompute import workspace_provider
    from targets.clusters.lifecycle import cluster_spec

    provider, options = workspace_provider(ws)
    try:
        return cluster_spec(
            {"provider": provider, "run_based": True, "max_nodes": TEMPLATE_MAX_NODES}, options
        )
    except UsageError as exc:
        raise UsageError(
            f"run_config.target = {RUN_BASED_TARGET!r} makes a cluster for the run with the "
            f"workspace's {provider} provider, whose settings are refused: {exc.message}",
            hint=f"set cluster_provider_options in .azureml/config.json (e.g. "
            f'{{"image": "IMAGE"}} for docker), or make the template yourself: targets create '
            f"{RUN_BASED_TARGET} --type cluster --run-based --provider ... "
            + (f"({exc.hint})" if exc.hint else ""),
        ) from exc


def _existing(ws: Workspace) -> TargetRecord | None:
    try:
        return ws.target_record(RUN_BASED_TARGET)
    except UnknownTargetError:
        return None


def _same(record: TargetRecord, spec: ClusterSpec) -> bool:
    from pydantic import ValidationError

    from targets.clusters.model import ClusterSpec

    try:
        return ClusterSpec.model_validate(dict(record.options)) == spec
    except ValidationError:
        return False


def ensure_run_based(ws: Workspace) -> TargetRecord:
    """The run-based template ``amlcompute`` of ``ws``, made (or made again, see the
    module doc) from the workspace's cluster provider when needed. Raises a UsageError
    when the name is taken by a target that is not a run-based cluster."""
    from targets.clusters.lifecycle import create_cluster, delete_cluster
    from targets.clusters.provisioning import CLUSTER_KIND

    record = _existing(ws)
    if record is not None:
        run_based = record.kind == CLUSTER_KIND and bool(record.options.get("run_based"))
        if not run_based:
            raise UsageError(
                f"run_config.target = {RUN_BASED_TARGET!r} asks for run-based compute, but "
                f"the target {RUN_BASED_TARGET!r} is a {record.kind} target"
                + ("" if record.kind != CLUSTER_KIND else " that is not run-based"),
                hint=f"v1 reserves this name: rename that target (targets detach/delete "
                f"{RUN_BASED_TARGET}, then attach it under another name)",
            )
        if record.facts.get("made_by") != MADE_BY:
            return record  # the user's own template wins
        try:
            spec = template_spec(ws)
        except UsageError:
            # Settings broken since: keep the template (reading a run's status resolves
            # the target too, and must not fail because config.json changed).
            return record
        if _same(record, spec):
            return record
        delete_cluster(ws, RUN_BASED_TARGET)
    else:
        spec = template_spec(ws)
    try:
        made = create_cluster(ws, RUN_BASED_TARGET, spec)
    except TargetsError:
        again = _existing(ws)  # another process made it at the same moment
        if again is not None:
            return again
        if record is not None:
            ws.save_target(record)  # the new settings are refused: keep the old template
        raise
    marked = replace(made, facts={**made.facts, "made_by": MADE_BY})
    ws.save_target(marked)
    return marked
