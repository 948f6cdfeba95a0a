"""Fault injection: processes killed at the worst moment, connections cut mid-transfer.

The real ``targets`` command runs in a subprocess against the local target and against
the test sshd (the ``vm`` kind); faults are real ``SIGKILL``s. The property checked after
every fault: the run ends Completed, Failed or Canceled (with a reason unless Completed)
as soon as the next ``runs list`` / ``runs show`` looks at it, nothing half-written is
used (a Completed run's outputs are whole, no temporary file is left in its folder),
no process of it is left running, and commands about other runs keep working.

Random faults are seeded: ``TARGETS_FAULT_SEED`` (default 13) and the trial number give
each trial's delays, and a failure names both, so it reproduces. ``make test`` runs a
handful of trials; ``TARGETS_FAULT_TRIALS=50`` the long version (``make fuzz``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from targets.workspace import Workspace
from tests.conftest import TARGETS, CLIResult, grow_disk, pid_alive, small_disk, wait_until
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.test_vm import attach_args

TERMINAL = ("Completed", "Failed", "Canceled")
SEED = int(os.environ.get("TARGETS_FAULT_SEED") or 13)
LONG_TRIALS = int(os.environ.get("TARGETS_FAULT_TRIALS") or 0)


def _trials(short: int) -> int:
    return LONG_TRIALS or short


if LONG_TRIALS:  # the long version: about 10 s a trial, past pytest-timeout's default
    pytestmark = pytest.mark.timeout(300 + 30 * LONG_TRIALS)


# -- helpers -------------------------------------------------------------------------------


def _report(label: str, outcomes: Counter[str]) -> None:
    """Print the figures (``pytest -s``) and append them as a JSON line to the file named
    by ``TARGETS_FAULT_REPORT`` (xdist workers swallow prints)."""
    line = {"faults": label, "seed": SEED, "trials": sum(outcomes.values()), **outcomes}
    print(f"\n{json.dumps(line)}")
    if os.environ.get("TARGETS_FAULT_REPORT"):
        with open(os.environ["TARGETS_FAULT_REPORT"], "a") as fh:
            fh.write(json.dumps(line) + "\n")


def _attach_vm(cli: Callable[..., CLIResult], sshd: SSHServer, name: str = "dsvm") -> str:
    result = cli(*attach_args(sshd, name, "--ssh-key", str(sshd.key), "--accept-host-key"))
    assert result.code == 0, result
    return name


@pytest.fixture(params=["local", "vm"])
def where(request: pytest.FixtureRequest, project: Path, cli: Callable[..., CLIResult]) -> str:
    """The target name, and (through ``agent_root``) where its agent keeps runs."""
    if request.param == "local":
        return "local"
    sshd = request.getfixturevalue("sshd")
    return _attach_vm(cli, sshd)


def _agent_root(request: pytest.FixtureRequest, where: str) -> Path:
    if where == "local":
        return Path(os.environ["TARGETS_HOME"])
    sshd: SSHServer = request.getfixturevalue("sshd")
    return sshd.home / ".targets"


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
    return children


def _descendants(pid: int) -> list[int]:
    children = _children()
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _show(cli: Callable[..., CLIResult], run_id: str) -> dict[str, Any]:
    result = cli("runs", "show", run_id, "-o", "json")
    assert result.code == 0, result
    shown = result.json()
    assert isinstance(shown, dict)
    return shown


# -- defect 8: a killed supervisor leaves nothing running, and what was written comes back --

ORPHAN_JOB = """
import os, pathlib, subprocess, sys, time
LATE = '''
import os, pathlib, time
while not os.path.exists({release!r}):
    time.sleep(0.05)
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/late.txt").write_text("written after the supervisor died")
print("late line", flush=True)
time.sleep(300)
'''
late = subprocess.Popen([sys.executable, "-c", LATE])  # in the run's process group
gone = subprocess.Popen(["sleep", "300"], start_new_session=True)  # left the group
pathlib.Path({pids!r}).write_text("%d %d %d" % (os.getpid(), late.pid, gone.pid))
print("running", flush=True)
time.sleep(300)
"""


def _pids(path: Path) -> list[int]:
    found = [int(p) for p in path.read_text().split()] if path.exists() else []
    return found if len(found) == 3 else []


def _running(run_dir: Path) -> dict[str, Any]:
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) and status.get("status") == "Running" else {}


def test_a_killed_supervisor_leaves_no_process_and_late_output_is_collected(
    request: pytest.FixtureRequest,
    where: str,
    project: Path,
    write: Callable[[Path, str], Path],
    cli: Callable[..., CLIResult],
) -> None:
    tag = uuid.uuid4().hex
    pids_file, release = Path(f"/tmp/targets-f8-{tag}.pids"), Path(f"/tmp/targets-f8-{tag}.go")
    write(project / "job.py", ORPHAN_JOB.format(pids=str(pids_file), release=str(release)))
    started = cli("run", "job.py", "--target", where, "--detach")
    assert started.code == 0, started
    run_id = started.out.strip()
    remote = _agent_root(request, where) / "runs" / run_id
    pids: list[int] = []
    try:
        pids = wait_until(lambda: _pids(pids_file), what="the run's three processes")
        status = wait_until(lambda: _running(remote), what="the supervisor to record the script")
        os.kill(status["supervisor_pid"], signal.SIGKILL)
        release.touch()
        # The process still in the group writes after its supervisor is gone.
        wait_until(lambda: (remote / "wd" / "outputs" / "late.txt").exists(), what="late.txt")

        shown = _show(cli, run_id)
        assert shown["status"] == "Failed", shown
        assert "supervisor process ended unexpectedly" in shown["message"]
        # Nothing of the run is left running once it is reported ended.
        assert [p for p in pids if pid_alive(p)] == []
        folder = project / ".targets" / "runs" / run_id
        assert (folder / "outputs" / "late.txt").read_text() == "written after the supervisor died"
        assert "late line" in (folder / "driver.log").read_text()
        cancel = cli("runs", "cancel", run_id)
        assert cancel.code == 0, cancel
    finally:
        _kill(pids)
        pids_file.unlink(missing_ok=True)
        release.unlink(missing_ok=True)


# -- defect 9: a client killed during upload leaves no run Queued for ever -----------------


def _big_project(project: Path, rng: random.Random, files: int, size: int) -> None:
    data = project / "data"
    data.mkdir(exist_ok=True)
    for i in range(files):
        (data / f"part{i:03d}.bin").write_bytes(rng.randbytes(size))


def _newest(project: Path) -> Any:
    records = Workspace(project).ledger.list(limit=1)
    return records[0] if records else None


def _recorded(project: Path, before: set[str], what: str) -> Any:
    """Wait until a run that is not in ``before`` is recorded; return its record."""
    return wait_until(
        lambda: (r := _newest(project)) is not None and r.id not in before and r, what=what
    )


def _stop_during_upload(project: Path, argv: list[str], known: set[str]) -> tuple[str, bool]:
    """Start a client and SIGSTOP it once its run is recorded without a handle; returns
    the run id and whether the stop landed before the handle (else the client was let
    go on to the end)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        record = _recorded(project, known, "the run to be recorded")
        proc.send_signal(signal.SIGSTOP)
        now = Workspace(project).ledger.get(record.id)
        caught = now is not None and now.handle is None
        if caught:
            proc.kill()
        else:
            proc.send_signal(signal.SIGCONT)
        proc.wait(timeout=120)
        return record.id, caught
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_run_whose_client_was_killed_during_upload_is_failed_with_the_reason(
    project: Path, write: Callable[[Path, str], Path], cli: Callable[..., CLIResult]
) -> None:
    write(project / "job.py", "print('ran')\n")
    rng = random.Random(SEED)
    known: set[str] = set()
    for _attempt in range(5):
        _big_project(project, rng, files=8, size=8 << 20)  # new bytes: a real upload
        run_id, caught = _stop_during_upload(project, [*TARGETS, "run", "job.py"], known)
        known.add(run_id)
        if caught:
            break
    else:
        pytest.fail("the upload always ended before the client could be stopped")
    listed = cli("runs", "list", "-o", "json")
    assert listed.code == 0, listed
    rows = listed.json()
    assert isinstance(rows, list)
    row = next(r for r in rows if r["id"] == run_id)
    assert row["status"] == "Failed", row
    assert row["message"] == "the client that submitted it stopped before the run started"
    assert _show(cli, run_id)["status"] == "Failed"
    # The workspace goes on working.
    again = cli("run", "job.py")
    assert again.code == 0, again
    assert "ran" in again.out


