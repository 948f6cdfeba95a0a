"""6. A managed cluster of docker-provider nodes on this machine's Docker engine, compared
with the OpenSSH client talking to the same nodes in the same run.

The cluster ``bench-pool`` (0 to 2 nodes, idle nodes kept 600 s so they stay warm for the
whole step) is created in a fresh workspace in the sandbox, from the test node image
``targets-test-node:bookworm`` (``scripts/docker-test-setup.sh``: sshd, OpenMPI, CPU
PyTorch). Nodes are containers with host networking and sshd on 127.0.0.1: nothing leaves
the machine. The references log in to the very nodes the runs used, with the cluster's
own key (read from the keyring, a file backend in the sandbox's HOME) and the host keys
the cluster verified (its ``known_hosts``).

When the engine or the node image is missing, the step sets them up the way ``make test``
does (``scripts/docker-test-setup.sh``: it starts the engine and builds the image, which
takes a few minutes once and is cached by the engine), and is skipped only when that
cannot be done here (the script says why).

Issue 18's goal: a warm one-node ``targets run`` within 2x a bare ``ssh`` to the node
(``GOAL``), reported as met or missed as measured; nothing asserts on time.

Whatever happens, the cluster is deleted at the end (``targets delete --force``) and every
container still labelled with it (and with this workspace) is removed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import (
    BenchError,
    Case,
    Sample,
    age,
    openssh_argv,
    run_checked,
    run_round_robin,
)
from _scenarios import ONE_LINE, Context, Row, Section, _latest_record

__all__ = ["CLUSTER", "GOAL", "IMAGE", "PEERS", "cluster_targets"]

CLUSTER = "bench-pool"
IMAGE = "targets-test-node:bookworm"
REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "scripts" / "docker-test-setup.sh"  # what `make test` runs for the image
GOAL = 2.0  # issue 18: warm one-node `targets run` / bare `ssh` to the node, at most this
TWO_NODE_REPS = 3
NODE_DIR = "/tmp/targets-bench"  # the references' copy of the scripts, inside the nodes

# Measured by others on this kind of machine (/work/shared/test-infra.md), not by us.
PEERS = {"ray_warm_trivial_s": 9.2, "ray_vs_ssh": 19}

USER_PYTHON = (
    "environment:\n  python:\n    user_managed_dependencies: true\n    interpreter_path: python3\n"
)
DDP = """\
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
t = torch.ones(1)
dist.all_reduce(t)
print(f"rank {dist.get_rank()} of {dist.get_world_size()}: sum {t.item():g}", flush=True)
dist.destroy_process_group()
"""
MPI_HELLO = """\
import os

