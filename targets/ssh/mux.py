"""Connection sharing: one SSH connection per attached target, kept by a small local
process and used by every ``targets`` command (what OpenSSH calls ControlMaster and
ControlPersist, for our paramiko connections).

An SSH connection costs a TCP handshake, a key exchange and an authentication: about
300 ms on a loopback sshd, more across a network, on every command. The first command
that talks to a target connects directly as always, and starts a *mux process* for it
(``python -m targets.ssh.mux ROOT NAME KEY``) that opens its own connection, the same way
(the same options, the same keyring secrets, the workspace's known_hosts, strict host key
checking), and listens on a Unix socket. Later commands ask that process to start their
command on a new channel of its connection, and talk to it through the socket.

- **Who may use it.** The socket lives in ``$TMPDIR/targets-ssh-<uid>/`` (mode 0700, owned
  by the user, checked before use; otherwise sharing is off), and is itself mode 0600:
  only the user who owns the connection can use it, as with OpenSSH's control sockets.
- **Which connection.** The socket's name is a hash of the workspace, the target's name
  and its options: re-attaching with other options, or another workspace, gets another
  process. The process checks this hash against what it loaded before serving.
- **How long.** The process exits after ``TARGETS_SSH_PERSIST`` seconds without any
  client (default 600); ``TARGETS_SSH_PERSIST=0`` turns sharing off. ``targets detach``
  stops it.
- **Failures fall back.** When the socket is missing, refuses, or the process cannot
  start the command (the connection broke and reconnecting failed, e.g. a changed host
  key), the command connects directly, which reports the real problem.

Wire format on the socket: the process answers every client with frames ``[kind: 1 byte]
[length: 4 bytes, big-endian][payload]``, first ``R`` (ready) at once; the client then
sends one JSON line ``{"exec": COMMAND}`` (``"spare": true`` added for the agent's
command, see below) and the command's standard input (a half-close is its end of file).
The process answers ``S`` once the command has started (or ``!`` and an error message
instead), then ``O`` standard output, ``E`` standard error, and ``X``
the exit status (4 bytes, signed). Only the wait for ``R`` is short
(``TARGETS_SSH_MUX_TIMEOUT``, 5 s): how long the SSH exec takes on a busy machine never
decides between the shared and a direct connection.

**A spare agent.** Starting ``python3 agent.pyz serve`` on a new channel costs a round
trip for the channel, one for the exec and the interpreter's start on the target (about
100 ms on a loopback sshd). A client marks such a command ``"spare": true``: it may be
started before it is asked for, because starting it does nothing but wait for requests.
Once a client of such a command is done, the process starts that command again on a new
channel and reads its first reply (the agent's hello, kept to be relayed), so that the
next client asking for the same command gets that channel at once. A spare whose command
ended meanwhile (the agent was upgraded or removed, the target rebooted) or that was
started for another command is closed and the command is started as usual; only one
spare is kept, and it ends with the process. ``TARGETS_SSH_SPARE=0`` in a client's
environment: it neither takes nor leaves a spare.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MuxChannel",
    "MuxUnavailable",
    "SharesConnection",
    "connect",
    "mux_key",
    "persist_seconds",
    "spawn",
    "stop",
]

DEFAULT_PERSIST = 600.0
_HEADER = struct.Struct(">cI")
_CHUNK = 256 * 1024


class MuxUnavailable(Exception):
    """No mux process could start the command: connect directly instead."""


_START_TIMEOUT = 300.0
"""How long a mux process that answered may take to start a command (an SSH exec)."""


def connect_timeout() -> float:
    """``TARGETS_SSH_MUX_TIMEOUT``: how long a command waits for the mux process to answer
    before it connects directly (default 5 s)."""
    raw = os.environ.get("TARGETS_SSH_MUX_TIMEOUT", "")
    try:
        return max(0.1, float(raw)) if raw.strip() else 5.0
    except ValueError:
        return 5.0


def persist_seconds() -> float:
    """``TARGETS_SSH_PERSIST``: how long a mux process outlives its last client (0: off)."""
    raw = os.environ.get("TARGETS_SSH_PERSIST", "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_PERSIST
    except ValueError:
        return DEFAULT_PERSIST


_WIRE = 2
"""The socket protocol's version: 2 answers ``R`` before the client sends its command."""


