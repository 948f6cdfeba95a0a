"""Where and as whom to connect: ``--address`` and friends, merged with ``~/.ssh/config``.

:func:`resolve_settings` reads the OpenSSH client configuration (through
``paramiko.SSHConfig``) for the address the user typed, which may be a ``Host`` alias,
and honours ``HostName``, ``User``, ``Port``, ``IdentityFile`` and ``ProxyJump``.
Options given explicitly win over the file. The result is a frozen :class:`SSHSettings`;
nothing here opens a connection.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from targets.errors import ConfigError, UsageError

__all__ = ["SSHSettings", "parse_destination", "resolve_settings"]

DEFAULT_PORT = 22
_MAX_JUMPS = 8


@dataclass(frozen=True, slots=True)
class SSHSettings:
    """Everything needed to reach one SSH server. Holds no secret."""

    host: str
    """What the user typed for ``--address`` (may be a ``~/.ssh/config`` Host alias)."""
    hostname: str
    """The name or address actually connected to (``HostName`` from ssh config, else host)."""
    port: int
    username: str
    key_files: tuple[str, ...]
    """Explicit ``--ssh-key`` first, then ``IdentityFile`` entries from ssh config."""
    use_agent: bool
    proxy_jump: str | None
    """``ProxyJump`` as written (``user@host:port`` or an alias; a comma-separated chain)."""
    jump: SSHSettings | None = None
    """The resolved settings of the host to jump through (``None``: connect directly, or
    resolve ``proxy_jump`` at connect time when only that is set)."""

    @property
    def destination(self) -> str:
        """``user@hostname:port``, for messages."""
        return f"{self.username}@{self.address}"

    @property
    def address(self) -> str:
        """``hostname:port`` (``[v6]:port`` for an IPv6 address), for messages."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"


_DEST_RE = re.compile(
    r"^(?:(?P<user>[^@]+)@)?(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:@\[\]]+))"
    r"(?::(?P<port>[^:]*))?$"
)


def parse_destination(text: str) -> tuple[str | None, str, int | None]:
    """Split ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6; a bare IPv6 address is
    taken as a host) into its parts. Raises :class:`UsageError` for a malformed one."""
    text = text.strip()
    if not text:
        raise UsageError("the SSH address is empty", hint="pass --address HOST")
    if text.count(":") > 1 and "[" not in text:  # a bare IPv6 address
        user, _, host = text.rpartition("@")
        return (user or None), host, None
    match = _DEST_RE.match(text)
    if not match:
        raise UsageError(
            f"malformed SSH address {text!r}",
            hint="write HOST, USER@HOST, HOST:PORT or USER@[IPV6]:PORT",
        )
    port = match.group("port")
    return (
        match.group("user"),
        match.group("v6") or match.group("host"),
        None if port is None else _port(port, f"in the address {text!r}"),
    )


def _port(value: object, where: str) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise UsageError(f"invalid SSH port {value!r} {where}", hint="use a number from 1 to 65535")
    return port


def _load_config(path: Path) -> Any:
    import paramiko

    if not path.is_file():
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except (OSError, ValueError, paramiko.ConfigParseError) as exc:
        raise ConfigError(
            f"cannot read the SSH client configuration: {exc}", path=str(path)
        ) from exc


def _lookup(config: Any, host: str, path: Path) -> dict[str, Any]:
    try:
        return dict(config.lookup(host))
    except Exception as exc:  # Match exec, canonicalisation, bad tokens ...
        raise ConfigError(
            f"cannot evaluate the SSH client configuration for {host!r}: {exc}", path=str(path)
        ) from exc