rank, size = os.environ["OMPI_COMM_WORLD_RANK"], os.environ["OMPI_COMM_WORLD_SIZE"]
print("hello from rank", rank, "of", size, flush=True)
"""
RUNCONFIGS = {
    "one.yml": f"script: one_line.py\ntarget: {CLUSTER}\n" + USER_PYTHON,
    "ddp.yml": (
        f"script: ddp.py\ntarget: {CLUSTER}\ncommunicator: Gloo\nnode_count: 2\n"
        "pytorch:\n  communication_backend: gloo\n  process_count: 2\n" + USER_PYTHON
    ),
    "mpi.yml": (
        f"script: mpi_hello.py\ntarget: {CLUSTER}\ncommunicator: OpenMpi\nnode_count: 2\n"
        "mpi:\n  process_count_per_node: 1\n" + USER_PYTHON
    ),
}


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def _engine_and_image() -> str | None:
    """Why the Docker engine or the node image is not there (None: both are)."""
    try:
        info = _docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer `docker info` within 30 s"
    if info.returncode != 0:
        return "no Docker engine answers `docker info`"
    if _docker("image", "inspect", IMAGE, timeout=30).returncode != 0:
        return f"the node image {IMAGE} is missing"
    return None


def _set_up_docker(why: str) -> str | None:
    """Start the engine and build the node image as the test suite does (``SETUP``, the
    script ``make test`` runs; it skips what is there already). Returns why that failed
    (None: both are there now)."""
    print(f"[bench]   {why}: running {SETUP.relative_to(REPO)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            ["bash", str(SETUP)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=3600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{why}, and {SETUP.name} did not finish within an hour"
    said = " ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-2:])
    print(
        f"[bench]   {SETUP.name} exited {proc.returncode} after {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    still = _engine_and_image()
    if still is None:
        return None
    return f"{still} after `bash {SETUP.relative_to(REPO)}`" + (f" ({said})" if said else "")


def _missing() -> str | None:
    """Why this machine cannot run the step (None: it can). A missing engine or node
    image is set up first, as for the tests."""
    if shutil.which("docker") is None:
        return "no docker CLI (as root: `bash scripts/test-services.sh`)"
    why = _engine_and_image()
    if why is not None:
        why = _set_up_docker(why)
        if why is not None:
            return why
    if shutil.which("ssh") is None:
        return "no ssh client (apt-get install openssh-client)"
    if importlib.util.find_spec("keyrings.alt") is None:
        return "keyrings.alt is not installed (make install)"
    return None


@dataclass(slots=True)
class _Node:
    hostname: str
    port: int


@dataclass(slots=True)
class _Cluster:
    ctx: Context
    ws: Path
    env: dict[str, str]
    key: Path | None = None
    nodes: list[_Node] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.ws / ".targets" / "clusters" / CLUSTER

    @property
    def owner(self) -> str:
        """The provider's ``targets.workspace`` label of this workspace's nodes."""
        state_dir = (self.folder / "provider").resolve()
        return hashlib.sha256(str(state_dir).encode()).hexdigest()[:6]

    def targets(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_checked([self.ctx.targets, *args], cwd=self.ws, env=self.env)

    def status(self) -> dict[str, Any]:
        shown = json.loads(self.targets("show", CLUSTER, "-o", "json").stdout)
        return dict(shown["status"])

    def refresh_nodes(self) -> list[_Node]:
        nodes = []
        for n in self.status()["nodes"]:
            if n["state"] == "running" and n.get("address"):
                nodes.append(_Node(n["hostname"], int(n["address"].rsplit(":", 1)[1])))
        self.nodes = sorted(nodes, key=lambda n: n.hostname)
        return self.nodes

    def ssh(self, node: _Node, command: str) -> list[str]:
        """``ssh`` to a node with the cluster's key and the host keys the cluster verified."""
        assert self.key is not None
        known_hosts = self.folder / "known_hosts"
        return [*openssh_argv(self.key, node.port, known_hosts), "root@127.0.0.1", command]


def cluster_targets(ctx: Context) -> Section:
    """6. Managed cluster (docker provider): cold and warm runs on 1 and 2 nodes vs ssh."""
    section = Section("cluster", "6. Managed cluster (docker-provider nodes on this machine)", "")
    reason = _missing()
    if reason:
        section.facts["skipped"] = f"skipped: {reason}"
        return section
    ws = ctx.sandbox.folder("cluster-ws")
    files = {"one_line.py": ONE_LINE, "ddp.py": DDP, "mpi_hello.py": MPI_HELLO, **RUNCONFIGS}
    for name, content in files.items():
        (ws / name).write_text(content, encoding="utf-8")
    age([ws / name for name in files])
    cl = _Cluster(ctx, ws, ctx.sandbox.env(ws))
    created = False
    load_before = os.getloadavg()[0]
    try:
        t0 = time.perf_counter()
        cl.targets(
            "create", CLUSTER, "--type", "cluster", "--provider", "docker",
            "--image", IMAGE, "--max-nodes", "2", "--idle-seconds-before-scaledown", "600",
        )  # fmt: skip
        created = True
        section.facts["create_s"] = time.perf_counter() - t0
        cold = _cold(cl)
        cl.key = _private_key(cl)
        warm = _warm_one_node(cl)
        two = _two_nodes(cl)
    finally:
        section.facts["teardown"] = _teardown(cl) if created else "nothing was created"
    section.how = (
        f"A docker-provider cluster of this machine's Docker engine, `targets create "
        f"{CLUSTER} --type cluster --provider docker --image {IMAGE} --max-nodes 2 "
        "--idle-seconds-before-scaledown 600`, in a fresh workspace (keyring: a file backend "
        "in the temporary HOME). Nodes are containers with host networking and sshd on "
        "127.0.0.1 (one port each); nothing leaves the machine. Runconfigs target the "
        "cluster with a user-managed `python3` (the image's). The references are the "
        "OpenSSH client logging in to the same nodes as root with the cluster's own key "
        "(read from the keyring) and the host keys the cluster verified (its `known_hosts`; "
        "`-F /dev/null`, `StrictHostKeyChecking=yes`, no connection sharing). "
        f"Warm one-node rows: {ctx.reps} interleaved repetitions on the one node the cold "
        f"run started; two-node rows: {min(ctx.reps, TWO_NODE_REPS)} (after the first "
        "two-node run added the second node). Every row is one whole process, start to exit."
    )
    ssh1: Sample = warm["ssh"]
    section.rows += [
        Row(ssh1, None, "on the warm node"),
        Row(
            warm["run"],
            ssh1,
            f"one node, warm: no scale-up (goal <= {GOAL:g}x: "
            f"{_verdict(warm['run'].median / ssh1.median)})",
        ),
        Row(cold["run"], ssh1, "one run: scale-up from 0 nodes included"),
        *two["rows"],
    ]
    section.facts.update(cold=cold, warm=warm, two=two, peers=PEERS)
    section.facts["load"] = (load_before, os.getloadavg()[0], os.cpu_count() or 0)
    return section


