"""The Docker SDK driver (the local target's), with the same interface as
:class:`targets.agent.containers.CLIDriver`.

This is the one module of the agent package that needs a third-party package
(``docker``, a core dependency of ``compute-targets``). It is used only by the local
target, whose supervisor runs in the client's environment, and it is left out of the
bundle shipped to remote machines.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from typing import IO, Any

from .containers import LABEL, ROOT_LABEL, ContainerError, root_id

__all__ = ["SDKDriver", "translate_arguments"]


def translate_arguments(arguments: list[str]) -> dict[str, Any]:
    """``docker run`` flags from ``environment.docker.arguments`` as SDK keywords.

    Supported: ``--ipc``, ``--privileged``, ``--cap-add``, ``--cap-drop``, ``-v/--volume``,
    ``--device``, ``--ulimit``, ``-e/--env``, ``--memory``, ``--cpus``, ``--security-opt``,
    ``--pid``. Anything else raises ContainerError naming it.
    """
    kwargs: dict[str, Any] = {}
    items = list(arguments)
    i = 0

    def value() -> str:
        nonlocal i
        if "=" in items[i] and items[i].startswith("--"):
            return items[i].split("=", 1)[1]
        i += 1
        if i >= len(items):
            raise ContainerError("docker argument %s needs a value" % items[i - 1])
        return items[i]

    while i < len(items):
        flag = items[i].split("=", 1)[0] if items[i].startswith("--") else items[i]
        if flag == "--ipc":
            kwargs["ipc_mode"] = value()
        elif flag == "--pid":
            kwargs["pid_mode"] = value()
        elif flag == "--privileged":
            kwargs["privileged"] = True
        elif flag in ("--cap-add", "--cap-drop"):
            kwargs.setdefault(flag[2:].replace("-", "_"), []).append(value())
        elif flag in ("-v", "--volume"):
            parts = value().split(":")
            if len(parts) < 2:
                raise ContainerError("docker volume %r must be HOST:CONTAINER[:MODE]" % parts[0])
            mode = parts[2] if len(parts) > 2 else "rw"
            kwargs.setdefault("volumes", {})[parts[0]] = {"bind": parts[1], "mode": mode}
        elif flag == "--device":
            kwargs.setdefault("devices", []).append(value())
        elif flag == "--ulimit":
            from docker.types import Ulimit

            name, _, limits = value().partition("=")
            soft, _, hard = limits.partition(":")
            kwargs.setdefault("ulimits", []).append(
                Ulimit(name=name, soft=int(soft), hard=int(hard or soft))
            )
        elif flag in ("-e", "--env"):
            key, _, val = value().partition("=")
            kwargs.setdefault("environment", {})[key] = val
        elif flag == "--memory":
            kwargs["mem_limit"] = value()
        elif flag == "--cpus":
            kwargs["nano_cpus"] = int(float(value()) * 1e9)
        elif flag == "--security-opt":
            kwargs.setdefault("security_opt", []).append(value())
        else:
            raise ContainerError(
                "docker argument %r is not supported on the local target (supported: --ipc, "
                "--pid, --privileged, --cap-add, --cap-drop, -v, --device, --ulimit, -e, "
                "--memory, --cpus, --security-opt)" % items[i]
            )
        i += 1
    return kwargs


class _SDKRun:
    """A container started through the SDK, seen like a process by the supervisor."""

    def __init__(self, container: Any, out: IO[bytes]) -> None:
        self.container = container
        self.pid = None
        self.returncode: int | None = None
        # Our own handle on the log file: the caller closes its handle once we started.
        own = os.fdopen(os.dup(out.fileno()), "ab", buffering=0)
        self._copier = threading.Thread(target=self._copy_logs, args=(own,), daemon=True)
        self._copier.start()

    def _copy_logs(self, out: IO[bytes]) -> None:
        try:
            for chunk in self.container.logs(stream=True, follow=True):
                out.write(chunk)
        except Exception:  # the container was removed under us: nothing more to copy
            return
        finally:
            out.close()

    def wait(self, timeout: float) -> int:
        import requests

        try:
            result = self.container.wait(timeout=timeout)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            raise subprocess.TimeoutExpired("container", timeout) from exc
        self._copier.join(10)
        self.returncode = int(result.get("StatusCode", 1))
        self._remove()
        return self.returncode

    def _remove(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.container.remove(force=True)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.container.stop(timeout=10)
        try:
            result = self.container.wait(timeout=30)
            self.returncode = int(result.get("StatusCode", 137))
        except Exception:
            self.returncode = 137
        self._copier.join(10)
        self._remove()


class SDKDriver:
    """Docker through the Docker SDK for Python (``docker.from_env()``)."""

    name = "sdk"

    def __init__(self) -> None:
        import docker

        self._docker = docker
        try:
            self.client = docker.from_env(timeout=120)
        except docker.errors.DockerException as exc:
            raise ContainerError("the Docker engine does not answer: %s" % exc) from exc

    def version(self) -> str:
        try:
            return str(self.client.version().get("Version"))
        except self._docker.errors.DockerException as exc:
            raise ContainerError("the Docker engine does not answer: %s" % exc) from exc

    def image_exists(self, tag: str) -> bool:
        try:
            self.client.images.get(tag)
        except self._docker.errors.ImageNotFound:
            return False
        return True

    def pull(self, image: str, log: IO[bytes], auth: dict[str, str] | None = None) -> None:
        repository, _, tag = (
            image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        )
        config = {"username": auth["username"], "password": auth["password"]} if auth else None
        try:
            for line in self.client.api.pull(
                repository, tag=tag, stream=True, decode=True, auth_config=config
            ):
                status = line.get("status") or line.get("error")
                if status:
                    log.write((status + "\n").encode())
                if line.get("error"):
                    raise ContainerError("could not pull %s: %s" % (image, line["error"]))
        except self._docker.errors.APIError as exc:
            raise ContainerError(
                "could not pull %s: %s. Point base_image at an image this machine can pull "
                "(or load it with `docker load`)" % (image, exc.explanation or exc)
            ) from exc

    def build(self, context: str, tag: str, log: IO[bytes], labels: dict[str, str]) -> None:
        try:
            for chunk in self.client.api.build(
                path=context,
                tag=tag,
                labels=labels,
                rm=True,
                forcerm=True,
                decode=True,
                network_mode="host",
            ):
                if "stream" in chunk:
                    log.write(chunk["stream"].encode("utf-8", "replace"))
                if "error" in chunk:
                    raise ContainerError(
                        "building the image %s failed: %s" % (tag, chunk["error"].strip())
                    )
        except self._docker.errors.APIError as exc:
            raise ContainerError("building the image %s failed: %s" % (tag, exc)) from exc

    def images(self, root: str) -> list[dict[str, Any]]:
        result = []
        mine = ["%s" % LABEL, "%s=%s" % (ROOT_LABEL, root_id(root))]
        for image in self.client.images.list(filters={"label": mine}):
            for tag in image.tags:
                result.append(
                    {
                        "tag": tag,
                        "size": image.attrs.get("Size"),
                        "created": image.attrs.get("Created"),
                    }
                )
        return result

    def remove_image(self, tag: str) -> bool:
        try:
            self.client.images.remove(tag)
        except self._docker.errors.APIError:
            return False
        return True

    def start(
        self, options: dict[str, Any], image: str, command: list[str], out: IO[bytes]
    ) -> _SDKRun:
        kwargs = translate_arguments(list(options.get("arguments") or []))
        environment = dict(options["environment"])
        environment.update(kwargs.pop("environment", {}))
        volumes = {options["workdir"]: {"bind": options["workdir"], "mode": "rw"}}
        volumes.update(kwargs.pop("volumes", {}))
        if options.get("gpu"):
            kwargs["device_requests"] = [
                self._docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
            ]
        if options.get("shm_size"):
            kwargs["shm_size"] = options["shm_size"]
        try:
            container = self.client.containers.run(
                image,
                command,
                detach=True,
                name=options["name"],
                user=options["user"],
                network_mode="host",
                volumes=volumes,
                working_dir=options["workdir"],
                environment=environment,
                init=True,
                **kwargs,
            )
        except self._docker.errors.APIError as exc:
            raise ContainerError(
                "could not start the container: %s" % (exc.explanation or exc)
            ) from exc
        return _SDKRun(container, out)

    def remove_container(self, name: str) -> None:
        with contextlib.suppress(self._docker.errors.NotFound):
            self.client.containers.get(name).remove(force=True)

    def container_exists(self, name: str) -> bool:
        try:
            self.client.containers.get(name)
        except self._docker.errors.NotFound:
            return False
        return True
