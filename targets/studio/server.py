"""Serving the studio: bind the address, print the URL with its access token, open the
browser if there is one, serve until Ctrl-C."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import webbrowser
from collections.abc import Callable
from pathlib import Path

from targets.errors import UsageError

__all__ = ["LOOPBACK", "bind", "is_loopback", "serve"]

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port). A UsageError when the
    port is taken or the address is not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another port with --port (0 picks a free one)",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    root: Path,
    *,
    host: str = LOOPBACK,
    port: int = 8765,
    open_browser: bool = True,
    say: Callable[[str], None] = print,
    refresh_interval: float | None = 1.0,
) -> None:
    """Serve the studio of the workspace at ``root`` until interrupted. ``say`` gets the
    URL (with the access token) and the notices."""
    import uvicorn

    from targets.studio.app import create_app
    from targets.studio.security import Access, new_token

    sock = bind(host, port)
    port = sock.getsockname()[1]
    names = {host}
    if is_loopback(host):
        names |= {"127.0.0.1", "localhost", "::1"}
    access = Access(new_token(), names, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/?token={access.token}"
    app = create_app(root, access, refresh_interval=refresh_interval)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    say(f"targets studio of {root}: {url}")
    if open_browser:
        with contextlib.suppress(webbrowser.Error):  # none: the URL above is for one elsewhere
            webbrowser.open(url, new=2)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
