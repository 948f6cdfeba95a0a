"""The agent protocol: the one definition of what the client and the agent exchange.

Stdlib only, Python >= 3.8 (shipped to targets with the agent). Imported on both sides:
the client (``targets.compute``), the agent and its supervisor, the cluster reconciler,
the Databricks driver and plugins, so mypy checks the boundary.

What lives here:

- the run statuses (the strings of ``status.json`` and of :class:`targets.compute.RunStatus`);
- the object-key rule of the content-addressed store (a digest, ``.x`` for executables);
- the shapes of what crosses the wire (TypedDicts).
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Sequence, TypedDict  # noqa: UP035 - Python 3.8

QUEUED = "Queued"
PREPARING = "Preparing"
RUNNING = "Running"
FINALIZING = "Finalizing"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"

STATUSES = (QUEUED, PREPARING, RUNNING, FINALIZING, COMPLETED, FAILED, CANCELED)
"""Every run status, in the order a run goes through them."""
TERMINAL = (COMPLETED, FAILED, CANCELED)
"""The statuses a run ends in."""
UNKNOWN = "Unknown"
"""What the agent reports for a run it does not have (not a run status)."""

_EXECUTABLE = ".x"
_HEX = frozenset("0123456789abcdef")
DIGEST_LENGTH = 64
"""A sha256 in hex."""


def object_key(digest: str, executable: bool) -> str:
    """The store key of a file: its sha256, with ``.x`` when it is executable (a file's
    mode is part of its identity)."""
    return digest + (_EXECUTABLE if executable else "")


def mode_key(digest: str, mode: int) -> str:
    """:func:`object_key` for a file of permission bits ``mode``."""
    return object_key(digest, bool(mode & 0o111))


def parse_object_key(key: str) -> tuple[str, bool]:
    """``(digest, executable)`` of a key; ValueError when it is not a key (exactly 64
    lowercase hex digits, then nothing or ``.x``)."""
    digest, rest = key[:DIGEST_LENGTH], key[DIGEST_LENGTH:]
    if len(digest) != DIGEST_LENGTH or rest not in ("", _EXECUTABLE) or not _HEX.issuperset(digest):
        raise ValueError("bad object key %r" % (key,))
    return digest, rest == _EXECUTABLE


def check_object_key(key: object) -> str:
    """``key`` when it is a store key; ValueError naming the key and the rule otherwise.
    What the agent calls on every key a client sends before it touches the store."""
    if not isinstance(key, str):
        raise ValueError("bad object key %r: expected a string" % (key,))
    try:
        parse_object_key(key)
    except ValueError:
        raise ValueError(
            "bad object key %r: a key is a sha256 in lowercase hex (64 characters), "
            "with %r appended for an executable file" % (key[:200], _EXECUTABLE)
        ) from None
    return key


# -- what crosses the wire ------------------------------------------------------------------
#
# TypedDicts are plain dicts at run time (JSON as it is); mypy checks their keys and types
# on both sides. Annotations are strings (``from __future__ import annotations``), so the
# ``X | None`` spelling costs nothing on Python 3.8.


class ManifestRow(NamedTuple):
    """One file of a snapshot's manifest. On the wire a list ``[path, size, mode, digest,
    link]`` (a NamedTuple is a tuple, so ``json.dumps`` writes exactly that)."""

    path: str
    """Relative, ``/``-separated."""
    size: int
    mode: int
    """Permission bits; any execute bit makes the object ``.x`` (see :func:`mode_key`)."""
    digest: str
    """sha256 of the content (empty for a symbolic link)."""
    link: str | None
    """The target of a symbolic link, else None."""

    @property
    def key(self) -> str:
        """The store key of this file's content."""
        return mode_key(self.digest, self.mode)

    @classmethod
    def from_wire(cls, raw: Sequence[Any]) -> ManifestRow:
        """A row from its JSON list; ValueError naming the row when it is malformed."""
        if isinstance(raw, cls):
            return raw
        if not isinstance(raw, (list, tuple)) or len(raw) != 5:
            raise ValueError(
                "bad manifest row %r: expected [path, size, mode, digest, link]" % (raw,)
            )
        path, size, mode, digest, link = raw
        if (
            not isinstance(path, str)
            or type(size) is not int
            or type(mode) is not int
            or not isinstance(digest, str)
            or not (link is None or isinstance(link, str))
        ):
            raise ValueError(
                "bad manifest row %r: expected [path, size, mode, digest, link]" % (raw,)
            )
        return cls(path, size, mode, digest, link)

    def to_wire(self) -> list[Any]:
        return [self.path, self.size, self.mode, self.digest, self.link]


def manifest_rows(raw: Iterable[Sequence[Any]]) -> list[ManifestRow]:
    """:meth:`ManifestRow.from_wire` of every row."""
    return [ManifestRow.from_wire(row) for row in raw]


class Hello(TypedDict):
    """The agent's first frame on a connection, and the ``hello`` operation's reply."""

    agent: str
    root: str
    python: str
    python_version: str
    platform: str
    """``<system>-<machine>``, lower case (``linux-x86_64``)."""


class Entry(TypedDict, total=False):
    """What runs: ``script`` (with ``arguments``) or ``command`` (a list is an argv, a
    string goes to ``/bin/sh -c``)."""

    script: str
    arguments: list[str]
    command: str | list[str] | None


class SparkPart(TypedDict):
    configuration: dict[str, Any]
    packages: list[str]
    repositories: list[str]
    deploy_mode: str | None


class DockerRun(TypedDict):
    shm_size: str | None
    arguments: list[str]
    gpu: bool


