"""The operations the agent performs on its target (target side).

Stdlib only, Python >= 3.8. The local target calls these functions in-process; on remote
targets ``server.py`` calls them for requests that arrive over SSH. Every function takes
the agent's root folder first and returns JSON-able values.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Callable  # noqa: UP035 - runtime use on Python 3.8

from . import AGENT_VERSION, containers, envs, external, rundir, storage, store, supervisor
from .protocol import (
    LAUNCH_DETACHED,
    LAUNCH_EXTERNAL,
    DockerCheck,
    ExternalCommand,
    Hello,
    MissingObjects,
    RunSpec,
    StatusRecord,
    manifest_rows,
)

__all__ = [
    "hello",
    "install_tool",
    "list_outputs",
    "missing",
    "probe",
    "start_run",
    "which_tool",
]


def hello(root: str) -> Hello:
    return {
        "agent": AGENT_VERSION,
        "root": root,
        "python": sys.executable,
        "python_version": platform.python_version(),
        "platform": "%s-%s" % (platform.system().lower(), platform.machine().lower()),
    }


def _probe_line(argv: list[str]) -> str | None:
    return envs.first_line(argv, merge_stderr=True, timeout=20)


def _os_release() -> str | None:
    try:
        with open("/etc/os-release") as fh:
            fields = dict(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)
    except OSError:
        return None
    return fields.get("PRETTY_NAME", "").strip('"') or None


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def probe(root: str, python: str | None = None) -> dict[str, Any]:
    """What this machine offers: OS, Python, conda, docker, GPUs, cores, memory, disk,
    and the package index and certificate bundle an environment build would use."""
    facts: dict[str, Any] = {
        "os": _os_release() or "%s %s" % (platform.system(), platform.release()),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
    }
    py = shutil.which(python or "python3") or sys.executable
    facts["python"] = py
    facts["python_version"] = (
        _probe_line([py, "-c", "import platform; print(platform.python_version())"]) or None
    )
    facts["conda"] = next(
        (shutil.which(t) for t in ("micromamba", "mamba", "conda") if shutil.which(t)), None
    )
    facts["uv"] = which_tool(root, "uv")
    docker = shutil.which("docker")
    facts["docker"] = _probe_line([docker, "--version"]) if docker else None
    smi = shutil.which("nvidia-smi")
    gpus: list[str] = []
    if smi:
        listing = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=20,
        )
        if listing.returncode == 0:
            gpus = [g.strip() for g in listing.stdout.decode().splitlines() if g.strip()]
    facts["gpus"] = gpus
    os.makedirs(root, exist_ok=True)
    usage = shutil.disk_usage(root)
    facts["disk_free_bytes"] = usage.free
    # Which package index and certificate bundle an environment build here uses.
    facts.update(envs.package_facts())
    return facts


def missing(root: str, rows: list[list[Any]], run_id: str | None = None) -> list[str]:
    """Objects of ``rows`` the store lacks. With ``run_id``, every object of ``rows`` is
    claimed for that run until it starts, so garbage collection spares it (storage.py)."""
    return storage.missing_and_claim(root, rows, run_id)


def start_run(
    root: str,
    run_id: str,
    rows: list[list[Any]] | None,
    spec: RunSpec,
    python: str | None = None,
    launch: str = LAUNCH_DETACHED,
    check: bool = False,
) -> StatusRecord | ExternalCommand | MissingObjects:
    """Materialise the run folder from the store, write its spec and launch it detached
    (returns its first status); with ``launch="external"`` start nothing and return the
    supervisor's command instead (see :mod:`external`).

    With ``check``, first claim the objects of ``rows`` for the run (as ``missing``
    does) and, when the store lacks some, start nothing: return ``{"missing": [keys]}``
    and keep the rows, so that the ``start`` that follows the upload may leave ``rows``
    out (None). One round trip from the manifest to a started run when nothing is
    missing, and the manifest crosses the wire once."""
    if launch not in (LAUNCH_DETACHED, LAUNCH_EXTERNAL):
        raise ValueError(
            "launch must be %r or %r, not %r" % (LAUNCH_DETACHED, LAUNCH_EXTERNAL, launch)
        )
    run_dir = rundir.run_path(root, run_id)
    if rows is None:
        rows = storage.pending_rows(root, run_id)
        if rows is None:
            raise ValueError("no manifest is kept for run %s on this target: send it" % run_id)
    files = manifest_rows(rows)  # malformed rows are refused before anything is made
    if os.path.exists(run_dir):
        raise ValueError("run %s already exists on this target" % run_id)
    if check:
        missing = storage.claim_for_start(root, files, run_id)
        if missing:
            return {"missing": missing}
    os.makedirs(os.path.join(run_dir, "wd"), mode=0o700)
    os.chmod(run_dir, 0o700)  # makedirs' mode is the leaf's; the umask may loosen both
    try:
        store.materialise(root, files, os.path.join(run_dir, "wd"))
    finally:
        storage.release(root, run_id)  # the run folder's links now keep its objects
    # The spec holds the run's variables: 0600 whatever the umask (the root is 0700 too).
    fd = os.open(os.path.join(run_dir, "spec.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(spec, fh)
    if launch == LAUNCH_EXTERNAL:
        return external.command(root, run_id, python=python)
    return supervisor.launch(root, run_id, python=python)


def list_outputs(root: str, run_id: str, have: dict[str, list[float]]) -> list[list[Any]]:
    """Files to collect (``outputs/``, ``logs/``, the MLflow store) that the client lacks
    or has in another version: ``[[name, size, mtime]]`` with names as in the workspace
    run folder. ``have`` maps name -> [size, mtime]."""
    wd = os.path.join(rundir.run_path(root, run_id), "wd")
    result = []
    for top, inside in sorted(rundir.COLLECTED.items()):
        base = os.path.join(wd, *inside.split("/"))
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                rel = top + "/" + os.path.relpath(full, base).replace(os.sep, "/")
                known = have.get(rel)
                if known and int(known[0]) == st.st_size and int(known[1]) == int(st.st_mtime):
                    continue
                result.append([rel, st.st_size, int(st.st_mtime)])
    return result


def output_path(root: str, run_id: str, rel: str) -> str:
    """The file on the target for a collected name (see :func:`list_outputs`)."""
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or parts[0] not in rundir.COLLECTED:
        raise ValueError("bad output path %r" % rel)
    inside = rundir.COLLECTED[parts[0]].split("/")
    return os.path.join(rundir.run_path(root, run_id), "wd", *inside, *parts[1:])


def which_tool(root: str, name: str) -> str | None:
    """A tool the agent installed under ``<root>/bin``, else the one on PATH."""
    mine = os.path.join(root, "bin", name)
    if os.path.isfile(mine) and os.access(mine, os.X_OK):
        return mine
    return shutil.which(name)


def install_tool(root: str, name: str, key: str) -> str:
    """Install the stored object ``key`` as the executable ``<root>/bin/<name>``."""
    source = store.key_path(root, key)
    target = os.path.join(root, "bin", name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".tmp-%d" % os.getpid()
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return target


def envs_list(root: str, driver: str = "cli") -> list[dict[str, Any]]:
    """Prepared environments, and the Docker images built for environments (when Docker
    is usable here)."""
    found = envs.list_environments(root)
    if shutil.which("docker") or driver == "sdk":
        try:
            images = containers.list_images(containers.driver(driver), root)
        except (containers.ContainerError, ImportError):
            images = []
        for image in images:
            found.append(
                {
                    "hash": image["tag"].rpartition(":")[2],
                    "builder": "docker",
                    "describe": image["tag"],
                    "size_bytes": image.get("size"),
                    "created": image.get("created"),
                    "last_used": None,
                    "ready": True,
                }
            )
    return found


def docker_pull(
    driver: str, image: str, env_hash: str, auth: dict[str, str] | None = None
) -> dict[str, Any]:
    """Pull ``image`` with ``auth`` (kept in memory only) unless the environment's image
    or the base image is already here. Raises ValueError with the reason on failure."""
    import io

    d = containers.driver(driver)
    if d.image_exists(containers.image_tag(env_hash)) or d.image_exists(image):
        return {"pulled": False}
    log = io.BytesIO()
    try:
        d.pull(image, log, auth)
    except containers.ContainerError as exc:
        raise ValueError(str(exc)) from exc
    return {"pulled": True}


def docker_check(driver: str, gpu: bool) -> DockerCheck:
    try:
        return containers.check(containers.driver(driver), gpu)
    except (containers.ContainerError, ImportError) as exc:
        return {"ok": False, "error": "no usable Docker on the target: %s" % exc}


def hashes_in_use(root: str) -> list[str]:
    """Environment hashes of runs that have not ended (pruning must spare them)."""
    in_use = set()
    runs = os.path.join(root, "runs")
    for name in os.listdir(runs) if os.path.isdir(runs) else ():
        state = rundir.read_status(root, name)
        if state.get("status") in rundir.TERMINAL:
            continue
        try:
            with open(os.path.join(runs, name, "spec.json")) as fh:
                spec = json.load(fh)
        except (OSError, ValueError):
            continue
        in_use.add(str(spec.get("environment", {}).get("hash")))
    return sorted(in_use)


def envs_prune_plan(
    root: str, older_than_seconds: float | None = None, driver: str = "cli"
) -> list[dict[str, Any]]:
    """What :func:`envs_prune` would remove now (nothing is removed)."""
    keep = set(hashes_in_use(root))
    now = time.time()
    plan = []
    for env in envs_list(root, driver):
        if env["hash"] in keep or env.get("building"):
            continue
        if env["builder"] == "docker" and older_than_seconds is not None:
            continue  # images are pruned only without an age limit, as envs_prune does
        stamp = env.get("last_used") or env.get("created") or 0.0
        if older_than_seconds is not None and now - float(stamp) < older_than_seconds:
            continue
        plan.append(env)
    return plan


def envs_prune(
    root: str,
    older_than_seconds: float | None = None,
    driver: str = "cli",
    only: list[str] | None = None,
) -> list[str]:
    """Remove environments (and our Docker images) that no unfinished run uses; with
    ``only``, none but those hashes (what the user was shown and agreed to)."""
    keep = set(hashes_in_use(root))
    if only is not None:
        keep |= {e["hash"] for e in envs_list(root, driver)} - set(only)
    removed = envs.prune_environments(root, keep_hashes=keep, older_than_seconds=older_than_seconds)
    if older_than_seconds is None and (shutil.which("docker") or driver == "sdk"):
        with contextlib.suppress(containers.ContainerError, ImportError):
            removed += containers.prune_images(containers.driver(driver), keep, root)
    return removed


def discard_run(root: str, run_id: str) -> bool:
    """Delete an ended run's folder on this target (after its outputs were collected).
    A run that has not ended is left alone. Returns whether something was deleted."""
    if rundir.read_status(root, run_id).get("status") not in rundir.TERMINAL:
        return False
    path = rundir.run_path(root, run_id)
    if not os.path.isdir(path):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def operations(root: str) -> dict[str, Callable[..., Any]]:
    """The request/response operations by name, with their keyword arguments: what the
    server answers over SSH and what the local target calls in-process."""
    return {
        "hello": lambda: hello(root),
        "probe": lambda python=None: probe(root, python),
        "package_settings": lambda: envs.package_facts(),
        "pythons": lambda: envs.find_pythons(which_tool(root, "uv")),
        "missing": lambda rows, run_id=None: missing(root, rows, run_id),
        "start": lambda run_id, spec, rows=None, python=None, launch=LAUNCH_DETACHED, check=False: (
            start_run(root, run_id, rows, spec, python, launch, check)
        ),
        "status_as_written": lambda run_id: external.read_status(root, run_id),
        "status": lambda run_id: rundir.read_status(root, run_id),
        "cancel": lambda run_id: rundir.cancel_run(root, run_id),
        "discard": lambda run_id: discard_run(root, run_id),
        "which_tool": lambda name: which_tool(root, name),
        "install_tool": lambda name, key: install_tool(root, name, key),
        "envs_list": lambda driver="cli": envs_list(root, driver),
        "envs_prune": lambda older_than_seconds=None, driver="cli", only=None: envs_prune(
            root, older_than_seconds, driver, only
        ),
        "docker_check": lambda driver="cli", gpu=False: docker_check(driver, gpu),
        # Storage (storage.py): collection markers, the cap, garbage collection.
        "collected": lambda run_id: storage.mark_collected(root, run_id),
        "storage_gc": lambda **policy: storage.collect(root, **policy),
        "storage_cap": lambda **change: (
            storage.set_cap(root, change["cap_bytes"])
            if "cap_bytes" in change
            else {"cap_bytes": storage.read_cap(root)}
        ),
        "envs_prune_plan": lambda older_than_seconds=None, driver="cli": envs_prune_plan(
            root, older_than_seconds, driver
        ),
        "docker_pull": lambda image, env_hash, driver="cli", auth=None: docker_pull(
            driver, image, env_hash, auth
        ),
    }