# --------------------------------------------------------------------------- set-up


def _private_key(cl: _Cluster) -> Path:
    """The cluster's private key, read from the keyring with the project's API in a child
    with the sandbox's environment (HOME and keyring backend), written 0600 for ``ssh -i``."""
    code = (
        "import sys\n"
        "from targets.secrets import get_secret\n"
        "from targets.workspace import Workspace\n"
        f"ref = Workspace(sys.argv[1]).secret_ref({CLUSTER!r}, 'ssh_private_key')\n"
        "value = get_secret(ref)\n"
        "sys.exit('no key in the keyring') if value is None else sys.stdout.write(value)\n"
    )
    out = run_checked([cl.ctx.python, "-c", code, str(cl.ws)], cwd=cl.ws, env=cl.env).stdout
    path = cl.ctx.sandbox.root / "cluster_key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(out if out.endswith(b"\n") else out + b"\n")
    return path


def _teardown(cl: _Cluster) -> str:
    """Delete the cluster, then remove any container left with its labels, and stop a
    reconcile process that outlived the delete. Never raises: it runs in a ``finally``."""
    said = []
    try:
        proc = subprocess.run(
            [cl.ctx.targets, "delete", CLUSTER, "--force"],
            cwd=cl.ws,
            env=cl.env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=180,
            check=False,
        )
        said.append(
            "`targets delete --force` succeeded"
            if proc.returncode == 0
            else f"`targets delete --force` exited {proc.returncode}: "
            + proc.stderr.decode("utf-8", "replace").strip()[-300:]
        )
    except subprocess.TimeoutExpired:
        said.append("`targets delete --force` timed out")
    try:
        filters = ["--filter", f"label=targets.cluster={CLUSTER}"]
        filters += ["--filter", f"label=targets.workspace={cl.owner}"]
        left = _docker("ps", "-aq", *filters).stdout.split()
        if left:
            _docker("rm", "-f", *left)
            said.append(f"{len(left)} container(s) left behind, removed with `docker rm -f`")
        else:
            said.append("no container was left")
    except (OSError, subprocess.TimeoutExpired) as exc:
        said.append(f"could not list the leftover containers: {exc}")
    stopped = _stop_reconciler(cl.folder)
    if stopped:
        said.append(stopped)
    return "; ".join(said)


