"""The ``docker`` node provider: a cluster's nodes are containers running sshd.

Every node is a container made from one image (which must have ``sshd`` and
``ssh-keygen``), on the local Docker engine or on one reached over SSH (``docker_host``,
e.g. ``ssh://user@bighost``). Containers use the host's network (``--network host``, never
a bridge): each node's sshd listens on ``127.0.0.1`` on its own port, and every node gets
its own hostname (``<cluster>-<n>``, which MPI needs), resolving on every node to a
loopback alias of its own (:func:`name_address`). Node-to-node traffic therefore goes
over the host's loopback (``lo``).

Host keys come through a trusted channel: they are read from the container's
``/etc/ssh/ssh_host_*_key.pub`` with ``docker exec``, never from what the port presents.
A node is ``running`` once those keys exist and its port answers with an SSH banner.

Ports: a node's port is picked when it is created, from :data:`PORT_RANGE` (below Linux'
ephemeral range, so outgoing connections do not take it meanwhile), starting at a random
place in the range (so that two creations at the same moment rarely collide), skipping
every port a ``targets`` container of any cluster on the engine already has (label
``targets.port``) and, on the local engine, every port something on this machine already
listens on. With
a remote engine only the labels are known: a port taken by another program there makes
sshd exit, and the node is reported ``failed`` with sshd's message (the cluster replaces
it).

A remote engine must be reached over SSH (``docker_host: ssh://[user@]host[:port]``, as the
docker CLI does, with ``~/.ssh/config`` and ``~/.ssh/known_hosts``). A node's address is
then ``127.0.0.1`` *of that host*, and the node carries that destination as its ``jump``:
connections to its sshd go through the engine's host (a ``direct-tcpip`` channel, like
OpenSSH's ProxyJump), so the nodes' sshd never listens beyond loopback. An engine reached
over ``tcp://`` on another machine is refused: its nodes could not be reached.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import itertools
import os
import random
import re
import shlex
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from targets.clusters.provider import Node, NodeProvider, NodeState, ProviderContext
from targets.errors import ConnectionFailed, TargetsError, UsageError

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

    from targets.clusters.model import ClusterSpec

__all__ = [
    "CLUSTER_LABEL",
    "PORT_LABEL",
    "PORT_RANGE",
    "DockerProvider",
    "DockerProviderOptions",
    "name_address",
]

CLUSTER_LABEL = "targets.cluster"
WORKSPACE_LABEL = "targets.workspace"
"""A short hash of the workspace that owns the cluster: two projects may each have a
cluster named ``pool`` on one engine without taking each other's nodes."""
PORT_LABEL = "targets.port"
INDEX_LABEL = "targets.node-index"
PORT_RANGE = range(22200, 23200)
"""Where nodes' sshd ports come from (below the ephemeral range 32768-60999)."""
READY_MARKER = "/run/targets-node-keys-ready"
HOST_KEYS = (
    ("ed25519", "/etc/ssh/ssh_host_ed25519_key"),
    ("ecdsa", "/etc/ssh/ssh_host_ecdsa_key"),
)
"""The host keys each node makes at start (unless the image has them) and sshd serves."""
LOG_TAIL_LINES = 15

_VOLUME = re.compile(r"^(?P<host>[^:]+):(?P<container>/[^:]*)(?::(?P<mode>ro|rw))?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]*$")


