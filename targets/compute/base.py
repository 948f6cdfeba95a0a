"""The contract every target kind implements.

A kind is a subclass of :class:`ComputeTarget` registered under the entry-point group
``targets.compute``. It declares:

- ``kind``: its name (``local``, ``vm``, ``slurm``, ...), and ``aliases``;
- ``options_model``: a pydantic model (``extra="forbid"``) of what ``targets attach`` takes;
- ``capabilities``: a frozenset of :class:`Capability` values;

and implements five primitives: :meth:`probe`, :meth:`submit`, :meth:`status`,
:meth:`read_logs` and :meth:`fetch_outputs` (plus :meth:`cancel` when it declares
``Capability.CANCEL``). Optionally :meth:`wait_news`: block until a run has news (new
log bytes, a new status, its end), so that followers notice them without polling.

Orchestration -- waiting, streaming with back-off, Ctrl-C, timeouts, ledger updates,
collecting outputs at the end -- lives in :mod:`targets.runs`, outside the kinds, so a
plugin cannot get it wrong.

Lifecycle: constructing a target opens nothing. The first primitive that needs a
connection opens it; :meth:`close` is idempotent; targets are context managers.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from targets.agent import protocol
from targets.agent.protocol import DistributedPart, Entry
from targets.errors import UnsupportedOperation

if TYPE_CHECKING:
    from targets.environments import EnvironmentSpec
    from targets.runconfig.model import RunConfiguration
    from targets.snapshot import Snapshot

__all__ = [
    "TERMINAL_STATUSES",
    "Capability",
    "ComputeTarget",
    "HandleData",
    "LogChunk",
    "NoOptions",
    "Progress",
    "RunHandle",
    "RunState",
    "RunStatus",
    "SubmitRequest",
    "TargetContext",
    "no_progress",
]


class Capability(str, enum.Enum):
    """What a kind can do. Core code checks these; it never checks a concrete kind."""

    CONDA = "conda"
    VIRTUALENV = "virtualenv"
    DOCKER = "docker"
    SPARK = "spark"
    MULTI_NODE = "multi-node"
    GPU = "gpu"
    CANCEL = "cancel"
    LIVE_LOGS = "live-logs"

    def __str__(self) -> str:
        return self.value


class RunStatus(str, enum.Enum):
    """A run's status. The strings are the agent protocol's (:mod:`targets.agent.protocol`)."""

    QUEUED = protocol.QUEUED
    PREPARING = protocol.PREPARING
    RUNNING = protocol.RUNNING
    FINALIZING = protocol.FINALIZING
    COMPLETED = protocol.COMPLETED
    FAILED = protocol.FAILED
    CANCELED = protocol.CANCELED

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})


HandleData = Mapping[str, Any]
"""The ``data`` of a :class:`RunHandle`: a JSON object whose keys belong to its kind."""


class NoOptions(BaseModel):
    """The options model of a kind that takes no attach options."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class RunHandle:
    """Where a submitted run lives on its target. JSON-serialisable so any later process
    can stream, cancel or download it."""

    kind: str
    target: str
    run_id: str
    data: HandleData = field(default_factory=dict)
    """What the kind keeps to find the run again (ids, folders): JSON-able, owned by the
    kind that made the handle, which reads it back through a typed accessor of its own
    (e.g. :func:`targets.compute.agent_handle_data`). Any key may be missing in a handle
    an older version wrote, so readers must not assume one."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "run_id": self.run_id,
            "data": dict(self.data),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunHandle:
        return cls(
            kind=raw["kind"],
            target=raw["target"],
            run_id=raw["run_id"],
            data=dict(raw.get("data") or {}),
        )


@dataclass(frozen=True, slots=True)
class RunState:
    """A run's state as its target reports it."""

    status: RunStatus
    exit_code: int | None = None
    message: str | None = None
    phases: Mapping[str, float] = field(default_factory=dict)
    """Seconds spent in each phase so far (``preparing``, ``running``, ...)."""
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes of one log file starting at ``offset``. ``name`` is relative to ``logs/``."""

    name: str
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """Everything a kind needs to start one run."""

    run_id: str
    config: RunConfiguration
    snapshot: Snapshot
    environment: EnvironmentSpec
    experiment: str | None = None
    distributed: DistributedPart | None = None
    """This node's part of a multi-node run (see :mod:`targets.clusters.distributed`):
    backend, node rank, the peers, the rendezvous. ``None`` for a single-node run. Its
    shape is the agent protocol's (:class:`targets.agent.protocol.DistributedPart`)."""

    def entry(self) -> Entry:
        """What runs: ``{"script", "arguments"}`` or ``{"command"}``."""
        if self.config.script:
            return {"script": self.config.script, "arguments": list(self.config.arguments)}
        return {"command": self.config.command}

    def environment_variables(self) -> dict[str, str]:
        """The run's variables: the environment's, then the runconfig's (which win)."""
        variables = dict(self.config.environment.environment_variables)
        variables.update(self.config.environment_variables)
        return variables


Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: kinds call it during long work (upload, build)."""


def no_progress(phase: str, done: int, total: int) -> None:
    """The :data:`Progress` that reports nothing: the default of ``submit(..., progress=)``
    (an override of ``submit`` uses it too, rather than defining its own)."""
    return None


_no_progress = no_progress  # the old private name, kept for plugins written against it


def _no_secret(name: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class TargetContext:
    """What the workspace lends a target: a folder for the kind's own state (e.g. the
    ``known_hosts`` of SSH kinds), late resolution of the target's secrets by name, and
    whether an unknown SSH host key may be accepted (``True``, ``False``, or a callable
    ``(host, key_type, fingerprint) -> bool`` that asks the user)."""

    state_dir: Path
    secret: Callable[[str], str | None] = _no_secret
    accept_host_key: bool | Callable[[str, str, str], bool] = False
    workspace: Path | None = None
    """The root of the workspace the target is attached in (None for a target made by
    hand); a later process can open the same target from it (e.g. to share its SSH
    connection between commands)."""


class ComputeTarget(ABC):
    """Base class of every target kind. See the module docstring for the contract."""

    kind: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    options_model: ClassVar[type[BaseModel]] = NoOptions
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    secret_names: ClassVar[tuple[str, ...]] = ()
    """Secrets the kind takes at attach, each as ``--<name>-stdin`` (e.g. ``password``).
    They go to the keyring, never to ``targets.yml``; read them with
    ``self.context.secret(name)``."""

    def __init__(
        self, name: str, options: BaseModel | None = None, context: TargetContext | None = None
    ) -> None:
        """Create a handle on an attached target. Does no I/O."""
        self.name = name
        self.options = options if options is not None else self.options_model()
        self.context = context or TargetContext(state_dir=Path.cwd() / ".targets")

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - optional hook, idempotent by contract
        """Release connections. Idempotent."""

    def __enter__(self) -> ComputeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- primitives ------------------------------------------------------------------

    def probe(self) -> dict[str, Any]:
        """Connect once and return facts about the target (OS, Python, cores, ...).

        Called by ``targets attach``; the result is stored and shown by ``targets show``.
        Raises a :class:`~targets.errors.TargetsError` when the target cannot be used.
        """
        return {}

    @abstractmethod
    def submit(self, request: SubmitRequest, progress: Progress = no_progress) -> RunHandle:
        """Ship the snapshot, prepare the environment (or arrange for it to be prepared
        by the detached run) and start the run detached. Returns once the run is started;
        never waits for it to finish."""

    @abstractmethod
    def status(self, handle: RunHandle) -> RunState:
        """The run's current state. Cheap; called in a polling loop."""

    @abstractmethod
    def read_logs(self, handle: RunHandle, offsets: Mapping[str, int]) -> list[LogChunk]:
        """New log bytes since ``offsets`` (file name -> byte offset; a file missing from
        ``offsets`` starts at 0). Returns an empty list when nothing is new."""

    def wait_news(
        self, handle: RunHandle, offsets: Mapping[str, int], known: str | None, timeout: float
    ) -> tuple[RunState, list[LogChunk]] | None:
        """Block at most ``timeout`` s until the run has news -- log bytes beyond
        ``offsets`` (as in :meth:`read_logs`), a status other than ``known`` (a
        :class:`RunStatus` value), or its end -- and return its state and the new chunks.
        On timeout, return the state and no chunks.

        ``None``: this kind cannot wait; the caller polls :meth:`status` and
        :meth:`read_logs` (the default). A kind that waits reports an end, as
        :meth:`status` does, only once its logs are complete, and keeps each wait short
        (callers pass about a second) so that Ctrl-C stops a follower promptly. The
        chunks of one answer may stop short of the end of a log (a size cap): the caller
        asks again with the new offsets."""
        return None

    @abstractmethod
    def fetch_outputs(self, handle: RunHandle, dest: Path) -> None:
        """Copy the run's ``outputs/`` and ``logs/`` into ``dest`` (the run's folder in the
        workspace). Idempotent; safe to call on a run that is still going (gets what is
        there so far)."""

    def cancel(self, handle: RunHandle) -> None:
        """Stop the run and its whole process tree. Idempotent."""
        raise UnsupportedOperation(f"target kind {self.kind!r} cannot cancel runs")

    def discard(self, handle: RunHandle) -> None:  # noqa: B027 - optional, no-op by default
        """Free what an ended (and collected) run keeps on the target. Idempotent."""

    def mark_collected(self, handle: RunHandle) -> None:  # noqa: B027 - optional, no-op
        """Tell the target that the ended run's logs and outputs are safe in the workspace,
        so that its storage cap may remove the run's folder there. Idempotent."""

    def collect_garbage(
        self,
        *,
        collected: Sequence[str] = (),
        keep_days: float | None = None,
        max_size: int | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Remove the folders of collected runs and the stored files no kept run needs;
        return what went (see :mod:`targets.gc`, which calls it)."""
        raise UnsupportedOperation(f"target kind {self.kind!r} keeps no storage to collect")

    def set_storage_cap(self, cap_bytes: int | None) -> int | None:
        """Set the size above which the target removes its oldest collected runs by
        itself (None: no cap). Returns the cap now in force."""
        raise UnsupportedOperation(f"target kind {self.kind!r} keeps no storage to cap")

    def environments(self) -> list[dict[str, Any]]:
        """Environments prepared on this target (hash, builder, size, last use)."""
        raise UnsupportedOperation(f"target kind {self.kind!r} cannot list environments")

    def prunable_environments(
        self, *, older_than_seconds: float | None = None
    ) -> list[dict[str, Any]]:
        """The environments :meth:`prune_environments` would remove now. Removes nothing."""
        raise UnsupportedOperation(f"target kind {self.kind!r} cannot prune environments")

    def prune_environments(
        self, *, older_than_seconds: float | None = None, only: Sequence[str] | None = None
    ) -> list[str]:
        """Remove prepared environments (not in use); with ``only``, none but those
        hashes. Returns the removed hashes."""
        raise UnsupportedOperation(f"target kind {self.kind!r} cannot prune environments")

    def check_request(self, config: RunConfiguration) -> None:  # noqa: B027 - optional
        """Refuse a run this target cannot do, before anything is written or sent (raise a
        UsageError naming the problem and the fix). Called by ``submit_run``."""

    def describe(self) -> dict[str, Any]:
        """Live details for ``targets show`` (a cluster's nodes and queue). Optional; the
        default does no I/O and returns nothing."""
        return {}

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    # -- hooks of the library's operations (targets.attachment, the CLI's list/show) ----

    attachable: ClassVar[bool] = True
    """False for a kind whose targets are made (``targets create``, e.g. a managed
    cluster), not attached: :func:`targets.attachment.attach_target` refuses it."""

    @classmethod
    def summary(cls, options: Mapping[str, Any]) -> str:
        """Where a target of this kind is, in a few words, for ``targets list``: made from
        its stored options, without I/O. The default is the first option, in the order of
        the options model, that is set to a non-empty string (a host, an address)."""
        for name in cls.options_model.model_fields:
            value = options.get(name)
            if isinstance(value, str) and value:
                return value
        return ""

    @classmethod
    def shown_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The settings ``targets show`` prints, from the stored options (which leave out
        defaults). The default prints them as stored."""
        return dict(options)

    def on_detach(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called by :func:`targets.attachment.detach_target` before the target is
        forgotten: release what outlives a command (a shared connection). Best effort:
        a :class:`~targets.errors.TargetsError` raised here does not stop the detach."""