# -- the fault suite ------------------------------------------------------------------------

FAULT_JOB = """
import hashlib, os, pathlib, sys, time
for i in range(10):
    print("line", i, flush=True)
    time.sleep(0.05)
out = pathlib.Path("outputs")
out.mkdir(exist_ok=True)
blob = hashlib.sha256(pathlib.Path("data/part000.bin").read_bytes()).digest() * (1 << 15)
(out / "blob.bin").write_bytes(blob)
(out / "result.txt").write_text(hashlib.sha256(blob).hexdigest())
print("done", flush=True)
"""

HALF_WRITTEN = (".part", ".tmp", ".partial", ".targets-part")


def _check_run(
    cli: Callable[..., CLIResult], project: Path, run_id: str, trial: str
) -> dict[str, Any]:
    """The property, for one run after a fault: it ends, with a reason unless Completed,
    and a Completed run's outputs are whole."""

    def ended() -> dict[str, Any] | None:
        shown = _show(cli, run_id)
        return shown if shown["status"] in TERMINAL else None

    shown = wait_until(ended, timeout=90, what=f"{trial}: run {run_id} to end")
    assert shown is not None
    if shown["status"] != "Completed":
        assert shown.get("message"), f"{trial}: {shown}"
    folder = project / ".targets" / "runs" / run_id
    leftovers = [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(HALF_WRITTEN)]
    assert leftovers == [], f"{trial}: half-written files left: {leftovers}"
    if shown["status"] == "Completed":
        import hashlib

        blob = (folder / "outputs" / "blob.bin").read_bytes()
        assert (folder / "outputs" / "result.txt").read_text() == hashlib.sha256(blob).hexdigest()
        assert "done" in (folder / "driver.log").read_text(), trial
    return shown


