"""SSH under attack and under load, against real OpenSSH servers owned by these tests
(the session's shared test sshd is never reconfigured here).

- A server that stops showing the host key type recorded for it (ed25519 recorded, only
  RSA offered) has a *changed* key: refused with the man-in-the-middle warning, even with
  ``attach --force --accept-host-key``, before any password is sent.
- A busy sshd (``MaxStartups``) drops cold connections; each command tries again with
  backoff instead of failing with "Error reading SSH protocol banner".
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from targets.errors import ConnectionFailed
from targets.ssh import SSHConnection
from tests.conftest import TARGETS, CLIResult, wait_until
from tests.sshd import SSHServer, _make_server, _run, skip_or_fail, unavailable_reason
from tests.test_vm import attach_args

CLI = Callable[..., CLIResult]


@pytest.fixture
def own_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A test sshd of this test alone (127.0.0.1, the usual test user): it may be given
    another host key or a tight MaxStartups without disturbing other tests."""
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    server = _make_server(tmp_path_factory.mktemp("sshd-faults"))
    yield server
    server.stop()


def offer_host_keys(server: SSHServer, *keys: Path) -> None:
    """Restart ``server`` offering exactly these host keys."""
    server.stop()
    lines = [
        line for line in server.config.read_text().splitlines() if not line.startswith("HostKey ")
    ]
    server.config.write_text("\n".join(lines + [f"HostKey {k}" for k in keys]) + "\n")
    server.start()


def auth_lines(log: str) -> list[str]:
    """What sshd logged about authentication attempts (a password, a key)."""
    words = ("password", "Accepted", "Failed", "publickey")
    return [line for line in log.splitlines() if any(w in line for w in words)]


# -- defect 4: a host key of another type is a changed key ---------------------------


@pytest.mark.parametrize("recorded_in", ["workspace", "user-hashed"])
def test_a_server_that_no_longer_shows_the_recorded_key_type_is_refused(
    own_sshd: SSHServer, project: Path, cli: CLI, isolated_home: Path, recorded_in: str
) -> None:
    """ed25519 is recorded (in the workspace's known_hosts, or hashed in the user's
    ~/.ssh/known_hosts); the server now offers only an RSA key. Even `attach --force
    --accept-host-key --password-stdin` refuses it as a changed key and sends nothing:
    sshd logs no authentication attempt."""
    server = own_sshd
    workspace_file = project / ".targets" / "known_hosts"
    if recorded_in == "workspace":
        attached = cli(
            *attach_args(server, "box", "--ssh-key", str(server.key), "--accept-host-key")
        )
        assert attached.code == 0, attached
        holder = workspace_file
    else:
        holder = isolated_home / ".ssh" / "known_hosts"
        holder.parent.mkdir(mode=0o700)
        holder.write_text(server.known_hosts_line())
        _run("ssh-keygen", "-H", "-f", str(holder))  # HashKnownHosts yes
        assert server.host not in holder.read_text()
        attached = cli(*attach_args(server, "box", "--ssh-key", str(server.key)))
        assert attached.code == 0, attached  # trusted through the hashed entry
        assert not workspace_file.exists()
    ed25519_key = server.host_key
    old = server.host_key_fingerprint()
    recorded = holder.read_text()

    server.restart_with_new_host_key("rsa")
    assert "ed25519" not in server.config.read_text()
    new = server.host_key_fingerprint()
    log_before = len(server.log)
    refused = cli(
        *attach_args(server, "box", "--password-stdin", "--accept-host-key", "--force"),
        input=server.password + "\n",
    )
    assert refused.code != 0, refused
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.err
    assert "man-in-the-middle" in refused.err
    assert "ssh-rsa" in refused.err and new in refused.err and old in refused.err
    assert f"ssh-keygen -f {holder} -R '[127.0.0.1]:{server.port}'" in refused.err
    assert "not in" not in refused.err  # not reported as an unknown key
    assert server.password not in refused.out + refused.err
    assert auth_lines(server.log[log_before:]) == [], server.log[log_before:]
    # Nothing was accepted, nothing replaced: the old record and target stay.
    assert holder.read_text() == recorded
    if recorded_in == "workspace":
        assert workspace_file.read_text() == recorded
    shown: Any = cli("show", "box", "-o", "json").json()
    assert shown["options"].get("ssh_key") == str(server.key) and shown["secrets"] == []

    # A server that offers the recorded type besides the new one keeps working: the
    # recorded type is preferred in negotiation, as OpenSSH does.
    offer_host_keys(server, server.host_key, ed25519_key)
    again = cli(*attach_args(server, "box", "--ssh-key", str(server.key), "--force"))
    assert again.code == 0, again  # no --accept-host-key: the recorded key was shown
    assert holder.read_text() == recorded  # the RSA key was not added