def _stop_reconciler(folder: Path) -> str | None:
    """SIGTERM the cluster's reconcile process if it still holds its lock after the delete
    (its pid is in its log; checked against /proc before signalling)."""
    try:
        from targets.clusters.reconciler import is_running

        if not folder.exists() or not is_running(folder):
            return None
        log = (folder / "reconciler.log").read_text(encoding="utf-8", errors="replace")
        pids = re.findall(rf"reconciling cluster {re.escape(CLUSTER)} \(pid (\d+)\)", log)
        if not pids:
            return "its reconcile process still runs (pid unknown)"
        pid = int(pids[-1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"targets.clusters.reconciler" not in cmdline:
            return None
        os.kill(pid, signal.SIGTERM)
        return f"its reconcile process (pid {pid}) outlived the delete: stopped"
    except (OSError, ImportError) as exc:
        return f"could not check its reconcile process: {exc}"


# --------------------------------------------------------------------------- phases


def _events(cl: _Cluster) -> list[dict[str, Any]]:
    return list(cl.status().get("events") or [])


PHASES = (
    "client start-up, imports, snapshot, run recorded (ledger `created_at`)",
    "queued until the reconcile process starts it (event `starts on`)",
    "on the node(s): connect, agent, the script, logs and outputs collected (to event `completed`)",
    "end noticed by the CLI, client exit",
)


@dataclass(slots=True)
class _Phases:
    """Each timed ``targets run``'s phases: the CLI's start and exit, the run's
    ``created_at`` in the workspace's ledger, and the cluster's own events for the run
    (``targets show -o json``, read untimed after each run: its last 20 events)."""

    cl: _Cluster
    phases: dict[str, list[float]] = field(default_factory=dict)
    missing: int = 0

    def after(self, wall0: float, wall1: float) -> None:
        r = _latest_record(self.cl.ws)
        starts = done = None
        for event in _events(self.cl):
            text = str(event["text"])
            if text.startswith(f"run {r.id} starts on "):
                starts = float(event["at"])  # the last start (a requeued run starts again)
            elif text.startswith(f"run {r.id} completed"):
                done = float(event["at"])
        if starts is None or done is None:
            self.missing += 1
            return
        for name, value in zip(
            PHASES,
            (r.created_at - wall0, starts - r.created_at, done - starts, wall1 - done),
            strict=True,
        ):
            self.phases.setdefault(name, []).append(value)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(v) for name, v in self.phases.items()}


# --------------------------------------------------------------------------- cold


def _cold(cl: _Cluster) -> dict[str, Any]:
    """The first run: no node yet, no reconcile process; one sample."""
    before = len(cl.refresh_nodes())
    wall0, t0 = time.time(), time.perf_counter()
    cl.targets("run", "one.yml")
    seconds = time.perf_counter() - t0
    wall1 = time.time()
    log = _Phases(cl)
    log.after(wall0, wall1)  # before the events below leave the last 20
    milestones: dict[str, float] = {}
    for event in _events(cl):
        at, text = float(event["at"]), str(event["text"])
        if at < wall0:
            continue
        if text.startswith("scaling up") and "scale-up decided" not in milestones:
            milestones["scale-up decided"] = at - wall0
        elif " starts on " in text and "run started on the new node" not in milestones:
            milestones["run started on the new node"] = at - wall0
        elif text.endswith(" completed") and "run completed" not in milestones:
            milestones["run completed"] = at - wall0
    milestones["CLI exited"] = wall1 - wall0
    return {
        "run": Sample("targets run one.yml, cold (0 nodes)", [seconds]),
        "nodes_before": before,
        "milestones": milestones,
        "phases": {k: v[0] for k, v in log.phases.items()},
    }


# --------------------------------------------------------------------------- warm, 1 node


def _warm_one_node(cl: _Cluster) -> dict[str, Any]:
    nodes = cl.refresh_nodes()
    if len(nodes) != 1:
        raise BenchError(f"expected the one node of the cold run, found {nodes}")
    node = nodes[0]
    log = _Phases(cl)
    bare = Case(
        f"ssh {node.hostname} python3 -c pass",
        cl.ssh(node, "python3 -c pass"),
        cl.ws,
        cl.env,
    )
    run = Case(
        "targets run one.yml (one_line.py on bench-pool)",
        [cl.ctx.targets, "run", "one.yml"],
        cl.ws,
        cl.env,
        after=log.after,
    )
    ssh_s, run_s = run_round_robin([bare, run], cl.ctx.reps)
    return {
        "ssh": ssh_s,
        "run": run_s,
        "node": node.hostname,
        "nodes_after": len(cl.refresh_nodes()),
        "phases": log.medians(),
        "phases_missing": log.missing,
    }


# --------------------------------------------------------------------------- warm, 2 nodes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _two_nodes(cl: _Cluster) -> dict[str, Any]:
    ctx = cl.ctx
    # The first two-node run adds the second node: recorded, and the runs' warm-up.
    t0 = time.perf_counter()
    cl.targets("run", "ddp.yml")
    first = Sample("targets run ddp.yml, first (adds node 1)", [time.perf_counter() - t0])
    nodes = cl.refresh_nodes()
    if len(nodes) != 2:
        raise BenchError(f"expected two nodes after the first two-node run, found {nodes}")
    node0, node1 = nodes
    for node in nodes:
        for name in ("ddp.py", "mpi_hello.py"):
            subprocess.run(
                cl.ssh(node, f"mkdir -p {NODE_DIR} && cat > {NODE_DIR}/{name}"),
                input=(cl.ws / name).read_bytes(),
                capture_output=True,
                check=True,
                timeout=60,
            )

    torchrun = f"cd {NODE_DIR} && python3 -m torch.distributed.run"
    standalone = Case(
        f"ssh {node0.hostname} torchrun --standalone --nproc-per-node 2 ddp.py",
        cl.ssh(node0, f"{torchrun} --standalone --nproc-per-node 2 ddp.py"),
        cl.ws,
        cl.env,
    )
    # Two ssh sessions at once, one torchrun per node, static rendezvous on node 0's
    # loopback (a fresh port each time: all nodes share the host's port space).
    pair_argv: list[str] = []

    def pair_command() -> None:
        port = _free_port()

        def one(node: _Node, rank: int) -> str:
            cmd = (
                f"{torchrun} --nnodes 2 --nproc-per-node 1 --node-rank {rank} "
                f"--master-addr 127.0.0.1 --master-port {port} ddp.py"
            )
            return shlex.join(cl.ssh(node, cmd))

        script = f"{one(node1, 1)} & other=$!; {one(node0, 0)}; rc=$?; wait $other && exit $rc"
        pair_argv[:] = ["bash", "-c", script]

    pair_command()
    pair = Case(
        "ssh node0 torchrun --node-rank 0 & ssh node1 torchrun --node-rank 1",
        pair_argv,
        cl.ws,
        cl.env,
        before=pair_command,
    )
    ddp_log = _Phases(cl)
    ddp = Case(
        "targets run ddp.yml (2 nodes x 1 torchrun process)",
        [ctx.targets, "run", "ddp.yml"],
        cl.ws,
        cl.env,
        after=ddp_log.after,
        warmups=0,  # the first run above
    )
    bare = Case(
        f"ssh {node0.hostname} python3 -c pass",
        cl.ssh(node0, "python3 -c pass"),
        cl.ws,
        cl.env,
    )
    mpirun_one = Case(
        f"ssh {node0.hostname} mpirun -np 2 python3 mpi_hello.py",
        cl.ssh(node0, f"cd {NODE_DIR} && mpirun --allow-run-as-root -np 2 python3 mpi_hello.py"),
        cl.ws,
        cl.env,
    )
    mpi_log = _Phases(cl)
    mpi = Case(
        "targets run mpi.yml (2 nodes x 1 MPI process)",
        [ctx.targets, "run", "mpi.yml"],
        cl.ws,
        cl.env,
        after=mpi_log.after,
    )
    samples = run_round_robin(
        [pair, standalone, ddp, bare, mpirun_one, mpi], min(ctx.reps, TWO_NODE_REPS)
    )
    pair_s, standalone_s, ddp_s, bare_s, mpirun_s, mpi_s = samples
    return {
        "first": first,
        "pair": pair_s,
        "standalone": standalone_s,
        "ddp": ddp_s,
        "ssh": bare_s,
        "mpirun_one": mpirun_s,
        "mpi": mpi_s,
        "ddp_phases": ddp_log.medians(),
        "mpi_phases": mpi_log.medians(),
        "ddp_missing": ddp_log.missing,
        "mpi_missing": mpi_log.missing,
        "rows": [
            Row(pair_s, None, "the same job by hand: 2 nodes, static rendezvous on node 0"),
            Row(standalone_s, pair_s, "one node, 2 processes, no cross-node rendezvous"),
            Row(ddp_s, pair_s, f"vs one-node torchrun: {ddp_s.median / standalone_s.median:.1f}x"),
            Row(first, pair_s, "one run: node 1 started (scale-up 1 -> 2) included"),
            Row(bare_s, None, "node 0, during the two-node rows"),
            Row(mpirun_s, bare_s, "one node, 2 ranks, for scale"),
            Row(mpi_s, bare_s, "mpirun on node 0 over ssh to node 1"),
        ],
    }


# --------------------------------------------------------------------------- report


def _verdict(ratio: float) -> str:
    return "met" if ratio <= GOAL else "missed"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if abs(seconds) >= 0.0995 else f"{seconds * 1000:.1f}"


def _table(header: list[str], rows: list[list[str]], right: tuple[int, ...] = ()) -> list[str]:
    aligns = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]


