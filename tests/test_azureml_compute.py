"""Azure ML v1 compute-target code with only its imports changed
(``targets.azureml.core.compute``): attach the test sshd as a RemoteCompute, find it,
list it, detach it; bad configurations, unknown host keys and low-priority requests are
refused as ComputeTargetException with nothing written; a docker-provider AmlCompute is
created, scaled and deleted. Same library operations as the CLI, so the CLI sees it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from targets.azureml.core import Workspace
from targets.azureml.core.compute import (
    AmlCompute,
    ComputeTarget,
    DatabricksCompute,
    HDInsightCompute,
    RemoteCompute,
)
from targets.azureml.core.compute_target import ComputeTargetException
from targets.secrets import get_secret
from tests.cluster_nodes import NodeImage, node_image_fixture, remove_cluster_containers  # noqa: F401
from tests.conftest import CLIResult
from tests.dockerd import docker_engine_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

CLI = Callable[..., CLIResult]

CONFIG = {
    "subscription_id": "00000000-1111-2222-3333-444444444444",
    "resource_group": "ml-rg",
    "workspace_name": "ml-ws",
}


def nothing_written(project: Path) -> None:
    assert not (project / ".targets" / "targets.yml").exists()
    assert not (project / ".targets" / "clusters").exists()


def v1_workspace(project: Path, **extra: object) -> Workspace:
    (project / ".azureml").mkdir(exist_ok=True)
    (project / ".azureml" / "config.json").write_text(json.dumps({**CONFIG, **extra}))
    return Workspace.from_config()


def test_from_config_keeps_the_labels_and_opens_the_project(project: Path) -> None:
    (project / "src").mkdir()
    ws = v1_workspace(project)
    assert (ws.subscription_id, ws.resource_group, ws.name) == (
        CONFIG["subscription_id"],
        "ml-rg",
        "ml-ws",
    )
    assert ws.root == project.resolve()
    assert Workspace.from_config(path=str(project / ".azureml" / "config.json")).root == ws.root
    assert ws.cluster_provider == "docker"
    assert ws.compute_targets == {}


def test_remote_compute_with_a_key_is_attached_found_listed_and_detached(
    sshd: SSHServer,
    project: Path,
    cli: CLI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = v1_workspace(project)
    config = RemoteCompute.attach_configuration(
        address=sshd.host, ssh_port=sshd.port, username=sshd.user, private_key_file=str(sshd.key)
    )
    # v1 never asked about host keys: an unknown one is refused, showing its fingerprint.
    with pytest.raises(ComputeTargetException, match="key fingerprint is SHA256:") as caught:
        ComputeTarget.attach(ws, "box", config)
    assert "accept_host_key=True" in str(caught.value)
    assert "TARGETS_ACCEPT_HOST_KEY=1" in str(caught.value)
    nothing_written(project)
    monkeypatch.setenv("TARGETS_ACCEPT_HOST_KEY", "1")
    attached = ComputeTarget.attach(ws, "box", config)
    attached.wait_for_completion(show_output=True)
    assert "Succeeded" in capsys.readouterr().out
    assert isinstance(attached, RemoteCompute)

    found = ComputeTarget(workspace=ws, name="box")
    assert isinstance(found, RemoteCompute) and found.type == "VirtualMachine"
    assert found.address == sshd.host and found.ssh_port == sshd.port
    assert found.get_status() == "Succeeded"
    assert [t.name for t in ComputeTarget.list(ws)] == ["box"]
    assert list(ws.compute_targets) == ["box"]
    # One implementation, two front ends: the CLI sees it and runs on it.
    assert "box" in cli("list").out
    assert cli("run", "-c", "echo from-v1", "--target", "box").out.strip() == "from-v1"
    with pytest.raises(ComputeTargetException, match="already attached"):
        ComputeTarget.attach(ws, "box", config)
    with pytest.raises(ComputeTargetException, match="Try detach"):
        found.delete()

    found.detach()
    with pytest.raises(ComputeTargetException, match="not found") as missing:
        ComputeTarget(workspace=ws, name="box")
    assert missing.value.exit_code == 2
    assert "box" not in cli("list").out


def test_a_password_goes_to_the_keyring_and_nowhere_else(
    sshd: SSHServer, project: Path, cli: CLI, isolated_home: Path
) -> None:
    ws = v1_workspace(project)
    config = RemoteCompute.attach_configuration(
        address=sshd.host, ssh_port=sshd.port, username=sshd.user, password=sshd.password
    )
    assert sshd.password not in repr(config)
    config.accept_host_key = True
    target = ComputeTarget.attach(ws, "pwbox", config)
    assert get_secret(ws.secret_ref("pwbox", "password")) == sshd.password
    secret = sshd.password.encode()
    for path in project.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), f"the password is in {path}"
    assert "password (in keyring)" in cli("show", "pwbox").out
    assert cli("run", "-c", "echo over-password", "--target", "pwbox").code == 0
    target.detach()
    assert get_secret(ws.secret_ref("pwbox", "password")) is None
    assert all(secret not in p.read_bytes() for p in isolated_home.rglob("*") if p.is_file())


def test_hdinsight_takes_the_misspelt_passphrase_of_azures_docs(
    sshd: SSHServer, project: Path, cli: CLI
) -> None:
    ws = v1_workspace(project)
    config = HDInsightCompute.attach_configuration(
        address=sshd.host,
        ssh_port=sshd.port,
        username=sshd.user,
        private_key_file=str(sshd.encrypted_key),
        private_key_phrase=sshd.key_passphrase,
        accept_host_key=True,
    )
    target = ComputeTarget.attach(ws, "hdi", config)
    assert isinstance(target, HDInsightCompute) and target.type == "HDInsight"
    assert get_secret(ws.secret_ref("hdi", "ssh_key_passphrase")) == sshd.key_passphrase
    assert "ssh_key_passphrase (in keyring)" in cli("show", "hdi").out
    with pytest.raises(ComputeTargetException, match="not both"):
        HDInsightCompute.attach_configuration(
            address="h", private_key_passphrase="a", private_key_phrase="b"
        )
    target.detach()
    assert get_secret(ws.secret_ref("hdi", "ssh_key_passphrase")) is None


def test_bad_configurations_are_refused_with_nothing_written(project: Path) -> None:
    ws = v1_workspace(project)
    refused = {
        "--ssh-port: Input should be greater than or equal to 1": (
            "box",
            RemoteCompute.attach_configuration(address="h", ssh_port=0),
        ),
        "no key file at": (
            "box",
            RemoteCompute.attach_configuration(address="h", private_key_file="/no/such/key"),
        ),
        "invalid target name": ("1box", RemoteCompute.attach_configuration(address="h")),
        "reserved for this machine": ("local", RemoteCompute.attach_configuration(address="h")),
        "exactly one of --cluster-id": (
            "dbx",
            DatabricksCompute.attach_configuration(
                resource_group="rg", workspace_name="w", access_token="dapi-x"
            ),
        ),
    }
    for message, (name, config) in refused.items():
        with pytest.raises(ComputeTargetException, match=message) as caught:
            ComputeTarget.attach(ws, name, config)
        assert caught.value.exit_code == 2
    with pytest.raises(ComputeTargetException, match="give the machine's address"):
        RemoteCompute.attach_configuration(username="u")
    with pytest.raises(ComputeTargetException, match="not found"):
        ComputeTarget(workspace=ws, name="nothere")
    nothing_written(project)


def test_a_low_priority_cluster_from_the_docker_provider_is_refused(project: Path) -> None:
    ws = v1_workspace(project, cluster_provider_options={"image": "debian:bookworm"})
    config = AmlCompute.provisioning_configuration(
        vm_size="STANDARD_D2_V2", vm_priority="lowpriority", max_nodes=2
    )
    with pytest.raises(ComputeTargetException, match="docker provider has no low-priority") as e:
        ComputeTarget.create(ws, "cpu-cluster", config)
    assert e.value.exit_code == 2
    with pytest.raises(ComputeTargetException, match="--image"):
        ComputeTarget.create(
            v1_workspace(project), "cpu-cluster", AmlCompute.provisioning_configuration()
        )
    with pytest.raises(ComputeTargetException, match="docker provider of this workspace"):
        AmlCompute.supported_vmsizes(ws)
    nothing_written(project)
    assert get_secret(ws.secret_ref("cpu-cluster", "ssh_private_key")) is None


@pytest.mark.xdist_group("docker")
def test_amlcompute_on_the_docker_provider_is_created_scaled_and_deleted(
    node_image: NodeImage, project: Path, cli: CLI
) -> None:
    name = "c" + uuid.uuid4().hex[:8]
    ws = v1_workspace(project, cluster_provider_options={"image": node_image.name})
    try:
        # The snippet of Azure's docs, with only the imports changed.
        try:
            cpu_cluster = ComputeTarget(workspace=ws, name=name)
        except ComputeTargetException:
            compute_config = AmlCompute.provisioning_configuration(
                vm_size="STANDARD_D2_V2", max_nodes=4, idle_seconds_before_scaledown=120
            )
            cpu_cluster = ComputeTarget.create(ws, name, compute_config)
        cpu_cluster.wait_for_completion(show_output=True)
        assert isinstance(cpu_cluster, AmlCompute) and cpu_cluster.type == "AmlCompute"
        status = cpu_cluster.get_status()
        assert status.current_node_count == 0
        assert status.scale_settings["maxNodeCount"] == 4
        shown = cli("show", name, "-o", "json").json()
        assert isinstance(shown, dict)
        assert shown["kind"] == "cluster" and shown["options"]["max_nodes"] == 4
        cpu_cluster.update(max_nodes=2)
        assert ComputeTarget(ws, name).get_status().scale_settings["maxNodeCount"] == 2
        with pytest.raises(ComputeTargetException, match="Try delete"):
            cpu_cluster.detach()
        cpu_cluster.delete()
        with pytest.raises(ComputeTargetException, match="not found"):
            ComputeTarget(ws, name)
        assert name not in cli("list").out
    finally:
        cli("delete", name, "--force")
        remove_cluster_containers(node_image.engine, name)


def test_the_remote_vm_example_runs_with_only_its_imports_changed(
    sshd: SSHServer, project: Path
) -> None:
    example = Path(__file__).parent.parent / "examples/azureml-v1/compute/attach_remote_vm.py"
    v1_workspace(project)
    env = {
        **os.environ,
        "MY_VM_ADDRESS": sshd.host,
        "MY_VM_PORT": str(sshd.port),
        "MY_VM_USER": sshd.user,
        "MY_VM_KEY": str(sshd.key),
        "TARGETS_ACCEPT_HOST_KEY": "1",
    }
    ran = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert "Succeeded\nSucceeded\n['attach-dsvm']" in ran.stdout
    again = subprocess.run(
        [sys.executable, str(example)],
        env={**env, "DETACH": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "found existing: attach-dsvm" in again.stdout
    assert "attach-dsvm" not in Workspace.from_config().targets()
