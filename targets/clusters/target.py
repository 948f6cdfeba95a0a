"""The ``cluster`` kind: a managed cluster of nodes that grows with its queue.

``targets create NAME --type cluster --provider docker|azure|ssh ...`` makes one. A run
submitted to it is queued in the cluster's state (``.targets/clusters/NAME/``) together
with a frozen copy of its snapshot (in this machine's content-addressed store, so a file
edited after ``targets run`` returned does not change the queued run); the cluster's
reconcile process (:mod:`targets.clusters.reconciler`) does the rest. Every primitive of
this kind reads the cluster's local state, so following a run costs no network round trip:
the reconcile process streams the nodes' logs into the run's folder there.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from targets.clusters.model import ClusterSpec
from targets.clusters.reconciler import ensure_running, is_running, run_folder
from targets.clusters.state import ClusterState, cluster_dir
from targets.compute import LocalAgentClient
from targets.compute.base import (
    Capability,
    ComputeTarget,
    LogChunk,
    Progress,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
    no_progress,
)
from targets.errors import UsageError

if TYPE_CHECKING:
    from targets.runconfig.model import RunConfiguration

__all__ = ["ClusterHandleData", "ClusterTarget", "cluster_handle_data", "nodes_needed"]


class ClusterHandleData(TypedDict, total=False):
    """The ``data`` of a cluster run's handle (see :func:`cluster_handle_data`)."""

    nodes: int
    """Nodes the run needs."""
    cluster: str
    """A run-based run: the cluster made for it ..."""
    spec: dict[str, Any]
    """... and that cluster's :class:`ClusterSpec` (JSON)."""


def cluster_handle_data(handle: RunHandle) -> ClusterHandleData:
    """The typed view of a cluster handle's ``data``: the known keys of the right type
    (a handle an older version wrote loads whatever it holds)."""
    raw = handle.data
    data: ClusterHandleData = {}
    nodes, cluster, spec = raw.get("nodes"), raw.get("cluster"), raw.get("spec")
    if type(nodes) is int:
        data["nodes"] = nodes
    if isinstance(cluster, str) and cluster:
        data["cluster"] = cluster
    if isinstance(spec, dict):
        data["spec"] = spec
    return data


def nodes_needed(config: RunConfiguration) -> int:
    """How many nodes the run asks for (its distribution decides; else node_count)."""
    from targets.distributed import distribution_of

    dist = distribution_of(config)
    if dist is not None:
        return int(dist.node_count)
    return int(config.node_count)


