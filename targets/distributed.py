"""Distributed runs: which launcher a runconfig asks for, and each node's part of it.

A core concept, independent of any kind: a single-node multi-process run is planned here
for every target (:func:`request_part`), and a kind that allocates nodes itself
(``Capability.MULTI_NODE``, e.g. a managed cluster) calls :func:`plan` with its nodes
(anything that has the attributes of :class:`PlanNode`).

:func:`distribution_of` reads the Azure ML v1 settings of a runconfig (``communicator``,
``node_count``, the ``mpi``/``pytorch``/``tensorflow`` sections) into a
:class:`Distribution`. :func:`plan` turns it into one JSON-able ``distributed`` dict per
node (list index = node rank); the target submits the run to every node with its dict as
:attr:`targets.compute.base.SubmitRequest.distributed`, and the node's supervisor
(:mod:`targets.agent.distributed`) launches accordingly:

- ``pytorch``: ``torch.distributed.run`` on every node (static rendezvous on node 0);
- ``mpi``: ``mpirun`` on node 0 (role ``launcher``) over SSH to the others (``standby``);
- ``tensorflow``: the entry on every node with its ``TF_CONFIG`` (``worker`` or ``ps``).

:func:`request_part` is what :func:`targets.runs.submit_run` asks: the ``distributed``
dict of a single-node, multi-process run (which every target can run), ``None`` when the
target plans the nodes itself (it declares ``Capability.MULTI_NODE``), or a UsageError.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from targets.agent import protocol
from targets.compute.base import Capability, ComputeTarget
from targets.errors import UsageError
from targets.runconfig.model import RunConfiguration

__all__ = [
    "IDENTITY_FILE",
    "KNOWN_HOSTS_FILE",
    "LOCAL_NODE",
    "Distribution",
    "PlanNode",
    "PlannedNode",
    "distribution_of",
    "plan",
    "request_part",
]

Backend = Literal["pytorch", "mpi", "tensorflow"]

IDENTITY_FILE = "@IDENTITY_FILE@"
"""Placeholder in the ``ssh.config`` text: the agent writes the key and puts its path here."""
KNOWN_HOSTS_FILE = "@KNOWN_HOSTS_FILE@"
"""Placeholder in the ``ssh.config`` text for the path of the written known_hosts."""


class PlannedNode(Protocol):
    """What :func:`plan` reads of a node (a cluster's ``Node`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def ssh_port(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def host_keys(self) -> tuple[str, ...]: ...
    @property
    def hostname(self) -> str | None: ...
    @property
    def network_interface(self) -> str | None: ...
    @property
    def peer_address(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PlanNode:
    """A node of a plan: where the other nodes reach its sshd, and its names."""

    id: str
    peer_address: str
    ssh_port: int = 22
    username: str = "root"
    host_keys: tuple[str, ...] = ()
    hostname: str | None = None
    network_interface: str | None = None


LOCAL_NODE = PlanNode(id="local", peer_address="127.0.0.1", hostname="localhost")
"""The one node of a single-node run."""


def _peer_known_hosts(nodes: Sequence[PlannedNode]) -> str:
    """``known_hosts`` lines of the nodes' host keys under the addresses peers use."""
    from targets.ssh.hostkeys import known_hosts_name

    lines: list[str] = []
    for node in nodes:
        host = known_hosts_name(node.peer_address, node.ssh_port)
        lines.extend(f"{host} {key.strip()}\n" for key in node.host_keys if key.strip())
    return "".join(lines)


@dataclass(frozen=True, slots=True)
class Distribution:
    """How a run is spread: backend, nodes and processes on each."""

    backend: Backend
    node_count: int
    process_count_per_node: int = 1
    communication_backend: str | None = None
    """``gloo`` or ``nccl`` (pytorch only)."""
    worker_count: int = 0
    """TensorFlow workers (the first ``worker_count`` nodes)."""
    parameter_server_count: int = 0
    """TensorFlow parameter servers (the nodes after the workers)."""

    @property
    def world_size(self) -> int:
        return self.node_count * self.process_count_per_node

    @property
    def multi_node(self) -> bool:
        return self.node_count > 1


def _explicit(section: Any, name: str) -> bool:
    return name in section.model_fields_set


def distribution_of(config: RunConfiguration) -> Distribution | None:
    """The run's distribution as Azure ML v1 reads it; ``None`` for one process on one node.

    Raises UsageError (exit 2) for settings that contradict each other.
    """
    communicator = config.communicator
    pytorch = config.pytorch
    mpi = config.mpi
    tf = config.tensorflow
    dist: Distribution
    if communicator in ("OpenMpi", "IntelMpi"):
        nodes = _nodes(config, mpi.node_count, "mpi")
        dist = Distribution("mpi", nodes, mpi.process_count_per_node)
    elif communicator in ("Nccl", "Gloo") or (
        communicator == "None"
        and (pytorch.process_count is not None or pytorch.node_count is not None)
    ):
        backend = communicator.lower() if communicator != "None" else None
        if (
            backend is not None
            and _explicit(pytorch, "communication_backend")
            and pytorch.communication_backend != backend
        ):
            raise UsageError(
                f"communicator {communicator} contradicts pytorch.communication_backend "
                f"{pytorch.communication_backend}",
                hint=f"set pytorch.communication_backend: {backend}, or drop one of the two",
            )
        nodes = _nodes(config, pytorch.node_count, "pytorch")
        total = pytorch.process_count if pytorch.process_count is not None else nodes
        if total < nodes or total % nodes:
            raise UsageError(
                f"pytorch.process_count {total} is the total number of processes and must be "
                f"a multiple of the node count {nodes}",
                hint=f"set pytorch.process_count to {nodes * max(1, total // nodes)} "
                f"({max(1, total // nodes)} per node)",
            )
        dist = Distribution(
            "pytorch",
            nodes,
            total // nodes,
            communication_backend=backend or pytorch.communication_backend,
        )
    elif communicator == "ParameterServer":
        if tf.worker_count < 1:
            raise UsageError(
                "communicator ParameterServer needs at least one worker",
                hint="set tensorflow.worker_count: 1 or more",
            )
        nodes = tf.worker_count + tf.parameter_server_count
        if config.node_count != 1 and config.node_count != nodes:
            raise UsageError(
                f"node_count {config.node_count} differs from tensorflow.worker_count + "
                f"parameter_server_count = {nodes}",
                hint=f"set node_count: {nodes}, or leave it out",
            )
        dist = Distribution(
            "tensorflow",
            nodes,
            1,
            worker_count=tf.worker_count,
            parameter_server_count=tf.parameter_server_count,
        )
    else:  # communicator None, no pytorch section
        if config.node_count > 1:
            raise UsageError(
                f"node_count {config.node_count} needs a communicator to start the processes",
                hint="set communicator: OpenMpi (mpirun), Nccl or Gloo (torchrun) or "
                "ParameterServer (TensorFlow), or node_count: 1",
            )
        if mpi.process_count_per_node > 1:
            raise UsageError(
                "mpi.process_count_per_node is set but the communicator is None",
                hint="set communicator: OpenMpi",
            )
        return None
    if dist.node_count == 1 and dist.process_count_per_node == 1:
        return None
    if config.framework == "pyspark":
        raise UsageError(
            "a pyspark run cannot be distributed with " + dist.backend,
            hint="set communicator: None and node_count: 1 (Spark distributes the work)",
        )
    return dist


def _nodes(config: RunConfiguration, section_nodes: int | None, section: str) -> int:
    if section_nodes is None:
        return config.node_count
    if config.node_count != 1 and config.node_count != section_nodes:
        raise UsageError(
            f"node_count {config.node_count} differs from {section}.node_count {section_nodes}",
            hint=f"give the same number in both, or only {section}.node_count",
        )
    return section_nodes


def _aliases(nodes: Sequence[PlannedNode]) -> list[str]:
    """The name of each node in MPI host lists and the ssh config: its hostname when
    those are distinct, else its provider id."""
    names = [n.hostname or n.id for n in nodes]
    if len(set(names)) == len(names):
        return names
    return [n.id for n in nodes]


def _ssh_config(nodes: Sequence[PlannedNode], aliases: Sequence[str]) -> str:
    blocks = []
    for node, alias in zip(nodes, aliases, strict=True):
        blocks.append(
            f"Host {alias}\n"
            f"    HostName {node.peer_address}\n"
            f"    Port {node.ssh_port}\n"
            f"    User {node.username}\n"
            f"    IdentityFile {IDENTITY_FILE}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {KNOWN_HOSTS_FILE}\n"
            "    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n"
            "    ConnectTimeout 15\n"
        )
    return "".join(blocks)


def plan(
    config: RunConfiguration,
    dist: Distribution,
    nodes: Sequence[PlannedNode],
    *,
    master_port: int,
    ssh_private_key: str | None,
) -> list[protocol.DistributedPart]:
    """One ``distributed`` dict per node, in node-rank order (``nodes[0]`` is the master).

    ``master_port`` is the rendezvous port on node 0 (torchrun's ``--master-port``; for
    TensorFlow, node ``i`` listens on ``master_port + i``); ``0`` on a single node lets the
    launcher pick a free one. ``ssh_private_key`` is the key mpirun on node 0 uses to reach
    the others (needed for a multi-node mpi run only).
    """
    if len(nodes) != dist.node_count:
        raise UsageError(
            f"the run needs {dist.node_count} nodes but {len(nodes)} were given",
            hint="allocate exactly node_count nodes",
        )
    if not 0 <= master_port <= 65535 or (dist.multi_node and master_port == 0):
        raise UsageError(f"invalid master port {master_port}", hint="give a port in 1..65535")
    if dist.backend == "mpi" and dist.multi_node and not ssh_private_key:
        raise UsageError(
            "a multi-node mpi run needs the SSH key node 0 uses to reach the other nodes",
            hint="pass ssh_private_key",
        )
    aliases = _aliases(nodes)
    master = nodes[0].peer_address
    peers: list[protocol.Peer] = [
        {
            "hostname": alias,
            "peer_address": node.peer_address,
            "ssh_port": node.ssh_port,
            "username": node.username,
        }
        for node, alias in zip(nodes, aliases, strict=True)
    ]
    tf_cluster: dict[str, list[str]] = {}
    if dist.backend == "tensorflow":
        addrs = [f"{n.peer_address}:{master_port + i}" for i, n in enumerate(nodes)]
        tf_cluster["worker"] = addrs[: dist.worker_count]
        if dist.parameter_server_count:
            tf_cluster["ps"] = addrs[dist.worker_count :]
    parts: list[protocol.DistributedPart] = []
    for rank, node in enumerate(nodes):
        role: str
        if dist.backend == "mpi":
            role = "launcher" if rank == 0 else "standby"
        elif dist.backend == "tensorflow":
            role = "worker" if rank < dist.worker_count else "ps"
        else:
            role = "worker"
        part: protocol.DistributedPart = {
            "backend": dist.backend,
            "node_rank": rank,
            "node_count": dist.node_count,
            "process_count_per_node": dist.process_count_per_node,
            "world_size": dist.world_size,
            "role": role,
            "hostname": aliases[rank],
            "peers": peers,
            "master_addr": master,
            "master_port": master_port,
            "network_interface": nodes[0].network_interface,
            "communication_backend": dist.communication_backend,
        }
        if node.network_interface:
            part["network_interface"] = node.network_interface
        if dist.backend == "mpi" and rank == 0 and dist.multi_node:
            part["ssh"] = {
                "config": _ssh_config(nodes, aliases),
                "known_hosts": _peer_known_hosts(nodes),
                "private_key": ssh_private_key,
            }
        if dist.backend == "tensorflow":
            task_type = "worker" if role == "worker" else "ps"
            index = rank if role == "worker" else rank - dist.worker_count
            part["tf_config"] = json.dumps(
                {"cluster": tf_cluster, "task": {"type": task_type, "index": index}},
                separators=(",", ":"),
            )
        parts.append(part)
    return parts


def request_part(
    config: RunConfiguration, target: ComputeTarget
) -> protocol.DistributedPart | None:
    """The ``distributed`` part of a run submitted to ``target`` as one request.

    ``None`` for a plain run, and for a multi-node run on a target that declares
    ``Capability.MULTI_NODE`` (it allocates the nodes and calls :func:`plan` itself). A
    single-node multi-process run gets its plan here and runs on any target. A
    multi-node run on any other target is refused (UsageError, exit 2).
    """
    dist = distribution_of(config)
    if dist is None:
        return None
    if dist.multi_node:
        if Capability.MULTI_NODE in target.capabilities:
            return None
        raise UsageError(
            f"the run asks for {dist.node_count} nodes ({dist.backend}) but the target "
            f"{target.name!r} ({target.kind}) runs on one machine",
            hint="submit it to a cluster (`targets create NAME --type cluster ...`), or set "
            "node_count: 1 and use process_count_per_node / pytorch.process_count for "
            "several processes on one machine",
        )
    return plan(config, dist, [LOCAL_NODE], master_port=0, ssh_private_key=None)[0]