class Peer(TypedDict):
    """One node of a distributed run, as the others reach it."""

    hostname: str
    """The node's alias in the run's SSH config and hostfiles."""
    peer_address: str
    ssh_port: int
    username: str


class SshPart(TypedDict):
    """What mpirun on node 0 needs to reach the other nodes."""

    config: str
    known_hosts: str
    private_key: str | None


class _DistributedRequired(TypedDict):
    backend: str
    """``pytorch``, ``mpi`` or ``tensorflow``."""
    node_rank: int
    node_count: int
    process_count_per_node: int
    world_size: int
    role: str
    """``worker``, ``ps`` (tensorflow), ``launcher`` or ``standby`` (mpi)."""
    hostname: str
    peers: list[Peer]
    master_addr: str
    master_port: int
    network_interface: str | None
    communication_backend: str | None


class DistributedPart(_DistributedRequired, total=False):
    """One node's part of a multi-node run (``spec["distributed"]``), planned by the
    client (:func:`targets.clusters.distributed.plan`), launched by the agent
    (:mod:`.distributed`)."""

    ssh: SshPart
    """mpi, node 0 of a multi-node run only."""
    tf_config: str
    """tensorflow only: the node's ``TF_CONFIG``."""


class Activation(TypedDict, total=False):
    """How a user-managed run's interpreter looks activated (decided by the client, see
    ``targets.compute._python``)."""

    set: dict[str, str]
    unset: list[str]
    path_drop: list[str]
    path_first: str | None


class _RunSpecRequired(TypedDict):
    run_id: str
    experiment: str | None
    entry: Entry
    environment: dict[str, Any]
    """``EnvironmentSpec.to_json()`` plus its ``hash`` (read by :mod:`.envs` and
    :mod:`.containers`); a local user-managed run adds ``interpreter``."""
    environment_variables: dict[str, str]
    max_run_duration_seconds: float | None
    framework: str
    spark: SparkPart
    default_python: str | None
    uv: str | None
    prepare_timeout_seconds: float
    docker_run: DockerRun
    distributed: DistributedPart | None


class RunSpec(_RunSpecRequired, total=False):
    """``spec.json``: what the supervisor runs, in which environment. Written by the
    client (``targets.compute._agent.run_spec``), read by the supervisor."""

    docker_driver: str
    """``cli`` (the docker command) or ``sdk``."""
    activate: Activation
    _spark_plan: dict[str, Any]
    """Kept in memory by the supervisor (:mod:`.spark`), never sent."""


class StatusRecord(TypedDict, total=False):
    """``status.json`` (the ``status`` and ``status_as_written`` replies). Only the
    supervisor writes it, merging fields as the run goes (``rundir.write_status``)."""

    status: str
    """One of :data:`STATUSES`, or :data:`UNKNOWN` for a run the target does not have."""
    message: str | None
    exit_code: int | None
    phases: dict[str, float]
    """Seconds spent in each phase (``preparing``, ``running``)."""
    started_at: float
    running_at: float
    ended_at: float
    supervisor_pid: int
    supervisor_identity: str | None
    pid: int | None
    pid_identity: str | None
    updated_at: float
    orphans_stopped: int
    """Processes of the run ended after its supervisor died (see :mod:`.orphans`)."""


class LogChunkMeta(TypedDict):
    """One entry of a ``logs`` reply; the bytes follow in the payload, in order."""

    name: str
    """``prepare.log``, ``driver.log`` or ``logs/...``."""
    offset: int
    size: int


class WaitReply(TypedDict):
    """The reply of ``wait``: the run's status and its new log bytes (entries as in a
    ``logs`` reply, the bytes in the payload). ``complete``: the bytes reach the end of
    every log (no size cap cut them short)."""

    status: StatusRecord
    logs: list[LogChunkMeta]
    complete: bool


class UploadMeta(TypedDict, total=False):
    """The header of one object in a ``put`` stream; ``{"end": true}`` closes it."""

    key: str
    size: int
    z: bool
    """The data is one zlib stream."""
    end: bool


class ExternalCommand(TypedDict):
    """The reply of ``start`` with ``launch="external"``: how to run the supervisor in
    the foreground, for a scheduler (sbatch, qsub ...) to start."""

    run_dir: str
    argv: list[str]
    env: dict[str, str]
    """To add to the environment it runs in (the caller passes the user's own
    ``PYTHONPATH`` on as ``TARGETS_USER_PYTHONPATH``)."""


class MissingObjects(TypedDict):
    """The reply of a ``start`` with ``check``: the store lacks these objects, so nothing
    was started. The agent keeps the run's rows: after sending the objects, the client
    asks to ``start`` again without them."""

    missing: list[str]


class PythonFound(TypedDict):
    """One interpreter of a ``pythons`` reply."""

    version: str
    """``3.8.18``."""
    path: str
    source: str
    """``path``, ``pyenv`` or ``uv``."""


class PythonsFound(TypedDict):
    """The ``pythons`` reply: the interpreters an environment can be built from
    (``targets.agent.envs.find_pythons``), newest first, and the conda (or mamba,
    micromamba) that installs any version itself, if there is one."""

    pythons: list[PythonFound]
    conda: str | None


class DockerCheck(TypedDict, total=False):
    """The ``docker_check`` reply: is Docker (and a GPU, when asked for) usable?"""

    ok: bool
    version: str
    error: str


LAUNCH_DETACHED = "detached"
LAUNCH_EXTERNAL = "external"
"""The ``launch`` argument of the ``start`` operation."""