class DockerProviderOptions(BaseModel):
    """``provider_options`` of a docker-provider cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    image: str = Field(min_length=1)
    """The node image (must be in the engine already: nothing is pulled). It needs sshd
    (``/usr/sbin/sshd``, e.g. Debian's openssh-server) and ssh-keygen."""
    docker_host: str | None = None
    """The engine to use, as DOCKER_HOST (``unix:///var/run/docker.sock``,
    ``ssh://user@host``); default: the environment's DOCKER_HOST, else the local engine."""
    username: str = "root"
    """The login user on the nodes (must exist in the image)."""
    volumes: list[str] = Field(default_factory=list)
    """Mounts ``HOST:CONTAINER[:ro|rw]`` (host paths on the engine's machine), e.g. a
    wheel folder: ``/opt/wheels:/wheels:ro``."""
    environment: dict[str, str] = Field(default_factory=dict)
    """Variables for the nodes' login sessions (written to ``/etc/environment``)."""

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _USER.match(value):
            raise ValueError(f"{value!r} is not a unix user name (lowercase, digits, _ and -)")
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[str]) -> list[str]:
        for volume in value:
            match = _VOLUME.match(volume)
            if match is None or not match["host"].startswith("/"):
                raise ValueError(
                    f"volume {volume!r} must be HOST:CONTAINER[:ro|rw] with absolute paths, "
                    "e.g. /opt/wheels:/wheels:ro"
                )
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"environment variable name {name!r} is not valid")
            if "\n" in text:
                raise ValueError(f"environment variable {name} must be one line")
        return value


def _node_script(username: str, port: int, public_key: str, environment: dict[str, str]) -> str:
    """The container's command: host keys, the cluster's key, then sshd in the foreground."""
    env_lines = "".join(f"{name}={shlex.quote(text)}\n" for name, text in environment.items())
    lines = [
        "set -e",
        # Ed25519 and ECDSA only: `ssh-keygen -A` also makes an RSA key, which takes
        # seconds; sshd serves exactly these two (HostKey below).
        *(f"test -e {key} || ssh-keygen -q -t {kind} -N '' -f {key}" for kind, key in HOST_KEYS),
        f"user={shlex.quote(username)}",
        'home=$(getent passwd "$user" | cut -d: -f6)',
        'if [ -z "$home" ]; then echo "targets: no user $user in the image" >&2; exit 3; fi',
        'mkdir -p "$home/.ssh"',
        f'printf "%s\\n" {shlex.quote(public_key.strip())} >"$home/.ssh/authorized_keys"',
        'chown -R "$user" "$home/.ssh"',
        'chmod 700 "$home/.ssh"',
        'chmod 600 "$home/.ssh/authorized_keys"',
    ]
    if env_lines:
        lines.append(f"printf %s {shlex.quote(env_lines)} >>/etc/environment")
    lines += [
        "mkdir -p /run/sshd",
        f"touch {READY_MARKER}",
        f"exec /usr/sbin/sshd -D -e -p {port} -o ListenAddress=127.0.0.1"
        " -o PasswordAuthentication=no" + "".join(f" -o HostKey={key}" for _, key in HOST_KEYS),
    ]
    return "\n".join(lines)


def name_address(index: int) -> str:
    """The address node ``index``'s hostname resolves to: its own loopback alias
    (127.10.0.1, 127.10.0.2, ...), which Linux routes to ``lo`` like 127.0.0.1.

    Not 127.0.0.1 for all: OpenMPI treats a host whose name resolves to an address of a
    local interface as the local node, and would start every rank on node 0. sshd still
    listens on 127.0.0.1 (the nodes' ``address``); ssh configs map names to it."""
    return str(ipaddress.IPv4Address("127.10.0.1") + index)


