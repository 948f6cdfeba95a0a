"""The contract suite every cluster node provider passes.

A plugin author runs it against their provider by subclassing
:class:`NodeProviderContract` and naming the provider as registered under the
``targets.providers`` entry point::

    import pytest
    from targets.testing import NodeProviderContract

    class TestMyProviderContract(NodeProviderContract):
        provider_name = "mycloud"
        ready_timeout = 300          # seconds a node may take to run sshd

        @pytest.fixture
        def provider_options(self, my_test_account):
            return {"account": my_test_account.name}

The suite builds the provider the way a cluster does (:func:`load_provider`, the options
validated by its ``options_model``, a fresh cluster key pair in the
:class:`~targets.clusters.provider.ProviderContext`), and drives the
:class:`~targets.clusters.provider.NodeProvider` methods with real nodes: nodes it adds
become ``running``, and each then accepts an SSH login with the cluster's key as its
``username``, its host key verified against the keys the provider reported; a second
provider object sees the same nodes; removing a node and deleting the cluster are
idempotent and leave nothing that still lets the cluster's key in. Every test deletes the
clusters it made, also when it fails.

Nodes must be reachable from this machine at their ``address`` (a node with a ``jump``
host is not reached through it here). The built-in providers run this suite
(``tests/test_provider_contract.py``), and so does the example provider plugin
``plugins/targets-provider-localsshd`` of the targets repository.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, ValidationError

from targets.clusters.keys import KeyPair, generate_key_pair
from targets.clusters.model import ClusterSpec
from targets.clusters.provider import (
    Node,
    NodeProvider,
    NodeState,
    ProviderContext,
    known_hosts_text,
    load_provider,
)

__all__ = ["MakeProvider", "NodeProviderContract", "login", "wait_for_nodes"]

MakeProvider = Callable[..., NodeProvider]
"""``make_provider(*, vm_priority="dedicated", cluster=None, state_dir=None)``."""


def wait_for_nodes(
    provider: NodeProvider,
    predicate: Callable[[list[Node]], bool],
    timeout: float,
    what: str,
) -> list[Node]:
    """Poll ``provider.list_nodes()`` until ``predicate(nodes)`` holds; return those nodes.
    A ``failed`` node fails the test at once (with the provider's message)."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        nodes = provider.list_nodes()
        failed = [n for n in nodes if n.state is NodeState.FAILED]
        if failed:
            pytest.fail(f"a node failed while waiting for {what}: {failed}")
        if predicate(nodes):
            return nodes
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:g} s; the provider lists {nodes}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def login(node: Node, private_key: str, known_hosts: Path, command: str = "hostname") -> str:
    """Log in to ``node`` as its ``username`` with ``private_key`` (OpenSSH text), the host
    key checked against ``known_hosts`` (never accepted), run ``command``; its stdout.
    Raises paramiko's errors when the login fails."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            node.address,
            port=node.ssh_port,
            username=node.username,
            pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(private_key)),
            allow_agent=False,
            look_for_keys=False,
            timeout=30,
            banner_timeout=30,
            auth_timeout=30,
        )
        _, stdout, _ = client.exec_command(command, timeout=60)
        out = stdout.read().decode(errors="replace")
        if stdout.channel.recv_exit_status() != 0:
            raise AssertionError(f"`{command}` failed on node {node.id}: {out}")
        return str(out).strip()
    finally:
        client.close()


class NodeProviderContract:
    """The behaviour every node provider must have. Set ``provider_name``; override the
    ``provider_options`` fixture (and ``workspace_dir`` when the provider reads the
    workspace) as your provider needs."""

    provider_name: ClassVar[str] = ""
    """The provider's entry-point name (``targets.providers``)."""
    max_nodes: ClassVar[int] = 2
    """The cluster's ``max_nodes``; the suite adds up to two nodes at a time."""
    ready_timeout: ClassVar[float] = 120
    """Seconds new nodes may take to be ``running``, or removed ones to be gone."""

    # -- what the author provides --------------------------------------------------------

    @pytest.fixture
    def provider_options(self) -> dict[str, Any]:
        """The cluster's ``provider_options`` (what ``targets create`` flags set)."""
        return {}

    @pytest.fixture
    def workspace_dir(self) -> Path | None:
        """The workspace's ``.targets`` folder lent to the provider (``None``: none)."""
        return None

    # -- what the suite builds -----------------------------------------------------------

    @pytest.fixture
    def cluster_key(self) -> KeyPair:
        """The cluster's key pair (the public half goes to the provider)."""
        return generate_key_pair("targets-cluster-contract")

    @pytest.fixture
    def make_provider(
        self,
        tmp_path: Path,
        provider_options: dict[str, Any],
        workspace_dir: Path | None,
        cluster_key: KeyPair,
    ) -> Iterator[MakeProvider]:
        """``make_provider(*, vm_priority="dedicated", cluster=None, state_dir=None)``: a
        provider for a new cluster (a fresh name unless ``cluster`` is given), built as a
        cluster builds it. Every cluster made is deleted after the test."""
        if not self.provider_name:
            raise NotImplementedError("set provider_name to your provider's entry-point name")
        cls = load_provider(self.provider_name)
        made: list[NodeProvider] = []

        def make(
            *,
            vm_priority: Literal["dedicated", "lowpriority"] = "dedicated",
            cluster: str | None = None,
            state_dir: Path | None = None,
        ) -> NodeProvider:
            name = cluster or f"c{uuid.uuid4().hex[:8]}"
            spec = ClusterSpec(
                provider=self.provider_name,
                max_nodes=self.max_nodes,
                vm_priority=vm_priority,
                provider_options=provider_options,
            )
            options = cls.options_model.model_validate(dict(spec.provider_options))
            context = ProviderContext(
                state_dir=state_dir or tmp_path / name / "provider",
                public_key=cluster_key.public,
                secret=lambda secret: None,
                workspace_dir=workspace_dir,
            )
            provider = cls(name, spec, options, context)
            made.append(provider)
            return provider

        yield make
        for provider in reversed(made):
            with contextlib.suppress(Exception):
                provider.delete_cluster()
            with contextlib.suppress(Exception):
                provider.close()

    def _started(self, make_provider: MakeProvider, **kwargs: Any) -> NodeProvider:
        provider = make_provider(**kwargs)
        provider.check()
        provider.context.state_dir.mkdir(parents=True, exist_ok=True)
        provider.create_cluster()
        return provider

    def _running(self, provider: NodeProvider, count: int) -> list[Node]:
        return wait_for_nodes(
            provider,
            lambda nodes: len(nodes) == count and all(n.state is NodeState.RUNNING for n in nodes),
            self.ready_timeout,
            f"{count} running node(s)",
        )

    @property
    def _two(self) -> int:
        return min(2, self.max_nodes)

    # -- declarations --------------------------------------------------------------------

    def test_declares_its_name_options_and_priorities(self) -> None:
        cls = load_provider(self.provider_name)
        assert cls.name == self.provider_name, "the entry-point name is the provider's name"
        assert isinstance(cls.description, str) and cls.description, "a provider describes itself"
        assert isinstance(cls.supports_low_priority, bool)
        assert issubclass(cls.options_model, BaseModel)
        assert cls.options_model.model_config.get("extra") == "forbid", (
            "an options model must forbid unknown keys so typos are errors"
        )
        with pytest.raises(ValidationError):
            cls.options_model.model_validate({"surely_not_an_option": 1})

    def test_constructing_and_checking_write_nothing(
        self, make_provider: MakeProvider, tmp_path: Path
    ) -> None:
        state_dir = tmp_path / "not-yet"
        provider = make_provider(state_dir=state_dir)
        provider.check()
        assert not state_dir.exists(), "check() runs before the cluster's folder exists"

    # -- nodes ---------------------------------------------------------------------------

    def test_a_new_cluster_has_no_nodes_and_adding_none_adds_none(
        self, make_provider: MakeProvider
    ) -> None:
        provider = self._started(make_provider)
        assert provider.list_nodes() == []
        assert provider.add_nodes(0) == []
        assert provider.list_nodes() == []

    def test_added_nodes_run_sshd_and_let_the_cluster_key_in(
        self, make_provider: MakeProvider, cluster_key: KeyPair, tmp_path: Path
    ) -> None:
        provider = self._started(make_provider)
        count = self._two
        added = provider.add_nodes(count)
        assert len(added) == count, added
        assert len({n.id for n in added}) == count, "node ids are distinct"
        assert all(n.state in (NodeState.CREATING, NodeState.RUNNING) for n in added), added
        nodes = self._running(provider, count)
        assert {n.id for n in nodes} == {n.id for n in added}
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(known_hosts_text(nodes))
        for node in nodes:
            assert node.priority == "dedicated", node
            assert node.address and node.username and node.host_keys, node
            assert Node.from_json(node.to_json()) == node
            shown = login(node, cluster_key.private, known_hosts)
            if node.hostname is not None:
                assert shown == node.hostname, f"{node.id}: hostname prints {shown!r}"

    def test_a_second_provider_object_sees_the_same_nodes(
        self, make_provider: MakeProvider
    ) -> None:
        provider = self._started(make_provider)
        added = provider.add_nodes(1)
        self._running(provider, 1)
        again = make_provider(cluster=provider.cluster, state_dir=provider.context.state_dir)
        assert [n.id for n in again.list_nodes()] == [added[0].id]

    def test_a_removed_node_goes_away_and_removing_it_again_is_fine(
        self, make_provider: MakeProvider
    ) -> None:
        provider = self._started(make_provider)
        count = self._two
        provider.add_nodes(count)
        nodes = self._running(provider, count)
        gone, kept = nodes[0], nodes[1:]
        provider.remove_nodes([gone.id])
        provider.remove_nodes([gone.id])
        left = wait_for_nodes(
            provider,
            lambda now: all(n.id != gone.id or n.state is NodeState.DELETING for n in now),
            self.ready_timeout,
            f"node {gone.id} removed",
        )
        assert {n.id for n in left if n.id != gone.id} == {n.id for n in kept}
        provider.remove_nodes([gone.id])  # gone already: still fine

    def test_deleting_the_cluster_removes_every_node_and_the_key_works_nowhere(
        self, make_provider: MakeProvider, cluster_key: KeyPair, tmp_path: Path
    ) -> None:
        provider = self._started(make_provider)
        count = self._two
        provider.add_nodes(count)
        nodes = self._running(provider, count)
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(known_hosts_text(nodes))
        provider.delete_cluster()
        wait_for_nodes(provider, lambda now: now == [], self.ready_timeout, "an empty cluster")
        provider.delete_cluster()  # idempotent
        for node in nodes:
            with pytest.raises(Exception):  # noqa: B017 - refused, reset or gone: any way out
                login(node, cluster_key.private, known_hosts, "true")

    def test_close_is_idempotent(self, make_provider: MakeProvider) -> None:
        provider = self._started(make_provider)
        provider.list_nodes()
        provider.close()
        provider.close()

    def test_low_priority_nodes_are_made_or_refused_before_anything_starts(
        self, make_provider: MakeProvider, provider_options: dict[str, Any]
    ) -> None:
        """A provider that declares low-priority nodes makes them; for one that does not,
        asking for them is refused (exit code 2) before any node is made."""
        if not load_provider(self.provider_name).supports_low_priority:
            from targets.clusters.provisioning import check_cluster_spec
            from targets.errors import UsageError

            spec = ClusterSpec(
                provider=self.provider_name,
                max_nodes=self.max_nodes,
                vm_priority="lowpriority",
                provider_options=provider_options,
            )
            with pytest.raises(UsageError, match="no low-priority nodes") as refused:
                check_cluster_spec(spec)
            assert refused.value.exit_code == 2
            return
        provider = self._started(make_provider, vm_priority="lowpriority")
        added = provider.add_nodes(1)
        assert [n.priority for n in added] == ["lowpriority"], added
        nodes = self._running(provider, 1)
        assert [n.priority for n in nodes] == ["lowpriority"], nodes
