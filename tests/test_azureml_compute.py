"""Azure ML v1 compute-target code with only its imports changed
(``targets.azureml.core.compute``): attach the test sshd as a RemoteCompute, find it,
list it, detach it; bad configurations, unknown host keys and low-priority requests are
refused as ComputeTargetException with nothing written; a docker-provider AmlCompute is
created, scaled and deleted. Same library operations as the CLI, so the CLI sees it all."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from targets import Experiment, RunConfiguration, ScriptRunConfig
from targets.azureml.core import Workspace
from targets.azureml.core.compute import (
    AmlCompute,
    ComputeTarget,
    DatabricksCompute,
    HDInsightCompute,
    RemoteCompute,
    RemoteComputeAttachConfiguration,
)
from targets.azureml.core.compute_target import ComputeTargetException
from targets.errors import UsageError
from targets.runconfig.model import DatabricksSection
from targets.secrets import get_secret
from tests.cluster_nodes import NodeImage, node_image_fixture, remove_cluster_containers  # noqa: F401
from tests.conftest import CLIResult
from tests.databricks_emulator import DatabricksEmulator
from tests.dockerd import docker_engine_fixture  # noqa: F401
from tests.spark_fixtures import head_node_spark_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

CLI = Callable[..., CLIResult]

CONFIG = {
    "subscription_id": "00000000-1111-2222-3333-444444444444",
    "resource_group": "ml-rg",
    "workspace_name": "ml-ws",
}


def key_config(sshd: SSHServer) -> RemoteComputeAttachConfiguration:
    return RemoteCompute.attach_configuration(
        address=sshd.host, ssh_port=sshd.port, username=sshd.user, private_key_file=str(sshd.key)
    )


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
    # A compute target object is accepted where v1 takes one (it reads as its name).
    assert ScriptRunConfig(compute_target=found).run_config.target == "box"
    assert [t.name for t in ComputeTarget.list(ws)] == ["box"]
    assert list(ws.compute_targets) == ["box"]
    # One implementation, two front ends: the CLI sees it and runs on it.
    assert "box" in cli("list").out
    assert cli("run", "-c", "echo from-v1", "--target", "box").out.strip() == "from-v1"
    with pytest.raises(ComputeTargetException, match="already attached"):
        ComputeTarget.attach(ws, "box", config)
    # Ours: update what is given, probed again as `targets update` does.
    assert isinstance(found, RemoteCompute)
    found.update(password=sshd.password)
    assert get_secret(ws.secret_ref("box", "password")) == sshd.password
    assert "password (in keyring)" in cli("show", "box").out
    with pytest.raises(ComputeTargetException, match="greater than or equal to 1") as bad:
        found.update(ssh_port=0)
    assert bad.value.exit_code == 2
    assert ComputeTarget(ws, "box").options["ssh_port"] == sshd.port
    with pytest.raises(ComputeTargetException, match="nothing to change"):
        found.update()
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
    sshd: SSHServer, project: Path, cli: CLI, head_node_spark: Path
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
        "one of --cluster-id ID or --new-cluster SPEC": (
            "dbx",
            DatabricksCompute.attach_configuration(
                resource_group="rg",
                workspace_name="w",
                access_token="dapi-x",
                cluster_id="c",
                new_cluster="spark_version=15.4.x-scala2.12,node_type_id=n,num_workers=1",
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
    # No node image: the error names the config.json setting, not a CLI option.
    no_image = r"(?s)docker provider.*image: Field required"
    with pytest.raises(ComputeTargetException, match=no_image) as e:
        ComputeTarget.create(
            v1_workspace(project), "cpu-cluster", AmlCompute.provisioning_configuration()
        )
    assert e.value.exit_code == 2
    assert '"cluster_provider_options" in .azureml/config.json' in str(e.value)
    with pytest.raises(ComputeTargetException, match="az vm list-sizes") as azure:
        AmlCompute.supported_vmsizes(v1_workspace(project, cluster_provider="azure"))
    assert azure.value.exit_code == 2
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


# -- AmlCompute.supported_vmsizes ------------------------------------------------------------


@pytest.mark.xdist_group("docker")
def test_supported_vmsizes_of_the_docker_provider_is_the_engines_machine(
    node_image: NodeImage, project: Path
) -> None:
    ws = v1_workspace(project, cluster_provider_options={"image": node_image.name})
    facts = node_image.engine.run("info", "--format", "{{.NCPU}} {{.MemTotal}}").stdout.split()
    sizes = AmlCompute.supported_vmsizes(ws)
    assert [s["name"] for s in sizes] == ["container"]
    (size,) = sizes
    assert size["vCPUs"] == int(facts[0])
    assert size["memoryGB"] == round(int(facts[1]) / 1024**3, 1)
    assert size["gpus"] == 0 and size["lowPriorityCapable"] is False
    assert "no limits are set" in size["description"]
    # Without an image in config.json the engine still answers (no image is needed to list).
    assert AmlCompute.supported_vmsizes(v1_workspace(project))[0]["vCPUs"] == int(facts[0])
    nothing_written(project)


def test_supported_vmsizes_of_the_ssh_provider_are_its_machines(
    sshd: SSHServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARGETS_ACCEPT_HOST_KEY", "1")
    ws = v1_workspace(project, cluster_provider="ssh", cluster_provider_options={"hosts": ["n1"]})
    ComputeTarget.attach(
        ws,
        "n1",
        key_config(sshd),
    )
    (size,) = AmlCompute.supported_vmsizes(ws)
    # The test sshd is this machine: the probe at attach saw its cores.
    assert size["name"] == "n1" and size["vCPUs"] == os.cpu_count()
    assert isinstance(size["memoryGB"], float) and size["memoryGB"] > 0
    missing = v1_workspace(project, cluster_provider="ssh")
    with pytest.raises(ComputeTargetException, match="hosts are not set") as caught:
        AmlCompute.supported_vmsizes(missing)
    assert caught.value.exit_code == 2


# -- Workspace.get and write_config ----------------------------------------------------------


def test_workspace_get_finds_the_config_that_names_it_and_write_config_round_trips(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = v1_workspace(project, cluster_provider_options={"image": "img"})
    got = Workspace.get("ml-ws", subscription_id=CONFIG["subscription_id"])
    assert (got.root, got.name, got.resource_group) == (ws.root, "ml-ws", "ml-rg")
    assert got.cluster_provider_options == {"image": "img"}
    with pytest.raises(UsageError, match="no workspace named 'other'") as caught:
        Workspace.get("other")
    assert "names workspace 'ml-ws'" in str(caught.value) and caught.value.exit_code == 2
    with pytest.raises(UsageError, match="no workspace named 'ml-ws'"):
        Workspace.get("ml-ws", resource_group="another-rg")

    elsewhere = tmp_path / "copy"
    written = ws.write_config(path=elsewhere)
    assert written == elsewhere / ".azureml" / "config.json"
    again = Workspace.from_config(path=str(elsewhere))
    assert (again.subscription_id, again.resource_group, again.name) == (
        CONFIG["subscription_id"],
        "ml-rg",
        "ml-ws",
    )
    assert again.cluster_provider_options == {"image": "img"}
    assert ws.write_config(path=elsewhere, file_name="other.json").name == "other.json"
    with pytest.raises(UsageError, match="is a path"):
        ws.write_config(path=elsewhere, file_name="../x.json")

    # No config.json: the nearest targets workspace, by its folder's name.
    (project / ".azureml" / "config.json").unlink()
    assert Workspace.get(project.name).root == project.resolve()
    with pytest.raises(UsageError, match="nearest targets workspace"):
        Workspace.get("not-" + project.name)


# -- run-based compute: run_config.target = "amlcompute" -------------------------------------

EXAMPLES = Path(__file__).parent.parent / "examples/azureml-v1/compute"


def names(cli: CLI) -> list[str]:
    listed = cli("list", "-o", "json").json()
    assert isinstance(listed, list)
    return [t["name"] for t in listed]


def cluster_containers(node_image: NodeImage) -> list[str]:
    names = node_image.engine.run("ps", "-a", "--format", "{{.Names}}", check=False).stdout
    return [n for n in names.split() if "-aml-" in n]


@pytest.mark.xdist_group("docker")
def test_run_based_amlcompute_makes_a_cluster_for_the_run_and_deletes_it_after_the_script_exits(
    node_image: NodeImage, project: Path, cli: CLI
) -> None:
    from targets.azureml.core.compute.run_based import MADE_BY, ensure_run_based
    from tests.conftest import wait_until

    v1_workspace(project, cluster_provider_options={"image": node_image.name})
    (project / "train.py").write_text("import socket\nprint('trained on', socket.gethostname())\n")
    before = set(cluster_containers(node_image))
    try:
        ran = subprocess.run(
            [sys.executable, str(EXAMPLES / "run_based_amlcompute.py")],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert ran.returncode == 0, ran.stderr
        run_id = ran.stdout.strip().splitlines()[-1]
        # The template v1 never made was made from config.json's provider, and kept.
        template = Workspace.from_config().target_record("amlcompute")
        assert template.options["run_based"] is True and template.facts["made_by"] == MADE_BY
        assert template.options["provider_options"] == {"image": node_image.name}

        # Nobody follows the run (no client reads it): the cluster's own reconcile
        # process runs it and deletes the cluster when it has ended.
        wait_until(
            lambda: names(cli) == ["local", "amlcompute"],
            timeout=240,
            what="the run's own cluster to be deleted",
        )
        wait_until(
            lambda: set(cluster_containers(node_image)) <= before,
            timeout=60,
            what="the run's node containers to go",
        )
        shown = cli("runs", "show", run_id, "-o", "json").json()
        assert isinstance(shown, dict) and shown["status"] == "Completed", shown
        assert "trained on aml-" in cli("runs", "logs", run_id).out
        # The template stays; a changed provider setting in config.json makes it again.
        changed = {"image": node_image.name, "username": "root"}
        v1_workspace(project, cluster_provider_options=changed)
        remade = ensure_run_based(Workspace.from_config())
        assert remade.options["provider_options"]["username"] == "root"
        # New settings the provider refuses leave the template as it was.
        v1_workspace(project, cluster_provider_options={"image": "targets-no-such-image:0"})
        with pytest.raises(UsageError, match="not in the Docker engine"):
            ensure_run_based(Workspace.from_config())
        kept = Workspace.from_config().target_record("amlcompute")
        assert kept.options["provider_options"] == changed
    finally:
        for name in names(cli):
            if name != "local":
                cli("delete", name, "--force")
        for name in set(cluster_containers(node_image)) - before:
            node_image.engine.run("rm", "-f", name, check=False)


def test_run_based_amlcompute_is_refused_clearly_when_the_provider_settings_are(
    project: Path, sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = v1_workspace(project)  # docker, with no image
    (project / "train.py").write_text("print('never')\n")
    run_config = RunConfiguration()
    run_config.target = "amlcompute"
    src = ScriptRunConfig(source_directory=str(project), script="train.py", run_config=run_config)
    with pytest.raises(UsageError, match=r"run_config\.target = 'amlcompute'") as caught:
        Experiment(ws, "rb").submit(src)
    assert "cluster_provider_options" in (caught.value.hint or "")
    nothing_written(project)
    # The name taken by another kind of target is refused, naming it.
    monkeypatch.setenv("TARGETS_ACCEPT_HOST_KEY", "1")
    ComputeTarget.attach(
        ws,
        "amlcompute",
        key_config(sshd),
    )
    with pytest.raises(UsageError, match="is a vm target"):
        Experiment(ws, "rb").submit(src)


# -- DatabricksCompute against the Databricks emulator ---------------------------------------

DBX_TOKEN = "dapi-test-0123456789abcdef"
DBX_CLUSTER = "0123-456789-abcde"


@pytest.fixture
def databricks(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, DatabricksEmulator]]:
    """The Databricks emulator, found by name through the ARM emulator (as Azure ML v1
    attaches it: resource group and workspace name in the subscription of config.json)."""
    from tests.azure_arm_emulator import ArmEmulator, fake_az

    arm_token = "arm-token-from-az-login"
    with DatabricksEmulator(token=DBX_TOKEN) as dbx:
        found = {(CONFIG["subscription_id"], "dbx-rg", "dbx-ws"): dbx.host.removeprefix("http://")}
        with ArmEmulator(arm_token, found) as arm:
            monkeypatch.setenv("TARGETS_AZURE_RESOURCE_MANAGER", arm.url)
            monkeypatch.setenv(
                "PATH", f"{fake_az(tmp_path / 'bin', arm_token)}:{os.environ['PATH']}"
            )
            yield v1_workspace(project), dbx


def submitted_tasks(dbx: DatabricksEmulator) -> list[dict[str, object]]:
    return [body["tasks"][0] for _, path, body in dbx.calls if path.endswith("/jobs/runs/submit")]


def databricks_run_config(cluster: dict[str, object] | None) -> RunConfiguration:
    run_config = RunConfiguration()
    run_config.target = "dbx"
    run_config.environment.python.user_managed_dependencies = True
    if cluster is not None:
        run_config.environment.databricks = DatabricksSection(cluster=cluster)
    return run_config


def test_databricks_attach_from_the_v1_docs_needs_a_cluster_per_run(
    databricks: tuple[Workspace, DatabricksEmulator], project: Path, cli: CLI
) -> None:
    ws, dbx = databricks
    # Azure's documented call, unchanged: no cluster (v1 leaves that to each run/step).
    attach_config = DatabricksCompute.attach_configuration(
        resource_group="dbx-rg", workspace_name="dbx-ws", access_token=DBX_TOKEN
    )
    databricks_compute = ComputeTarget.attach(ws, "dbx", attach_config)
    databricks_compute.wait_for_completion(True)
    assert isinstance(databricks_compute, DatabricksCompute)
    assert databricks_compute.type == "Databricks"
    assert [t.name for t in ComputeTarget.list(ws)] == ["dbx"]
    assert get_secret(ws.secret_ref("dbx", "token")) == DBX_TOKEN
    for path in project.rglob("*"):
        if path.is_file():
            assert DBX_TOKEN.encode() not in path.read_bytes(), path
    shown = cli("show", "dbx", "-o", "json").json()
    assert isinstance(shown, dict) and shown["facts"]["host"] == dbx.host

    (project / "train.py").write_text("import sys\nprint('on databricks', sys.argv[1:])\n")
    experiment = Experiment(ws, "dbx-runs")

    def script(cluster: dict[str, object] | None) -> ScriptRunConfig:
        return ScriptRunConfig(
            source_directory=str(project),
            script="train.py",
            arguments=["--alpha", "0.5"],
            run_config=databricks_run_config(cluster),
        )

    # A run that names no cluster is refused before anything is sent, saying how.
    with pytest.raises(UsageError, match="attached without a cluster") as caught:
        experiment.submit(script(None))
    assert "environment.databricks.cluster" in (caught.value.hint or "")
    assert submitted_tasks(dbx) == []

    # v1's DatabricksCluster names: an existing cluster, then a new one per run.
    run = experiment.submit(script({"existing_cluster_id": DBX_CLUSTER}))
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Completed"
    assert "on databricks ['--alpha', '0.5']" in cli("runs", "logs", run.id).out
    new_cluster = {"spark_version": "15.4.x-scala2.12", "node_type": "Standard_DS3_v2"}
    run = experiment.submit(script({**new_cluster, "num_workers": 1}))
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Completed"
    tasks = submitted_tasks(dbx)
    assert tasks[0]["existing_cluster_id"] == DBX_CLUSTER
    assert tasks[1]["new_cluster"] == {
        "spark_version": "15.4.x-scala2.12",
        "node_type_id": "Standard_DS3_v2",
        "num_workers": 1,
    }
    with pytest.raises(UsageError, match="min_workers and max_workers together"):
        experiment.submit(script({**new_cluster, "min_workers": 1}))
    assert len(submitted_tasks(dbx)) == 2

    databricks_compute.detach()
    assert get_secret(ws.secret_ref("dbx", "token")) is None


def test_databricks_attach_with_a_cluster_and_a_refused_token(
    databricks: tuple[Workspace, DatabricksEmulator], project: Path, cli: CLI
) -> None:
    ws, dbx = databricks
    refused = DatabricksCompute.attach_configuration(
        resource_group="dbx-rg",
        workspace_name="dbx-ws",
        access_token="dapi-wrong",
        cluster_id=DBX_CLUSTER,
    )
    with pytest.raises(ComputeTargetException, match="refused the token") as caught:
        ComputeTarget.attach(ws, "dbx", refused)
    assert caught.value.exit_code == 1
    assert "dbx" not in ws.targets()
    # Ours: a cluster for every run, given at attach (the CLI's --cluster-id).
    config = DatabricksCompute.attach_configuration(
        resource_id=f"/subscriptions/{CONFIG['subscription_id']}/resourceGroups/dbx-rg/"
        "providers/Microsoft.Databricks/workspaces/dbx-ws",
        access_token=DBX_TOKEN,
        cluster_id=DBX_CLUSTER,
    )
    target = ComputeTarget.attach(ws, "dbx", config)
    assert target.options["cluster_id"] == DBX_CLUSTER
    (project / "t.py").write_text("print('attached with a cluster')\n")
    ran = cli("run", "t.py", "--target", "dbx")
    assert ran.code == 0 and "attached with a cluster" in ran.out, ran
    assert submitted_tasks(dbx)[0]["existing_cluster_id"] == DBX_CLUSTER


def test_the_databricks_example_attaches_as_documented_and_runs_on_a_named_cluster(
    databricks: tuple[Workspace, DatabricksEmulator], project: Path
) -> None:
    ws, dbx = databricks
    (project / "train.py").write_text("print('example on databricks')\n")
    env = {
        **os.environ,
        "AML_DATABRICKS_COMPUTE_NAME": "dbx",
        "AML_DATABRICKS_RESOURCE_GROUP": "dbx-rg",
        "AML_DATABRICKS_WORKSPACE": "dbx-ws",
        "AML_DATABRICKS_ACCESS_TOKEN": DBX_TOKEN,
        "AML_DATABRICKS_CLUSTER_ID": DBX_CLUSTER,
    }
    ran = subprocess.run(
        [sys.executable, str(EXAMPLES / "attach_databricks.py")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Succeeded\n['dbx']" in ran.stdout
    assert "example on databricks" in ran.stdout
    assert submitted_tasks(dbx)[0]["existing_cluster_id"] == DBX_CLUSTER
    assert isinstance(ComputeTarget(ws, "dbx"), DatabricksCompute)


# -- the other compute examples, run as a user runs them ------------------------------------


def run_example(
    script: str, project: Path, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def files_holding(secret: str, *folders: Path) -> list[Path]:
    """The files under ``folders``, other than the keyring's own, that hold ``secret``."""
    import keyring

    store = getattr(keyring.get_keyring(), "file_path", None)
    return [
        path
        for folder in folders
        for path in folder.rglob("*")
        if path.is_file() and str(path) != store and secret.encode() in path.read_bytes()
    ]


