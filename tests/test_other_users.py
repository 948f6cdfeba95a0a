"""Other users of the same machine: they cannot read a run's files, variables, logs or
sockets, on the client or on the target, and cannot block this user's commands.

A second unix user, ``targets-other``, is made once (as ``tests/sshd.py`` makes
``targets-test``); each check runs as that user through ``runuser``. The client's files
are put where every user can walk (a 0755 folder under ``/tmp``, as homes under ``/home``
often are) with a umask of 022, and the agent's home and the workspace's ``.targets/``
are made 0755 first, as earlier versions left them: only what ``targets`` itself does
keeps the other user out.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import TARGETS, wait_until
from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401
from tests.sshd import SSHServer, skip_or_fail, sshd_fixture, sshd_server_fixture  # noqa: F401

OTHER = "targets-other"
TOKEN = "tok-" + uuid.uuid4().hex  # a value nobody else may see
MULTILINE = "line one of a key\n" + uuid.uuid4().hex  # an env file cannot hold it


@pytest.fixture(scope="session")
def other_user() -> str:
    """The unix user ``targets-other`` (created when missing; needs root)."""
    missing = [tool for tool in ("runuser", "useradd") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        skip_or_fail(
            f"acting as a second unix user needs root and {', '.join(missing) or 'runuser'}"
        )
    try:
        pwd.getpwnam(OTHER)
    except KeyError:
        made = subprocess.run(
            ["useradd", "-m", "-s", "/bin/sh", OTHER], capture_output=True, text=True, check=False
        )
        if made.returncode not in (0, 9):  # 9: made meanwhile by another worker
            pytest.fail(f"useradd {OTHER} failed: {made.stderr.strip()}")
    return OTHER


def as_other(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": f"/home/{OTHER}", "LANG": "C"}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        ["runuser", "-u", OTHER, "--", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
        **kwargs,
    )


def readable_by_other(path: Path) -> bool:
    argv = ["ls", "-A", str(path)] if path.is_dir() else ["cat", str(path)]
    return as_other(*argv).returncode == 0


def assert_private(paths: list[Path]) -> None:
    for path in paths:
        assert path.exists(), path  # the owner has it...
        assert not readable_by_other(path), f"{OTHER} can read {path}"  # ...nobody else


@pytest.fixture
def shared(isolated_home: Path, other_user: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder every user can walk, holding HOME (with an agent home of mode 0755) and a
    project (with a ``.targets/`` of mode 0755); umask 022 while the test runs."""
    old_umask = os.umask(0o022)
    base = Path(tempfile.mkdtemp(prefix="targets-other-users-"))
    try:
        base.chmod(0o755)
        home = base / "home"
        (home / ".targets").mkdir(parents=True)
        (base / "proj" / ".targets").mkdir(parents=True)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("TARGETS_HOME", str(home / ".targets"))
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        monkeypatch.chdir(base / "proj")
        yield base
    finally:
        os.umask(old_umask)
        shutil.rmtree(base, ignore_errors=True)


