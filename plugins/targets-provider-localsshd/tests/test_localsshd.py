"""The localsshd provider passes the provider contract suite, and reports what a cluster
needs to know: a node whose sshd died is failed (with sshd's words), a missing sshd is
refused before anything is made."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from targets_localsshd import LocalSSHDOptions, LocalSSHDProvider

from targets.clusters.model import ClusterSpec
from targets.clusters.provider import NodeState, ProviderContext
from targets.errors import UsageError
from targets.testing import NodeProviderContract, skip_or_fail, wait_for_nodes


def sshd_missing() -> str | None:
    if not os.access("/usr/sbin/sshd", os.X_OK):
        return "OpenSSH server is not installed: apt-get install openssh-server"
    return None


@pytest.fixture(autouse=True)
def _needs_sshd() -> None:
    reason = sshd_missing()
    if reason:
        skip_or_fail(reason)


class TestLocalSSHDContract(NodeProviderContract):
    provider_name = "localsshd"
    ready_timeout = 30


def make(tmp_path: Path, **options: str) -> LocalSSHDProvider:
    spec = ClusterSpec(provider="localsshd", max_nodes=2)
    context = ProviderContext(state_dir=tmp_path / "state", public_key="ssh-ed25519 AAAA x")
    return LocalSSHDProvider("lab", spec, LocalSSHDOptions(**options), context)


def test_a_node_whose_sshd_died_is_failed_with_the_reason(tmp_path: Path) -> None:
    provider = make(tmp_path)
    try:
        (node,) = provider.add_nodes(1)
        wait_for_nodes(provider, lambda n: n[0].state is NodeState.RUNNING, 30, "a node")
        pid = int((tmp_path / "state" / "nodes" / node.id / "sshd.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        (shown,) = provider.list_nodes()
        assert shown.id == node.id and shown.state is NodeState.FAILED, shown
        assert "the node's sshd is gone" in (shown.message or "")
        assert f"Server listening on 127.0.0.1 port {node.ssh_port}" in (shown.message or "")
    finally:
        provider.delete_cluster()
    assert provider.list_nodes() == []


def test_a_missing_sshd_is_refused_by_check(tmp_path: Path) -> None:
    provider = make(tmp_path, sshd=str(tmp_path / "no-sshd"))
    with pytest.raises(UsageError) as caught:
        provider.check()
    assert f"no OpenSSH server at {tmp_path / 'no-sshd'}" in str(caught.value)
    assert "provider option sshd" in str(caught.value)


def test_targets_create_refuses_a_missing_sshd_and_writes_nothing(
    cli, project: Path, tmp_path: Path
) -> None:
    created = cli(
        "create", "lab", "--type", "cluster", "--provider", "localsshd",
        "--sshd", str(tmp_path / "no-sshd"), "--max-nodes", "1",
    )  # fmt: skip
    assert created.code == 2, created
    assert "no OpenSSH server at" in created.err
    assert "lab" not in cli("list").out
