"""5. The ``vm`` kind against a real OpenSSH server on 127.0.0.1, compared with OpenSSH
tools (``ssh``, ``rsync -a``, ``tar | ssh tar``) talking to the same sshd in the same run.

The server is the test suite's (``tests/sshd.py``): its own config, host key and port,
logging in as the unix user ``targets-test`` with a key. The issue's goals (issue 18)
are reported as met or missed, as measured; nothing asserts on time.

Design choice: the "remote" home (``/home/targets-test``) is shared with every test
session on this machine, so a "fresh remote store" is made by deleting only this
benchmark's own objects (its files' content hashes, unique to this run) from
``~/.targets/objects`` rather than the whole folder, which concurrent test runs may be
using. For the measured run the effect is the same: every file of the project is missing
on the target. Everything the benchmark put on the target (objects, run folders, the
rsync and tar copies) is removed at the end, and the sshd is stopped.
"""

from __future__ import annotations

import hashlib
import io
import os
import pstats
import resource
import secrets
import shlex
import shutil
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import Case, Sample, age, openssh_argv, run_checked, run_round_robin
from _scenarios import Context, Row, Section, _latest_record

__all__ = ["APT_PACKAGES", "GOALS", "ssh_targets"]

REPO = Path(__file__).resolve().parent.parent
APT_PACKAGES = "openssh-server openssh-client rsync"

# The goals: targets time / reference time at most this.
GOALS = {"warm": 1.5, "reupload": 1.0, "first": 1.2}

PROJECT_FILES = 2000  # the snapshot's default limit, t.py included
PROJECT_BYTES = 100 * 1000 * 1000
BIG_REPS = 5
RUN_ARGS = ("run", "t.py", "--target", "vm1")


@dataclass(slots=True)
class _Remote:
    """The sshd and what the OpenSSH client needs to reach it without any user config."""

    server: Any
    known_hosts: Path
    scratch: str  # a folder under the remote home, relative to it

    @property
    def dest(self) -> str:
        return f"{self.server.user}@{self.server.host}"

    def ssh_argv(self) -> list[str]:
        """``ssh`` with this server's key and pre-trusted host key."""
        return openssh_argv(self.server.key, self.server.port, self.known_hosts)

    def home_path(self, *parts: str) -> Path:
        return Path(self.server.home).joinpath(*parts)


@dataclass(slots=True)
class _Project:
    root: Path
    text_files: list[Path]
    binary_files: list[Path]
    script: Path
    total_bytes: int
    text_ratio: float  # zlib level 1 compressed / original, over the text pool
    digests: set[str] = field(default_factory=set)  # every version ever sent

    @property
    def files(self) -> list[Path]:
        return [*self.text_files, *self.binary_files, self.script]


def _missing_tools() -> list[str]:
    """What this machine lacks for the SSH comparisons (empty: nothing)."""
    missing = []
    if os.name != "posix" or os.geteuid() != 0:
        missing.append("root (the test sshd creates the unix user targets-test)")
    for path, package in (("/usr/sbin/sshd", "openssh-server"), ("ssh-keygen", "openssh-client")):
        if not (Path(path).exists() if path.startswith("/") else shutil.which(path)):
            missing.append(f"{path} (apt-get install {package})")
    if shutil.which("ssh") is None:
        missing.append("ssh (apt-get install openssh-client)")
    if shutil.which("tar") is None:
        missing.append("tar (apt-get install tar)")
    try:
        import pytest  # noqa: F401 - tests/sshd.py imports it
    except ImportError:
        missing.append("pytest (make install)")
    return missing


