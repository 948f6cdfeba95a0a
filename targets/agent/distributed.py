"""This node's part of a distributed run (target side).

Stdlib only, Python >= 3.8 (it ships inside the agent zipapp). The supervisor calls it
when ``spec["distributed"]`` is set (see :mod:`targets.clusters.distributed` for the
dict): once the environment is ready it writes the ``ready`` marker, then launches by role:

- pytorch ``worker``: ``python -m torch.distributed.run`` (``--standalone`` on one node,
  else a static rendezvous on node 0's address and port);
- mpi ``launcher``: ``mpirun`` over every node (over SSH with the run's own ssh config,
  key and known_hosts, after every other node wrote its ``ready`` marker);
- mpi ``standby``: nothing but waiting until the cluster cancels it;
- tensorflow ``worker``/``ps``: the entry with its ``TF_CONFIG``.

Every user process runs under a small wrapper (:data:`RANK_WRAPPER`, run with ``-c`` by
the environment's Python) that prefixes each output line with ``[rank N] `` and keeps
the rank's own copy in ``logs/user_logs/std_log_process_NN.txt`` (Azure ML's naming).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO

from . import rundir
from .protocol import CANCELED, FAILED, DistributedPart, RunSpec, SshPart

__all__ = [
    "RANK_WRAPPER",
    "READY",
    "after_run",
    "before_launch",
    "command",
    "mark_ready",
]

READY = "ready"
IDENTITY_FILE = "@IDENTITY_FILE@"
KNOWN_HOSTS_FILE = "@KNOWN_HOSTS_FILE@"
PEER_POLL_SECONDS = 2.0

# Runs in the user's environment (any Python 3): no imports beyond the stdlib.
RANK_WRAPPER = r"""
import os, signal, subprocess, sys
e = os.environ
rank = "0"
for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "TARGETS_RANK"):
    if e.get(name):
        rank = e[name]
        break
if e.get("OMPI_COMM_WORLD_RANK"):
    e.setdefault("RANK", e["OMPI_COMM_WORLD_RANK"])
    e.setdefault("WORLD_SIZE", e.get("OMPI_COMM_WORLD_SIZE", "1"))
    e.setdefault("LOCAL_RANK", e.get("OMPI_COMM_WORLD_LOCAL_RANK", "0"))
    ppn = int(e.get("TARGETS_PROCESS_COUNT_PER_NODE") or "1")
    e["NODE_RANK"] = e["TARGETS_NODE_RANK"] = str(int(rank) // max(ppn, 1))
prefix = ("[rank %s] " % rank).encode()
child = subprocess.Popen(
    sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
)
def forward(signum, frame):
    try:
        child.send_signal(signum)
    except OSError:
        pass
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, forward)
log = None
def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]
for line in iter(child.stdout.readline, b""):
    if not line.endswith(b"\n"):
        line += b"\n"
    write_all(1, prefix + line)
    if log is None:
        folder = os.path.join("logs", "user_logs")
        try:
            os.makedirs(folder, exist_ok=True)
            log = open(os.path.join(folder, "std_log_process_%02d.txt" % int(rank)), "ab", 0)
        except (OSError, ValueError):
            log = False
    if log:
        log.write(line)
