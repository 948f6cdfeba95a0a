"""The docker node provider against the real Docker engine: nodes are containers of the
node image running sshd on host networking, each on its own loopback port."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from targets.clusters.keys import generate_key_pair
from targets.clusters.model import ClusterSpec
from targets.clusters.provider import Node, NodeState, ProviderContext, load_provider
from targets.clusters.providers.docker import DockerProvider, DockerProviderOptions, name_address
from targets.errors import ConnectionFailed, UsageError
from tests.cluster_nodes import (
    NodeImage,
    node_image_fixture,  # noqa: F401 - fixture
    remove_cluster_containers,
)
from tests.dockerd import BASE_IMAGE, DockerEngine, docker_engine_fixture  # noqa: F401

pytestmark = pytest.mark.xdist_group("docker")

RUNNING_TIMEOUT = 60.0


class ClusterKey:
    """A key pair made as the cluster makes its own, and the private half for paramiko."""

    def __init__(self) -> None:
        pair = generate_key_pair("targets-cluster-test")
        self.private = pair.private
        self.public = pair.public
        self.key = paramiko.Ed25519Key.from_private_key(io.StringIO(self.private))


@pytest.fixture(scope="module")
def cluster_key() -> ClusterKey:
    return ClusterKey()


def make_provider(
    tmp_path: Path, cluster: str, key: ClusterKey, image: str, **options: object
) -> DockerProvider:
    spec = ClusterSpec(provider="docker", max_nodes=3, provider_options={"image": image, **options})
    cls = load_provider("docker")
    assert cls is DockerProvider
    opts = cls.options_model.model_validate(spec.provider_options)
    provider = cls(cluster, spec, opts, ProviderContext(state_dir=tmp_path, public_key=key.public))
    assert isinstance(provider, DockerProvider)
    return provider


@pytest.fixture
def cluster(node_image: NodeImage) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        remove_cluster_containers(node_image.engine, name)


def containers_of(engine: DockerEngine, cluster: str) -> list[str]:
    out = engine.run(
        "ps", "-a", "--filter", f"label=targets.cluster={cluster}", "--format", "{{.Names}}"
    ).stdout
    return sorted(out.split())


def wait_running(provider: DockerProvider, count: int) -> list[Node]:
    deadline = time.monotonic() + RUNNING_TIMEOUT
    while True:
        nodes = provider.list_nodes()
        failed = [n for n in nodes if n.state is NodeState.FAILED]
        assert not failed, failed
        if len(nodes) == count and all(n.state is NodeState.RUNNING for n in nodes):
            return nodes
        assert time.monotonic() < deadline, f"nodes not running after {RUNNING_TIMEOUT}s: {nodes}"
        time.sleep(0.2)


def ssh_hostname(node: Node, key: ClusterKey, known_hosts: Path) -> str:
    """Log in with the cluster key, verifying the host key against the provider's."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            node.address,
            port=node.ssh_port,
            username=node.username,
            pkey=key.key,
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
        _, stdout, _ = client.exec_command("hostname")
        return str(stdout.read().decode().strip())
    finally:
        client.close()


def write_known_hosts(path: Path, nodes: list[Node]) -> None:
    path.write_text(
        "".join(f"[{n.address}]:{n.ssh_port} {k}\n" for n in nodes for k in n.host_keys)
    )


