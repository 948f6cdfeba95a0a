"""Ending what a run's dead supervisor left running (target side).

Stdlib only, Python >= 3.8. The supervisor owns the run's process tree: it stops it on
cancel and on timeout, and records the end. When the supervisor itself is killed
(``kill -9``, the OOM killer, a crash) the script would go on, writing files that are
never collected, and ``cancel`` would find nobody to ask. So whoever reads the status of
such a run (:func:`rundir.read_status`, for ``status``, ``poll``, ``cancel``, garbage
collection ...) calls :func:`end_orphaned_run`, which ends every process the run left,
removes its container, and records the end in ``status.json``; the client collects the
logs and outputs after that, so what the script wrote until it was stopped comes back.

Which processes belong to the run:

- the script's process group (it runs in a session of its own): the group id is the
  ``pid`` in ``status.json``, and the group is ended only while that leader is the same
  process (its start time, ``pid_identity``, matches), never a reused pid;
- every process of this user whose environment carries :data:`RUN_VARIABLE` with this run's
  folder (its real path): the supervisor sets it for itself, so its environment builders,
  the script, the script's children and those that left the group (``setsid``) all
  inherit it.

Design choice: the end is written into ``status.json`` (normally the supervisor's alone)
because nobody else will ever write it; a lock in the run folder makes concurrent readers
wait for the first one instead of racing it. Runs launched by an external scheduler
(:mod:`external`) are left alone: their pids belong to another machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable, Iterator

from .protocol import CANCELED, FAILED, TERMINAL, RunSpec, StatusRecord

__all__ = ["RUN_VARIABLE", "end_orphaned_run", "parent_death_signal"]

#: Set in the supervisor's environment (and so in everything it starts): the run folder.
RUN_VARIABLE = "TARGETS_AGENT_RUN_DIR"
MESSAGE = "the run's supervisor process ended unexpectedly"
GRACE_SECONDS = 3.0
KILL_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, process group, start time) of ``pid`` from /proc, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0], int(fields[2]), fields[19]


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open("/proc/%d/environ" % pid, "rb") as fh:
            environ = fh.read()
    except OSError:
        return False
    return marker in environ.split(b"\0")


def _ancestors() -> set[int]:
    """This process and its parents: never ours to end (a client inside a run)."""
    found = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as fh:
                stat = fh.read()
            pid = int(stat[stat.rfind(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def _run_processes(run_dir: str, status: StatusRecord) -> dict[int, str]:
    """Live processes of the run: pid -> start time (to tell them from a reused pid)."""
    if not os.path.isdir("/proc"):
        return {}  # no way to tell a reused pid: end nothing rather than a stranger
    leader = status.get("pid")
    group = 0
    if isinstance(leader, int) and leader > 1 and status.get("pid_identity"):
        seen = _stat(leader)
        # A zombie leader (not yet reaped) still names the group it led.
        if seen is not None and seen[2] == str(status["pid_identity"]):
            group = leader
    marker = ("%s=%s" % (RUN_VARIABLE, os.path.realpath(run_dir))).encode()
    uid = os.getuid()
    spared = _ancestors()
    found: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in spared:
            continue
        seen = _stat(pid)
        if seen is None or seen[0] in ("Z", "X"):
            continue
        try:
            if uid != 0 and os.stat("/proc/%d" % pid).st_uid != uid:
                continue
        except OSError:
            continue
        if (group and seen[1] == group) or _has_marker(pid, marker):
            found[pid] = seen[2]
    return found


def _signal(processes: dict[int, str], sig: int) -> None:
    for pid, started in processes.items():
        seen = _stat(pid)
        if seen is None or seen[2] != started:
            continue  # gone, or the pid now names another process
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(processes: dict[int, str], seconds: float) -> dict[int, str]:
    """Wait until every process has ended (at most ``seconds``); return those left."""
    deadline = time.monotonic() + seconds
    while True:
        left = {}
        for pid, started in processes.items():
            seen = _stat(pid)
            if seen is not None and seen[2] == started and seen[0] not in ("Z", "X"):
                left[pid] = started
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL_SECONDS)


def _stop(run_dir: str, status: StatusRecord) -> int:
    """SIGTERM every process of the run, SIGKILL what is left after a grace period;
    return how many there were."""
    first = _run_processes(run_dir, status)
    _signal(first, signal.SIGTERM)
    _wait_gone(first, GRACE_SECONDS)
    # Again from the start: a process may have forked meanwhile.
    rest = _run_processes(run_dir, status)
    _signal(rest, signal.SIGKILL)
    _wait_gone(rest, KILL_WAIT_SECONDS)
    return len(set(first) | set(rest))


def _remove_container(run_dir: str, run_id: str) -> None:
    try:
        with open(os.path.join(run_dir, "spec.json")) as fh:
            spec: RunSpec = json.load(fh)
    except (OSError, ValueError):
        return
    if not (spec.get("environment") or {}).get("docker"):
        return
    from . import containers

    with contextlib.suppress(Exception):  # best effort: the engine may be gone too
        containers.driver(spec.get("docker_driver")).remove_container(
            containers.container_name(run_id)
        )


@contextlib.contextmanager
def _locked(run_dir: str) -> Iterator[None]:
    fd = os.open(os.path.join(run_dir, ".orphan-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def end_orphaned_run(root: str, run_id: str, status: StatusRecord) -> StatusRecord:
    """End the processes of a run whose supervisor is gone and record it Failed (or
    Canceled, when a cancel had been asked for) in ``status.json``; return the status.

    ``status`` is what the caller read: not ended, and its supervisor not alive.
    Blocking: up to a few seconds while the processes end. Idempotent; a concurrent
    caller waits for the first and returns what it recorded. A run launched by an
    external scheduler is only reported as ``status`` says, never touched."""
    from . import external, rundir

    run_dir = rundir.run_path(root, run_id)
    if os.path.exists(os.path.join(run_dir, external.MARKER)):
        return {**status, "status": FAILED, "message": MESSAGE}
    with _locked(run_dir):
        current = rundir.load_status(run_dir) or status
        if current.get("status") in TERMINAL:
            return current
        stopped = _stop(run_dir, current)
        _remove_container(run_dir, run_id)
        canceled = os.path.exists(os.path.join(run_dir, "cancel"))
        message = MESSAGE + (
            "; %d of its processes were stopped" % stopped
            if stopped
            else "; none of its processes was left"
        )
        if rundir.disk_nearly_full(run_dir):
            message += "; the target's disk is full"
        ended: StatusRecord = {
            "status": CANCELED if canceled else FAILED,
            "message": ("canceled; " + message) if canceled else message,
            "ended_at": time.time(),
            "orphans_stopped": stopped,
        }
        try:
            return rundir.write_status(run_dir, **ended)
        except OSError:
            # A full disk (the likely reason the supervisor died): report the end
            # anyway; the next look records it once there is room.
            return {**current, **ended}


_PR_SET_PDEATHSIG = 1


def parent_death_signal(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when its parent dies (Linux
    ``prctl(PR_SET_PDEATHSIG)``), or None where that is not available. A first line of
    defence when the supervisor is killed; :func:`end_orphaned_run` does the rest.

    The C library is loaded here, in the parent: the function runs between fork and
    exec, where nothing should be imported."""
    if not os.path.isdir("/proc"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), sig)

    return preexec