def ssh_targets(ctx: Context) -> Section:
    """5. SSH targets: warm submit, re-upload and first upload vs ssh, rsync, tar."""
    section = Section(
        "ssh",
        "5. SSH targets (the `vm` kind against a local sshd)",
        "",
    )
    missing = _missing_tools()
    if missing:
        section.facts["skipped"] = (
            f"skipped: this machine lacks {', '.join(missing)}; as root, "
            f"`apt-get install {APT_PACKAGES}`"
        )
        return section
    sys.path.insert(0, str(REPO))
    from tests.sshd import _make_server  # the suite's sshd: same config as the tests

    server = _make_server(ctx.sandbox.root / "sshd")
    known_hosts = ctx.sandbox.root / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    remote = _Remote(server, known_hosts, f"targets-bench-{secrets.token_hex(4)}")
    workspaces: list[Path] = []
    project: _Project | None = None
    small = ctx.sandbox.folder("ssh-small")
    small_script = small / "t.py"
    small_script.write_text(_one_line(), encoding="utf-8")
    age([small_script])
    try:
        small_ws = _attached_workspace(ctx, remote, "ssh-ws-small", workspaces)
        warm = _warm_submit(ctx, remote, small, small_ws)

        big_ws = _attached_workspace(ctx, remote, "ssh-ws-big", workspaces)
        t0 = time.perf_counter()
        project = _make_project(ctx, ctx.sandbox.folder("ssh-project"))
        section.facts["generate_s"] = time.perf_counter() - t0
        first = _first_upload(ctx, remote, project, big_ws)
        reupload = _reupload(ctx, remote, project, big_ws)
        profiles = {
            "first": _profile(
                ctx, project, big_ws, lambda: _delete_objects(remote, project.digests)
            ),
            "reupload": _profile(ctx, project, big_ws, reupload["change_one_file"]),
        }
    finally:
        server.stop()
        _clean_remote(remote, project, workspaces, {_sha256(small_script)})

    section.how = (
        f"OpenSSH's sshd from the test suite (`tests/sshd.py`) on 127.0.0.1:{server.port}, "
        "logging in as `targets-test` with an ed25519 key; the target is attached once "
        "per workspace with `targets attach vm1 --address 127.0.0.1 --ssh-port PORT "
        "--username targets-test --ssh-key KEY --accept-host-key`. The OpenSSH client "
        "uses the same key and the host key pre-trusted in a temporary known_hosts "
        "(`-F /dev/null`, `StrictHostKeyChecking=yes`, no connection sharing except in "
        "the row that says so), with its defaults otherwise (no compression; `rsync -a` "
        "without `-z`). `targets` shares one SSH connection per attached target between "
        "commands (`targets.ssh.mux`: the first command connects itself and starts the "
        "shared connection for the next), except in the row with `TARGETS_SSH_PERSIST=0`. "
        "Every row is one "
        "whole process, start to exit. The project for (b) and (c) has "
        f"{len(project.files)} files, {_mb(project.total_bytes)} MB: "
        f"half are text (words drawn from a Zipf-like vocabulary; zlib level 1 keeps "
        f"{project.text_ratio * 100:.0f}% of their size), half random "
        "bytes, sizes log-normal, plus the one-line `t.py`; files dated a minute back. "
        "It lives outside the workspace (`TARGETS_WORKSPACE` elsewhere), so `rsync` and "
        "`tar` copy exactly the files `targets` snapshots."
    )
    section.rows += warm["rows"] + first["rows"] + reupload["rows"]
    section.facts.update(
        warm=warm,
        first=first,
        reupload=reupload,
        profiles=profiles,
        total_bytes=project.total_bytes,
        text_ratio=project.text_ratio,
    )
    return section


# --------------------------------------------------------------------------- set-up


def _one_line() -> str:
    # A token makes the content (so the object) unique to this run: deleting it from the
    # shared remote store at the end cannot take an object another session relies on.
    return f'print("hello from t.py")  # {secrets.token_hex(8)}\n'


def _attached_workspace(ctx: Context, remote: _Remote, name: str, made: list[Path]) -> Path:
    ws = ctx.sandbox.folder(name)
    made.append(ws)
    s = remote.server
    run_checked(
        [
            ctx.targets,
            "attach",
            "vm1",
            "--address",
            s.host,
            "--ssh-port",
            str(s.port),
            "--username",
            s.user,
            "--ssh-key",
            str(s.key),
            "--accept-host-key",
        ],
        cwd=ws,
        env=ctx.sandbox.env(ws),
    )
    return ws


