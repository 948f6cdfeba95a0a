"""The ``localsshd`` provider: every node of the cluster is an sshd of its own on 127.0.0.1.

``targets create lab --type cluster --provider localsshd --max-nodes 2`` gives a cluster
whose nodes are OpenSSH servers on this machine's loopback, each with its own port, host
key and config, letting in only the cluster's key, as the user who created the cluster.
It is the smallest real provider: nothing is emulated, and it shows everything a provider
does (nodes made and removed, states, host keys from a trusted channel, state kept on
disk so that every process of the cluster sees the same nodes).

A node is a folder ``<state_dir>/nodes/<id>`` (mode 0700) holding its ``sshd_config``,
host key, ``authorized_keys`` (the cluster's public key), ``node.json`` (port, creation
time), pid file and log. Its sshd runs
as a daemon, so it outlives the command that created it. The host key is read from that
folder (the trusted channel: this machine's file system, never what the port presents).

Design choice: ``StrictModes no``. The node's files are written by this provider, 0600 in
a 0700 folder, but the folder may lie below a world-writable one (``/tmp``), which
StrictModes refuses for any path outside the user's home.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from targets.clusters.provider import Node, NodeProvider, NodeState
from targets.errors import TargetsError, UsageError

__all__ = ["LocalSSHDOptions", "LocalSSHDProvider"]

LOG_TAIL_LINES = 10


class LocalSSHDOptions(BaseModel):
    """``provider_options`` of a localsshd cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sshd: str = Field(
        default="/usr/sbin/sshd", description="The OpenSSH server binary the nodes run."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ssh_banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(4) == b"SSH-"
    except OSError:
        return False


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    lines = path.read_text(errors="replace").strip().splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


class LocalSSHDProvider(NodeProvider):
    """Nodes are sshd daemons on this machine's loopback, one port each."""

    name: ClassVar[str] = "localsshd"
    description: ClassVar[str] = "nodes are sshd daemons on this machine's loopback"
    options_model: ClassVar[type[BaseModel]] = LocalSSHDOptions

    @property
    def _sshd(self) -> str:
        assert isinstance(self.options, LocalSSHDOptions)
        return self.options.sshd

    @property
    def _nodes_dir(self) -> Path:
        return self.context.state_dir / "nodes"

    @staticmethod
    def _username() -> str:
        return pwd.getpwuid(os.geteuid()).pw_name

    # -- NodeProvider ----------------------------------------------------------------------

    def check(self) -> None:
        if not os.access(self._sshd, os.X_OK):
            raise UsageError(
                f"there is no OpenSSH server at {self._sshd}",
                hint="install it (Debian/Ubuntu: apt-get install openssh-server), or set "
                "provider option sshd to its path",
            )
        if shutil.which("ssh-keygen") is None:
            raise UsageError(
                "ssh-keygen is not installed (the nodes' host keys are made with it)",
                hint="install OpenSSH (Debian/Ubuntu: apt-get install openssh-client)",
            )

    def list_nodes(self) -> list[Node]:
        if not self._nodes_dir.is_dir():
            return []
        folders = [p for p in self._nodes_dir.iterdir() if (p / "node.json").exists()]
        return [self._node(p) for p in sorted(folders, key=lambda p: self._index(p.name))]

    def add_nodes(self, count: int) -> list[Node]:
        if count < 0:
            raise UsageError(f"cannot add {count} nodes")
        self._nodes_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return [self._start(self._new_folder()) for _ in range(count)]

    def remove_nodes(self, ids: list[str]) -> None:
        for node_id in ids:
            folder = self._nodes_dir / node_id
            if self._index(node_id) < 0 or not folder.is_dir():
                continue  # not one of ours, or gone already
            pid = self._pid(folder)
            if pid is not None:
                self._stop(pid)
            shutil.rmtree(folder, ignore_errors=True)

    def delete_cluster(self) -> None:
        super().delete_cluster()
        shutil.rmtree(self._nodes_dir, ignore_errors=True)

    # -- one node --------------------------------------------------------------------------

    def _index(self, node_id: str) -> int:
        prefix = f"{self.cluster}-"
        rest = node_id[len(prefix) :]
        return int(rest) if node_id.startswith(prefix) and rest.isdigit() else -1

    def _new_folder(self) -> Path:
        """A new node's folder, made atomically (two processes never get the same one)."""
        index = 0
        while True:
            folder = self._nodes_dir / f"{self.cluster}-{index}"
            try:
                folder.mkdir(mode=0o700)
                return folder
            except FileExistsError:
                index += 1

    def _start(self, folder: Path) -> Node:
        host_key = folder / "ssh_host_ed25519_key"
        keygen = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", folder.name, "-f", str(host_key)],
            capture_output=True,
            text=True,
        )
        if keygen.returncode != 0:
            raise TargetsError(f"ssh-keygen failed for node {folder.name}: {keygen.stderr}")
        authorized = folder / "authorized_keys"
        authorized.write_text(self.context.public_key.strip() + "\n")
        authorized.chmod(0o600)
        port = _free_port()
        config = folder / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\n"
            f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            f"AllowUsers {self._username()}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nUseDNS no\nPrintMotd no\nLogLevel VERBOSE\n"
        )
        record = {"port": port, "created_at": time.time()}
        (folder / "node.json").write_text(json.dumps(record))
        # sshd binds its port, then daemonizes: exit 0 means it listens (and outlives us).
        started = subprocess.run(
            [self._sshd, "-f", str(config), "-E", str(folder / "sshd.log")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            (folder / "failed").write_text(
                f"sshd exited with {started.returncode}: {started.stderr.strip()}\n"
            )
        return self._node(folder)

    def _pid(self, folder: Path) -> int | None:
        """The pid of the node's sshd, if it runs (checked: it is the sshd of this config)."""
        try:
            pid = int((folder / "sshd.pid").read_text().strip())
            # sshd retitles itself ("sshd: /usr/sbin/sshd -f CONFIG [listener] ..."):
            # the config's path is in the title or, before that, among the arguments.
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(folder / "sshd_config").encode() in cmdline else None

    @staticmethod
    def _stop(pid: int) -> None:
        """Stop the node's sshd and the sessions it started (its process group)."""
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _node(self, folder: Path) -> Node:
        record = json.loads((folder / "node.json").read_text())
        port = int(record["port"])
        public = (folder / "ssh_host_ed25519_key.pub").read_text()
        base = Node(
            id=folder.name,
            state=NodeState.CREATING,
            address="127.0.0.1",
            ssh_port=port,
            username=self._username(),
            host_keys=(" ".join(public.split()[:2]),),
            hostname=socket.gethostname(),
            internal_address="127.0.0.1",
            network_interface="lo",
            created_at=float(record["created_at"]),
        )
        failed = folder / "failed"
        if failed.exists():
            reason = failed.read_text().strip()
            return base.with_state(NodeState.FAILED, f"{reason}\n{_tail(folder / 'sshd.log')}")
        if self._pid(folder) is not None and _ssh_banner(port):
            return base.with_state(NodeState.RUNNING)
        if (folder / "sshd.pid").exists() and self._pid(folder) is None:
            log = _tail(folder / "sshd.log")
            return base.with_state(NodeState.FAILED, f"the node's sshd is gone: {log}")
        return base