def mux_key(workspace: Path, name: str, options: dict[str, Any]) -> str:
    """The socket name of one attached target: its workspace, name and options, and the
    wire version (a process of an earlier version, still running, is not reused)."""
    text = json.dumps([_WIRE, str(workspace), name, options], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def mux_dir(create: bool = False) -> Path | None:
    """The user's private socket folder, or None when it is not safe to use."""
    path = Path(tempfile.gettempdir()) / f"targets-ssh-{os.getuid()}"
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    try:
        info = path.lstat()
    except OSError:
        return None
    import stat

    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return path


# -- the client side -----------------------------------------------------------------


class MuxChannel:
    """A command started by a mux process, with the parts of paramiko's Channel that the
    agent client uses: ``recv``, ``sendall``, ``shutdown_write``, ``settimeout``,
    ``recv_exit_status``, ``makefile_stderr`` and ``close``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._out = bytearray()
        self._err = bytearray()
        self._status: int | None = None
        self._eof = False
        self._started = False
        self._ready = False

    def _read_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            part = self._sock.recv(n - len(data))
            if not part:
                break
            data += part
        return bytes(data)

    def _frame(self) -> bool:
        """Read one frame; False at the end of the stream."""
        header = self._read_exact(_HEADER.size)
        if len(header) < _HEADER.size:
            self._eof = True
            return False
        kind, length = _HEADER.unpack(header)
        payload = self._read_exact(length)
        if kind == b"O":
            self._out += payload
        elif kind == b"E":
            self._err += payload
        elif kind == b"X":
            self._status = struct.unpack(">i", payload)[0]
            self._eof = True
            return False
        elif kind == b"S":
            self._started = True
        elif kind == b"R":
            self._ready = True
        elif kind == b"!":
            self._eof = True
            raise MuxUnavailable(payload.decode("utf-8", "replace"))
        return True

    def recv(self, n: int) -> bytes:
        while not self._out and not self._eof:
            self._frame()
        head = bytes(self._out[:n])
        del self._out[:n]
        return head

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def shutdown_write(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def recv_exit_status(self) -> int:
        while not self._eof:
            self._frame()
        return -1 if self._status is None else self._status

    def makefile_stderr(self, mode: str = "rb") -> io.BytesIO:
        self.recv_exit_status()
        return io.BytesIO(bytes(self._err))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def communicate(
        self, input: bytes | None = None, timeout: float | None = 60
    ) -> tuple[int, bytes, bytes]:
        """Feed ``input``, then read the command to its end: ``(exit status, stdout,
        stderr)``. Raises TimeoutError after ``timeout`` seconds (the socket is closed,
        which ends the command's channel)."""

        def feed() -> None:
            with contextlib.suppress(OSError):
                if input:
                    self._sock.sendall(input)
            self.shutdown_write()

        writer = threading.Thread(target=feed, name="targets-mux-stdin", daemon=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            writer.start()
            while not self._eof:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    self._sock.settimeout(left)
                self._frame()
            writer.join(timeout=1)
            status = -1 if self._status is None else self._status
            return status, bytes(self._out), bytes(self._err)
        finally:
            self.close()


def connect(
    key: str, command: str, timeout: float | None = None, *, spare: bool = False
) -> MuxChannel:
    """Start ``command`` through the mux process of ``key``. ``spare``: the command may be
    started ahead of time for the next client (it only waits for requests, as the agent's
    ``serve`` does), see the module's docstring.

    Two steps, so that a slow machine never decides the path: the process first says it
    is there (``R``, sent on accept, before anything is asked of the SSH connection),
    within ``timeout`` seconds (``TARGETS_SSH_MUX_TIMEOUT``, default 5); only then is the
    command sent, and its start (``S``, or ``!`` and an error) is awaited for as long as a
    direct connection's exec would take. A process that does not answer (stopped, hung)
    raises :class:`MuxUnavailable` with the command never sent, so it cannot run twice."""
    folder = mux_dir()
    if folder is None:
        raise MuxUnavailable("no private socket folder")
    path = folder / f"{key}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(connect_timeout() if timeout is None else timeout)
    try:
        sock.connect(str(path))
        channel = MuxChannel(sock)
        channel._frame()
        if not channel._ready:
            raise MuxUnavailable("the mux process did not answer")
        sock.settimeout(_START_TIMEOUT)
        request: dict[str, Any] = {"exec": command}
        if spare and os.environ.get("TARGETS_SSH_SPARE", "").strip() != "0":
            request["spare"] = True
        sock.sendall(json.dumps(request).encode() + b"\n")
        # Wait until the command has started, or for the error that sends us to a direct
        # connection (before the caller depends on this channel).
        channel._frame()
        if not channel._started:
            raise MuxUnavailable("the mux process did not start the command")
    except MuxUnavailable:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise MuxUnavailable(str(exc)) from exc
    sock.settimeout(None)
    return channel


def spawn(workspace: Path, name: str, key: str) -> None:
    """Start the mux process of an attached target in the background (it exits at once
    when another one already serves ``key``)."""
    folder = mux_dir(create=True)
    if folder is None:
        return
    from targets._detached import spawn as spawn_detached

    argv = [sys.executable, "-m", "targets.ssh.mux", str(workspace), name, key]
    spawn_detached(argv, folder / f"{key}.log")


def stop(key: str) -> bool:
    """Stop the mux process of ``key`` (e.g. at detach). True when one was running."""
    folder = mux_dir()
    if folder is None:
        return False
    import signal

    from targets._detached import signal_holder

    return signal_holder(
        folder / f"{key}.lock", folder / f"{key}.pid", signal.SIGTERM, b"targets.ssh.mux"
    )


# -- the mux process -----------------------------------------------------------------


_SPARE_HELLO_TIMEOUT = 60.0
"""How long a spare command may take to send its first reply before it is given up."""
_SPARE_WAIT = 10.0
"""How long a client waits for a spare of its command that is on its way (then it starts
the command itself)."""


def _read_reply(channel: Any) -> bytes:
    """The first frame a started agent sends (its hello: ``u32 length | header``),
    read whole from ``channel``; b"" when the command ended (or broke) first."""
    data = b""
    want = 4
    while len(data) < want:
        part = channel.recv(want - len(data))
        if not part:
            return b""
        data += part
        if want == 4 and len(data) == 4:
            want += struct.unpack(">I", data)[0]
            if want > 1 << 20:
                return b""
    return data


class _Spare:
    """A command started ahead of its client, with the first reply it sent."""

    def __init__(self, command: str, channel: Any, head: bytes) -> None:
        self.command = command
        self.channel = channel
        self.head = head

    def alive(self) -> bool:
        """Whether the command still runs and waits (nothing ended its channel)."""
        c = self.channel
        transport = c.get_transport()
        return not (
            c.closed
            or c.eof_received
            or c.exit_status_ready()
            or c.recv_ready()  # it said more than its hello: not in step
            or transport is None
            or not transport.is_active()
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.close()


class _Server:
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.lock = threading.Lock()
        self.active = 0
        self.last_seen = time.monotonic()
        self.broken = False
        self.spare: _Spare | None = None
        self.starting_spare: str | None = None  # the command of the spare on its way
        self.spare_ready = threading.Condition(self.lock)
        self.closed = False

    def take_spare(self, command: str) -> _Spare | None:
        """The spare of ``command`` when one is ready and alive (it is the caller's
        now; one on its way is waited for, as it is ahead of a command started now);
        any other spare is closed."""
        with self.lock:
            self.spare_ready.wait_for(lambda: self.starting_spare != command, timeout=_SPARE_WAIT)
            spare, self.spare = self.spare, None
        if spare is None:
            return None
        if spare.command == command and spare.alive():
            return spare
        spare.close()
        return None

    def start_spare(self, command: str) -> None:
        """Start ``command`` in the background as the next spare (unless one is ready or
        being started)."""
        with self.lock:
            if self.closed or self.broken or self.starting_spare is not None:
                return
            if self.spare is not None and self.spare.command == command:
                return
            self.starting_spare = command
        threading.Thread(target=self._make_spare, args=(command,), daemon=True).start()

    def _make_spare(self, command: str) -> None:
        spare = None
        try:
            channel = self.connection.exec(command)
            channel.settimeout(_SPARE_HELLO_TIMEOUT)
            try:
                head = _read_reply(channel)
            except Exception:
                head = b""
            if head:
                channel.settimeout(None)
                spare = _Spare(command, channel, head)
            else:  # it ended (e.g. no agent of that version there): no spare
                channel.close()
        except Exception:
            pass  # the next client starts its command as usual, and learns why
        finally:
            with self.lock:
                self.starting_spare = None
                if spare is not None and not self.closed:
                    old, self.spare = self.spare, spare
                    spare = None
                else:
                    old = None
                self.spare_ready.notify_all()
            for extra in (old, spare):
                if extra is not None:
                    extra.close()

    def _exec(self, command: str) -> Any:
        """``connection.exec``; when the server refuses a new session while a spare holds
        one (sshd's ``MaxSessions``, 10 by default), the spare is closed and the command
        tried once more."""
        try:
            return self.connection.exec(command)
        except Exception:
            with self.lock:
                spare, self.spare = self.spare, None
            if spare is None:
                raise
            spare.close()
            return self.connection.exec(command)

    def close_spare(self) -> None:
        with self.lock:
            self.closed = True
            spare, self.spare = self.spare, None
            self.spare_ready.notify_all()
        if spare is not None:
            spare.close()

    def serve_client(self, client: socket.socket) -> None:
        with self.lock:
            self.active += 1
        try:
            self._serve(client)
        except Exception:  # one client's trouble never stops the process
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()
            with self.lock:
                self.active -= 1
                self.last_seen = time.monotonic()

    def _serve(self, client: socket.socket) -> None:
        client.sendall(_HEADER.pack(b"R", 0))  # here: the client may send its command
        request = bytearray()
        while not request.endswith(b"\n"):
            part = client.recv(1)
            if not part:
                return
            request += part
            if len(request) > 1 << 20:
                return
        asked = json.loads(request)
        command = str(asked["exec"])
        spare_ok = asked.get("spare") is True
        send_lock = threading.Lock()

        def send(kind: bytes, payload: bytes) -> None:
            with send_lock:
                client.sendall(_HEADER.pack(kind, len(payload)) + payload)

        spare = self.take_spare(command) if spare_ok else None
        if spare is not None:
            channel = spare.channel
        else:
            try:
                channel = self._exec(command)
            except Exception as exc:  # told to the client, which connects itself
                self.broken = True
                send(b"!", str(exc).encode())
                return
        send(b"S", b"")
        try:
            if spare is not None:
                try:
                    send(b"O", spare.head)  # the reply it sent while it waited
                except OSError:
                    channel.close()  # the client is gone already
                    raise
            self._relay(client, channel, send)
        finally:
            if spare_ok:
                self.start_spare(command)  # for the next client of this command

    def _relay(self, client: socket.socket, channel: Any, send: Any) -> None:

        def stdin() -> None:
            try:
                while True:
                    data = client.recv(_CHUNK)
                    if not data:
                        break
                    channel.sendall(data)
            except OSError:
                channel.close()  # the client is gone: end the command's session
                return
            from targets.ssh.channels import shutdown_write

            with contextlib.suppress(OSError, EOFError):
                shutdown_write(channel)

        def stderr() -> None:
            while True:
                data = channel.recv_stderr(_CHUNK)
                if not data:
                    return
                send(b"E", data)

        threads = [threading.Thread(target=f, daemon=True) for f in (stdin, stderr)]
        for thread in threads:
            thread.start()
        try:
            while True:
                data = channel.recv(_CHUNK)
                if not data:
                    break
                send(b"O", data)
            threads[1].join()
            send(b"X", struct.pack(">i", channel.recv_exit_status()))
        except OSError:
            pass  # the client went away
        finally:
            channel.close()

    def idle_for(self) -> float:
        with self.lock:
            return 0.0 if self.active else time.monotonic() - self.last_seen


def main(argv: list[str]) -> int:
    workspace, name, key = Path(argv[0]), argv[1], argv[2]
    persist = persist_seconds()
    folder = mux_dir(create=True)
    if folder is None or persist <= 0:
        return 0
    lock_path, log_path = folder / f"{key}.lock", folder / f"{key}.log"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # another process serves this target
        try:
            return _serve_target(folder, workspace, name, key, persist)
        finally:
            # Leave no files behind (a log only when it says why nothing was shared).
            with contextlib.suppress(OSError):
                lock_path.unlink()
            with contextlib.suppress(OSError):
                if log_path.stat().st_size == 0:
                    log_path.unlink()


@runtime_checkable
class SharesConnection(Protocol):
    """A target whose SSH connection can be shared between commands (``vm`` and the
    kinds built on it): the name of its shared connection, and the connection."""

    @property
    def mux_key(self) -> str | None: ...

    def connection(self) -> Any: ...


def _serve_target(folder: Path, workspace: Path, name: str, key: str, persist: float) -> int:
    from targets.workspace import Workspace

    try:
        target = Workspace(workspace).get_target(name)
    except Exception as exc:
        print(f"not sharing a connection to {name!r} of {workspace}: {exc}", flush=True)
        return 0
    if not isinstance(target, SharesConnection) or target.mux_key != key:
        print(f"target {name!r} of {workspace} is not this connection ({key})", flush=True)
        return 0
    connection = target.connection()
    try:
        connection.transport  # connect now: a failure leaves no socket behind  # noqa: B018
    except Exception as exc:  # the commands connect directly and report it
        print(f"not sharing a connection to {name!r}: {exc}", flush=True)
        return 0
    path = folder / f"{key}.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a socket left by a process that died (we hold the lock)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(64)
    listener.settimeout(1.0)
    (folder / f"{key}.pid").write_text(str(os.getpid()))
    server = _Server(connection)
    import signal

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.is_set() and not server.broken:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                if server.idle_for() >= persist:
                    break
                continue
            threading.Thread(target=server.serve_client, args=(client,), daemon=True).start()
    finally:
        # No new client can come once the socket is gone; running ones keep their channel
        # until they end (the process waits for them).
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (folder / f"{key}.pid").unlink()
        listener.close()
        deadline = time.monotonic() + 3600
        server.close_spare()
        while server.idle_for() == 0.0 and time.monotonic() < deadline:
            time.sleep(0.2)
        server.close_spare()  # one started by a client that ended meanwhile
        with contextlib.suppress(Exception):
            connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