code = child.wait()
sys.exit(code if code >= 0 else 128 - code)
"""

_STANDBY = "import time\nwhile True:\n    time.sleep(60)\n"


def mark_ready(run_dir: str) -> None:
    """The environment and working directory of this node are ready."""
    with open(os.path.join(run_dir, READY), "w") as fh:
        fh.write("%f\n" % time.time())


def _ssh_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "ssh")


def _write(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)


def _write_ssh(run_dir: str, ssh: SshPart) -> str:
    """Write the ssh config, key and known_hosts; return the config's path. The key is
    removed from spec.json once it is in its own 0600 file."""
    folder = _ssh_dir(run_dir)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    key = os.path.join(folder, "id_key")
    known = os.path.join(folder, "known_hosts")
    config = os.path.join(folder, "config")
    _write(key, str(ssh.get("private_key") or "").rstrip("\n") + "\n", 0o600)
    _write(known, str(ssh.get("known_hosts") or ""), 0o600)
    text = str(ssh.get("config") or "")
    text = text.replace(IDENTITY_FILE, key).replace(KNOWN_HOSTS_FILE, known)
    _write(config, text, 0o600)
    spec_path = os.path.join(run_dir, "spec.json")
    try:
        with open(spec_path) as fh:
            spec = json.load(fh)
        ((spec.get("distributed") or {}).get("ssh") or {}).pop("private_key", None)
        rundir.write_json_atomic(spec_path, spec)
    except (OSError, ValueError):
        pass
    return config


def before_launch(
    spec: RunSpec,
    dist: DistributedPart,
    root: str,
    run_dir: str,
    out: IO[bytes],
    cancelled: Callable[[], bool],
    container: bool,
) -> tuple[str, str] | None:
    """Work before the launch. For a multi-node mpi launcher: write the SSH files and
    wait until every other node is ready. Returns ``(status, message)`` to end the run
    instead of launching, or None."""
    if dist.get("backend") != "mpi" or dist.get("role") != "launcher":
        return None
    if int(dist.get("node_count") or 1) <= 1:
        return None
    if container:
        return (FAILED, "a multi-node mpi run cannot start from a Docker environment yet")
    ssh = shutil.which("ssh")
    if ssh is None:
        return (FAILED, "ssh is not installed on node 0; mpirun needs it to reach the nodes")
    config = _write_ssh(
        run_dir, dist.get("ssh") or {"config": "", "known_hosts": "", "private_key": None}
    )
    ready = os.path.join(rundir.run_path(root, str(spec["run_id"])), READY)
    limit = float(spec.get("prepare_timeout_seconds") or 3600)
    deadline = time.monotonic() + limit
    waiting = [p for p in dist.get("peers") or [] if p.get("hostname") != dist.get("hostname")]
    out.write(
        (
            "[targets] waiting for %d node(s) to be ready: %s\n"
            % (len(waiting), ", ".join(str(p["hostname"]) for p in waiting))
        ).encode()
    )
    last: dict[str, str] = {}
    while waiting:
        for peer in list(waiting):
            if cancelled():
                return (CANCELED, "canceled while waiting for the other nodes")
            argv = [ssh, "-F", config, str(peer["hostname"]), "test -e " + shlex.quote(ready)]
            try:
                proc = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=30,
                )
                code = proc.returncode
                last[peer["hostname"]] = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            except subprocess.TimeoutExpired:
                code = -1
                last[peer["hostname"]] = "ssh timed out"
            if code == 0:
                waiting.remove(peer)
                out.write(("[targets] node %s is ready\n" % peer["hostname"]).encode())
        if not waiting:
            break
        if time.monotonic() > deadline:
            names = ", ".join(
                "%s (%s)" % (p["hostname"], last.get(p["hostname"]) or "not ready") for p in waiting
            )
            return (
                FAILED,
                "node(s) never became ready within %ds: %s" % (int(limit), names),
            )
        end = time.monotonic() + PEER_POLL_SECONDS
        while time.monotonic() < end:
            if cancelled():
                return (CANCELED, "canceled while waiting for the other nodes")
            time.sleep(0.05)
    return None


def after_run(run_dir: str) -> None:
    """Remove the private key (the ssh config and known_hosts stay for the record)."""
    with contextlib.suppress(OSError):
        os.remove(os.path.join(_ssh_dir(run_dir), "id_key"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _exported(env: dict[str, str]) -> list[str]:
    """Names mpirun forwards to the ranks on other nodes: the run's own variables."""
    names = []
    for name, value in env.items():
        if not name or "=" in name or name == "TARGETS_USER_PYTHONPATH":
            continue
        if os.environ.get(name) != value or name in ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH"):
            names.append(name)
    return sorted(names)


