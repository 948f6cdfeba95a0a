"""The ``azure`` node provider: a cluster's nodes are the VMs of one Azure VM scale set.

Azure ML's provisioning configuration maps onto a Uniform scale set named
``targets-<cluster>`` (see docs/targets/clusters-azure.md):

* ``vm_size`` -> the scale set's ``sku.name``; its ``sku.capacity`` follows the scheduler
  (``add_nodes`` raises it, ``remove_nodes`` deletes the given instances);
* ``vm_priority: lowpriority`` -> ``priority: Spot`` with ``evictionPolicy: Deallocate`` and
  ``billingProfile.maxPrice: -1`` (pay up to the on-demand price; evicted only for
  capacity). An evicted VM stays, deallocated, and is reported ``preempted``;
* the vnet triple -> the subnet of every node; without it the provider creates (or reuses)
  a virtual network ``targets-<cluster>-vnet`` (10.0.0.0/16, subnet ``default`` 10.0.0.0/24)
  in the cluster's resource group and deletes it with the cluster.

Nodes log in as ``admin_username`` with the cluster's public key (password logins off).
Their host keys are read through the Run Command API (an Azure-authenticated channel, not
the network), once per VM, and kept in ``<state_dir>/azure-host-keys.json``.

Credentials are your ``az login`` (azure-identity's ``AzureCliCredential``). The Resource
Manager endpoint is ``https://management.azure.com`` or ``TARGETS_AZURE_RESOURCE_MANAGER``
(plain http is allowed only for an endpoint on this machine: the tests' emulator).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from targets.clusters.model import ClusterSpec
from targets.clusters.provider import Node, NodeProvider, NodeState, ProviderContext
from targets.compute.azure_lookup import DEFAULT_ARM, _loopback, resource_manager
from targets.errors import (
    AuthenticationError,
    ConnectionFailed,
    MissingExtraError,
    TargetsError,
    UsageError,
)

if TYPE_CHECKING:
    from azure.identity import AzureCliCredential
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import VirtualMachineScaleSetVM
    from azure.mgmt.network import NetworkManagementClient

__all__ = ["DEFAULT_IMAGE", "AzureOptions", "AzureProvider"]

DEFAULT_IMAGE = "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest"
HOST_KEYS_SCRIPT = "cat /etc/ssh/ssh_host_*_key.pub"
_ADDRESS_SPACE = "10.0.0.0/16"
_SUBNET_PREFIX = "10.0.0.0/24"
_KEY_LINE = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-[\w@.-]+) [A-Za-z0-9+/]+=*"
)
# Azure refuses these Linux admin names (and any name longer than 32 characters).
_RESERVED_USERS = {
    "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1",
    "1", "123", "a", "actuser", "adm", "admin2", "aspnet", "backup", "console", "david",
    "guest", "john", "owner", "root", "server", "sql", "support", "support_388945a0",
    "sys", "test2", "test3", "user4", "user5",
}  # fmt: skip


class AzureOptions(BaseModel):
    """``--provider azure`` settings (the rest comes from the cluster's ClusterSpec)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscription: str | None = None
    """Azure subscription id (default: AZURE_SUBSCRIPTION_ID)."""
    resource_group: str | None = None
    """Resource group that holds the scale set (and the vnet the provider creates)."""
    location: str | None = None
    """Azure region of the scale set, e.g. westeurope."""
    admin_username: str = "azureuser"
    """The nodes' login user; the cluster's key is its only way in."""
    image: str = DEFAULT_IMAGE
    """Marketplace image URN publisher:offer:sku:version."""
    ssh_port: int = Field(default=22, ge=1, le=65535)
    """Where the nodes' sshd listens."""

    @field_validator("image")
    @classmethod
    def _urn(cls, value: str) -> str:
        if len(value.split(":")) != 4 or not all(value.split(":")):
            raise ValueError(
                f"image {value!r} is not a marketplace URN publisher:offer:sku:version "
                f"(e.g. {DEFAULT_IMAGE})"
            )
        return value

    @field_validator("admin_username")
    @classmethod
    def _user(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value) or value in _RESERVED_USERS:
            raise ValueError(
                f"admin_username {value!r} is not allowed on Azure Linux VMs (lowercase "
                f"letters, digits, - and _, at most 32 characters, not a reserved name like "
                f"root or admin)"
            )
        return value


@dataclass(frozen=True)
class _Settings:
    subscription: str
    resource_group: str
    location: str
    vm_size: str


def _allow_loopback_http() -> Any:
    """A pipeline policy that lets the bearer token go over plain http to an endpoint on
    this machine (the emulator in the tests); every other URL keeps azure-core's https
    rule."""
    from azure.core.pipeline import PipelineRequest
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class AllowLoopbackHttp(SansIOHTTPPolicy[Any, Any]):
        def on_request(self, request: PipelineRequest[Any]) -> None:
            if _loopback(request.http_request.url):
                request.context["enforce_https"] = False

    return AllowLoopbackHttp()


class AzureProvider(NodeProvider):
    name = "azure"
    description = "VMs of an Azure VM scale set (azure-mgmt-compute, your az login)"
    options_model: ClassVar[type[BaseModel]] = AzureOptions
    supports_low_priority = True

    def __init__(
        self, cluster: str, spec: ClusterSpec, options: BaseModel, context: ProviderContext
    ) -> None:
        super().__init__(cluster, spec, options, context)
        self.opts = (
            options if isinstance(options, AzureOptions) else AzureOptions.model_validate(options)
        )
        self._credential: AzureCliCredential | None = None
        self._compute: ComputeManagementClient | None = None
        self._network: NetworkManagementClient | None = None

    # -- names ---------------------------------------------------------------------------

    @property
    def scale_set(self) -> str:
        return f"targets-{self.cluster}"

    @property
    def vnet_name(self) -> str:
        return self.spec.vnet_name or f"targets-{self.cluster}-vnet"

    @property
    def owns_vnet(self) -> bool:
        """True when the provider made the virtual network (no vnet triple given)."""
        return not self.spec.vnet_name

    def subnet_id(self) -> str:
        s = self.settings()
        rg = self.spec.vnet_resource_group or s.resource_group
        subnet = self.spec.subnet_name or "default"
        return (
            f"/subscriptions/{s.subscription}/resourceGroups/{rg}/providers/"
            f"Microsoft.Network/virtualNetworks/{self.vnet_name}/subnets/{subnet}"
        )

    # -- settings and clients -------------------------------------------------------------

    def settings(self) -> _Settings:
        """The resolved settings, or a UsageError naming the missing one (no I/O)."""
        subscription = self.opts.subscription or os.environ.get("AZURE_SUBSCRIPTION_ID")
        missing = [
            (name, flag)
            for name, flag, value in (
                ("subscription", "--subscription ID (or set AZURE_SUBSCRIPTION_ID)", subscription),
                ("resource_group", "--resource-group NAME", self.opts.resource_group),
                ("location", "--location REGION (e.g. westeurope)", self.opts.location),
                ("vm_size", "--vm-size SIZE (e.g. Standard_D2_v2)", self.spec.vm_size),
            )
            if not value
        ]
        if missing:
            names = ", ".join(name for name, _ in missing)
            raise UsageError(
                f"the azure provider of cluster {self.cluster!r} needs {names}",
                hint="pass " + "; ".join(flag for _, flag in missing),
            )
        assert subscription and self.opts.resource_group and self.opts.location
        assert self.spec.vm_size
        if not re.fullmatch(r"(?i)(standard|basic)_[a-z0-9_]+", self.spec.vm_size):
            raise UsageError(
                f"vm_size {self.spec.vm_size!r} is not an Azure VM size",
                hint="sizes look like Standard_D2_v2; list them with `az vm list-sizes -l REGION`",
            )
        if not re.fullmatch(r"[-\w.()]{1,89}[-\w()]", self.opts.resource_group):
            raise UsageError(
                f"resource_group {self.opts.resource_group!r} is not a valid resource group name"
            )
        if not re.fullmatch(r"[A-Za-z0-9 ]+", self.opts.location):
            raise UsageError(
                f"location {self.opts.location!r} is not an Azure region",
                hint="regions look like westeurope; list them with `az account list-locations`",
            )
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,54}", self.cluster):
            raise UsageError(
                f"cluster name {self.cluster!r} cannot name an Azure scale set "
                f"(letters, digits and -, at most 55 characters)"
            )
        return _Settings(
            subscription, self.opts.resource_group, self.opts.location, self.spec.vm_size
        )

    def _credential_or_raise(self) -> AzureCliCredential:
        try:
            from azure.identity import AzureCliCredential
        except ImportError as exc:
            raise MissingExtraError("azure-identity", "azure") from exc
        if self._credential is None:
            self._credential = AzureCliCredential()
        return self._credential

    def check(self) -> None:
        """Options first (no I/O), then a token from ``az`` (runs ``az`` locally; no
        request to Azure)."""
        self.settings()
        credential = self._credential_or_raise()
        with self._errors("sign in to Azure"):
            credential.get_token(DEFAULT_ARM + "/.default")

    def _clients(self) -> tuple[ComputeManagementClient, NetworkManagementClient]:
        s = self.settings()
        try:
            from azure.mgmt.compute import ComputeManagementClient
            from azure.mgmt.network import NetworkManagementClient
        except ImportError as exc:
            raise MissingExtraError("azure-mgmt-compute, azure-mgmt-network", "azure") from exc
        credential = self._credential_or_raise()
        endpoint = resource_manager()
        common: dict[str, Any] = {
            "base_url": endpoint,
            "credential_scopes": [DEFAULT_ARM + "/.default"],
        }
        if _loopback(endpoint):
            common["per_call_policies"] = [_allow_loopback_http()]
        if self._compute is None:
            self._compute = ComputeManagementClient(credential, s.subscription, **common)
        if self._network is None:
            self._network = NetworkManagementClient(credential, s.subscription, **common)
        return self._compute, self._network

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Azure SDK errors -> targets errors, with what we were doing."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        where = f"(cluster {self.cluster!r}, scale set {self.scale_set!r})"
        try:
            yield
        except ClientAuthenticationError as exc:  # includes CredentialUnavailableError
            raise AuthenticationError(
                f"Azure refused to {doing} {where}: {_first_line(exc)}",
                hint="sign in with `az login` (and `az account set --subscription ...`)",
            ) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise ConnectionFailed(
                f"cannot reach Azure Resource Manager at {resource_manager()} to {doing}: {exc}"
            ) from exc
        except HttpResponseError as exc:
            code = getattr(exc.error, "code", None) or ""
            text = f"Azure could not {doing} {where}: {code + ': ' if code else ''}{exc.message}"
            status = exc.status_code or 0
            if status == 403:
                raise AuthenticationError(
                    text,
                    hint="your account needs the Contributor role on the resource group "
                    "(and Network Contributor on a vnet of another group)",
                ) from exc
            if code == "ResourceGroupNotFound":
                raise UsageError(
                    text, hint=f"create it with `az group create -n NAME -l {self.opts.location}`"
                ) from exc
            if code in {"QuotaExceeded", "SkuNotAvailable", "OperationNotAllowed"} or status in {
                400,
                404,
            }:
                raise UsageError(text) from exc
            raise TargetsError(text) from exc

    # -- NodeProvider -------------------------------------------------------------------------

    def create_cluster(self) -> None:
        """Create (or update) the scale set with capacity 0, and its vnet when the cluster
        names none. Waits for both long-running operations."""
        s = self.settings()
        compute, network = self._clients()
        from azure.mgmt.compute import models as cm

        if self.owns_vnet:
            self._create_vnet(network, s)
        publisher, offer, sku, version = self.opts.image.split(":")
        low = self.spec.vm_priority == "lowpriority"
        admin = self.opts.admin_username
        profile = cm.VirtualMachineScaleSetVMProfile(
            os_profile=cm.VirtualMachineScaleSetOSProfile(
                computer_name_prefix=self.cluster[:15].lower().rstrip("-") + "-",
                admin_username=admin,
                linux_configuration=cm.LinuxConfiguration(
                    disable_password_authentication=True,
                    ssh=cm.SshConfiguration(
                        public_keys=[
                            cm.SshPublicKey(
                                path=f"/home/{admin}/.ssh/authorized_keys",
                                key_data=self.context.public_key.strip(),
                            )
                        ]
                    ),
                ),
            ),
            storage_profile=cm.VirtualMachineScaleSetStorageProfile(
                image_reference=cm.ImageReference(
                    publisher=publisher, offer=offer, sku=sku, version=version
                ),
                os_disk=cm.VirtualMachineScaleSetOSDisk(
                    create_option="FromImage",
                    caching="ReadWrite",
                    managed_disk=cm.VirtualMachineScaleSetManagedDiskParameters(
                        storage_account_type="Standard_LRS"
                    ),
                ),
            ),
            network_profile=cm.VirtualMachineScaleSetNetworkProfile(
                network_interface_configurations=[
                    cm.VirtualMachineScaleSetNetworkConfiguration(
                        name="targets-nic",
                        properties=cm.VirtualMachineScaleSetNetworkConfigurationProperties(
                            primary=True,
                            ip_configurations=[
                                cm.VirtualMachineScaleSetIPConfiguration(
                                    name="targets-ip",
                                    properties=cm.VirtualMachineScaleSetIPConfigurationProperties(
                                        primary=True,
                                        subnet=cm.ApiEntityReference(id=self.subnet_id()),
                                    ),
                                )
                            ],
                        ),
                    )
                ]
            ),
            priority="Spot" if low else "Regular",
            eviction_policy="Deallocate" if low else None,
            billing_profile=cm.BillingProfile(max_price=-1) if low else None,
        )
        body = cm.VirtualMachineScaleSet(
            location=s.location,
            sku=cm.Sku(name=s.vm_size, tier="Standard", capacity=0),
            tags={"targets-cluster": self.cluster},
            properties=cm.VirtualMachineScaleSetProperties(
                upgrade_policy=cm.UpgradePolicy(mode="Manual"),
                virtual_machine_profile=profile,
                overprovision=False,
                single_placement_group=False,
                orchestration_mode="Uniform",
            ),
        )
        with self._errors(f"create the VM scale set in {s.resource_group}"):
            compute.virtual_machine_scale_sets.begin_create_or_update(
                s.resource_group, self.scale_set, body
            ).result()

    def _create_vnet(self, network: NetworkManagementClient, s: _Settings) -> None:
        from azure.mgmt.network import models as nm

        body = nm.VirtualNetwork(
            location=s.location,
            tags={"targets-cluster": self.cluster},
            properties=nm.VirtualNetworkPropertiesFormat(
                address_space=nm.AddressSpace(address_prefixes=[_ADDRESS_SPACE]),
                subnets=[
                    nm.Subnet(
                        name="default",
                        properties=nm.SubnetPropertiesFormat(address_prefix=_SUBNET_PREFIX),
                    )
                ],
            ),
        )
        with self._errors(f"create the virtual network {self.vnet_name!r}"):
            network.virtual_networks.begin_create_or_update(
                s.resource_group, self.vnet_name, body
            ).result()

    def add_nodes(self, count: int) -> list[Node]:
        """Raise the scale set's capacity by ``count`` without waiting for the VMs; returns
        the new instances (``creating``)."""
        if count <= 0:
            return []
        s = self.settings()
        compute, _ = self._clients()
        from azure.mgmt.compute import models as cm

        before = {str(vm.instance_id) for vm in self._vms()}
        with self._errors("read the VM scale set"):
            vmss = compute.virtual_machine_scale_sets.get(s.resource_group, self.scale_set)
        capacity = (vmss.sku.capacity if vmss.sku else 0) or 0
        update = cm.VirtualMachineScaleSetUpdate(
            sku=cm.Sku(name=s.vm_size, tier="Standard", capacity=capacity + count)
        )
        with self._errors(f"add {count} node(s) to the VM scale set"):
            compute.virtual_machine_scale_sets.begin_update(
                s.resource_group, self.scale_set, update, polling=False
            )
        return [n for n in self.list_nodes() if n.id not in before]

    def list_nodes(self) -> list[Node]:
        vms = self._vms()
        if not vms:
            self._save_host_keys({})
            return []
        addresses = self._private_ips()
        cache = self._load_host_keys()
        states = [(vm, *self._state(vm)) for vm in vms]
        wanted = [
            vm
            for vm, state, _ in states
            if state is NodeState.RUNNING and _cache_key(vm) not in cache
        ]
        if wanted:
            with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
                for vm, read in zip(wanted, pool.map(self._read_host_keys, wanted), strict=True):
                    if read:
                        cache[_cache_key(vm)] = read
        alive = {_cache_key(vm) for vm in vms}
        self._save_host_keys({k: v for k, v in cache.items() if k in alive})
        nodes = []
        for vm, state, message in states:
            keys = tuple(cache.get(_cache_key(vm), ()))
            if state is NodeState.RUNNING and not keys:
                state, message = NodeState.CREATING, "running; waiting for its sshd host keys"
            props = vm.properties
            hostname = props.os_profile.computer_name if props and props.os_profile else None
            nodes.append(
                Node(
                    id=str(vm.instance_id),
                    state=state,
                    address=addresses.get((vm.id or "").lower(), ""),
                    ssh_port=self.opts.ssh_port,
                    username=self.opts.admin_username,
                    host_keys=keys,
                    hostname=hostname,
                    priority=self.spec.vm_priority,
                    created_at=_created_at(vm),
                    message=message,
                )
            )
        return nodes

    def remove_nodes(self, ids: list[str]) -> None:
        """Delete these instances (ids that are gone or already deleting are skipped);
        does not wait: they are ``deleting`` until Azure has removed them."""
        s = self.settings()
        compute, _ = self._clients()
        from azure.mgmt.compute import models as cm

        present = {
            n.id: n.state for n in (self._vm_node_states()) if n.state is not NodeState.DELETING
        }
        todo = [i for i in dict.fromkeys(str(i) for i in ids) if i in present]
        if not todo:
            return
        with self._errors(f"delete node(s) {', '.join(todo)}"):
            compute.virtual_machine_scale_sets.begin_delete_instances(
                s.resource_group,
                self.scale_set,
                cm.VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=todo),
                polling=False,
            )

    def delete_cluster(self) -> None:
        """Delete the scale set (with its VMs) and the vnet the provider made; waits."""
        s = self.settings()
        compute, network = self._clients()
        with self._errors("delete the VM scale set"):
            compute.virtual_machine_scale_sets.begin_delete(
                s.resource_group, self.scale_set
            ).result()
        if self.owns_vnet:
            with self._errors(f"delete the virtual network {self.vnet_name!r}"):
                network.virtual_networks.begin_delete(s.resource_group, self.vnet_name).result()
        self._host_keys_file().unlink(missing_ok=True)

    def close(self) -> None:
        for client in (self._compute, self._network, self._credential):
            if client is not None:
                client.close()
        self._compute = self._network = self._credential = None

    # -- helpers --------------------------------------------------------------------------------

    def _vms(self) -> list[VirtualMachineScaleSetVM]:
        """The scale set's VMs with their instance view ([] when there is no scale set)."""
        from azure.core.exceptions import ResourceNotFoundError

        s = self.settings()
        compute, _ = self._clients()
        with self._errors("list the nodes"):
            try:
                return list(
                    compute.virtual_machine_scale_set_vms.list(
                        s.resource_group, self.scale_set, expand="instanceView"
                    )
                )
            except ResourceNotFoundError as exc:
                if "ResourceGroupNotFound" in str(getattr(exc.error, "code", "")):
                    raise
                return []

    def _vm_node_states(self) -> list[Node]:
        return [Node(id=str(vm.instance_id), state=self._state(vm)[0]) for vm in self._vms()]

    def _state(self, vm: VirtualMachineScaleSetVM) -> tuple[NodeState, str | None]:
        props = vm.properties
        provisioning = ((props.provisioning_state if props else None) or "").lower()
        statuses = (
            props.instance_view.statuses
            if props and props.instance_view and props.instance_view.statuses
            else []
        )
        codes = [(st.code or "").lower() for st in statuses]
        power = next((c.split("/", 1)[1] for c in codes if c.startswith("powerstate/")), "")
        failed = next(
            (
                st
                for st in statuses
                if (st.code or "").lower().startswith("provisioningstate/failed")
            ),
            None,
        )
        if provisioning == "deleting":
            return NodeState.DELETING, None
        if provisioning == "failed" or failed is not None:
            why = (failed.message or failed.display_status) if failed else None
            return (
                NodeState.FAILED,
                f"Azure could not create the VM: {why or 'provisioning failed'}",
            )
        if power in {"deallocated", "deallocating", "stopped", "stopping"}:
            if self.spec.vm_priority == "lowpriority":
                return NodeState.PREEMPTED, f"Azure evicted the Spot VM (power state {power})"
            return NodeState.FAILED, f"the VM is {power} (stopped outside targets)"
        if provisioning == "succeeded" and power == "running":
            return NodeState.RUNNING, None
        return NodeState.CREATING, f"provisioning {provisioning or 'pending'}" + (
            f", power state {power}" if power else ""
        )

    def _private_ips(self) -> dict[str, str]:
        """VM resource id (lowercase) -> the private IP of its primary NIC."""
        s = self.settings()
        _, network = self._clients()
        found: dict[str, str] = {}
        with self._errors("read the nodes' network interfaces"):
            nics = network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(
                s.resource_group, self.scale_set
            )
            for nic in nics:
                props = nic.properties
                if not props or not props.virtual_machine or not props.virtual_machine.id:
                    continue
                configs = props.ip_configurations or []
                configs = sorted(configs, key=lambda c: not (c.properties and c.properties.primary))
                for config in configs:
                    if config.properties and config.properties.private_ip_address:
                        found[props.virtual_machine.id.lower()] = (
                            config.properties.private_ip_address
                        )
                        break
        return found

    def _read_host_keys(self, vm: VirtualMachineScaleSetVM) -> list[str]:
        """The VM's sshd host keys, through the Run Command API; [] when it cannot answer
        yet (the VM agent is still starting, ...)."""
        from azure.core.exceptions import HttpResponseError
        from azure.mgmt.compute import models as cm

        s = self.settings()
        compute, _ = self._clients()
        command = cm.RunCommandInput(command_id="RunShellScript", script=[HOST_KEYS_SCRIPT])
        try:
            with self._errors(f"read the host keys of node {vm.instance_id}"):
                result = compute.virtual_machine_scale_set_vms.begin_run_command(
                    s.resource_group, self.scale_set, str(vm.instance_id), command
                ).result()
        except AuthenticationError:
            raise
        except TargetsError as exc:  # e.g. 409 while the VM agent is not ready: ask later
            if isinstance(exc.__cause__, HttpResponseError):
                return []
            raise
        text = "\n".join(st.message or "" for st in (result.value or []))
        keys = []
        for line in text.splitlines():
            found = _KEY_LINE.match(line.strip())
            if found:
                keys.append(found.group(0))
        return keys

    def _host_keys_file(self) -> Path:
        return self.context.state_dir / "azure-host-keys.json"

    def _load_host_keys(self) -> dict[str, list[str]]:
        try:
            raw = json.loads(self._host_keys_file().read_text())
        except (OSError, ValueError):
            return {}
        return (
            {str(k): [str(x) for x in v] for k, v in raw.items()} if isinstance(raw, dict) else {}
        )

    def _save_host_keys(self, keys: dict[str, list[str]]) -> None:
        path = self._host_keys_file()
        if not keys and not path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(keys, indent=1, sort_keys=True))
        tmp.replace(path)


def _cache_key(vm: VirtualMachineScaleSetVM) -> str:
    vm_id = vm.properties.vm_id if vm.properties else None
    return f"{vm.instance_id}:{vm_id or ''}"


def _created_at(vm: VirtualMachineScaleSetVM) -> float:
    created = getattr(vm.properties, "time_created", None) if vm.properties else None
    return created.timestamp() if created is not None else time.time()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
