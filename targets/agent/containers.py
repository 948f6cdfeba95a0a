"""Docker environments on a target (target side): images per environment hash, and runs
in containers.

Stdlib only, Python >= 3.8. Two drivers implement the same small interface:

- :class:`CLIDriver` runs the ``docker`` command. The agent uses it on SSH targets.
  Design choice: the agent drives the docker CLI there and does not use the SDK's
  ``ssh://`` transport. The agent is already on the machine, the CLI is installed
  wherever the engine is, and the CLI honours the user's own docker configuration:
  contexts, credential helpers and ``DOCKER_HOST``. It also needs no second SSH
  connection and no Python packages on the target.
- ``docker_sdk.SDKDriver`` uses the Docker SDK for Python. The local target uses it,
  because the client's environment has the SDK.

An environment image is tagged ``targets-env:<hash>`` and labelled
``compute-targets.env=<hash>``. It is built once per target: a ``FROM`` the base image
(pulled only when absent, or built from ``base_dockerfile``), plus one layer that
installs the environment's packages into ``/opt/targets-env``. A run is a container
named ``targets-<run id>``. It runs as the agent's own user, so files in ``./outputs``
belong to that user. The run folder is mounted at the same path and used as the working
directory, and the network is ``host``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import IO, Any

from . import envs
from .protocol import DockerCheck, DockerRun

__all__ = [
    "ENV_PYTHON",
    "CLIDriver",
    "ContainerError",
    "check",
    "container_name",
    "driver",
    "ensure_image",
    "image_tag",
    "run_options",
]

LABEL = "compute-targets.env"
ROOT_LABEL = "compute-targets.root"
"""Which agent root built an image: listing and pruning see only their own root's
images, so two users (or two test sessions) on one engine never prune each other's."""


def root_id(root: str) -> str:
    import hashlib

    return hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:16]


ENV_PYTHON = "/opt/targets-env/bin/python"
_STEP_TIMEOUT = 3600.0


class ContainerError(Exception):
    """A Docker operation failed; the message says what to do."""


def image_tag(env_hash: str) -> str:
    return "targets-env:%s" % env_hash


def container_name(run_id: str) -> str:
    return "targets-" + re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)


# -- the CLI driver --------------------------------------------------------------------


