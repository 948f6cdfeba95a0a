"""The workspace: a project folder holding a ``.targets/`` directory.

``.targets/`` holds:

- ``workspace``: the marker that makes the folder a workspace (written by
  :meth:`Workspace.ensure`, with the ``.gitignore``).
- ``targets.yml``: the attached targets (kind, options, facts found at attach). Never a
  secret: secrets live in the OS keyring and are referenced by name only.
- ``runs.db``: the run ledger (:mod:`targets.ledger`).
- ``runs/<run-id>/``: one folder per run: ``run.json`` (what was run, where, from which
  snapshot), ``driver.log`` and ``prepare.log``, and the script's ``logs/`` and ``outputs/``.
- ``cache/``: the snapshot hash cache.

``.targets/`` is private to its owner (mode 0700: run variables, logs and outputs are
nobody else's business), and is tightened so when a command opens the ledger of one
that an earlier version left readable (:func:`targets._private.private_dir`).

Finding it: ``--workspace`` / ``TARGETS_WORKSPACE`` when given. Otherwise, from the
current directory upwards, the nearest folder whose ``.targets/`` is a real workspace,
searching no higher than the top of the enclosing git repository; when there is none,
the git top itself, or the current directory outside git. A ``.targets/`` is a real
workspace when it holds the ``workspace`` marker, or (made by an earlier version) a
``runs.db`` or ``targets.yml`` while not being an agent's home.

The agent's home on this machine (``$TARGETS_HOME``, default ``~/.targets``, see
:func:`targets.compute.local.agent_root`) has the same name and also holds ``runs/``
folders, so it is never a candidate: a folder is an agent's home when it resolves to the
agent root or holds the agent's object store (``objects/``).

Design choice: when the workspace would be a folder whose ``.targets`` *is* the agent's
home (typically ``targets`` run in ``$HOME`` outside any git repository), every
workspace command stops with a :class:`~targets.errors.UsageError` (exit code 2) naming
the folder and the fix (run in a project folder, or pass ``--workspace DIR``). Sharing the
folder would make the workspace's ``runs/<id>`` and the agent's ``runs/<id>`` the same
paths; choosing another folder silently would surprise. Otherwise the two trees never
share run folders: they are distinct ``.targets`` folders.

Reading never creates anything: commands that only read (``targets list``, ``runs
list``, ``runs show``...) see a missing ``.targets/`` as an empty workspace. The first
command that writes creates it whole (marker, ``.gitignore``, then what it writes).

The target ``local`` always exists, even in an empty ``targets.yml``.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from targets._private import private_dir
from targets.errors import ConfigError, InvalidNameError, UnknownTargetError, UsageError
from targets.ledger import Ledger

if TYPE_CHECKING:
    from targets.compute.base import ComputeTarget, TargetContext
    from targets.secrets import SecretRef

__all__ = ["TargetRecord", "Workspace", "validate_target_name"]

DIRNAME = ".targets"
MARKER = "workspace"
"""The file in ``.targets/`` that only a workspace has."""
LOCAL = "local"
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,14}[A-Za-z0-9]$")


def validate_target_name(name: str) -> str:
    """Return ``name`` if it follows Azure ML's compute naming rule, else raise.

    2 to 16 characters, a letter first, then letters, digits and hyphens, not ending
    with a hyphen.
    """
    if not _NAME_RE.match(name):
        problems = []
        if not 2 <= len(name) <= 16:
            problems.append(f"it has {len(name)} characters (2 to 16 allowed)")
        if not name or not (name[0].isascii() and name[0].isalpha()):
            problems.append("it must start with a letter")
        if name.endswith("-"):
            problems.append("it must not end with a hyphen")
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))})
        if bad:
            problems.append("it contains " + " ".join(repr(c) for c in bad))
        raise InvalidNameError(
            f"invalid target name {name!r}: " + "; ".join(problems or ["bad format"]),
            hint="use 2-16 letters, digits and hyphens, starting with a letter, e.g. 'gpu-box1'",
        )
    return name


def _agent_home() -> Path:
    """The local agent's home: the rule of :func:`targets.compute.local.agent_root`,
    repeated here because importing that module costs a fifth of a second."""
    return Path(os.environ.get("TARGETS_HOME") or Path.home() / ".targets")


def is_agent_home(path: Path, agent: Path | None = None) -> bool:
    """True when ``path`` is an agent's home: this machine's agent root, or a folder
    holding an agent's object store (another user's or another ``TARGETS_HOME``)."""
    agent = agent if agent is not None else _agent_home()
    try:
        if path.resolve() == agent.resolve():
            return True
    except OSError:
        pass
    return (path / "objects").is_dir()


def is_workspace_dir(path: Path, agent: Path | None = None) -> bool:
    """True when ``path`` (a ``.targets`` folder) is a workspace's: it holds the marker,
    or, made by an earlier version without one, a ledger or a ``targets.yml`` while not
    being an agent's home."""
    if (path / MARKER).is_file():
        return True
    if not path.is_dir():
        return False
    legacy = (path / "runs.db").is_file() or (path / "targets.yml").is_file()
    return legacy and not is_agent_home(path, agent)


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """An attached target as stored in ``targets.yml``."""

    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    attached_at: float | None = None
    secrets: tuple[str, ...] = ()
    """Names of secrets kept in the keyring for this target (never their values)."""

    def to_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind}
        if self.options:
            data["options"] = dict(self.options)
        if self.secrets:
            data["secrets"] = list(self.secrets)
        if self.facts:
            data["facts"] = dict(self.facts)
        if self.attached_at is not None:
            data["attached_at"] = self.attached_at
        return data


