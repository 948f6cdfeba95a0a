"""A real OpenSSH server on 127.0.0.1 for tests: a "remote machine" a kind can log in to.

The server runs as root from its own config, host key, pid file and log in a temporary
folder, listens on a free port of 127.0.0.1 only, and lets one dedicated unix user,
``targets-test``, log in with a key, a passphrase-protected key or a password. That
user's home (``/home/targets-test``) is the "remote" home, distinct from the test's HOME.

Use the fixtures by importing them into a ``conftest.py`` or a test module (or load this
module as a pytest plugin: ``pytest -p targets.testing.sshd``). The fixture functions
have their own Python names, so that a test's ``sshd`` parameter does not shadow an
imported name::

    from targets.testing.sshd import (  # noqa: F401 - fixtures, found by pytest by name
        SSHServer,
        ssh_connect_fixture,
        sshd_fixture,
        sshd_server_fixture,
    )

    def test_something(sshd: SSHServer, ssh_connect) -> None:
        with ssh_connect() as conn:       # key login, host key accepted into tmp known_hosts
            assert conn.run("whoami")[1] == b"targets-test\\n"

- ``sshd_server`` (session): the running :class:`SSHServer`; one per process (xdist
  worker), shared by every module that imports the fixtures.
- ``sshd`` (function): the same server, restarted first if a test stopped it.
- ``ssh_connect`` (function): a factory of :class:`targets.ssh.SSHConnection` to that
  server (defaults: plain key, accept the host key into ``tmp_path/known_hosts``); every
  connection it made is closed after the test.

:func:`start_server` starts another one (e.g. ``sftp=False``, a server without SFTP).

Without root or without ``/usr/sbin/sshd`` the fixtures skip the test with the reason, or
fail it when the environment variable ``CI`` is set (:func:`skip_or_fail`): install
``openssh-server`` (Debian/Ubuntu) and run the tests as root.

Machine-wide state lives in ``/tmp/targets-test-sshd`` (root only): a lock and the test
user's password. The password is random, made by the first session on the machine and
reused by later and concurrent ones, because several test runs (xdist workers, other
developers' runs) share the one unix user and must not change its password under each
other. Each worker's client keys are appended to the user's ``authorized_keys``, tagged
with their file path; keys whose files are gone are pruned.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from targets.ssh import SSHConnection, SSHSettings

__all__ = [
    "TEST_USER",
    "SSHServer",
    "skip_or_fail",
    "ssh_connect_fixture",
    "sshd_fixture",
    "sshd_server_fixture",
    "start_server",
    "unavailable_reason",
]

TEST_USER = "targets-test"
SSHD = Path("/usr/sbin/sshd")
STATE_DIR = Path("/tmp/targets-test-sshd")
KEY_TAG = "targets-test-key:"


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def unavailable_reason() -> str | None:
    """Why this machine cannot run the test sshd, or ``None`` when it can."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the test sshd needs root (to create the unix user targets-test and run sshd)"
    if not SSHD.exists():
        return (
            "OpenSSH server is not installed (/usr/sbin/sshd missing): "
            "`apt-get install openssh-server` as root (in the targets repository: "
            "`bash scripts/test-services.sh`)"
        )
    for tool in ("ssh-keygen", "useradd", "chpasswd"):
        if _tool(tool) is None:
            return f"{tool} is not installed"
    return None


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it when ``CI`` is set (CI must not silently skip)."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so this cannot be skipped: {reason}")
    pytest.skip(reason)