class CLIDriver:
    """Docker through its command line."""

    name = "cli"

    def __init__(self, docker: str | None = None, config_dir: str | None = None) -> None:
        self.docker = docker or shutil.which("docker") or "docker"
        self.config_dir = config_dir

    def _argv(self, *args: str) -> list[str]:
        base = [self.docker]
        if self.config_dir:
            base += ["--config", self.config_dir]
        return base + list(args)

    def _run(
        self,
        *args: str,
        input: bytes | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                self._argv(*args),
                input=input,
                capture_output=True,
                timeout=timeout,
                env=env,
            )
        except FileNotFoundError as exc:
            raise ContainerError("docker is not installed on the target") from exc
        except subprocess.TimeoutExpired as exc:
            raise ContainerError(
                "docker %s did not answer within %ss" % (args[0], timeout)
            ) from exc

    def version(self) -> str:
        done = self._run("version", "--format", "{{.Server.Version}}", timeout=30)
        if done.returncode != 0:
            raise ContainerError(_first_error(done.stderr) or "the Docker engine does not answer")
        return done.stdout.decode().strip()

    def image_exists(self, tag: str) -> bool:
        return self._run("image", "inspect", tag, timeout=60).returncode == 0

    def pull(self, image: str, log: IO[bytes], auth: dict[str, str] | None = None) -> None:
        config = None
        try:
            driver = self
            if auth:
                # Credentials live only in a private temporary docker config for this pull.
                config = tempfile.mkdtemp(prefix="targets-docker-")
                os.chmod(config, 0o700)
                driver = CLIDriver(self.docker, config)
                done = driver._run(
                    "login",
                    "--username",
                    auth["username"],
                    "--password-stdin",
                    auth["address"],
                    input=auth["password"].encode(),
                )
                if done.returncode != 0:
                    raise ContainerError(
                        "login to %s as %s was refused: %s"
                        % (auth["address"], auth["username"], _first_error(done.stderr))
                    )
            code, tail = _stream(driver._argv("pull", image), log)
            if code != 0:
                raise ContainerError(
                    "could not pull %s: %s. Point base_image at an image this target can "
                    "pull (or load it with `docker load`), or give the registry's address "
                    "and credentials" % (image, tail[-1] if tail else "no output")
                )
        finally:
            if config:
                shutil.rmtree(config, ignore_errors=True)

    def build(self, context: str, tag: str, log: IO[bytes], labels: dict[str, str]) -> None:
        argv = self._argv("build", "--network", "host", "-t", tag)
        for key, value in sorted(labels.items()):
            argv += ["--label", "%s=%s" % (key, value)]
        code, tail = _stream([*argv, context], log, env=dict(os.environ, DOCKER_BUILDKIT="0"))
        if code != 0:
            raise ContainerError(
                "building the image %s failed:\n%s"
                % (tag, "\n".join("  " + line for line in tail[-15:]))
            )

    def images(self, root: str) -> list[dict[str, Any]]:
        done = self._run(
            "image",
            "ls",
            "--filter",
            "label=" + LABEL,
            "--filter",
            "label=%s=%s" % (ROOT_LABEL, root_id(root)),
            "--format",
            "{{json .}}",
        )
        if done.returncode != 0:
            return []
        result = []
        for line in done.stdout.decode().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            result.append(
                {
                    "tag": "%s:%s" % (item.get("Repository"), item.get("Tag")),
                    "size": item.get("Size"),
                    "created": item.get("CreatedAt"),
                }
            )
        return result

    def remove_image(self, tag: str) -> bool:
        return self._run("image", "rm", tag).returncode == 0

    def create_args(
        self, options: dict[str, Any], image: str, command: list[str], env_file: str
    ) -> list[str]:
        """``docker create`` arguments for the run's container. The variables come from
        ``env_file`` (never ``-e KEY=VALUE``: a command line is readable by every user of
        the machine in ``/proc/PID/cmdline``)."""
        argv = [
            "create",
            "--rm",
            "--name",
            options["name"],
            "--network",
            "host",
            "--user",
            options["user"],
            "-v",
            "%s:%s" % (options["workdir"], options["workdir"]),
            "-w",
            options["workdir"],
            "--init",
            "--env-file",
            env_file,
        ]
        for key in _inherited(options["environment"]):
            argv += ["-e", key]  # the name only: docker takes the value from its environment
        if options.get("shm_size"):
            argv += ["--shm-size", options["shm_size"]]
        if options.get("gpu"):
            argv += ["--gpus", "all"]
        argv += list(options.get("arguments") or [])
        return [*argv, image, *command]

    def remove_container(self, name: str) -> None:
        self._run("rm", "-f", name, timeout=60)

    def start(
        self, options: dict[str, Any], image: str, command: list[str], out: IO[bytes]
    ) -> _CLIRun:
        """Create the run's container, then start it attached; its output goes to ``out``
        as it is written.

        Design choice: ``docker create`` then ``docker start -a`` instead of ``docker
        run``. The variables travel in a file that only the agent's user can read, and
        ``create`` has read it once it returns, so the file is removed before the script
        starts (with ``docker run`` nothing tells when the file has been read). ``start
        -a`` streams the output, proxies signals, returns the container's exit code and,
        with ``--rm``, waits for the container's removal, as ``docker run --rm`` does.
        """
        environment = options["environment"]
        inherited = _inherited(environment)
        # mkstemp: 0600, in the run's folder (private to the agent's user).
        fd, env_file = tempfile.mkstemp(prefix=".env-", dir=os.path.dirname(options["workdir"]))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for key, value in sorted(environment.items()):
                    if key not in inherited:
                        fh.write("%s=%s\n" % (key, value))
            created = self._run(
                *self.create_args(options, image, command, env_file),
                timeout=300,
                env=dict(os.environ, **{key: environment[key] for key in inherited}),
            )
        finally:
            with contextlib.suppress(OSError):
                os.unlink(env_file)
        if created.returncode != 0:
            raise ContainerError(
                "docker could not create the container: %s" % _first_error(created.stderr)
            )
        proc = subprocess.Popen(
            self._argv("start", "--attach", options["name"]),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return _CLIRun(self, options["name"], proc)

    def container_exists(self, name: str) -> bool:
        return self._run("container", "inspect", name, timeout=30).returncode == 0


class _CLIRun:
    """A ``docker start --attach`` in progress, seen like a process by the supervisor."""

    def __init__(self, driver: CLIDriver, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.driver = driver
        self.name = name
        self.proc = proc
        self.pid = proc.pid

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)  # raises subprocess.TimeoutExpired

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stop(self) -> None:
        """Stop and remove the container, then end the docker client."""
        self.driver.remove_container(self.name)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def driver(name: str | None) -> Any:
    """The driver called ``name`` ("sdk" or "cli", the default)."""
    if name == "sdk":
        from .docker_sdk import SDKDriver  # needs the `docker` package: local target only

        return SDKDriver()
    return CLIDriver()


def _inherited(environment: dict[str, str]) -> list[str]:
    """Variables that an env file cannot hold (a line break in the value, a name that
    starts with ``#`` or holds a space): docker takes them by name from its own
    environment, which only the agent's user can read. A name the docker command itself
    reads (``DOCKER_*``, ``HOME``, ``PATH``) cannot travel so without changing what docker
    does: refused."""
    names = sorted(
        k
        for k, v in environment.items()
        if "\n" in v or "\r" in v or k[:1] == "#" or k != "".join(k.split())
    )
    for name in names:
        if name.startswith("DOCKER_") or name in ("HOME", "PATH"):
            raise ContainerError(
                "the value of the variable %s has a line break, which docker cannot pass "
                "to a container for this name: put the value in a file instead" % name
            )
    return names


def _first_error(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else ""


def _stream(
    argv: list[str], log: IO[bytes], env: dict[str, str] | None = None
) -> tuple[int, list[str]]:
    envs._log(log, "$ " + " ".join(argv))
    code, tail = envs._stream(argv, log, env or dict(os.environ))
    return code, list(tail)


# -- shared logic ----------------------------------------------------------------------


def check(driver: Any, gpu: bool) -> DockerCheck:
    """Is Docker usable here (and GPUs, when asked for)? Never raises."""
    try:
        version = driver.version()
    except ContainerError as exc:
        return {"ok": False, "error": "no usable Docker on the target: %s" % exc}
    result: DockerCheck = {"ok": True, "version": version}
    if gpu:
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return {
                "ok": False,
                "version": version,
                "error": "the run asks for a GPU (docker.gpu: true) but the target has "
                "none (no nvidia-smi)",
            }
    return result


def _install_script(spec: dict[str, Any], wheel_dirs: dict[str, str]) -> str:
    """Shell commands that install the spec's packages into /opt/targets-env (and make
    ``python`` name Python 3 where the image has only ``python3``, as job commands
    usually say ``python``)."""
    alias = (
        "command -v python >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1 || "
        'ln -s "$(command -v python3)" /usr/local/bin/python\n'
    )
    if not spec.get("managed"):
        return alias
    requirements, _from_conda = envs._requirements(spec)
    options = []
    for option in spec.get("pip_options") or []:
        flag, _, value = str(option).partition(" ")
        if flag == "--find-links" and value in wheel_dirs:
            value = wheel_dirs[value]
        options.append(flag + (" " + value if value else ""))
    quoted = " ".join(_sh_quote(r) for r in requirements)
    opts = " ".join(" ".join(_sh_quote(p) for p in o.split(" ", 1)) for o in options)
    lines = [
        "set -e",
        "PY=$(command -v python3 || command -v python)",
        '"$PY" -m venv /opt/targets-env',
    ]
    if requirements:
        lines.append(
            "/opt/targets-env/bin/python -m pip install --no-cache-dir "
            "--disable-pip-version-check %s %s" % (opts, quoted)
        )
    return alias + "\n".join(lines) + "\n"


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def ensure_image(
    driver: Any,
    spec: dict[str, Any],
    root: str,
    log: IO[bytes],
    *,
    auth: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The image for ``spec`` (``EnvironmentSpec.to_json()`` with ``hash`` and a
    ``docker`` section), built once: later calls with the same hash reuse it. Two runs
    preparing the same spec at once build it once (a lock per hash)."""
    docker = spec.get("docker") or {}
    env_hash = str(spec["hash"])
    tag = image_tag(env_hash)
    lock_dir = os.path.join(root, "envs")
    os.makedirs(lock_dir, exist_ok=True)
    import fcntl

    with open(os.path.join(lock_dir, env_hash + ".image.lock"), "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if driver.image_exists(tag):
            envs._log(log, "# reusing image %s" % tag)
            return {"image": tag, "reused": True, "python": _python(spec)}
        envs._log(log, "# preparing image %s" % tag)
        base = docker.get("base_image")
        build_dir = tempfile.mkdtemp(prefix="targets-build-")
        try:
            if docker.get("base_dockerfile"):
                base = "targets-base:%s" % env_hash
                if not driver.image_exists(base):
                    base_ctx = os.path.join(build_dir, "base")
                    os.makedirs(base_ctx)
                    with open(os.path.join(base_ctx, "Dockerfile"), "w") as fh:
                        fh.write(str(docker["base_dockerfile"]))
                    _image_modes(base_ctx)
                    driver.build(base_ctx, base, log, {})
            elif not driver.image_exists(base):
                driver.pull(base, log, auth)
            wheel_dirs: dict[str, str] = {}
            context = os.path.join(build_dir, "env")
            os.makedirs(context)
            for index, option in enumerate(spec.get("pip_options") or []):
                flag, _, value = str(option).partition(" ")
                if flag == "--find-links" and os.path.isdir(value):
                    # A local wheel folder of the target goes into the build context.
                    shutil.copytree(value, os.path.join(context, "wheels%d" % index))
                    wheel_dirs[value] = "/tmp/targets-env/wheels%d" % index
            with open(os.path.join(context, "install.sh"), "w") as fh:
                fh.write(_install_script(spec, wheel_dirs))
            with open(os.path.join(context, "Dockerfile"), "w") as fh:
                fh.write(
                    "FROM %s\nCOPY . /tmp/targets-env/\n"
                    "RUN sh /tmp/targets-env/install.sh && rm -rf /tmp/targets-env\n" % base
                )
            _image_modes(context)
            driver.build(context, tag, log, {LABEL: env_hash, ROOT_LABEL: root_id(root)})
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
        return {"image": tag, "reused": False, "python": _python(spec)}


def _image_modes(context: str) -> None:
    """Give the build context the usual modes (0755 folders, 0644 files, 0755 executables)
    whatever the agent's umask (0077): COPY keeps them, and the image's own user may not be
    root. The context stays private: it lives in a 0700 temporary folder."""
    for dirpath, _dirnames, filenames in os.walk(context):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)


def _python(spec: dict[str, Any]) -> str:
    if spec.get("managed"):
        return ENV_PYTHON
    return str(spec.get("interpreter") or "python3")


def run_options(
    run_id: str, workdir: str, environment: dict[str, str], docker_run: DockerRun
) -> dict[str, Any]:
    return {
        "name": container_name(run_id),
        "user": "%d:%d" % (os.getuid(), os.getgid()),
        "workdir": workdir,
        "environment": dict(environment, HOME="/tmp"),
        "shm_size": docker_run.get("shm_size"),
        "gpu": bool(docker_run.get("gpu")),
        "arguments": list(docker_run.get("arguments") or []),
    }


def list_images(driver: Any, root: str) -> list[dict[str, Any]]:
    try:
        return list(driver.images(root))
    except ContainerError:
        return []


def prune_images(driver: Any, keep: set[str], root: str) -> list[str]:
    removed = []
    for image in list_images(driver, root):
        env_hash = image["tag"].rpartition(":")[2]
        if env_hash in keep:
            continue
        if driver.remove_image(image["tag"]):
            removed.append(env_hash)
    return removed


def wait_gone(driver: Any, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.container_exists(name):
        time.sleep(0.2)
