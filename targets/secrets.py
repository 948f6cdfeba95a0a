"""Secrets (passwords, key passphrases) kept in the OS keyring, referenced by name.

A :class:`SecretRef` names a secret; it never holds the value. Values go into the keyring
with :func:`set_secret` and come out with :func:`get_secret` at the moment a connection
needs them (:func:`secret_getter` makes the late-resolving callable that
:class:`targets.ssh.SSHConnection` takes). Nothing here prints, logs or stores a value
anywhere else: ``targets.yml`` records only the secret's *name*
(:attr:`targets.workspace.TargetRecord.secrets`).

Keyring entries: service ``"compute-targets"``, username
``"<workspace root>::<target>::<name>"``, so two projects with a target of the same name
never share a secret.

Design choice: the backend is looked up on every call -- ``PYTHON_KEYRING_BACKEND``
first, then keyring's config file (``keyringrc.cfg``), then keyring's own (cached)
detection; when that finds no OS keyring (only keyrings.alt's file backends, or none)
and ``TARGETS_KEYRING_PASSPHRASE`` or ``TARGETS_KEYRING_PASSPHRASE_FILE`` is set, our
own encrypted file (:class:`targets.keyring_file.EncryptedFileKeyring`), which never
prompts. Both lookups are cheap, and a long-lived process (or a test that changes
``HOME``) then always uses the backend the environment names, not the one that happened
to be detected first. ``keyring`` itself is imported on first use, so importing this
module costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from targets.errors import SecretStoreError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = [
    "SERVICE",
    "SecretRef",
    "check_backend",
    "delete_secret",
    "get_secret",
    "secret_getter",
    "set_secret",
]

SERVICE = "compute-targets"

_GUIDANCE = (
    "configure a keyring backend: on a desktop, the system keyring (GNOME Keyring, "
    "KWallet, macOS Keychain, Windows Credential Locker) works as is; on a headless "
    "server or in CI, set TARGETS_KEYRING_PASSPHRASE (or TARGETS_KEYRING_PASSPHRASE_FILE, "
    "a file of mode 0600 holding it) and targets keeps secrets in its own encrypted file, "
    "without prompting (to name it explicitly: "
    "PYTHON_KEYRING_BACKEND=targets.keyring_file.EncryptedFileKeyring, or in "
    "~/.config/python_keyring/keyringrc.cfg: [backend] "
    "default-keyring=targets.keyring_file.EncryptedFileKeyring). Or store no secret at "
    "all: use an SSH agent (--use-agent) or an unencrypted key file (--ssh-key PATH). "
    "See docs/ssh.md"
)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """The name of one secret of one target of one workspace. Holds no value.

    ``workspace`` is the workspace root path, ``target`` the target name, ``name`` what
    the secret is (``"password"``, ``"ssh_key_passphrase"``, ...).
    """

    workspace: str
    target: str
    name: str

    @property
    def username(self) -> str:
        """The keyring username this secret is stored under."""
        return f"{self.workspace}::{self.target}::{self.name}"

    def __repr__(self) -> str:
        return f"SecretRef(target={self.target!r}, name={self.name!r})"

    def __str__(self) -> str:
        return f"{self.target}/{self.name}"


def _backend() -> KeyringBackend:
    """The keyring backend the environment selects now. Raises SecretStoreError."""
    try:
        import keyring
        import keyring.backends.fail
        import keyring.backends.null
        import keyring.core
    except ImportError as exc:  # a dependency of the distribution: only a broken install
        raise SecretStoreError(
            "the Python package 'keyring' is not installed, so secrets cannot be stored",
            hint="pip install keyring; " + _GUIDANCE,
        ) from exc

    try:
        backend: KeyringBackend | None = keyring.core.load_env() or keyring.core.load_config()
        detected = backend is None
        if backend is None:
            backend = keyring.get_keyring()
            if _passphrase_configured() and not _is_os_keyring(backend):
                from targets.keyring_file import EncryptedFileKeyring

                backend = EncryptedFileKeyring()
    except Exception as exc:  # a bad name or an unusable backend in the env/config
        raise SecretStoreError(
            f"the configured keyring backend cannot be loaded ({type(exc).__name__}: {exc})",
            hint="check PYTHON_KEYRING_BACKEND and ~/.config/python_keyring/keyringrc.cfg; "
            + _GUIDANCE,
        ) from exc
    unusable = (keyring.backends.fail.Keyring, keyring.backends.null.Keyring)
    if isinstance(backend, unusable):
        raise SecretStoreError(
            "no usable keyring backend: passwords and key passphrases cannot be stored "
            f"safely on this machine (keyring selected {type(backend).__module__}."
            f"{type(backend).__name__})",
            hint=_GUIDANCE,
        )
    if detected and _is_plaintext(backend):
        # keyring falls back to keyrings.alt's plaintext file when it is installed and
        # nothing else is: only when asked for by name is that a choice.
        raise SecretStoreError(
            "no usable keyring backend: the only one keyring found on this machine keeps "
            f"secrets in a plain file ({type(backend).__module__}.{type(backend).__name__})",
            hint=_GUIDANCE,
        )
    chained = getattr(backend, "backends", None)
    if chained is not None and not chained:
        raise SecretStoreError(
            "no usable keyring backend: passwords and key passphrases cannot be stored "
            "safely on this machine (keyring found no backend to use)",
            hint=_GUIDANCE,
        )
    return backend


def _passphrase_configured() -> bool:
    # Not targets.keyring_file.passphrase_configured: that module imports keyring's
    # backend classes, which this check must not cost.
    import os

    return bool(
        os.environ.get("TARGETS_KEYRING_PASSPHRASE")
        or os.environ.get("TARGETS_KEYRING_PASSPHRASE_FILE")
    )


def _is_plaintext(backend: KeyringBackend) -> bool:
    try:
        from keyrings.alt.file import PlaintextKeyring  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:  # keyrings.alt is not a dependency
        return False
    return isinstance(backend, PlaintextKeyring)


def _is_os_keyring(backend: KeyringBackend) -> bool:
    """Whether keyring's own detection found a real OS keyring: keyring gives those a
    priority of 1 or more, and its fallbacks (keyrings.alt's files, which prompt on the
    terminal or store in the clear; fail; null; an empty chain) less."""
    import keyring.backends.chainer

    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        return any(_is_os_keyring(b) for b in backend.backends)
    try:
        return float(type(backend).priority) >= 1
    except Exception:
        return False


def _failed(action: str, ref: SecretRef, exc: Exception) -> SecretStoreError:
    # keyring's own messages carry no secret value; the exception type is enough context.
    import keyring.errors

    if isinstance(exc, keyring.errors.NoKeyringError):
        return SecretStoreError(
            f"cannot {action} secret {ref}: no usable keyring backend", hint=_GUIDANCE
        )
    if isinstance(exc, keyring.errors.KeyringLocked):
        return SecretStoreError(
            f"cannot {action} secret {ref}: the keyring is locked",
            hint="unlock the keyring (log in to the desktop session, or enter the keyring "
            "password when asked), then try again",
        )
    return SecretStoreError(
        f"cannot {action} secret {ref}: the keyring refused ({type(exc).__name__})",
        hint=_GUIDANCE,
    )


def check_backend() -> None:
    """Raise :class:`SecretStoreError` (exit code 2) unless a usable keyring backend is
    configured -- for targets' encrypted file, unless its passphrase is given and opens
    it. Reads no stored secret."""
    backend = _backend()
    from targets.keyring_file import EncryptedFileKeyring

    if isinstance(backend, EncryptedFileKeyring):
        backend.check()


def set_secret(ref: SecretRef, value: str) -> None:
    """Store ``value`` under ``ref``, replacing any previous value.

    Raises :class:`SecretStoreError` (with what to do) when no usable backend exists or
    the keyring refuses.
    """
    backend = _backend()
    try:
        backend.set_password(SERVICE, ref.username, value)
    except SecretStoreError:
        raise
    except Exception as exc:
        raise _failed("store", ref, exc) from exc


def get_secret(ref: SecretRef) -> str | None:
    """The value stored under ``ref``, or ``None`` when there is none.

    Raises :class:`SecretStoreError` when no usable backend exists or the keyring refuses.
    """
    backend = _backend()
    try:
        value = backend.get_password(SERVICE, ref.username)
    except SecretStoreError:
        raise
    except Exception as exc:
        raise _failed("read", ref, exc) from exc
    return None if value is None else str(value)


def delete_secret(ref: SecretRef) -> None:
    """Remove the secret stored under ``ref``. Idempotent: a missing secret is fine.

    Raises :class:`SecretStoreError` when no usable backend exists or the keyring refuses.
    """
    import keyring.errors

    backend = _backend()
    try:
        backend.delete_password(SERVICE, ref.username)
    except keyring.errors.PasswordDeleteError:
        return
    except SecretStoreError:
        raise
    except Exception as exc:
        raise _failed("delete", ref, exc) from exc


def secret_getter(ref: SecretRef) -> Callable[[], str | None]:
    """A callable that reads ``ref`` from the keyring when called (late resolution), for
    ``SSHConnection(password=..., key_passphrase=...)``."""

    def get() -> str | None:
        return get_secret(ref)

    get.__qualname__ = f"secret_getter({ref!r})"
    return get