# -- defect 10: cold connections to a busy sshd --------------------------------------


@contextlib.contextmanager
def hold_a_handshake(server: SSHServer) -> Iterator[socket.socket]:
    """An unauthenticated connection to ``server``, held open: sshd counts it as a
    handshake in progress (against MaxStartups) once it has greeted it."""

    def greeted() -> socket.socket | None:
        sock = socket.create_connection((server.host, server.port), timeout=10)
        if sock.recv(4) == b"SSH-":
            return sock
        sock.close()  # turned away ("Exceeded MaxStartups"): a slot was still taken
        return None

    held = wait_until(greeted, timeout=30, what="sshd to greet a held connection")
    assert held is not None
    try:
        yield held
    finally:
        held.close()


def test_cold_connections_to_a_busy_sshd_are_tried_again(
    own_sshd: SSHServer, project: Path, cli: CLI
) -> None:
    """sshd with `MaxStartups 1:100:1` drops every connection while another one is in
    its handshake. One unauthenticated connection is held open until every command has
    been dropped at least once in total; then all 8 cold commands (no shared connection)
    must still complete."""
    server = own_sshd
    server.max_startups = "1:100:1"
    server.stop()
    server.write_config()
    server.start()
    attached = cli(*attach_args(server, "busy", "--ssh-key", str(server.key), "--accept-host-key"))
    assert attached.code == 0, attached

    count = 8
    env = {**os.environ, "TARGETS_SSH_PERSIST": "0"}
    log_before = len(server.log)

    def drops() -> int:
        return server.log[log_before:].count("past MaxStartups")

    with hold_a_handshake(server):
        procs = [
            subprocess.Popen(
                [*TARGETS, "run", "-c", f"echo cold-{i}", "--target", "busy"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for i in range(count)
        ]
        try:
            wait_until(
                lambda: drops() >= count or all(p.poll() is not None for p in procs),
                timeout=90,
                what=f"sshd to drop {count} connections",
            )
        except BaseException:
            for p in procs:
                p.kill()
            raise
    assert drops() >= count
    results = [(p, *p.communicate(timeout=120)) for p in procs]
    for i, (p, out, err) in enumerate(results):
        assert p.returncode == 0, f"command {i} failed ({p.returncode}):\n{err}"
        assert f"cold-{i}" in out


def test_a_server_that_stays_busy_fails_after_a_bounded_time_saying_why(
    own_sshd: SSHServer, tmp_path: Path
) -> None:
    """While sshd keeps turning connections away, connecting tries again (several
    attempts, each one dropped) and then fails with an error that says the server is
    busy and what to do, not "Error reading SSH protocol banner"."""
    server = own_sshd
    server.max_startups = "1:100:1"
    server.stop()
    server.write_config()
    server.start()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    log_before = len(server.log)
    with hold_a_handshake(server):
        conn = SSHConnection(server.settings(), known_hosts=known_hosts, retry_seconds=1.5)
        with pytest.raises(ConnectionFailed) as info:
            conn.run("true")
    text = str(info.value)
    assert "closed the connection before the handshake was done" in text
    assert "MaxStartups" in text
    assert server.log[log_before:].count("past MaxStartups") >= 2  # it tried again
    # Once the server has room again, the same connection object connects.
    assert conn.run("echo back")[1] == b"back\n"
    conn.close()
