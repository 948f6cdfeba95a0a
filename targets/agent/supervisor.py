"""The detached process that owns one run on its target (target side).

Stdlib only, Python >= 3.8. Started by :func:`launch` in its own session, so it outlives
the client that started it and a Ctrl-C in the client's terminal never reaches it. It:

1. records itself in ``status.json`` (pid and start time, so a dead supervisor is noticed);
2. prepares the environment (``prepare.log``), unless a cancel came first;
3. starts the user's process in a new process group with stdout and stderr going to
   ``driver.log``;
4. waits, enforcing ``max_run_duration_seconds`` and honouring cancel requests (a
   ``cancel`` file plus SIGTERM), and on either stops the whole process tree: SIGTERM,
   then SIGKILL after a grace period;
5. writes the final status and exit code.

A node's part of a distributed run (``spec["distributed"]``) writes the ``ready`` marker
once the environment is ready and starts through :mod:`.distributed` (torchrun, mpirun,
TF_CONFIG) instead of running the entry directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

from . import containers, distributed, envs, orphans, rundir, spark
from .protocol import (
    CANCELED,
    COMPLETED,
    FAILED,
    PREPARING,
    RUNNING,
    Activation,
    RunSpec,
    StatusRecord,
)

__all__ = ["launch", "main"]

GRACE_SECONDS = 10.0
POLL_SECONDS = 0.05


def launch(
    root: str, run_id: str, python: str | None = None, timeout: float = 30.0
) -> StatusRecord:
    """Start the supervisor of a prepared run folder, detached, and return once it has
    recorded itself in ``status.json``. Raises RuntimeError when it fails to start."""
    run_dir = rundir.run_path(root, run_id)
    # The folder (or zipapp) holding the top-level package: one level up per package part.
    agent_parent = os.path.dirname(os.path.abspath(__file__))
    for _part in _package().split("."):
        agent_parent = os.path.dirname(agent_parent)
    if os.path.isfile(agent_parent):  # the zipapp shipped to a remote target
        agent_parent = _unpacked(agent_parent) or agent_parent
    env = dict(os.environ)
    env["TARGETS_USER_PYTHONPATH"] = env.get("PYTHONPATH", "")
    # Inherited by everything the supervisor starts: how the processes of a run whose
    # supervisor was killed are found and ended (orphans.py).
    env[orphans.RUN_VARIABLE] = os.path.realpath(run_dir)
    env["PYTHONPATH"] = agent_parent + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    # The supervisor says "recorded" by writing to (then closing) this pipe: no polling
    # for status.json, whose write is noticed the moment it happens.
    ready_read, ready_write = os.pipe()
    env[READY_VARIABLE] = str(ready_write)
    argv = [python or sys.executable, "-S", "-m", _package(), "supervise", root, run_id]
    try:
        proc: Any = None
        if _may_fork(python, agent_parent):
            proc = _fork(argv, root, run_id, env, ready_write)
        if proc is None:
            with open(os.path.join(run_dir, "supervisor.log"), "ab") as err:
                # -S: the supervisor needs the standard library only (and the agent, on
                # PYTHONPATH); skipping site (and the .pth files of an environment's
                # packages) saves tens of milliseconds per run. See _site_when_needed.
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    close_fds=True,
                    pass_fds=(ready_write,),
                    start_new_session=True,
                    env=env,
                    cwd=run_dir,
                )
    finally:
        os.close(ready_write)
    try:
        if _await_record(proc, ready_read, os.path.join(run_dir, "status.json"), timeout):
            _LAUNCHED.append(proc)
            return rundir.read_status(root, run_id)
    finally:
        os.close(ready_read)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    with open(os.path.join(run_dir, "supervisor.log"), "rb") as fh:
        tail = fh.read()[-2000:].decode("utf-8", "replace")
    raise RuntimeError("the run's supervisor did not start: " + (tail.strip() or "no output"))


FORK_VARIABLE = "TARGETS_SUPERVISOR_FORK"
"""``0``: always start the supervisor as a new interpreter (see :func:`_may_fork`)."""


def _may_fork(python: str | None, agent_parent: str) -> bool:
    """Whether :func:`launch` may fork this process into the supervisor rather than start
    a new interpreter, which imports the agent anew (some 50 ms): only for a supervisor
    on this interpreter, from an agent that lives in a folder (a zipapp may be replaced
    under a long-lived supervisor that imports from it later), in a process with no other
    threads (a fork keeps only the calling one, and the locks others held), and where
    ``setproctitle`` can name the fork as the supervisor it is (``ps`` and ``pkill -f``
    would otherwise see a copy of the client, or of the command server)."""
    if os.environ.get(FORK_VARIABLE) == "0" or not hasattr(os, "fork"):
        return False
    if python not in (None, sys.executable) or not os.path.isdir(agent_parent):
        return False
    import threading

    if threading.active_count() != 1 or threading.current_thread() is not threading.main_thread():
        return False
    try:
        import setproctitle  # noqa: F401
    except ImportError:
        return False
    return True


class _Forked:
    """A supervisor made by :func:`_fork`, with what :func:`launch` uses of a Popen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
            else:
                if pid:  # (os.waitstatus_to_exitcode is 3.9+: the agent runs on 3.8)
                    if os.WIFSIGNALED(status):
                        self.returncode = -os.WTERMSIG(status)
                    else:
                        self.returncode = os.WEXITSTATUS(status)
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(0.01)
        return self.returncode or 0


