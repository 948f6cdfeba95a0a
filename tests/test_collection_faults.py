"""Faults while a run's logs and outputs are brought into the workspace (issue 13,
defects 1, 2, 11 and 12), through the real `targets` command.

- A failure to collect one run (a file that became a folder, a full disk, a bad reply of
  the agent) marks that run, is tried again later, and never breaks a command about
  another run.
- Two processes collecting one run at once both succeed.
- A broken or hostile agent cannot write outside the run's folder nor make a huge file;
  it is spoken to by the real client over SSH, from a small program that replaces the
  agent's replies (the only fake: the agent on the far side).
- ``runs download --dest`` never writes through a link already in the destination.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import TARGETS, CLIResult, grow_disk, small_disk, wait_until
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.test_vm import attach_args

CLI = Callable[..., CLIResult]


def agent_run(run_id: str) -> Path:
    """The run's folder on the local target (the agent's side)."""
    return Path(os.environ["TARGETS_HOME"]) / "runs" / run_id


def ended_on_target(run_id: str) -> bool:
    """The run has ended on the target (read there: asking through `targets` would
    collect it)."""
    try:
        status = json.loads((agent_run(run_id) / "status.json").read_text())
    except (OSError, ValueError):
        return False
    return status.get("status") in ("Completed", "Failed", "Canceled")


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of a collection left behind."""
    return [
        p
        for p in folder.rglob("*")
        if p.name.startswith(".")
        and p.name.endswith((".part", ".tmp", ".targets-part"))
        and p.is_file()
    ]


def no_traceback(result: CLIResult) -> None:
    assert "Traceback" not in result.err, result


# -- defect 1: a file that became a folder (and back) between two collections ----------


@pytest.mark.parametrize("first_file", [True, False], ids=["file-then-folder", "folder-then-file"])
def test_a_log_file_that_becomes_a_folder_is_mirrored(project, cli, write, first_file, tmp_path):
    go = tmp_path / "go"
    first, second = (
        (
            "p.write_text('step 1\\n')",
            "p.unlink(); p.mkdir(); (p / 'rank0.txt').write_text('r0\\n')",
        )
        if first_file
        else (
            "p.mkdir(); (p / 'rank0.txt').write_text('r0\\n')",
            "shutil.rmtree(p); p.write_text('step 2\\n')",
        )
    )
    write(
        project / "job.py",
        f"""
import pathlib, shutil, time
p = pathlib.Path('logs/metrics')
p.parent.mkdir(exist_ok=True)
{first}
while not pathlib.Path({str(go)!r}).exists():
    time.sleep(0.02)
{second}
""",
    )
    started = cli("run", "job.py", "--detach")
    assert started.code == 0, started
    run_id = started.out.strip()
    wait_until(
        lambda: (agent_run(run_id) / "wd" / "logs" / "metrics").exists(), what="the first shape"
    )
    # `runs logs` (not following) brings what the run has written so far.
    assert cli("runs", "logs", run_id).code == 0
    assert (project / ".targets" / "runs" / run_id / "logs" / "metrics").exists()
    go.touch()
    wait_until(lambda: ended_on_target(run_id), what="the run to end")
    shown = cli("runs", "show", run_id, "-o", "json")
    no_traceback(shown)
    assert shown.code == 0, shown
    details = shown.json()
    assert details["status"] == "Completed" and details["collected"] is True
    assert details["collection_error"] is None
    local = project / ".targets" / "runs" / run_id / "logs" / "metrics"
    if first_file:
        assert (local / "rank0.txt").read_text() == "r0\n"
    else:
        assert local.is_file() and local.read_text() == "step 2\n"
    assert cli("runs", "list").code == 0
    assert not leftovers(project / ".targets" / "runs")


# -- defect 1: the client's disk fills during collection ---------------------------------


@pytest.fixture
def small_runs_disk(project: Path) -> Iterator[Path]:
    """The workspace's runs folder on a 2 MB tmpfs (root only)."""
    with small_disk(project / ".targets" / "runs", "2m") as runs:
        yield runs