def _make_project(ctx: Context, root: Path) -> _Project:
    """``PROJECT_FILES - 1`` files of ``PROJECT_BYTES`` in all, half text, half random
    bytes, in a few folders, plus ``t.py``."""
    rng = ctx.rng
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10)))
        for _ in range(4000)
    ]
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]
    words = rng.choices(vocabulary, weights=weights, k=400_000)
    lines = [" ".join(words[i : i + 9]) for i in range(0, len(words), 9)]
    pool = ("\n".join(lines) + "\n").encode()
    text_ratio = len(zlib.compress(pool[:1_000_000], 1)) / 1_000_000

    n_data = PROJECT_FILES - 1
    n_text = n_data // 2
    raw = [rng.lognormvariate(0, 1.2) for _ in range(n_data)]
    scale = PROJECT_BYTES / sum(raw)
    sizes = [max(64, min(len(pool) // 2, int(r * scale))) for r in raw]
    text_files, binary_files = [], []
    doubled = pool + pool
    for i, size in enumerate(sizes):
        folder = root / f"pkg_{i % 20:02d}"
        folder.mkdir(exist_ok=True)
        if i < n_text:
            path = folder / f"module_{i:04d}.py"
            start = rng.randrange(len(pool))
            path.write_bytes(doubled[start : start + size])
            text_files.append(path)
        else:
            path = folder / f"tensor_{i:04d}.bin"
            path.write_bytes(rng.randbytes(size))
            binary_files.append(path)
    script = root / "t.py"
    script.write_text(_one_line(), encoding="utf-8")
    project = _Project(
        root=root,
        text_files=text_files,
        binary_files=binary_files,
        script=script,
        total_bytes=0,
        text_ratio=text_ratio,
    )
    age(project.files)
    project.total_bytes = sum(p.stat().st_size for p in project.files)
    project.digests = {_sha256(p) for p in project.files}
    return project


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _delete_objects(remote: _Remote, digests: set[str]) -> None:
    """Remove these objects from the target's store (as root, on this machine)."""
    objects = remote.home_path(".targets", "objects")
    for digest in digests:
        for name in (digest, digest + ".x"):
            (objects / digest[:2] / name).unlink(missing_ok=True)


def _clean_remote(
    remote: _Remote, project: _Project | None, workspaces: list[Path], digests: set[str]
) -> None:
    """Remove from the target what this benchmark put there (idempotent)."""
    shutil.rmtree(remote.home_path(remote.scratch), ignore_errors=True)
    _delete_objects(remote, digests | (project.digests if project else set()))
    from targets.ledger import Ledger

    runs = remote.home_path(".targets", "runs")
    for ws in workspaces:
        db = ws / ".targets" / "runs.db"
        if not db.exists():
            continue
        ledger = Ledger(db)
        try:
            records = ledger.list(limit=100_000)
        finally:
            ledger.close()
        for record in records:
            shutil.rmtree(runs / record.id, ignore_errors=True)


# --------------------------------------------------------------------------- timing helpers


class _Cpu:
    """CPU time (user + sys) of the children that ended between ``mark`` and ``take``:
    the timed command itself, since nothing else runs a child in between."""

    def __init__(self) -> None:
        self._at = 0.0
        self.seconds: list[float] = []

    @staticmethod
    def _now() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def mark(self) -> None:
        self._at = self._now()

    def take(self) -> None:
        self.seconds.append(self._now() - self._at)


@dataclass(slots=True)
class _RunLog:
    """What the ledger says about each timed run of one case."""

    ws: Path
    cpu: _Cpu = field(default_factory=_Cpu)
    uploaded: list[int] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=dict)

    def before(self, work: Callable[[], None] | None = None) -> Callable[[], None]:
        def hook() -> None:
            if work is not None:
                work()
            self.cpu.mark()

        return hook

    def after(self, wall0: float, wall1: float) -> None:
        self.cpu.take()
        r = _latest_record(self.ws)
        self.uploaded.append(int(((r.handle or {}).get("data") or {}).get("uploaded", -1)))
        if r.started_at is None or r.ended_at is None:
            return
        for name, value in (
            ("client start-up, imports, snapshot, ledger insert", r.created_at - wall0),
            (
                "connect, agent, missing objects, upload, start (to the script's start)",
                r.started_at - r.created_at,
            ),
            ("the script", r.ended_at - r.started_at),
            ("end noticed, logs and outputs fetched, client exit", wall1 - r.ended_at),
        ):
            self.phases.setdefault(name, []).append(value)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(v) for name, v in self.phases.items()}


def _counts(values: list[int]) -> str:
    return ", ".join(str(v) for v in sorted(set(values))) or "?"


def _bash(command: str) -> list[str]:
    return ["bash", "-o", "pipefail", "-c", command]


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


# --------------------------------------------------------------------------- (a)


def _warm_submit(ctx: Context, remote: _Remote, small: Path, ws: Path) -> dict[str, Any]:
    env = ctx.sandbox.env(ws)
    log = _RunLog(ws)
    bare = Case(
        "ssh targets-test@127.0.0.1 python3 -c 'print(1)'",
        [*remote.ssh_argv(), remote.dest, "python3 -c 'print(1)'"],
        small,
        env,
    )
    run = Case(
        "(a) targets run t.py --target vm1 (1-file project)",
        [ctx.targets, *RUN_ARGS],
        small,
        env,
        before=log.before(),
        after=log.after,
    )
    # Connection sharing on both sides: OpenSSH's ControlMaster/ControlPersist, and
    # targets with its shared connection turned off (TARGETS_SSH_PERSIST=0).
    argv = remote.ssh_argv()
    cm = argv.index("ControlPath=none")
    argv[cm : cm + 1] = [
        f"ControlPath={ctx.sandbox.root / 'cm-%C'}",
        "-o",
        "ControlMaster=auto",
        "-o",
        "ControlPersist=60",
    ]
    shared_ssh = Case(
        "ssh ... python3 -c 'print(1)', OpenSSH connection sharing (ControlPersist)",
        [*argv, remote.dest, "python3 -c 'print(1)'"],
        small,
        env,
    )
    own = Case(
        "targets run t.py --target vm1, TARGETS_SSH_PERSIST=0 (a connection of its own)",
        [ctx.targets, *RUN_ARGS],
        small,
        {**env, "TARGETS_SSH_PERSIST": "0"},
    )
    ssh_s, run_s, shared_s, own_s = run_round_robin([bare, run, shared_ssh, own], ctx.reps)
    return {
        "ssh": ssh_s,
        "run": run_s,
        "shared_ssh": shared_s,
        "own": own_s,
        "phases": log.medians(),
        "cpu": statistics.median(log.cpu.seconds),
        "uploaded": log.uploaded,
        "rows": [
            Row(ssh_s),
            Row(run_s, ssh_s, f"objects uploaded per run: {_counts(log.uploaded)}"),
            Row(shared_s, ssh_s, "OpenSSH with a master connection"),
            Row(own_s, ssh_s, "no shared connection"),
        ],
    }


# --------------------------------------------------------------------------- (c)


def _first_upload(ctx: Context, remote: _Remote, project: _Project, ws: Path) -> dict[str, Any]:
    env = ctx.sandbox.env(ws)
    argv = [ctx.targets, *RUN_ARGS]
    cold_log = _RunLog(ws)
    cold_log.cpu.mark()
    wall0, t0 = time.time(), time.perf_counter()
    run_checked(argv, cwd=project.root, env=env)  # nothing hashed, nothing on the target
    cold = Sample("targets run, very first (local hashing too)", [time.perf_counter() - t0])
    cold_log.after(wall0, time.time())

    tar_dest = f"{remote.scratch}/tar"
    tar_cmd = (
        f"tar c -C {shlex.quote(str(project.root))} . | {shlex.join(remote.ssh_argv())} "
        f"{remote.dest} {shlex.quote(f'mkdir -p {tar_dest} && tar x -C {tar_dest}')}"
    )
    log = _RunLog(ws)
    tar = Case(
        "tar c -C src . | ssh ... 'tar x -C dest' (empty dest)",
        _bash(tar_cmd),
        project.root,
        env,
        before=lambda: shutil.rmtree(remote.home_path(tar_dest), ignore_errors=True),
        warmups=0,
    )
    run = Case(
        "(c) targets run, first upload (empty remote store)",
        argv,
        project.root,
        env,
        before=log.before(lambda: _delete_objects(remote, project.digests)),
        after=log.after,
        warmups=0,
    )
    tar_s, run_s = run_round_robin([tar, run], min(ctx.reps, BIG_REPS))
    return {
        "tar": tar_s,
        "run": run_s,
        "cold": cold,
        "cold_uploaded": cold_log.uploaded,
        "phases": log.medians(),
        "cpu": statistics.median(log.cpu.seconds),
        "uploaded": log.uploaded,
        "rows": [
            Row(tar_s),
            Row(run_s, tar_s, f"objects uploaded per run: {_counts(log.uploaded)}"),
            Row(cold, tar_s, "one run: empty store and no local hash cache"),
        ],
    }


# --------------------------------------------------------------------------- (b)


def _reupload(ctx: Context, remote: _Remote, project: _Project, ws: Path) -> dict[str, Any]:
    env = ctx.sandbox.env(ws)
    argv = [ctx.targets, *RUN_ARGS]
    rsync_ok = shutil.which("rsync") is not None
    changed_log, unchanged_log = _RunLog(ws), _RunLog(ws)
    rsync_cpu = _Cpu()
    which = iter(range(10**9))

    def change_one_file() -> None:
        # A different text file each time (like an edit to a source file), same size.
        path = project.text_files[next(which) * 37 % len(project.text_files)]
        data = bytearray(path.read_bytes())
        at = ctx.rng.randrange(max(1, len(data) - 16))
        data[at : at + 16] = ctx.rng.randbytes(8).hex().encode()[: len(data[at : at + 16])]
        path.write_bytes(bytes(data))
        project.digests.add(hashlib.sha256(data).hexdigest())

    cases: list[Case] = []
    result: dict[str, Any] = {}
    first_rsync: Sample | None = None
    if rsync_ok:
        rsync_argv = [
            "rsync",
            "-a",
            "-e",
            shlex.join(remote.ssh_argv()),
            f"{project.root}/",
            f"{remote.dest}:{remote.scratch}/rsync/",
        ]
        t0 = time.perf_counter()
        run_checked(rsync_argv, cwd=project.root, env=env)
        first_rsync = Sample("rsync -a, first full copy (empty dest)", [time.perf_counter() - t0])

        def before_rsync() -> None:
            change_one_file()
            rsync_cpu.mark()

        cases.append(
            Case(
                "rsync -a src/ ...:dest/ (one file changed)",
                rsync_argv,
                project.root,
                env,
                before=before_rsync,
                after=lambda _w0, _w1: rsync_cpu.take(),
                warmups=0,
            )
        )
        changed_before = None  # the rsync case changed the file both then see
    else:
        result["rsync_missing"] = "rsync is not installed (apt-get install rsync)"
        changed_before = change_one_file
    run_checked(argv, cwd=project.root, env=env)  # the target has every object
    cases.append(
        Case(
            "(b) targets run, one file changed",
            argv,
            project.root,
            env,
            before=changed_log.before(changed_before),
            after=changed_log.after,
            warmups=0,
        )
    )
    cases.append(
        Case(
            "targets run, project unchanged",
            argv,
            project.root,
            env,
            before=unchanged_log.before(),
            after=unchanged_log.after,
            warmups=0,
        )
    )
    samples = run_round_robin(cases, min(ctx.reps, BIG_REPS))
    if rsync_ok:
        rsync_s, run_s, unchanged_s = samples
        assert first_rsync is not None
        rows = [
            Row(rsync_s),
            Row(run_s, rsync_s, f"objects uploaded per run: {_counts(changed_log.uploaded)}"),
            Row(unchanged_s, rsync_s, f"objects uploaded: {_counts(unchanged_log.uploaded)}"),
            Row(first_rsync, None, "one run; (c)'s tar does the same work"),
        ]
        result.update(rsync=rsync_s, rsync_cpu=statistics.median(rsync_cpu.seconds))
        result["rsync_first"] = first_rsync
    else:
        run_s, unchanged_s = samples
        rows = [
            Row(run_s, None, f"objects uploaded per run: {_counts(changed_log.uploaded)}"),
            Row(unchanged_s, None, f"objects uploaded: {_counts(unchanged_log.uploaded)}"),
        ]
    result.update(
        run=run_s,
        unchanged=unchanged_s,
        phases=changed_log.medians(),
        unchanged_phases=unchanged_log.medians(),
        cpu=statistics.median(changed_log.cpu.seconds),
        unchanged_cpu=statistics.median(unchanged_log.cpu.seconds),
        uploaded=changed_log.uploaded,
        rows=rows,
        change_one_file=change_one_file,
    )
    return result


# --------------------------------------------------------------------------- profile


def _profile(
    ctx: Context, project: _Project, ws: Path, before: Callable[[], None]
) -> dict[str, Any]:
    """One more ``targets run`` under cProfile, after ``before``. It sees the client's
    main thread, where the upload is read, compressed, encrypted (paramiko packs and
    encrypts in the sending thread) and written; not paramiko's reader thread, and not
    the agent or sshd on the target. The run connects itself (``TARGETS_SSH_PERSIST=0``):
    through the shared connection, that work would be in the mux process instead."""
    before()
    out = ctx.sandbox.root / f"profile-{secrets.token_hex(4)}.prof"
    t0 = time.perf_counter()
    run_checked(
        [ctx.python, "-m", "cProfile", "-o", str(out), "-m", "targets", *RUN_ARGS],
        cwd=project.root,
        env={**ctx.sandbox.env(ws), "TARGETS_SSH_PERSIST": "0"},
    )
    wall = time.perf_counter() - t0
    stats = pstats.Stats(str(out), stream=io.StringIO())
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def rows(items: list[tuple[tuple[str, int, str], tuple[Any, ...]]]) -> list[dict[str, Any]]:
        return [
            {
                "function": _function_name(*where),
                "calls": numbers[1],
                "self_s": numbers[2],
                "cumulative_s": numbers[3],
            }
            for where, numbers in items
        ]

    by_self = sorted(table.items(), key=lambda kv: -kv[1][2])[:10]
    ours = [
        kv
        for kv in table.items()
        if f"{os.sep}targets{os.sep}" in kv[0][0] and f"{os.sep}cli{os.sep}" not in kv[0][0]
    ]
    by_cumulative = sorted(ours, key=lambda kv: -kv[1][3])[:14]
    named = {
        label: sum(
            numbers[2] for where, numbers in table.items() if needle in _function_name(*where)
        )
        for label, needle in _NAMED.items()
    }
    return {
        "wall_s": wall,
        "named": named,
        "profiled_s": stats.total_tt,  # type: ignore[attr-defined]
        "top_self": rows(by_self),
        "top_targets": rows(by_cumulative),
    }


# Self time summed over every function whose name contains the needle.
_NAMED = {
    "zlib compression": "'compress' of 'zlib.Compress'",
    "AES (cryptography)": "CipherContext",
    "HMAC": "hmac_new",
    "socket send": "'send' of '_socket.socket'",
    "waiting on locks": "'acquire' of '_thread.lock'",
    "sha256": "sha256",
    "file reads": "'read' of '_io.BufferedReader'",
}


def _function_name(filename: str, line: int, name: str) -> str:
    if filename == "~":
        return name  # a builtin: "{method 'compress' of 'zlib.Compress' objects}"
    parts = Path(filename).parts
    for anchor in ("site-packages", "targets"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            short = "/".join(parts[i + 1 :] if anchor == "site-packages" else parts[i:])
            return f"{short}:{line}({name})"
    return f"{Path(filename).name}:{line}({name})"
