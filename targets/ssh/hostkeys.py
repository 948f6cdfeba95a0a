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
resolution) for port 22, ``[host]:port`` otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shlex
from collections.abc import Callable, Iterable, Iterator
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
    digest = hashlib.sha256(key.asbytes()).digest()
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


def _load(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.is_file():
        with contextlib.suppress(OSError):  # unreadable: treated as empty, like OpenSSH
            keys.load(str(path))
    return keys


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
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.expected_fingerprint = expected_fingerprint
        self.known_hosts = known_hosts
        name = known_hosts_name(hostname, port)
        self.remove_command = _remove_command(known_hosts, name)
        super().__init__(
            f"WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for {_display(hostname, port)}!\n"
            "  Someone could be eavesdropping on you right now (a man-in-the-middle attack),\n"
            "  or the host key has just been changed (e.g. the machine was reinstalled).\n"
            f"  The server sent a {key_type} key with fingerprint {fingerprint};\n"
            f"  {known_hosts} records {expected_fingerprint} for it. Nothing was sent.",
            hint="if you know why the key changed, remove the old key with\n"
            f"    {self.remove_command}\n"
            "  and connect again to see and accept the new one",
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _append(path: Path, name: str, key: paramiko.PKey) -> None:
    """Add ``name key`` to ``path`` unless it is there already (safe across processes)."""
    with _locked(path):
        existing = _load(path).lookup(name)
        if existing is not None and existing.get(key.get_name()) == key:
            return
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                line = "\n" + line
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
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
    """Key types recorded for the server in either file (to prefer them in negotiation,
    as OpenSSH does, so that a server with several host keys shows the one we know)."""
    name = known_hosts_name(hostname, port)
    types: list[str] = []
    for path in _files(known_hosts, system_known_hosts):
        entry = _load(path).lookup(name)
        if entry:
            types.extend(t for t in entry if t not in types)
    return types


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

    Raises :class:`ChangedHostKeyError` when either file records a different key of the
    same type for this server, and :class:`UnknownHostKeyError` when the key is unknown
    and ``accept`` does not accept it. Reads (and on acceptance appends to) files only.
    """
    name = known_hosts_name(hostname, port)
    key_type = key.get_name()
    for path in _files(known_hosts, system_known_hosts):
        entry = _load(path).lookup(name)
        if entry is None or key_type not in entry:
            continue
        expected = entry[key_type]
        if expected == key:
            return
        raise ChangedHostKeyError(
            hostname, port, key_type, fingerprint(key), fingerprint(expected), path
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
    for path in candidates:
        entry = _load(path).lookup(name)
        if entry and exc.expected_key.get_name() in entry:
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