def test_a_full_disk_marks_the_run_and_never_breaks_other_commands(
    small_runs_disk, project, cli, write
):
    write(project / "small.py", "print('small')\n")
    other = cli("run", "small.py")
    assert other.code == 0, other
    other_id = Workspace(project).ledger.list(limit=1)[0].id
    write(
        project / "big.py",
        "import os, pathlib\npathlib.Path('outputs').mkdir()\n"
        "pathlib.Path('outputs/model.bin').write_bytes(os.urandom(3 << 20))\nprint('big')\n",
    )
    big = cli("run", "big.py")
    no_traceback(big)
    assert big.code == 1, big
    assert "collecting its logs and outputs failed" in big.err
    assert "No space left on device" in big.err
    big_id = Workspace(project).ledger.list(limit=1)[0].id
    assert big_id != other_id
    assert not leftovers(small_runs_disk)

    listed = cli("runs", "list", "-o", "json")
    no_traceback(listed)
    assert listed.code == 0, listed
    assert {r["id"]: r["status"] for r in listed.json()} == {
        other_id: "Completed",
        big_id: "Completed",
    }
    assert "No space left on device" in listed.err  # the marked run is named
    shown = cli("runs", "show", other_id)
    assert shown.code == 0 and "small" not in shown.err, shown
    marked = cli("runs", "show", big_id, "-o", "json")
    assert marked.code == 0, marked
    assert "No space left on device" in marked.json()["collection_error"]
    assert marked.json()["collected"] is False
    assert not leftovers(small_runs_disk)

    # Room again: the next command about the run collects it.
    grow_disk(small_runs_disk, "16m")
    again = cli("runs", "show", big_id, "-o", "json")
    assert again.code == 0, again
    assert again.json()["collected"] is True and again.json()["collection_error"] is None
    model = small_runs_disk / big_id / "outputs" / "model.bin"
    assert model.stat().st_size == 3 << 20
    assert not leftovers(small_runs_disk)


# -- defect 2: two processes collect one run at once ------------------------------------


