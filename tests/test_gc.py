"""Storage on targets does not grow forever: `targets gc`, the target's cap, and
`targets envs prune` asking first (issue 12, item 8). Through the real `targets` command,
on the local target and on a VM behind the real sshd."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import TARGETS, wait_until
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.test_vm import attach_args

MB = 1_000_000
BIG = 3 * MB

SCRIPT = """
import pathlib
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/size.txt").write_text(str(len(open("big.bin", "rb").read())))
print("read", pathlib.Path("outputs/size.txt").read_text(), "bytes")
"""


def agent_root() -> Path:
    return Path(os.environ["TARGETS_HOME"])


def objects(root: Path) -> set[str]:
    base = root / "objects"
    return {p.name for p in base.rglob("*") if p.is_file()} if base.is_dir() else set()


def object_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "objects").rglob("*") if p.is_file())


def run_folders(root: Path) -> set[str]:
    base = root / "runs"
    return {p.name for p in base.iterdir()} if base.is_dir() else set()


def version(project: Path, n: int) -> None:
    """A large-ish data file that differs between versions (random: it does not compress)."""
    (project / "big.bin").write_bytes(bytes([n]) + os.urandom(BIG - 1))


def run(cli, *args: str) -> str:
    result = cli("run", "train.py", "-o", "json", *args, timeout=180)
    assert result.code == 0, result
    return str(result.json()["id"])


def detach(cli, script: str) -> str:
    """Start a run and return its id without asking for its state (which would collect
    it once it has ended)."""
    result = cli("run", script, "--detach")
    assert result.code == 0, result
    return result.out.split()[0]


@pytest.fixture
def two_versions(project: Path, cli, write) -> tuple[str, str]:
    """Two collected local runs of a project whose 3 MB file changed in between."""
    write(project / "train.py", SCRIPT)
    version(project, 1)
    first = run(cli)
    version(project, 2)
    second = run(cli)
    return first, second


def test_gc_frees_old_objects_and_collected_run_folders(two_versions, cli):
    root = agent_root()
    assert run_folders(root) >= set(two_versions)
    assert object_bytes(root) >= 2 * BIG  # two versions of the big file are stored

    result = cli("gc", "-o", "json")
    assert result.code == 0, result
    (report,) = result.json()
    assert report["target"] == "local" and report["dry_run"] is False
    assert {r["run_id"] for r in report["runs"]} == set(two_versions)
    assert report["object_bytes"] >= 2 * BIG
    assert report["freed_bytes"] >= 2 * BIG
    assert report["usage_before"] - report["usage_after"] == report["freed_bytes"]
    assert run_folders(root) == set()
    assert object_bytes(root) < MB  # both versions are gone

    table = cli("gc")
    assert table.code == 0, table
    assert "removed 0 run folder(s)" in table.err  # nothing left to free


def test_dry_run_lists_what_would_go_and_deletes_nothing(two_versions, cli):
    root = agent_root()
    before_objects, before_runs = objects(root), run_folders(root)
    result = cli("gc", "--dry-run")
    assert result.code == 0, result
    for run_id in two_versions:
        assert run_id in result.out
    assert "would remove 2 run folder(s)" in result.err
    assert "MiB" in result.err
    dry = cli("gc", "--dry-run", "-o", "json").json()[0]
    assert dry["dry_run"] is True and dry["freed_bytes"] >= 2 * BIG
    assert objects(root) == before_objects and run_folders(root) == before_runs
    # What the dry run announced is what a real one frees.
    real = cli("gc", "-o", "json").json()[0]
    assert real["freed_bytes"] == dry["freed_bytes"]


def test_keep_days_and_max_size_spare_recent_runs(two_versions, cli):
    root = agent_root()
    kept = cli("gc", "--keep-days", "1", "-o", "json").json()[0]
    assert kept["runs"] == [] and run_folders(root) >= set(two_versions)
    first, second = two_versions
    # Room for one version: only the older run goes.
    capped = cli("gc", "--max-size", f"{int(BIG * 1.5)}B", "-o", "json").json()[0]
    assert [r["run_id"] for r in capped["runs"]] == [first]
    assert run_folders(root) == {second}
    bad = cli("gc", "--max-size", "lots")
    assert bad.code == 2 and "--max-size 'lots' is not a size" in bad.err


def test_uncollected_and_running_runs_survive_gc(project: Path, cli, write):
    root = agent_root()
    write(project / "train.py", SCRIPT)
    version(project, 1)
    collected = run(cli)
    # Ended on the target, never collected: nothing asks for its status before gc.
    write(project / "quick.py", "print('done')\n")
    ended = detach(cli, "quick.py")
    wait_until(
        lambda: (
            (root / "runs" / ended / "status.json").is_file()
            and '"Completed"' in (root / "runs" / ended / "status.json").read_text()
        ),
        what="the detached run to end",
    )
    write(project / "slow.py", "import time\nopen('big.bin', 'rb').read()\ntime.sleep(60)\n")
    version(project, 3)
    running = detach(cli, "slow.py")
    wait_until(
        lambda: (
            '"Running"' in (root / "runs" / running / "status.json").read_text()
            if (root / "runs" / running / "status.json").is_file()
            else False
        ),
        what="the slow run to start",
    )
    try:
        report = cli("gc", "-o", "json").json()[0]
        assert [r["run_id"] for r in report["runs"]] == [collected]
        assert run_folders(root) == {ended, running}
        # The running run's big file is still there, for it and in the store.
        big = root / "runs" / running / "wd" / "big.bin"
        assert big.stat().st_size == BIG and big.stat().st_nlink == 2
        assert object_bytes(root) >= BIG
    finally:
        cli("runs", "cancel", running)


def test_a_run_after_gc_uploads_again_what_is_missing(two_versions, project, cli):
    assert cli("gc").code == 0
    result = cli("run", "train.py", "-o", "json", timeout=180)
    assert result.code == 0, result
    run_id = result.json()["id"]
    ws = Workspace(project)
    record = ws.ledger.get(run_id)
    assert record is not None and record.status == "Completed"
    assert (record.handle or {})["data"]["uploaded"] >= 2  # train.py and big.bin again
    assert (ws.run_dir(run_id) / "outputs" / "size.txt").read_text() == str(BIG)


def test_the_cap_prunes_the_oldest_collected_runs_never_an_uncollected_one(
    project: Path, cli, write
):
    root = agent_root()
    shown = cli("gc", "--set-cap", "7MB")
    assert shown.code == 0 and "storage cap 6.7 MiB" in shown.err, shown
    write(project / "train.py", SCRIPT)
    write(project / "quick.py", "print('done')\n")
    version(project, 1)
    uncollected = detach(cli, "quick.py")
    ids = []
    for n in (2, 3, 4):
        version(project, n)
        ids.append(run(cli))
    # Three 3 MB versions do not fit under 7 MB: after each collection the target
    # removed its oldest collected runs by itself, and kept the newest.
    left = run_folders(root)
    assert ids[-1] in left and ids[0] not in left
    assert uncollected in left  # ended, but nobody has brought its results back
    assert object_bytes(root) <= 7 * MB
    off = cli("gc", "--set-cap", "off", "-o", "json")
    assert off.json() == [{"target": "local", "cap_bytes": None}]


def test_envs_prune_asks_first_and_refuses_without_a_terminal(project: Path, cli):
    envs = agent_root() / "envs"
    fake = envs / ("ab" * 32)
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "python").write_bytes(b"x" * 1000)
    refused = subprocess.run(
        [*TARGETS, "envs", "prune"], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert refused.returncode == 2, refused
    assert "--yes" in refused.stderr and "1 environment(s)" in refused.stderr
    assert fake.is_dir()  # nothing deleted
    done = subprocess.run(
        [*TARGETS, "envs", "prune", "--yes", "-o", "json"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done
    assert "ab" * 32 in done.stdout
    assert not fake.exists()


@pytest.fixture
def vm_root(sshd: SSHServer) -> Iterator[Path]:
    """An agent root of the VM's own for this test: the shared test user's home is used by
    every test at once, and a gc there would remove other tests' collected runs. The
    attach option --python names a wrapper that sets TARGETS_HOME for the agent."""
    entry = pwd.getpwnam(sshd.user)
    base = sshd.home / f".gc-test-{uuid.uuid4().hex[:8]}"
    root = base / "root"
    root.mkdir(parents=True)
    wrapper = base / "python3"
    wrapper.write_text(f'#!/bin/sh\nTARGETS_HOME={root} exec /usr/bin/python3 "$@"\n')
    wrapper.chmod(0o755)
    for path in (base, root, wrapper):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    yield root
    shutil.rmtree(base, ignore_errors=True)


def test_gc_on_a_vm_over_ssh(sshd: SSHServer, vm_root: Path, project: Path, cli, write):
    wrapper = str(vm_root.parent / "python3")
    attached = cli(
        *attach_args(sshd, "dsvm", "--ssh-key", str(sshd.key), "--accept-host-key"),
        "--python",
        wrapper,
    )
    assert attached.code == 0, attached
    write(project / "train.py", SCRIPT)
    version(project, 1)
    first = run(cli, "--target", "dsvm")
    version(project, 2)
    second = run(cli, "--target", "dsvm")
    assert run_folders(vm_root) == {first, second}
    assert object_bytes(vm_root) >= 2 * BIG

    dry = cli("gc", "dsvm", "--dry-run", "-o", "json")
    assert dry.code == 0, dry
    (plan,) = dry.json()
    assert plan["target"] == "dsvm" and {r["run_id"] for r in plan["runs"]} == {first, second}
    assert plan["object_bytes"] >= 2 * BIG
    assert run_folders(vm_root) == {first, second}  # a dry run deletes nothing

    done = cli("gc", "dsvm", "-o", "json").json()[0]
    assert done["freed_bytes"] == plan["freed_bytes"] and done["usage_after"] < MB
    assert run_folders(vm_root) == set() and object_bytes(vm_root) < MB
    # The VM still runs the project: what gc removed is sent again.
    third = run(cli, "--target", "dsvm")
    assert (project / ".targets" / "runs" / third / "outputs" / "size.txt").read_text() == str(BIG)


def test_gc_all_goes_on_past_a_target_that_does_not_answer(two_versions, project, cli):
    """A switched-off VM must not stop `gc --all` from freeing the others."""
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (project / ".targets" / "targets.yml").write_text(
        "targets:\n  offvm:\n    type: vm\n    options:\n"
        f"      address: 127.0.0.1\n      ssh_port: {port}\n      username: nobody\n"
    )
    before = object_bytes(agent_root())
    result = cli("gc", "--all", "-o", "json")
    assert result.code == 1, result  # one target failed
    reports = {r["target"]: r for r in result.json()}
    assert "failed" in reports["offvm"] and str(port) in reports["offvm"]["failed"]
    assert reports["local"]["freed_bytes"] > 0
    assert object_bytes(agent_root()) < before
