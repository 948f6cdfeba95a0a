"""The contract of node providers: who creates and removes a cluster's nodes.

A provider is a class registered under the entry-point group ``targets.providers``
(``docker``, ``azure`` and ``ssh`` ship with targets). The cluster's scheduler decides how
many nodes there should be; the provider only makes that true and reports what exists.
Nodes are plain SSH machines once they run: the cluster reaches them exactly like the
``vm`` kind does, with the cluster's own key (kept in the keyring) and host keys that the
provider reports through a trusted channel (never accepted blindly).
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from targets.clusters.model import ClusterSpec
from targets.errors import UsageError
from targets.registry import PluginGroup, available_plugins, load_plugin

__all__ = [
    "GROUP",
    "PROVIDERS",
    "NoProviderOptions",
    "Node",
    "NodeProvider",
    "NodeState",
    "ProviderContext",
    "available_providers",
    "known_hosts_text",
    "load_provider",
]

GROUP = "targets.providers"


class NodeState(str, enum.Enum):
    CREATING = "creating"
    """Asked for; not yet reachable."""
    RUNNING = "running"
    """sshd answers; usable."""
    FAILED = "failed"
    """The provider could not create it, or it broke; the cluster removes it."""
    PREEMPTED = "preempted"
    """A low-priority node the provider took back (Spot eviction)."""
    DELETING = "deleting"
    """Being removed."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Node:
    """One node as its provider reports it."""

    id: str
    """The provider's name for it (container name, scale-set instance id)."""
    state: NodeState
    address: str = ""
    """Where this machine reaches the node's sshd."""
    ssh_port: int = 22
    username: str = "root"
    host_keys: tuple[str, ...] = ()
    """The node's sshd host public keys (``"ssh-ed25519 AAAA..."``), read through the
    provider's own trusted channel (``docker exec``, the cloud's API); they go to the
    cluster's known_hosts so the connection is verified."""
    hostname: str | None = None
    """What ``hostname`` prints on the node (MPI host lists use it)."""
    internal_address: str | None = None
    """Where the other nodes reach it (default: ``address``)."""
    network_interface: str | None = None
    """The interface node-to-node traffic uses (``lo`` when all nodes share one host)."""
    priority: str = "dedicated"
    created_at: float = field(default_factory=time.time)
    message: str | None = None
    jump: str | None = None
    """Reach ``address`` through this SSH host (OpenSSH's ProxyJump syntax), when the
    node's sshd is only reachable from there (a docker node on a remote engine)."""

    @property
    def peer_address(self) -> str:
        return self.internal_address or self.address

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "address": self.address,
            "ssh_port": self.ssh_port,
            "username": self.username,
            "host_keys": list(self.host_keys),
            "hostname": self.hostname,
            "internal_address": self.internal_address,
            "network_interface": self.network_interface,
            "priority": self.priority,
            "created_at": self.created_at,
            "message": self.message,
            "jump": self.jump,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Node:
        return cls(
            id=str(raw["id"]),
            state=NodeState(raw["state"]),
            address=str(raw.get("address") or ""),
            ssh_port=int(raw.get("ssh_port") or 22),
            username=str(raw.get("username") or "root"),
            host_keys=tuple(raw.get("host_keys") or ()),
            hostname=raw.get("hostname"),
            internal_address=raw.get("internal_address"),
            network_interface=raw.get("network_interface"),
            priority=str(raw.get("priority") or "dedicated"),
            created_at=float(raw.get("created_at") or time.time()),
            message=raw.get("message"),
            jump=raw.get("jump"),
        )

    def with_state(self, state: NodeState, message: str | None = None) -> Node:
        return replace(self, state=state, message=message)


def known_hosts_text(nodes: Sequence[Node], *, peer: bool = False) -> str:
    """``known_hosts`` lines of the nodes' host keys, under the address this machine uses
    (or, with ``peer``, the one the other nodes use)."""
    from targets.ssh.hostkeys import known_hosts_name

    lines: list[str] = []
    for node in nodes:
        host = known_hosts_name(node.peer_address if peer else node.address, node.ssh_port)
        lines.extend(f"{host} {key.strip()}\n" for key in node.host_keys if key.strip())
    return "".join(lines)


class NoProviderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_secret(name: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What the cluster lends its provider."""

    state_dir: Path
    """A folder for the provider's own files (never secrets)."""
    public_key: str
    """The cluster's SSH public key (``ssh-ed25519 AAAA... targets-cluster-NAME``): nodes
    must accept it for their login user."""
    secret: Callable[[str], str | None] = _no_secret
    """The cluster's secrets by name (from the keyring)."""
    workspace_dir: Path | None = None
    """The workspace's ``.targets`` folder (providers built on attached targets use it)."""


class NodeProvider(ABC):
    """Creates and removes the nodes of one cluster. Constructing it does no I/O.

    Methods may block (an Azure long-running operation); the cluster calls them from its
    reconcile process, not from a user's command, except :meth:`check` and
    :meth:`delete_cluster`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options_model: ClassVar[type[BaseModel]] = NoProviderOptions
    supports_low_priority: ClassVar[bool] = False

    def __init__(
        self, cluster: str, spec: ClusterSpec, options: BaseModel, context: ProviderContext
    ) -> None:
        self.cluster = cluster
        self.spec = spec
        self.options = options
        self.context = context

    def check(self) -> None:  # noqa: B027 - optional
        """Refuse settings that cannot work, before anything is created (raise UsageError
        naming what is wrong and how to fix it)."""

    def create_cluster(self) -> None:  # noqa: B027 - optional
        """Create what the cluster needs besides its nodes (a scale set with capacity 0).
        Idempotent."""

    @abstractmethod
    def list_nodes(self) -> list[Node]:
        """Every node that exists (in any state), as the provider sees it now."""

    @abstractmethod
    def add_nodes(self, count: int) -> list[Node]:
        """Start creating ``count`` nodes; return them (possibly still ``creating``).
        Later :meth:`list_nodes` calls report them ``running`` once sshd answers."""

    @abstractmethod
    def remove_nodes(self, ids: list[str]) -> None:
        """Remove these nodes (idempotent: an id that is gone already is fine)."""

    def delete_cluster(self) -> None:
        """Remove every node and whatever :meth:`create_cluster` made. Idempotent."""
        self.remove_nodes([n.id for n in self.list_nodes()])

    def close(self) -> None:  # noqa: B027 - optional
        """Release clients. Idempotent."""


def _unknown_provider(name: str, installed: Sequence[str]) -> UsageError:
    known = ", ".join(installed) or "none"
    return UsageError(f"unknown cluster provider {name!r}", hint=f"installed providers: {known}")


PROVIDERS: PluginGroup[NodeProvider] = PluginGroup(
    group=GROUP,
    base=NodeProvider,
    name_attr="name",
    noun="cluster provider",
    unknown=_unknown_provider,
)
"""The providers' entry-point group, loaded by the same loader as target kinds."""


def available_providers() -> list[str]:
    """The names of the installed providers (imports none of them)."""
    return [info.name for info in available_plugins(PROVIDERS)]


def load_provider(name: str) -> type[NodeProvider]:
    """The provider class registered as ``name`` (imports its module only).

    Raises UsageError for an unknown name (listing the installed ones) and
    :class:`~targets.errors.PluginLoadError` for a broken provider (import error, not a
    NodeProvider, a ``name`` other than its entry point's, two distributions claiming it).
    """
    return load_plugin(PROVIDERS, name)