def cluster_text(section: Section) -> list[str]:
    f = section.facts
    ratio = f["warm"]["run"].median / f["warm"]["ssh"].median
    out = [f"  warm one node vs bare ssh: {ratio:.2f}x (goal <= {GOAL:g}x): {_verdict(ratio)}"]
    out.append(f"  create: {_ms(f['create_s'])} ms; teardown: {f['teardown']}")
    out.append(
        "  load average (1 min) at the start and the end: {:.1f}, {:.1f} ({} CPUs)".format(
            *f["load"]
        )
    )
    out.append("  cold run, seconds after the CLI started:")
    for name, value in f["cold"]["milestones"].items():
        out.append(f"    {value:6.2f} s  {name}")
    for label, phases in (
        ("one node, warm", f["warm"]["phases"]),
        ("torchrun, 2 nodes", f["two"]["ddp_phases"]),
        ("MPI, 2 nodes", f["two"]["mpi_phases"]),
    ):
        if phases:
            out.append(f"  phases, {label} (median ms):")
            out += [f"    {_ms(v):>7}  {name}" for name, v in phases.items()]
    out.append(
        f"  peers (others' measurements, not this run): Ray Jobs 2.60 "
        f"{PEERS['ray_warm_trivial_s']} s for a warm trivial job"
    )
    return out


