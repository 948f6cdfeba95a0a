"""The ``vm`` target (aliases ``remote``, ``dsvm``): a Linux machine reachable over SSH.

Everything happens through the agent (a stdlib-only zipapp) started over one SSH
channel: ``python3 ~/.targets/agent/<version>/agent.pyz serve``. The first connection to
a machine uploads the agent into that versioned folder; later ones find it there, so a
warm operation is one SSH session and a few round trips on it. Runs are started by the
agent in their own session (setsid) and survive the client and the SSH connection.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from targets.compute._agent import (
    AgentClient,
    AgentError,
    AgentTarget,
    StreamAgentClient,
    agent_bundle,
)
from targets.compute.base import Capability
from targets.errors import ConnectionFailed, TargetsError

__all__ = ["VMOptions", "VMTarget"]

_MISSING = 42


class VMOptions(BaseModel):
    """``targets attach NAME --address ...`` options of the ``vm`` kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(description="Host name, IP address, or a Host alias of ~/.ssh/config.")
    ssh_port: int | None = Field(
        default=None, ge=1, le=65535, description="SSH port (default: ~/.ssh/config, else 22)."
    )
    username: str | None = Field(
        default=None, description="Login name (default: ~/.ssh/config, else your local user name)."
    )
    ssh_key: str | None = Field(default=None, description="Private key file.")
    use_agent: bool = Field(default=False, description="Use the keys of your SSH agent.")
    proxy_jump: str | None = Field(
        default=None,
        description="Reach the host through this SSH host, as OpenSSH's ProxyJump "
        "([user@]host[:port] or a ~/.ssh/config alias; a,b for a chain). Default: ~/.ssh/config.",
    )
    python: str = Field(
        default="python3", description="Python on the target for the agent and user-managed runs."
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise ValueError("give a host name, an IP address or a Host alias of ~/.ssh/config")
        return value

    @field_validator("proxy_jump")
    @classmethod
    def _proxy_jump(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from targets.errors import UsageError
        from targets.ssh.config import parse_destination

        hops = [hop.strip() for hop in value.split(",")]
        for hop in hops:
            if not hop or any(c.isspace() for c in hop):
                raise ValueError(
                    f"malformed jump host {hop!r}: write [USER@]HOST[:PORT] or a Host alias "
                    "of ~/.ssh/config, and A,B for a chain"
                )
            try:
                parse_destination(hop)
            except UsageError as exc:
                raise ValueError("; ".join(filter(None, [exc.message, exc.hint]))) from None
        return ",".join(hops)

    @field_validator("ssh_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"no key file at {path}")
        return str(path.resolve())


def _recv_exact(channel: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = channel.recv(n - len(data))
        if not part:
            break
        data += part
    return data


class _ChannelStream:
    """An SSH channel as the agent protocol's reader and writer, without paramiko's
    8 KiB file buffering: large writes go out in full-size SSH packets."""

    def __init__(self, channel: Any, pending: bytes = b"") -> None:
        self.channel = channel
        self.pending = pending

    def read(self, n: int) -> bytes:
        if self.pending:
            head, self.pending = self.pending[:n], self.pending[n:]
            return head
        return bytes(self.channel.recv(n))

    def write(self, data: bytes) -> int:
        self.channel.sendall(data)
        return len(data)

    def flush(self) -> None:
        return None

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Reads within this block give up (TimeoutError) after ``seconds`` at most,
        whatever the channel's own timeout: a reply that is due by then (the agent's
        ``wait``) never waits on a frozen machine for the whole I/O timeout."""
        if not hasattr(self.channel, "gettimeout"):  # a shared connection's stream
            yield
            return
        before = self.channel.gettimeout()
        limit = seconds if before is None else min(before, seconds)
        self.channel.settimeout(limit)
        try:
            yield
        finally:
            self.channel.settimeout(before)

    def close(self) -> None:
        from targets.ssh.channels import shutdown_write

        try:
            shutdown_write(self.channel)
        finally:
            self.channel.close()


class VMTarget(AgentTarget):
    """A Linux VM over SSH."""

    kind = "vm"
    aliases: ClassVar[tuple[str, ...]] = ("remote", "dsvm")
    description = "a Linux machine over SSH (like an Azure Data Science VM)"
    options_model = VMOptions
    capabilities = frozenset(
        {
            Capability.VIRTUALENV,
            Capability.CONDA,
            Capability.DOCKER,
            Capability.CANCEL,
            Capability.LIVE_LOGS,
        }
    )
    secret_names = ("password", "ssh_key_passphrase")

    _ssh: Any = None
    io_timeout: float | None = None
    """Seconds an agent operation may go without a byte before the connection counts as
    lost (None: wait as long as it takes). The cluster sets it for its nodes, so that a
    frozen node cannot stall the cluster."""

    @property
    def vm_options(self) -> VMOptions:
        assert isinstance(self.options, VMOptions)
        return self.options

    @property
    def default_python(self) -> str | None:  # type: ignore[override]
        return self.vm_options.python

    def connection(self) -> Any:
        """The SSH connection (opened lazily by its first use)."""
        if self._ssh is None:
            from targets.ssh.config import resolve_settings
            from targets.ssh.connection import SSHConnection

            o = self.vm_options
            settings = resolve_settings(
                o.address,
                port=o.ssh_port,
                username=o.username,
                key_file=o.ssh_key,
                use_agent=o.use_agent,
                proxy_jump=o.proxy_jump,
            )
            self._ssh = SSHConnection(
                settings,
                known_hosts=self.context.state_dir / "known_hosts",
                password=lambda: self.context.secret("password"),
                key_passphrase=lambda: self.context.secret("ssh_key_passphrase"),
                accept_host_key=self.context.accept_host_key,
                private_key=lambda: self.context.secret("ssh_private_key"),
            )
        return self._ssh

    def close(self) -> None:
        super().close()
        if self._ssh is not None:
            ssh, self._ssh = self._ssh, None
            ssh.close()

    # -- the agent ---------------------------------------------------------------------

    def _agent_path(self, version: str) -> str:
        return f".targets/agent/{version}/agent.pyz"

    def _start_command(self, version: str) -> str:
        path = self._agent_path(version)
        python = shlex.quote(self.vm_options.python)
        return f'A="$HOME/{path}"; [ -f "$A" ] || exit {_MISSING}; exec {python} "$A" serve'

    @property
    def mux_key(self) -> str | None:
        """The name of this target's shared connection (None: not shared, e.g. a target
        made by hand outside a workspace). See :mod:`targets.ssh.mux`."""
        root = self.context.workspace
        if root is None:
            return None
        from targets.ssh.mux import mux_key

        return mux_key(root, self.name, self.vm_options.model_dump(mode="json"))

    @classmethod
    def summary(cls, options: Mapping[str, Any]) -> str:
        return str(options.get("address") or "")

    def on_detach(self) -> None:
        """End this target's shared SSH connection (its mux process), if one runs."""
        key = self.mux_key
        if key:
            from targets.ssh.mux import stop

            stop(key)

    def _shared(self, command: str, *, spare: bool = False) -> Any:
        """``command`` started through the shared connection of this target, or None
        (none is served yet: it is started for the next command). ``spare``: the shared
        connection may start it ahead of time for the next command (the agent's
        ``serve``, which only waits for requests), see :mod:`targets.ssh.mux`."""
        key = self.mux_key
        # Not when an unknown host key may be accepted (that is for this process to
        # decide), nor once this process has its own connection.
        if key is None or self._ssh is not None or self.context.accept_host_key is not False:
            return None
        from targets.ssh import mux

        if mux.persist_seconds() <= 0:
            return None
        try:
            return mux.connect(key, command, spare=spare)
        except mux.MuxUnavailable:
            assert self.context.workspace is not None
            mux.spawn(self.context.workspace, self.name, key)
            return None

    def _exec(self, command: str, *, spare: bool = False) -> Any:
        """Start ``command`` on the target: through the shared connection of this target
        when one is served, else on a connection of our own."""
        shared = self._shared(command, spare=spare)
        return shared if shared is not None else self.connection().exec(command)

    def run_command(
        self, command: str, *, input: bytes | None = None, timeout: float | None = 60
    ) -> tuple[int, bytes, bytes]:
        """Run a shell command on the target to its end: ``(exit code, stdout, stderr)``,
        through the target's shared SSH connection when there is one (for kinds built on
        ``vm``, e.g. a scheduler's own commands). Raises :class:`ConnectionFailed` when
        it does not end within ``timeout`` seconds."""
        shared = self._shared(command)
        if shared is None:
            result: tuple[int, bytes, bytes] = self.connection().run(
                command, input=input, timeout=timeout
            )
            return result
        try:
            return shared.communicate(input, timeout)  # type: ignore[no-any-return]
        except TimeoutError:
            raise ConnectionFailed(
                f"a command on {self.vm_options.address} did not finish within {timeout:g} s; "
                "its channel was closed",
                hint="the command may still run on the target if it ignores a closed stdout",
            ) from None
        except OSError as exc:
            raise ConnectionFailed(f"a command on {self.vm_options.address} failed: {exc}") from exc

    def _open_agent(self, version: str) -> AgentClient | None:
        channel = self._exec(self._start_command(version), spare=True)
        channel.settimeout(self.io_timeout)
        try:
            first = _recv_exact(channel, 4)
        except TimeoutError:
            channel.close()
            raise ConnectionFailed(
                f"the agent on {self.vm_options.address} did not answer within "
                f"{self.io_timeout:g} s"
            ) from None
        if len(first) < 4:
            code = channel.recv_exit_status()
            stderr = channel.makefile_stderr("rb").read().decode("utf-8", "replace").strip()
            channel.close()
            if code == _MISSING:
                return None
            if code == 127:
                raise ConnectionFailed(
                    f"{self.vm_options.python!r} was not found on {self.vm_options.address}",
                    hint="install Python 3.8 or newer there, or attach with --python PATH",
                )
            raise ConnectionFailed(
                f"the agent did not start on {self.vm_options.address} "
                f"(exit code {code}): {stderr[-500:]}"
            )
        stream = _ChannelStream(channel, first)
        return StreamAgentClient(stream, stream, on_close=stream.close)  # type: ignore[arg-type]

    def _install_agent(self, version: str, data: bytes) -> None:
        ssh = self.connection()
        folder = str(Path(self._agent_path(version)).parent)
        code, _out, err = ssh.run(f"mkdir -p {shlex.quote(folder)}")
        if code != 0:
            raise ConnectionFailed(
                f"could not create ~/{folder} on the target: {err.decode(errors='replace').strip()}"
            )
        with tempfile.NamedTemporaryFile(suffix=".pyz") as tmp:
            tmp.write(data)
            tmp.flush()
            ssh.put_file(Path(tmp.name), self._agent_path(version))

    def connect_agent(self) -> AgentClient:
        version, data = agent_bundle()
        client = self._open_agent(version)
        if client is None:
            self._install_agent(version, data)
            client = self._open_agent(version)
        if client is None:
            raise ConnectionFailed("the agent could not be installed on the target")
        return client

    def probe(self) -> dict[str, Any]:
        try:
            facts = dict(self.agent().probe(python=self.vm_options.python))
        except AgentError as exc:
            raise TargetsError(f"could not inspect {self.vm_options.address}: {exc}") from exc
        ssh = self.connection()
        facts["address"] = ssh.settings.destination
        return facts
