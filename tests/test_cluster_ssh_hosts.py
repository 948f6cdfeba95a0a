"""A distributed run on a list of SSH machines you attached (`--provider ssh`): two
machines (containers with sshd, started here as plain SSH hosts), attached as `vm` targets
with their own key and verified host keys, made the nodes of a cluster, and an MPI hello
across both. The cluster adds its own key to each machine so mpirun on the first can reach
the second, and takes it out again when the cluster is deleted."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.clusters.keys import generate_key_pair
from targets.clusters.model import ClusterSpec
from targets.clusters.provider import Node, NodeState, ProviderContext
from targets.clusters.providers.docker import DockerProvider, DockerProviderOptions
from tests.cluster_nodes import NodeImage, node_image_fixture, remove_cluster_containers  # noqa: F401
from tests.conftest import wait_for_status, wait_until
from tests.dockerd import docker_engine_fixture  # noqa: F401
from tests.sshd import skip_or_fail

pytestmark = pytest.mark.xdist_group("docker")


@pytest.fixture
def machines(node_image: NodeImage, tmp_path: Path) -> Iterator[tuple[list[Node], Path]]:
    """Two SSH machines and the private key file that logs in to them."""
    name = "h" + uuid.uuid4().hex[:8]
    keys = generate_key_pair("the-user's-own-key")
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(keys.private)
    os.chmod(key_file, 0o600)
    provider = DockerProvider(
        name,
        ClusterSpec(provider="docker", max_nodes=2),
        DockerProviderOptions(image=node_image.name),
        ProviderContext(state_dir=tmp_path / "machines", public_key=keys.public),
    )
    try:
        provider.add_nodes(2)
        nodes: list[Node] = []

        def running() -> bool:
            nodes[:] = provider.list_nodes()
            return len(nodes) == 2 and all(n.state is NodeState.RUNNING for n in nodes)

        wait_until(running, timeout=60, what="two SSH machines")
        yield nodes, key_file
    finally:
        provider.close()
        remove_cluster_containers(node_image.engine, name)


def test_an_mpi_run_across_two_attached_machines(
    machines: tuple[list[Node], Path], project: Path, write, cli
) -> None:
    nodes, key_file = machines
    for i, node in enumerate(nodes):
        attached = cli(
            "attach", f"box{i}", "--address", node.address, "--ssh-port", str(node.ssh_port),
            "--username", node.username, "--ssh-key", str(key_file), "--accept-host-key",
        )  # fmt: skip
        assert attached.code == 0, attached
    created = cli(
        "create", "lab", "--type", "cluster", "--provider", "ssh",
        "--hosts", "box0,box1", "--max-nodes", "2",
    )  # fmt: skip
    assert created.code == 0, created
    write(
        project / "hello.py",
        "import os, socket\n"
        "print('hello from rank', os.environ['OMPI_COMM_WORLD_RANK'], 'on',\n"
        "      socket.gethostname(), flush=True)\n",
    )
    write(
        project / "mpi.yml",
        "script: hello.py\ntarget: lab\ncommunicator: OpenMpi\nnode_count: 2\n"
        "mpi:\n  process_count_per_node: 1\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n"
        "    interpreter_path: python3\n",
    )
    result = cli("run", "mpi.yml")
    assert result.code == 0, result
    assert f"hello from rank 0 on {nodes[0].hostname}" in result.out, result.out
    assert f"hello from rank 1 on {nodes[1].hostname}" in result.out, result.out

    # Deleting the cluster takes its key out of the machines again; they stay attached.
    public = cli("show", "lab", "-o", "json").json()["facts"]["public_key"]
    assert cli("delete", "lab").code == 0
    for i in range(2):
        keys = cli("run", "-c", "cat ~/.ssh/authorized_keys", "--target", f"box{i}")
        assert keys.code == 0, keys
        assert public.split()[1] not in keys.out and "the-user's-own-key" in keys.out


def test_a_machine_that_stops_answering_loses_its_run(
    machines: tuple[list[Node], Path],
    node_image: NodeImage,
    project: Path,
    write,
    cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TARGETS_NODE_UNREACHABLE_SECONDS", "3")  # for the reconcile process
    nodes, key_file = machines
    node = nodes[0]
    attached = cli(
        "attach", "box0", "--address", node.address, "--ssh-port", str(node.ssh_port),
        "--username", node.username, "--ssh-key", str(key_file), "--accept-host-key",
    )  # fmt: skip
    assert attached.code == 0, attached
    created = cli(
        "create", "lab", "--type", "cluster", "--provider", "ssh", "--hosts", "box0",
        "--max-nodes", "1",
    )  # fmt: skip
    assert created.code == 0, created
    write(project / "long.py", "import time\nprint('working', flush=True)\ntime.sleep(300)\n")
    write(
        project / "long.yml",
        "script: long.py\ntarget: lab\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n"
        "    interpreter_path: python3\n",
    )
    started = cli("run", "long.yml", "--detach", "-o", "json")
    assert started.code == 0, started
    run_id = started.json()["id"]
    wait_for_status(cli, run_id, "Running", timeout=60, what="the run to start")
    # The machine is still there, but nothing on it answers any more: its processes are
    # stopped (the open connection goes silent) and new connections to its port are
    # dropped (as a machine that froze or fell off the network).
    import shutil
    import subprocess

    iptables = shutil.which("iptables") or "/usr/sbin/iptables"
    if os.geteuid() != 0 or not os.path.exists(iptables):
        skip_or_fail("needs root and iptables to make a machine unreachable")
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(node.ssh_port), "-j", "DROP"]
    subprocess.run([iptables, "-I", *rule], check=True)
    node_image.engine.run("exec", node.id, "sh", "-c", "kill -STOP -1")
    try:
        wait_for_status(cli, run_id, "Failed", timeout=90, what="the run to fail")
        message = cli("runs", "show", run_id, "-o", "json").json()["message"]
        assert "box0" in message and "unreachable" in message, message
    finally:
        subprocess.run([iptables, "-D", *rule], check=False)
        node_image.engine.run("exec", node.id, "sh", "-c", "kill -CONT -1", check=False)
        cli("delete", "lab", "--force")
