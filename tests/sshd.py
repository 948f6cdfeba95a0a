"""The suite's test sshd: :mod:`targets.testing.sshd`, which plugin authors use too.

Kept as a module of the suite so that its tests import the fixtures from one place (and
reach the helpers a few fault tests need)::

    from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
"""

from __future__ import annotations

from targets.testing.sshd import (
    KEY_TAG,
    SSHD,
    STATE_DIR,
    TEST_USER,
    SSHServer,
    _authorize,
    _free_port,
    _keygen,
    _machine_lock,
    _run,
    skip_or_fail,
    ssh_connect_fixture,
    sshd_fixture,
    sshd_server_fixture,
    start_server,
    unavailable_reason,
)

_make_server = start_server

__all__ = [
    "KEY_TAG",
    "SSHD",
    "STATE_DIR",
    "TEST_USER",
    "SSHServer",
    "_authorize",
    "_free_port",
    "_keygen",
    "_machine_lock",
    "_make_server",
    "_run",
    "skip_or_fail",
    "ssh_connect_fixture",
    "sshd_fixture",
    "sshd_server_fixture",
    "start_server",
    "unavailable_reason",
]
