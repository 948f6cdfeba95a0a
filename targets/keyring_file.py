"""An encrypted file keyring for headless machines and CI: no desktop, no terminal.

:class:`EncryptedFileKeyring` is a real ``keyring`` backend. It keeps every secret in one
file, ``$XDG_DATA_HOME/compute-targets/keyring.enc`` (``~/.local/share/...`` by default;
the folder mode 0700, the file mode 0600), encrypted with AES-256-GCM under a key derived
with scrypt from a passphrase that comes from the environment, never from a prompt:

- ``TARGETS_KEYRING_PASSPHRASE``: the passphrase itself (e.g. a CI secret variable), or
- ``TARGETS_KEYRING_PASSPHRASE_FILE``: a file holding it, which must be the user's own and
  readable by nobody else (mode 0600 or 0400); any other mode is refused.

:mod:`targets.secrets` selects it by itself when no OS keyring is usable and one of these
is set; it can also be named explicitly, like any backend, with
``PYTHON_KEYRING_BACKEND=targets.keyring_file.EncryptedFileKeyring`` or in keyring's
``keyringrc.cfg``.

The file holds a small JSON header (format, KDF parameters, salt, nonce) and one
ciphertext of all entries: service and user names are encrypted too. Writes happen under
an exclusive lock (``flock`` on a lock file beside it) that covers read, change and write,
so concurrent writers lose nothing, and go to a temporary file renamed over the old one,
so a reader sees the old store or the new one whole. A wrong passphrase (the GCM tag does
not verify) is an error: the store is never overwritten with one it cannot read.

Design choice: ``cryptography`` (already installed with paramiko) rather than
keyrings.alt's EncryptedKeyring, which asks for its password on the terminal and so
fails without one (``EOFError``) in pipes and CI.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import KeyringError, PasswordDeleteError

from targets.errors import SecretStoreError

__all__ = [
    "PASSPHRASE_ENV",
    "PASSPHRASE_FILE_ENV",
    "EncryptedFileKeyring",
    "KeyringFileError",
    "passphrase_configured",
    "store_path",
]

PASSPHRASE_ENV = "TARGETS_KEYRING_PASSPHRASE"
PASSPHRASE_FILE_ENV = "TARGETS_KEYRING_PASSPHRASE_FILE"

_FORMAT = "compute-targets encrypted keyring"
_VERSION = 1
_AAD = b"compute-targets keyring v1"
# scrypt cost: about 0.1 s and 32 MiB per derivation (OWASP's minimum is N=2**17 with
# r=8 for password hashes; this file is also protected by its mode, and every command
# that reads a secret pays the cost once).
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1


class KeyringFileError(SecretStoreError, KeyringError):
    """The encrypted keyring file cannot be used: no passphrase, a passphrase file with a
    loose mode, a wrong passphrase, or a damaged file. Exit code 2."""


def store_path() -> Path:
    """The encrypted keyring file (it need not exist yet)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "compute-targets" / "keyring.enc"


def passphrase_configured() -> bool:
    """Whether the environment names a passphrase (its value is not checked here)."""
    return bool(os.environ.get(PASSPHRASE_ENV) or os.environ.get(PASSPHRASE_FILE_ENV))


def _passphrase() -> bytes:
    value = os.environ.get(PASSPHRASE_ENV)
    file = os.environ.get(PASSPHRASE_FILE_ENV)
    if value and file:
        raise KeyringFileError(
            f"both {PASSPHRASE_ENV} and {PASSPHRASE_FILE_ENV} are set",
            hint="set only one of them",
        )
    if value:
        return value.encode()
    if not file:
        raise KeyringFileError(
            "no passphrase for the encrypted keyring file of targets",
            hint=f"set {PASSPHRASE_ENV}, or {PASSPHRASE_FILE_ENV} to a file of mode 0600 "
            "that holds it",
        )
    path = Path(file).expanduser()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise KeyringFileError(
            f"cannot read the passphrase file {path} ({PASSPHRASE_FILE_ENV}): "
            f"{exc.strerror or exc}",
            hint=f"point {PASSPHRASE_FILE_ENV} at an existing file of mode 0600 (not a symlink)",
        ) from exc
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyringFileError(f"the passphrase file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077 or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            raise KeyringFileError(
                f"the passphrase file {path} is readable by others (mode {mode:04o}) or not "
                "yours, so it is not used",
                hint=f"chmod 600 {path} (and make it yours), then try again",
            )
        text = fh.read().rstrip(b"\r\n")
    if not text:
        raise KeyringFileError(f"the passphrase file {path} is empty")
    return text


# Derived keys of this process, so that a command reading or writing several secrets
# pays for scrypt once. Keyed by a hash of the passphrase, never the passphrase.
_KEYS: dict[tuple[bytes, bytes, int, int, int], bytes] = {}


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    cache_key = (hashlib.sha256(passphrase).digest(), salt, n, r, p)
    key = _KEYS.get(cache_key)
    if key is None:
        key = _KEYS[cache_key] = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
    return key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Store:
    """The decrypted content of the file, and what is needed to write it back."""

    def __init__(self, entries: dict[str, dict[str, str]], key: bytes, header: dict[str, Any]):
        self.entries = entries
        self.key = key
        self.header = header


