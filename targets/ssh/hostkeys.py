"""SSH host-key verification: unknown keys are shown and must be accepted; changed keys
are refused.

Two known_hosts files are consulted: the user's ``~/.ssh/known_hosts`` (read only, so
hosts the user already trusts with ``ssh`` are trusted here too) and the workspace's own
file (``.targets/known_hosts``), where keys accepted through ``targets`` are written.
Entries are written in plain (not hashed) form, ``[host]:port key-type base64``, exactly
as OpenSSH writes them with ``HashKnownHosts no``: the workspace's ``targets.yml`` names
the same hosts anyway, and a plain file is easy to audit. ``ssh-keygen -F``/``-R`` work on
it like on any known_hosts file.

A key is looked up under the name OpenSSH uses: the host name (after ``HostName``
resolution) for port 22, ``[host]:port`` otherwise; plain, hashed (``|1|salt|hash``,
``HashKnownHosts yes``) and wildcard (``*``, ``?``, ``!negated``) names all match.

Design choice: a server whose key matches none of the keys recorded for it, whatever
their type, has a *changed* key, refused even when unknown keys would be accepted. A
server that used to show an ed25519 key and now offers only RSA may be an attacker who
does not hold the ed25519 key; OpenSSH orders ``HostKeyAlgorithms`` by what known_hosts
records for the same reason, and so does :class:`~targets.ssh.connection.SSHConnection`
(:func:`known_host_types`), so a server that offers the recorded type as well as others
keeps working.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import fnmatch
import hashlib
import hmac
import os
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from targets.errors import HostKeyError

__all__ = [
    "AcceptHostKey",
    "ChangedHostKeyError",
    "HostKeyPolicy",
    "UnknownHostKeyError",
    "check_host_key",
    "fingerprint",
    "known_host_types",
    "known_hosts_name",
    "translate_bad_host_key",
    "user_known_hosts",
]

AcceptHostKey = bool | Callable[[str, str, str], bool]
"""``True`` accepts an unknown key; a callable ``(host_display, key_type, fingerprint)``
(``host_display`` is ``host:port``) decides, e.g. by asking the user; ``False`` refuses."""


def fingerprint(key: paramiko.PKey) -> str:
    """The key's SHA256 fingerprint as OpenSSH shows it: ``SHA256:<base64, no padding>``."""
    return _fingerprint_blob(key.asbytes())


def _fingerprint_blob(blob: bytes) -> str:
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_name(hostname: str, port: int) -> str:
    """The name a known_hosts file lists a server under (``host`` or ``[host]:port``)."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _display(hostname: str, port: int) -> str:
    return f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"


def _parse_name(name: str) -> tuple[str, int]:
    if name.startswith("[") and "]:" in name:
        host, _, port = name[1:].rpartition("]:")
        with contextlib.suppress(ValueError):
            return host, int(port)
    return name, 22


def user_known_hosts() -> Path:
    """``~/.ssh/known_hosts`` of the current user (read, never written)."""
    return Path.home() / ".ssh" / "known_hosts"


@dataclass(frozen=True, slots=True)
class _Recorded:
    """One key a known_hosts file records for a server."""

    path: Path
    key_type: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        return _fingerprint_blob(self.blob)


def _name_matches(pattern: str, name: str) -> bool:
    """Whether one host field of a known_hosts line (plain, hashed or a wildcard
    pattern) names ``name``; negation is handled by the caller."""
    if pattern.startswith("|1|"):
        parts = pattern.split("|")
        if len(parts) != 4:
            return False
        try:
            salt = base64.b64decode(parts[2], validate=True)
            expected = base64.b64decode(parts[3], validate=True)
        except (binascii.Error, ValueError):
            return False
        digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(digest, expected)
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(name.lower(), pattern.lower())
    return pattern.lower() == name.lower()


def _recorded(path: Path, name: str) -> list[_Recorded]:
    """Every key ``path`` records for the server named ``name`` (any type, including
    types paramiko cannot parse). An unreadable or missing file records nothing, as
    with OpenSSH; malformed lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found: list[_Recorded] = []
    for line in text.splitlines():
        fields = line.split()
        # "@cert-authority" and "@revoked" lines hold no key of the host itself.
        if len(fields) < 3 or fields[0].startswith(("#", "@")):
            continue
        patterns = fields[0].split(",")
        if not any(_name_matches(p, name) for p in patterns if not p.startswith("!")):
            continue
        if any(_name_matches(p[1:], name) for p in patterns if p.startswith("!")):
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        found.append(_Recorded(path, fields[1], blob))
    return found


