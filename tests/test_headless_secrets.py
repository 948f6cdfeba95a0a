"""Secrets on a machine without a desktop keyring and without a terminal (a server, CI):
targets' encrypted file keyring, unlocked by a passphrase from the environment or from a
mode-0600 file, never by a prompt. Every `targets` process here has a pipe or /dev/null
as standard input, and a fresh HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import TARGETS, CLIResult
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

Cli = Callable[..., CLIResult]

PASSPHRASE = "correct horse battery staple"
BACKEND = "targets.keyring_file.EncryptedFileKeyring"
REGISTRY = "registry.test:5000"
PASSPHRASE_FILE_ENV = "TARGETS_KEYRING_PASSPHRASE_FILE"


@pytest.fixture
def headless(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> Path:
    """No keyring chosen by the environment (the suite's plaintext file is unset): keyring
    detects what this machine has, which is no desktop keyring."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    for name in (
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "TARGETS_KEYRING_PASSPHRASE",
        PASSPHRASE_FILE_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    # On a developer's desktop: no session bus, so its keyring is neither used nor touched.
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(isolated_home / "run"))
    return isolated_home


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]


def store_file(home: Path) -> Path:
    return home / ".local" / "share" / "compute-targets" / "keyring.enc"


def registry_secret(project: Path, user: str) -> str | None:
    from targets.secrets import get_secret

    return get_secret(Workspace(project).secret_ref("registry", f"registry:{REGISTRY}|{user}"))


