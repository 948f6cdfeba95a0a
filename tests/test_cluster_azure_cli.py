"""`targets create | update | show | delete` of an azure-provider cluster, through the CLI,
the real azure-mgmt-compute client and the local Resource Manager emulator. No node is
ever started here (min_nodes stays 0 and no run is submitted): node addresses in the
emulator are private addresses that must never be contacted."""

from __future__ import annotations

import pytest

pytest.importorskip("azure.mgmt.compute")

from tests.azure_arm_emulator import ArmEmulator
from tests.test_cluster_azure import RG, SUB
from tests.test_cluster_azure import arm as arm

CREATE = [
    "create", "cpu-cluster", "--type", "cluster", "--provider", "azure",
    "--vm-size", "Standard_D2_v2", "--min-nodes", "0", "--max-nodes", "4",
    "--vm-priority", "lowpriority", "--idle-seconds-before-scaledown", "120",
    "--subscription", SUB, "--resource-group", RG, "--location", "westeurope",
]  # fmt: skip


def test_create_update_show_delete(arm: ArmEmulator, project, cli) -> None:
    created = cli(*CREATE, "-o", "json")
    assert created.code == 0, created
    vmss = arm.scale_set(SUB, RG, "targets-cpu-cluster")
    assert vmss["sku"]["capacity"] == 0
    profile = vmss["properties"]["virtualMachineProfile"]
    assert profile["priority"] == "Spot" and profile["evictionPolicy"] == "Deallocate"
    # The cluster's key: its public half on the nodes, its private half only in the keyring.
    public = created.json()["facts"]["public_key"]
    keys = profile["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"]
    assert keys[0]["keyData"] == public
    stored = (project / ".targets" / "targets.yml").read_text()
    assert "PRIVATE KEY" not in stored and "ssh_private_key" in stored

    updated = cli("update", "cpu-cluster", "--min-nodes", "0", "--max-nodes", "8")
    assert updated.code == 0, updated
    shown = cli("show", "cpu-cluster", "-o", "json").json()
    assert shown["options"]["max_nodes"] == 8
    assert shown["options"]["idle_seconds_before_scaledown"] == 120
    assert shown["status"]["nodes"] == []

    bad = cli("update", "cpu-cluster", "--min-nodes", "9")
    assert bad.code == 2 and "min_nodes" in bad.err, bad

    deleted = cli("delete", "cpu-cluster")
    assert deleted.code == 0, deleted
    with pytest.raises(KeyError):
        arm.scale_set(SUB, RG, "targets-cpu-cluster")
    assert [t["name"] for t in cli("list", "-o", "json").json()] == ["local"]


def test_bad_settings_are_refused_before_azure_hears_of_them(arm: ArmEmulator, cli) -> None:
    without_size = [a for a in CREATE if a not in ("--vm-size", "Standard_D2_v2")]
    result = cli(*without_size)
    assert result.code == 2 and "vm-size" in result.err, result
    half_vnet = [*CREATE, "--vnet-name", "v"]
    result = cli(*half_vnet)
    assert result.code == 2 and "subnet_name" in result.err, result
    assert arm.requests == []
