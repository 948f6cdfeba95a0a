"""SSH for shell-reachable targets: settings from ``~/.ssh/config``, verified host keys,
one lazily opened, multiplexed connection per server, shared between commands by a small
local process (:mod:`targets.ssh.mux`). See docs/ssh.md.

Importing this package is cheap: paramiko loads with the first name that needs it (the
shared connection's client, :mod:`targets.ssh.mux`, never does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets._lazy import lazy_exports

if TYPE_CHECKING:
    from targets.ssh.config import SSHSettings, parse_destination, resolve_settings
    from targets.ssh.connection import CommandTimeout, SSHConnection
    from targets.ssh.hostkeys import (
        AcceptHostKey,
        ChangedHostKeyError,
        HostKeyPolicy,
        UnknownHostKeyError,
        check_host_key,
        fingerprint,
        known_hosts_name,
        user_known_hosts,
    )

__all__ = [
    "AcceptHostKey",
    "ChangedHostKeyError",
    "CommandTimeout",
    "HostKeyPolicy",
    "SSHConnection",
    "SSHSettings",
    "UnknownHostKeyError",
    "check_host_key",
    "fingerprint",
    "known_hosts_name",
    "parse_destination",
    "resolve_settings",
    "user_known_hosts",
]

_MODULES = {
    "SSHSettings": "targets.ssh.config",
    "parse_destination": "targets.ssh.config",
    "resolve_settings": "targets.ssh.config",
    "CommandTimeout": "targets.ssh.connection",
    "SSHConnection": "targets.ssh.connection",
    "AcceptHostKey": "targets.ssh.hostkeys",
    "ChangedHostKeyError": "targets.ssh.hostkeys",
    "HostKeyPolicy": "targets.ssh.hostkeys",
    "UnknownHostKeyError": "targets.ssh.hostkeys",
    "check_host_key": "targets.ssh.hostkeys",
    "fingerprint": "targets.ssh.hostkeys",
    "known_hosts_name": "targets.ssh.hostkeys",
    "user_known_hosts": "targets.ssh.hostkeys",
}

__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())