def test_the_password_example_attaches_and_keeps_the_password_in_the_keyring_only(
    sshd: SSHServer, project: Path, cli: CLI, isolated_home: Path
) -> None:
    ws = v1_workspace(project)
    env = {
        "MY_VM_ADDRESS": sshd.host,
        "MY_VM_PORT": str(sshd.port),
        "MY_VM_USER": sshd.user,
        "MY_VM_PASSWORD": sshd.password,
        "TARGETS_ACCEPT_HOST_KEY": "1",
    }
    ran = run_example("attach_vm_with_password.py", project, env)
    assert ran.returncode == 0, ran.stderr
    assert "Succeeded" in ran.stdout
    assert sshd.password not in ran.stdout + ran.stderr
    found = ComputeTarget(workspace=ws, name="pw-vm")
    assert isinstance(found, RemoteCompute) and found.ssh_port == sshd.port
    assert get_secret(ws.secret_ref("pw-vm", "password")) == sshd.password
    assert files_holding(sshd.password, project, isolated_home) == []
    assert "password (in keyring)" in cli("show", "pw-vm").out
    # The password from the keyring logs in: a run works on the attached machine.
    done = cli("run", "-c", "echo attached-with-a-password; whoami", "--target", "pw-vm")
    assert done.code == 0, done
    assert done.out.split() == ["attached-with-a-password", sshd.user]
    # A second run of the script finds the name taken and says so.
    again = run_example("attach_vm_with_password.py", project, env)
    assert again.returncode != 0 and "already attached" in again.stderr, again.stderr
    assert files_holding(sshd.password, project, isolated_home) == []