def resolve_settings(
    address: str,
    *,
    port: int | None = None,
    username: str | None = None,
    key_file: str | None = None,
    use_agent: bool = False,
    ssh_config_path: Path | None = None,
    proxy_jump: str | None = None,
) -> SSHSettings:
    """Resolve what the user gave into :class:`SSHSettings`.

    ``address`` is a host name, an IP address or a ``~/.ssh/config`` Host alias,
    optionally written ``user@host:port``. Precedence: explicit keyword arguments, then
    what ``address`` itself spells, then the ssh config (``ssh_config_path``, default
    ``~/.ssh/config``; a missing file is fine), then the defaults: port 22 and the local
    user name. A ``ProxyJump`` is resolved the same way (``jump``), against the same ssh
    config; chains (``a,b``) are supported; an explicit ``proxy_jump`` replaces the
    ``ProxyJump`` of the ssh config. Reads the ssh config file; opens no connection.

    Raises :class:`UsageError` for a malformed address or port, or an explicit
    ``key_file`` that does not exist; :class:`ConfigError` for an unreadable ssh config.
    """
    path = Path(ssh_config_path) if ssh_config_path else Path.home() / ".ssh" / "config"
    config = _load_config(path)
    explicit_keys: tuple[str, ...] = ()
    if key_file:
        key_path = Path(key_file).expanduser()
        if not key_path.is_file():
            raise UsageError(
                f"SSH key file {str(key_path)!r} does not exist",
                hint="pass the path of the private key (not the .pub file) to --ssh-key",
            )
        explicit_keys = (str(key_path.absolute()),)
    return _resolve(
        address,
        port=port,
        username=username,
        explicit_keys=explicit_keys,
        use_agent=use_agent,
        config=config,
        path=path,
        depth=0,
        proxy_override=proxy_jump,
    )


def _resolve(
    address: str,
    *,
    port: int | None,
    username: str | None,
    explicit_keys: tuple[str, ...],
    use_agent: bool,
    config: Any,
    path: Path,
    depth: int,
    proxy_override: str | None = None,
) -> SSHSettings:
    if depth > _MAX_JUMPS:
        raise ConfigError(
            f"more than {_MAX_JUMPS} ProxyJump hops (a loop?) while resolving {address!r}",
            path=str(path),
        )
    user_in_address, host, port_in_address = parse_destination(address)
    found = _lookup(config, host, path)
    hostname = str(found.get("hostname") or host)
    if port is not None:
        resolved_port = _port(port, "(--ssh-port)")
    elif port_in_address is not None:
        resolved_port = port_in_address
    elif found.get("port"):
        resolved_port = _port(found["port"], f"(Port for {host!r} in {path})")
    else:
        resolved_port = DEFAULT_PORT
    user = username or user_in_address or found.get("user") or getpass.getuser()
    from_config = tuple(os.path.expanduser(str(f)) for f in found.get("identityfile") or ())
    keys = tuple(dict.fromkeys(explicit_keys + from_config))
    proxy_jump = proxy_override if proxy_override is not None else found.get("proxyjump")
    if proxy_jump is not None and (not proxy_jump.strip() or proxy_jump.lower() == "none"):
        proxy_jump = None
    settings = SSHSettings(
        host=host,
        hostname=hostname,
        port=resolved_port,
        username=str(user),
        key_files=keys,
        use_agent=use_agent,
        proxy_jump=proxy_jump,
    )
    if proxy_jump is None:
        return settings
    # The last hop of a chain is the host we connect through; the hops before it are how
    # that host is reached (as OpenSSH does). A single hop keeps its own ProxyJump from
    # the ssh config. Jump hosts get the explicit key files too (a passphrase decrypts a
    # key locally, so that is safe); they never get the target's password.
    hops = [h.strip() for h in proxy_jump.split(",") if h.strip()]
    jump = _resolve(
        hops[-1],
        port=None,
        username=None,
        explicit_keys=explicit_keys,
        use_agent=use_agent,
        config=config,
        path=path,
        depth=depth + 1,
        proxy_override=",".join(hops[:-1]) if len(hops) > 1 else None,
    )
    return replace(settings, jump=jump)
