"""What a person sees in an 80-column terminal: run ids that copy whole, one line per
run, the user's own entry, child runs kept out of the way, no trailing spaces, sizes in
units, progress while a big snapshot is hashed, and a plain sentence when a run never
started. Every command runs as the real `targets` on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from fcntl import ioctl
from pathlib import Path

import pytest

from targets.ledger import Ledger, RunRecord
from targets.workspace import Workspace
from tests.conftest import TARGETS

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
COLUMNS = 80


@dataclass
class TTYResult:
    code: int
    out: str
    """What the terminal showed on stdout, escape sequences removed."""
    err: str
    raw_err: bytes

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


def _pty(columns: int) -> tuple[int, int]:
    master, slave = pty.openpty()
    ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    return master, slave


def _drain(fds: dict[int, bytearray], proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while fds:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("targets did not finish in time")
        ready, _, _ = select.select(list(fds), [], [], 0.1)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other end of the terminal is closed
                chunk = b""
            if chunk:
                fds[fd] += chunk
            else:
                del fds[fd]
        if not ready and proc.poll() is not None:
            # Read what is left, then stop.
            for fd in list(fds):
                while select.select([fd], [], [], 0)[0]:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    fds[fd] += chunk
                del fds[fd]


def _text(raw: bytearray) -> str:
    return ANSI.sub("", raw.decode(errors="replace"))


@pytest.fixture
def tty_cli() -> Callable[..., TTYResult]:
    """Run `targets ARGS...` with stdout and stderr on two 80-column terminals."""

    def run(
        *args: str,
        cwd: Path | None = None,
        timeout: float = 180,
        env: dict[str, str] | None = None,
    ) -> TTYResult:
        out_master, out_slave = _pty(COLUMNS)
        err_master, err_slave = _pty(COLUMNS)
        env = {
            **os.environ,
            "COLUMNS": str(COLUMNS),
            "LINES": "24",
            "TERM": "xterm-256color",
            **(env or {}),
        }
        env.pop("NO_COLOR", None)
        proc = subprocess.Popen(
            [*TARGETS, *args],
            stdin=subprocess.DEVNULL,
            stdout=out_slave,
            stderr=err_slave,
            cwd=cwd,
            env=env,
        )
        os.close(out_slave)
        os.close(err_slave)
        buffers = {out_master: bytearray(), err_master: bytearray()}
        out, err = buffers[out_master], buffers[err_master]
        try:
            _drain(dict(buffers), proc, timeout)
        finally:
            os.close(out_master)
            os.close(err_master)
        code = proc.wait(timeout=30)
        return TTYResult(code, _text(out), _text(err), bytes(err))

    return run


def _record(
    run_id: str, at: float, *, parent: str | None = None, entry: str = "train.py"
) -> RunRecord:
    now = time.time() - 100 + at
    return RunRecord(
        id=run_id,
        experiment=run_id.split("_")[0],
        target="local",
        kind="local",
        status="Completed",
        created_at=now,
        started_at=now,
        ended_at=now + 3,
        exit_code=0,
        parent_id=parent,
        entry=entry,
        collected=True,
    )


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_runs_list_at_80_columns_keeps_ids_whole_and_entries_on_one_line(
    project: Path, cli, tty_cli, write
) -> None:
    long_args = " ".join(f"--option-{i} value-{i}" for i in range(30))
    write(project / "train.py", "print('trained')\n")
    done = cli("run", "train.py", "--", *long_args.split())
    assert done.code == 0, done
    run_id = cli("runs", "list", "-o", "json").json()[0]["id"]

    shown = tty_cli("runs", "list", cwd=project)
    assert shown.code == 0, shown
    rows = _lines(shown.out)
    assert rows[0].split() == ["RUN", "TARGET", "STATUS", "CREATED", "DURATION", "ENTRY"]
    assert len(rows) == 2, shown  # one line for the run: nothing wrapped
    row = rows[1]
    assert row.split()[0] == run_id  # the id is whole, on its line, first
    assert len(row) <= COLUMNS, shown
    entry = row.split(maxsplit=5)[5]  # cut to what the terminal leaves, and marked so
    assert entry.endswith("\u2026") and len(entry) >= 12, shown
    assert long_args.startswith(entry[:-1].removeprefix("train.py ")), shown
    assert "Completed" in row

    # An id longer than the terminal leaves is still never cut nor folded.
    name = "a-rather-long-experiment-name-for-this-project"
    assert cli("run", "train.py", "-e", name).code == 0
    long_id = cli("runs", "list", "-e", name, "-o", "json").json()[0]["id"]
    rows = _lines(tty_cli("runs", "list", cwd=project).out)
    assert len(rows) == 3 and rows[1].split()[0] == long_id, rows


def test_a_job_lists_its_own_command_not_the_folders_made_before_it(
    project: Path, cli, tty_cli, write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    write(
        project / "job.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: echo hello from the job\n"
        "environment:\n  image: python:3.11-slim\n"
        "outputs:\n  model:\n    type: uri_folder\n",
    )
    done = cli("run", "job.yml")
    assert done.code == 0, done
    listed = cli("runs", "list", "-o", "json").json()
    assert listed[0]["entry"] == "echo hello from the job"
    shown = tty_cli("runs", "list", cwd=project)
    assert "mkdir" not in shown.out, shown
    assert "  echo hello" in shown.out, shown


def test_children_of_sweeps_are_hidden_unless_asked_for(project: Path, cli, tty_cli) -> None:
    ws = Workspace(project)
    parent = _record("mysweep_20260101_000000_parent", 0, entry="sweep sweep.yml")
    children = [
        _record(f"mysweep_20260101_00000{i}_trial{i}", 1 + i, parent=parent.id) for i in range(3)
    ]
    alone = _record("solo_20260101_000009_single", 10)
    ws.ensure()
    Ledger(ws.dir / "runs.db").insert_many([parent, *children, alone])

    default = cli("runs", "list", "-o", "json").json()
    assert {r["id"] for r in default} == {parent.id, alone.id}
    table = tty_cli("runs", "list", cwd=project)
    assert table.code == 0, table
    assert "trial" not in table.out, table
    assert "3 child runs" in table.err and "--all" in table.err, table

    everything = cli("runs", "list", "--all", "-o", "json").json()
    ids = [r["id"] for r in everything]
    assert set(ids) == {parent.id, alone.id, *(c.id for c in children)}
    at = ids.index(parent.id)
    assert set(ids[at + 1 : at + 4]) == {c.id for c in children}  # right under the parent
    nested = _lines(tty_cli("runs", "list", "--all", cwd=project).out)
    for child in children:
        line = next(line for line in nested if child.id in line)
        assert line.startswith("  " + child.id), nested  # indented under its parent

    only = cli("runs", "list", "--parent", parent.id, "-o", "json").json()
    assert {r["id"] for r in only} == {c.id for c in children}
    assert "--all" in cli("runs", "list", "--help").out

    Ledger(ws.dir / "runs.db").delete(parent.id)  # children of a deleted run are not hidden
    orphans = cli("runs", "list", "-o", "json").json()
    assert {r["id"] for r in orphans} == {alone.id, *(c.id for c in children)}


def test_runs_show_pads_no_line_with_spaces(project: Path, cli, tty_cli, write) -> None:
    write(project / "hello.py", "print('hi')\n")
    assert cli("run", "hello.py").code == 0
    run_id = cli("runs", "list", "-o", "json").json()[0]["id"]
    for shown in (tty_cli("runs", "show", run_id, cwd=project), cli("runs", "show", run_id)):
        assert shown.code == 0, shown
        assert run_id in shown.out
        padded = [line for line in shown.out.splitlines() if line != line.rstrip()]
        assert padded == [], shown
    assert cli("runs", "show", run_id, "-o", "json").json()["id"] == run_id


def test_targets_show_gives_memory_in_units(project: Path, cli, tty_cli) -> None:
    shown = tty_cli("show", "local", cwd=project)
    assert shown.code == 0, shown
    memory = next(line for line in shown.out.splitlines() if line.startswith("memory"))
    assert re.fullmatch(r"memory\s+\d+\.\d (MiB|GiB|TiB)", memory), memory
    assert not any(line != line.rstrip() for line in shown.out.splitlines()), shown
    facts = cli("show", "local", "-o", "json").json()["facts"]
    assert isinstance(facts["memory_bytes"], int)  # JSON keeps the number
    if facts.get("gpus") == []:  # this machine has none: said in words, not "[]"
        gpus = next(line for line in shown.out.splitlines() if line.startswith("gpus"))
        assert re.fullmatch(r"gpus\s+none", gpus), gpus


def test_a_large_snapshot_is_hashed_with_progress_on_a_terminal(
    project: Path, tty_cli, cli, write, isolated_home: Path
) -> None:
    data = project / "data"
    data.mkdir()
    block = os.urandom(1 << 20)
    with open(data / "big.bin", "wb") as fh:  # one large file: few files, many bytes
        for _ in range(280):  # under the default limit of 300 MiB
            fh.write(block)
    write(project / "t.py", "print('done')\n")
    # The bar waits 0.2 s by default; hashing 280 MiB can be quicker on an idle machine.
    shown = tty_cli("run", "t.py", cwd=project, env={"TARGETS_PROGRESS_DELAY": "0"})
    assert shown.code == 0, shown
    assert "hashing files" in shown.err, shown
    os.utime(data / "big.bin", (1, 1))  # hashed again, this time with stderr piped
    piped = cli("run", "t.py")
    assert piped.code == 0 and "hashing" not in piped.err, piped
    shutil.rmtree(data)
    shutil.rmtree(isolated_home / ".targets" / "objects")  # 280 MiB less on the disk


def test_a_run_that_never_started_says_what_failed_and_where_its_logs_are(
    project: Path, cli, write, tmp_path: Path
) -> None:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    write(
        project / "env.yml",
        "dependencies:\n- pip:\n  - --no-index\n"
        f"  - --find-links {empty}\n  - no-such-package-xyz==9.9\n",
    )
    write(project / "t.py", "print('never')\n")
    write(
        project / "rc.yml",
        "script: t.py\nenvironment:\n  python:\n    conda_dependencies_file: env.yml\n",
    )
    result = cli("run", "rc.yml")
    assert result.code == 1, result
    lines = result.err.strip().splitlines()
    assert "- -" not in result.err and " in - " not in result.err, result
    said = next(line for line in lines if line.startswith("Failed before it started: "))
    assert "environment preparation failed" in said, result
    assert re.fullmatch(r"logs: \.targets/runs/\S+/prepare\.log.*", lines[-1]), result
    assert cli("runs", "list", "-o", "json").json()[0]["status"] == "Failed"


def test_tty_helper_sees_a_terminal() -> None:
    """The helper above really gives the command a terminal of 80 columns."""
    master, slave = _pty(COLUMNS)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import shutil,sys; print(sys.stdout.isatty(), shutil.get_terminal_size().columns)",
        ],
        stdout=slave,
        env={**os.environ, "COLUMNS": str(COLUMNS)},
        timeout=30,
    )
    os.close(slave)
    seen = os.read(master, 1024).decode()
    os.close(master)
    assert proc.returncode == 0 and seen.split() == ["True", "80"]


def test_runs_show_says_the_git_state_in_words(project: Path, cli, write) -> None:
    write(project / "t.py", "print('x')\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run([*git, "add", "t.py"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], cwd=project, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    write(project / "notes.txt", "changed\n")  # an untracked file: the tree is dirty
    assert cli("run", "t.py").code == 0
    run_id = cli("runs", "list", "-o", "json").json()[0]["id"]
    shown = cli("runs", "show", run_id)
    git_line = next(line for line in shown.out.splitlines() if line.startswith("git "))
    assert git_line.split(None, 1)[1] == f"main @ {commit[:12]} (uncommitted changes)", shown
