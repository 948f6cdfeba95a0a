"""SSH for shell-reachable targets: settings from ``~/.ssh/config``, verified host keys,
one lazily opened, multiplexed connection per server. See docs/ssh.md.

Importing this package imports paramiko; the CLI imports it only for SSH target kinds.
"""

from __future__ import annotations

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