def cluster_summary(section: Section) -> str:
    f = section.facts
    if f.get("skipped"):
        return f"- Managed cluster: {f['skipped']}."
    warm, cold, two = f["warm"], f["cold"], f["two"]
    run, ssh = warm["run"], warm["ssh"]
    ratio = run.median / ssh.median
    return (
        f"- Managed cluster (docker-provider nodes on this machine): a warm one-node "
        f"`targets run` **{_ms(run.median)} ms** vs {_ms(ssh.median)} ms for a bare `ssh` "
        f"to the same node (**{ratio:.1f}x**, goal <= {GOAL:g}x: **{_verdict(ratio)}**); "
        "the first run, scaling "
        f"up from 0 nodes, {cold['run'].median:.1f} s; a 2-node torchrun job "
        f"{two['ddp'].median:.1f} s vs {two['pair'].median:.1f} s started by hand over "
        f"ssh ({two['ddp'].median / two['pair'].median:.2f}x). For context, others "
        f"measured Ray Jobs at {PEERS['ray_warm_trivial_s']} s for a warm trivial job."
    )


def cluster_markdown(section: Section, rows_md: list[str]) -> list[str]:
    """The section: ``rows_md`` is the generic table of its rows (from _report)."""
    f = section.facts
    out = ["", f"## {section.title}", ""]
    if f.get("skipped"):
        reason = str(f["skipped"]).removeprefix("skipped: ")
        return [*out, f"Not measured on this machine (skipped): {reason}."]
    warm, cold, two = f["warm"], f["cold"], f["two"]
    out += [section.how, "", *rows_md, ""]
    out += [
        f"`targets create` itself took {_ms(f['create_s'])} ms (the provider's check of the "
        "image runs a throwaway container; no node is started with `--min-nodes 0`). "
        f"Teardown: {f['teardown']}. The machine's load average (1 minute) was "
        f"{f['load'][0]:.1f} when this section started and {f['load'][1]:.1f} when it "
        f"ended, on {f['load'][2]} CPUs: rows of this section compare with each other, "
        "not with other sections' absolute times.",
        "",
        "### The cold run",
        "",
        f"The first `targets run one.yml` found {cold['nodes_before']} nodes and no "
        "reconcile process. Milestones from the cluster's events (`targets show -o json`), "
        "in seconds after the CLI started:",
        "",
        *_table(
            ["milestone", "s"],
            [[name, f"{value:.2f}"] for name, value in cold["milestones"].items()],
            right=(1,),
        ),
        "",
        "### Where the time of a warm `targets run` goes",
        "",
    ]
    cols = [("warm", "one node, one_line.py"), ("ddp", "2 nodes, torchrun")]
    cols += [("mpi", "2 nodes, MPI")]
    phases = {"warm": warm["phases"], "ddp": two["ddp_phases"], "mpi": two["mpi_phases"]}
    names = list(next((p for p in phases.values() if p), {}))
    if names:
        out += [
            "Median of each phase over the timed runs, from wall-clock stamps: the CLI's "
            "start and exit, the run's `created_at` in the workspace's ledger, and the "
            "cluster's events for the run (`targets show -o json`): when the reconcile "
            "process started it on its node(s), and when it recorded it completed (after "
            "collecting its logs and outputs from every node):",
            "",
            *_table(
                ["phase (ms)", *(label for _, label in cols)],
                [
                    [n, *(_ms(phases[k][n]) if n in phases[k] else "-" for k, _ in cols)]
                    for n in names
                ],
                right=(1, 2, 3),
            ),
            "",
        ]
    missing = warm["phases_missing"] + two["ddp_missing"] + two["mpi_missing"]
    if missing:
        out += [
            f"({missing} timed run(s) had no `starts on`/`completed` event for their id "
            "and are not in the phase medians.)",
            "",
        ]
    out += ["### Interpretation", "", *_interpretation(f)]
    return out


