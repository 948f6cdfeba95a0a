"""The ``targets`` console script: hand the command to a warm server, else run it here.

This module is on the path of every command, so it imports only what a socket client
needs (see the package's docstring for the design). Wire format on the socket: the client
sends one frame ``u32 length | JSON request`` with its descriptors 0, 1 and 2 attached
(``SCM_RIGHTS``); the server answers with frames of one kind byte and a 4-byte big-endian
value: ``P`` the worker's pid, ``X`` its exit status (negative: killed by that signal),
``!`` (value: a message's length, then the message) the server declines and the command
runs in-process.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from typing import Any, NoReturn

__all__ = ["key_text", "main", "persist_seconds", "socket_dir", "socket_path"]

PROTOCOL = 1
DEFAULT_PERSIST = 600.0
_FRAME = struct.Struct(">cI")
_STATUS = struct.Struct(">i")
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
# Commands that stay in-process: `studio` serves for hours (nothing to gain), and a hidden
# password prompt (`registry login`) needs the controlling terminal, which a worker has not.
_IN_PROCESS = frozenset({"studio", "registry"})


def persist_seconds() -> float:
    """``TARGETS_SERVER_PERSIST``: how long the server outlives its last command (0: off)."""
    raw = os.environ.get("TARGETS_SERVER_PERSIST", "").strip()
    if not raw:
        return DEFAULT_PERSIST
    try:
        return max(0.0, float(raw))
    except ValueError:
        return DEFAULT_PERSIST


def socket_dir(create: bool = False) -> str | None:
    """The user's private folder for the server's socket, or None when none is safe."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        path = os.path.join(runtime, "targets-cmd")
    else:
        base = os.environ.get("TMPDIR") or "/tmp"
        path = os.path.join(base, f"targets-cmd-{os.getuid()}")
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        info = os.lstat(path)
    except OSError:
        return None
    import stat

    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return path


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def key_text() -> str:
    """What a server must share with its clients: the interpreter and its settings, the
    import path, the locale, the user, and (Linux) the namespaces and cgroup. The first
    entry of ``sys.path`` is the starting script's folder, which differs by design."""
    settings = sorted(
        (name, value)
        for name, value in os.environ.items()
        if name.startswith("PYTHON") or name in ("LANG", "LC_ALL", "LC_CTYPE")
    )
    return repr(
        (
            PROTOCOL,
            sys.executable,
            sys.version,
            os.getuid(),
            sys.path[1:],
            settings,
            _link("/proc/self/ns/mnt"),
            _link("/proc/self/ns/pid"),
            _read("/proc/self/cgroup"),
        )
    )


def socket_path(folder: str, key: str) -> str:
    import zlib

    return os.path.join(folder, f"{zlib.crc32(key.encode('utf-8')):08x}.sock")


def _debug(why: str) -> None:
    """With ``TARGETS_SERVER_DEBUG`` set, say why a command runs in-process."""
    if os.environ.get("TARGETS_SERVER_DEBUG"):
        sys.stderr.write(f"targets: running in-process: {why}\n")


class _Declined(Exception):
    """The server cannot take this command: run it in-process."""


def _stdio() -> list[Any]:
    described: list[Any] = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if stream is None:
            described.append(None)
            continue
        described.append(
            [
                getattr(stream, "encoding", None),
                getattr(stream, "errors", None),
                bool(getattr(stream, "line_buffering", False)),
                bool(getattr(stream, "write_through", False)),
            ]
        )
    return described


def _request(argv: list[str], key: str) -> tuple[bytes, list[int]]:
    import json

    umask = os.umask(0o077)
    os.umask(umask)
    fds, present = [], []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            present.append(False)
            continue
        fds.append(fd)
        present.append(True)
    body = json.dumps(
        {
            "key": key,
            "argv": argv,
            "argv0": sys.argv[0],
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "umask": umask,
            "fds": present,
            "stdio": _stdio(),
        }
    ).encode("utf-8", "surrogateescape")
    return struct.pack(">I", len(body)) + body, fds


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise EOFError
        data += part
    return data


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def _spawn_server(key: str) -> None:
    """Start a server in the background for the next command (it exits at once when
    another one holds the key's lock)."""
    folder = socket_dir(create=True)
    if folder is None:
        return
    from pathlib import Path

    from targets._detached import spawn

    log = socket_path(folder, key)[: -len(".sock")] + ".log"
    try:  # noqa: SIM105 - contextlib is one more import on every command's path
        spawn([sys.executable, "-m", "targets.commandserver"], Path(log))
    except OSError:
        pass


def _via_server(argv: list[str]) -> int | None:
    """Run the command in a worker of the server: its exit status (negative: the signal
    that ended it), or None to run it in-process (no server yet: one is started)."""
    folder = socket_dir()
    key = key_text()
    if folder is None:
        _debug("no private socket folder yet (or an unsafe one)")
        _spawn_server(key)
        return None
    path = socket_path(folder, key)
    try:
        sock = _connect(path)
    except OSError as exc:
        _debug(f"no server at {path} ({exc.strerror or exc})")
        _spawn_server(key)
        return None
    import signal

    worker: list[int] = []
    pending: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if worker:
            try:  # noqa: SIM105 - as above
                os.kill(worker[0], signum)
            except OSError:
                pass
        else:
            pending.append(signum)

    with sock:
        try:
            data, fds = _request(argv, key)
            socket.send_fds(sock, [data], fds)
        except OSError as exc:
            # A server that steps aside (its code changed) closes without reading.
            _debug(f"the server at {path} closed ({exc.strerror or exc})")
            _spawn_server(key)
            return None
        # From here on the command may be running: it is never started twice.
        handled = []
        for name in _FORWARDED:
            signum = getattr(signal, name, None)
            if signum is not None:
                handled.append((signum, signal.signal(signum, forward)))
        try:
            while True:
                try:
                    kind, value = _FRAME.unpack(_recv_exact(sock, _FRAME.size))
                except (EOFError, OSError):
                    sys.stderr.write("targets: lost the command server before the command ended\n")
                    return 1
                if kind == b"P":
                    worker.append(value)
                    for signum in pending:
                        forward(signum, None)
                    pending.clear()
                elif kind == b"X":
                    status: int = _STATUS.unpack(struct.pack(">I", value))[0]
                    return status
                elif kind == b"!":
                    _debug(_recv_exact(sock, value).decode("utf-8", "replace"))
                    raise _Declined
        except _Declined:
            _spawn_server(key)
            return None
        finally:
            for signum, previous in handled:
                signal.signal(signum, previous)


def _command(argv: list[str]) -> str | None:
    """The subcommand's name: the first argument that is not a global option."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-w", "--workspace"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _die_of(signum: int) -> NoReturn:
    import signal

    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)


def main() -> None:
    """The ``targets`` command."""
    argv = sys.argv[1:]
    if argv in (["--version"], ["-V"]):
        from targets._version import __version__

        sys.stdout.write(f"targets, version {__version__}\n")
        sys.exit(0)
    if (
        os.name == "posix"
        and hasattr(socket, "send_fds")
        and persist_seconds() > 0
        and _command(argv) not in _IN_PROCESS
    ):
        status = _via_server(argv)
        if status is not None:
            if status < 0:
                _die_of(-status)
            sys.exit(status)
    from targets.cli import main as in_process

    in_process()
