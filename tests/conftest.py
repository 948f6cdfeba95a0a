"""Fixtures shared by the suite: an isolated HOME, agent root and project per test, and a
helper that runs the real `targets` command in a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

# With `CI` set, every skip is a failure (targets.testing.ci_skips): CI sees what did not run.
from targets.testing.ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

# The fixtures a plugin author gets (targets.testing.fixtures) serve this suite too; only
# isolated_home differs here (a plaintext keyring, the test venv activated).
from targets.testing.fixtures import TARGETS, CLIResult, cli, project, write  # noqa: F401

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own HOME and agent root: nothing touches the developer's."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TARGETS_HOME", str(home / ".targets"))
    monkeypatch.delenv("TARGETS_WORKSPACE", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    # Shared SSH connections (targets.ssh.mux) outlive a test's last command by 10 s, not
    # 10 minutes: the session leaves no process behind.
    monkeypatch.setenv("TARGETS_SSH_PERSIST", "10")
    # No command server (targets.commandserver) for tests that start the console script:
    # tests/test_commandserver.py turns it on with a socket folder of its own.
    monkeypatch.setenv("TARGETS_SERVER_PERSIST", "0")
    # Like a user who activated the test venv: local user-managed runs use the active
    # Python (tests/test_user_python.py builds the other shapes), and the suite's scripts
    # import what the test venv holds (mlflow, torch, targets itself).
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    monkeypatch.setenv("PATH", os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")]))
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    return home


VENV_BIN = os.path.join(sys.prefix, "bin")


def wait_until(predicate: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
    """Poll until `predicate` returns something truthy, and return that value (so a caller
    acts on what was seen, not on a second look that may already differ)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_status(
    cli: Callable[..., CLIResult],  # noqa: F811 - the callable, not the fixture
    run_id: str,
    status: str,
    timeout: float,
    what: str,
) -> None:
    """Poll `targets runs show RUN` until the run has ``status``."""
    wait_until(
        lambda: cli("runs", "show", run_id, "-o", "json").json()["status"] == status,
        timeout=timeout,
        what=what,
    )


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def in_ci() -> bool:
    return bool(os.environ.get("CI"))


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """``folder`` on a tmpfs of ``size`` (``2m``) for the block: a disk that fills.
    Needs root and mount(8): skips without them, fails instead when CI is set."""
    import shutil

    ci = bool(os.environ.get("CI"))
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if ci:
            pytest.fail("mounting a tmpfs needs root and mount(8); CI has both")
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}"
        if ci:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def grow_disk(folder: Path, size: str) -> None:
    """Give the tmpfs of :func:`small_disk` at ``folder`` room again."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


@pytest.fixture
def shared_wheels() -> Iterator[Path]:
    """A folder with the wheel ``tinypkg 1.0`` that every user can read: the SSH test
    user and containers build environments from it (pytest's own temporary folders are
    private to root)."""
    import shutil
    import uuid

    from tests.test_environments import make_wheel

    folder = Path(f"/tmp/targets-wheels-{uuid.uuid4().hex}")
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    make_wheel(folder, "tinypkg", "1.0")
    for wheel in folder.iterdir():
        os.chmod(wheel, 0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


_SESSION_STARTED = time.time()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the environment images (``targets-env:*``) this test session built, so that
    repeated `make test` runs do not fill the Docker engine's disk. Only in the controller
    (after every xdist worker has finished), and only images created since it started."""
    import datetime
    import shutil

    if hasattr(session.config, "workerinput"):
        return
    docker = shutil.which("docker")
    if docker is None:
        return
    listed = subprocess.run(
        [docker, "images", "-q", "--filter", "label=compute-targets.env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ids = sorted(set(listed.stdout.split()))
    if listed.returncode != 0 or not ids:
        return
    inspected = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Id}} {{.Created}}", *ids],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ours = []
    for line in inspected.stdout.splitlines():
        image_id, _, created = line.partition(" ")
        try:
            when = datetime.datetime.fromisoformat(created.strip()[:26].rstrip("Z"))
        except ValueError:
            continue
        stamp = when.replace(tzinfo=datetime.timezone.utc).timestamp()
        if stamp >= _SESSION_STARTED - 1:
            ours.append(image_id)
    if ours:
        subprocess.run([docker, "image", "rm", "-f", *ours], capture_output=True, timeout=300)
