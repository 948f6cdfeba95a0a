"""The ``azure`` node provider, with the real azure-mgmt-compute and azure-mgmt-network
clients talking HTTP to a local emulator of the Resource Manager endpoints
(``tests/azure_arm_emulator.py``) and azure-identity's AzureCliCredential getting its token
from a stand-in ``az``: nothing leaves the machine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.mgmt.compute")
pytest.importorskip("azure.mgmt.network")
pytest.importorskip("azure.identity")

from pydantic import ValidationError

from targets.clusters.model import ClusterSpec
from targets.clusters.provider import NodeState, ProviderContext, load_provider
from targets.clusters.providers.azure import DEFAULT_IMAGE, AzureOptions, AzureProvider
from targets.errors import AuthenticationError, UsageError
from tests.azure_arm_emulator import ArmEmulator, fake_az

TOKEN = "arm-token-from-az-login"
SUB = "00000000-0000-0000-0000-00000000beef"
RG = "ml-rg"
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0Yx1TestKeyForTheClusterOnly targets-cluster-cpu"
)


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArmEmulator]:
    """The emulator, with the endpoint override and a logged-in ``az`` in this process."""
    with ArmEmulator(TOKEN, resource_groups={RG, "net-rg"}) as emulator:
        monkeypatch.setenv("TARGETS_AZURE_RESOURCE_MANAGER", emulator.url)
        monkeypatch.setenv("PATH", f"{fake_az(tmp_path / 'bin', TOKEN)}:{os.environ['PATH']}")
        monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
        yield emulator


def _provider(
    tmp_path: Path, cluster: str = "cpu", spec: dict[str, Any] | None = None, **options: Any
) -> AzureProvider:
    assert os.environ["TARGETS_AZURE_RESOURCE_MANAGER"].startswith("http://127.0.0.1:")
    values: dict[str, Any] = {"provider": "azure", "vm_size": "Standard_D2_v2", "max_nodes": 4}
    values.update(spec or {})
    opts: dict[str, Any] = {"subscription": SUB, "resource_group": RG, "location": "westeurope"}
    opts.update(options)
    opts = {k: v for k, v in opts.items() if v is not None}
    return AzureProvider(
        cluster,
        ClusterSpec.model_validate(values),
        AzureOptions.model_validate(opts),
        ProviderContext(state_dir=tmp_path / "state", public_key=PUBLIC_KEY),
    )


def _vm_profile(arm: ArmEmulator, name: str = "targets-cpu") -> dict[str, Any]:
    profile: dict[str, Any] = arm.scale_set(SUB, RG, name)["properties"]["virtualMachineProfile"]
    return profile


def _running(provider: AzureProvider, count: int, tries: int = 5) -> list[Any]:
    for _ in range(tries):
        nodes = provider.list_nodes()
        if sum(n.state is NodeState.RUNNING for n in nodes) >= count:
            return nodes
    raise AssertionError(f"not {count} running nodes: {provider.list_nodes()}")


def test_the_entry_point_is_this_class() -> None:
    assert load_provider("azure") is AzureProvider


# -- create --------------------------------------------------------------------------------


def test_create_makes_an_empty_scale_set_with_the_cluster_key(
    arm: ArmEmulator, tmp_path: Path
) -> None:
    provider = _provider(tmp_path)
    provider.check()
    provider.create_cluster()
    vmss = arm.scale_set(SUB, RG, "targets-cpu")
    assert vmss["location"] == "westeurope"
    assert vmss["sku"] == {"name": "Standard_D2_v2", "tier": "Standard", "capacity": 0}
    assert vmss["properties"]["upgradePolicy"] == {"mode": "Manual"}
    assert vmss["properties"]["overprovision"] is False
    assert vmss["properties"]["orchestrationMode"] == "Uniform"
    assert vmss["properties"]["provisioningState"] == "Succeeded"  # the LRO was polled to the end
    profile = _vm_profile(arm)
    linux = profile["osProfile"]["linuxConfiguration"]
    assert profile["osProfile"]["adminUsername"] == "azureuser"
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"] == [
        {"path": "/home/azureuser/.ssh/authorized_keys", "keyData": PUBLIC_KEY}
    ]
    assert "adminPassword" not in profile["osProfile"]
    assert profile["storageProfile"]["imageReference"] == dict(
        zip(["publisher", "offer", "sku", "version"], DEFAULT_IMAGE.split(":"), strict=True)
    )
    assert profile["priority"] == "Regular"
    assert "evictionPolicy" not in profile
    # No vnet triple: the provider made a vnet of its own and put the nodes in it.
    subnet = profile["networkProfile"]["networkInterfaceConfigurations"][0]["properties"][
        "ipConfigurations"
    ][0]["properties"]["subnet"]["id"]
    assert subnet == (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
        f"virtualNetworks/targets-cpu-vnet/subnets/default"
    )
    assert (SUB, RG, "targets-cpu-vnet") in arm.vnets
    # Polled through the operation-status endpoint, as ARM's long-running operations are.
    assert any("/operations/" in p for p in arm.requests)
    assert provider.list_nodes() == []
    provider.create_cluster()  # idempotent: create-or-update
    assert arm.scale_set(SUB, RG, "targets-cpu")["sku"]["capacity"] == 0


def test_lowpriority_is_spot_deallocated_on_eviction(arm: ArmEmulator, tmp_path: Path) -> None:
    _provider(tmp_path, spec={"vm_priority": "lowpriority"}).create_cluster()
    profile = _vm_profile(arm)
    assert profile["priority"] == "Spot"
    assert profile["evictionPolicy"] == "Deallocate"
    assert profile["billingProfile"] == {"maxPrice": -1}


def test_the_vnet_triple_gives_the_nodes_subnet(arm: ArmEmulator, tmp_path: Path) -> None:
    subnet = arm.add_vnet(SUB, "net-rg", "shared-vnet", "ml-subnet")
    spec = {"vnet_resource_group": "net-rg", "vnet_name": "shared-vnet", "subnet_name": "ml-subnet"}
    provider = _provider(tmp_path, spec=spec)
    provider.create_cluster()
    ipc = _vm_profile(arm)["networkProfile"]["networkInterfaceConfigurations"][0]["properties"]
    assert ipc["ipConfigurations"][0]["properties"]["subnet"]["id"] == subnet
    assert [key[2] for key in arm.vnets] == ["shared-vnet"]  # nothing created
    provider.delete_cluster()
    assert [key[2] for key in arm.vnets] == ["shared-vnet"]  # and the user's vnet is kept


def test_a_subnet_that_does_not_exist_is_a_usage_error(arm: ArmEmulator, tmp_path: Path) -> None:
    spec = {"vnet_resource_group": "net-rg", "vnet_name": "nope", "subnet_name": "sn"}
    with pytest.raises(UsageError, match=r"InvalidResourceReference.*virtualNetworks/nope"):
        _provider(tmp_path, spec=spec).create_cluster()


def test_an_unknown_resource_group_is_a_usage_error(arm: ArmEmulator, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="ResourceGroupNotFound") as err:
        _provider(tmp_path, resource_group="typo-rg").create_cluster()
    assert "az group create" in str(err.value)


# -- nodes ---------------------------------------------------------------------------------


def test_add_nodes_then_running_with_addresses_and_host_keys(
    arm: ArmEmulator, tmp_path: Path
) -> None:
    provider = _provider(tmp_path)
    provider.create_cluster()
    added = provider.add_nodes(2)
    assert [n.id for n in added] == ["0", "1"]
    assert {n.state for n in added} == {NodeState.CREATING}
    assert arm.scale_set(SUB, RG, "targets-cpu")["sku"]["capacity"] == 2
    nodes = _running(provider, 2)
    assert [n.address for n in nodes] == ["10.0.0.4", "10.0.0.5"]
    for node in nodes:
        assert node.state is NodeState.RUNNING
        assert node.username == "azureuser" and node.ssh_port == 22
        assert node.host_keys == (arm.host_key(node.id),)
        assert node.hostname and node.hostname.startswith("cpu-")
        assert node.priority == "dedicated"
    asked = list(arm.run_commands)
    assert sorted(iid for _, iid, _ in asked) == ["0", "1"]
    assert all(script == ["cat /etc/ssh/ssh_host_*_key.pub"] for _, _, script in asked)
    # Asked once per node: later lists, and a new provider on the same state dir, reuse them.
    provider.list_nodes()
    again = _provider(tmp_path).list_nodes()
    assert [n.host_keys for n in again] == [n.host_keys for n in nodes]
    assert arm.run_commands == asked
    cached = json.loads((tmp_path / "state" / "azure-host-keys.json").read_text())
    assert len(cached) == 2
    # Growing again adds only the new instance.
    assert [n.id for n in provider.add_nodes(1)] == ["2"]
    assert arm.scale_set(SUB, RG, "targets-cpu")["sku"]["capacity"] == 3
    assert provider.add_nodes(0) == []


def test_a_spot_eviction_is_reported_preempted(arm: ArmEmulator, tmp_path: Path) -> None:
    provider = _provider(tmp_path, spec={"vm_priority": "lowpriority"})
    provider.create_cluster()
    provider.add_nodes(2)
    _running(provider, 2)
    arm.evict("1")
    states = {n.id: n for n in provider.list_nodes()}
    assert states["0"].state is NodeState.RUNNING
    assert states["1"].state is NodeState.PREEMPTED
    assert "evicted" in (states["1"].message or "")
    assert states["1"].priority == "lowpriority"
    # The scheduler removes it; the scale set shrinks by one.
    provider.remove_nodes(["1"])
    assert arm.scale_set(SUB, RG, "targets-cpu")["sku"]["capacity"] == 1


def test_a_failed_vm_is_reported_failed_with_azures_reason(
    arm: ArmEmulator, tmp_path: Path
) -> None:
    provider = _provider(tmp_path)
    provider.create_cluster()
    provider.add_nodes(1)
    arm.fail_instance("0", "Allocation failed. We do not have sufficient capacity.")
    (node,) = provider.list_nodes()
    assert node.state is NodeState.FAILED
    assert "sufficient capacity" in (node.message or "")


def test_remove_nodes_deletes_those_instances_and_is_idempotent(
    arm: ArmEmulator, tmp_path: Path
) -> None:
    provider = _provider(tmp_path)
    provider.create_cluster()
    provider.add_nodes(3)
    _running(provider, 3)
    provider.remove_nodes(["0", "2"])
    deletes = [body for method, path, body in arm.calls if path.endswith("/targets-cpu/delete")]
    assert deletes == [{"instanceIds": ["0", "2"]}]
    assert arm.scale_set(SUB, RG, "targets-cpu")["sku"]["capacity"] == 1
    states = {n.id: n.state for n in provider.list_nodes()}
    assert states in ({"0": NodeState.DELETING, "1": NodeState.RUNNING, "2": NodeState.DELETING},)
    provider.remove_nodes(["0", "2", "99"])  # deleting or unknown: nothing to ask
    assert len([p for _, p, _ in arm.calls if p.endswith("/targets-cpu/delete")]) == 1
    assert [n.id for n in provider.list_nodes()] == ["1"]
    provider.remove_nodes([])


def test_delete_cluster_removes_the_scale_set_and_its_vnet(
    arm: ArmEmulator, tmp_path: Path
) -> None:
    provider = _provider(tmp_path)
    provider.create_cluster()
    provider.add_nodes(1)
    _running(provider, 1)
    assert (tmp_path / "state" / "azure-host-keys.json").exists()
    provider.delete_cluster()
    assert arm.scale_sets == {} and arm.vnets == {}
    assert not (tmp_path / "state" / "azure-host-keys.json").exists()
    provider.delete_cluster()  # idempotent
    assert provider.list_nodes() == []
    provider.close()
    provider.close()


# -- bad input and credentials ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "flag"),
    [
        ("subscription", "--subscription"),
        ("resource_group", "--resource-group"),
        ("location", "--location"),
        ("vm_size", "--vm-size"),
    ],
)
def test_a_missing_setting_is_named_before_any_request(
    arm: ArmEmulator, tmp_path: Path, missing: str, flag: str
) -> None:
    spec: dict[str, Any] = {"vm_size": None} if missing == "vm_size" else {}
    options: dict[str, Any] = {} if missing == "vm_size" else {missing: None}
    provider = _provider(tmp_path, spec=spec, **options)
    for call in (provider.check, provider.create_cluster, lambda: provider.add_nodes(1)):
        with pytest.raises(UsageError, match=missing) as err:
            call()
        assert err.value.exit_code == 2
        assert flag in str(err.value)
    assert arm.requests == []


def test_the_subscription_may_come_from_the_environment(
    arm: ArmEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB)
    _provider(tmp_path, subscription=None).create_cluster()
    assert arm.scale_set(SUB, RG, "targets-cpu")


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        ({"vm_size": "D2 v2"}, {}, "not an Azure VM size"),
        ({}, {"location": "west/europe"}, "not an Azure region"),
        ({}, {"resource_group": "bad rg!"}, "not a valid resource group"),
    ],
)
def test_bad_values_are_refused_before_any_request(
    arm: ArmEmulator, tmp_path: Path, spec: dict[str, Any], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        _provider(tmp_path, spec=spec, **options).create_cluster()
    with pytest.raises(UsageError, match="cannot name an Azure scale set"):
        _provider(tmp_path, cluster="x" * 60).check()
    assert arm.requests == []


def test_the_options_model_refuses_unknown_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="extra"):
        AzureOptions.model_validate({"resource_grop": "rg"})
    with pytest.raises(ValidationError, match="marketplace URN"):
        AzureOptions(image="ubuntu")
    with pytest.raises(ValidationError, match="not allowed"):
        AzureOptions(admin_username="root")
    assert AzureOptions().admin_username == "azureuser"


def test_without_az_login_the_error_says_so_before_any_request(
    arm: ArmEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{fake_az(tmp_path / 'out', None)}:{os.environ['PATH']}")
    provider = _provider(tmp_path)
    for call in (provider.check, provider.create_cluster):
        with pytest.raises(AuthenticationError, match="az login") as err:
            call()
        assert err.value.exit_code == 1
    assert arm.requests == []


def test_a_refused_token_is_an_authentication_error(
    arm: ArmEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{fake_az(tmp_path / 'other', 'expired')}:{os.environ['PATH']}")
    with pytest.raises(AuthenticationError, match=r"InvalidAuthenticationToken|invalid") as err:
        _provider(tmp_path).create_cluster()
    assert "az login" in str(err.value)