@pytest.fixture
def control(
    project: Path, write: Callable[[Path, str], Path], cli: Callable[..., CLIResult]
) -> str:
    """A completed run on the local target: commands about it must keep working."""
    return _control_run(project, write, cli)


def _control_run(
    project: Path, write: Callable[[Path, str], Path], cli: Callable[..., CLIResult]
) -> str:
    write(
        project / "control.py",
        "import pathlib\npathlib.Path('outputs').mkdir()\n"
        "pathlib.Path('outputs/c.txt').write_text('control')\n",
    )
    result = cli("run", "control.py")
    assert result.code == 0, result
    return _newest(project).id  # type: ignore[no-any-return]


def _others_work(cli: Callable[..., CLIResult], project: Path, control: str, trial: str) -> None:
    listed = cli("runs", "list", "-o", "json")
    assert listed.code == 0, f"{trial}: {listed}"
    shown = _show(cli, control)
    assert shown["status"] == "Completed", f"{trial}: {shown}"
    c = project / ".targets" / "runs" / control / "outputs" / "c.txt"
    assert c.read_text() == "control", trial


def _recorded_or_ended(
    project: Path, proc: subprocess.Popen[bytes], before: set[str], name: str
) -> None:
    def seen() -> bool:
        newest = _newest(project)
        return proc.poll() is not None or (newest is not None and newest.id not in before)

    wait_until(seen, what=f"{name}: the run to be recorded")