def _run(*args: str, input: str | None = None) -> str:
    proc = subprocess.run(args, input=input, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    os.chmod(STATE_DIR, 0o700)
    with open(STATE_DIR / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_user() -> tuple[pwd.struct_passwd, str]:
    """Create ``targets-test`` if missing and give it the machine's test password.
    Call under :func:`_machine_lock`."""
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        proc = subprocess.run(
            [_tool("useradd") or "useradd", "-m", "-s", "/bin/bash", TEST_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode not in (0, 9):  # 9: the user exists (created meanwhile)
            raise RuntimeError(f"useradd {TEST_USER} failed: {proc.stderr.strip()}") from None
        entry = pwd.getpwnam(TEST_USER)
    secret_file = STATE_DIR / "password"
    if secret_file.exists():
        password = secret_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(18)
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
    # Every session sets it again (same value): harmless, and repairs a recreated user.
    _run(_tool("chpasswd") or "chpasswd", input=f"{TEST_USER}:{password}\n")
    return entry, password


def _authorize(entry: pwd.struct_passwd, public_keys: list[Path]) -> None:
    """Append the keys to the user's authorized_keys, pruning keys of vanished sessions.
    Call under :func:`_machine_lock`."""
    home = Path(entry.pw_dir)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, entry.pw_uid, entry.pw_gid)
    os.chmod(ssh_dir, 0o700)
    auth = ssh_dir / "authorized_keys"
    kept: list[str] = []
    if auth.exists():
        for line in auth.read_text().splitlines():
            tag = next((w for w in line.split() if w.startswith(KEY_TAG)), None)
            if tag is None or Path(tag[len(KEY_TAG) :]).exists():
                kept.append(line)
    kept += [pub.read_text().strip() for pub in public_keys]
    auth.write_text("".join(line + "\n" for line in kept))
    os.chown(auth, entry.pw_uid, entry.pw_gid)
    os.chmod(auth, 0o600)


def _keygen(path: Path, passphrase: str = "", comment: str = "", key_type: str = "ed25519") -> None:
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    _run(
        _tool("ssh-keygen") or "ssh-keygen",
        "-q",
        "-t",
        key_type,
        "-N",
        passphrase,
        "-C",
        comment or path.name,
        "-f",
        str(path),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child before exec: no orphaned sshd
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class SSHServer:
    """A running test sshd and the credentials that log in to it."""

    dir: Path
    port: int
    password: str
    key: Path
    """Plain (unencrypted) ed25519 private key; ``key.with_suffix('.pub')`` is public."""
    encrypted_key: Path
    key_passphrase: str
    user: str = TEST_USER
    host: str = "127.0.0.1"
    home: Path = Path("/home") / TEST_USER
    sftp: bool = True
    """Whether the config has a ``Subsystem sftp`` line (``False``: like hardened servers
    and minimal images that offer no SFTP)."""
    host_key_type: str = "ed25519"
    """The type of the one host key the server offers (``ssh-keygen -t``)."""
    max_startups: str = "200"
    """sshd's ``MaxStartups`` (e.g. ``1:100:1`` drops every handshake but one)."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host_key(self) -> Path:
        return self.dir / f"ssh_host_{self.host_key_type}_key"

    @property
    def config(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def log(self) -> str:
        path = self.dir / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def host_key_fingerprint(self) -> str:
        """``SHA256:...`` of the current host key, as ``ssh-keygen -lf`` shows it."""
        out = _run(_tool("ssh-keygen") or "ssh-keygen", "-lf", f"{self.host_key}.pub")
        return out.split()[1]

    def known_hosts_line(self) -> str:
        """A known_hosts line trusting the current host key (to pre-trust it)."""
        key_type, b64 = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {b64}\n"

    def settings(self, **overrides: Any) -> SSHSettings:
        """SSHSettings for this server: the plain key, no agent, no jump (overridable)."""
        values: dict[str, Any] = {
            "host": self.host,
            "hostname": self.host,
            "port": self.port,
            "username": self.user,
            "key_files": (str(self.key),),
            "use_agent": False,
            "proxy_jump": None,
        }
        values.update(overrides)
        return SSHSettings(**values)

    # -- process ---------------------------------------------------------------------

    def write_config(self) -> None:
        subsystem = "Subsystem sftp internal-sftp\n" if self.sftp else ""
        self.config.write_text(
            f"""# targets test sshd: loopback only, one user
ListenAddress 127.0.0.1
Port {self.port}
HostKey {self.host_key}
PidFile {self.dir}/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
{subsystem}PermitRootLogin no
AllowUsers {self.user}
AllowTcpForwarding yes
StrictModes yes
UseDNS no
PrintMotd no
LogLevel VERBOSE
MaxStartups {self.max_startups}
MaxSessions 100
"""
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start sshd (blocking until the port accepts connections)."""
        if self.running:
            return
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(self.config), "-E", str(self.dir / "sshd.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"sshd exited with {self.process.returncode} on start:\n{self.log}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1),
            ):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not listen on {self.host}:{self.port} within 15 s")

    def stop(self) -> None:
        """Stop the listening sshd (established sessions end on their own). Idempotent."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart_with_new_host_key(self, key_type: str | None = None) -> None:
        """Stop, generate a NEW host key, start again on the same port (a "changed key").
        ``key_type`` (e.g. ``"rsa"``): the server then offers only a key of that type."""
        self.stop()
        if key_type is not None:
            self.host_key_type = key_type
            self.write_config()
        _keygen(self.host_key, comment="targets-test-host", key_type=self.host_key_type)
        self.start()


_SERVER: SSHServer | None = None


def start_server(base: Path, *, sftp: bool = True) -> SSHServer:
    """Start a test sshd in ``base`` (``sftp=False``: without any ``Subsystem`` line);
    it is stopped at exit. Used by the fixtures, and by tests that need a second one.
    Needs what :func:`unavailable_reason` checks."""
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    key = base / "id_plain"
    encrypted = base / "id_encrypted"
    passphrase = secrets.token_urlsafe(12)
    _keygen(key, comment=f"{KEY_TAG}{key}")
    _keygen(encrypted, passphrase, comment=f"{KEY_TAG}{encrypted}")
    with _machine_lock():
        entry, password = _ensure_user()
        _authorize(entry, [Path(f"{key}.pub"), Path(f"{encrypted}.pub")])
    server = SSHServer(
        dir=base,
        port=_free_port(),
        password=password,
        key=key,
        encrypted_key=encrypted,
        key_passphrase=passphrase,
        home=Path(entry.pw_dir),
        sftp=sftp,
    )
    _keygen(server.host_key, comment="targets-test-host")
    server.write_config()
    for _ in range(3):  # the free port may be taken meanwhile by another process
        try:
            server.start()
            break
        except RuntimeError:
            if "Address already in use" not in server.log:
                raise
            server.port = _free_port()
            server.write_config()
    atexit.register(server.stop)
    return server


@pytest.fixture(scope="session", name="sshd_server")
def sshd_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> SSHServer:
    """The test sshd of this worker (started on first use, stopped at exit)."""
    global _SERVER
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    if _SERVER is None:
        # Shared even when several modules import this fixture (each import is its own
        # fixture definition to pytest): one server per process.
        _SERVER = start_server(tmp_path_factory.mktemp("sshd"))
    return _SERVER


@pytest.fixture(name="sshd")
def sshd_fixture(sshd_server: SSHServer) -> SSHServer:
    """The test sshd, running (restarted if a test stopped it)."""
    sshd_server.start()
    return sshd_server


@pytest.fixture(name="ssh_connect")
def ssh_connect_fixture(sshd: SSHServer, tmp_path: Path) -> Iterator[Callable[..., SSHConnection]]:
    """``ssh_connect(settings=None, **kwargs) -> SSHConnection`` to the test sshd.

    Defaults: ``sshd.settings()`` (plain key), ``known_hosts=tmp_path/"known_hosts"``,
    ``accept_host_key=True``; keyword arguments override them. Connections are closed
    after the test."""
    made: list[SSHConnection] = []

    def connect(settings: SSHSettings | None = None, **kwargs: Any) -> SSHConnection:
        kwargs.setdefault("known_hosts", tmp_path / "known_hosts")
        kwargs.setdefault("accept_host_key", True)
        conn = SSHConnection(settings or sshd.settings(), **kwargs)
        made.append(conn)
        return conn

    yield connect
    for conn in made:
        conn.close()
