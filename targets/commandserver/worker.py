"""One command in a fork of the command server: become the client's process, run the
command, exit with its status (the server reports it to the client)."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import select
import signal
import socket
import struct
import sys
from typing import Any, NoReturn

__all__ = ["run"]

_FRAME = struct.Struct(">cI")
_MAX_REQUEST = 64 << 20


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < 4:
        raise EOFError("no request")
    (length,) = struct.unpack(">I", data[:4])
    if length > _MAX_REQUEST:
        raise ValueError("request too large")
    body = bytearray(data[4:])
    while len(body) < length:
        part = conn.recv(length - len(body))
        if not part:
            raise EOFError("request cut short")
        body += part
    return json.loads(body.decode("utf-8", "surrogateescape")), list(fds)


def _stream(fd: int, mode: str, described: Any) -> io.TextIOWrapper:
    encoding, errors, line_buffering, write_through = described
    buffer = open(fd, mode, closefd=False)  # noqa: SIM115 - lives as long as the process
    return io.TextIOWrapper(
        buffer,
        encoding=encoding,
        errors=errors,
        newline="\n",
        line_buffering=line_buffering,
        write_through=write_through,
    )


def _take_stdio(fds: list[int], present: list[bool], stdio: list[Any]) -> None:
    """The client's descriptors become 0, 1 and 2 (``/dev/null`` for one it had closed),
    and ``sys.stdin/stdout/stderr`` are made over them as Python made the client's."""
    received = iter(fds)
    for target, there in zip((0, 1, 2), present, strict=True):
        if there:
            fd = next(received)
            os.dup2(fd, target)
            os.close(fd)
        else:
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, target)
            os.close(null)
    streams = []
    for fd, mode, described in zip((0, 1, 2), ("rb", "wb", "wb"), stdio, strict=True):
        streams.append(_stream(fd, mode, described) if described else None)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]


def _end_with_client(conn: socket.socket) -> None:
    """The kernel ends this process (SIGIO, whose default is to terminate) once the
    client's end of the socket closes: a client killed with ``kill -9`` takes its command
    with it, as it would in-process."""
    fd = conn.fileno()
    signal.signal(signal.SIGIO, signal.SIG_DFL)
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    readable, _, _ = select.select([fd], [], [], 0)
    if readable:  # the client went away before this was armed
        os._exit(1)


def _exit_code(code: Any) -> int:
    """As the interpreter turns ``SystemExit(code)`` into an exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        sys.stderr.write(f"{code}\n")
    return 1


def _finish(code: int) -> NoReturn:
    """Exit as an interpreter does: exit handlers, non-daemon threads, flushed streams."""
    import atexit
    import threading

    with contextlib.suppress(BaseException):
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


def run(conn: socket.socket, key: str) -> NoReturn:
    """Run the client's command in this (forked) process; never returns."""
    try:
        request, fds = _read_request(conn)
    except (OSError, ValueError, EOFError):
        os._exit(1)
    if request.get("key") != key:
        message = b"another interpreter or settings"
        with contextlib.suppress(OSError):
            conn.sendall(_FRAME.pack(b"!", len(message)) + message)
        os._exit(0)
    _take_stdio(fds, list(request["fds"]), list(request["stdio"]))
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(int(request["umask"]))
    try:
        os.chdir(request["cwd"])
    except OSError as exc:
        sys.stderr.write(f"targets: cannot enter {request['cwd']}: {exc.strerror}\n")
        _finish(2)
    import tempfile

    tempfile.tempdir = None  # as the environment now says
    argv = list(request["argv"])
    sys.argv = [str(request.get("argv0") or "targets"), *argv]
    _end_with_client(conn)
    code = 0
    try:
        from targets.cli import main

        main(argv)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        code = -signal.SIGINT  # an uncaught Ctrl-C ends the interpreter by that signal
    except BaseException:
        import traceback

        with contextlib.suppress(Exception):
            traceback.print_exc()
        code = 1
    _finish(code)
