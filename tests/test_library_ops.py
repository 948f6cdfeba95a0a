"""Attach, update and detach of targets, create of clusters, delete of runs: library
operations with their rules inside (the Python API and a studio call them, not only the
CLI). Each refusal is a UsageError (exit code 2) with nothing written, from the library
call as from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from targets.attachment import attach_target, detach_target, update_target
from targets.clusters.lifecycle import cluster_spec, create_cluster, update_cluster
from targets.clusters.model import ClusterSpec
from targets.clusters.provisioning import cluster_record
from targets.errors import TargetsError, UsageError
from targets.runs import Run
from targets.secrets import get_secret
from targets.workspace import Workspace
from tests.conftest import wait_for_status
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401


def nothing_written(project: Path) -> None:
    assert not (project / ".targets" / "targets.yml").exists()
    assert not (project / ".targets" / "clusters").exists()


def low_priority(**extra: object) -> ClusterSpec:
    return ClusterSpec.model_validate(
        {
            "provider": "docker",
            "max_nodes": 2,
            "vm_priority": "lowpriority",
            "provider_options": {"image": "debian:bookworm"},
            **extra,
        }
    )


@pytest.mark.parametrize("run_based", [False, True])
def test_low_priority_needs_a_provider_that_has_it(project: Path, cli, run_based: bool) -> None:
    ws = Workspace(project)
    with pytest.raises(UsageError, match="docker provider has no low-priority nodes") as caught:
        create_cluster(ws, "pool", low_priority(run_based=run_based))
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="no low-priority nodes"):
        cluster_spec(
            {"provider": "docker", "max_nodes": 2, "vm_priority": "lowpriority"},
            {"image": "debian:bookworm"},
        )
    nothing_written(project)
    assert get_secret(ws.secret_ref("pool", "ssh_private_key")) is None
    args = ["create", "pool", "--type", "cluster", "--provider", "docker", "--image", "x"]
    args += ["--max-nodes", "2", "--vm-priority", "lowpriority"]
    if run_based:
        args.append("--run-based")
    result = cli(*args)
    assert result.code == 2, result
    assert "no low-priority nodes" in result.err
    nothing_written(project)


def test_cluster_settings_are_checked_by_the_library(project: Path) -> None:
    with pytest.raises(UsageError, match="min_nodes \\(3\\) is larger than max_nodes"):
        cluster_spec({"provider": "docker", "max_nodes": 2, "min_nodes": 3}, {"image": "x"})
    with pytest.raises(UsageError, match="--image"):
        cluster_spec({"provider": "docker", "max_nodes": 2}, {})
    with pytest.raises(UsageError, match="give --provider"):
        cluster_spec({"max_nodes": 2})
    ws = Workspace(project)
    with pytest.raises(UsageError, match="'local' is reserved"):
        create_cluster(
            ws, "local", cluster_spec({"provider": "docker", "max_nodes": 1}, {"image": "x"})
        )
    with pytest.raises(UsageError, match="is a local target, not a cluster"):
        update_cluster(ws, "local", max_nodes=3)
    nothing_written(project)


def test_attach_refuses_in_the_library_what_the_cli_refuses(project: Path, cli) -> None:
    ws = Workspace(project)
    refused = {
        "reserved for this machine": ("local", "vm", {"address": "h"}, {}),
        "invalid target name": ("1box", "vm", {"address": "h"}, {}),
        "--ssh-port: Input should be greater than or equal to 1": (
            "box",
            "vm",
            {"address": "h", "ssh_port": 0},
            {},
        ),
        "unknown option|Extra inputs are not permitted": ("box", "vm", {"adress": "h"}, {}),
        "takes no secret 'token'": ("box", "vm", {"address": "h"}, {"token": "t"}),
        "the secret 'password' is empty": ("box", "vm", {"address": "h"}, {"password": ""}),
        "created, not attached": ("pool", "cluster", {"provider": "docker", "max_nodes": 1}, {}),
    }
    for message, (name, kind, options, secrets) in refused.items():
        with pytest.raises(UsageError, match=message) as caught:
            attach_target(ws, name, kind, options, secrets=secrets)
        assert caught.value.exit_code == 2
    nothing_written(project)
    result = cli("attach", "pool", "--type", "cluster", "--provider", "docker")
    assert result.code == 2 and "created, not attached" in result.err, result
    nothing_written(project)


def test_attach_update_detach_through_the_library(sshd: SSHServer, project: Path, cli) -> None:
    ws = Workspace(project)
    options = {
        "address": sshd.host,
        "ssh_port": sshd.port,
        "username": sshd.user,
        "ssh_key": str(sshd.key),
    }
    record = attach_target(ws, "box", "dsvm", options, accept_host_key=True)
    assert record.kind == "vm"  # the alias resolved
    assert record.facts["address"]
    with pytest.raises(UsageError, match="already attached"):
        attach_target(ws, "box", "vm", options)
    listed = cli("list")
    assert listed.code == 0, listed
    line = next(x for x in listed.out.splitlines() if x.startswith("box"))
    assert sshd.host in line
    # A change the machine refuses leaves the target as it was.
    with pytest.raises(TargetsError):
        update_target(ws, "box", {"username": "nobody-here"})
    assert ws.target_record("box").options["username"] == sshd.user
    with pytest.raises(UsageError, match="--ssh-port"):
        update_target(ws, "box", {"ssh_port": 70000})
    changed = update_target(ws, "box", {"use_agent": True})
    assert changed.options["use_agent"] is True
    assert changed.attached_at == record.attached_at
    assert cli("run", "-c", "echo hello", "--target", "box").code == 0
    removed = detach_target(ws, "box")
    assert removed.name == "box"
    assert "box" not in ws.targets()
    assert "box" not in cli("list").out


def test_targets_list_says_where_each_target_is(project: Path, cli) -> None:
    ws = Workspace(project)
    spec = cluster_spec({"provider": "docker", "max_nodes": 3}, {"image": "x"})
    ws.save_target(cluster_record("pool", spec, {"provider": "docker"}, secrets=()))
    template = cluster_spec(
        {"provider": "docker", "max_nodes": 2, "run_based": True}, {"image": "x"}
    )
    ws.save_target(cluster_record("tmpl", template, {"provider": "docker"}, secrets=()))
    rows = {line.split()[0]: line for line in cli("list").out.splitlines() if line.strip()}
    assert "this machine" in rows["local"]
    assert "docker, 0-3 nodes" in rows["pool"]
    assert "docker, run-based template, 0-2 nodes" in rows["tmpl"]
    shown = cli("show", "pool")
    assert shown.code == 0, shown
    assert "idle seconds before scaledown" in shown.out  # defaults shown too
    assert "image" in shown.out  # and the provider's options


def test_deleting_a_run_is_a_library_operation(project: Path, cli) -> None:
    ws = Workspace(project)
    slow = cli("run", "-c", "sleep 60", "--detach")
    assert slow.code == 0, slow
    run = Run(ws, slow.out.strip())
    with pytest.raises(UsageError, match="has not ended"):
        run.delete()
    assert run.folder.is_dir()
    run.cancel()
    wait_for_status(cli, run.id, "Canceled", 60, "the run to be canceled")
    assert run.delete() is None
    assert not run.folder.exists()
    assert ws.ledger.get(run.id) is None
    assert run.id not in cli("runs", "list").out
