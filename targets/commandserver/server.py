"""The command server's process: import once, then fork a worker per command.

Started in the background by a ``targets`` command that found none
(``python -m targets.commandserver``, see the package's docstring). One server per key
(:func:`~targets.commandserver.client.key_text`): it holds ``<socket>.lock`` while it lives,
so a second one started at the same moment exits at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from targets.commandserver import worker
from targets.commandserver.client import (
    _IN_PROCESS,
    key_text,
    persist_seconds,
    socket_dir,
    socket_path,
)

__all__ = ["main", "preload", "stamps"]

_PID = struct.Struct(">cI")
_STATUS = struct.Struct(">ci")

# Imported before the first command besides the CLI's commands: what `targets run` on the
# agent's kinds, job files and clusters uses (each is a few tens of ms cold).
_ALSO = (
    "targets.runs",
    "targets._submitting",
    "targets.distributed",
    "targets.runconfig.io",
    "targets.snapshot",
    "targets.environments",
    "targets.preflight",
    "targets.compute.local",
    "targets.compute.vm",
    "targets.ssh.connection",
    "targets.ssh.mux",
    "targets.clusters.target",
    "targets.jobs.reader",
    "targets.tracking",
    "targets.data.upload",
    "rich.console",
    "rich.table",
    "ctypes",  # a local run's supervisor, forked from the worker (agent.orphans)
)
# Kinds whose classes are loaded (and their plugin metadata read) before the first command.
_KINDS = ("local", "vm")


def preload() -> None:
    """Import what commands use (a module that fails to import is left to the command,
    which then reports it as it would without a server)."""
    from targets.cli import _COMMANDS

    modules = [spec[0] for name, spec in _COMMANDS.items() if name not in _IN_PROCESS]
    for module in [*dict.fromkeys(modules), *_ALSO]:
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    with contextlib.suppress(Exception):
        from targets import registry

        registry.available_kinds()
        for kind in _KINDS:
            registry.load_kind(kind)


def stamps() -> dict[str, tuple[int, int]]:
    """``(mtime, size)`` of every file this process imported and of every folder on
    ``sys.path`` (where a newly installed package or plugin shows)."""
    found: dict[str, tuple[int, int]] = {}
    paths = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
    for path in [*paths, *sys.path]:
        if not path or not isinstance(path, str) or path in found:
            continue
        try:
            st = os.stat(path)
        except OSError:
            found[path] = (-1, -1)
            continue
        found[path] = (st.st_mtime_ns, st.st_size)
    return found


def _changed(before: dict[str, tuple[int, int]]) -> str | None:
    for path, stamp in before.items():
        try:
            st = os.stat(path)
            now = (st.st_mtime_ns, st.st_size)
        except OSError:
            now = (-1, -1)
        if now != stamp:
            return path
    return None


def _peer_uid(conn: socket.socket) -> int | None:
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    raw = conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    return int(struct.unpack("3i", raw)[1])


def _send(conn: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(data)


class _Server:
    def __init__(self, path: str, key: str, persist: float, lock_fd: int) -> None:
        self.path = path
        self.key = key
        self.persist = persist
        self.lock_fd = lock_fd
        self.inode = os.stat(path).st_ino
        self.workers: dict[int, socket.socket] = {}
        self.stop = False

    def serve(self, listener: socket.socket) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        before = stamps()
        last = time.monotonic()
        try:
            while not (self.stop and not self.workers):
                idle = time.monotonic() - last
                if not self.workers and (idle >= self.persist or self.stop):
                    return
                timeout = None if self.workers else self.persist - idle
                try:
                    ready, _, _ = select.select([listener.fileno(), wake_r], [], [], timeout)
                except InterruptedError:
                    continue
                if wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 512):
                            pass
                if self._reap():
                    last = time.monotonic()
                if listener.fileno() in ready and not self.stop:
                    try:
                        conn, _ = listener.accept()
                    except OSError:
                        continue
                    last = time.monotonic()
                    if not self._admit(conn, before):
                        continue
                    pid = os.fork()
                    if pid == 0:
                        self._become_worker(conn, listener, (wake_r, wake_w))
                    self.workers[pid] = conn
                    _send(conn, _PID.pack(b"P", pid))
        finally:
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)

    def _on_term(self, signum: int, frame: Any) -> None:
        self.stop = True

    def _admit(self, conn: socket.socket, before: dict[str, tuple[int, int]]) -> bool:
        """Refuse another user's connection; decline every command once the code this
        process imported changed (the client runs it in-process and starts a fresh
        server, which this one makes way for at once)."""
        uid = _peer_uid(conn)
        if uid is not None and uid != os.getuid():
            conn.close()
            return False
        changed = _changed(before)
        if changed is None:
            return True
        self.stop = True
        self._make_way()
        message = f"{changed} changed since the server started".encode()
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} stepping aside: {changed} changed", flush=True)
        _send(conn, _PID.pack(b"!", len(message)) + message)
        conn.close()
        return False

    def _make_way(self) -> None:
        """Give up the socket's name and the lock: a fresh server may start now."""
        self.remove_socket()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    def remove_socket(self) -> None:
        """Remove the socket only while the name is still ours (a newer server may own it)."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)

    def _reap(self) -> bool:
        reaped = False
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = self.workers.pop(pid, None)
            if conn is None:
                continue
            reaped = True
            code = os.waitstatus_to_exitcode(status)
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} served pid {pid}: exit {code}", flush=True)
            with contextlib.suppress(OSError):
                flags = fcntl.fcntl(conn.fileno(), fcntl.F_GETFL)
                fcntl.fcntl(conn.fileno(), fcntl.F_SETFL, flags & ~os.O_ASYNC)
            _send(conn, _STATUS.pack(b"X", code))
            conn.close()
        return reaped

    def _become_worker(
        self, conn: socket.socket, listener: socket.socket, wake: tuple[int, int]
    ) -> None:
        try:
            signal.set_wakeup_fd(-1)
            for fd in (*wake, self.lock_fd):
                if fd >= 0:
                    os.close(fd)
            listener.close()
            for other in self.workers.values():
                other.close()
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            worker.run(conn, self.key)
        finally:
            os._exit(70)  # worker.run never returns; this guards the server's loop


def main(argv: list[str] | None = None) -> int:
    persist = persist_seconds()
    if persist <= 0:
        return 0
    folder = socket_dir(create=True)
    if folder is None:
        return 1
    key = key_text()
    # Not the starting folder: a module in the user's project must not shadow ours.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    os.chdir("/")
    path = socket_path(folder, key)
    base = path[: -len(".sock")]
    lock_fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock_fd)
        return 0  # another server for this key is starting or serving
    with open(base + ".pid", "w") as fh:
        fh.write(str(os.getpid()))
    with contextlib.suppress(OSError):
        os.ftruncate(sys.stdout.fileno(), 0)  # the log (see client._spawn_server): ours now
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} server pid {os.getpid()} started", flush=True)
    preload()
    # Every worker is a fork of this process: objects that the collector never visits
    # stay in pages the workers share with it, instead of being copied into each.
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    listener.bind(tmp)
    os.chmod(tmp, 0o600)
    listener.listen(64)
    os.replace(tmp, path)
    server = _Server(path, key, persist, lock_fd)
    try:
        server.serve(listener)
    finally:
        server.remove_socket()
        listener.close()
    return 0