class ClusterTarget(ComputeTarget):
    """Nodes from a provider, scaled between min_nodes and max_nodes."""

    kind = "cluster"
    description = "a managed cluster that scales with its queue (nodes from docker, azure, ssh)"
    options_model = ClusterSpec
    capabilities = frozenset(
        {
            Capability.VIRTUALENV,
            Capability.CONDA,
            Capability.CANCEL,
            Capability.LIVE_LOGS,
            Capability.MULTI_NODE,
        }
    )
    secret_names = ()
    attachable = False  # created with `targets create`, never attached

    _state: ClusterState | None = None

    @classmethod
    def summary(cls, options: Mapping[str, Any]) -> str:
        from targets.clusters.model import summary_of

        return summary_of(options)

    @classmethod
    def shown_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        from targets.clusters.model import shown_settings

        return shown_settings(options)

    @property
    def spec(self) -> ClusterSpec:
        assert isinstance(self.options, ClusterSpec)
        return self.options

    @property
    def folder(self) -> Path:
        return cluster_dir(self.context.state_dir, self.name)

    @property
    def workspace_root(self) -> Path:
        return self.context.state_dir.parent

    def state(self) -> ClusterState:
        if self._state is None:
            self._state = ClusterState(self.folder)
        return self._state

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None

    def _exists(self) -> bool:
        """Whether the cluster is still in the workspace (a run-based one goes with its
        run; what it collected stays readable)."""
        from targets.workspace import Workspace

        return self.name in Workspace(self.workspace_root).targets()

    def probe(self) -> dict[str, Any]:
        return {"provider": self.spec.provider}

    def describe(self) -> dict[str, Any]:
        """Nodes, runs and recent events, for ``targets show``."""
        state = self.state()
        nodes = []
        for row in state.nodes():
            nodes.append(
                {
                    "id": row.node.id,
                    "state": row.node.state.value,
                    "address": f"{row.node.address}:{row.node.ssh_port}",
                    "via": row.node.jump,
                    "hostname": row.node.hostname,
                    "run": row.busy_run,
                    "idle_since": row.idle_since if not row.busy_run else None,
                    "priority": row.node.priority,
                }
            )
        runs = [
            {
                "run_id": r.run_id,
                "status": r.status,
                "nodes": r.nodes_needed,
                "assigned": r.assigned,
            }
            for r in state.runs(open_only=True, request=False)
        ]
        return {
            "nodes": nodes,
            "queue": runs,
            "reconciler": "running" if is_running(self.folder) else "stopped",
            "events": [{"at": at, "text": text} for at, text in state.events(20)],
        }

    # -- submit --------------------------------------------------------------------------

    def check_request(self, config: RunConfiguration) -> None:
        if config.framework == "pyspark":
            raise UsageError(
                f"target {self.name!r} (cluster) does not run Spark jobs",
                hint="run framework: pyspark on an hdinsight or databricks target",
            )
        if config.environment.docker.enabled:
            raise UsageError(
                f"cluster {self.name!r} runs environments as conda or virtualenv on its "
                "nodes, not Docker containers",
                hint="set environment.docker.enabled: false (make the node image hold "
                "what you need instead)",
            )
        needed = nodes_needed(config)
        if self.spec.run_based:
            self._child_spec(config)  # refuses bad amlcompute settings now
            return
        if needed > self.spec.max_nodes:
            raise UsageError(
                f"the run asks for {needed} nodes but cluster {self.name!r} has at most "
                f"{self.spec.max_nodes}",
                hint=f"targets update {self.name} --max-nodes {needed}, or lower node_count",
            )

    # -- run-based compute: one cluster per run, made from this template -------------------

    def _child_spec(self, config: RunConfiguration) -> ClusterSpec:
        aml = config.amlcompute
        needed = nodes_needed(config)
        values = self.spec.model_dump()
        values.update(run_based=False, min_nodes=0, idle_seconds_before_scaledown=0)
        if aml.vm_size:
            values["vm_size"] = aml.vm_size
        if aml.vm_priority:
            values["vm_priority"] = aml.vm_priority
        values["max_nodes"] = max(needed, aml.cluster_max_node_count or needed)
        if aml.cluster_max_node_count and aml.cluster_max_node_count < needed:
            raise UsageError(
                f"amlcompute.cluster_max_node_count is {aml.cluster_max_node_count} but the run "
                f"asks for {needed} nodes",
                hint=f"set amlcompute.cluster_max_node_count: {needed}, or lower node_count",
            )
        if aml.name:
            from targets.workspace import Workspace, validate_target_name

            validate_target_name(aml.name)
            if aml.name in Workspace(self.workspace_root).targets():
                raise UsageError(
                    f"amlcompute.name {aml.name!r} names a target that exists already",
                    hint="pick another name, or run on it with target: " + aml.name,
                )
        spec = ClusterSpec.model_validate(values)
        from targets.clusters.provisioning import check_cluster_spec

        check_cluster_spec(spec)  # e.g. low-priority nodes from a provider without them
        return spec

    def _submit_run_based(self, request: SubmitRequest, progress: Progress) -> RunHandle:
        import secrets as random

        from targets.clusters.provisioning import provision
        from targets.workspace import Workspace

        spec = self._child_spec(request.config)
        name = request.config.amlcompute.name or f"aml-{random.token_hex(4)}"
        provision(
            Workspace(self.workspace_root),
            name,
            spec,
            facts={
                "run_based_for": request.run_id,
                "template": self.name,
                "retain": request.config.amlcompute.retain_cluster,
            },
        )
        child = ClusterTarget(name, spec, self.context)
        try:
            handle = child.submit(request, progress)
        finally:
            child.close()
        data: ClusterHandleData = {
            **cluster_handle_data(handle),
            "cluster": name,
            "spec": spec.model_dump(mode="json"),
        }
        return RunHandle(kind=self.kind, target=self.name, run_id=request.run_id, data=data)

    def _for(self, handle: RunHandle) -> ClusterTarget:
        """The cluster that holds the run: this one, or the run's own (run-based)."""
        data = cluster_handle_data(handle)
        name = data.get("cluster")
        if not name or name == self.name or "spec" not in data:
            return self
        spec = ClusterSpec.model_validate(data["spec"])
        return ClusterTarget(name, spec, self.context)

    def submit(self, request: SubmitRequest, progress: Progress = no_progress) -> RunHandle:
        if self.spec.run_based:
            self.check_request(request.config)
            return self._submit_run_based(request, progress)
        return self._submit_queued(request, progress)

    def _submit_queued(self, request: SubmitRequest, progress: Progress) -> RunHandle:
        from targets.agent import storage, store
        from targets.agent.protocol import manifest_rows
        from targets.compute.local import agent_root

        config = request.config
        self.check_request(config)
        needed = nodes_needed(config)
        # Freeze the snapshot: copy its files into this machine's object store (files
        # already there are skipped by content).
        root = str(agent_root())
        rows = manifest_rows(request.snapshot.to_manifest()["files"])
        # Claimed, so that `targets gc` on this machine spares them while the run waits
        # (up to the claim's lifetime, agent/storage.py CLAIM_TTL).
        missing = set(storage.missing_and_claim(root, rows, f"queued-{request.run_id}"))
        total = len(missing)
        done = 0
        for row in rows:
            key = row.key
            if row.link is None and key in missing:
                store.put_file(root, key, str(request.snapshot.source(row.path)))
                missing.discard(key)
                done += 1
                progress("upload-files", done, total)
        stored = {
            "config": config.model_dump(mode="json", exclude_defaults=True),
            "environment": request.environment.to_json(),
            "snapshot": request.snapshot.to_manifest(),
            "experiment": request.experiment,
            "objects_root": root,
        }
        self.state().enqueue(request.run_id, needed, stored)
        run_folder(self.folder, request.run_id).mkdir(parents=True, exist_ok=True)
        ensure_running(self.workspace_root, self.name, wake=True)
        return RunHandle(
            kind=self.kind,
            target=self.name,
            run_id=request.run_id,
            data=ClusterHandleData(nodes=needed),
        )

    # -- the rest of the contract ----------------------------------------------------------

    def status(self, handle: RunHandle) -> RunState:
        target = self._for(handle)
        if target is not self:
            with target:
                return target.status(handle)
        state = self._state_of(handle.run_id)
        if not state.status.terminal and not is_running(self.folder) and self._exists():
            # Polled often: the workspace file is read only when nothing reconciles.
            ensure_running(self.workspace_root, self.name)
        return state

    def read_logs(self, handle: RunHandle, offsets: Mapping[str, int]) -> list[LogChunk]:
        return self._collected(handle).logs(handle.run_id, offsets)

    #: Seconds between two looks of :meth:`wait_news` at the cluster's local state (one
    #: indexed SQLite read and a stat of the run's logs: no network, ~0.1 ms each): the
    #: first pause, growing by 15% per quiet look up to ``news_interval_longest``.
    news_interval = 0.01
    news_interval_longest = 0.05

    def wait_news(
        self, handle: RunHandle, offsets: Mapping[str, int], known: str | None, timeout: float
    ) -> tuple[RunState, list[LogChunk]] | None:
        """Wait on this machine's copy of the run: the reconcile process writes the run's
        status (to the cluster's database) only after the logs it collected (to the run's
        folder), so an end seen here comes with complete logs."""
        target = self._for(handle)
        if target is not self:
            with target:
                return target.wait_news(handle, offsets, known, timeout)
        deadline = time.monotonic() + max(0.0, timeout)
        state = self.status(handle)  # also restarts a reconcile process that is gone
        collected = self._collected(handle)
        pause = self.news_interval
        while True:
            chunks = collected.logs(handle.run_id, offsets)
            if chunks or state.status.terminal or state.status.value != known:
                return state, chunks
            left = deadline - time.monotonic()
            if left <= 0:
                return state, []
            time.sleep(min(pause, left))
            pause = min(pause * 1.15, self.news_interval_longest)
            state = self._state_of(handle.run_id)

    def _state_of(self, run_id: str) -> RunState:
        """The run's state as recorded (what :meth:`status` returns, without the check
        that a reconcile process runs)."""
        run = self.state().run(run_id, request=False)
        if run is None:
            return RunState(RunStatus.FAILED, message="the cluster does not know this run")
        try:
            status = RunStatus(run.status)
        except ValueError:
            status = RunStatus.FAILED
        message = run.message
        if status is RunStatus.QUEUED and message is None:
            message = f"waiting for {run.nodes_needed} node(s)"
        return RunState(
            status=status,
            exit_code=run.exit_code,
            message=message,
            phases=dict(run.phases),
            started_at=run.started_at,
            ended_at=run.ended_at,
        )

    def fetch_outputs(self, handle: RunHandle, dest: Path) -> None:
        self._collected(handle).fetch(handle.run_id, dest)

    def _collected(self, handle: RunHandle) -> LocalAgentClient:
        """What the reconcile process collected of the run, read as a local agent's run."""
        return LocalAgentClient(self._for(handle).folder)

    def cancel(self, handle: RunHandle) -> None:
        target = self._for(handle)
        if target is not self:
            with target:
                target.cancel(handle)
            return
        state = self.state()
        state.request_cancel(handle.run_id)
        ensure_running(self.workspace_root, self.name, wake=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            run = state.run(handle.run_id, request=False)
            if run is None or run.terminal:
                return
            time.sleep(0.2)

    def discard(self, handle: RunHandle) -> None:
        target = self._for(handle)
        folder = run_folder(target.folder, handle.run_id)
        run = target.state().run(handle.run_id, request=False)
        if run is not None and run.terminal:
            shutil.rmtree(folder, ignore_errors=True)