def test_client_killed_at_random_points(
    request: pytest.FixtureRequest,
    where: str,
    project: Path,
    write: Callable[[Path, str], Path],
    cli: Callable[..., CLIResult],
    control: str,
) -> None:
    """kill -9 of `targets run` after a random delay: during the snapshot, the upload,
    the streaming or the collection."""
    write(project / "job.py", FAULT_JOB)
    rng = random.Random(f"{SEED}-{where}")
    # One undisturbed run says how long a whole run takes here; kills land within it.
    _big_project(project, rng, files=6, size=2 << 20)
    t0 = time.monotonic()
    whole = cli("run", "job.py", "--target", where)
    span = time.monotonic() - t0
    assert whole.code == 0, whole
    outcomes: Counter[str] = Counter()
    for trial in range(_trials(3 if where == "local" else 2)):
        name = f"seed {SEED} {where} trial {trial}"
        _big_project(project, rng, files=6, size=2 << 20)
        before = {r.id for r in Workspace(project).ledger.list()}
        # One kill in five counts from the start (the snapshot, the ledger); the others
        # from the moment the run is recorded (upload, start, streaming, collection).
        from_start = rng.random() < 0.2
        delay = rng.uniform(0.0, span * (1.1 if from_start else 0.6))
        proc = subprocess.Popen(
            [*TARGETS, "run", "job.py", "--target", where],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not from_start:
                _recorded_or_ended(project, proc, before, name)
            proc.wait(timeout=delay)
            phase = "not killed (ended first)"
        except subprocess.TimeoutExpired:
            record = _newest(project)
            if record is None or record.id in before:
                phase = "killed before the run was recorded"
            elif not record.handle:
                phase = "killed during submit/upload"
            elif record.status not in TERMINAL:
                phase = "killed while streaming"
            else:
                phase = "killed during collection"
            proc.kill()
            proc.wait()
        _others_work(cli, project, control, name)
        new = [r for r in Workspace(project).ledger.list() if r.id not in before]
        assert len(new) <= 1, name
        status = _check_run(cli, project, new[0].id, name)["status"] if new else "no run"
        outcomes[f"{phase}: {status}"] += 1
        if LONG_TRIALS:  # keep the stores from growing by a new project per trial
            assert cli("gc", where).code == 0, name
    _report(f"client killed ({where})", outcomes)


def _processes_of(run_dir: Path) -> list[int]:
    """Live processes started for the run whose folder on the target is ``run_dir``."""
    from targets.agent.orphans import RUN_VARIABLE

    marker = f"{RUN_VARIABLE}={os.path.realpath(run_dir)}".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and pid_alive(int(name)):
            try:
                environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ:
                found.append(int(name))
    return found


def test_supervisor_killed_at_random_moments(
    request: pytest.FixtureRequest,
    where: str,
    project: Path,
    write: Callable[[Path, str], Path],
    cli: Callable[..., CLIResult],
    control: str,
) -> None:
    """kill -9 of the run's supervisor while it prepares, runs or finishes: the run ends
    with a reason and nothing of it keeps running."""
    write(project / "job.py", FAULT_JOB)
    rng = random.Random(f"{SEED}-supervisor-{where}")
    _big_project(project, rng, files=1, size=1 << 16)
    root = _agent_root(request, where)
    outcomes: Counter[str] = Counter()
    for trial in range(_trials(2)):
        name = f"seed {SEED} supervisor {where} trial {trial}"
        started = cli("run", "job.py", "--target", where, "--detach")
        assert started.code == 0, f"{name}: {started}"
        run_id = started.out.strip()
        status_file = root / "runs" / run_id / "status.json"
        wait_until(status_file.exists, what=f"{name}: the supervisor to start")
        time.sleep(rng.uniform(0.0, 1.0))
        status = json.loads(status_file.read_text())
        before = status["status"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(status["supervisor_pid"], signal.SIGKILL)
        shown = _check_run(cli, project, run_id, name)
        assert _processes_of(root / "runs" / run_id) == [], name
        _others_work(cli, project, control, name)
        outcomes[f"killed while {before}: {shown['status']}"] += 1
        if LONG_TRIALS:
            assert cli("gc", where).code == 0, name
    _report(f"supervisor killed ({where})", outcomes)


# -- faults on the target's side: the agent killed, the connection cut ----------------------


@pytest.fixture
def vm(sshd: SSHServer, project: Path, cli: Callable[..., CLIResult]) -> str:
    return _attach_vm(cli, sshd)


def _agent_processes(sshd: SSHServer) -> list[int]:
    assert sshd.process is not None
    return [
        p
        for p in _descendants(sshd.process.pid)
        if any(part.endswith("agent.pyz") for part in _cmdline(p)) and "serve" in _cmdline(p)
    ]


def _session_processes(sshd: SSHServer) -> list[int]:
    """The per-connection sshd processes of this test's server (not the listener)."""
    assert sshd.process is not None
    return [
        p
        for p in _descendants(sshd.process.pid)
        if Path(f"/proc/{p}/comm").exists()
        and Path(f"/proc/{p}/comm").read_text().strip() == "sshd"
    ]


def _mux_processes(project: Path) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            argv = _cmdline(int(name))
            if "targets.ssh.mux" in argv and any(str(project) in a for a in argv):
                found.append(int(name))
    return found


FAULTS: dict[str, Callable[[SSHServer, Path], list[int]]] = {
    "agent killed": lambda sshd, project: _agent_processes(sshd),
    "sshd session killed": lambda sshd, project: _session_processes(sshd),
    "mux process killed": lambda sshd, project: _mux_processes(project),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_connection_or_agent_lost_mid_upload(
    fault: str,
    vm: str,
    sshd: SSHServer,
    project: Path,
    write: Callable[[Path, str], Path],
    cli: Callable[..., CLIResult],
    control: str,
) -> None:
    write(project / "job.py", FAULT_JOB)
    rng = random.Random(f"{SEED}-{fault}")
    outcomes: Counter[str] = Counter()
    for trial in range(_trials(1)):
        name = f"seed {SEED} {fault} trial {trial}"
        _big_project(project, rng, files=8, size=2 << 20)
        before = {r.id for r in Workspace(project).ledger.list()}
        proc = subprocess.Popen(
            [*TARGETS, "run", "job.py", "--target", vm],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            record = _recorded(project, before, f"{name}: the run to be recorded")
            # Once the connection is up (the run is recorded before it opens), a random
            # moment of the upload.
            wait_until(lambda: FAULTS[fault](sshd, project), what=f"{name}: processes to kill")
            time.sleep(rng.uniform(0.0, 0.5))
            victims = FAULTS[fault](sshd, project)
            now = Workspace(project).ledger.get(record.id)
            upload = now is not None and now.handle is None
            _kill(victims)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        _others_work(cli, project, control, name)
        status = _check_run(cli, project, record.id, name)["status"]
        outcomes[
            f"{'mid-upload' if upload else 'after upload'}, {len(victims)} killed: {status}"
        ] += 1
    _report(f"{fault} (vm)", outcomes)


# -- the target's disk fills: at upload, and while the script writes -------------------------

FILL_JOB = """
import os, pathlib
pathlib.Path("outputs").mkdir(exist_ok=True)
print("filling", flush=True)
with open("outputs/fill.bin", "wb") as out:
    while True:
        out.write(os.urandom(1 << 18))
        out.flush()
"""


def test_a_full_target_disk_fails_the_run_with_the_reason_and_loses_nothing(
    project: Path,
    write: Callable[[Path, str], Path],
    cli: Callable[..., CLIResult],
) -> None:
    home = Path(os.environ["TARGETS_HOME"])  # the local target's agent root
    with small_disk(home, "3m"):
        control = _control_run(project, write, cli)
        # The snapshot does not fit: the submission fails saying why, and the store
        # keeps no half-received object.
        (project / "data").mkdir(exist_ok=True)
        (project / "data" / "big.bin").write_bytes(os.urandom(4 << 20))
        write(project / "job.py", "print('ran')\n")
        first = cli("run", "job.py")
        assert first.code == 1, first
        assert "Traceback" not in first.err, first
        assert "the target's disk is full" in first.err and "targets gc" in first.err, first
        rows = cli("runs", "list", "-o", "json").json()
        assert isinstance(rows, list)
        assert rows[0]["status"] == "Failed" and "disk is full" in rows[0]["message"], rows
        assert [p for p in home.rglob(".in-*")] == []

        # The script fills the disk: the run still ends Failed with the reason, what it
        # wrote comes back, and its folder on the target keeps no temporary.
        (project / "data" / "big.bin").unlink()
        grow_disk(home, "8m")
        write(project / "fill.py", FILL_JOB)
        second = cli("run", "fill.py")
        assert second.code == 1, second
        run_id = Workspace(project).ledger.list(limit=1)[0].id
        shown = _check_run(cli, project, run_id, "disk filled by the script")
        assert shown["status"] == "Failed", shown
        assert "the target's disk was full" in shown["message"], shown
        folder = project / ".targets" / "runs" / run_id
        assert "No space left on device" in (folder / "driver.log").read_text()
        assert (folder / "outputs" / "fill.bin").stat().st_size > 1 << 20
        assert [p.name for p in (home / "runs" / run_id).glob(".tmp-*")] == []

        # Room again: runs go on, and commands about the earlier runs keep working.
        grow_disk(home, "64m")
        third = cli("run", "job.py")
        assert third.code == 0 and "ran" in third.out, third
        _others_work(cli, project, control, "after the disk filled")