def command(
    spec: RunSpec,
    dist: DistributedPart,
    python: str,
    child: list[str],
    env: dict[str, str],
    wd: str,
    run_dir: str,
    container: bool,
) -> tuple[list[str], dict[str, str]]:
    """The launcher's argv and environment for this node's role. ``child`` is what one
    process runs (``[python, script, args...]`` or a command); ``env`` the run's
    variables. Raises RuntimeError when the launcher is missing."""
    env = dict(env)
    backend = dist.get("backend")
    role = dist.get("role")
    nodes = int(dist.get("node_count") or 1)
    per_node = int(dist.get("process_count_per_node") or 1)
    node_rank = int(dist.get("node_rank") or 0)
    master = str(dist.get("master_addr") or "127.0.0.1")
    port = int(dist.get("master_port") or 0)
    iface = dist.get("network_interface")
    env.update(
        TARGETS_NODE_RANK=str(node_rank),
        TARGETS_NODE_COUNT=str(nodes),
        TARGETS_PROCESS_COUNT_PER_NODE=str(per_node),
        TARGETS_DISTRIBUTED_BACKEND=str(backend),
        NODE_RANK=str(node_rank),
    )
    if iface:
        env.setdefault("NCCL_SOCKET_IFNAME", str(iface))
        env.setdefault("GLOO_SOCKET_IFNAME", str(iface))
    wrapped = [python, "-u", "-c", RANK_WRAPPER, *list(child)]
    if backend == "pytorch":
        argv = [python, "-m", "torch.distributed.run", "--nnodes", str(nodes)]
        argv += ["--nproc-per-node", str(per_node), "--max-restarts", "0"]
        if nodes == 1 and port == 0:
            argv += ["--standalone"]
        else:
            env["MASTER_ADDR"] = master
            env["MASTER_PORT"] = str(port)
            argv += ["--node-rank", str(node_rank), "--master-addr", master]
            argv += ["--master-port", str(port), "--rdzv-backend", "static"]
        return [*argv, "--no-python", *wrapped], env
    if backend == "tensorflow":
        if dist.get("tf_config"):
            env["TF_CONFIG"] = str(dist["tf_config"])
        env["TARGETS_RANK"] = str(node_rank)
        return wrapped, env
    if backend != "mpi":
        raise RuntimeError("unknown distributed backend %r" % (backend,))
    if role == "standby":
        return [sys.executable if not container else python, "-c", _STANDBY], env
    if port == 0:
        port = _free_port()
    env["MASTER_ADDR"] = master
    env["MASTER_PORT"] = str(port)
    env["AZ_BATCH_MASTER_NODE"] = "%s:%d" % (master, port)
    env["AZ_BATCHAI_MPI_MASTER_NODE"] = master
    mpirun = "mpirun" if container else shutil.which("mpirun", path=env.get("PATH"))
    if mpirun is None:
        raise RuntimeError(
            "mpirun is not installed on this node (install OpenMPI, e.g. apt-get install "
            "openmpi-bin, or add it to the environment)"
        )
    argv = [mpirun, "-np", str(nodes * per_node), "--bind-to", "none"]
    if nodes == 1:
        argv += ["--oversubscribe"]
    else:
        hosts = ",".join("%s:%d" % (p["hostname"], per_node) for p in dist.get("peers") or [])
        config = os.path.join(_ssh_dir(run_dir), "config")
        argv += ["--host", hosts, "-mca", "plm_rsh_agent", "ssh -F " + config]
    if iface:
        argv += ["-mca", "btl_tcp_if_include", str(iface), "-mca", "oob_tcp_if_include", str(iface)]
    if container:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    elif os.getuid() == 0:
        argv += ["--allow-run-as-root"]
    if nodes > 1:
        for name in _exported(env):
            argv += ["-x", name]
    argv += ["-wdir", wd]
    return argv + wrapped, env