def test_two_nodes_run_sshd_with_verified_host_keys(
    tmp_path: Path, cluster: str, cluster_key: ClusterKey, node_image: NodeImage
) -> None:
    provider = make_provider(tmp_path, cluster, cluster_key, node_image.name)
    provider.check()
    started = time.monotonic()
    added = provider.add_nodes(2)
    assert [n.id for n in added] == [provider.node_id(0), provider.node_id(1)]
    assert provider.node_id(0).startswith(f"targets-{cluster}-")
    assert all(n.state in (NodeState.CREATING, NodeState.RUNNING) for n in added)
    nodes = wait_running(provider, 2)
    print(f"2 nodes running after {time.monotonic() - started:.1f}s")

    assert {n.hostname for n in nodes} == {f"{cluster}-0", f"{cluster}-1"}
    assert len({n.ssh_port for n in nodes}) == 2
    for node in nodes:
        assert node.address == "127.0.0.1" and node.internal_address == "127.0.0.1"
        assert node.network_interface == "lo" and node.username == "root"
        assert any(k.startswith("ssh-ed25519 ") for k in node.host_keys), node.host_keys
        assert abs(node.created_at - time.time()) < 120

    known_hosts = tmp_path / "known_hosts"
    write_known_hosts(known_hosts, nodes)
    for node in nodes:
        assert ssh_hostname(node, cluster_key, known_hosts) == node.hostname

    # The other node's keys do not verify this one: the check is real.
    first, second = nodes
    swapped = tmp_path / "swapped"
    swapped.write_text("".join(f"[127.0.0.1]:{first.ssh_port} {k}\n" for k in second.host_keys))
    with pytest.raises(paramiko.SSHException):
        ssh_hostname(first, cluster_key, swapped)

    # Every node resolves every node's name, each to its own loopback alias (MPI).
    for node in nodes:
        for index in (0, 1):
            out = node_image.engine.run("exec", node.id, "getent", "hosts", f"{cluster}-{index}")
            assert out.stdout.split()[0] == name_address(index) == f"127.10.0.{index + 1}"

    provider.remove_nodes([first.id])
    assert containers_of(node_image.engine, cluster) == [second.id]
    provider.remove_nodes([first.id])  # idempotent
    assert [n.id for n in provider.list_nodes()] == [second.id]

    # The free index is reused, with a port no other node has.
    (again,) = provider.add_nodes(1)
    assert again.id == first.id
    assert again.ssh_port != second.ssh_port
    wait_running(provider, 2)

    provider.delete_cluster()
    assert containers_of(node_image.engine, cluster) == []
    provider.delete_cluster()  # idempotent
    provider.close()


def test_mpirun_on_node_0_starts_ranks_on_both_nodes(
    tmp_path: Path, cluster: str, cluster_key: ClusterKey, node_image: NodeImage
) -> None:
    """The node names and addresses suit OpenMPI: mpirun on node 0 reaches node 1 over
    SSH (verified host keys, the cluster key) and puts two ranks on each node."""
    provider = make_provider(tmp_path, cluster, cluster_key, node_image.name)
    provider.add_nodes(2)
    nodes = wait_running(provider, 2)
    config = "".join(
        f"Host {n.hostname}\n  HostName {n.peer_address}\n  Port {n.ssh_port}\n"
        f"  User {n.username}\n  IdentityFile /root/cluster-key\n  IdentitiesOnly yes\n"
        "  UserKnownHostsFile /root/cluster-known-hosts\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        for n in nodes
    )
    known = "".join(f"[{n.peer_address}]:{n.ssh_port} {k}\n" for n in nodes for k in n.host_keys)
    launcher = nodes[0].id
    engine = node_image.engine
    for name, text in (("cluster-ssh-config", config), ("cluster-known-hosts", known)):
        engine.run("exec", "-i", launcher, "sh", "-c", f"cat >/root/{name}", input=text)
    engine.run(
        "exec",
        "-i",
        launcher,
        "sh",
        "-c",
        "umask 077; cat >/root/cluster-key",
        input=cluster_key.private,
    )
    hosts = ",".join(f"{n.hostname}:2" for n in nodes)
    out = engine.run(
        "exec",
        launcher,
        "mpirun",
        "--allow-run-as-root",
        "-np",
        "4",
        "--host",
        hosts,
        "-mca",
        "plm_rsh_agent",
        "ssh -F /root/cluster-ssh-config",
        "-mca",
        "btl_tcp_if_include",
        "lo",
        "-mca",
        "oob_tcp_if_include",
        "lo",
        "sh",
        "-c",
        'echo "$OMPI_COMM_WORLD_RANK/$OMPI_COMM_WORLD_SIZE $(hostname)"',
        timeout=60,
    ).stdout
    ranks = sorted(line.split() for line in out.splitlines() if "/" in line)
    assert ranks == [
        ["0/4", nodes[0].hostname],
        ["1/4", nodes[0].hostname],
        ["2/4", nodes[1].hostname],
        ["3/4", nodes[1].hostname],
    ], out
    provider.delete_cluster()


