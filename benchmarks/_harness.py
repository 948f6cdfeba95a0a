"""Timing primitives for the benchmarks: samples, an isolated sandbox, round-robin runs.

Stdlib only. Every number is wall time from ``time.perf_counter`` around one
``subprocess.run`` (the whole child process, start-up to exit) unless a case says
otherwise. Nothing here asserts on time: the numbers are reported, not judged.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BenchError",
    "Case",
    "Sample",
    "Sandbox",
    "age",
    "openssh_argv",
    "run_checked",
    "run_round_robin",
]


@dataclass(slots=True)
class Sample:
    """Repeated wall-time measurements of one thing, in seconds."""

    label: str
    seconds: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p90(self) -> float:
        """The 90th percentile, linearly interpolated between the sorted values."""
        ordered = sorted(self.seconds)
        if len(ordered) == 1:
            return ordered[0]
        rank = 0.9 * (len(ordered) - 1)
        low, high = math.floor(rank), math.ceil(rank)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class BenchError(RuntimeError):
    """A benchmarked command failed: the numbers would be meaningless."""


def run_checked(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` to completion with its output captured (streamed into a pipe);
    raise BenchError with the output's tail when it exits non-zero."""
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout[-1500:] + proc.stderr[-1500:]).decode("utf-8", "replace")
        raise BenchError(f"{' '.join(argv)} (in {cwd}) exited {proc.returncode}:\n{tail}")
    return proc


@dataclass(slots=True)
class Case:
    """One command to time. ``before`` runs untimed before each repetition (e.g. to
    change a byte); ``after(t_start, t_end)`` gets the wall-clock (``time.time``) bounds
    of each timed repetition (e.g. to read the run's phases from the ledger)."""

    label: str
    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    before: Callable[[], None] | None = None
    after: Callable[[float, float], None] | None = None
    warmups: int = 1
    max_reps: int | None = None
    """Fewer repetitions for a case too slow to repeat ``reps`` times in the budget."""


def run_round_robin(cases: Sequence[Case], reps: int) -> list[Sample]:
    """Time each case ``reps`` times, interleaved (A B C A B C ...) so that a drift of
    the machine (another job, thermal state) spreads over all cases instead of biasing
    whichever ran last. Warm-up runs come first and are not recorded."""
    for case in cases:
        for _ in range(case.warmups):
            if case.before:
                case.before()
            run_checked(case.argv, cwd=case.cwd, env=case.env)
    samples = [Sample(case.label) for case in cases]
    for rep in range(reps):
        for case, sample in zip(cases, samples, strict=True):
            if case.max_reps is not None and rep >= case.max_reps:
                continue
            if case.before:
                case.before()
            wall0 = time.time()
            t0 = time.perf_counter()
            run_checked(case.argv, cwd=case.cwd, env=case.env)
            sample.seconds.append(time.perf_counter() - t0)
            if case.after:
                case.after(wall0, time.time())
    return samples


class Sandbox:
    """A temporary folder holding an isolated HOME and TARGETS_HOME, so a developer's
    real ``~/.targets`` (object store, environments, runs) is never read or written.

    Bytecode: the developer's shell may set PYTHONDONTWRITEBYTECODE (this project's dev
    shells do). A user's install writes ``.pyc`` files, so the children get a bytecode
    cache under the sandbox (PYTHONPYCACHEPREFIX) instead, which leaves the source tree
    untouched. :meth:`env` with ``bytecode=False`` reproduces the no-cache setting.
    """

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="targets-bench-"))
        self.home = self.root / "home"
        self.targets_home = self.root / "targets-home"
        self.pycache = self.root / "pycache"
        self.tmp = self.root / "tmp"
        for folder in (self.home, self.targets_home, self.pycache, self.tmp):
            folder.mkdir()
        self.keep = keep

    def env(self, workspace: Path | None = None, *, bytecode: bool = True) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TARGETS_")
            and k not in ("PYTHONDONTWRITEBYTECODE", "XDG_RUNTIME_DIR", "TMPDIR")
        }
        env.update(
            HOME=str(self.home),
            TARGETS_HOME=str(self.targets_home),
            PYTHONPYCACHEPREFIX=str(self.pycache),
            NO_COLOR="1",
            # Secrets (a cluster's SSH key) go to a file under the temporary HOME, never
            # to the developer's keyring; keyrings.alt is a dev dependency.
            PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
            # Shared SSH connections (targets.ssh.mux) leave a minute after the last use,
            # not ten: the benchmark leaves no process behind for long.
            TARGETS_SSH_PERSIST="60",
            # The command server (targets.commandserver) of the benchmark's own commands:
            # its socket under the sandbox, gone with it (see close()).
            TMPDIR=str(self.tmp),
            TARGETS_SERVER_PERSIST="300",
            # The benchmark's venv is active, as a user's own environment would be: a
            # user-managed local run uses the active Python, the same interpreter as the
            # `python one_line.py` reference (not whatever `python` is first on PATH,
            # e.g. a pyenv shim, which adds its own start-up to every run).
            VIRTUAL_ENV=sys.prefix,
            PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        )
        if not bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            del env["PYTHONPYCACHEPREFIX"]
        if workspace is not None:
            env["TARGETS_WORKSPACE"] = str(workspace)
        return env

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir()
        return path

    def serve(self, python: str, targets: str, env: dict[str, str]) -> None:
        """Start the command server for commands with ``env`` and wait until it serves,
        so that the first timed command does not find it still starting."""
        where = subprocess.run(
            [
                python,
                "-c",
                "from targets.commandserver.client import *; "
                "print(socket_path(socket_dir(create=True), key_text()))",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run([targets, "kinds"], env=env, capture_output=True, check=True)
        deadline = time.monotonic() + 120
        while not os.path.exists(where):
            if time.monotonic() > deadline:
                raise BenchError(f"the command server did not start (no socket {where})")
            time.sleep(0.05)

    def stop_servers(self) -> None:
        """End the command servers the benchmark's commands started."""
        import signal

        for pid_file in self.tmp.glob("targets-cmd-*/*.pid"):
            try:
                pid = int(pid_file.read_text())
                if b"targets.commandserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                continue

    def close(self) -> None:
        self.stop_servers()
        if self.keep:
            print(f"(sandbox kept: {self.root})", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def age(paths: Sequence[Path], seconds: float = 60.0) -> None:
    """Set the mtimes of ``paths`` ``seconds`` in the past, as for files checked out a
    while ago. The snapshot hash cache does not trust a file modified in the last two
    seconds (a write in the same clock tick could go unseen), so freshly generated files
    would otherwise be re-hashed on every run of the benchmark."""
    when = time.time() - seconds
    for path in paths:
        os.utime(path, (when, when))


def openssh_argv(key: Path, port: int, known_hosts: Path) -> list[str]:
    """OpenSSH's ``ssh`` with one key and only the given known_hosts, checked strictly, no
    prompt and no connection sharing (``-F /dev/null``: OpenSSH reads ``~/.ssh`` from the
    passwd entry, not from ``$HOME``). Append the destination and the command."""
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ControlPath=none",
    ]
