"""One SSH connection to one server: lazy, verified, multiplexed.

:class:`SSHConnection` wraps one ``paramiko.Transport`` (one TCP connection) and opens a
channel per command. It verifies the host key (:mod:`targets.ssh.hostkeys`), reaches
the server through a ``ProxyJump`` host when the settings say so, authenticates in a
fixed order and turns every paramiko and socket error into a
:class:`~targets.errors.TargetsError` that names the server and what failed.

Authentication order: the key files (explicit ``--ssh-key`` first, then ``IdentityFile``
entries; an encrypted key is decrypted with ``key_passphrase()``), then the SSH agent's
keys when ``use_agent``, then the password when ``password()`` returns one. Secret
callables are called only when their method is reached, at most once per connect, and
their values never appear in messages, ``repr`` or logs.

Busy servers: sshd closes connections it has no room for before its greeting (past its
``MaxStartups``, 10:30:100 by default: many clients connecting at once), and a loaded
server or firewall may reset them during the key exchange. Such a failure is tried again
after a jittered, growing pause for up to ``retry_seconds`` (30 s by default). Nothing
else is tried again: a refused or unanswered TCP connection, a greeting that is not SSH,
a host key that is unknown or changed, refused credentials. Retries happen before the
host key is checked and before any credential is sent.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import random
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import paramiko

from targets.errors import AuthenticationError, ConnectionFailed, TargetsError
from targets.ssh.channels import EOF_LOCK, shutdown_write
from targets.ssh.config import SSHSettings, resolve_settings
from targets.ssh.hostkeys import AcceptHostKey, check_host_key, known_host_types

__all__ = ["CommandTimeout", "SSHConnection"]

# paramiko logs the errors it raises (with tracebacks) on its own loggers; we translate
# them into TargetsErrors, so keep Python's last-resort handler from printing them too.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

KEEPALIVE_SECONDS = 15
RETRY_SECONDS = 30.0
"""How long connecting keeps trying while the server drops the handshake (busy)."""
_FIRST_PAUSE = 0.1
_MAX_PAUSE = 2.0
_CHUNK = 1 << 16

SecretGetter = Callable[[], str | None]


def _handle_close_after_eof(channel: paramiko.Channel, message: paramiko.Message) -> None:
    """The transport's handler of a channel's CLOSE, run only once an EOF being sent on
    that channel has gone out (see :func:`targets.ssh.channels.shutdown_write`). Waits at
    most 5 s, so that a key re-exchange waiting on this reader thread cannot deadlock."""
    lock: threading.Lock | None = getattr(channel, EOF_LOCK, None)
    acquired = lock.acquire(timeout=5) if lock is not None else False
    try:
        paramiko.Channel._handle_close(channel, message)
    finally:
        if acquired and lock is not None:
            lock.release()


def _order_eof_before_close(transport: paramiko.Transport) -> None:
    table = dict(paramiko.Transport._channel_handler_table)
    table[paramiko.common.MSG_CHANNEL_CLOSE] = _handle_close_after_eof
    transport._channel_handler_table = table


_AEAD = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _prefer_aead(transport: paramiko.Transport) -> None:
    """Offer AES-GCM first (paramiko lists it last): one pass of an authenticated cipher
    per packet instead of AES-CTR plus a separate HMAC-SHA2, which paramiko runs once per
    32 KiB packet, in the sending thread. The other ciphers stay offered, in paramiko's
    order, for servers without GCM (OpenSSH has had it since 6.2)."""
    options = transport.get_security_options()
    offered = tuple(options.ciphers)
    first = tuple(c for c in _AEAD if c in offered)
    options.ciphers = first + tuple(c for c in offered if c not in first)


class CommandTimeout(ConnectionFailed):
    """A remote command did not finish within its timeout (its channel was closed)."""


class _HandshakeDropped(ConnectionFailed):
    """The server closed or reset the connection before the SSH handshake was done,
    as sshd does past ``MaxStartups``: worth trying again after a pause."""


_DROPPED = (EOFError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
# What sshd writes to a connection it turns away past MaxStartups, before closing it.
_BUSY_NOTICE = "Exceeded MaxStartups"


def _dropped(exc: BaseException | None) -> bool:
    """Whether the handshake failed because the peer closed or reset the connection
    (paramiko wraps a failed banner read in an SSHException, the cause as its context)."""
    return isinstance(exc, _DROPPED) or (exc is not None and isinstance(exc.__context__, _DROPPED))


class _Greeting:
    """The lines a server sent before its SSH banner and the banner itself, as the
    transport reads them: a server that closed after saying nothing, after sshd's
    MaxStartups notice, or after its banner (during the key exchange) is busy; one that
    said something else is not an SSH server. Records by wrapping the transport's
    ``packetizer.readline``, which paramiko uses for these lines only."""

    def __init__(self, transport: paramiko.Transport) -> None:
        self.lines: list[str] = []
        packetizer = transport.packetizer
        read = packetizer.readline

        def readline(timeout: float) -> str:
            line: str = read(timeout)
            self.lines.append(line)
            return line

        packetizer.readline = readline

    @property
    def busy(self) -> bool:
        """Whether what the server sent before closing says "busy, try again"."""
        first = self.lines[0] if self.lines else ""
        return not first or first.startswith(_BUSY_NOTICE) or first.startswith("SSH-")


def _seconds(value: float) -> str:
    return f"{value:g} s"


class _Attempts:
    """What authentication tried, for the error message. Holds no secret."""

    def __init__(self) -> None:
        self.tried: list[str] = []
        self.notes: list[str] = []
        self.hints: list[str] = []
        self.allowed: list[str] = []

    def refused(self, what: str, exc: paramiko.AuthenticationException) -> None:
        self.tried.append(what)
        allowed = getattr(exc, "allowed_types", None)
        if allowed:
            self.allowed = list(allowed)


class SSHConnection:
    """A connection to one SSH server.

    Creating it opens nothing; the first call that needs the network (:meth:`exec`,
    :meth:`run`, :meth:`put_file`, :attr:`transport`) connects, blocking until the
    server is reached, its host key verified and the user authenticated. One TCP
    connection carries every channel (commands, SFTP when offered). :meth:`close` is idempotent; a
    later call that needs the network connects again, and so does one made after the
    connection dropped. A context manager. Safe to share between threads.

    ``password`` and ``key_passphrase`` are callables resolved late (e.g.
    :func:`targets.secrets.secret_getter`). ``accept_host_key`` decides about an unknown
    host key (see :class:`targets.ssh.hostkeys.HostKeyPolicy`); accepted keys are
    written to ``known_hosts`` (the workspace's file; ``~/.ssh/known_hosts`` is read
    too). ``connect_timeout`` bounds the TCP connect and the SSH handshake each; a
    handshake the server drops (busy: past sshd's ``MaxStartups``) is tried again with
    jittered, growing pauses for up to ``retry_seconds``.

    Raises (from any method that connects): :class:`ConnectionFailed` (nothing
    listening, no answer, unknown host name, failed handshake, jump host cannot reach
    the server), :class:`HostKeyError` (unknown and not accepted, or changed),
    :class:`AuthenticationError` (every method refused, or nothing to try).
    """

    def __init__(
        self,
        settings: SSHSettings,
        *,
        known_hosts: Path,
        password: SecretGetter | None = None,
        key_passphrase: SecretGetter | None = None,
        accept_host_key: AcceptHostKey = False,
        connect_timeout: float = 15.0,
        private_key: SecretGetter | None = None,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.settings = settings
        self.retry_seconds = retry_seconds
        self._private_key = private_key
        self.known_hosts = Path(known_hosts)
        self._password = password
        self._key_passphrase = key_passphrase
        self._accept = accept_host_key
        self.connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._no_sftp = False
        self._jump: SSHConnection | None = None

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        via = f" via {self.settings.jump.address}" if self.settings.jump else ""
        return f"<SSHConnection {self.settings.destination}{via} {state}>"

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether an authenticated transport is open now. No I/O."""
        t = self._transport
        return t is not None and t.is_active() and t.is_authenticated()

    @property
    def transport(self) -> paramiko.Transport:
        """The authenticated transport, connecting first when needed (blocking)."""
        with self._lock:
            transport = self._transport
            if transport is None or not self.connected:
                self._close_locked()
                transport = self._transport = self._connect()
            return transport

    def close(self) -> None:
        """Close channels, SFTP, the transport and any jump connection. Idempotent."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        sftp, self._sftp = self._sftp, None
        self._no_sftp = False
        transport, self._transport = self._transport, None
        jump, self._jump = self._jump, None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()
        if jump is not None:
            jump.close()

    # -- connecting ------------------------------------------------------------------

    def _connect(self) -> paramiko.Transport:
        """Connect, trying again while the server drops the handshake (see the module's
        docstring); other failures are raised at once."""
        deadline = time.monotonic() + self.retry_seconds
        pause = _FIRST_PAUSE
        attempts = 1
        while True:
            try:
                return self._connect_once()
            except _HandshakeDropped as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    s = self.settings
                    raise ConnectionFailed(
                        f"SSH handshake with {s.address} failed: the server closed the "
                        f"connection before the handshake was done ({attempts} attempts in "
                        f"{_seconds(round(self.retry_seconds))})",
                        hint="the server may be turning connections away (sshd's MaxStartups "
                        "when many clients connect at once): try again later, or raise "
                        "MaxStartups in its sshd_config",
                    ) from exc
                # Jittered, so that clients dropped together do not come back together.
                time.sleep(min(left, random.uniform(pause / 2, pause)))
                pause = min(pause * 2, _MAX_PAUSE)
                attempts += 1

    def _connect_once(self) -> paramiko.Transport:
        settings = self.settings
        sock: Any
        jump_settings = settings.jump
        if jump_settings is None and settings.proxy_jump:
            jump_settings = resolve_settings(settings.proxy_jump, use_agent=settings.use_agent)
            jump_settings = replace(
                jump_settings,
                key_files=tuple(dict.fromkeys(jump_settings.key_files + settings.key_files)),
            )
        if jump_settings is not None:
            # Design choice: the jump host gets the key passphrase (it only decrypts a
            # local key file) and the host-key decision, never the target's password.
            if self._jump is None:  # kept across attempts: it is the final hop that was busy
                self._jump = SSHConnection(
                    jump_settings,
                    known_hosts=self.known_hosts,
                    key_passphrase=self._key_passphrase,
                    accept_host_key=self._accept,
                    connect_timeout=self.connect_timeout,
                    retry_seconds=self.retry_seconds,
                )
            sock = self._open_through_jump(self._jump)
        else:
            sock = self._open_socket()
        transport = paramiko.Transport(sock)
        _prefer_aead(transport)
        _order_eof_before_close(transport)
        greeting = _Greeting(transport)
        try:
            self._handshake(transport, greeting)
            key = transport.get_remote_server_key()
            check_host_key(
                key,
                settings.hostname,
                settings.port,
                known_hosts=self.known_hosts,
                accept=self._accept,
            )
            self._authenticate(transport)
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(KEEPALIVE_SECONDS)
        return transport

    def _open_socket(self) -> socket.socket:
        s = self.settings
        where = s.address
        try:
            sock = socket.create_connection((s.hostname, s.port), timeout=self.connect_timeout)
        except socket.gaierror as exc:
            raise ConnectionFailed(
                f"cannot connect to {where}: the host name {s.hostname!r} does not resolve "
                f"({exc.strerror})",
                hint="check --address (and HostName in ~/.ssh/config) and this machine's DNS",
            ) from exc
        except ConnectionRefusedError as exc:
            raise ConnectionFailed(
                f"cannot connect to {where}: nothing is listening on {where}",
                hint="check the address and the port (--ssh-port), and that sshd runs there",
            ) from exc
        except TimeoutError as exc:  # socket.timeout is TimeoutError since 3.10
            raise ConnectionFailed(
                f"cannot connect to {where}: no answer within {_seconds(self.connect_timeout)}",
                hint="check that the machine is up and that firewalls (or cloud network "
                f"rules) let port {s.port} through",
            ) from exc
        except OSError as exc:
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
            raise ConnectionFailed(
                f"cannot connect to {where}: {reason}",
                hint="check the address and this machine's network",
            ) from exc
        # Small request/response messages: do not let Nagle's algorithm delay them.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _open_through_jump(self, jump: SSHConnection) -> paramiko.Channel:
        s = self.settings
        transport = jump.transport
        try:
            return transport.open_channel(
                "direct-tcpip",
                (s.hostname, s.port),
                ("127.0.0.1", 0),
                timeout=self.connect_timeout,
            )
        except paramiko.ChannelException as exc:
            raise ConnectionFailed(
                f"cannot connect to {s.address} through the jump host "
                f"{jump.settings.address}: {exc.text} (SSH error {exc.code})",
                hint="check the address as the jump host sees it, and that the jump host "
                "allows TCP forwarding (AllowTcpForwarding)",
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionFailed(
                f"cannot connect to {s.address} through the jump host "
                f"{jump.settings.address}: {exc or type(exc).__name__}",
            ) from exc

    def _handshake(self, transport: paramiko.Transport, greeting: _Greeting) -> None:
        s = self.settings
        transport.banner_timeout = self.connect_timeout
        transport.handshake_timeout = self.connect_timeout
        # Prefer the host-key types we already know for this server, as OpenSSH does.
        known = known_host_types(s.hostname, s.port, self.known_hosts)
        if known:
            options = transport.get_security_options()
            offered = list(options.key_types)
            if "ssh-rsa" in known:
                known = [t for t in ("rsa-sha2-512", "rsa-sha2-256") if t in offered] + known
            first = [t for t in dict.fromkeys(known) if t in offered]
            options.key_types = first + [t for t in offered if t not in first]
        done = threading.Event()
        transport.start_client(event=done)
        if not done.wait(self.connect_timeout + 1):
            raise ConnectionFailed(
                f"no SSH handshake with {s.address} within {_seconds(self.connect_timeout)}",
                hint="check that an SSH server (not another service) listens on that port",
            )
        if not transport.is_active():
            exc = transport.get_exception()
            if exc is not None and isinstance(exc.__context__, TimeoutError):
                raise ConnectionFailed(
                    f"no SSH answer from {s.address} within {_seconds(self.connect_timeout)} "
                    "(the TCP connection was accepted, but no SSH greeting came)",
                    hint="check that an SSH server (not another service) listens on that port "
                    "and is not overloaded",
                ) from exc
            reason = str(exc) if exc else "the server closed the connection"
            if (exc is None or _dropped(exc)) and greeting.busy:
                raise _HandshakeDropped(
                    f"SSH handshake with {s.address} failed: {reason}",
                    hint="the server closed the connection: it may be busy (MaxStartups)",
                ) from exc
            raise ConnectionFailed(
                f"SSH handshake with {s.address} failed: {reason}",
                hint="check that an SSH server (not another service) listens on that port",
            ) from exc

    def _authenticate(self, transport: paramiko.Transport) -> None:
        s = self.settings
        attempts = _Attempts()
        passphrase_cache: list[str | None] = []

        def passphrase() -> str | None:
            if not passphrase_cache:
                passphrase_cache.append(self._key_passphrase() if self._key_passphrase else None)
            return passphrase_cache[0]

        try:
            in_memory = self._private_key() if self._private_key is not None else None
            if in_memory:
                key = self._key_from_text(in_memory, attempts)
                if key is not None and self._try_key(transport, key, "the stored key", attempts):
                    return
            for path in s.key_files:
                key = self._load_key(path, passphrase, attempts)
                if key is not None and self._try_key(transport, key, f"key {path}", attempts):
                    return
            if s.use_agent:
                agent = paramiko.Agent()
                try:
                    keys = agent.get_keys()
                    if not keys:
                        attempts.notes.append("the SSH agent is not running or holds no key")
                        attempts.hints.append("start ssh-agent and `ssh-add` your key")
                    for key in keys:
                        if self._try_key(transport, key, "an agent key", attempts):
                            return
                finally:
                    agent.close()
            if self._password is not None:
                value = self._password()
                if value:
                    try:
                        transport.auth_password(s.username, value)
                    except paramiko.AuthenticationException as exc:
                        attempts.refused("password", exc)
                        attempts.hints.append(
                            "check the password (and the user name); a wrong password "
                            "gets the same answer as an unknown user"
                        )
                    del value
                    if transport.is_authenticated():
                        return
        except paramiko.AuthenticationException as exc:  # not expected: caught per attempt
            raise self._auth_error(attempts) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionFailed(
                f"the connection to {s.address} broke during authentication: "
                f"{exc or type(exc).__name__}"
            ) from exc
        raise self._auth_error(attempts)

    def _try_key(
        self, transport: paramiko.Transport, key: paramiko.PKey, what: str, attempts: _Attempts
    ) -> bool:
        try:
            transport.auth_publickey(self.settings.username, key)
        except paramiko.AuthenticationException as exc:
            attempts.refused(what, exc)
            return False
        if transport.is_authenticated():
            return True
        attempts.tried.append(f"{what} (accepted as a first factor only)")
        return False

    @staticmethod
    def _key_from_text(text: str, attempts: _Attempts) -> paramiko.PKey | None:
        """A private key held in memory (from the keyring), never written to a file."""
        import io

        for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            try:
                return cls.from_private_key(io.StringIO(text))
            except (paramiko.SSHException, ValueError, TypeError):
                continue
        attempts.notes.append("the stored private key is not a usable key")
        return None

    @staticmethod
    def _load_key(
        path: str, passphrase: Callable[[], str | None], attempts: _Attempts
    ) -> paramiko.PKey | None:
        if not Path(path).is_file():
            attempts.notes.append(f"key file {path} does not exist")
            return None
        try:
            return paramiko.PKey.from_path(path)
        except (TypeError, paramiko.PasswordRequiredException):
            pass  # encrypted: needs the passphrase
        except (ValueError, OSError, paramiko.SSHException) as exc:
            attempts.notes.append(
                f"{path} is not a usable private key ({type(exc).__name__}; "
                "supported: ed25519, ECDSA, RSA)"
            )
            return None
        phrase = passphrase()
        if not phrase:
            attempts.notes.append(f"the key {path} is encrypted and no passphrase was given")
            attempts.hints.append(
                "pass the key's passphrase with --ssh-key-passphrase-stdin, or load the key "
                "into an SSH agent (`ssh-add KEY`) and use --use-agent"
            )
            return None
        try:
            return paramiko.PKey.from_path(path, password=phrase.encode())
        except (TypeError, ValueError, paramiko.SSHException):
            attempts.notes.append(f"the passphrase for the key {path} is wrong")
            attempts.hints.append("give the key's correct passphrase")
            return None

    def _auth_error(self, attempts: _Attempts) -> AuthenticationError:
        s = self.settings
        if attempts.tried:
            message = f"{s.destination} refused the credentials; tried: " + ", ".join(
                attempts.tried
            )
        else:
            message = f"no credentials to try for {s.destination}"
        if attempts.notes:
            message += "\n  " + "\n  ".join(attempts.notes)
        if attempts.allowed:
            message += "\n  the server accepts: " + ", ".join(attempts.allowed)
        hints = list(dict.fromkeys(attempts.hints))
        if not hints:
            hints.append(
                "check the user name (--username), and give a key the server accepts "
                "(--ssh-key), --use-agent, or --password-stdin"
            )
        return AuthenticationError(message, hint="; ".join(hints))

    # -- using it --------------------------------------------------------------------

    def _broken(self, doing: str, exc: BaseException) -> ConnectionFailed:
        return ConnectionFailed(
            f"{doing} on {self.settings.destination} failed: {exc or type(exc).__name__}",
            hint="the connection may have dropped; try again",
        )

    def exec(self, command: str) -> paramiko.Channel:
        """Start ``command`` on a new session channel (``exec_command``) and return the
        channel; the caller reads, writes and closes it. Blocks until the server has
        accepted the command, not until it ends."""
        transport = self.transport
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
            setattr(channel, EOF_LOCK, threading.Lock())
            channel.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._broken("starting a command", exc) from exc
        return channel

    def run(
        self, command: str, *, input: bytes | None = None, timeout: float | None = 60
    ) -> tuple[int, bytes, bytes]:
        """Run ``command`` to completion: ``(exit code, stdout, stderr)``.

        ``input`` is written to its stdin (then closed). Blocks; raises
        :class:`CommandTimeout` when it takes longer than ``timeout`` seconds (``None``:
        no limit). The exit code is -1 when the command was killed by a signal.
        """
        channel = self.exec(command)
        deadline = None if timeout is None else time.monotonic() + timeout
        failure: list[BaseException] = []

        def feed() -> None:
            try:
                if input:
                    channel.sendall(input)
                shutdown_write(channel)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if not channel.closed:
                    failure.append(exc)

        writer = threading.Thread(target=feed, name="targets-ssh-stdin", daemon=True)
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            writer.start()
            fd = channel.fileno()
            while True:
                while channel.recv_ready():
                    out.append(channel.recv(_CHUNK))
                while channel.recv_stderr_ready():
                    err.append(channel.recv_stderr(_CHUNK))
                if (channel.eof_received or channel.closed) and not (
                    channel.recv_ready() or channel.recv_stderr_ready()
                ):
                    break
                wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if wait <= 0:
                    raise self._timed_out(timeout)
                select.select([fd], [], [], wait)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not channel.status_event.wait(remaining):
                raise self._timed_out(timeout)
            writer.join(timeout=1)
            if failure and channel.exit_status == -1:
                raise self._broken("a command", failure[0]) from failure[0]
            return channel.exit_status, b"".join(out), b"".join(err)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._broken("a command", exc) from exc
        finally:
            channel.close()

    def _timed_out(self, timeout: float | None) -> CommandTimeout:
        return CommandTimeout(
            f"a command on {self.settings.destination} did not finish within "
            f"{_seconds(timeout or 0)}; its channel was closed",
            hint="the command may still run on the target if it ignores a closed stdout",
        )

    def _sftp_client(self) -> paramiko.SFTPClient | None:
        """The connection's SFTP session (opened on first use), or ``None`` when the
        server offers no SFTP subsystem (no ``Subsystem sftp`` line in sshd_config, or
        its sftp-server is missing): the answer is remembered until :meth:`close`."""
        with self._lock:
            transport = self.transport
            if self._no_sftp:
                return None
            sftp = self._sftp
            if sftp is None or sftp.sock.closed or sftp.sock.get_transport() is not transport:
                try:
                    channel = transport.open_session(timeout=self.connect_timeout)
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise self._broken("opening SFTP", exc) from exc
                try:
                    # What SFTPClient.from_transport does, split so that a refused
                    # subsystem (paramiko: "Channel closed.", the transport still up)
                    # is told apart from a dropped connection.
                    channel.invoke_subsystem("sftp")
                    sftp = paramiko.SFTPClient(channel)
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    channel.close()
                    if transport.is_active():
                        self._no_sftp = True
                        return None
                    raise self._broken("opening SFTP", exc) from exc
                self._sftp = sftp
            return sftp

    def put_file(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Copy the local file to ``remote``, atomically: it is written under a temporary
        name in the same folder, given ``mode``, then renamed over ``remote``, so a reader
        sees the old file or the whole new one. A relative ``remote`` (or one starting
        with ``~/``) is relative to the remote home. The remote folder must exist. Blocks.

        Over SFTP (``posix-rename``) when the server offers it; otherwise (no ``Subsystem
        sftp`` in its sshd_config, as on some hardened servers and minimal images) over a
        command channel: ``sh`` receives the bytes with ``cat``, checks their size and
        SHA-256 (``sha256sum`` or ``shasum`` when the host has one), then ``chmod`` and
        ``mv -f`` (a ``rename``) -- the same guarantees; the file is then read into
        memory whole (it is meant for files like the agent, not for data sets).

        Raises :class:`TargetsError` when the file cannot be written there (missing or
        unwritable folder), :class:`ConnectionFailed` when the connection breaks or the
        bytes arrive damaged.
        """
        local = Path(local)
        if not local.is_file():
            raise TargetsError(f"cannot upload {local}: it is not a file")
        target = remote[2:] if remote.startswith("~/") else remote
        path = PurePosixPath(target)
        temp = str(path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}"))
        sftp = self._sftp_client()
        if sftp is None:
            self._put_over_exec(local, remote, target, temp, mode)
            return
        try:
            sftp.put(str(local), temp, confirm=True)
            sftp.chmod(temp, mode)
            sftp.posix_rename(temp, target)
        except (paramiko.SSHException, EOFError) as exc:
            raise self._broken(f"uploading {remote}", exc) from exc
        except OSError as exc:
            with contextlib.suppress(Exception):
                sftp.remove(temp)
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise self._cannot_write(remote, reason) from exc

    def _cannot_write(self, remote: str, reason: str) -> TargetsError:
        return TargetsError(
            f"cannot write {remote} on {self.settings.destination}: {reason}",
            hint=f"check that the remote folder exists and is writable by {self.settings.username}",
        )

    def _put_over_exec(self, local: Path, remote: str, target: str, temp: str, mode: int) -> None:
        """:meth:`put_file` without SFTP: the bytes go to ``sh`` on the command channel."""
        data = local.read_bytes()
        args = [
            temp,
            target,
            f"{mode & 0o7777:o}",
            str(len(data)),
            hashlib.sha256(data).hexdigest(),
        ]
        command = "sh -c " + " ".join(shlex.quote(a) for a in (_RECEIVE, "sh", *args))
        # Generous: a slow link still moves 100 kB/s; a stalled one is not waited on forever.
        code, _out, err = self.run(command, input=data, timeout=120 + len(data) / 100_000)
        reason = err.decode(errors="replace").strip().splitlines()
        if code == _RECEIVE_DAMAGED:
            raise ConnectionFailed(
                f"uploading {remote} to {self.settings.destination} failed: "
                + (reason[-1] if reason else "the bytes arrived damaged"),
                hint="the connection may have dropped; try again",
            )
        if code != 0:
            raise self._cannot_write(remote, reason[-1] if reason else f"exit code {code}")


# The receiving end of put_file without SFTP, run as `sh -c _RECEIVE sh TEMP DEST MODE SIZE
# SHA256`. POSIX sh and coreutils/busybox only; the temporary file is removed on any failure.
_RECEIVE_DAMAGED = 4
_RECEIVE = r"""t=$1 d=$2
[ -d "$d" ] && { echo "$d is a folder" >&2; exit 3; }
umask 077
cat > "$t" || { rm -f "$t"; exit 3; }
n=$(wc -c < "$t" | tr -d ' ')
[ "$n" = "$4" ] || { rm -f "$t"; echo "received $n of $4 bytes" >&2; exit 4; }
if command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum < "$t")
elif command -v shasum >/dev/null 2>&1; then h=$(shasum -a 256 < "$t")
else h=$5; fi
[ "${h%% *}" = "$5" ] || { rm -f "$t"; echo "the SHA-256 differs" >&2; exit 4; }
chmod "$3" "$t" && mv -f "$t" "$d" || { rm -f "$t"; exit 3; }
"""
