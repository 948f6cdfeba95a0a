"""The reconcile process of one cluster: it makes the cluster match its queue.

One detached process per cluster and workspace (``python -m targets.clusters.reconciler``),
started by the first command that gives the cluster work (``targets run``, ``targets
create`` with min_nodes > 0, ``targets update``) and guarded by a lock file, so there is
never more than one. It owns every change to the cluster: it asks the provider for nodes,
starts queued runs on them, follows those runs (status, logs, outputs), notices lost nodes
and removes idle ones. Because it is a process of its own, scale-down does not depend on a
client staying open: `targets run` can be interrupted, the terminal closed, and the nodes
still go away after their idle time. It exits once the cluster is at rest (no runs, no
node above min_nodes) and is started again by the next command that needs it.

Why here and not a watchdog on the nodes: removing a node needs the provider's
credentials (your ``az login``, the Docker engine's socket), which stay on this machine;
nodes hold no cloud credentials. A node that loses this process simply idles at min size
or until the next command restarts the reconcile process, which catches up at once.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from targets._detached import lock_held, signal_holder, spawn
from targets._files import check_log_chunk, write_log_chunk
from targets.agent.protocol import (
    CANCELED,
    COMPLETED,
    FAILED,
    FINALIZING,
    PREPARING,
    QUEUED,
    RUNNING,
    DistributedPart,
    manifest_rows,
)
from targets.agent.rundir import COLLECTED, MAX_CHUNK, SYSTEM_LOGS
from targets.clusters.keys import SECRET_NAME
from targets.clusters.model import ClusterSpec
from targets.clusters.provider import Node, NodeProvider, NodeState, known_hosts_text
from targets.clusters.provisioning import make_provider
from targets.clusters.scheduler import NodeView, QueuedRun, decide
from targets.clusters.state import ClusterRun, ClusterState, cluster_dir
from targets.compute.base import (
    LogChunk,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
    TargetContext,
)
from targets.errors import TargetsError

if TYPE_CHECKING:
    from targets.workspace import TargetRecord

__all__ = ["Reconciler", "ensure_running", "main", "run_folder"]

_ACTIVE = (PREPARING, RUNNING, FINALIZING)
_RESULT_ROLES = ("launcher", "worker")

# How often the nodes of a running run are asked for news: soon after it started or last
# had news, then less and less often (x1.5 per quiet pass) down to every _FOLLOW_SLOWEST s.
# A short run is thus seen to end within a few tens of ms; a long quiet one costs one
# status and one log read per node every _FOLLOW_SLOWEST s.
_FOLLOW_FASTEST = 0.02
_FOLLOW_SLOWEST = 0.3
# When one run on one node is all there is to follow (nothing queued, no command waking
# us), the first part of each interval (at most _BLOCK_LONGEST s) is spent waiting on the
# node's agent for news (its `wait`, which answers the moment the run's status or logs
# change) rather than asleep: its end is noticed within milliseconds. A command that
# wakes us meanwhile is seen at the end of that wait.
_BLOCK_LONGEST = 0.1
# How often the provider is asked for its nodes while runs are open (lost or preempted
# nodes are noticed this way), and while the cluster idles with nodes.
_LIST_BUSY = 1.0
_LIST_IDLE = 5.0


def unreachable_seconds() -> float:
    """A node of a running run that does not answer for this long is treated as lost
    (``TARGETS_NODE_UNREACHABLE_SECONDS``, default 60)."""
    try:
        return float(os.environ.get("TARGETS_NODE_UNREACHABLE_SECONDS", "60"))
    except ValueError:
        return 60.0


def run_folder(cdir: Path, run_id: str) -> Path:
    """Where the reconcile process keeps what it collected of one run. The cluster's folder
    is laid out like an agent's root (``runs/<id>/{driver.log, prepare.log, wd/...}``), so
    the agent's own log reader and output sync serve it."""
    return cdir / "runs" / run_id


def node_logs(folder: Path, index: int) -> Path:
    """Node ``index``'s own logs in a run's folder (``logs/nodes/<index>/`` of the run)."""
    return folder / "wd" / "logs" / "nodes" / str(index)


def lock_path(cdir: Path) -> Path:
    return cdir / "reconciler.lock"


def is_running(cdir: Path) -> bool:
    """Whether a reconcile process holds the cluster's lock."""
    return lock_held(lock_path(cdir))