def _created_at(raw: str) -> float:
    """Docker's ``Created`` (RFC 3339 with nanoseconds) as a Unix time."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", raw)
    if match is None:
        return 0.0
    fraction = (match[2] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}").timestamp()


def _ssh_banner(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4) == b"SSH-"
    except OSError:
        return False


def _port_is_free_here(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def docker_errors() -> type[Exception]:
    import docker

    return docker.errors.DockerException  # type: ignore[no-any-return]


@contextlib.contextmanager
def _nodes_lock() -> Iterator[None]:
    """One node creation at a time for this user (port choice and container create).

    Design choice: the lock is the user's own (in :func:`targets._private.runtime_dir`),
    not one file in ``/tmp`` for the machine: any user could create that name first and
    block everyone, or leave it unwritable. Two users creating nodes at the same moment
    may still pick the same free port; the node whose sshd cannot listen is reported
    ``failed`` with sshd's message and the cluster replaces it (see the module doc).
    """
    from targets._private import runtime_dir

    path = runtime_dir() / "docker-nodes.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DockerProvider(NodeProvider):
    """Nodes are containers running sshd on one Docker engine, on the host's network."""

    name: ClassVar[str] = "docker"
    description: ClassVar[str] = (
        "nodes are containers running sshd, on the local Docker engine or one over SSH"
    )
    options_model: ClassVar[type[BaseModel]] = DockerProviderOptions

    def __init__(
        self,
        cluster: str,
        spec: ClusterSpec,
        options: BaseModel,
        context: ProviderContext,
    ) -> None:
        if not isinstance(options, DockerProviderOptions):
            options = DockerProviderOptions.model_validate(options.model_dump())
        super().__init__(cluster, spec, options, context)
        self.opts: DockerProviderOptions = options
        self.owner = hashlib.sha256(str(context.state_dir.resolve()).encode()).hexdigest()[:6]
        self._client: DockerClient | None = None
        self._lock = threading.Lock()
        self._host_keys: dict[str, tuple[str, ...]] = {}
        """Host keys read once per container id (they do not change while it lives)."""

    # -- the engine -------------------------------------------------------------------

    @property
    def engine(self) -> str:
        """Where the engine is, for messages."""
        return self._engine_url or "the local socket"

    @property
    def _engine_url(self) -> str:
        """``docker_host``, else ``$DOCKER_HOST``, else "" (the local socket)."""
        return self.opts.docker_host or os.environ.get("DOCKER_HOST") or ""

    @property
    def local_engine(self) -> bool:
        """The engine runs on this machine (its nodes' loopback ports are ours)."""
        url = self._engine_url
        if not url or url.startswith(("unix://", "npipe://")):
            return True
        if url.startswith("tcp://"):
            host = url[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
            return host in ("localhost", "127.0.0.1", "::1")
        return False  # ssh:// reaches the engine's machine through SSH, even on loopback

    def _sdk_url(self) -> str:
        """The engine URL for the Docker SDK, which connects an ``ssh://`` URL without a
        port to port 22 whatever ``~/.ssh/config`` says: the configured port is added."""
        url, jump = self._engine_url, self.jump
        if jump is None:
            return url
        from targets.ssh.config import parse_destination, resolve_settings

        user, host, port = parse_destination(jump)
        if port is not None:
            return url
        settings = resolve_settings(jump)
        return f"ssh://{user + '@' if user else ''}{host}:{settings.port}"

    @property
    def jump(self) -> str | None:
        """The SSH destination of a remote engine's host (``user@host:port``): nodes are
        reached through it."""
        url = self._engine_url
        if not url.startswith("ssh://"):
            return None
        return url[len("ssh://") :].rstrip("/") or None

    def _engine_error(self, doing: str, exc: Exception) -> TargetsError:
        """An engine error as a targets error: the engine refused (APIError), or none
        answers (connection errors)."""
        import docker

        text = str(exc).strip()
        detail = text.splitlines()[-1] if text else type(exc).__name__
        if isinstance(exc, docker.errors.APIError) and exc.response is not None:
            explanation = exc.explanation or detail
            return TargetsError(f"the Docker engine at {self.engine} failed {doing}: {explanation}")
        return ConnectionFailed(
            f"no Docker engine answers at {self.engine} ({doing}: {detail})",
            hint="start the engine (dockerd), or set provider option docker_host to one "
            "that runs (e.g. ssh://user@host)",
        )

    def _start(self, command: str, **kwargs: Any) -> Container:
        """Create and start a container of the image. Never pulls (``containers.run``
        would pull a missing image): a missing image is a UsageError."""
        import docker

        try:
            container = self.client().containers.create(
                self.opts.image, ["sh", "-c", command], entrypoint=[], **kwargs
            )
        except docker.errors.ImageNotFound as exc:
            raise self._image_missing_error() from exc
        except docker.errors.DockerException as exc:
            raise self._engine_error(f"creating a container of {self.opts.image}", exc) from exc
        try:
            container.start()
        except docker.errors.DockerException as exc:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
            raise self._engine_error(f"starting {container.name}", exc) from exc
        return container

    def client(self) -> DockerClient:
        with self._lock:
            if self._client is None:
                import docker

                environment = dict(os.environ)
                if self._engine_url:
                    environment["DOCKER_HOST"] = self._sdk_url()
                try:
                    client = docker.from_env(
                        environment=environment, timeout=60, use_ssh_client=True
                    )
                    client.ping()
                except docker.errors.DockerException as exc:
                    raise self._engine_error("connecting", exc) from exc
                self._client = client
            return self._client

    def _containers(self) -> list[Container]:
        import docker

        try:
            return list(
                self.client().containers.list(
                    all=True,
                    ignore_removed=True,  # removed between listing and inspecting: gone
                    filters={
                        "label": [
                            f"{CLUSTER_LABEL}={self.cluster}",
                            f"{WORKSPACE_LABEL}={self.owner}",
                        ]
                    },
                )
            )
        except docker.errors.DockerException as exc:
            raise self._engine_error("listing containers", exc) from exc

    def _image_missing_error(self) -> UsageError:
        return UsageError(
            f"the node image {self.opts.image!r} is not in the Docker engine at {self.engine} "
            "(targets never pulls node images)",
            hint=f"build or load it there first (docker build -t {self.opts.image} ..., or "
            "docker load), or set provider option image to one that exists "
            "(docs/targets/clusters-docker.md shows a Dockerfile)",
        )

    # -- NodeProvider -------------------------------------------------------------------

    def check(self) -> None:
        """The image exists on the engine, has sshd and ssh-keygen, and has the login user."""
        import docker

        if not _HOSTNAME.match(self.hostname(self.spec.max_nodes - 1)):
            raise UsageError(
                f"the cluster name {self.cluster!r} does not make valid node hostnames "
                f"(like {self.hostname(0)!r})",
                hint="use lowercase letters, digits and '-' (at most 50 characters) for a "
                "docker-provider cluster",
            )
        if not self.local_engine and self.jump is None:
            raise UsageError(
                f"the Docker engine at {self.engine} is on another machine and not reached "
                "over SSH: its nodes' sshd (on that machine's loopback) could not be reached",
                hint="set provider option docker_host to ssh://USER@HOST (the nodes are "
                "then reached through that host)",
            )
        client = self.client()
        try:
            client.images.get(self.opts.image)
        except docker.errors.ImageNotFound as exc:
            raise self._image_missing_error() from exc
        except docker.errors.DockerException as exc:
            raise self._engine_error(f"inspecting image {self.opts.image}", exc) from exc
        user = shlex.quote(self.opts.username)
        probe = (
            "{ command -v sshd || test -x /usr/sbin/sshd; } >/dev/null || exit 3; "
            "command -v ssh-keygen >/dev/null || exit 4; "
            f"getent passwd {user} >/dev/null || exit 5"
        )
        if not self.local_engine:  # readiness is probed from inside (bash's /dev/tcp)
            probe += "; command -v bash >/dev/null && command -v timeout >/dev/null || exit 6"
        container = self._start(probe, network_mode="none")
        try:
            status = int(container.wait(timeout=60).get("StatusCode", -1))
        except docker.errors.DockerException as exc:
            raise self._engine_error(f"running image {self.opts.image}", exc) from exc
        except Exception as exc:  # requests' timeout: the probe hung
            raise UsageError(
                f"the node image {self.opts.image!r} did not run `sh -c` within 60 s"
            ) from exc
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        if status == 0:
            return
        fix = (
            "install openssh-server in it (Debian/Ubuntu: apt-get install -y "
            "openssh-server; docs/targets/clusters-docker.md shows a Dockerfile)"
        )
        what = {
            3: ("has no sshd (/usr/sbin/sshd)", fix),
            4: ("has no ssh-keygen", fix),
            5: (
                f"has no user {self.opts.username!r}",
                "create that user in the image, or set provider option username",
            ),
            6: (
                "has no bash or no timeout, which a remote engine's nodes need",
                "install bash and coreutils in it",
            ),
        }.get(status)
        if what is None:
            raise UsageError(
                f"the node image {self.opts.image!r} cannot run `sh -c` "
                f"(exit {status}): it needs a shell, sshd and ssh-keygen",
                hint=fix,
            )
        raise UsageError(f"the node image {self.opts.image!r} {what[0]}", hint=what[1])

    def list_nodes(self) -> list[Node]:
        containers = self._containers()
        nodes = [self._node(container) for container in containers]
        live = {c.id for c in containers}
        for gone in set(self._host_keys) - live:
            del self._host_keys[gone]
        return sorted(nodes, key=lambda n: self._index_of(n.id))

    def add_nodes(self, count: int) -> list[Node]:

        if count < 0:
            raise UsageError(f"cannot add {count} nodes")
        added: list[Node] = []
        client = self.client()
        with _nodes_lock():
            for _ in range(count):
                existing = self._containers()
                used = {self._index_of(c.name or "") for c in existing}
                index = next(i for i in range(len(used) + 1) if i not in used)
                port = self._free_port(client)
                container = self._start(
                    _node_script(
                        self.opts.username, port, self.context.public_key, self.opts.environment
                    ),
                    name=self.node_id(index),
                    hostname=self.hostname(index),
                    network_mode="host",
                    extra_hosts=self._extra_hosts(max(index + 1, len(used) + 1)),
                    labels={
                        CLUSTER_LABEL: self.cluster,
                        WORKSPACE_LABEL: self.owner,
                        PORT_LABEL: str(port),
                        INDEX_LABEL: str(index),
                    },
                    volumes=self._volumes(),
                    restart_policy={"Name": "no"},
                )
                container.reload()
                added.append(self._node(container))
        return added

    def remove_nodes(self, ids: list[str]) -> None:
        import docker

        client = self.client()
        for node_id in ids:
            if self._index_of(node_id) < 0:
                raise UsageError(
                    f"{node_id!r} is not a node of cluster {self.cluster!r}",
                    hint=f"node ids look like {self.node_id(0)}",
                )
            try:
                client.containers.get(node_id).remove(force=True)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in str(exc):
                    continue
                raise self._engine_error(f"removing {node_id}", exc) from exc
            except docker.errors.DockerException as exc:
                raise self._engine_error(f"removing {node_id}", exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None

    # -- helpers ------------------------------------------------------------------------

    def node_id(self, index: int) -> str:
        return f"targets-{self.cluster}-{self.owner}-{index}"

    def hostname(self, index: int) -> str:
        return f"{self.cluster}-{index}"

    def _index_of(self, node_id: str) -> int:
        prefix = f"targets-{self.cluster}-{self.owner}-"
        rest = node_id.lstrip("/")
        if rest.startswith(prefix) and rest[len(prefix) :].isdigit():
            return int(rest[len(prefix) :])
        return -1

    def _extra_hosts(self, count: int) -> dict[str, str]:
        """Every node name of the cluster (up to max_nodes, and nodes added later) resolves
        on every node to that node's own loopback alias (:func:`name_address`)."""
        count = max(count, self.spec.max_nodes)
        return {self.hostname(i): name_address(i) for i in range(count)}

    def _volumes(self) -> dict[str, dict[str, str]]:
        volumes: dict[str, dict[str, str]] = {}
        for volume in self.opts.volumes:
            match = _VOLUME.match(volume)
            assert match is not None  # validated by the options model
            volumes[match["host"]] = {"bind": match["container"], "mode": match["mode"] or "rw"}
        return volumes

    def _free_port(self, client: DockerClient) -> int:
        """A port no targets container on the engine has, free here for a local engine.
        Listing ignores containers removed meanwhile (another cluster's nodes going away
        must not fail this one's creation)."""
        import docker

        try:
            everyone = client.containers.list(
                all=True, filters={"label": PORT_LABEL}, ignore_removed=True
            )
        except docker.errors.DockerException as exc:
            raise self._engine_error("listing ports in use", exc) from exc
        taken = set()
        for container in everyone:
            with contextlib.suppress(ValueError):
                taken.add(int(container.labels.get(PORT_LABEL, "")))
        # From a random place in the range: two users (or test runs) creating nodes at the
        # same moment rarely pick the same port, where from the start they always would.
        start = random.randrange(len(PORT_RANGE))
        for port in itertools.chain(PORT_RANGE[start:], PORT_RANGE[:start]):
            if port in taken:
                continue
            if self.local_engine and not _port_is_free_here(port):
                continue
            return port
        raise TargetsError(
            f"no free port left for a node's sshd in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}",
            hint="remove unused clusters (targets delete NAME)",
        )

    def _node(self, container: Container) -> Node:
        name = (container.name or "").lstrip("/")
        labels = container.labels
        port = int(labels.get(PORT_LABEL, "22"))
        index = self._index_of(name)
        created = _created_at(str(container.attrs.get("Created", "")))
        base = Node(
            id=name,
            state=NodeState.CREATING,
            address="127.0.0.1",
            ssh_port=port,
            username=self.opts.username,
            hostname=str(container.attrs.get("Config", {}).get("Hostname") or "")
            or self.hostname(index),
            internal_address="127.0.0.1",
            network_interface="lo",
            created_at=created,
            jump=self.jump,
        )
        status = container.status
        if status == "created":
            return base
        if status == "removing":
            return base.with_state(NodeState.DELETING)
        if status != "running":
            return base.with_state(NodeState.FAILED, self._failure(container, status))
        keys = self._read_host_keys(container)
        if not keys:
            return base
        base = Node(**{**base.to_json(), "state": NodeState.CREATING, "host_keys": keys})
        if not self._answers(container, port):
            return base
        return base.with_state(NodeState.RUNNING)

    def _failure(self, container: Container, status: str) -> str:
        state = container.attrs.get("State", {})
        code = state.get("ExitCode")
        try:
            tail = container.logs(tail=LOG_TAIL_LINES).decode(errors="replace").strip()
        except docker_errors():  # the logs only enrich the message
            tail = ""
        what = f"container {status}" + (f" with exit code {code}" if code is not None else "")
        return f"{what}: {tail}" if tail else what

    def _read_host_keys(self, container: Container) -> tuple[str, ...]:
        cached = self._host_keys.get(container.id or "")
        if cached:
            return cached
        import docker

        try:
            result = container.exec_run(
                [
                    "sh",
                    "-c",
                    f"test -e {READY_MARKER} && cat "
                    + " ".join(f"{key}.pub" for _, key in HOST_KEYS),
                ],
                stdout=True,
                stderr=False,
            )
        except docker.errors.DockerException:
            return ()
        if result.exit_code != 0:
            return ()
        keys = tuple(
            " ".join(line.split()[:2])
            for line in result.output.decode(errors="replace").splitlines()
            if len(line.split()) >= 2
        )
        if keys:
            self._host_keys[container.id or ""] = keys
        return keys

    def _answers(self, container: Container, port: int) -> bool:
        """sshd answers with its banner: from here for a local engine, else from inside the
        container (bash's /dev/tcp) since 127.0.0.1 is the engine's host."""
        if self.local_engine:
            return _ssh_banner("127.0.0.1", port)
        import docker

        probe = f"exec 3<>/dev/tcp/127.0.0.1/{port} && head -c 4 <&3"
        try:
            result = container.exec_run(["timeout", "3", "bash", "-c", probe])
        except docker.errors.DockerException:
            return False
        return bool(result.exit_code == 0 and bytes(result.output).startswith(b"SSH-"))