def _remove_command(path: Path, name: str) -> str:
    return f"ssh-keygen -f {shlex.quote(str(path))} -R {shlex.quote(name)}"


class UnknownHostKeyError(HostKeyError):
    """The server's host key is in no known_hosts file and was not accepted."""

    def __init__(
        self, hostname: str, port: int, key_type: str, fingerprint: str, known_hosts: Path
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.known_hosts = known_hosts
        super().__init__(
            f"the authenticity of host {_display(hostname, port)} can't be established: "
            f"it is not in {known_hosts} nor in ~/.ssh/known_hosts.\n"
            f"  {key_type} key fingerprint is {fingerprint}",
            hint="compare the fingerprint with the server's (on the server: `ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub`), then accept it with --accept-host-key "
            "or by answering yes when asked",
        )


class ChangedHostKeyError(HostKeyError):
    """The server's host key differs from the one recorded for it: possibly an attack."""

    def __init__(
        self,
        hostname: str,
        port: int,
        key_type: str,
        fingerprint: str,
        expected_fingerprint: str,
        known_hosts: Path,
        expected_type: str | None = None,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.expected_fingerprint = expected_fingerprint
        self.expected_type = expected_type or key_type
        self.known_hosts = known_hosts
        name = known_hosts_name(hostname, port)
        self.remove_command = _remove_command(known_hosts, name)
        if self.expected_type == key_type:
            records = f"records {expected_fingerprint} for it"
        else:  # the server no longer offers (or hides) the key type we know
            records = (
                f"records a {self.expected_type} key {expected_fingerprint} for it,\n"
                f"  and the server did not show a {self.expected_type} key"
            )
        super().__init__(
            f"WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for {_display(hostname, port)}!\n"
            "  Someone could be eavesdropping on you right now (a man-in-the-middle attack),\n"
            "  or the host key has just been changed (e.g. the machine was reinstalled).\n"
            f"  The server sent a {key_type} key with fingerprint {fingerprint};\n"
            f"  {known_hosts} {records}. Nothing was sent.",
            hint="if you know why the key changed, remove the old key with\n"
            f"    {self.remove_command}\n"
            "  and connect again to see and accept the new one",
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _append(path: Path, name: str, key: paramiko.PKey) -> None:
    """Add ``name key`` to ``path`` unless it is there already (safe across processes)."""
    with _locked(path):
        if any(r.blob == key.asbytes() for r in _recorded(path, name)):
            return
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                line = "\n" + line
        # Private like everything under .targets/ (a new file; an existing one keeps
        # its mode).
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(line)


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """What to do with a host key found in no known_hosts file.

    When ``accept`` is ``True``, or a callable ``accept(host_display, key_type,
    fingerprint)`` returns ``True``, the key is appended to ``known_hosts`` (the
    workspace's file) and the connection continues. Otherwise :class:`UnknownHostKeyError`
    is raised, showing the fingerprint and how to accept. Never accepts silently.

    Usable with ``paramiko.SSHClient.set_missing_host_key_policy`` (then ``hostname``
    is in known_hosts form, ``[host]:port``) and by :func:`check_host_key`.
    """

    def __init__(self, known_hosts: Path, accept: AcceptHostKey = False) -> None:
        self.known_hosts = Path(known_hosts)
        self.accept = accept

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        host, port = _parse_name(hostname)
        key_type = key.get_name()
        shown = fingerprint(key)
        accepted = (
            self.accept(_display(host, port), key_type, shown)
            if callable(self.accept)
            else self.accept is True
        )
        if not accepted:
            raise UnknownHostKeyError(host, port, key_type, shown, self.known_hosts)
        _append(self.known_hosts, hostname, key)
        if client is not None:  # keep an SSHClient's in-memory table in step
            client.get_host_keys().add(hostname, key_type, key)

    def __repr__(self) -> str:
        return f"HostKeyPolicy({str(self.known_hosts)!r}, accept={self.accept!r})"


def _files(known_hosts: Path, system_known_hosts: Path | None) -> list[Path]:
    system = user_known_hosts() if system_known_hosts is None else system_known_hosts
    return [system, Path(known_hosts)]


def known_host_types(
    hostname: str, port: int, known_hosts: Path, system_known_hosts: Path | None = None
) -> list[str]:
    """Key types recorded for the server in either file, hashed entries included (to
    prefer them in negotiation, as OpenSSH does, so that a server with several host keys
    shows the one we know)."""
    name = known_hosts_name(hostname, port)
    types: list[str] = []
    for path in _files(known_hosts, system_known_hosts):
        types.extend(r.key_type for r in _recorded(path, name))
    return list(dict.fromkeys(types))


def check_host_key(
    key: paramiko.PKey,
    hostname: str,
    port: int,
    *,
    known_hosts: Path,
    accept: AcceptHostKey = False,
    system_known_hosts: Path | None = None,
) -> None:
    """Verify the key a server presented. Returns when it is known (in
    ``~/.ssh/known_hosts`` or the workspace's ``known_hosts``) or was just accepted.

    Raises :class:`ChangedHostKeyError` when either file records keys for this server
    (of any type) and none of them is this key, whatever ``accept`` says, and
    :class:`UnknownHostKeyError` when no key is recorded for it and ``accept`` does not
    accept this one. Reads (and on acceptance appends to) files only.
    """
    name = known_hosts_name(hostname, port)
    key_type = key.get_name()
    blob = key.asbytes()
    recorded = [
        r for path in _files(known_hosts, system_known_hosts) for r in _recorded(path, name)
    ]
    if any(r.blob == blob for r in recorded):
        return
    if recorded:
        # Name a key of the same type when there is one (the key was replaced), else
        # the first recorded key (the server no longer shows the type we know).
        same_type = [r for r in recorded if r.key_type == key_type]
        old = (same_type or recorded)[0]
        raise ChangedHostKeyError(
            hostname,
            port,
            key_type,
            fingerprint(key),
            old.fingerprint,
            old.path,
            expected_type=old.key_type,
        )
    HostKeyPolicy(known_hosts, accept).missing_host_key(None, name, key)


def translate_bad_host_key(
    exc: paramiko.BadHostKeyException, port: int, files: Iterable[Path]
) -> ChangedHostKeyError:
    """Turn paramiko's ``BadHostKeyException`` (from ``SSHClient.connect``) into a
    :class:`ChangedHostKeyError`, naming the file that holds the old key."""
    hostname, parsed_port = _parse_name(str(exc.hostname))
    port = parsed_port if parsed_port != 22 else port
    name = known_hosts_name(hostname, port)
    candidates = list(files)
    holder = candidates[-1] if candidates else user_known_hosts()
    expected = exc.expected_key.asbytes()
    for path in candidates:
        if any(r.blob == expected for r in _recorded(path, name)):
            holder = path
            break
    return ChangedHostKeyError(
        hostname,
        port,
        exc.key.get_name(),
        fingerprint(exc.key),
        fingerprint(exc.expected_key),
        holder,
    )