_KEPT: list[Any] = []
"""In a forked supervisor: the launcher's standard streams, kept so that they are never
finalised (which would flush the launcher's buffered output into the supervisor's log)."""


def _fork(
    argv: list[str], root: str, run_id: str, env: dict[str, str], ready_write: int
) -> _Forked | None:
    """Fork this process into the run's supervisor: what a new interpreter started with
    ``argv`` would be (own session, stdin from /dev/null, stdout and stderr appended to
    ``supervisor.log``, no descriptor but ``ready_write`` kept, ``env``, the run folder as
    its directory, default signal handling, ``argv`` as its command line), minus the
    start-up. None when the fork fails (the caller starts an interpreter)."""
    import gc
    import io
    import shlex

    run_dir = rundir.run_path(root, run_id)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # else the child would hold (and could write) a copy
    log = os.open(os.path.join(run_dir, "supervisor.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid != 0:
        os.close(log)
        os.close(null)
        return _Forked(pid) if pid > 0 else None
    code = 1
    try:
        import setproctitle

        # First: it finds the command line's memory through the environment's, which
        # the os.environ change below moves.
        setproctitle.setproctitle(shlex.join(argv))
        os.setsid()
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, ready_write)
        os.closerange(ready_write + 1, _max_fd())
        signal.set_wakeup_fd(-1)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for name in (
            "SIGALRM",
            "SIGCHLD",
            "SIGHUP",
            "SIGIO",
            "SIGQUIT",
            "SIGTERM",
            "SIGTSTP",
            "SIGTTIN",
            "SIGTTOU",
            "SIGUSR1",
            "SIGUSR2",
            "SIGWINCH",
        ):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(run_dir)
        os.environ.clear()
        os.environ.update(env)
        _KEPT.extend((sys.stdin, sys.stdout, sys.stderr))
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
        # The launcher's objects stay as they are: never collected (their descriptors
        # are closed here, and a number may be reused), nor copied by the collector.
        gc.freeze()
        code = supervise(root, run_id)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 65536


def _unpacked(archive: str) -> str | None:
    """A folder beside the agent's zipapp holding its files, made once per zipapp (its
    name carries the zipapp's size and time). Python imports nothing from a zip but
    source, compiled anew at every start; from this folder the supervisor's imports come
    from bytecode compiled once, when it is made. None when it cannot be made."""
    try:
        st = os.stat(archive)
    except OSError:
        return None
    folder = os.path.join(
        os.path.dirname(archive),
        ".%s-%d-%d.unpacked" % (os.path.basename(archive), st.st_size, st.st_mtime_ns),
    )
    if os.path.isdir(folder):
        return folder
    import shutil
    import tempfile
    import zipfile

    try:
        tmp = tempfile.mkdtemp(dir=os.path.dirname(archive), prefix=".unpacking-")
    except OSError:
        return None
    try:
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                parts = name.split("/")
                if name.startswith("/") or any(p in (".", "..") for p in parts):
                    raise zipfile.BadZipFile("unexpected name %r" % name)
            bundle.extractall(tmp)
        import compileall

        # Compiled now, whatever PYTHONDONTWRITEBYTECODE says where the agent runs.
        compileall.compile_dir(tmp, quiet=1)
        os.rename(tmp, folder)
    except (OSError, zipfile.BadZipFile):
        shutil.rmtree(tmp, ignore_errors=True)
        return folder if os.path.isdir(folder) else None  # another launch made it
    return folder


READY_VARIABLE = "TARGETS_SUPERVISOR_READY_FD"
"""The supervisor's environment: the pipe (a file descriptor) on which it tells
:func:`launch` that it has recorded itself in ``status.json``."""


def _await_record(
    proc: subprocess.Popen[bytes], ready: int, status_file: str, timeout: float
) -> bool:
    """Wait until the supervisor has written ``status_file`` (True), has exited, or
    ``timeout`` has passed (False). Woken by the ready pipe (a byte, or its end when the
    supervisor exits); a short poll covers a supervisor that never writes to it."""
    deadline = time.monotonic() + timeout
    eof = False
    while True:
        if os.path.exists(status_file):
            return True
        if proc.poll() is not None:
            return os.path.exists(status_file)
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if eof:
            time.sleep(min(left, 0.005))
            continue
        readable, _, _ = select.select([ready], [], [], min(left, 0.5))
        if readable:
            try:
                eof = not os.read(ready, 64)
            except OSError:
                eof = True


def _tell_launcher() -> None:
    """Wake :func:`launch` (status.json is written); the pipe is not passed on."""
    fd = os.environ.pop(READY_VARIABLE, "")
    if not fd.isdigit():
        return
    with contextlib.suppress(OSError):
        os.write(int(fd), b"1")
    with contextlib.suppress(OSError):
        os.close(int(fd))


# Popen objects of supervisors this process started; polled by reap() so that a long-lived
# client (a notebook, the test suite) does not collect zombies.
_LAUNCHED: list[Any] = []  # Popen or _Forked


def reap() -> None:
    for proc in list(_LAUNCHED):
        if proc.poll() is not None:
            _LAUNCHED.remove(proc)


def _package() -> str:
    return __name__.rsplit(".", 1)[0]


class _Stop:
    """Set by SIGTERM/SIGINT delivered to the supervisor."""

    requested = False


def _on_signal(signum: int, frame: Any) -> None:
    _Stop.requested = True


def _descendants(pid: int) -> list[int]:
    """Every process whose parent chain leads to ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _signal_tree(proc: subprocess.Popen[bytes], sig: int) -> None:
    pids = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    for pid in pids:  # processes that left the group (setsid) but are still ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _stop_tree(proc: subprocess.Popen[bytes]) -> None:
    _signal_tree(proc, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(POLL_SECONDS)
    _signal_tree(proc, signal.SIGKILL)
    proc.wait()


class _Process:
    """The run's process on this machine (not in a container)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def exit_fd(self) -> int | None:
        """A descriptor that becomes readable when the process ends (a Linux pidfd), or
        None where there is none."""
        opener = getattr(os, "pidfd_open", None)
        if opener is None:
            return None
        try:
            fd: int = opener(self.proc.pid)
        except OSError:
            return None
        return fd

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stop(self) -> None:
        _stop_tree(self.proc)


def _container_environ(spec: RunSpec, wd: str) -> dict[str, str]:
    """The variables a containerised run sees: the run's own, not this machine's; the
    run library copied into the run's folder (mounted at the same path) and put first on
    the container's ``PYTHONPATH``."""
    env: dict[str, str] = {}
    for pair in (spec.get("environment") or {}).get("variables") or ():
        key, value = (pair if isinstance(pair, (list, tuple)) else (pair, ""))[:2]
        env[str(key)] = str(value)
    env.update({str(k): str(v) for k, v in (spec.get("environment_variables") or {}).items()})
    run_id = spec["run_id"]
    env.update(
        TARGETS_RUN_ID=run_id,
        AZUREML_RUN_ID=run_id,
        PYTHONUNBUFFERED="1",
        TARGETS_OUTPUTS_DIR=os.path.join(wd, "outputs"),
    )
    env.update(_mlflow_environ(spec, wd))
    library = None if _keeps_real_sdk(env) else copy_run_library(wd)
    env.update(_run_library_environ(spec, env, wd, library))
    return env


def _argv(spec: RunSpec, python: str) -> list[str]:
    if spark.is_pyspark(spec):
        return spark.argv(spec)
    entry = spec["entry"]
    if entry.get("script"):
        return [python, entry["script"], *list(entry.get("arguments") or [])]
    command = entry.get("command")
    if isinstance(command, list):
        return [str(c) for c in command]
    return ["/bin/sh", "-c", str(command)]


def _environ(spec: RunSpec, python: str, run_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    user_pythonpath = env.pop("TARGETS_USER_PYTHONPATH", "")
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    if user_pythonpath:
        env["PYTHONPATH"] = user_pythonpath
    activate = spec.get("activate")
    if activate is not None and python == (spec.get("environment") or {}).get("interpreter"):
        _activate(env, activate)
    else:
        env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    # conda `variables:` first, so the runconfig's own variables win.
    for pair in (spec.get("environment") or {}).get("variables") or ():
        key, value = (pair if isinstance(pair, (list, tuple)) else (pair, ""))[:2]
        env[str(key)] = str(value)
    env.update({str(k): str(v) for k, v in (spec.get("environment_variables") or {}).items()})
    run_id = spec["run_id"]
    env["TARGETS_RUN_ID"] = run_id
    env["AZUREML_RUN_ID"] = run_id
    env["TARGETS_OUTPUTS_DIR"] = os.path.join(run_dir, "wd", "outputs")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(_mlflow_environ(spec, os.path.join(run_dir, "wd")))
    env.update(_run_library_environ(spec, env, os.path.join(run_dir, "wd")))
    return env


# The run library (runlib/azureml): ``from azureml.core import Run`` inside a run. A
# folder next to this file, or a folder inside the agent zipapp (zipimport reads both).
RUN_LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runlib")
KEEP_REAL_SDK = "TARGETS_AZUREML_REAL"
RUN_LIBRARY_COPY = ".targets/runlib"
"""Where a containerised run finds the run library: inside its working folder, which is
mounted into the container at the same path (``.targets/`` is never collected as
outputs, and never part of a snapshot)."""


def _keeps_real_sdk(env: dict[str, str]) -> bool:
    return env.get(KEEP_REAL_SDK, "").strip().lower() in ("1", "true", "yes")


def _run_library_environ(
    spec: RunSpec, env: dict[str, str], wd: str, library: str | None = RUN_LIBRARY
) -> dict[str, str]:
    """What ``Run.get_context()`` of the run library reads: where the run's MLflow store
    is (always the collected one, even when the run names its own tracking URI), the
    experiment's name (as v1 sets it) and the parent run's id; and the library
    (``library``) first on ``PYTHONPATH``, unless the run asks for the real Azure ML SDK
    with ``TARGETS_AZUREML_REAL=1``."""
    added = {"TARGETS_MLFLOW_STORE": os.path.join(wd, *rundir.MLFLOW_STORE.split("/"))}
    own = spec.get("environment_variables") or {}
    if spec.get("experiment") and "AZUREML_ARM_PROJECT_NAME" not in own:
        added["AZUREML_ARM_PROJECT_NAME"] = str(spec["experiment"])
    if _keeps_real_sdk(env) or library is None:
        return added
    path = env.get("PYTHONPATH")
    added["PYTHONPATH"] = library + (os.pathsep + path if path else "")
    return added


def _spark_library(spec: RunSpec, wd: str) -> str | None:
    """The run library as ``wd/.targets/runlib.zip`` (``azureml/`` at its root), for a
    pyspark driver on a YARN cluster node; None when the run keeps the real SDK."""
    import shutil

    env: dict[str, str] = {}
    for pair in (spec.get("environment") or {}).get("variables") or ():
        key, value = (pair if isinstance(pair, (list, tuple)) else (pair, ""))[:2]
        env[str(key)] = str(value)
    env.update({str(k): str(v) for k, v in (spec.get("environment_variables") or {}).items()})
    if _keeps_real_sdk(env):
        return None
    folder = copy_run_library(wd)
    return shutil.make_archive(folder, "zip", folder)


def copy_run_library(wd: str) -> str:
    """Copy the run library into ``wd/.targets/runlib`` (from the folder next to this
    file, or from the agent's zipapp) and return that folder."""
    import shutil
    import zipfile

    dest = os.path.join(wd, *RUN_LIBRARY_COPY.split("/"))
    shutil.rmtree(dest, ignore_errors=True)
    if os.path.isdir(RUN_LIBRARY):
        shutil.copytree(RUN_LIBRARY, dest, ignore=shutil.ignore_patterns("__pycache__"))
        return dest
    archive, inner = RUN_LIBRARY, ""
    while archive and not os.path.isfile(archive):
        archive, part = os.path.split(archive)
        inner = part + ("/" + inner if inner else "")
    with zipfile.ZipFile(archive) as bundle:
        for name in bundle.namelist():
            if not name.startswith(inner + "/") or name.endswith("/"):
                continue
            rel = name[len(inner) + 1 :].split("/")
            if any(part in ("", ".", "..") for part in rel):
                continue
            path = os.path.join(dest, *rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(bundle.read(name))
    return dest


def _activate(env: dict[str, str], activate: Activation) -> None:
    """Apply the client's decision (``spec["activate"]``, see
    ``targets.compute._python``): the chosen virtualenv or conda env looks activated,
    environments that were active in the client but not chosen look deactivated."""
    for key in activate.get("unset") or ():
        env.pop(str(key), None)
    env.update({str(k): str(v) for k, v in (activate.get("set") or {}).items()})
    drop = set(activate.get("path_drop") or ())
    first = activate.get("path_first")
    parts = [p for p in env.get("PATH", "").split(os.pathsep) if p and p not in drop]
    if first:
        parts = [str(first)] + [p for p in parts if p != first]
    env["PATH"] = os.pathsep.join(parts)


def _mlflow_environ(spec: RunSpec, wd: str) -> dict[str, str]:
    """MLflow logs into a file store in the run folder, collected with the outputs and
    merged into the workspace's store (unless the run names its own tracking URI)."""
    own = spec.get("environment_variables") or {}
    if "MLFLOW_TRACKING_URI" in own:
        return {}
    store = os.path.join(wd, *rundir.MLFLOW_STORE.split("/"))
    env = {
        "MLFLOW_TRACKING_URI": "file://" + store,
        # MLflow 3 keeps the file store but asks for this opt-in.
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    if spec.get("experiment") and "MLFLOW_EXPERIMENT_NAME" not in own:
        env["MLFLOW_EXPERIMENT_NAME"] = str(spec["experiment"])
    return env


CANCEL_CHECK_SECONDS = 0.25
"""How often a waiting supervisor looks for a cancel file that came without a signal."""


def _signal_pipe() -> int | None:
    """The read end of a pipe that gets a byte whenever a handled signal (SIGTERM: a
    cancel) arrives, so that a wait in ``select`` wakes at once. None where it cannot be
    made."""
    try:
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write)
    except (OSError, ValueError):
        return None
    return read


def _wait_readable(fds: list[int], timeout: float) -> None:
    with contextlib.suppress(InterruptedError):
        select.select(fds, [], [], timeout)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 512):
            pass


def _site_when_needed(docker_driver: str | None) -> None:
    """The supervisor starts without ``site`` (``-S``, see :func:`launch`); the Docker
    SDK driver needs the interpreter's packages, so they are added for it."""
    if docker_driver == "sdk" and sys.flags.no_site:
        import site

        site.main()


def supervise(root: str, run_id: str) -> int:
    run_dir = rundir.run_path(root, run_id)
    with open(os.path.join(run_dir, "spec.json")) as fh:
        spec: RunSpec = json.load(fh)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    wakeup = _signal_pipe()
    started = time.time()
    phases: dict[str, float] = {}
    rundir.write_status(
        run_dir,
        status=PREPARING,
        supervisor_pid=os.getpid(),
        supervisor_identity=rundir.process_identity(os.getpid()),
        started_at=started,
    )
    _tell_launcher()
    rundir.reserve_space(run_dir)
    cancel_file = os.path.join(run_dir, "cancel")

    def cancelled() -> bool:
        return _Stop.requested or os.path.exists(cancel_file)

    def finish(status: str, exit_code: int | None = None, message: str | None = None) -> int:
        if status == FAILED and rundir.disk_nearly_full(run_dir):
            message = (message or "failed") + (
                "; the target's disk was full when it ended: free space there, or remove "
                "old runs and environments with `targets gc`"
            )
        rundir.write_status(
            run_dir,
            status=status,
            exit_code=exit_code,
            message=message,
            ended_at=time.time(),
            phases=phases,
        )
        rundir.release_space(run_dir)
        return 0

    # outputs/ and logs/ are not created in advance: scripts that call mkdir() without
    # exist_ok (common) would fail.
    wd = os.path.join(run_dir, "wd")
    t0 = time.time()
    docker = (spec.get("environment") or {}).get("docker")
    if docker:
        _site_when_needed(spec.get("docker_driver"))
    driver = containers.driver(spec.get("docker_driver")) if docker else None
    with open(os.path.join(run_dir, "prepare.log"), "ab", buffering=0) as log:
        try:
            if driver is not None:
                env_result = containers.ensure_image(driver, spec["environment"], root, log)
            else:
                env_result = envs.ensure_environment(
                    spec["environment"],
                    root,
                    log,
                    uv=spec.get("uv"),
                    default_python=spec.get("default_python"),
                    timeout=spec.get("prepare_timeout_seconds"),
                )
            if spark.is_pyspark(spec):
                spark.prepare(spec, env_result, root, log, library=_spark_library(spec, wd))
        except (envs.EnvError, containers.ContainerError) as exc:
            log.write(("\nenvironment preparation failed: %s\n" % exc).encode())
            phases["preparing"] = time.time() - t0
            return finish(FAILED, message="environment preparation failed: %s" % exc)
        except Exception as exc:  # a bug or an OS error: still end the run cleanly
            log.write(("\nenvironment preparation failed: %r\n" % (exc,)).encode())
            phases["preparing"] = time.time() - t0
            return finish(FAILED, message="environment preparation failed: %r" % (exc,))
    phases["preparing"] = time.time() - t0
    if cancelled():
        return finish(CANCELED, message="canceled before it started")

    python = env_result["python"]
    limit = spec.get("max_run_duration_seconds")
    dist = spec.get("distributed") or None
    if dist:
        distributed.mark_ready(run_dir)
    t1 = time.time()
    with open(os.path.join(run_dir, "driver.log"), "ab", buffering=0) as out:
        if dist:
            ended = distributed.before_launch(
                spec, dist, root, run_dir, out, cancelled, container=driver is not None
            )
            if ended is not None:
                distributed.after_run(run_dir)
                phases["running"] = time.time() - t1
                out.write(("[targets] %s\n" % ended[1]).encode())
                return finish(ended[0], message=ended[1])
        try:
            if driver is not None:
                argv, cenv = _argv(spec, python), _container_environ(spec, wd)
                if dist:
                    argv, cenv = distributed.command(
                        spec, dist, python, argv, cenv, wd, run_dir, container=True
                    )
                options = containers.run_options(
                    spec["run_id"], wd, cenv, spec.get("docker_run") or {}
                )
                proc = driver.start(options, env_result["image"], argv, out)
            else:
                argv = _argv(spec, python)
                env = spark.environ(spec, _environ(spec, python, run_dir))
                if dist:
                    argv, env = distributed.command(
                        spec, dist, python, argv, env, wd, run_dir, container=False
                    )
                proc = _Process(
                    subprocess.Popen(
                        argv,
                        cwd=wd,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,
                        # SIGTERM when the supervisor dies (kill -9): the script does not
                        # run on unsupervised; the status reader ends the rest.
                        preexec_fn=orphans.parent_death_signal(),
                    )
                )
        except (OSError, RuntimeError, containers.ContainerError) as exc:
            if dist:
                distributed.after_run(run_dir)
            out.write(("could not start the run: %s\n" % exc).encode())
            return finish(FAILED, message="could not start: %s" % exc)
    rundir.write_status(
        run_dir,
        status=RUNNING,
        pid=proc.pid,
        pid_identity=rundir.process_identity(proc.pid) if proc.pid else None,
        running_at=t1,
        phases=dict(phases, preparing=phases["preparing"]),
    )
    reason = None
    exit_fd = proc.exit_fd() if isinstance(proc, _Process) else None
    while True:
        if exit_fd is not None and isinstance(proc, _Process):
            # Woken the moment the process ends, or a signal (a cancel) arrives; the
            # cancel file (a request without a signal) and the time limit are looked at
            # every CANCEL_CHECK_SECONDS.
            wait = CANCEL_CHECK_SECONDS
            if limit is not None:
                wait = max(0.0, min(wait, t1 + float(limit) - time.time()) + 0.001)
            _wait_readable([exit_fd] + ([wakeup] if wakeup is not None else []), wait)
            if wakeup is not None:
                _drain(wakeup)
            polled = proc.poll()
            if polled is not None:
                code = polled
                break
        else:
            try:
                code = proc.wait(timeout=POLL_SECONDS if limit is None else min(POLL_SECONDS, 1.0))
                break
            except subprocess.TimeoutExpired:
                pass
        if cancelled():
            reason = "canceled"
        elif limit is not None and time.time() - t1 > float(limit):
            reason = "timeout"
        if reason:
            proc.stop()
            code = proc.returncode
            spark.after_stop(spec, os.path.join(run_dir, "driver.log"))
            break
    phases["running"] = time.time() - t1
    if exit_fd is not None:
        os.close(exit_fd)
    if dist:
        distributed.after_run(run_dir)
    if reason == "canceled":
        return finish(CANCELED, exit_code=code, message="canceled")
    if reason == "timeout":
        with open(os.path.join(run_dir, "driver.log"), "ab") as tail:
            tail.write(
                (
                    "\n[targets] stopped: the run exceeded max_run_duration_seconds=%s\n" % limit
                ).encode()
            )
        return finish(
            FAILED, exit_code=code, message="exceeded max_run_duration_seconds=%s" % limit
        )
    if code == 0:
        return finish(COMPLETED, exit_code=0)
    return finish(FAILED, exit_code=code, message="the script exited with code %d" % code)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "supervise":
        return supervise(argv[1], argv[2])
    sys.stderr.write("usage: supervise ROOT RUN_ID\n")
    return 2
