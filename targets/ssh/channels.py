"""Ending a channel's input safely. No paramiko import: the shared connection's client
(:mod:`targets.ssh.mux`) uses this too and must stay cheap to import."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["EOF_LOCK", "shutdown_write"]

EOF_LOCK = "_targets_eof_lock"
"""The attribute holding the lock that orders a channel's EOF before its CLOSE."""


def shutdown_write(channel: Any) -> None:
    """Send EOF on a channel (the command's stdin ends), never after the channel's CLOSE.

    paramiko builds the EOF under the channel's lock but sends it after releasing it, so
    its reader thread can answer the server's CLOSE in between; the EOF then refers to a
    channel the server has freed, and OpenSSH's sshd drops the whole connection ("ieof
    packet referred to nonexistent channel"), with every other channel on it. Channels
    from :meth:`targets.ssh.connection.SSHConnection.exec` carry a lock that their
    transport's CLOSE handler waits for. Anything else with a ``shutdown_write`` (the
    shared connection's channels) is simply asked to."""
    lock: threading.Lock | None = getattr(channel, EOF_LOCK, None)
    if lock is None:
        channel.shutdown_write()
        return
    with lock:
        if not channel.closed:
            channel.shutdown_write()
