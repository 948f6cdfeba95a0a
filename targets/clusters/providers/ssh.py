"""The ``ssh`` provider: a cluster made of machines you attached already (``vm`` targets).

``targets create lab --type cluster --provider ssh --hosts vm1,vm2 --max-nodes 2`` turns
attached SSH machines into the nodes of a cluster, so that multi-node runs (torchrun,
mpirun, TF_CONFIG) work on them. Nothing is created or destroyed: "adding" a node takes a
machine of the list into use, "removing" it gives it back. At creation the cluster's
public key is added to each machine's ``~/.ssh/authorized_keys`` (connecting with the
credentials you attached it with), so that the cluster and its nodes reach each other
with one key; ``targets delete`` takes it out again. Host keys come from the workspace's
``known_hosts``, where ``targets attach`` verified them.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from targets.clusters.provider import Node, NodeProvider, NodeState
from targets.errors import ConnectionFailed, TargetsError, UsageError
from targets.ssh.hostkeys import known_hosts_name

__all__ = ["SSHProvider", "SSHProviderOptions"]


class SSHProviderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: list[str] = Field(min_length=1, description="Names of attached vm targets.")


class SSHProvider(NodeProvider):
    name = "ssh"
    description = "attached vm targets used as the nodes of a cluster"
    options_model = SSHProviderOptions

    @property
    def hosts(self) -> list[str]:
        assert isinstance(self.options, SSHProviderOptions)
        return list(self.options.hosts)

    def _workspace(self) -> Any:
        from targets.workspace import Workspace

        if self.context.workspace_dir is None:
            raise UsageError("the ssh provider needs a workspace")
        return Workspace(self.context.workspace_dir.parent)

    def _target(self, host: str) -> Any:
        ws = self._workspace()
        record = ws.target_record(host)
        if record.kind != "vm":
            raise UsageError(
                f"{host!r} is a {record.kind} target; the ssh provider takes vm targets",
                hint=f"targets attach {host} --address ... (a machine over SSH)",
            )
        return ws.get_target(host)

    def check(self) -> None:
        if len(set(self.hosts)) != len(self.hosts):
            raise UsageError("--hosts names a machine twice")
        if self.spec.max_nodes > len(self.hosts):
            raise UsageError(
                f"--max-nodes {self.spec.max_nodes} is more than the {len(self.hosts)} "
                "machine(s) in --hosts",
                hint=f"--max-nodes {len(self.hosts)}, or attach more machines",
            )
        for host in self.hosts:
            self._target(host).close()

    # -- what the provider remembers ----------------------------------------------------

    @property
    def _file(self) -> Path:
        return self.context.state_dir / "ssh-nodes.json"

    def _load(self) -> dict[str, Any]:
        if self._file.exists():
            data: dict[str, Any] = json.loads(self._file.read_text())
            return data
        return {"machines": {}, "in_use": []}

    def _save(self, data: dict[str, Any]) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_name(".ssh-nodes.json.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._file)

    # -- the contract ---------------------------------------------------------------------

    def create_cluster(self) -> None:
        import paramiko

        data = self._load()
        line = self.context.public_key.strip()
        for host in self.hosts:
            target = self._target(host)
            try:
                ssh = target.connection()
                script = (
                    "umask 077; mkdir -p ~/.ssh; touch ~/.ssh/authorized_keys; "
                    f"grep -qxF {shlex.quote(line)} ~/.ssh/authorized_keys || "
                    f"echo {shlex.quote(line)} >> ~/.ssh/authorized_keys; hostname"
                )
                code, out, err = ssh.run(script)
                if code != 0:
                    raise ConnectionFailed(
                        f"could not add the cluster's key on {host}: "
                        f"{err.decode(errors='replace').strip()}"
                    )
                settings = ssh.settings
                name = known_hosts_name(settings.hostname, settings.port)
                keys = paramiko.HostKeys()
                known = target.context.state_dir / "known_hosts"
                if known.exists():
                    keys.load(str(known))
                found = keys.lookup(name) or {}
                data["machines"][host] = {
                    "address": settings.hostname,
                    "ssh_port": settings.port,
                    "username": settings.username,
                    "hostname": out.decode().strip().splitlines()[-1] if out.strip() else None,
                    "host_keys": [f"{k.get_name()} {k.get_base64()}" for k in found.values()],
                }
            finally:
                target.close()
        self._save(data)

    def list_nodes(self) -> list[Node]:
        data = self._load()
        nodes = []
        for host in data["in_use"]:
            machine = data["machines"].get(host)
            if machine is None:
                continue
            nodes.append(
                Node(
                    id=host,
                    state=NodeState.RUNNING,
                    address=machine["address"],
                    ssh_port=int(machine["ssh_port"]),
                    username=machine["username"],
                    host_keys=tuple(machine["host_keys"]),
                    hostname=machine.get("hostname"),
                    created_at=float(machine.get("since") or time.time()),
                )
            )
        return nodes

    def add_nodes(self, count: int) -> list[Node]:
        data = self._load()
        free = [h for h in self.hosts if h not in data["in_use"] and h in data["machines"]]
        taken = free[:count]
        for host in taken:
            data["machines"][host]["since"] = time.time()
        data["in_use"] = list(data["in_use"]) + taken
        self._save(data)
        return [n for n in self.list_nodes() if n.id in taken]

    def remove_nodes(self, ids: list[str]) -> None:
        data = self._load()
        data["in_use"] = [h for h in data["in_use"] if h not in ids]
        self._save(data)

    def delete_cluster(self) -> None:
        line = self.context.public_key.strip()
        for host in self.hosts:
            try:
                target = self._target(host)
            except TargetsError:
                continue  # detached meanwhile
            try:
                target.connection().run(
                    f"f=~/.ssh/authorized_keys; [ -f $f ] && grep -vxF {shlex.quote(line)} $f "
                    "> $f.targets-tmp; mv $f.targets-tmp $f 2>/dev/null; true"
                )
            except TargetsError:
                pass  # unreachable: the key stays; say so in the docs
            finally:
                target.close()
        self._file.unlink(missing_ok=True)
