"""The command server (targets.commandserver): the ``targets`` console script handing its
command to a warm worker, as users run it. Every test runs the installed console script
in a subprocess, with a private socket folder (TMPDIR) so servers of other tests are not
shared, and compares what the user sees with the same command run in-process
(``TARGETS_SERVER_PERSIST=0``)."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import pid_alive, wait_until
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

SCRIPT = Path(sys.prefix) / "bin" / "targets"


class Served:
    """The environment of commands that may use a server, and that server's files."""

    def __init__(self, tmp: Path, project: Path) -> None:
        self.tmp = tmp
        self.project = project
        self.env = dict(
            os.environ, TMPDIR=str(tmp), TARGETS_SERVER_PERSIST="60", TARGETS_SERVER_DEBUG="1"
        )
        self.env.pop("XDG_RUNTIME_DIR", None)
        self.folder = tmp / f"targets-cmd-{os.getuid()}"

    def run(
        self, *args: str, server: bool = True, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        environ = dict(self.env, **env)
        if not server:
            environ["TARGETS_SERVER_PERSIST"] = "0"
        return subprocess.run(
            [str(SCRIPT), *args],
            cwd=self.project,
            env=environ,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def pid(self) -> int | None:
        """The serving server's pid (its socket is there and its lock is held)."""
        for sock in self.folder.glob("*.sock"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(sock.with_suffix(".pid").read_text())
                if pid_alive(pid):
                    return pid
        return None

    def wait_server(self) -> int:
        return wait_until(self.pid, timeout=180, what="a command server")

    def served(self) -> int:
        """How many commands the server has finished (its log says)."""
        return sum(log.read_text().count(" served pid ") for log in self.folder.glob("*.log"))

    def stop(self) -> None:
        for pid_file in self.folder.glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text())
                if b"targets.commandserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGTERM)
                    wait_until(lambda p=pid: not pid_alive(p), timeout=30, what="server exit")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    if not SCRIPT.exists():
        pytest.fail(f"no console script at {SCRIPT}: install the project (make install)")
    # Short: a Unix socket's path has at most 107 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="tcs-", dir="/tmp"))
    project = tmp_path / "code" / "proj"
    project.mkdir(parents=True)
    (project / "hello.py").write_text(
        "import os, sys\nprint('hello', os.environ.get('GREETING'))\n"
    )
    (project / "fails.py").write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    (project / "slow.py").write_text(
        "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
    )
    got = Served(tmp, project)
    try:
        yield got
    finally:
        got.stop()
        for log in got.folder.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text()}")
        shutil.rmtree(tmp, ignore_errors=True)


def _same(a: subprocess.CompletedProcess[str], b: subprocess.CompletedProcess[str]) -> None:
    """What a user sees of two runs of the same command, run ids aside."""
    import re

    def norm(text: str) -> str:
        text = re.sub(r"proj_\d{8}_\d{6}_[a-z0-9]+", "RUN", text)
        return re.sub(r"\d+\.\ds", "N.Ns", text)

    assert (a.returncode, norm(a.stdout), norm(a.stderr)) == (
        b.returncode,
        norm(b.stdout),
        norm(b.stderr),
    )


def test_a_second_command_is_served_by_a_warm_worker_and_behaves_the_same(served: Served) -> None:
    first = served.run("run", "hello.py", GREETING="first")
    assert first.returncode == 0, first.stderr
    assert "hello first" in first.stdout
    served.wait_server()
    before = served.served()
    # Environment, working directory (the workspace is found upwards from it), output,
    # exit codes: the same as in-process, for a success, a failing script and bad input.
    for args in (["run", "hello.py"], ["run", "fails.py"], ["run", "nope.py"]):
        warm = served.run(*args, GREETING="warm")
        cold = served.run(*args, server=False, GREETING="warm", TARGETS_SERVER_DEBUG="")
        _same(warm, cold)
    assert served.served() == before + 3, (
        [p.read_text() for p in served.folder.glob("*.log")],
        sorted(p.name for p in served.folder.iterdir()),
        served.pid(),
        warm.stderr,
    )
    warm = served.run("run", "hello.py", GREETING="warm")
    assert "hello warm" in warm.stdout
    assert served.run("run", "fails.py").returncode == 1
    assert served.run("run", "nope.py").returncode == 2
    listed = json.loads(served.run("runs", "list", "-o", "json").stdout)
    assert len(listed) == 7  # every run was recorded (not the refused nope.py)
    assert all(r["target"] == "local" for r in listed)


def test_the_umask_of_the_client_applies(served: Served) -> None:
    served.run("runs", "list")
    served.wait_server()
    modes = {}
    for umask in (0o022, 0o077):
        proc = subprocess.run(
            ["sh", "-c", f"umask {umask:03o} && exec {SCRIPT} run hello.py --detach"],
            cwd=served.project,
            env=served.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "in-process" not in proc.stderr
        folder = served.project / ".targets" / "runs" / proc.stdout.strip()
        modes[umask] = folder.stat().st_mode & 0o777
    assert modes == {0o022: 0o755, 0o077: 0o700}


def test_ctrl_c_stops_streaming_and_the_run_goes_on(served: Served) -> None:
    served.run("runs", "list")
    server = served.wait_server()
    proc = subprocess.Popen(
        [str(SCRIPT), "run", "slow.py"],
        cwd=served.project,
        env=served.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    while "tick" not in line:
        line = proc.stdout.readline()
        assert line, "the run printed nothing"
    workers = _children(server)
    assert workers, "the command is not running in a worker of the server"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "stopped streaming; the run goes on" in err
    run_id = err.split("targets runs logs ")[1].split()[0]
    assert _status(served, run_id) == "Running"
    served.run("runs", "cancel", run_id)
    for pid in workers:
        wait_until(lambda p=pid: not pid_alive(p), timeout=30, what="the worker's exit")


def test_kill_9_of_the_client_ends_its_command(served: Served) -> None:
    first = served.run("run", "slow.py", "--detach")
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.strip()
    server = served.wait_server()
    proc = subprocess.Popen(
        [str(SCRIPT), "runs", "logs", run_id, "--follow"],
        cwd=served.project,
        env=served.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline()  # following
    workers = wait_until(lambda: _children(server), timeout=30, what="a worker")
    proc.kill()
    proc.wait()
    for pid in workers:
        wait_until(lambda p=pid: not pid_alive(p), timeout=30, what="the worker to end")
    served.run("runs", "cancel", run_id)


def test_stdin_reaches_the_command(served: Served, sshd: SSHServer) -> None:
    served.run("runs", "list")
    served.wait_server()
    before = served.served()
    attached = served.run(
        "attach",
        "vm1",
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
    assert attached.returncode == 0, attached.stderr
    assert served.served() == before + 1
    assert sshd.password not in (served.project / ".targets" / "targets.yml").read_text()
    ran = served.run("run", "hello.py", "--target", "vm1", GREETING="remote")
    assert ran.returncode == 0, ran.stderr
    assert "hello" in ran.stdout


def _status(served: Served, run_id: str) -> str:
    shown = served.run("runs", "show", run_id, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    return str(json.loads(shown.stdout)["status"])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _in_pty(argv: list[str], cwd: Path, env: dict[str, str], answer: bytes) -> tuple[int, bytes]:
    """Run ``argv`` on a new terminal (80 columns); type ``answer`` at the first prompt."""
    import fcntl
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=secondary, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    seen = b""
    answered = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                data = os.read(primary, 65536)
            except OSError:
                break
            if not data:
                break
            seen += data
            if not answered and b"[y/N]" in seen:
                os.write(primary, answer)
                answered = True
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(primary)
    return proc.returncode, seen


def test_a_prompt_on_the_terminal_is_answered_through_the_server(
    served: Served, sshd: SSHServer
) -> None:
    served.run("runs", "list")
    served.wait_server()
    before = served.served()
    env = dict(served.env, TERM="xterm-256color")
    args = [
        str(SCRIPT),
        "attach",
        "vm1",
        "--address",
        sshd.host,
        "--ssh-port",
        str(sshd.port),
        "--username",
        sshd.user,
        "--ssh-key",
        str(sshd.key),
    ]
    code, seen = _in_pty(args, served.project, env, b"y\n")
    assert code == 0, seen.decode(errors="replace")
    assert b"The authenticity of host" in seen
    assert served.served() == before + 1
    known = (served.project / ".targets" / "known_hosts").read_text()
    assert "ssh-ed25519" in known
    # The same table on the terminal (width, colours) as without the server.
    code_warm, warm = _in_pty([str(SCRIPT), "list"], served.project, env, b"")
    code_cold, cold = _in_pty(
        [str(SCRIPT), "list"], served.project, dict(env, TARGETS_SERVER_PERSIST="0"), b""
    )
    assert (code_warm, warm) == (code_cold, cold)
    assert b"\x1b[" in warm  # a terminal: rich styles the table


def test_changed_code_is_never_served_stale(served: Served, tmp_path: Path) -> None:
    extra = tmp_path / "site-extra"
    extra.mkdir()
    env = {"PYTHONPATH": str(extra)}
    served.run("runs", "list", **env)
    old = served.wait_server()
    assert served.run("runs", "list", **env).returncode == 0
    # A package appears on the import path (as `pip install` makes one appear).
    (extra / "newly_installed.py").write_text("")
    after = served.run("run", "hello.py", **env, GREETING="after")
    assert after.returncode == 0 and "hello after" in after.stdout
    wait_until(lambda: not pid_alive(old), timeout=30, what="the stale server's exit")
    new = served.wait_server()
    assert new != old


def test_the_server_leaves_when_idle(served: Served) -> None:
    served.run("runs", "list", TARGETS_SERVER_PERSIST="2")
    pid = served.wait_server()
    wait_until(lambda: not pid_alive(pid), timeout=60, what="the idle server's exit")
    assert not list(served.folder.glob("*.sock"))


def test_an_unsafe_socket_folder_is_not_used(served: Served) -> None:
    served.folder.mkdir(mode=0o777)
    os.chmod(served.folder, 0o777)
    for _ in range(3):
        proc = served.run("run", "hello.py", GREETING="x")
        assert proc.returncode == 0 and "hello x" in proc.stdout
    assert not list(served.folder.iterdir())


def test_version_answers_without_importing_the_cli(served: Served) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), "--version"],
        env=dict(served.env, TARGETS_SERVER_PERSIST="0"),
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
    assert "click" not in imported and "targets.cli" not in imported
    full = subprocess.run(
        [sys.executable, "-m", "targets", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout == full.stdout
