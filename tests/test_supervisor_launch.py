"""How a local run's supervisor is started: forked from the client (which has the agent
imported already) or, with ``TARGETS_SUPERVISOR_FORK=0`` or where a fork is unsafe, as
a new interpreter. Either way a user sees the same process: its own session, named
``... -m targets.agent supervise ROOT RUN_ID`` in ``ps``, holding nothing of the client's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import wait_until

# The launching client: it holds a file open and has output it has not flushed yet
# when it starts the run, as a `targets run` in a terminal may.
LAUNCHER = """
import sys
held = open(sys.argv[1], "w")
sys.stdout.write("LAUNCHER-BUFFERED ")
from targets.cli import main
main(["run", "job.py", "--detach"])
"""


def _fds(pid: int) -> list[str]:
    folder = Path(f"/proc/{pid}/fd")
    return [os.readlink(folder / name) for name in os.listdir(folder)]


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forked", "new-interpreter"])
def test_supervisor_is_its_own_process_whatever_launched_it(project, write, tmp_path, fork):
    marker = tmp_path / "release"
    held = tmp_path / "held-by-the-client.txt"
    write(
        project / "job.py",
        f"""
import pathlib, time
print("running", flush=True)
while not pathlib.Path({str(marker)!r}).exists():
    time.sleep(0.02)
print("released")
""",
    )
    env = dict(os.environ, TARGETS_SUPERVISOR_FORK=fork, TARGETS_SERVER_PERSIST="0")
    client = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(held)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert client.returncode == 0, client.stderr
    # The client's pending output went to its own stdout, once, not into the run.
    assert client.stdout.count("LAUNCHER-BUFFERED") == 1
    run_id = client.stdout.split()[-1]
    run_dir = Path(os.environ["TARGETS_HOME"]) / "runs" / run_id
    status = json.loads((run_dir / "status.json").read_text())
    pid = status["supervisor_pid"]

    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    assert b"-m targets.agent supervise" in cmdline and run_id.encode() in cmdline
    assert os.getsid(pid) == pid  # its own session: a Ctrl-C in the terminal never reaches it
    fds = _fds(pid)
    assert str(held) not in fds, fds
    assert str(run_dir / "supervisor.log") in fds  # its stdout and stderr

    marker.touch()
    from targets.runs import Run

    record = Run(Workspace(project), run_id).wait_for_completion()
    assert record["status"] == "Completed"
    log = (project / ".targets" / "runs" / run_id / "driver.log").read_text()
    assert log.splitlines() == ["running", "released"]
    assert "LAUNCHER-BUFFERED" not in (run_dir / "supervisor.log").read_text()


def test_forked_supervisor_honours_cancel_and_reports_it(project, write, cli, tmp_path):
    write(project / "job.py", "import time\nprint('up', flush=True)\ntime.sleep(300)\n")
    started = cli("run", "job.py", "--detach")  # a new process of one thread: it forks
    assert started.code == 0, started
    run_id = started.out.strip()
    run_dir = Path(os.environ["TARGETS_HOME"]) / "runs" / run_id
    wait_until(lambda: b"up" in _read(run_dir / "driver.log"), what="the run")
    pid = json.loads((run_dir / "status.json").read_text())["supervisor_pid"]
    assert b"supervise" in Path(f"/proc/{pid}/cmdline").read_bytes()
    result = cli("runs", "cancel", run_id)
    assert result.code == 0, result
    record = Workspace(project).ledger.get(run_id)
    assert record is not None and record.status == "Canceled"
    wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), what="its end")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"
