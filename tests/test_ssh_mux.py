"""Connection sharing for SSH targets (targets.ssh.mux) against the real test sshd: the
second command of a workspace goes through the connection the first one left, as
OpenSSH's ControlMaster would, and everything that must not change does not."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.ssh import mux
from targets.workspace import Workspace
from tests.conftest import wait_until
from tests.sshd import SSHServer, skip_or_fail, sshd_fixture, sshd_server_fixture  # noqa: F401

# `echo $SSH_CONNECTION` prints "client-ip client-port server-ip server-port": one TCP
# connection, one client port.
WHERE = "echo conn=$SSH_CONNECTION"


@pytest.fixture
def vm(sshd: SSHServer, project: Path, cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Whether a command finds the shared connection must not depend on how busy the
    # machine is: the suite's default (TARGETS_SSH_PERSIST=10, tests/conftest.py) lets a
    # mux process leave after 10 idle seconds, less than one `targets` command takes to
    # start under `-n 8` on 2 cores. Here it stays for the whole test, and is stopped
    # after it (no process is left behind).
    monkeypatch.setenv("TARGETS_SSH_PERSIST", "600")
    result = cli(
        "attach", "box", "--address", sshd.host, "--ssh-port", str(sshd.port),
        "--username", sshd.user, "--ssh-key", str(sshd.key), "--accept-host-key",
    )  # fmt: skip
    assert result.code == 0, result
    key = key_of(project, "box")
    yield "box"
    mux.stop(key)


def client_port(cli, target: str, **env: str) -> str:
    result = cli("run", "-c", WHERE, "--target", target, env=env or None)
    assert result.code == 0, result
    line = next(x for x in result.out.splitlines() if x.startswith("conn="))
    return line.split()[1]


def key_of(project: Path, name: str) -> str:
    key = getattr(Workspace(project).get_target(name), "mux_key", None)
    assert isinstance(key, str)
    return key


def socket_of(key: str) -> Path:
    return Path(tempfile.gettempdir()) / f"targets-ssh-{os.getuid()}" / f"{key}.sock"


def test_later_commands_share_one_connection(vm: str, project: Path, cli) -> None:
    first = client_port(cli, vm)  # connects itself, and starts the shared connection
    sock = socket_of(key_of(project, vm))
    wait_until(sock.exists, timeout=30, what="the shared connection's socket")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    shared = {client_port(cli, vm) for _ in range(3)}
    assert len(shared) == 1 and first not in shared, (first, shared)
    # Runs, logs and outputs work through it as through a connection of one's own.
    result = cli("run", "-c", "mkdir -p outputs && echo kept > outputs/o.txt", "--target", vm)
    assert result.code == 0, result
    runs = cli("runs", "list", "-o", "json").json()
    folder = project / ".targets" / "runs" / runs[0]["id"]
    assert (folder / "outputs" / "o.txt").read_text() == "kept\n"


def test_sharing_can_be_turned_off(vm: str, cli) -> None:
    off = {"TARGETS_SSH_PERSIST": "0"}
    ports = {client_port(cli, vm, **off) for _ in range(3)}
    assert len(ports) == 3, ports


def test_detach_ends_the_shared_connection(vm: str, project: Path, cli) -> None:
    client_port(cli, vm)
    key = key_of(project, vm)
    wait_until(socket_of(key).exists, timeout=30, what="the shared connection's socket")
    pid = int(socket_of(key).with_suffix(".pid").read_text())
    assert cli("detach", vm).code == 0

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, timeout=15, what="the mux process to exit")
    assert not socket_of(key).exists()


def mux_client_port(pid: int, sshd_port: int) -> str:
    """The client port of the mux process's own SSH connection (from ``ss``)."""
    if shutil.which("ss") is None:
        skip_or_fail("ss is not installed: `apt-get install iproute2` (scripts/test-services.sh)")
    listed = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{sshd_port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ports = [
        line.split()[2].rpartition(":")[2] for line in listed.splitlines() if f"pid={pid}," in line
    ]
    assert len(ports) == 1, listed
    return ports[0]


def start_mux(project: Path, name: str, key: str, persist: str) -> subprocess.Popen[str]:
    """The mux process of ``name``, as `targets` starts it, as our child (so its end is
    seen however briefly it lives) with ``TARGETS_SSH_PERSIST=persist``."""
    return subprocess.Popen(
        [sys.executable, "-m", "targets.ssh.mux", str(project), name, key],
        env={**os.environ, "TARGETS_SSH_PERSIST": persist},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_shared_connection_leaves_when_idle(vm: str, project: Path) -> None:
    key = key_of(project, vm)
    proc = start_mux(project, vm, key, persist="2")
    out, _ = proc.communicate(timeout=120)  # it leaves by itself
    # It printed nothing: it served (it says why when it shares nothing), then left.
    assert (proc.returncode, out) == (0, ""), out
    folder = socket_of(key).parent
    assert not list(folder.glob(f"{key}.*")), "files left behind"


def test_the_shared_connection_stays_while_a_command_outlasts_the_persist_time(
    vm: str, project: Path, sshd: SSHServer
) -> None:
    """Idle time counts from the last client: a command longer than TARGETS_SSH_PERSIST
    runs to its end through the shared connection. Nothing here measures time."""
    key = key_of(project, vm)
    sock = socket_of(key)
    command = "sleep 5; echo conn=$SSH_CONNECTION"
    channel, proc = None, None
    for _ in range(5):  # until a client is in: a very busy machine may let one leave idle
        proc = start_mux(project, vm, key, persist="2")
        wait_until(lambda p=proc: sock.exists() or p.poll() is not None, 120, "the socket")
        with contextlib.suppress(mux.MuxUnavailable):
            channel = mux.connect(key, command)
            break
        proc.communicate(timeout=120)
    assert channel is not None and proc is not None, "no mux process took a command"
    shared = mux_client_port(proc.pid, sshd.port)
    status, out, err = channel.communicate(timeout=120)
    assert (status, err) == (0, b""), (status, out, err)
    assert out.decode().startswith(f"conn=127.0.0.1 {shared} "), (shared, out)
    assert proc.communicate(timeout=120)[0] == ""  # then it left when idle
    assert proc.returncode == 0


def test_a_broken_shared_connection_falls_back_to_a_direct_one(
    vm: str, project: Path, cli, sshd: SSHServer
) -> None:
    client_port(cli, vm)
    key = key_of(project, vm)
    wait_until(socket_of(key).exists, timeout=30, what="the shared connection's socket")
    # The mux process stops answering (as if the machine it talks to went away)...
    pid = int(socket_of(key).with_suffix(".pid").read_text())
    os.kill(pid, 19)  # SIGSTOP
    try:
        # ...the command does not hang on it: it connects itself.
        assert client_port(cli, vm)
    finally:
        os.kill(pid, 18)  # SIGCONT


def test_another_users_socket_folder_is_not_used(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # re-read TMPDIR
    try:
        folder = tmp_path / f"targets-ssh-{os.getuid()}"
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)  # writable by anyone: someone could have put a socket there
        assert mux.mux_dir() is None
        with pytest.raises(mux.MuxUnavailable):
            mux.connect("0" * 24, "true")
        folder.chmod(0o700)
        assert mux.mux_dir() == folder
    finally:
        tempfile.tempdir = None


def test_run_command_goes_through_the_shared_connection(vm: str, project: Path, cli) -> None:
    """The helper kinds built on `vm` use for commands of their own (the Slurm plugin's
    sbatch and squeue): input, output, errors and the exit code, through the shared
    connection once it exists, and a timeout that ends the command."""
    from targets.errors import ConnectionFailed

    first = client_port(cli, vm)
    wait_until(socket_of(key_of(project, vm)).exists, timeout=30, what="the socket")
    with Workspace(project).get_target(vm) as target:
        code, out, err = target.run_command(  # type: ignore[attr-defined]
            "cat; echo to-stderr >&2; echo $SSH_CONNECTION; exit 3", input=b"fed\n"
        )
        assert code == 3 and err == b"to-stderr\n", (code, out, err)
        lines = out.decode().splitlines()
        assert lines[0] == "fed" and lines[1].split()[1] != first
        assert lines[1].split()[1] == client_port(cli, vm)  # the shared one
        assert target._ssh is None  # type: ignore[attr-defined]  # no connection of its own
        # `sleep 30` would end by itself and return 0: the error is the timeout ending it.
        with pytest.raises(ConnectionFailed, match="did not finish within 1 s"):
            target.run_command("sleep 30", timeout=1)  # type: ignore[attr-defined]


def test_uploads_and_concurrent_runs_through_the_shared_connection(
    vm: str, project: Path, write, cli
) -> None:
    """12 MB of new files travel through the shared connection intact (the run hashes
    what it received), while another run streams through it at the same time."""
    import hashlib
    import subprocess

    from tests.conftest import TARGETS

    first = client_port(cli, vm)
    wait_until(socket_of(key_of(project, vm)).exists, timeout=30, what="the socket")
    data = project / "data"
    data.mkdir()
    expected = {}
    for i in range(6):
        blob = os.urandom(2 * 1024 * 1024)
        (data / f"part{i}.bin").write_bytes(blob)
        expected[f"part{i}.bin"] = hashlib.sha256(blob).hexdigest()
    write(
        project / "check.py",
        "import hashlib, os\n"
        "for name in sorted(os.listdir('data')):\n"
        "    print(name, hashlib.sha256(open(os.path.join('data', name), 'rb').read())"
        ".hexdigest(), flush=True)\n"
        "print('via', os.environ.get('SSH_CONNECTION', '-').split()[1], flush=True)\n",
    )
    write(
        project / "ticker.py",
        "import time\nfor i in range(20):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n",
    )
    ticker = subprocess.Popen(
        [*TARGETS, "run", "ticker.py", "--target", vm],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = cli("run", "check.py", "--target", vm)
    out, err = ticker.communicate(timeout=120)
    assert ticker.returncode == 0, err
    assert [f"tick {i}" for i in range(20)] == [
        line for line in out.splitlines() if line.startswith("tick")
    ], out
    assert result.code == 0, result
    got = dict(line.split() for line in result.out.splitlines() if line.startswith("part"))
    assert got == expected
    # Both went through the shared connection: the run's session came from its port.
    shared = client_port(cli, vm)
    assert f"via {shared}" in result.out and shared != first, (first, shared, result.out)


# -- the spare agent -------------------------------------------------------------------


def agents_of(port: str) -> set[int]:
    """Pids of `agent.pyz serve` processes started over the SSH connection whose client
    port is ``port`` (their SSH_CONNECTION says so; read as root from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agent.pyz" not in b" ".join(argv) or b"serve" not in argv:
            continue
        for item in environ:
            if item.startswith(b"SSH_CONNECTION=") and item.split()[1] == port.encode():
                found.add(int(entry.name))
    return found


def one_session(project: Path, vm: str, port: str) -> set[int]:
    """Open an agent session through the shared connection and end it; then wait for
    the spare agent it leaves (and for that session's own agent to be gone): its pid."""
    with Workspace(project).get_target(vm) as target:
        target.agent()  # type: ignore[attr-defined]
        assert target._ssh is None  # type: ignore[attr-defined]  # through the shared one
        used = agents_of(port)
    assert used

    def spare() -> set[int]:
        now = agents_of(port)
        return now if now and not now & used else set()

    return wait_until(spare, timeout=60, what="a spare agent")


def shared_port(project: Path, vm: str, sshd: SSHServer) -> str:
    sock = socket_of(key_of(project, vm))
    wait_until(sock.exists, timeout=30, what="the shared connection's socket")
    return mux_client_port(int(sock.with_suffix(".pid").read_text()), sshd.port)


def test_the_agent_waits_started_in_the_shared_connection(
    vm: str, project: Path, cli, sshd: SSHServer
) -> None:
    """Once a command's agent session ends, the shared connection starts the agent again
    and keeps it waiting; the next command gets that very process (no exec, no start of
    Python on the target), and a new one is started after it."""
    if os.geteuid() != 0:
        skip_or_fail("reading the agent processes' environment needs root")
    client_port(cli, vm)  # connects itself; starts the shared connection
    port = shared_port(project, vm, sshd)
    spare = one_session(project, vm, port)
    assert len(spare) == 1, spare
    with Workspace(project).get_target(vm) as target:
        agent = target.agent()  # type: ignore[attr-defined]
        assert agent.call("which_tool", name="no-such-tool-here") is None
        assert agents_of(port) == spare  # the one it talks to is the spare
        assert target._ssh is None  # type: ignore[attr-defined]
    # That session ended (so did that agent), and the next spare waits.
    wait_until(lambda: agents_of(port) - spare, timeout=60, what="the next spare agent")
    wait_until(lambda: not agents_of(port) & spare, timeout=60, what="the used agent's end")


def test_a_spare_agent_that_died_or_is_not_asked_for_is_not_used(
    vm: str, project: Path, cli, sshd: SSHServer
) -> None:
    """A spare whose process ended (as when the target rebooted or the agent was removed)
    is dropped and the command started as usual; one kept for another command (another
    agent version) is ended when that other command is asked for."""
    if os.geteuid() != 0:
        skip_or_fail("reading the agent processes' environment needs root")
    client_port(cli, vm)
    port = shared_port(project, vm, sshd)
    (dead,) = one_session(project, vm, port)
    os.kill(dead, 9)
    wait_until(lambda: dead not in agents_of(port), timeout=30, what="the agent's end")
    # The next session works (a dead spare handed out would have lost it its hello).
    (spare,) = one_session(project, vm, port)
    assert spare != dead
    result = cli("run", "-c", "echo fine", "--target", vm)
    assert result.code == 0 and "fine" in result.out, result
    # Another agent command (e.g. after an upgrade): the spare is not it, and is ended.
    # (Asked again while the spare may still be on its way: it is kept once it said hello.)
    for _ in range(20):
        channel = mux.connect(key_of(project, vm), "echo other", spare=True)
        status, out, _err = channel.communicate(timeout=120)
        assert (status, out) == (0, b"other\n")
        with contextlib.suppress(AssertionError):
            wait_until(lambda: spare not in agents_of(port), timeout=3, what="its end")
            break
    assert spare not in agents_of(port), "the spare of another command was kept"
