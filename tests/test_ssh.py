"""targets.ssh against a real OpenSSH server on 127.0.0.1 (tests/sshd.py). No mocks."""

from __future__ import annotations

import getpass
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from targets.errors import (
    AuthenticationError,
    ConnectionFailed,
    HostKeyError,
    TargetsError,
    UsageError,
)
from targets.ssh import (
    ChangedHostKeyError,
    CommandTimeout,
    HostKeyPolicy,
    SSHConnection,
    UnknownHostKeyError,
    fingerprint,
    resolve_settings,
)
from tests.sshd import (  # noqa: F401 - fixtures
    SSHServer,
    skip_or_fail,
    ssh_connect_fixture,
    sshd_fixture,
    sshd_server_fixture,
)

Connect = Callable[..., SSHConnection]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_ssh_config(home: Path, text: str) -> Path:
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    path = ssh_dir / "config"
    path.write_text(text)
    return path


# -- logging in ---------------------------------------------------------------------


def test_key_login(ssh_connect: Connect) -> None:
    with ssh_connect() as conn:
        assert conn.run("whoami") == (0, b"targets-test\n", b"")


def test_passphrase_protected_key_login(ssh_connect: Connect, sshd: SSHServer) -> None:
    asked: list[int] = []

    def passphrase() -> str:
        asked.append(1)
        return sshd.key_passphrase

    settings = sshd.settings(key_files=(str(sshd.encrypted_key),))
    with ssh_connect(settings, key_passphrase=passphrase) as conn:
        assert conn.run("echo ok")[1] == b"ok\n"
    assert asked == [1]


def test_encrypted_key_without_passphrase_says_how_to_give_it(
    ssh_connect: Connect, sshd: SSHServer
) -> None:
    conn = ssh_connect(sshd.settings(key_files=(str(sshd.encrypted_key),)))
    with pytest.raises(AuthenticationError) as info:
        conn.run("true")
    text = str(info.value)
    assert "encrypted" in text
    assert str(sshd.encrypted_key) in text
    assert "--ssh-key-passphrase-stdin" in text
    assert "agent" in text


def test_wrong_passphrase_is_reported_without_the_passphrase(
    ssh_connect: Connect, sshd: SSHServer
) -> None:
    conn = ssh_connect(
        sshd.settings(key_files=(str(sshd.encrypted_key),)),
        key_passphrase=lambda: "not-the-passphrase-123",
    )
    with pytest.raises(AuthenticationError) as info:
        conn.run("true")
    assert "passphrase" in str(info.value) and "wrong" in str(info.value)
    assert "not-the-passphrase-123" not in str(info.value)


def test_password_login(ssh_connect: Connect, sshd: SSHServer) -> None:
    with ssh_connect(sshd.settings(key_files=()), password=lambda: sshd.password) as conn:
        assert conn.run("whoami")[1] == b"targets-test\n"
        assert sshd.password not in repr(conn)


def test_wrong_password_is_refused_without_showing_it(
    ssh_connect: Connect, sshd: SSHServer
) -> None:
    wrong = "Wrong-Passw0rd-" + sshd.password[:4]
    conn = ssh_connect(sshd.settings(key_files=()), password=lambda: wrong)
    with pytest.raises(AuthenticationError) as info:
        conn.run("true")
    err = info.value
    assert f"targets-test@127.0.0.1:{sshd.port}" in str(err)
    assert "password" in str(err)
    chain: list[BaseException] = [err]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    for exc in chain:
        for text in (str(exc), repr(exc), *map(str, exc.args)):
            assert wrong not in text
            assert sshd.password not in text
    assert err.exit_code == 1


def test_password_is_asked_only_when_keys_fail(ssh_connect: Connect) -> None:
    asked: list[int] = []

    def password() -> str:
        asked.append(1)
        return "unused"

    with ssh_connect(password=password) as conn:
        conn.run("true")
    assert asked == []


def test_no_credentials_at_all(ssh_connect: Connect, sshd: SSHServer) -> None:
    with pytest.raises(AuthenticationError, match="no credentials to try") as info:
        ssh_connect(sshd.settings(key_files=())).run("true")
    assert "--ssh-key" in str(info.value)


# -- reaching the server ------------------------------------------------------------


