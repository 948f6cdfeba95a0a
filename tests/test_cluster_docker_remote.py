"""A docker-provider cluster on an engine reached over SSH (``docker_host: ssh://...``):
the Docker engine of the "big machine" is driven through the test sshd (docker's own
``ssh ... docker system dial-stdio``), and the nodes' sshd, on that machine's loopback, is
reached through the same host as a jump (``direct-tcpip``), never directly.

The big machine is this one (the test sshd's user may use Docker), so the test also
proves the path: while a run holds its nodes, every connection to a node's port from
outside the nodes belongs to the jump host's sshd, none to a process of ours. The local
socket is made unusable for the CLI (``DOCKER_HOST`` points nowhere), so the engine can
only have been reached through ``docker_host``."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_nodes import NodeImage, node_image_fixture, remove_cluster_containers  # noqa: F401
from tests.conftest import wait_until
from tests.dockerd import docker_engine_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

pytestmark = pytest.mark.xdist_group("docker")

NO_LOCAL_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}

HELLO = """\
import os, socket, time
rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
print(f"hello from rank {rank} of {os.environ['OMPI_COMM_WORLD_SIZE']} on {socket.gethostname()}",
      flush=True)
# Rank 0 holds the run until the test has looked at it (the gate is a folder of this
# machine mounted on the nodes; at most a minute).
gate = os.path.join(os.environ["GATE"], "open")
for _ in range(600):
    if rank != 0 or os.path.exists(gate):
        break
    time.sleep(0.1)
"""


@pytest.fixture
def big_machine(sshd: SSHServer, isolated_home: Path, tmp_path: Path, monkeypatch) -> str:
    """The test sshd as a remote Docker host named `bighost` in ~/.ssh/config, its host key
    in ~/.ssh/known_hosts (checked strictly, by ssh and by targets alike)."""
    subprocess.run(["usermod", "-aG", "docker", sshd.user], check=True)
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "known_hosts").write_text(sshd.known_hosts_line())
    config = ssh_dir / "config"
    config.write_text(
        "Host bighost\n"
        f"  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {ssh_dir / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
    )
    config.chmod(0o600)
    # OpenSSH reads ~/.ssh from the passwd entry, not $HOME: an `ssh` first on PATH points
    # it at the test's config (docker's dial-stdio runs `ssh` from PATH).
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    real_ssh = shutil.which("ssh")
    assert real_ssh, "the OpenSSH client is needed"
    (wrapper / "ssh").write_text(f'#!/bin/sh\nexec {real_ssh} -F "{config}" "$@"\n')
    (wrapper / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper}:{Path(real_ssh).parent}:/usr/bin:/bin")
    return "bighost"


@pytest.fixture
def remote_cli(cli) -> Callable[..., Any]:
    def run(*args: str) -> Any:
        return cli(*args, env=NO_LOCAL_ENGINE)

    return run


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    folder = tmp_path / "gate"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


@pytest.fixture
def remote_cluster(
    big_machine: str, node_image: NodeImage, project: Path, remote_cli, gate: Path
) -> Iterator[str]:
    name = "r" + uuid.uuid4().hex[:8]
    created = remote_cli(
        "create", name, "--type", "cluster", "--provider", "docker",
        "--image", node_image.name, "--docker-host", f"ssh://{big_machine}",
        "--max-nodes", "2", "--idle-seconds-before-scaledown", "0",
        "--volumes", f"{gate}:{gate}:ro",
    )  # fmt: skip
    assert created.code == 0, created
    yield name
    remote_cli("delete", name, "--force")
    remove_cluster_containers(node_image.engine, name)


def connections_to(ports: set[int]) -> list[str]:
    """The processes holding the client end of TCP connections to these ports."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    owners = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4 or int(fields[3].rsplit(":", 1)[1]) not in ports:
            continue  # fields: Recv-Q Send-Q Local Peer [Process]
        match = re.search(r'users:\(\("([^"]+)"', line)
        owners.append(match.group(1) if match else "?")
    return owners


def test_a_cluster_on_an_engine_reached_over_ssh_runs_mpi_through_the_jump(
    remote_cluster: str, node_image: NodeImage, project: Path, write, remote_cli, gate: Path
) -> None:
    write(project / "hello.py", HELLO)
    write(
        project / "mpi.yml",
        f"script: hello.py\ntarget: {remote_cluster}\ncommunicator: OpenMpi\nnode_count: 2\n"
        f"environment_variables:\n  GATE: {gate}\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n"
        "    interpreter_path: python3\n",
    )
    started = remote_cli("run", "mpi.yml", "--detach", "-o", "json")
    assert started.code == 0, started
    run_id = started.json()["id"]

    def busy_nodes() -> list[dict[str, Any]] | None:
        shown = remote_cli("runs", "show", run_id, "-o", "json").json()
        nodes = remote_cli("show", remote_cluster, "-o", "json").json()["status"]["nodes"]
        mine = [n for n in nodes if n["run"] == run_id]
        return mine if shown["status"] == "Running" and len(mine) == 2 else None

    try:
        nodes = wait_until(busy_nodes, timeout=120, what="the run to start on 2 nodes")
    except AssertionError as exc:
        shown = remote_cli("show", remote_cluster).out
        logs = remote_cli("runs", "logs", run_id).out
        raise AssertionError(f"{exc}\n{shown}\n{logs}") from None
    assert all(n["via"] == "bighost" for n in nodes), nodes
    ports = {int(n["address"].rsplit(":", 1)[1]) for n in nodes}

    # The jump host's session process is `sshd` (`sshd-session` in OpenSSH 9.8 and later).
    def through_jump() -> list[str] | None:
        seen = connections_to(ports)
        return seen if any(o.startswith("sshd") for o in seen) else None

    owners = wait_until(
        through_jump,
        timeout=10,
        what="connections to the nodes through the jump host",
    )
    # node 0's mpirun reaches node 1 with `ssh`; everything else comes through the jump.
    assert not [o for o in owners if not o.startswith("ssh")], owners

    table = remote_cli("show", remote_cluster).out
    assert "via bighost" in table, table
    (gate / "open").touch()

    ended = wait_until(
        lambda: (
            (s := remote_cli("runs", "show", run_id, "-o", "json").json()["status"])
            in ("Completed", "Failed", "Canceled")
            and s
        ),
        timeout=120,
        what="the run to end",
    )
    logs = remote_cli("runs", "logs", run_id).out
    assert ended == "Completed", logs
    for rank in (0, 1):
        assert f"hello from rank {rank} of 2" in logs, logs
    wait_until(
        lambda: remote_cli("show", remote_cluster, "-o", "json").json()["status"]["nodes"] == [],
        timeout=60,
        what="scale-down to 0",
    )
    out = node_image.engine.run(
        "ps", "-aq", "--filter", f"label=targets.cluster={remote_cluster}"
    ).stdout
    assert out.split() == []


def test_an_engine_on_another_machine_over_tcp_is_refused(
    node_image: NodeImage, project: Path, cli
) -> None:
    result = cli(
        "create", "far", "--type", "cluster", "--provider", "docker",
        "--image", node_image.name, "--docker-host", "tcp://203.0.113.7:2375", "--max-nodes", "1",
    )  # fmt: skip
    assert result.code == 2, result
    assert "not reached over SSH" in result.err and "ssh://USER@HOST" in result.err, result.err
    assert [t["name"] for t in cli("list", "-o", "json").json()] == ["local"]