class Workspace:
    """A project folder with its ``.targets/`` directory. Constructing it does no I/O."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.dir = self.root / DIRNAME
        self._ledger: Ledger | None = None

    # -- finding ---------------------------------------------------------------------

    @classmethod
    def find(
        cls, start: str | Path | None = None, *, explicit: str | Path | None = None
    ) -> Workspace:
        """The workspace for ``start`` (default: the current directory). See module doc."""
        chosen = explicit or os.environ.get("TARGETS_WORKSPACE")
        if chosen:
            path = Path(chosen).expanduser()
            if path.exists() and not path.is_dir():
                raise UsageError(f"workspace {str(path)!r} is not a directory")
            workspace = cls(path)
            workspace._check_not_agent_home(_agent_home())
            return workspace
        here = Path(start or os.getcwd()).resolve()
        agent = _agent_home()
        root = here
        for folder in (here, *here.parents):
            if is_workspace_dir(folder / DIRNAME, agent):
                root = folder
                break
            if (folder / ".git").exists():
                root = folder  # the search stops at the top of the git repository
                break
        workspace = cls(root)
        workspace._check_not_agent_home(agent)
        return workspace

    @classmethod
    def from_dir(cls, path: str | Path = ".") -> Workspace:
        """Azure ML v1's name: the workspace for the folder ``path`` (searching upwards)."""
        return cls.find(path)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # -- storage ---------------------------------------------------------------------

    def _check_not_agent_home(self, agent: Path) -> None:
        """Refuse a workspace whose ``.targets`` is an agent's home (see module doc)."""
        if (self.dir / MARKER).is_file() or not is_agent_home(self.dir, agent):
            return
        raise UsageError(
            f"{self.root} cannot be a workspace: {self.dir} is the home of the targets "
            "agent on this machine (runs of every project live there)",
            hint="run targets in a project folder (a git repository, say ~/code/myproject), "
            "or give one with --workspace DIR",
        )

    @property
    def ledger(self) -> Ledger:
        """The run ledger. Reading a workspace that does not exist yet finds no runs and
        creates nothing; the first write creates the workspace whole (:meth:`ensure`)."""
        if self._ledger is None:
            self._ledger = Ledger(self.dir / "runs.db", before_create=self.ensure)
        return self._ledger

    def run_dir(self, run_id: str) -> Path:
        return self.dir / "runs" / run_id

    @property
    def cache_dir(self) -> Path:
        return self.dir / "cache"

    def ensure(self) -> None:
        """Create ``.targets/`` with its marker and ``.gitignore`` (idempotent).

        Raises :class:`UsageError` when ``.targets`` is the agent's home (see module doc).
        """
        marker = self.dir / MARKER
        if not marker.is_file():
            self._check_not_agent_home(_agent_home())
        private_dir(self.dir)
        gitignore = self.dir / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("# created by targets: run history stays out of git\n*\n")
        if not marker.is_file():
            marker.write_text(
                "# This folder is a targets workspace: attached targets, run history, outputs.\n"
            )

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    # -- attached targets ------------------------------------------------------------

    @property
    def _targets_file(self) -> Path:
        return self.dir / "targets.yml"

    def _read_targets_file(self) -> dict[str, Any]:
        path = self._targets_file
        if not path.exists():
            return {}
        from targets.runconfig.yaml_lines import load_yaml_file

        data = load_yaml_file(path, "targets.yml") or {}
        if not isinstance(data, dict):
            raise ConfigError("expected a mapping at the top level", path=str(path))
        return data

    def targets(self) -> dict[str, TargetRecord]:
        """Every attached target by name, ``local`` included."""
        data = self._read_targets_file().get("targets") or {}
        records = {LOCAL: TargetRecord(name=LOCAL, kind="local")}
        for name, raw in data.items():
            if not isinstance(raw, dict) or "type" not in raw:
                raise ConfigError(
                    "each target needs a 'type'",
                    path=str(self._targets_file),
                    key_path=f"targets.{name}",
                )
            records[str(name)] = TargetRecord(
                name=str(name),
                kind=str(raw["type"]),
                options=raw.get("options") or {},
                facts=raw.get("facts") or {},
                attached_at=raw.get("attached_at"),
                secrets=tuple(raw.get("secrets") or ()),
            )
        return records

    def target_record(self, name: str) -> TargetRecord:
        records = self.targets()
        if name not in records:
            raise UnknownTargetError(name, sorted(records))
        return records[name]

    def save_target(self, record: TargetRecord) -> None:
        """Add or replace an attached target in ``targets.yml`` (atomically)."""
        validate_target_name(record.name)
        if record.name == LOCAL:
            raise InvalidNameError("the name 'local' is reserved for this machine")
        data = self._read_targets_file()
        targets = data.setdefault("targets", {}) or {}
        targets[record.name] = record.to_yaml()
        data["targets"] = targets
        self._write_targets_file(data)

    def remove_target(self, name: str) -> TargetRecord:
        record = self.target_record(name)
        if name == LOCAL:
            raise UsageError("the target 'local' cannot be detached")
        data = self._read_targets_file()
        del data["targets"][name]
        self._write_targets_file(data)
        return record

    def _write_targets_file(self, data: dict[str, Any]) -> None:
        self.ensure()
        text = (
            "# Attached compute targets. Written by `targets attach`; secrets are never "
            "stored here.\n" + yaml.safe_dump(data, sort_keys=False)
        )
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".targets.yml.")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, self._targets_file)

    def get_target(self, name: str) -> ComputeTarget:
        """An instance of the attached target ``name`` (imports only its kind)."""
        from targets.registry import load_kind

        record = self.target_record(name)
        cls = load_kind(record.kind)
        try:
            options = cls.options_model.model_validate(dict(record.options))
        except Exception as exc:
            raise ConfigError(
                f"stored options are invalid: {exc}",
                path=str(self._targets_file),
                key_path=f"targets.{name}",
            ) from exc
        return cls(name, options, self.context_for(record))

    def context_for(self, record: TargetRecord, **overrides: Any) -> TargetContext:
        """The context a target of this workspace gets: state in ``.targets/``, its
        secrets from the keyring (only those recorded for it)."""
        from targets.compute.base import TargetContext

        def secret(name: str) -> str | None:
            from targets.secrets import get_secret

            if name.startswith("registry:"):  # image registries belong to the workspace
                return get_secret(self.secret_ref("registry", name))
            if name not in record.secrets:
                return None
            return get_secret(self.secret_ref(record.name, name))

        values: dict[str, Any] = {"state_dir": self.dir, "secret": secret, "workspace": self.root}
        values.update(overrides)
        return TargetContext(**values)

    def secret_ref(self, target: str, name: str) -> SecretRef:
        from targets.secrets import SecretRef

        return SecretRef(workspace=str(self.root), target=target, name=name)

    # -- names -----------------------------------------------------------------------

    def default_experiment(self) -> str:
        return sanitize_experiment(self.root.name) or "default"


def sanitize_experiment(name: str) -> str:
    """An experiment name made of letters, digits, ``-`` and ``_`` (max 64)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")
    return cleaned[:64]


def new_run_id(experiment: str) -> str:
    """Unique, readable, sortable: ``<experiment>_<UTC time>_<6 random chars>``."""
    import secrets

    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    suffix = "".join(secrets.choice(alphabet) for _ in range(6))
    return f"{sanitize_experiment(experiment) or 'run'}_{stamp}_{suffix}"