def test_password_attach_without_a_terminal_keeps_it_encrypted(
    headless: Path,
    sshd: SSHServer,
    project: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TARGETS_KEYRING_PASSPHRASE", PASSPHRASE)
    attached = cli(
        "attach",
        "pwbox",
        "--address",
        sshd.host,
        "--ssh-port",
        str(sshd.port),
        "--username",
        sshd.user,
        "--password-stdin",
        "--accept-host-key",
        input=sshd.password + "\n",
    )
    assert attached.code == 0, attached

    secret = sshd.password.encode()
    for path in files_under(headless) + files_under(project):
        assert secret not in path.read_bytes(), f"the password is in {path} in the clear"
    store = store_file(headless)
    assert store.stat().st_mode & 0o777 == 0o600
    assert store.parent.stat().st_mode & 0o777 == 0o700

    # Another process, later, reads it (no shared connection: it must log in itself).
    ran = cli(
        "run", "-c", "echo over-password", "--target", "pwbox",
        input="", env={"TARGETS_SSH_PERSIST": "0"},
    )  # fmt: skip
    assert ran.code == 0 and ran.out.strip() == "over-password", ran

    before = store.read_bytes()
    wrong = cli(
        "run", "-c", "echo never", "--target", "pwbox",
        input="", env={"TARGETS_SSH_PERSIST": "0", "TARGETS_KEYRING_PASSPHRASE": "wrong"},
    )  # fmt: skip
    assert wrong.code == 2, wrong
    assert "passphrase does not open" in wrong.err and "TARGETS_KEYRING_PASSPHRASE" in wrong.err
    assert "Traceback" not in wrong.err and "never" not in wrong.out
    assert store.read_bytes() == before

    # Attaching with a wrong passphrase stops before the server is contacted.
    contacts = sshd.log.count("Connection from")  # sshd logs every TCP connection
    again = cli(
        "attach", "pwbox2", "--address", sshd.host, "--ssh-port", str(sshd.port),
        "--username", sshd.user, "--password-stdin", "--accept-host-key",
        input=sshd.password + "\n", env={"TARGETS_KEYRING_PASSPHRASE": "wrong"},
    )  # fmt: skip
    assert again.code == 2 and "passphrase does not open" in again.err, again
    assert sshd.log.count("Connection from") == contacts
    assert store.read_bytes() == before


def test_without_a_passphrase_no_secret_goes_to_a_plain_file(
    headless: Path, project: Path, cli: Cli
) -> None:
    """Where keyrings.alt is installed, keyring's last resort is its plaintext file:
    refused unless named on purpose, with the headless way to go instead."""
    login = cli(
        "registry", "login", REGISTRY, "-u", "bob", "--password-stdin",
        input="registry-token-123\n",
    )  # fmt: skip
    assert login.code == 2, login
    assert "no usable keyring backend" in login.err and "TARGETS_KEYRING_PASSPHRASE" in login.err
    assert all(b"registry-token-123" not in p.read_bytes() for p in files_under(headless))


def test_explicit_backend_with_a_passphrase_file(
    headless: Path, project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    phrase_file = headless / "keyring-passphrase"
    phrase_file.write_text(PASSPHRASE + "\n")
    phrase_file.chmod(0o600)
    env = {"PYTHON_KEYRING_BACKEND": BACKEND, "TARGETS_KEYRING_PASSPHRASE_FILE": str(phrase_file)}
    login = cli(
        "registry", "login", REGISTRY, "-u", "bob", "--password-stdin",
        input="registry-token-123\n", env=env,
    )  # fmt: skip
    assert login.code == 0, login
    assert all(b"registry-token-123" not in p.read_bytes() for p in files_under(headless))

    # The same store, opened by the passphrase itself, in this (another) process.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", BACKEND)
    monkeypatch.setenv("TARGETS_KEYRING_PASSPHRASE", PASSPHRASE)
    assert registry_secret(project, "bob") == "registry-token-123"

    # A wrong passphrase is an error that leaves the store as it was.
    store = store_file(headless)
    before = store.read_bytes()
    bad = cli(
        "registry", "login", REGISTRY, "-u", "eve", "--password-stdin",
        input="other\n", env={"TARGETS_KEYRING_PASSPHRASE": "not it"},
    )  # fmt: skip
    assert bad.code == 2, bad
    assert "passphrase does not open" in bad.err and "Traceback" not in bad.err
    assert store.read_bytes() == before
    assert registry_secret(project, "bob") == "registry-token-123"


def test_a_passphrase_file_others_can_read_is_refused(
    headless: Path, project: Path, cli: Cli
) -> None:
    phrase_file = headless / "keyring-passphrase"
    phrase_file.write_text(PASSPHRASE + "\n")
    phrase_file.chmod(0o644)
    login = cli(
        "registry", "login", REGISTRY, "-u", "bob", "--password-stdin",
        input="registry-token-123\n",
        env={"PYTHON_KEYRING_BACKEND": BACKEND, PASSPHRASE_FILE_ENV: str(phrase_file)},
    )  # fmt: skip
    assert login.code == 2, login
    assert "0644" in login.err and f"chmod 600 {phrase_file}" in login.err, login.err
    assert "Traceback" not in login.err
    assert not store_file(headless).exists()


def test_no_passphrase_names_the_headless_way(headless: Path, project: Path, cli: Cli) -> None:
    login = cli(
        "registry", "login", REGISTRY, "-u", "bob", "--password-stdin",
        input="registry-token-123\n", env={"PYTHON_KEYRING_BACKEND": BACKEND},
    )  # fmt: skip
    assert login.code == 2, login
    assert "TARGETS_KEYRING_PASSPHRASE" in login.err and "Traceback" not in login.err


def test_registry_login_without_a_terminal_or_password_stdin_says_how(
    headless: Path, project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARGETS_KEYRING_PASSPHRASE", PASSPHRASE)
    login = cli("registry", "login", REGISTRY, "-u", "bob", input="")
    assert login.code == 2, login
    assert "no terminal" in login.err and "--password-stdin" in login.err
    assert not store_file(headless).exists()


def test_registry_login_asks_on_a_terminal_without_echo(
    headless: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pty

    monkeypatch.setenv("TARGETS_KEYRING_PASSPHRASE", PASSPHRASE)
    pid, fd = pty.fork()
    if pid == 0:  # the child: `targets registry login` on a terminal
        os.execv(TARGETS[0], [*TARGETS, "registry", "login", REGISTRY, "-u", "tty-user"])
    seen = b""
    answered_at = -1
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if answered_at < 0 and b"Password for tty-user@" in seen:
            answered_at = len(seen)
            os.write(fd, b"typed-secret-42\n")
    _, status = os.waitpid(pid, 0)
    text = seen.decode("utf-8", "replace")
    assert answered_at >= 0, text
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "typed-secret-42" not in text  # not echoed
    assert registry_secret(project, "tty-user") == "typed-secret-42"


def test_concurrent_writers_lose_nothing(
    headless: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", BACKEND)
    monkeypatch.setenv("TARGETS_KEYRING_PASSPHRASE", PASSPHRASE)
    code = (
        "import sys\n"
        "from targets.secrets import SecretRef, set_secret\n"
        "for i in range(2):\n"
        "    set_secret(SecretRef('/w', sys.argv[1], str(i)), sys.argv[1] + str(i))\n"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", code, f"t{n}"], stdin=subprocess.DEVNULL)
        for n in range(3)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    from targets.secrets import SecretRef, get_secret

    for n in range(3):
        for i in range(2):
            assert get_secret(SecretRef("/w", f"t{n}", str(i))) == f"t{n}{i}"