def _damaged(path: Path, what: str) -> KeyringFileError:
    return KeyringFileError(
        f"{path} is not a usable encrypted keyring file of targets ({what})",
        hint="move the file away to start a new store (its secrets are then lost)",
    )


def _load(path: Path) -> _Store:
    """Read and decrypt the store (an empty one when the file does not exist)."""
    passphrase = _passphrase()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        salt = os.urandom(16)
        header = {
            "format": _FORMAT,
            "version": _VERSION,
            "kdf": {"name": "scrypt", "n": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
            "salt": _b64(salt),
            "cipher": "AES-256-GCM",
        }
        return _Store({}, _derive(passphrase, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P), header)
    except OSError as exc:
        raise KeyringFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        doc = json.loads(raw)
        if doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
            raise _damaged(path, "unknown format")
        kdf = doc["kdf"]
        salt = base64.b64decode(doc["salt"], validate=True)
        nonce = base64.b64decode(doc["nonce"], validate=True)
        data = base64.b64decode(doc["data"], validate=True)
        key = _derive(passphrase, salt, int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
    except KeyringFileError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _damaged(path, type(exc).__name__) from exc
    try:
        plain = AESGCM(key).decrypt(nonce, data, _AAD)
    except InvalidTag:
        raise KeyringFileError(
            f"the passphrase does not open the encrypted keyring file {path}",
            hint=f"give the passphrase the file was made with ({PASSPHRASE_ENV} or "
            f"{PASSPHRASE_FILE_ENV}); the file was left as it is",
        ) from None
    try:
        entries = json.loads(plain)
    except ValueError as exc:
        raise _damaged(path, "unreadable content") from exc
    header = {k: v for k, v in doc.items() if k not in ("nonce", "data")}
    return _Store(entries, key, header)


def _save(path: Path, store: _Store) -> None:
    """Encrypt and write the store atomically (temporary file, fsync, rename); mode 0600."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)  # fresh for every write under this key
    plain = json.dumps(store.entries, sort_keys=True).encode()
    doc = {
        **store.header,
        "nonce": _b64(nonce),
        "data": _b64(AESGCM(store.key).encrypt(nonce, plain, _AAD)),
    }
    fd, temp = tempfile.mkstemp(prefix=".keyring.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _private_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) != 0o700:
            os.chmod(folder, 0o700)
    except OSError as exc:
        raise KeyringFileError(f"cannot create {folder}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the store's exclusive lock (a ``flock`` on ``.keyring.lock`` beside it)."""
    _private_folder(path.parent)
    lock_fd = os.open(path.parent / ".keyring.lock", os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(lock_fd, "r+b") as fh:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): writers must not overlap
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class EncryptedFileKeyring(KeyringBackend):
    """Secrets in one AES-GCM encrypted file; the passphrase comes from
    ``TARGETS_KEYRING_PASSPHRASE`` or the mode-0600 file ``TARGETS_KEYRING_PASSPHRASE_FILE``.

    Priority 0.9 (below any OS keyring, above keyrings.alt's file backends) when one of
    those is set, else -1 (like keyring's null backend: never chosen by keyring's own
    detection). Every method blocks on file I/O and a scrypt derivation (about 0.1 s, once
    per process), and raises :class:`KeyringFileError` (exit code 2) when the passphrase
    is missing, wrong or its file too open, or the file is damaged.

    Design choice: ``priority`` never raises (keyring's usual way of saying "not
    viable"): keyring caches the backends it found viable once per process, and a chain
    of them would otherwise break later, when the environment changed. Without a
    passphrase every method says what to set instead.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring's is untyped

    @properties.classproperty
    def priority(cls) -> float:
        return 0.9 if passphrase_configured() else -1

    def check(self) -> None:
        """Raise :class:`KeyringFileError` unless the passphrase is given, usable, and
        opens the file (when it exists). Reads only; about 0.1 s."""
        path = store_path()
        _passphrase()
        if path.exists():
            _load(path)

    def get_password(self, service: str, username: str) -> str | None:
        path = store_path()
        if not path.exists():
            _passphrase()  # a missing or unusable passphrase is reported all the same
            return None
        return _load(path).entries.get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        path = store_path()
        with _locked(path):
            store = _load(path)
            store.entries.setdefault(service, {})[username] = password
            _save(path, store)

    def delete_password(self, service: str, username: str) -> None:
        path = store_path()
        with _locked(path):
            store = _load(path)
            if username not in store.entries.get(service, {}):
                raise PasswordDeleteError("no such secret")
            del store.entries[service][username]
            if not store.entries[service]:
                del store.entries[service]
            _save(path, store)