def _interpretation(f: dict[str, Any]) -> list[str]:
    warm, two = f["warm"], f["two"]
    run, ssh = warm["run"], warm["ssh"]
    ph = list(warm["phases"].values())
    lines = []
    if len(ph) == 4:
        lines.append(
            f"**Warm, one node.** `targets run` costs {_ms(run.median)} ms, "
            f"{run.median / ssh.median:.1f}x a bare `ssh` round trip to the same node "
            f"({_ms(ssh.median)} ms; issue 18's goal, <= {GOAL:g}x, is "
            f"**{_verdict(run.median / ssh.median)}**): {_ms(ph[0])} ms in the client "
            "before the run is recorded (interpreter, imports, snapshot), "
            f"{_ms(ph[1])} ms in the cluster's queue until the reconcile process "
            "(a separate, already running process) "
            f"picks it up and starts it, {_ms(ph[2])} ms on the node (over the reconcile "
            "process's SSH connection: the agent starts the script, which ends, and the "
            "logs and outputs come back), and "
            f"{_ms(ph[3])} ms from the recorded completion to the CLI's exit (the CLI "
            "follows the run through this machine's copy of it: the cluster's database, "
            "looked at every 10 ms, and the run's folder)."
        )
    else:
        lines.append(
            f"**Warm, one node.** `targets run` costs {_ms(run.median)} ms, "
            f"{run.median / ssh.median:.1f}x a bare `ssh` round trip to the same node "
            f"({_ms(ssh.median)} ms; issue 18's goal, <= {GOAL:g}x, is "
            f"**{_verdict(run.median / ssh.median)}**)."
        )
    lines.append("")
    pair, ddp, alone = two["pair"], two["ddp"], two["standalone"]
    diff = ddp.median - pair.median
    noise = max(pair.p90 - pair.median, ddp.p90 - ddp.median)
    within = (
        f", within the noise: p90 - median reaches {_ms(noise)} ms over "
        f"{min(pair.n, ddp.n)} repetitions"
        if abs(diff) <= noise
        else ""
    )
    launcher = (
        "; most of both is torchrun itself (starting the launcher and its workers, importing "
        "torch, the rendezvous): the same two processes on one node with `--standalone` take "
        f"{alone.median:.2f} s"
        if alone.median >= 0.5 * pair.median
        else f"; the same two processes on one node with `--standalone` take {alone.median:.2f} s"
    )
    lines.append(
        f"**Two nodes.** The torchrun job takes {ddp.median:.2f} s through `targets run` "
        f"and {pair.median:.2f} s when started by hand with one `ssh` per node "
        f"({'+' if diff >= 0 else '-'}{_ms(abs(diff))} ms, {ddp.median / pair.median:.2f}x"
        f"{within})"
        f"{launcher}. The MPI hello across two nodes takes "
        f"{two['mpi'].median:.2f} s vs {_ms(two['ssh'].median)} ms for a bare `ssh` to node 0 "
        f"and {_ms(two['mpirun_one'].median)} ms for `mpirun -np 2` on one node over `ssh` "
        "(by hand, an MPI job across nodes would also need node-to-node SSH set up, which "
        "the cluster does per run)."
    )
    lines += [
        "",
        f"**Peers** (measured by others on this kind of machine, **not in this run**): Ray "
        f"Jobs 2.60 took {PEERS['ray_warm_trivial_s']} s for a warm trivial job, "
        f"{PEERS['ray_vs_ssh']}x a bare ssh round trip; here a warm one-node run is "
        f"{run.median:.2f} s, {run.median / ssh.median:.1f}x. Different tools do different "
        "work (Ray submits through its head node and packages the working directory), so "
        "read this as an order of magnitude.",
    ]
    return lines