def test_nothing_listening(ssh_connect: Connect, sshd: SSHServer) -> None:
    port = _free_port()
    conn = ssh_connect(sshd.settings(port=port))
    with pytest.raises(ConnectionFailed, match=f"nothing is listening on 127.0.0.1:{port}"):
        conn.run("true")


def test_host_name_that_does_not_resolve(ssh_connect: Connect, sshd: SSHServer) -> None:
    conn = ssh_connect(sshd.settings(hostname="no-such-host.invalid"))
    with pytest.raises(ConnectionFailed, match="does not resolve"):
        conn.run("true")


@pytest.fixture
def silent_server() -> Iterator[tuple[int, Callable[[bytes], None]]]:
    """A TCP server that accepts and then sends what it is told (or nothing)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    reply: list[bytes] = [b""]
    conns: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = listener.accept()
            except OSError:
                continue
            conns.append(c)
            if reply[0]:
                c.sendall(reply[0])
                c.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], lambda data: reply.__setitem__(0, data)
    stop.set()
    thread.join()
    listener.close()
    for c in conns:
        c.close()


def test_no_ssh_answer_within_the_timeout(
    ssh_connect: Connect, sshd: SSHServer, silent_server: tuple[int, Callable[[bytes], None]]
) -> None:
    port, _ = silent_server
    conn = ssh_connect(sshd.settings(port=port), connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}") as info:
        conn.run("true")
    assert "1 s" in str(info.value)
    assert time.monotonic() - started < 10


def test_not_an_ssh_server(
    ssh_connect: Connect, sshd: SSHServer, silent_server: tuple[int, Callable[[bytes], None]]
) -> None:
    port, set_reply = silent_server
    set_reply(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(ConnectionFailed, match="handshake"):
        ssh_connect(sshd.settings(port=port), connect_timeout=3).run("true")


# -- host keys ----------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint(
    ssh_connect: Connect, sshd: SSHServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "ws" / "known_hosts"
    conn = ssh_connect(known_hosts=known_hosts, accept_host_key=False)
    with pytest.raises(UnknownHostKeyError) as info:
        conn.run("true")
    err = info.value
    assert isinstance(err, HostKeyError)
    expected = sshd.host_key_fingerprint()  # what `ssh-keygen -lf host_key.pub` prints
    assert err.fingerprint == expected
    text = str(err)
    assert expected in text
    assert f"127.0.0.1:{sshd.port}" in text
    assert "ssh-ed25519" in text
    assert "--accept-host-key" in text
    assert not known_hosts.exists()


def test_prompt_decides_about_an_unknown_key(
    ssh_connect: Connect, sshd: SSHServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    seen: list[tuple[str, str, str]] = []

    def decline(host: str, key_type: str, fp: str) -> bool:
        seen.append((host, key_type, fp))
        return False

    with pytest.raises(UnknownHostKeyError):
        ssh_connect(known_hosts=known_hosts, accept_host_key=decline).run("true")
    assert seen == [(f"127.0.0.1:{sshd.port}", "ssh-ed25519", sshd.host_key_fingerprint())]
    assert not known_hosts.exists()

    with ssh_connect(known_hosts=known_hosts, accept_host_key=lambda *a: True) as conn:
        conn.run("true")
    assert known_hosts.read_text() == sshd.known_hosts_line()


def test_accepted_key_is_recorded_and_trusted_next_time(
    ssh_connect: Connect, sshd: SSHServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / ".targets" / "known_hosts"
    with ssh_connect(known_hosts=known_hosts, accept_host_key=True) as conn:
        conn.run("true")
    assert known_hosts.read_text() == sshd.known_hosts_line()
    # ssh-keygen itself finds it there
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(known_hosts)],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0

    def never(*args: str) -> bool:
        raise AssertionError("asked about a known key")

    with ssh_connect(known_hosts=known_hosts, accept_host_key=never) as conn:
        assert conn.run("echo again")[1] == b"again\n"
    assert known_hosts.read_text() == sshd.known_hosts_line()  # not written twice


def test_user_known_hosts_is_honoured(
    ssh_connect: Connect, sshd: SSHServer, isolated_home: Path, tmp_path: Path
) -> None:
    (isolated_home / ".ssh").mkdir()
    (isolated_home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line())
    workspace_file = tmp_path / "known_hosts"
    with ssh_connect(known_hosts=workspace_file, accept_host_key=False) as conn:
        conn.run("true")
    assert not workspace_file.exists()


def test_changed_host_key_is_refused_with_a_warning(
    ssh_connect: Connect, sshd: SSHServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    with ssh_connect(known_hosts=known_hosts) as conn:
        conn.run("true")
    old = sshd.host_key_fingerprint()
    sshd.restart_with_new_host_key()
    new = sshd.host_key_fingerprint()
    assert new != old

    # Even with accept_host_key=True: a changed key is never accepted.
    with pytest.raises(ChangedHostKeyError) as info:
        ssh_connect(known_hosts=known_hosts, accept_host_key=True).run("true")
    err = info.value
    text = str(err)
    assert "WARNING" in text
    assert "man-in-the-middle" in text
    assert old in text and new in text
    command = f"ssh-keygen -f {known_hosts} -R '[127.0.0.1]:{sshd.port}'"
    assert command in text
    assert err.expected_fingerprint == old and err.fingerprint == new

    # The command it gives works; then the new key is shown and can be accepted.
    subprocess.run(command, shell=True, check=True, capture_output=True)
    with pytest.raises(UnknownHostKeyError, match=re.escape(new)):
        ssh_connect(known_hosts=known_hosts, accept_host_key=False).run("true")
    with ssh_connect(known_hosts=known_hosts, accept_host_key=True) as conn:
        conn.run("true")


def test_changed_key_against_user_known_hosts(
    ssh_connect: Connect, sshd: SSHServer, isolated_home: Path, tmp_path: Path
) -> None:
    user_file = isolated_home / ".ssh" / "known_hosts"
    user_file.parent.mkdir()
    user_file.write_text(sshd.known_hosts_line())
    sshd.restart_with_new_host_key()
    with pytest.raises(ChangedHostKeyError) as info:
        ssh_connect(known_hosts=tmp_path / "known_hosts").run("true")
    assert f"ssh-keygen -f {user_file} -R '[127.0.0.1]:{sshd.port}'" in str(info.value)


def test_fingerprint_matches_ssh_keygen(sshd: SSHServer) -> None:
    key = paramiko.PKey.from_path(str(sshd.key))
    shown = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert fingerprint(key) == shown


# -- ssh config ---------------------------------------------------------------------


def test_ssh_config_alias_is_honoured(
    ssh_connect: Connect, sshd: SSHServer, isolated_home: Path
) -> None:
    _write_ssh_config(
        isolated_home,
        f"Host lab\n  HostName 127.0.0.1\n  User {sshd.user}\n  Port {sshd.port}\n"
        f"  IdentityFile {sshd.key}\n",
    )
    settings = resolve_settings("lab")
    assert (settings.host, settings.hostname, settings.port, settings.username) == (
        "lab",
        "127.0.0.1",
        sshd.port,
        sshd.user,
    )
    assert settings.key_files == (str(sshd.key),)
    with ssh_connect(settings) as conn:
        assert conn.run("whoami")[1] == b"targets-test\n"


def test_explicit_options_win_over_ssh_config(isolated_home: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_explicit"
    key.write_text("not read here\n")
    _write_ssh_config(
        isolated_home,
        "Host box\n  HostName 10.0.0.5\n  User fromconfig\n  Port 2200\n"
        "  IdentityFile ~/.ssh/id_config\n",
    )
    settings = resolve_settings("box", port=2222, username="me", key_file=str(key), use_agent=True)
    assert settings.hostname == "10.0.0.5"
    assert (settings.port, settings.username, settings.use_agent) == (2222, "me", True)
    assert settings.key_files == (str(key), str(isolated_home / ".ssh" / "id_config"))


def test_defaults_and_address_forms(isolated_home: Path) -> None:
    plain = resolve_settings("vm.example.com")
    assert (plain.hostname, plain.port, plain.username) == ("vm.example.com", 22, getpass.getuser())
    assert plain.key_files == () and plain.proxy_jump is None and plain.jump is None
    spelled = resolve_settings("me@10.1.2.3:2222")
    assert (spelled.hostname, spelled.port, spelled.username) == ("10.1.2.3", 2222, "me")
    v6 = resolve_settings("[::1]:2200")
    assert (v6.hostname, v6.port, v6.address) == ("::1", 2200, "[::1]:2200")


@pytest.mark.parametrize("address", ["", "host:notaport", "host:70000", "a@b@c"])
def test_bad_addresses_are_usage_errors(address: str) -> None:
    with pytest.raises(UsageError):
        resolve_settings(address)


def test_missing_explicit_key_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist") as info:
        resolve_settings("host", key_file=str(tmp_path / "nope"))
    assert info.value.exit_code == 2


# -- ProxyJump ----------------------------------------------------------------------


def test_proxy_jump_through_an_ssh_config_alias(
    ssh_connect: Connect, sshd: SSHServer, isolated_home: Path
) -> None:
    _write_ssh_config(
        isolated_home,
        f"Host bastion\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.key}\n"
        f"Host inner\n  HostName localhost\n  Port {sshd.port}\n  User {sshd.user}\n"
        "  ProxyJump bastion\n",
    )
    settings = resolve_settings("inner", key_file=str(sshd.key))
    assert settings.proxy_jump == "bastion"
    assert settings.jump is not None and settings.jump.hostname == "127.0.0.1"
    conn = ssh_connect(settings)
    with conn:
        # The jump host's sshd connects to the final host: the final sshd sees its
        # peer as the jump host ("localhost" resolved there).
        code, out, _ = conn.run("echo $SSH_CONNECTION")
        assert code == 0 and out.split()[2] == b"127.0.0.1"
        assert isinstance(conn.transport.sock, paramiko.Channel)
        assert conn._jump is not None and conn._jump.connected
    assert conn._jump is None and not conn.connected
    # Both host keys were checked and recorded.
    names = conn.known_hosts.read_text()
    assert f"[127.0.0.1]:{sshd.port}" in names and f"[localhost]:{sshd.port}" in names


def test_proxy_jump_written_as_user_host_port(ssh_connect: Connect, sshd: SSHServer) -> None:
    settings = sshd.settings(hostname="localhost", proxy_jump=f"{sshd.user}@127.0.0.1:{sshd.port}")
    with ssh_connect(settings) as conn:
        assert conn.run("echo via")[1] == b"via\n"
        assert isinstance(conn.transport.sock, paramiko.Channel)


def test_proxy_jump_host_key_is_checked_too(
    ssh_connect: Connect, sshd: SSHServer, tmp_path: Path
) -> None:
    settings = sshd.settings(hostname="localhost", proxy_jump=f"{sshd.user}@127.0.0.1:{sshd.port}")
    with pytest.raises(UnknownHostKeyError, match=f"127.0.0.1:{sshd.port}"):
        ssh_connect(settings, accept_host_key=False).run("true")


def test_proxy_jump_cannot_reach_the_final_host(ssh_connect: Connect, sshd: SSHServer) -> None:
    port = _free_port()
    settings = sshd.settings(port=port, proxy_jump=f"{sshd.user}@127.0.0.1:{sshd.port}")
    with pytest.raises(ConnectionFailed, match="through the jump host"):
        ssh_connect(settings).run("true")


# -- using the connection -----------------------------------------------------------


def test_run_returns_exit_code_output_and_passes_stdin(ssh_connect: Connect) -> None:
    with ssh_connect() as conn:
        assert conn.run("echo out; echo err >&2; exit 7") == (7, b"out\n", b"err\n")
        assert conn.run("tr a-z A-Z", input=b"hello") == (0, b"HELLO", b"")
        big = bytes(range(256)) * 8192  # 2 MiB both ways, stderr too: no deadlock
        code, out, err = conn.run("tee /dev/stderr", input=big)
        assert (code, out, err) == (0, big, big)


def test_run_timeout(ssh_connect: Connect) -> None:
    with ssh_connect() as conn:
        started = time.monotonic()
        with pytest.raises(CommandTimeout, match=r"did not finish within 0\.5 s"):
            conn.run("sleep 30", timeout=0.5)
        assert time.monotonic() - started < 5
        assert conn.run("echo still usable")[0] == 0


def test_exec_channel_streams(ssh_connect: Connect) -> None:
    with ssh_connect() as conn:
        started = time.monotonic()
        channel = conn.exec("echo first; sleep 1; echo second")
        first = channel.recv(100)
        assert first == b"first\n"
        assert time.monotonic() - started < 1.0  # arrived before the command ended
        rest = b""
        while chunk := channel.recv(100):
            rest += chunk
        assert rest == b"second\n"
        assert channel.recv_exit_status() == 0
        channel.close()

        # stdin can be streamed as well
        channel = conn.exec("cat")
        channel.sendall(b"ping\n")
        assert channel.recv(100) == b"ping\n"
        channel.shutdown_write()
        assert channel.recv_exit_status() == 0
        channel.close()


def test_channels_share_one_connection(ssh_connect: Connect) -> None:
    """8 threads x 5 short commands on one connection, which stays up. (A command that
    ends before its stdin's EOF is sent used to race paramiko's answer to the server's
    CLOSE, and sshd then dropped the whole connection: "ieof packet referred to
    nonexistent channel".)"""
    with ssh_connect() as conn:
        transport = conn.transport
        results: list[tuple[int, bytes, bytes]] = []

        def five(i: int) -> None:
            for _ in range(4):
                assert conn.run("true")[0] == 0
            results.append(conn.run(f"echo {i}"))

        threads = [threading.Thread(target=five, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r[1] for r in results) == [f"{i}\n".encode() for i in range(8)]
        assert conn.transport is transport


def test_put_file_is_atomic(ssh_connect: Connect, sshd: SSHServer, tmp_path: Path) -> None:
    folder = f"put-test-{tmp_path.name}"
    local = tmp_path / "payload.txt"
    local.write_bytes(b"first version\n")
    with ssh_connect() as conn:
        conn.run(f"rm -rf {folder} && mkdir {folder}")
        conn.put_file(local, f"~/{folder}/payload.txt", mode=0o600)
        remote = sshd.home / folder / "payload.txt"
        assert remote.read_bytes() == b"first version\n"
        assert remote.stat().st_mode & 0o777 == 0o600
        assert remote.stat().st_uid == sshd.home.stat().st_uid
        inode = remote.stat().st_ino

        # Replacing: a new file renamed over the old one (a reader holding the old
        # file keeps reading it whole), nothing left behind.
        with open(remote, "rb") as reader:
            local.write_bytes(b"second version, longer\n")
            conn.put_file(local, f"{folder}/payload.txt")
            assert reader.read() == b"first version\n"
        assert remote.read_bytes() == b"second version, longer\n"
        assert remote.stat().st_ino != inode
        assert remote.stat().st_mode & 0o777 == 0o644
        assert sorted(p.name for p in remote.parent.iterdir()) == ["payload.txt"]

        with pytest.raises(TargetsError, match="cannot write"):
            conn.put_file(local, f"{folder}/missing-dir/payload.txt")
        conn.run(f"rm -rf {folder}")


def test_connecting_is_lazy_and_close_is_idempotent(sshd: SSHServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "not-yet" / "known_hosts"
    # Constructing does no I/O: no DNS, no socket, no file.
    lazy = SSHConnection(sshd.settings(hostname="no-such-host.invalid"), known_hosts=known_hosts)
    assert not lazy.connected
    lazy.close()
    lazy.close()
    assert not known_hosts.parent.exists()

    conn = SSHConnection(sshd.settings(), known_hosts=known_hosts, accept_host_key=True)
    assert "not connected" in repr(conn)
    assert conn.run("true")[0] == 0
    assert conn.connected and "connected" in repr(conn)
    conn.close()
    conn.close()
    assert not conn.connected
    # A later call connects again.
    assert conn.run("echo back")[1] == b"back\n"
    conn.close()


def test_reconnects_after_the_connection_dropped(ssh_connect: Connect) -> None:
    with ssh_connect() as conn:
        conn.run("true")
        conn.transport.close()  # as if the network dropped it
        assert conn.run("echo again")[1] == b"again\n"


def test_missing_sshd_skips_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no sshd here"):
        skip_or_fail("no sshd here")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no sshd here"):
        skip_or_fail("no sshd here")


def test_host_key_policy_works_with_a_plain_sshclient(sshd: SSHServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(HostKeyPolicy(known_hosts, accept=False))
    options = {"username": sshd.user, "key_filename": str(sshd.key), "look_for_keys": False}
    with pytest.raises(UnknownHostKeyError, match=re.escape(sshd.host_key_fingerprint())):
        client.connect(sshd.host, sshd.port, allow_agent=False, **options)
    client.close()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(HostKeyPolicy(known_hosts, accept=True))
    client.connect(sshd.host, sshd.port, allow_agent=False, **options)
    client.close()
    assert known_hosts.read_text() == sshd.known_hosts_line()