def ensure_running(workspace_root: Path, name: str, *, wake: bool = False) -> bool:
    """Start the cluster's reconcile process unless one runs; with ``wake``, make a running
    one look at the cluster now rather than at its next pass (a new run, a cancel).
    Returns True when it started one."""
    cdir = cluster_dir(workspace_root / ".targets", name)
    cdir.mkdir(parents=True, exist_ok=True)
    if is_running(cdir):
        if wake:
            signal_holder(
                lock_path(cdir),
                cdir / "reconciler.pid",
                signal.SIGUSR1,
                b"targets.clusters.reconciler",
            )
        return False
    spawn(
        [sys.executable, "-m", "targets.clusters.reconciler", str(workspace_root), name],
        cdir / "reconciler.log",
        cwd=workspace_root,
    )
    return True


def _master_port(run_id: str) -> int:
    """A port for the rendezvous on node 0, spread by run id (29500-29999, torch's range)."""
    return 29500 + int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) % 500


class Reconciler:
    def __init__(self, workspace_root: Path, name: str) -> None:
        from targets.workspace import Workspace

        self.workspace = Workspace(workspace_root)
        self.name = name
        self.cdir = cluster_dir(self.workspace.dir, name)
        self.state = ClusterState(self.cdir)
        self._targets: dict[str, Any] = {}
        self._provider: NodeProvider | None = None
        self._provider_key: str | None = None
        self._last_list = 0.0
        self._known_hosts_text = ""
        self._unreachable: dict[str, float] = {}
        self._follow_delay: dict[str, float] = {}
        self._seen: dict[str, str] = {}  # run -> the status its one node reported last
        self._blocked = 0.0  # seconds this pass spent waiting on a node
        self._wake_fd: int | None = None  # the read end of run_forever's wake pipe
        self._record: TargetRecord | None = None
        self._record_stamp: tuple[int, ...] | None = None
        self.log_lines: list[str] = []

    # -- plumbing ----------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    def event(self, text: str) -> None:
        self.say(text)
        self.state.event(text)

    def record(self) -> TargetRecord | None:
        """The cluster's entry in the workspace (None once it was deleted). targets.yml
        is read again only when it changed (it is replaced as a whole on every change:
        a new inode), not on every pass."""
        try:
            st = (self.workspace.dir / "targets.yml").stat()
            stamp: tuple[int, ...] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._record_stamp:
            return self._record
        try:
            record: TargetRecord | None = self.workspace.target_record(self.name)
        except TargetsError:
            record = None
        if record is not None and record.kind != "cluster":
            record = None
        self._record, self._record_stamp = record, stamp
        return record

    def spec(self) -> ClusterSpec | None:
        record = self.record()
        return ClusterSpec.model_validate(dict(record.options)) if record else None

    def secret(self, name: str) -> str | None:
        from targets.secrets import get_secret

        return get_secret(self.workspace.secret_ref(self.name, name))

    def provider(self, spec: ClusterSpec) -> NodeProvider:
        key = spec.model_dump_json()
        if self._provider is None or self._provider_key != key:
            if self._provider is not None:
                self._provider.close()
            self._provider = make_provider(self.name, spec, self.cdir, self.secret)
            self._provider_key = key
        return self._provider

    def node_target(self, node: Node) -> Any:
        """A ``vm`` target for one node: the cluster's key from the keyring, the host keys
        the provider reported (checked, never accepted blindly)."""
        from targets.compute.vm import VMOptions, VMTarget

        target = self._targets.get(node.id)
        if target is None:
            private_key = self.secret(SECRET_NAME)
            options = VMOptions(
                address=node.address,
                ssh_port=node.ssh_port,
                username=node.username,
                proxy_jump=node.jump,
                # The jump host is reached as `ssh` would (ssh config, agent); the node
                # itself with the cluster's stored key, which is tried first.
                use_agent=node.jump is not None and bool(os.environ.get("SSH_AUTH_SOCK")),
            )
            context = TargetContext(
                state_dir=self.cdir,
                secret=lambda name: private_key if name == SECRET_NAME else None,
                accept_host_key=False,
            )
            target = VMTarget(f"{self.name}-{node.id}", options, context)
            target.io_timeout = max(10.0, min(120.0, 2 * unreachable_seconds()))
            self._targets[node.id] = target
        return target

    def drop_target(self, node_id: str) -> None:
        target = self._targets.pop(node_id, None)
        if target is not None:
            with contextlib.suppress(Exception):
                target.close()

    def write_known_hosts(self, nodes: list[Node]) -> None:
        text = known_hosts_text(nodes)
        if text != self._known_hosts_text:
            path = self.cdir / "known_hosts"
            tmp = path.with_name(".known_hosts.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
            self._known_hosts_text = text
            # A node replaced on the same port has a new host key: reconnect.
            for node_id in list(self._targets):
                self.drop_target(node_id)

    # -- one pass ----------------------------------------------------------------------

    def tick(self) -> float | None:
        """Bring the cluster one step closer to its queue. Returns how long to sleep
        before the next pass, or None when the cluster is at rest."""
        record = self.record()  # one read of targets.yml per pass
        if record is None:
            self.say("the cluster is no longer in the workspace: stopping")
            return None
        spec = ClusterSpec.model_validate(dict(record.options))
        provider = self.provider(spec)
        now = time.time()
        rows = {r.node.id: r for r in self.state.nodes()}
        open_runs = self.state.runs(open_only=True, request=False)
        creating = any(r.node.state is NodeState.CREATING for r in rows.values())
        queued = any(r.status == QUEUED for r in open_runs)
        # Listed every _LIST_BUSY s while runs go on (not on every pass, which follows
        # runs often), and not just before a queued run is placed: it starts at once on
        # the nodes listed last, and goes back to the queue (once) should one of them be
        # gone by now (see start()). A listing can take long (a cloud API call).
        since = now - self._last_list
        due = _LIST_BUSY if open_runs else _LIST_IDLE
        if queued:
            due *= 2
        fresh = creating or not rows or since > due
        if fresh:
            self.sync_nodes(provider.list_nodes(), rows)
            self._last_list = now
            rows = {r.node.id: r for r in self.state.nodes()}

        self._blocked = 0.0
        following = [r for r in open_runs if r.status in _ACTIVE]
        alone = len(following) == 1 and len(following) == len(open_runs)
        for run in self.state.runs(open_only=True, request=False):
            if run.status in _ACTIVE:
                self.follow(run, rows, may_block=alone and not self._woken())
            elif run.cancel:
                self.state.update_run(
                    run.run_id, status=CANCELED, ended_at=time.time(), message="canceled"
                )
                self.event(f"run {run.run_id} canceled while queued")

        rows = {r.node.id: r for r in self.state.nodes()}
        queue = [
            QueuedRun(r.run_id, r.nodes_needed)
            for r in self.state.runs(open_only=True, request=False)
            if r.status == QUEUED
        ]
        views = [NodeView(r.node.id, r.node.state, r.busy_run, r.idle_since) for r in rows.values()]
        decision = decide(spec, views, queue, time.time())
        if decision.remove:
            self.remove_nodes(provider, decision.remove, rows)
        if decision.add:
            now_alive = sum(
                1
                for v in views
                if v.id not in decision.remove
                and v.state in (NodeState.CREATING, NodeState.RUNNING)
            )
            self.event(
                f"scaling up: adding {decision.add} node(s) ({now_alive} now, max {spec.max_nodes})"
            )
            starting = {run_id for run_id, _ in decision.start}
            waiting = [q for q in queue if q.run_id not in starting]
            if waiting:  # the user following that run sees the cluster grow
                self._append(
                    run_folder(self.cdir, waiting[0].run_id) / "driver.log",
                    f"[cluster {self.name}] waiting for {waiting[0].nodes_needed} node(s): "
                    f"adding {decision.add} ({now_alive} now, max {spec.max_nodes})\n",
                )
            try:
                added = provider.add_nodes(decision.add)
            except TargetsError as exc:
                self.event(f"could not add nodes: {exc}")
                return 5.0
            for node in added:
                self.state.upsert_node(node)
            self._last_list = 0.0
        for run_id, node_ids in decision.start:
            self.start(run_id, [rows[i].node for i in node_ids], retry=not fresh)

        open_runs = self.state.runs(open_only=True, request=False)
        if not open_runs and self.run_based_done(record.facts):
            self.delete_run_based(provider)
            return None
        for run_id in set(self._follow_delay) - {r.run_id for r in open_runs}:
            del self._follow_delay[run_id]
            self._seen.pop(run_id, None)
        rows = {r.node.id: r for r in self.state.nodes()}
        busy = any(r.node.state is NodeState.CREATING for r in rows.values())
        if open_runs or busy or decision.add:
            active = [
                self._follow_delay.get(r.run_id, _FOLLOW_FASTEST)
                for r in open_runs
                if r.status in _ACTIVE
            ]
            return max(0.0, min([_FOLLOW_SLOWEST, *active]) - self._blocked)
        alive = [r for r in rows.values() if r.node.state is NodeState.RUNNING]
        if decision.next_check is not None or len(alive) > spec.min_nodes:
            wait = (decision.next_check or time.time() + 1) - time.time()
            return max(0.2, min(wait, 5.0))  # a new run wakes us before that
        return None

    def run_based_done(self, facts: Mapping[str, Any]) -> bool:
        """A run-based cluster whose run has ended (and that is not to be kept)."""
        run_id = facts.get("run_based_for")
        if not run_id or facts.get("retain"):
            return False
        run = self.state.run(str(run_id), request=False)
        return run is not None and run.terminal

    def delete_run_based(self, provider: NodeProvider) -> None:
        from targets.secrets import delete_secret

        self.event("the run has ended: deleting this run-based cluster")
        for node_id in list(self._targets):
            self.drop_target(node_id)
        provider.delete_cluster()
        for row in self.state.nodes():
            self.state.remove_node(row.node.id)
        with contextlib.suppress(TargetsError):
            self.workspace.remove_target(self.name)
        with contextlib.suppress(TargetsError):
            delete_secret(self.workspace.secret_ref(self.name, SECRET_NAME))

    def sync_nodes(self, listed: list[Node], rows: dict[str, Any]) -> None:
        seen = set()
        for node in listed:
            seen.add(node.id)
            old = rows.get(node.id)
            if old is None:
                self.event(f"node {node.id} {node.state}")
            elif old.node.state is not node.state:
                note = f": {node.message}" if node.message else ""
                self.event(f"node {node.id} {old.node.state} -> {node.state}{note}")
            self.state.upsert_node(node)
        for node_id, row in rows.items():
            if node_id not in seen:
                lost = row.node.with_state(NodeState.FAILED, "the node disappeared")
                self.state.upsert_node(lost)
                self.event(f"node {node_id} disappeared")
        running = [n for n in listed if n.state is NodeState.RUNNING]
        self.write_known_hosts(running)
        for node in listed:
            row = rows.get(node.id)
            if row and row.busy_run and node.state in (NodeState.FAILED, NodeState.PREEMPTED):
                self.lose(row.busy_run, node)
        for node_id, row in rows.items():
            if node_id not in seen and row.busy_run:
                self.lose(row.busy_run, row.node.with_state(NodeState.FAILED, "disappeared"))

    def remove_nodes(self, provider: NodeProvider, ids: list[str], rows: dict[str, Any]) -> None:
        idle = [i for i in ids if rows[i].node.state is NodeState.RUNNING]
        if idle:
            self.event(f"scaling down: removing idle node(s) {', '.join(idle)}")
        broken = [i for i in ids if i not in idle]
        if broken:
            self.event(f"removing broken node(s) {', '.join(broken)}")
        for node_id in ids:
            self.drop_target(node_id)
        try:
            provider.remove_nodes(ids)
        except TargetsError as exc:
            self.event(f"could not remove nodes {ids}: {exc}")
            return
        for node_id in ids:
            self.state.remove_node(node_id)

    # -- runs --------------------------------------------------------------------------

    def request_of(self, run: ClusterRun, distributed: DistributedPart | None) -> SubmitRequest:
        from targets.compute.local import agent_root
        from targets.environments import EnvironmentSpec
        from targets.runconfig.model import RunConfiguration
        from targets.snapshot import Snapshot

        raw = run.request
        config = RunConfiguration.model_validate(raw["config"])
        environment = EnvironmentSpec.from_json(raw["environment"])
        root = str(raw.get("objects_root") or agent_root())
        manifest = raw["snapshot"]
        from targets.agent.store import key_path

        sources = {
            row.path: Path(key_path(root, row.key))
            for row in manifest_rows(manifest["files"])
            if row.link is None
        }
        snapshot = Snapshot.from_manifest(Path(root), manifest)
        snapshot = Snapshot(
            root=snapshot.root,
            files=snapshot.files,
            total_size=snapshot.total_size,
            git=snapshot.git,
            digest=snapshot.digest,
            sources=sources,
        )
        return SubmitRequest(
            run_id=run.run_id,
            config=config,
            snapshot=snapshot,
            environment=environment,
            experiment=raw.get("experiment"),
            distributed=distributed,
        )

    def start(self, run_id: str, nodes: list[Node], *, retry: bool = False) -> None:
        """Start a queued run on ``nodes``. With ``retry`` (the nodes come from an
        earlier listing), a run that cannot be started goes back to the queue once and
        the nodes are listed again before it is placed anew."""
        run = self.state.run(run_id)
        if run is None:
            return
        self.state.set_busy([n.id for n in nodes], run_id)
        folder = run_folder(self.cdir, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        plans: list[DistributedPart | None] = [None] * len(nodes)
        roles = ["worker"] * len(nodes)
        try:
            base = self.request_of(run, None)
            from targets.distributed import distribution_of, plan

            dist = distribution_of(base.config)
            if dist is not None:
                planned = plan(
                    base.config,
                    dist,
                    nodes,
                    master_port=_master_port(run_id),
                    ssh_private_key=self.secret(SECRET_NAME),
                )
                plans = list(planned)
                roles = [str(p.get("role") or "worker") for p in planned]
        except Exception as exc:  # a bad run must not stop the cluster
            self.finish(run_id, FAILED, f"could not plan the run: {exc}", nodes=nodes)
            return
        where = ", ".join(n.id for n in nodes)
        self.event(f"run {run_id} starts on {where}")
        self.state.update_run(
            run_id,
            status=PREPARING,
            assigned=[n.id for n in nodes],
            roles=roles,
            attempts=run.attempts + 1,
            message=None,
        )
        self._append(folder / "driver.log", f"[cluster {self.name}] running on {where}\n")

        def submit(index: int) -> None:
            node = nodes[index]
            request = self.request_of(run, plans[index])
            self.node_target(node).submit(request)

        errors: list[str] = []
        if len(nodes) == 1:  # no thread for one node
            try:
                submit(0)
            except Exception as exc:
                errors.append(f"node {nodes[0].id}: {exc}")
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
                futures = [pool.submit(submit, i) for i in range(len(nodes))]
                for node, future in zip(nodes, futures, strict=True):
                    try:
                        future.result()
                    except Exception as exc:
                        errors.append(f"node {node.id}: {exc}")
        if errors:
            self.cancel_parts(run, nodes)  # the parts that did start
            if retry:
                self.state.set_busy([n.id for n in nodes], None)
                self.state.update_run(run_id, status=QUEUED, assigned=[], roles=[])
                self._last_list = 0.0  # list the nodes before placing it again
                self.event(
                    f"run {run_id} could not start ({'; '.join(errors)}): "
                    "placing it again once the nodes are listed"
                )
                return
            self.finish(run_id, FAILED, "could not start the run: " + "; ".join(errors))

    def _woken(self) -> bool:
        """Whether a command has woken us since the pass began (a new run, a cancel)."""
        fd = self._wake_fd
        return fd is not None and bool(select.select([fd], [], [], 0)[0])

    def follow(self, run: ClusterRun, rows: dict[str, Any], *, may_block: bool = False) -> None:
        """Ask every node of a running run for news; end the run when its nodes say so.
        With ``may_block`` (see _BLOCK_LONGEST), a one-node run is waited on a while."""
        nodes = [rows[i].node for i in run.assigned if i in rows]
        if len(nodes) != len(run.assigned):
            return  # a lost node: sync_nodes handles it
        block = 0.0
        if may_block and len(nodes) == 1 and run.run_id in self._seen:
            block = min(self._follow_delay.get(run.run_id, _FOLLOW_FASTEST), _BLOCK_LONGEST)
        folder = run_folder(self.cdir, run.run_id)
        states: list[RunState] = []
        news = False
        for index, node in enumerate(nodes):
            target = self.node_target(node)
            handle = RunHandle("vm", target.name, run.run_id)
            try:
                t0 = time.monotonic()
                known = self._seen.get(run.run_id)
                state, new_bytes = self.look(
                    folder, index, target, handle, len(nodes), known=known, timeout=block
                )
                self._blocked += time.monotonic() - t0 if block else 0.0
                if len(nodes) == 1:
                    self._seen[run.run_id] = state.status.value
                states.append(state)
                news = news or new_bytes
                self._unreachable.pop(node.id, None)
            except TargetsError as exc:
                self.drop_target(node.id)
                since = self._unreachable.setdefault(node.id, time.time())
                limit = unreachable_seconds()
                if time.time() - since > limit:
                    # The provider still lists it, but nobody answers there: lost.
                    self._unreachable.pop(node.id, None)
                    broken = node.with_state(
                        NodeState.FAILED, f"unreachable for {limit:g} s: {exc}"
                    )
                    self.lose(run.run_id, broken)
                    if self._provider is not None:
                        self.remove_nodes(self._provider, [node.id], rows)
                    return
                states.append(RunState(RunStatus.RUNNING, message=f"unreachable: {exc}"))
        if run.cancel:
            self.cancel_parts(run, nodes)
            self.collect(run, nodes)
            self.finish(run.run_id, CANCELED, "canceled")
            self.discard_parts(run, nodes)
            return
        roles = run.roles or ["worker"] * len(nodes)
        result = [i for i, r in enumerate(roles) if r in _RESULT_ROLES] or list(range(len(nodes)))
        failed = [i for i, s in enumerate(states) if s.status is RunStatus.FAILED]
        status, message, exit_code = None, None, None
        if failed:
            i = failed[0]
            status = FAILED
            exit_code = states[i].exit_code
            detail = states[i].message or f"exit code {exit_code}"
            message = f"node {i} ({nodes[i].id}) failed: {detail}"
        elif all(states[i].status is RunStatus.COMPLETED for i in result):
            status = COMPLETED
            exit_code = 0
        elif any(states[i].status is RunStatus.CANCELED for i in result):
            status, message = CANCELED, "canceled on a node"
        started = [s.started_at for s in states if s.started_at]
        if status is not None:
            if run.started_at is None:  # it ran between two passes
                self.state.update_run(
                    run.run_id, started_at=min(started) if started else run.submitted_at
                )
            # A part seen ended above had its logs read to their end after that.
            ended = {i for i, s in enumerate(states) if s.status.terminal}
            self.cancel_parts(run, [n for i, n in enumerate(nodes) if i not in ended])
            self.collect(run, nodes, complete=ended)
            self.finish(run.run_id, status, message, exit_code=exit_code)
            self.discard_parts(run, nodes)
            return
        running = any(states[i].status is RunStatus.RUNNING for i in result)
        changes: dict[str, Any] = {"phases": dict(states[0].phases)}
        if running and run.status != RUNNING:
            changes["status"] = RUNNING
            changes["started_at"] = min(started) if started else time.time()
        if changes["phases"] != run.phases or "status" in changes:
            news = True
            self.state.update_run(run.run_id, **changes)
        delay = self._follow_delay.get(run.run_id, _FOLLOW_FASTEST)
        self._follow_delay[run.run_id] = (
            _FOLLOW_FASTEST if news else min(delay * 1.5, _FOLLOW_SLOWEST)
        )

    def cancel_parts(self, run: ClusterRun, nodes: list[Node]) -> None:
        """Stop what still runs on the nodes (standby and parameter-server parts end this
        way once the launcher or the workers are done)."""
        for node in nodes:
            target = self.node_target(node)
            with contextlib.suppress(TargetsError):
                target.cancel(RunHandle("vm", target.name, run.run_id))
        deadline = time.time() + 15
        for node in nodes:
            target = self.node_target(node)
            handle = RunHandle("vm", target.name, run.run_id)
            while time.time() < deadline:
                try:
                    if target.status(handle).status.terminal:
                        break
                except TargetsError:
                    break
                time.sleep(0.2)

    def collect(
        self, run: ClusterRun, nodes: list[Node], *, complete: Collection[int] = ()
    ) -> None:
        """Bring the last logs of every node, and the outputs of node 0, before the nodes
        are freed (an idle node may be removed right after). ``complete``: the nodes whose
        logs were read to their end after their part ended (not read again)."""
        folder = run_folder(self.cdir, run.run_id)
        for index, node in enumerate(nodes):
            target = self.node_target(node)
            handle = RunHandle("vm", target.name, run.run_id)
            try:
                read = index not in complete
                self.pull_logs(folder, index, target, handle, len(nodes), final=True, read=read)
                with tempfile.TemporaryDirectory(dir=self.cdir) as tmp:
                    target.fetch_outputs(handle, Path(tmp))
                    _merge_fetched(Path(tmp), folder, index)
            except TargetsError as exc:
                self._append(folder / "driver.log", f"[cluster] node {index}: {exc}\n")

    def discard_parts(self, run: ClusterRun, nodes: list[Node]) -> None:
        """Delete the run's folder on its nodes (once collected and recorded)."""
        for node in nodes:
            target = self.node_target(node)
            with contextlib.suppress(TargetsError):
                target.discard(RunHandle("vm", target.name, run.run_id))

    def finish(
        self,
        run_id: str,
        status: str,
        message: str | None,
        *,
        exit_code: int | None = None,
        nodes: list[Node] | None = None,
    ) -> None:
        run = self.state.run(run_id)
        if run is None:
            return
        ids = list(run.assigned) or [n.id for n in nodes or []]
        self.state.set_busy(ids, None)
        if message:
            self._append(run_folder(self.cdir, run_id) / "driver.log", f"[cluster] {message}\n")
        self.state.update_run(
            run_id, status=status, message=message, exit_code=exit_code, ended_at=time.time()
        )
        self.event(f"run {run_id} {status.lower()}" + (f": {message}" if message else ""))

    def lose(self, run_id: str, node: Node) -> None:
        """A node of a running run is gone: fail the run, or queue it again when it lost
        a low-priority node to preemption and the cluster asks for that."""
        run = self.state.run(run_id)
        spec = self.spec()
        if run is None or run.terminal:
            return
        others = [r.node for r in self.state.nodes() if r.node.id in run.assigned]
        alive = [n for n in others if n.id != node.id and n.state is NodeState.RUNNING]
        self.cancel_parts(run, alive)
        why = node.message or str(node.state)
        if node.state is NodeState.PREEMPTED and spec is not None and spec.requeue_on_preemption:
            self.state.set_busy(list(run.assigned), None)
            self.state.update_run(run_id, status=QUEUED, assigned=[], roles=[])
            # The next attempt's node logs start from zero: keep this attempt's aside.
            folder = run_folder(self.cdir, run_id)
            nodes_logs = node_logs(folder, 0).parent
            if nodes_logs.is_dir():
                nodes_logs.rename(nodes_logs.with_name(f"attempt-{run.attempts}"))
            (folder / "merged.json").unlink(missing_ok=True)
            note = f"node {node.id} was preempted: the run goes back to the queue"
            self._append(run_folder(self.cdir, run_id) / "driver.log", f"[cluster] {note}\n")
            self.event(f"run {run_id}: {note}")
            return
        self.finish(run_id, FAILED, f"node {node.id} was lost ({why})")

    # -- logs --------------------------------------------------------------------------

    def pull_logs(
        self,
        folder: Path,
        index: int,
        target: Any,
        handle: RunHandle,
        node_count: int,
        *,
        final: bool = False,
        read: bool = True,
    ) -> bool:
        """Bring node ``index``'s new log bytes (unless not ``read``) and merge its system
        logs into the run's. Returns whether there were new bytes."""
        base = node_logs(folder, index)
        got = False
        while read:
            chunks = target.read_logs(handle, _log_offsets(base))
            if not chunks:
                break
            got = True
            if _write_node_chunks(base, index, chunks):
                break
        self.merge(folder, index, node_count, final=final)
        return got

    def look(
        self,
        folder: Path,
        index: int,
        target: Any,
        handle: RunHandle,
        node_count: int,
        *,
        known: str | None = None,
        timeout: float = 0.0,
    ) -> tuple[RunState, bool]:
        """One look at node ``index``'s part of a run: its state, and whether it had new
        log bytes (brought into the run's folder). One round trip when the node's kind
        answers :meth:`~targets.compute.base.ComputeTarget.wait_news` (status and logs
        together; with ``timeout``, it answers once there is news other than status
        ``known``, or after ``timeout`` s), else a status and a log read."""
        base = node_logs(folder, index)
        news = target.wait_news(handle, _log_offsets(base), known, timeout)
        if news is None:
            state = target.status(handle)  # status first: an end comes with complete logs
            return state, self.pull_logs(folder, index, target, handle, node_count)
        state, chunks = news
        if chunks and not _write_node_chunks(base, index, chunks):
            self.pull_logs(folder, index, target, handle, node_count)  # the rest
        else:
            self.merge(folder, index, node_count, final=False)
        return state, bool(chunks)

    def merge(self, folder: Path, index: int, node_count: int, *, final: bool) -> None:
        """Append the complete new lines of node ``index``'s prepare.log and driver.log to
        the run's combined logs, each line prefixed with its node (on multi-node runs)."""
        marks_path = folder / "merged.json"
        marks: dict[str, int] = json.loads(marks_path.read_text()) if marks_path.exists() else {}
        changed = False
        prefix = f"[node {index}] ".encode() if node_count > 1 else b""
        for name in SYSTEM_LOGS:
            source = node_logs(folder, index) / name
            if not source.exists():
                continue
            key = f"{index}/{name}"
            at = marks.get(key, 0)
            with open(source, "rb") as fh:
                fh.seek(at)
                data = fh.read()
            if not data:
                continue
            end = data.rfind(b"\n") + 1
            if final and end < len(data):
                data, end = data + b"\n", len(data) + 1
                take = data
                consumed = end - 1
            else:
                take = data[:end]
                consumed = end
            if not take:
                continue
            lines = take.splitlines(keepends=True)
            with open(folder / name, "ab") as out:
                out.write(b"".join(prefix + line for line in lines))
            marks[key] = at + consumed
            changed = True
        if changed:
            tmp = marks_path.with_name(".merged.json.tmp")
            tmp.write_text(json.dumps(marks))
            os.replace(tmp, marks_path)

    @staticmethod
    def _append(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)

    # -- the loop ----------------------------------------------------------------------

    def run_forever(self) -> int:
        self.cdir.mkdir(parents=True, exist_ok=True)
        with open(lock_path(self.cdir), "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0  # another reconcile process owns the cluster
            self.say(f"reconciling cluster {self.name} (pid {os.getpid()})")
            wake_r, wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            os.set_blocking(wake_w, False)
            self._wake_fd = wake_r
            signal.signal(signal.SIGUSR1, lambda *_: None)
            signal.set_wakeup_fd(wake_w)
            (self.cdir / "reconciler.pid").write_text(str(os.getpid()))
            failures = 0
            try:
                while True:
                    try:
                        wait = self.tick()
                        failures = 0
                    except Exception as exc:  # keep going: the next pass may succeed
                        failures += 1
                        self.say(f"pass failed: {exc}\n{traceback.format_exc()}")
                        if failures > 50:
                            return 1
                        wait = min(0.5 * failures, 10.0)
                    if wait is None:
                        self.say("the cluster is at rest: stopping")
                        return 0
                    # Sleep until the next pass, or until a command wakes us (SIGUSR1).
                    if select.select([wake_r], [], [], wait)[0]:
                        with contextlib.suppress(BlockingIOError):
                            while os.read(wake_r, 4096):
                                pass
            finally:
                with contextlib.suppress(OSError):
                    (self.cdir / "reconciler.pid").unlink()
                for node_id in list(self._targets):
                    self.drop_target(node_id)
                if self._provider is not None:
                    self._provider.close()
                self.state.close()


def _log_offsets(base: Path) -> dict[str, int]:
    """What was collected of a node's logs (its folder ``base``): name -> size."""
    offsets: dict[str, int] = {}
    if base.is_dir():
        for path in base.rglob("*"):
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(base).as_posix()
                key = rel if rel in SYSTEM_LOGS else "logs/" + rel
                offsets[key] = path.stat().st_size
    return offsets


def _write_node_chunks(base: Path, index: int, chunks: list[LogChunk]) -> bool:
    """Write node ``index``'s chunks into its folder ``base``, checked first. Returns
    whether they were all there was: below the agent's cap per answer (same code as
    ours: the agent is shipped by content hash), so no second read is needed."""
    for chunk in chunks:
        # A node's logs/ and system logs share one folder: the names are checked like a
        # single run's (nothing outside logs/ or the system logs).
        problem = check_log_chunk(chunk.name, chunk.offset, chunk.data, SYSTEM_LOGS)
        if problem:
            raise TargetsError(f"node {index} sent a bad reply: {problem}")
        name = chunk.name
        rel = name[len("logs/") :] if name.startswith("logs/") else name
        write_log_chunk(base, rel.split("/"), name, chunk.offset, chunk.data)
    return sum(len(chunk.data) for chunk in chunks) < MAX_CHUNK


def _merge_fetched(fetched: Path, folder: Path, index: int) -> None:
    """Put one node's fetched files in the run's folder: node 0's outputs (and tracking
    store) as the run's; every node's logs under ``logs/nodes/<index>/``."""
    for top, inside in COLLECTED.items():
        src = fetched / top
        if not src.is_dir():
            continue
        if top == "logs":
            _move_tree(src, node_logs(folder, index))
        elif index == 0:
            _move_tree(src, folder / "wd" / inside)


def _move_tree(src: Path, dest: Path) -> None:
    for path in src.rglob("*"):
        if path.is_file():
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() and target.stat().st_size >= path.stat().st_size:
                continue  # streamed already (logs grow only)
            shutil.move(str(path), target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m targets.clusters.reconciler")
    parser.add_argument("workspace")
    parser.add_argument("cluster")
    args = parser.parse_args(argv)
    import faulthandler

    faulthandler.register(signal.SIGUSR2)  # `kill -USR2 PID` writes every thread's stack to the log
    return Reconciler(Path(args.workspace), args.cluster).run_forever()


if __name__ == "__main__":
    sys.exit(main())