def test_exited_node_is_failed_with_its_log(
    tmp_path: Path, cluster: str, cluster_key: ClusterKey, node_image: NodeImage
) -> None:
    provider = make_provider(tmp_path, cluster, cluster_key, node_image.name, username="nobody2")
    with pytest.raises(UsageError, match="has no user 'nobody2'"):
        provider.check()
    provider.add_nodes(1)
    deadline = time.monotonic() + 30
    while (node := provider.list_nodes()[0]).state is not NodeState.FAILED:
        assert time.monotonic() < deadline, node
        time.sleep(0.2)
    assert node.message and "no user nobody2" in node.message
    provider.delete_cluster()


def test_image_without_sshd_is_refused(
    tmp_path: Path, cluster: str, cluster_key: ClusterKey, node_image: NodeImage
) -> None:
    provider = make_provider(tmp_path, cluster, cluster_key, BASE_IMAGE)
    with pytest.raises(UsageError) as caught:
        provider.check()
    assert BASE_IMAGE in str(caught.value) and "sshd" in str(caught.value)
    assert "openssh-server" in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_image_is_refused_without_a_pull(
    tmp_path: Path, cluster: str, cluster_key: ClusterKey, node_image: NodeImage
) -> None:
    image = f"targets-no-such-image-{cluster}:latest"
    provider = make_provider(tmp_path, cluster, cluster_key, image)
    started = time.monotonic()
    with pytest.raises(UsageError, match="never pulls") as caught:
        provider.check()
    assert image in str(caught.value)
    with pytest.raises(UsageError, match="never pulls"):
        provider.add_nodes(1)
    # No registry was tried (a pull would time out or fail slowly here).
    assert time.monotonic() - started < 10
    assert containers_of(node_image.engine, cluster) == []


def test_no_engine_is_a_clear_error(tmp_path: Path, cluster_key: ClusterKey) -> None:
    provider = make_provider(
        tmp_path,
        "noengine",
        cluster_key,
        "whatever",
        docker_host=f"unix://{tmp_path}/no-docker.sock",
    )
    with pytest.raises(ConnectionFailed, match="no Docker engine answers at unix://"):
        provider.list_nodes()


@pytest.mark.parametrize(
    ("options", "wrong"),
    [
        ({"volumes": ["relative:/x"]}, "HOST:CONTAINER"),
        ({"volumes": ["/a:/b:rx"]}, "HOST:CONTAINER"),
        ({"username": "Root;"}, "unix user name"),
        ({"environment": {"1A": "x"}}, "name '1A'"),
        ({"network": "bridge"}, "network"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], wrong: str) -> None:
    with pytest.raises(ValueError, match=wrong):
        DockerProviderOptions.model_validate({"image": "x", **options})


def test_cluster_name_must_make_hostnames(tmp_path: Path, cluster_key: ClusterKey) -> None:
    provider = make_provider(tmp_path, "Big_Pool", cluster_key, "whatever")
    with pytest.raises(UsageError, match="valid node hostnames"):
        provider.check()


def test_two_workspaces_may_each_have_a_cluster_of_the_same_name(
    tmp_path: Path, cluster: str, cluster_key: ClusterKey, node_image: NodeImage
) -> None:
    mine = make_provider(tmp_path / "project-a", cluster, cluster_key, node_image.name)
    theirs = make_provider(tmp_path / "project-b", cluster, cluster_key, node_image.name)
    mine.add_nodes(1)
    theirs.add_nodes(1)
    (a,) = wait_running(mine, 1)
    (b,) = wait_running(theirs, 1)
    assert a.id != b.id and a.ssh_port != b.ssh_port
    theirs.delete_cluster()
    assert [n.id for n in mine.list_nodes()] == [a.id]
    assert theirs.list_nodes() == []