def test_the_hdinsight_example_attaches_with_the_passphrase_of_a_protected_key(
    sshd: SSHServer, project: Path, cli: CLI, isolated_home: Path, head_node_spark: Path
) -> None:
    ws = v1_workspace(project)
    env = {
        "MY_HDI_ADDRESS": sshd.host,
        "MY_HDI_PORT": str(sshd.port),
        "MY_HDI_USER": sshd.user,
        "MY_HDI_KEY": str(sshd.encrypted_key),
        "MY_HDI_KEY_PASSPHRASE": sshd.key_passphrase,
        "TARGETS_ACCEPT_HOST_KEY": "1",
    }
    ran = run_example("attach_hdinsight.py", project, env)
    assert ran.returncode == 0, ran.stderr
    # The script catches ComputeTargetException and exits 0: its output tells.
    assert "Caught" not in ran.stdout, ran.stdout
    assert "Succeeded" in ran.stdout
    found = ComputeTarget(workspace=ws, name="myhdi")
    assert isinstance(found, HDInsightCompute) and found.type == "HDInsight"
    shown = cli("show", "myhdi", "-o", "json").json()
    assert isinstance(shown, dict) and shown["kind"] == "hdinsight"
    assert shown["facts"]["spark_submit"] == str(head_node_spark)
    assert get_secret(ws.secret_ref("myhdi", "ssh_key_passphrase")) == sshd.key_passphrase
    assert files_holding(sshd.key_passphrase, project, isolated_home) == []
    # The passphrase from the keyring opens the key: a run works on the head node.
    done = cli("run", "-c", "echo on-the-head-node; whoami", "--target", "myhdi")
    assert done.code == 0, done
    assert done.out.split() == ["on-the-head-node", sshd.user]

    # A wrong passphrase: the documented except branch reports it, nothing is attached.
    found.detach()
    wrong = run_example("attach_hdinsight.py", project, {**env, "MY_HDI_KEY_PASSPHRASE": "nope"})
    assert wrong.returncode == 0, wrong.stderr
    assert wrong.stdout.startswith("Caught = "), wrong.stdout
    assert f"the passphrase for the key {sshd.encrypted_key} is wrong" in wrong.stdout
    assert "myhdi" not in Workspace.from_config().targets()


