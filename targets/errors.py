"""One exception tree for everything `targets` raises on purpose.

Every class carries an ``exit_code`` (2 for bad input, 1 for a failure while doing the
work) and a ``__str__`` a user can act on. The CLI prints ``str(error)`` and exits with
``error.exit_code``; it never prints a traceback for a :class:`TargetsError`.

Third-party errors (paramiko, docker, databricks-sdk, azure-core) are translated at the
boundary with ``raise SomeTargetsError(...) from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConnectionFailed",
    "EnvironmentBuildError",
    "HostKeyError",
    "InvalidNameError",
    "MissingExtraError",
    "PluginLoadError",
    "RunFailedError",
    "RunNotFoundError",
    "SecretStoreError",
    "SnapshotError",
    "TargetsError",
    "UnknownKindError",
    "UnknownTargetError",
    "UnsupportedOperation",
    "UsageError",
]


class TargetsError(Exception):
    """Root of every error `targets` raises on purpose.

    ``hint`` is an optional second line telling the user what to do.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(TargetsError):
    """Bad input from the user: nothing was sent or written. Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file (runconfig, job YAML, conda file, targets.yml) is invalid.

    ``path`` is the file, ``line`` the 1-based line (when known), ``key_path`` the dotted
    path of the offending key (e.g. ``environment.docker.shm_size``).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key_path: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.key_path = key_path
        where = ""
        if path:
            where = path + (f":{line}" if line else "")
        if key_path:
            where = f"{where}: {key_path}" if where else key_path
        super().__init__(f"{where}: {message}" if where else message, hint=hint)


class InvalidNameError(UsageError):
    """A target name (or another user-chosen name) breaks the naming rule."""


class UnknownTargetError(UsageError):
    """A run names a target that is not attached to the workspace."""

    def __init__(self, name: str, attached: Sequence[str]) -> None:
        self.name = name
        self.attached = list(attached)
        listed = ", ".join(self.attached) if self.attached else "(none)"
        hint = "attach it with `targets attach NAME --type KIND ...` or pick one above"
        if name == "amlcompute":
            hint = (
                "runs with target: amlcompute get a cluster of their own; say how it is made "
                "once: targets create amlcompute --type cluster --run-based --provider docker "
                "--image IMAGE --max-nodes 4 (or --provider azure ...)"
            )
        super().__init__(f"unknown target {name!r}; attached targets: {listed}", hint=hint)


class UnknownKindError(UsageError):
    """No installed plugin provides the requested target kind."""

    def __init__(self, kind: str, available: Sequence[str]) -> None:
        self.kind = kind
        self.available = list(available)
        super().__init__(
            f"unknown target kind {kind!r}; installed kinds: {', '.join(self.available)}",
            hint="install the plugin that provides it, e.g. `pip install targets-<kind>`",
        )


class PluginLoadError(TargetsError):
    """A plugin was found but could not be imported or is malformed."""

    def __init__(self, kind: str, distribution: str | None, error: BaseException | str) -> None:
        self.kind = kind
        self.distribution = distribution
        self.error = error
        dist = f" (from distribution {distribution!r})" if distribution else ""
        super().__init__(
            f"target kind {kind!r}{dist} failed to load: {error}",
            hint="reinstall or fix that plugin; every other kind still works",
        )


class MissingExtraError(UsageError):
    """An optional SDK is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"this needs the Python package {module!r}, which is not installed",
            hint=f"pip install 'compute-targets[{extra}]'",
        )


class SnapshotError(UsageError):
    """The source directory cannot be snapshotted (limits, symlinks, unreadable files)."""


class SecretStoreError(TargetsError):
    """No usable keyring backend, or the keyring refused an operation."""

    exit_code = 2


class ConnectionFailed(TargetsError):
    """A target could not be reached."""


class AuthenticationError(TargetsError):
    """A target refused the credentials."""


class HostKeyError(TargetsError):
    """An SSH host key is unknown (and not accepted) or has changed."""


class EnvironmentBuildError(TargetsError):
    """Preparing an environment failed; nothing was marked ready."""


class RunNotFoundError(UsageError):
    """No run with that id in the workspace's ledger."""


class UnsupportedOperation(TargetsError):
    """The target kind does not declare the capability this operation needs."""

    exit_code = 2


class RunFailedError(TargetsError):
    """A run ended in Failed or Canceled. Shows the run id, exit code and output tail,
    like invoke's ``UnexpectedExit``."""

    def __init__(
        self, run_id: str, status: str, exit_code: int | None, tail: str = "", message: str = ""
    ) -> None:
        self.run_id = run_id
        self.status = status
        self.returncode = exit_code
        self.tail = tail
        text = f"run {run_id} {status.lower()}"
        if exit_code is not None:
            text += f" with exit code {exit_code}"
        if message:
            text += f": {message}"
        if tail:
            text += "\n\nlast lines of output:\n" + tail
        super().__init__(text, hint=f"targets runs logs {run_id}")
