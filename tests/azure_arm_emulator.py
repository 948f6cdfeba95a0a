"""A local emulator of the Azure Resource Manager calls that targets makes, with
bearer-token checks, ``api-version`` checks and ARM's error JSON. The real Azure SDK
clients talk to it over plain http on 127.0.0.1; a fake ``az`` on PATH gives
azure-identity's AzureCliCredential its token, so nothing leaves the machine.

What it answers:

* Databricks (the ``databricks`` kind's lookup by workspace name):
  ``GET .../providers/Microsoft.Databricks/workspaces/{name}``.
* Compute (the ``azure`` cluster provider), a Uniform VM scale set and its VMs:
  ``PUT/GET/PATCH/DELETE .../Microsoft.Compute/virtualMachineScaleSets/{name}``,
  ``POST .../virtualMachineScaleSets/{name}/delete`` (delete instances),
  ``GET .../virtualMachineScaleSets/{name}/virtualMachines[?$expand=instanceView]``,
  ``GET .../virtualMachines/{id}[/instanceView]``,
  ``POST .../virtualMachines/{id}/runCommand`` (RunShellScript; ``cat`` of the host keys).
* Network: ``GET .../virtualMachineScaleSets/{name}/networkInterfaces`` (the VMs' private
  IPs) and ``PUT/GET/DELETE .../Microsoft.Network/virtualNetworks/{name}``.
* Long-running operations as ARM does them: the first answer carries
  ``Azure-AsyncOperation`` (and ``Location`` for POST and DELETE) headers with
  ``retry-after-ms: 10`` (azure-core reads a 0 as
  "no hint" and would wait 30 s); ``GET .../providers/Microsoft.{Compute,Network}/locations/{loc}/
  operations/{id}`` says ``InProgress`` once and then ``Succeeded``;
  ``.../operationResults/{id}`` gives the final result (the run command's output).

State is in memory. New scale-set VMs are ``Creating`` for ``ready_after`` looks (lists or
gets), then ``Succeeded`` and ``PowerState/running``; deleted ones are ``Deleting`` for one
look, then gone. Test hooks: :meth:`ArmEmulator.evict` (a Spot eviction: the VM is
deallocated and stays), :meth:`ArmEmulator.fail_instance`, :meth:`ArmEmulator.add_vnet`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

__all__ = ["ArmEmulator", "fake_az"]

_SUB_RG = r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
_DATABRICKS = re.compile(_SUB_RG + r"Microsoft\.Databricks/workspaces/(?P<name>[^/?]+)$", re.I)
_VMSS = _SUB_RG + r"Microsoft\.Compute/virtualMachineScaleSets/(?P<name>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("vmss", re.compile(_VMSS + r"$", re.I)),
    ("delete_instances", re.compile(_VMSS + r"/delete$", re.I)),
    ("vms", re.compile(_VMSS + r"/virtualMachines$", re.I)),
    ("vm", re.compile(_VMSS + r"/virtualMachines/(?P<iid>[^/]+)$", re.I)),
    ("instance_view", re.compile(_VMSS + r"/virtualMachines/(?P<iid>[^/]+)/instanceView$", re.I)),
    ("run_command", re.compile(_VMSS + r"/virtualMachines/(?P<iid>[^/]+)/runCommand$", re.I)),
    ("nics", re.compile(_VMSS + r"/networkInterfaces$", re.I)),
    ("vnet", re.compile(_SUB_RG + r"Microsoft\.Network/virtualNetworks/(?P<name>[^/]+)$", re.I)),
    (
        "operation",
        re.compile(
            r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.(?:Compute|Network)/locations/"
            r"(?P<loc>[^/]+)/(?P<kind>operations|operationResults)/(?P<op>[^/]+)$",
            re.I,
        ),
    ),
]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _host_key(seed: str) -> str:
    """A well-formed ssh-ed25519 public key, the same for the same seed."""
    raw = hashlib.sha256(seed.encode()).digest()
    blob = b"".join(len(p).to_bytes(4, "big") + p for p in (b"ssh-ed25519", raw))
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


class _Instance:
    def __init__(self, iid: str, computer_name: str, ip: str) -> None:
        self.iid = iid
        self.vm_id = str(uuid.uuid4())
        self.computer_name = computer_name
        self.ip = ip
        self.provisioning = "Creating"
        self.power: str | None = None
        self.looks = 0
        self.message: str | None = None
        self.host_key = _host_key(self.vm_id)


class ArmEmulator:
    def __init__(
        self,
        token: str,
        workspaces: dict[tuple[str, str, str], str] | None = None,
        *,
        resource_groups: set[str] | None = None,
        ready_after: int = 1,
    ) -> None:
        """``workspaces`` maps (subscription, resource group, name) -> Databricks workspace
        URL. ``resource_groups`` (lowercase names) are the groups that exist (None: any).
        A new VM is running after ``ready_after`` looks at it."""
        self.token = token
        self.workspaces = workspaces or {}
        self.resource_groups = resource_groups
        self.ready_after = ready_after
        self.requests: list[str] = []
        """Every request's path (with the query), in order."""
        self.calls: list[tuple[str, str, Any]] = []
        """Every request as (method, path without the query, JSON body or None)."""
        self.scale_sets: dict[tuple[str, str, str], dict[str, Any]] = {}
        """Scale sets by (subscription, resource group, name), all lowercase: ARM's JSON."""
        self.instances: dict[tuple[str, str, str], dict[str, _Instance]] = {}
        self.vnets: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.run_commands: list[tuple[str, str, list[str]]] = []
        """(scale set, instance id, script) of every run command."""
        self._operations: dict[str, dict[str, Any]] = {}
        self._next_iid: dict[tuple[str, str, str], int] = {}
        self._lock = threading.RLock()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._handle("GET")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def _handle(self, method: str) -> None:
                emulator.requests.append(self.path)
                path, _, query = self.path.partition("?")
                params = {k: v[-1] for k, v in parse_qs(query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw.strip() else None
                emulator.calls.append((method, path, body))
                if "api-version" not in params:
                    return self._send(
                        400, _error("MissingApiVersionParameter", "api-version is required")
                    )
                if self.headers.get("Authorization") != f"Bearer {emulator.token}":
                    return self._send(
                        401,
                        _error("InvalidAuthenticationToken", "The access token is invalid."),
                    )
                with emulator._lock:
                    code, answer, headers = emulator._route(method, path, params, body, self)
                self._send(code, answer, headers)

            def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ArmEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- test hooks ------------------------------------------------------------------------

    def add_vnet(self, subscription: str, resource_group: str, name: str, subnet: str) -> str:
        """An existing virtual network with one subnet; returns the subnet's id."""
        vnet_id = (
            f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"Microsoft.Network/virtualNetworks/{name}"
        )
        with self._lock:
            self.vnets[(subscription.lower(), resource_group.lower(), name.lower())] = {
                "id": vnet_id,
                "name": name,
                "type": "Microsoft.Network/virtualNetworks",
                "location": "westeurope",
                "properties": {
                    "provisioningState": "Succeeded",
                    "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                    "subnets": [
                        {
                            "id": f"{vnet_id}/subnets/{subnet}",
                            "name": subnet,
                            "properties": {"addressPrefix": "10.1.0.0/24"},
                        }
                    ],
                },
            }
        return f"{vnet_id}/subnets/{subnet}"

    def scale_set(self, subscription: str, resource_group: str, name: str) -> dict[str, Any]:
        """The scale set's ARM JSON as the provider last wrote it (KeyError: none)."""
        key = (subscription.lower(), resource_group.lower(), name.lower())
        with self._lock:
            copy: dict[str, Any] = json.loads(json.dumps(self.scale_sets[key]))
        return copy

    def _instance(self, instance_id: str) -> _Instance:
        for instances in self.instances.values():
            if instance_id in instances:
                return instances[instance_id]
        raise KeyError(instance_id)

    def evict(self, instance_id: str) -> None:
        """A Spot eviction with the Deallocate policy: the VM stays, deallocated."""
        with self._lock:
            vm = self._instance(instance_id)
            vm.provisioning, vm.power, vm.looks = "Succeeded", "deallocated", 10**6

    def fail_instance(self, instance_id: str, message: str = "Allocation failed.") -> None:
        with self._lock:
            vm = self._instance(instance_id)
            vm.provisioning, vm.power, vm.message = "Failed", None, message
            vm.looks = 10**6

    def host_key(self, instance_id: str) -> str:
        with self._lock:
            return self._instance(instance_id).host_key

    # -- the routes --------------------------------------------------------------------------

    def _route(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: Any,
        handler: BaseHTTPRequestHandler,
    ) -> tuple[int, Any, dict[str, str]]:
        found = _DATABRICKS.match(path)
        if found and method == "GET":
            return self._databricks(path, found)
        for name, pattern in _ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            groups = match.groupdict()
            if name == "operation":
                return self._operation(groups["kind"].lower(), groups["op"])
            rg = groups["rg"]
            if self.resource_groups is not None and rg.lower() not in self.resource_groups:
                return (
                    404,
                    _error("ResourceGroupNotFound", f"Resource group '{rg}' could not be found."),
                    {},
                )
            key = (groups["sub"].lower(), rg.lower(), groups["name"].lower())
            route = getattr(self, f"_{name}_{method.lower()}", None)
            if route is None:
                break
            result: tuple[int, Any, dict[str, str]] = route(key, groups, params, body)
            return result
        return 404, _error("NotFound", f"no route for {method} {path} in the emulator"), {}

    def _databricks(self, path: str, found: re.Match[str]) -> tuple[int, Any, dict[str, str]]:
        key = (found["sub"], found["rg"], found["name"])
        if key not in self.workspaces:
            return (
                404,
                _error(
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.Databricks/workspaces/{found['name']}' under "
                    f"resource group '{found['rg']}' was not found.",
                ),
                {},
            )
        sub, _rg, name = key
        return (
            200,
            {
                "id": path,
                "name": name,
                "type": "Microsoft.Databricks/workspaces",
                "location": "westeurope",
                "properties": {
                    "workspaceUrl": self.workspaces[key],
                    "managedResourceGroupId": f"/subscriptions/{sub}/"
                    f"resourceGroups/databricks-rg-{name}",
                    "provisioningState": "Succeeded",
                },
            },
            {},
        )

    # long-running operations

    def _start(
        self,
        sub: str,
        location: str,
        provider: str,
        *,
        result: Any = None,
        on_done: Any = None,
        location_header: bool = False,
    ) -> dict[str, str]:
        op = str(uuid.uuid4())
        self._operations[op] = {"polls": 0, "result": result, "on_done": on_done}
        base = f"{self.url}/subscriptions/{sub}/providers/Microsoft.{provider}/locations/{location}"
        headers = {
            "Azure-AsyncOperation": f"{base}/operations/{op}?api-version=2024-07-01",
            "retry-after-ms": "10",
        }
        if location_header:
            headers["Location"] = f"{base}/operationResults/{op}?api-version=2024-07-01"
        return headers

    def _operation(self, kind: str, op: str) -> tuple[int, Any, dict[str, str]]:
        state = self._operations.get(op)
        if state is None:
            return 404, _error("NotFound", f"no operation {op}"), {}
        if kind == "operationresults":
            if state["result"] is None:
                return 204, None, {}
            return 200, state["result"], {}
        state["polls"] += 1
        if state["polls"] < 2:
            return 200, {"name": op, "status": "InProgress"}, {"retry-after-ms": "10"}
        if state["on_done"] is not None:
            state["on_done"]()
            state["on_done"] = None
        return 200, {"name": op, "status": "Succeeded"}, {}

    # scale sets

    def _vmss_get(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vmss = self.scale_sets.get(key)
        if vmss is None:
            return 404, self._not_found("Microsoft.Compute/virtualMachineScaleSets", groups), {}
        return 200, vmss, {}

    def _not_found(self, kind: str, groups: dict[str, str]) -> dict[str, Any]:
        return _error(
            "ResourceNotFound",
            f"The Resource '{kind}/{groups['name']}' under resource group '{groups['rg']}' "
            f"was not found.",
        )

    def _vmss_put(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not body.get("location"):
            return 400, _error("LocationRequired", "The location property is required."), {}
        sku = body.get("sku") or {}
        if not sku.get("name"):
            return 400, _error("InvalidParameter", "Required parameter 'sku.name' is missing."), {}
        profile = (body.get("properties") or {}).get("virtualMachineProfile") or {}
        for nic in (profile.get("networkProfile") or {}).get("networkInterfaceConfigurations", []):
            for ipc in nic.get("properties", {}).get("ipConfigurations", []):
                subnet = ((ipc.get("properties") or {}).get("subnet") or {}).get("id", "")
                if not self._subnet_exists(subnet):
                    return (
                        400,
                        _error(
                            "InvalidResourceReference",
                            f"Resource {subnet} referenced by resource {groups['name']} was "
                            f"not found. Please make sure that the referenced resource exists, "
                            f"and that both resources are in the same region.",
                        ),
                        {},
                    )
        existed = key in self.scale_sets
        vmss = json.loads(json.dumps(body))
        vmss.update(
            id=(
                f"/subscriptions/{groups['sub']}/resourceGroups/{groups['rg']}/providers/"
                f"Microsoft.Compute/virtualMachineScaleSets/{groups['name']}"
            ),
            name=groups["name"],
            type="Microsoft.Compute/virtualMachineScaleSets",
        )
        vmss["properties"]["provisioningState"] = "Updating" if existed else "Creating"
        vmss["properties"].setdefault("uniqueId", str(uuid.uuid4()))
        vmss["properties"].setdefault("orchestrationMode", "Uniform")
        self.scale_sets[key] = vmss
        self.instances.setdefault(key, {})
        self._next_iid.setdefault(key, 0)
        self._resize(key, int(sku.get("capacity") or 0))

        def done() -> None:
            if key in self.scale_sets:
                self.scale_sets[key]["properties"]["provisioningState"] = "Succeeded"

        headers = self._start(groups["sub"], body["location"], "Compute", on_done=done)
        return (200 if existed else 201), vmss, headers

    def _vmss_patch(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vmss = self.scale_sets.get(key)
        if vmss is None:
            return 404, self._not_found("Microsoft.Compute/virtualMachineScaleSets", groups), {}
        capacity = ((body or {}).get("sku") or {}).get("capacity")
        if capacity is not None:
            vmss["sku"]["capacity"] = int(capacity)
            self._resize(key, int(capacity))
        vmss["properties"]["provisioningState"] = "Updating"

        def done() -> None:
            if key in self.scale_sets:
                self.scale_sets[key]["properties"]["provisioningState"] = "Succeeded"

        return 200, vmss, self._start(groups["sub"], vmss["location"], "Compute", on_done=done)

    def _vmss_delete(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vmss = self.scale_sets.pop(key, None)
        if vmss is None:
            return 204, None, {}
        self.instances.pop(key, None)
        headers = self._start(groups["sub"], vmss["location"], "Compute", location_header=True)
        return 202, None, headers

    def _resize(self, key: tuple[str, str, str], capacity: int) -> None:
        vmss = self.scale_sets[key]
        vmss["sku"]["capacity"] = capacity
        instances = self.instances[key]
        alive = [i for i in instances.values() if i.provisioning != "Deleting"]
        prefix = (
            vmss["properties"]["virtualMachineProfile"]
            .get("osProfile", {})
            .get("computerNamePrefix")
            or key[2]
        )
        while len(alive) < capacity:
            n = self._next_iid[key]
            self._next_iid[key] = n + 1
            vm = _Instance(str(n), f"{prefix}{n:06x}", f"10.0.0.{4 + n}")
            instances[vm.iid] = vm
            alive.append(vm)
        for vm in sorted(alive, key=lambda v: -int(v.iid))[: max(0, len(alive) - capacity)]:
            vm.provisioning, vm.looks = "Deleting", 0

    def _delete_instances_post(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vmss = self.scale_sets.get(key)
        if vmss is None:
            return 404, self._not_found("Microsoft.Compute/virtualMachineScaleSets", groups), {}
        ids = [str(i) for i in (body or {}).get("instanceIds") or []]
        instances = self.instances[key]
        for iid in ids:
            if iid not in instances or instances[iid].provisioning == "Deleting":
                return (
                    400,
                    _error(
                        "InvalidParameter",
                        f"The provided instanceId {iid} is not an active Virtual Machine Scale "
                        f"Set VM instanceId.",
                    ),
                    {},
                )
        for iid in ids:
            instances[iid].provisioning, instances[iid].looks = "Deleting", 0
        vmss["sku"]["capacity"] = sum(1 for i in instances.values() if i.provisioning != "Deleting")

        def done() -> None:
            for iid in ids:
                instances.pop(iid, None)

        headers = self._start(
            groups["sub"], vmss["location"], "Compute", on_done=done, location_header=True
        )
        return 202, None, headers

    # scale-set VMs

    def _look(self, key: tuple[str, str, str]) -> list[_Instance]:
        """One look at the scale set's VMs: each moves on one step."""
        instances = self.instances.get(key, {})
        for vm in list(instances.values()):
            vm.looks += 1
            if vm.provisioning == "Deleting":
                if vm.looks > 1:
                    del instances[vm.iid]
            elif vm.provisioning == "Creating" and vm.looks > self.ready_after:
                vm.provisioning, vm.power = "Succeeded", "running"
        return sorted(instances.values(), key=lambda v: int(v.iid))

    def _vm_json(
        self, key: tuple[str, str, str], groups: dict[str, str], vm: _Instance, expand: bool
    ) -> dict[str, Any]:
        vmss = self.scale_sets[key]
        base = (
            f"/subscriptions/{groups['sub']}/resourceGroups/{groups['rg']}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{vmss['name']}/virtualMachines/{vm.iid}"
        )
        os_profile = vmss["properties"]["virtualMachineProfile"].get("osProfile", {})
        answer: dict[str, Any] = {
            "id": base,
            "name": f"{vmss['name']}_{vm.iid}",
            "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            "location": vmss["location"],
            "instanceId": vm.iid,
            "sku": {"name": vmss["sku"]["name"], "tier": "Standard"},
            "properties": {
                "latestModelApplied": True,
                "vmId": vm.vm_id,
                "provisioningState": vm.provisioning,
                "osProfile": {
                    "computerName": vm.computer_name,
                    "adminUsername": os_profile.get("adminUsername"),
                },
                "networkProfile": {
                    "networkInterfaces": [{"id": f"{base}/networkInterfaces/targets-nic"}]
                },
            },
        }
        if expand:
            answer["properties"]["instanceView"] = self._instance_view(vm)
        return answer

    def _instance_view(self, vm: _Instance) -> dict[str, Any]:
        statuses: list[dict[str, Any]] = []
        if vm.provisioning == "Failed":
            statuses.append(
                {
                    "code": "ProvisioningState/failed/AllocationFailed",
                    "level": "Error",
                    "displayStatus": "Provisioning failed",
                    "message": vm.message,
                }
            )
        else:
            statuses.append(
                {
                    "code": f"ProvisioningState/{vm.provisioning.lower()}",
                    "level": "Info",
                    "displayStatus": f"Provisioning {vm.provisioning.lower()}",
                }
            )
        if vm.power:
            statuses.append(
                {
                    "code": f"PowerState/{vm.power}",
                    "level": "Info",
                    "displayStatus": f"VM {vm.power}",
                }
            )
        return {"computerName": vm.computer_name, "statuses": statuses}

    def _vms_get(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if key not in self.scale_sets:
            return 404, self._not_found("Microsoft.Compute/virtualMachineScaleSets", groups), {}
        expand = params.get("$expand", "").lower() == "instanceview"
        vms = [self._vm_json(key, groups, vm, expand) for vm in self._look(key)]
        return 200, {"value": vms}, {}

    def _find_vm(
        self, key: tuple[str, str, str], groups: dict[str, str]
    ) -> tuple[_Instance | None, tuple[int, Any, dict[str, str]]]:
        if key not in self.scale_sets:
            return None, (
                404,
                self._not_found("Microsoft.Compute/virtualMachineScaleSets", groups),
                {},
            )
        self._look(key)
        vm = self.instances[key].get(groups["iid"])
        if vm is None:
            return None, (
                404,
                _error(
                    "NotFound",
                    f"The entity was not found in this Azure location. (instance {groups['iid']})",
                ),
                {},
            )
        return vm, (200, None, {})

    def _vm_get(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vm, failure = self._find_vm(key, groups)
        if vm is None:
            return failure
        expand = params.get("$expand", "").lower() == "instanceview"
        return 200, self._vm_json(key, groups, vm, expand), {}

    def _instance_view_get(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vm, failure = self._find_vm(key, groups)
        if vm is None:
            return failure
        return 200, self._instance_view(vm), {}

    def _run_command_post(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vm, failure = self._find_vm(key, groups)
        if vm is None:
            return failure
        if vm.power != "running":
            return (
                409,
                _error(
                    "OperationNotAllowed",
                    f"Operation 'RunCommand' is not allowed on VM '{vm.computer_name}' since "
                    f"the VM is {vm.power or vm.provisioning.lower()}.",
                ),
                {},
            )
        body = body or {}
        if body.get("commandId") != "RunShellScript":
            return 400, _error("InvalidParameter", "commandId must be RunShellScript here"), {}
        script = [str(line) for line in body.get("script") or []]
        self.run_commands.append((groups["name"], vm.iid, script))
        stdout = (
            f"{vm.host_key} root@{vm.computer_name}\n" if "ssh_host_" in "".join(script) else ""
        )
        result = {
            "value": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Provisioning succeeded",
                    "message": f"Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n",
                }
            ]
        }
        location = self.scale_sets[key]["location"]
        headers = self._start(
            groups["sub"], location, "Compute", result=result, location_header=True
        )
        return 202, None, headers

    # network

    def _nics_get(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if key not in self.scale_sets:
            return 404, self._not_found("Microsoft.Compute/virtualMachineScaleSets", groups), {}
        nics = []
        for vm in sorted(self.instances[key].values(), key=lambda v: int(v.iid)):
            vm_json = self._vm_json(key, groups, vm, expand=False)
            nic_id = vm_json["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
            nics.append(
                {
                    "id": nic_id,
                    "name": "targets-nic",
                    "properties": {
                        "primary": True,
                        "virtualMachine": {"id": vm_json["id"]},
                        "ipConfigurations": [
                            {
                                "id": f"{nic_id}/ipConfigurations/targets-ip",
                                "name": "targets-ip",
                                "properties": {
                                    "primary": True,
                                    "privateIPAddress": vm.ip,
                                    "privateIPAllocationMethod": "Dynamic",
                                },
                            }
                        ],
                    },
                }
            )
        return 200, {"value": nics}, {}

    def _subnet_exists(self, subnet_id: str) -> bool:
        found = re.match(
            _SUB_RG + r"Microsoft\.Network/virtualNetworks/(?P<name>[^/]+)/subnets/(?P<sn>[^/]+)$",
            subnet_id,
            re.I,
        )
        if found is None:
            return False
        vnet = self.vnets.get((found["sub"].lower(), found["rg"].lower(), found["name"].lower()))
        if vnet is None:
            return False
        subnets = vnet["properties"].get("subnets") or []
        return any(s.get("name", "").lower() == found["sn"].lower() for s in subnets)

    def _vnet_get(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vnet = self.vnets.get(key)
        if vnet is None:
            return 404, self._not_found("Microsoft.Network/virtualNetworks", groups), {}
        return 200, vnet, {}

    def _vnet_put(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not body.get("location"):
            return 400, _error("LocationRequired", "The location property is required."), {}
        existed = key in self.vnets
        vnet_id = (
            f"/subscriptions/{groups['sub']}/resourceGroups/{groups['rg']}/providers/"
            f"Microsoft.Network/virtualNetworks/{groups['name']}"
        )
        vnet = json.loads(json.dumps(body))
        vnet.update(id=vnet_id, name=groups["name"], type="Microsoft.Network/virtualNetworks")
        vnet.setdefault("properties", {})["provisioningState"] = "Succeeded"
        for subnet in vnet["properties"].get("subnets") or []:
            subnet["id"] = f"{vnet_id}/subnets/{subnet.get('name')}"
        self.vnets[key] = vnet
        headers = self._start(groups["sub"], body["location"], "Network")
        return (200 if existed else 201), vnet, headers

    def _vnet_delete(
        self, key: tuple[str, str, str], groups: dict[str, str], params: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        vnet = self.vnets.pop(key, None)
        if vnet is None:
            return 204, None, {}
        headers = self._start(groups["sub"], vnet["location"], "Network", location_header=True)
        return 202, None, headers


def fake_az(folder: Path, token: str | None) -> Path:
    """An ``az`` that answers ``az account get-access-token`` as the real one does after
    ``az login`` (or, with ``token=None``, as it does before)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "az"
    if token is None:
        body = "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n"
    else:
        answer = json.dumps(
            {
                "accessToken": token,
                "expiresOn": "2099-01-01 00:00:00.000000",
                "expires_on": 4070908800,
                "subscription": "sub",
                "tenant": "tenant",
                "tokenType": "Bearer",
            }
        )
        body = f"cat <<'JSON'\n{answer}\nJSON\n"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return folder