@pytest.mark.xdist_group("docker")
def test_the_cpu_cluster_example_creates_finds_and_updates_a_docker_cluster(
    node_image: NodeImage, project: Path, cli: CLI
) -> None:
    v1_workspace(project, cluster_provider_options={"image": node_image.name})
    name = "cpu-cluster"  # the example's own name
    try:
        ran = run_example("create_cpu_cluster.py", project, {})
        assert ran.returncode == 0, ran.stderr
        assert "Found existing cluster" not in ran.stdout
        assert "Succeeded" in ran.stdout
        # get_status().serialize(): v1's shape, at the size the script asked for.
        status = ast.literal_eval(ran.stdout.strip().splitlines()[-1])
        assert status["provisioningState"] == "Succeeded"
        assert status["scaleSettings"]["maxNodeCount"] == 4
        assert status["currentNodeCount"] == 0 and status["vmPriority"] == "dedicated"
        shown = cli("show", name, "-o", "json").json()
        assert isinstance(shown, dict) and shown["kind"] == "cluster"
        # update() at the end of the script changed the scale settings at once.
        options = shown["options"]
        assert options["max_nodes"] == 2 and options.get("min_nodes", 0) == 0
        assert options["idle_seconds_before_scaledown"] == 300

        again = run_example("create_cpu_cluster.py", project, {})
        assert again.returncode == 0, again.stderr
        assert "Found existing cluster, use it." in again.stdout
        assert names(cli) == ["local", name]
        cpu_cluster = ComputeTarget(Workspace.from_config(), name)
        assert isinstance(cpu_cluster, AmlCompute)
        assert cpu_cluster.get_status().scale_settings == {
            "minNodeCount": 0,
            "maxNodeCount": 2,
            "nodeIdleTimeBeforeScaleDown": "PT300S",
        }
    finally:
        cli("delete", name, "--force")
        remove_cluster_containers(node_image.engine, name)
    assert name not in names(cli)
