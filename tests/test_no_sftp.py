"""Hosts without an SFTP subsystem: a second test sshd whose config has no ``Subsystem``
line (as some hardened servers and minimal images). Attaching installs the agent over the
command channel instead, with the same guarantees as over SFTP."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from targets.errors import TargetsError
from targets.ssh import SSHConnection
from tests.conftest import REPO, CLIResult
from tests.sshd import SSHServer, _make_server, skip_or_fail, unavailable_reason
from tests.test_vm import attach_args


@pytest.fixture(scope="module")
def bare_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A test sshd (127.0.0.1, the usual test user) that offers no SFTP subsystem."""
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    server = _make_server(tmp_path_factory.mktemp("sshd-nosftp"), sftp=False)
    assert "Subsystem" not in server.config.read_text()
    yield server
    server.stop()


@pytest.fixture
def fresh_build(bare_sshd: SSHServer, tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """``(env, agent version)`` for a copy of `targets` whose agent no host has seen yet:
    the test user's home is shared with the other test sshd, where the current agent is
    usually installed already, and attaching would then upload nothing."""
    copy = tmp_path / "build"
    shutil.copytree(
        REPO / "targets", copy / "targets", ignore=shutil.ignore_patterns("__pycache__")
    )
    with open(copy / "targets" / "agent" / "__init__.py", "a") as fh:
        fh.write(f"\n# a build for test_no_sftp: {uuid.uuid4().hex}\n")
    env = {"PYTHONPATH": str(copy)}
    version = subprocess.run(
        [
            sys.executable,
            "-c",
            "from targets.compute._agent import agent_bundle; print(agent_bundle()[0])",
        ],
        env={**os.environ, **env},
        cwd=copy,  # `python -c` puts the current folder first on sys.path
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    yield env, version
    shutil.rmtree(bare_sshd.home / ".targets" / "agent" / version, ignore_errors=True)


def test_attach_and_run_on_a_host_without_sftp(
    bare_sshd: SSHServer,
    fresh_build: tuple[dict[str, str], str],
    project: Path,
    cli: Callable[..., CLIResult],
) -> None:
    env, version = fresh_build
    agent = bare_sshd.home / ".targets" / "agent" / version / "agent.pyz"
    assert not agent.exists()
    attached = cli(
        *attach_args(bare_sshd, "bare", "--ssh-key", str(bare_sshd.key), "--accept-host-key"),
        env=env,
    )
    assert attached.code == 0, attached
    assert agent.is_file() and agent.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in agent.parent.iterdir()) == ["agent.pyz"]  # no temp left

    (project / "hello.py").write_text("import sys\nprint('no sftp needed', sys.argv[1:])\n")
    ran = cli("run", "hello.py", "--target", "bare", "--", "a b", env=env)
    assert ran.code == 0, ran
    assert "no sftp needed ['a b']" in ran.out


def test_put_file_without_sftp_is_atomic_and_sets_the_mode(
    bare_sshd: SSHServer, tmp_path: Path
) -> None:
    folder = f"put-nosftp-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "payload.bin"
    local.write_bytes(b"first version\n")
    remote = bare_sshd.home / folder / "payload.bin"
    with SSHConnection(
        bare_sshd.settings(), known_hosts=tmp_path / "known_hosts", accept_host_key=True
    ) as conn:
        assert conn.run(f"mkdir {folder}")[0] == 0
        try:
            conn.put_file(local, f"~/{folder}/payload.bin", mode=0o600)
            assert remote.read_bytes() == b"first version\n"
            assert remote.stat().st_mode & 0o777 == 0o600
            assert remote.stat().st_uid == bare_sshd.home.stat().st_uid

            # Replaced by a rename: a reader of the old file keeps reading it whole.
            payload = os.urandom(3 << 20)  # binary, several channel windows long
            local.write_bytes(payload)
            with open(remote, "rb") as reader:
                conn.put_file(local, f"{folder}/payload.bin", mode=0o755)
                assert reader.read() == b"first version\n"
            assert remote.read_bytes() == payload
            assert remote.stat().st_mode & 0o777 == 0o755
            assert sorted(p.name for p in remote.parent.iterdir()) == ["payload.bin"]

            with pytest.raises(TargetsError, match=r"cannot write .*missing-dir"):
                conn.put_file(local, f"{folder}/missing-dir/payload.bin")
            with pytest.raises(TargetsError, match="is a folder"):
                conn.put_file(local, folder)
            assert sorted(p.name for p in remote.parent.iterdir()) == ["payload.bin"]
        finally:
            conn.run(f"rm -rf {folder}")