def test_three_processes_collecting_one_run_all_succeed(project, cli, write, tmp_path):
    write(
        project / "many.py",
        "import pathlib\n"
        "for i in range(2000):\n"
        "    d = pathlib.Path('outputs', str(i % 10))\n"
        "    d.mkdir(parents=True, exist_ok=True)\n"
        "    (d / f'{i}.txt').write_text(str(i) * 50)\n",
    )
    started = cli("run", "many.py", "--detach")
    assert started.code == 0, started
    run_id = started.out.strip()
    wait_until(lambda: ended_on_target(run_id), what="the run to end")
    procs = [
        subprocess.Popen(
            [*TARGETS, "runs", "download", run_id, "--dest", str(tmp_path / f"d{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    for i in range(3):
        files = list((tmp_path / f"d{i}" / "outputs").rglob("*.txt"))
        assert len(files) == 2000
    assert (tmp_path / "d0" / "outputs" / "7" / "17.txt").read_text() == "17" * 50
    assert not leftovers(project / ".targets" / "runs")
    assert Workspace(project).ledger.get(run_id).collected  # type: ignore[union-attr]


# -- defect 12: runs download --dest never follows a link in the destination ---------------


@pytest.fixture
def finished_run(project: Path, cli: CLI, write: Callable[[Path, str], Path]) -> str:
    write(
        project / "hello.py",
        "import pathlib\npathlib.Path('outputs/sub').mkdir(parents=True)\n"
        "pathlib.Path('outputs/model.txt').write_text('weights')\n"
        "pathlib.Path('outputs/sub/x.txt').write_text('x')\nprint('hi')\n",
    )
    assert cli("run", "hello.py").code == 0
    return Workspace(project).ledger.list(limit=1)[0].id


def test_download_replaces_a_planted_link_and_leaves_its_victim_alone(finished_run, cli, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's file")
    dest = tmp_path / "shared"
    (dest / "outputs").mkdir(parents=True)
    (dest / "outputs" / "model.txt").symlink_to(victim)
    (dest / "driver.log").symlink_to(victim)
    result = cli("runs", "download", finished_run, "--dest", str(dest))
    assert result.code == 0, result
    assert victim.read_text() == "the victim's file"
    model = dest / "outputs" / "model.txt"
    assert not model.is_symlink() and model.read_text() == "weights"
    assert not (dest / "driver.log").is_symlink()
    assert (dest / "driver.log").read_text() == "hi\n"
    assert not leftovers(dest)


def test_download_refuses_a_folder_that_is_a_link(finished_run, cli, tmp_path):
    elsewhere = tmp_path / "victim-folder"
    elsewhere.mkdir()
    (elsewhere / "model.txt").write_text("the victim's file")
    dest = tmp_path / "shared"
    (dest / "outputs").mkdir(parents=True)
    (dest / "outputs" / "sub").symlink_to(elsewhere)
    result = cli("runs", "download", finished_run, "--dest", str(dest))
    no_traceback(result)
    assert result.code == 2, result
    assert "is a symbolic link" in result.err and str(dest / "outputs" / "sub") in result.err
    assert sorted(p.name for p in elsewhere.iterdir()) == ["model.txt"]
    assert (elsewhere / "model.txt").read_text() == "the victim's file"
    assert not (dest / "outputs" / "model.txt").exists()  # nothing written


# -- defect 11: a broken or hostile agent -------------------------------------------------

# The SSH target's "python" is this program: asked to serve the agent, it loads the real
# agent from its zipapp and changes one kind of reply as MODE says; anything else runs the
# real Python. Only the far side of the protocol is fake; the client is the real one.
HOSTILE = """#!{python}
import os, sys
MODE = {mode!r}
if len(sys.argv) == 3 and sys.argv[2] == "serve":
    sys.path.insert(0, sys.argv[1])
    from targets_agent import ops, rundir, server
    real_logs = rundir.read_logs

    def read_logs(root, run_id, offsets, max_bytes=rundir.MAX_CHUNK):
        chunks = real_logs(root, run_id, offsets, max_bytes)
        if MODE.startswith("log:"):
            name, offset = MODE[4:].rsplit("@", 1)
            chunks.append({{"name": name, "offset": int(offset), "data": b"PWNED"}})
        return chunks

    real_list = ops.list_outputs

    def list_outputs(root, run_id, have):
        files = real_list(root, run_id, have)
        if MODE.startswith("file:"):
            files.append([MODE[5:], 5, 0])
        return files

    rundir.read_logs = read_logs
    ops.list_outputs = list_outputs
    from targets_agent.cli import main
    sys.exit(main(["serve"]))
os.execv({python!r}, [{python!r}] + sys.argv[1:])
"""


@pytest.fixture
def hostile_agent(sshd: SSHServer, project: Path, cli: CLI) -> Iterator[Callable[[str], str]]:
    """``attach(mode)`` attaches the test sshd as a target whose agent misbehaves."""
    folder = Path(f"/tmp/targets-hostile-{uuid.uuid4().hex}")
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    python = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "/usr/bin/python3"

    def attach(mode: str) -> str:
        name = f"h{uuid.uuid4().hex[:8]}"
        program = folder / name
        program.write_text(HOSTILE.format(python=python, mode=mode))
        os.chmod(program, 0o755)
        result = cli(
            *attach_args(
                sshd,
                name,
                "--ssh-key",
                str(sshd.key),
                "--accept-host-key",
                "--python",
                str(program),
            )
        )
        assert result.code == 0, result
        return name

    yield attach
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    "mode, named",
    [
        ("log:run.json@0", "'run.json'"),
        ("log:driver.log@1099511627776", "1099511627776"),
        ("log:@0", "an empty name"),
        ("log:logs/x@-5", "-5"),
        ("log:logs/a\0b@0", "NUL"),
        ("log:../../escape.txt@0", "'../../escape.txt'"),
        ("file:outputs/a\0b", "NUL"),
    ],
    ids=["run.json", "offset-2**40", "empty", "negative", "nul", "dotdot", "file-nul"],
)
def test_a_bad_reply_of_the_agent_fails_that_run_cleanly(
    hostile_agent, project, cli, write, mode, named
):
    target = hostile_agent(mode)
    write(project / "ok.py", "print('fine')\n")
    result = cli("run", "ok.py", "--target", target, env={"TARGETS_SSH_PERSIST": "0"})
    no_traceback(result)
    assert result.code == 1, result
    assert "bad reply" in result.err and named in result.err, result
    run_id = Workspace(project).ledger.list(limit=1)[0].id
    folder = project / ".targets" / "runs" / run_id
    manifest = json.loads((folder / "run.json").read_text())  # untouched
    assert manifest["run_id"] == run_id
    assert not Path("/tmp/escape.txt").exists() and not (project / "escape.txt").exists()
    total = sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())
    assert total < 1 << 20 and all(
        p.stat().st_size < 1 << 20 for p in folder.rglob("*") if p.is_file()
    )
    # Listing still works, and names the run whose collection failed.
    listed = cli("runs", "list", env={"TARGETS_SSH_PERSIST": "0"})
    no_traceback(listed)
    assert listed.code == 0, listed
    assert run_id in listed.out


def test_the_mark_is_lifted_once_the_agent_answers_well(hostile_agent, project, cli, write):
    target = hostile_agent("log:run.json@0")
    write(project / "ok.py", "print('fine')\n")
    assert cli("run", "ok.py", "--target", target, env={"TARGETS_SSH_PERSIST": "0"}).code == 1
    run_id = Workspace(project).ledger.list(limit=1)[0].id
    shown = cli("runs", "show", run_id, "-o", "json", env={"TARGETS_SSH_PERSIST": "0"})
    assert shown.code == 0, shown
    assert "run.json" in shown.json()["collection_error"]
    assert shown.json()["collected"] is False
    # The agent is repaired (the attached program now serves the agent as it is).
    program = Path(Workspace(project).get_target(target).options.python)  # type: ignore[attr-defined]
    program.write_text(program.read_text().replace("MODE = 'log:run.json@0'", "MODE = ''"))
    shown = cli("runs", "show", run_id, "-o", "json", env={"TARGETS_SSH_PERSIST": "0"})
    assert shown.code == 0, shown
    assert shown.json()["collected"] is True and shown.json()["collection_error"] is None
    assert (project / ".targets" / "runs" / run_id / "driver.log").read_text() == "fine\n"