def run(project: Path, rc: str, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    (project / "rc.yml").write_text(rc)
    done = subprocess.run(
        [*TARGETS, "run", "rc.yml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done, Workspace(project).ledger.list(limit=1)[0].id


SCRIPT = """\
import os, pathlib
pathlib.Path("outputs").mkdir()
pathlib.Path("outputs/o.txt").write_text(os.environ["API_TOKEN"])
print("token seen", len(os.environ["API_TOKEN"]))
"""


def test_a_local_run_is_private_to_its_owner(shared: Path) -> None:
    project = shared / "proj"
    (project / "show.py").write_text(SCRIPT)
    done, run_id = run(
        project,
        f"script: show.py\ntarget: local\nenvironment_variables: {{API_TOKEN: {TOKEN}}}\n",
    )
    assert f"token seen {len(TOKEN)}" in done.stdout
    workspace = project / ".targets"
    agent = shared / "home" / ".targets"
    assert TOKEN in (agent / "runs" / run_id / "spec.json").read_text()
    assert_private(
        [
            workspace,
            workspace / "runs.db",
            workspace / "runs" / run_id / "run.json",
            workspace / "runs" / run_id / "driver.log",
            workspace / "runs" / run_id / "outputs" / "o.txt",
            agent,
            agent / "runs" / run_id / "spec.json",
            agent / "runs" / run_id / "driver.log",
            agent / "runs" / run_id / "wd" / "show.py",
            agent / "runs" / run_id / "wd" / "outputs" / "o.txt",
        ]
    )
    # Both roots were 0755 (an earlier version's): tightened, not just new files private.
    assert workspace.stat().st_mode & 0o777 == 0o700
    assert agent.stat().st_mode & 0o777 == 0o700
    assert (workspace / "runs.db").stat().st_mode & 0o777 == 0o600


def test_a_vm_run_its_password_and_shared_connection_are_private(
    shared: Path, sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = shared / "proj"
    remote = sshd.home / ".targets"
    remote.mkdir(exist_ok=True)  # as an earlier version left it: 0755
    user = pwd.getpwnam(sshd.user)
    os.chown(remote, user.pw_uid, user.pw_gid)
    remote.chmod(0o755)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "targets.keyring_file.EncryptedFileKeyring")
    monkeypatch.setenv("TARGETS_KEYRING_PASSPHRASE", "correct horse battery staple")
    attached = subprocess.run(
        [*TARGETS, "attach", "box", "--address", sshd.host, "--ssh-port", str(sshd.port),
         "--username", sshd.user, "--password-stdin", "--accept-host-key"],
        input=sshd.password + "\n", cwd=project, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert attached.returncode == 0, attached.stderr
    (project / "show.py").write_text(SCRIPT)
    done, run_id = run(
        project, f"script: show.py\ntarget: box\nenvironment_variables: {{API_TOKEN: {TOKEN}}}\n"
    )
    assert f"token seen {len(TOKEN)}" in done.stdout
    assert TOKEN in (remote / "runs" / run_id / "spec.json").read_text()
    from targets.keyring_file import store_path
    from targets.ssh.mux import mux_dir

    key = getattr(Workspace(project).get_target("box"), "mux_key", None)
    folder = mux_dir()
    assert isinstance(key, str) and folder is not None
    socket_path = folder / f"{key}.sock"
    wait_until(socket_path.exists, timeout=30, what="the shared connection's socket")
    assert_private(
        [
            remote,
            remote / "runs" / run_id / "spec.json",
            remote / "runs" / run_id / "driver.log",
            remote / "runs" / run_id / "wd" / "show.py",
            remote / "runs" / run_id / "wd" / "outputs" / "o.txt",
            project / ".targets" / "targets.yml",
            project / ".targets" / "runs" / run_id / "outputs" / "o.txt",
            store_path(),
            folder,
        ]
    )
    assert remote.stat().st_mode & 0o777 == 0o700
    # The agent's own files are private too, whatever the login's umask (022 here).
    for path in (remote / "runs" / run_id, remote / "runs" / run_id / "spec.json"):
        assert path.stat().st_mode & 0o077 == 0, path
    connect = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
    refused = as_other("/usr/bin/python3", "-c", connect, str(socket_path))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused


@pytest.fixture
def docker_box(docker_engine: DockerEngine, sshd: SSHServer, shared: Path) -> str:
    """The test sshd attached as ``dockbox``, its user allowed to use Docker (the agent
    drives the docker command there)."""
    subprocess.run(["usermod", "-aG", "docker", sshd.user], check=True)
    attached = subprocess.run(
        [*TARGETS, "attach", "dockbox", "--address", sshd.host, "--ssh-port", str(sshd.port),
         "--username", sshd.user, "--ssh-key", str(sshd.key), "--accept-host-key"],
        cwd=shared / "proj", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert attached.returncode == 0, attached.stderr
    return "dockbox"


WAITING = """\
import hashlib, os, pathlib, sys, time
pathlib.Path("started").write_text(sys.argv[1])
while not pathlib.Path("go").exists():
    time.sleep(0.05)
for name in ("API_TOKEN", "MULTI"):
    print(name, hashlib.sha256(os.environ[name].encode()).hexdigest())
"""


def command_lines() -> list[bytes]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found.append((proc / "cmdline").read_bytes())
            except OSError:  # ended meanwhile
                continue
    return found


@pytest.mark.xdist_group("docker")  # with tests/test_docker.py: `envs prune` there
def test_a_docker_runs_variables_are_on_no_command_line(
    docker_box: str, docker_engine: DockerEngine, sshd: SSHServer, shared: Path
) -> None:
    project = shared / "proj"
    (project / "wait.py").write_text(WAITING)
    nonce = uuid.uuid4().hex
    (project / "rc.yml").write_text(
        f"script: wait.py\narguments: [{nonce}]\ntarget: {docker_box}\n"
        f"environment_variables:\n  API_TOKEN: {TOKEN}\n  MULTI: {json.dumps(MULTILINE)}\n"
        "environment:\n  python: {user_managed_dependencies: true}\n  docker:\n"
        f"    enabled: true\n    base_image: {docker_engine.image}\n"
    )
    client = subprocess.Popen(
        [*TARGETS, "run", "rc.yml"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def started() -> Path | None:
            for marker in (sshd.home / ".targets" / "runs").glob("*/wd/started"):
                if marker.read_text() == nonce:
                    return marker.parent
            return None

        wd = wait_until(started, timeout=240, what="the script to start in its container")
        assert wd is not None
        lines = command_lines()
        for secret in (TOKEN, MULTILINE, MULTILINE.splitlines()[1]):
            seen = [line for line in lines if secret.encode() in line]
            assert not seen, f"a variable's value is on a command line: {seen[0]!r:.300}"
        # The variables went through a file that is gone once the container exists.
        assert not list(wd.parent.glob(".env-*"))
        (wd / "go").write_text("")
        out, err = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, (out, err)
    for name, value in (("API_TOKEN", TOKEN), ("MULTI", MULTILINE)):
        assert f"{name} {hashlib.sha256(value.encode()).hexdigest()}" in out


LOCK = """\
import os, sys
from targets.clusters.providers import docker
with docker._nodes_lock():
    print("locked")
"""


def test_another_users_lock_file_does_not_block_node_creation(shared: Path) -> None:
    tmp = shared / "tmp"  # the machine's /tmp, for this test (TMPDIR)
    tmp.mkdir()
    tmp.chmod(0o1777)
    squatted = tmp / "targets-docker-nodes.lock"  # the name earlier versions locked
    holder = subprocess.Popen(
        ["runuser", "-u", OTHER, "--", "flock", "-x", str(squatted), "-c", "echo held; cat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        env = {**os.environ, "TMPDIR": str(tmp)}
        try:
            done = subprocess.run(
                [sys.executable, "-c", LOCK], env=env, capture_output=True, text=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{OTHER}'s lock on {squatted} blocked this user's cluster")
        assert done.returncode == 0 and done.stdout == "locked\n", done.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    # The user's lock lives in a folder of theirs that nobody else can write.
    folder = shared / "home" / ".cache" / "targets" / "run"
    assert (folder / "docker-nodes.lock").is_file()
    assert folder.stat().st_mode & 0o777 == 0o700
    assert not readable_by_other(folder)
