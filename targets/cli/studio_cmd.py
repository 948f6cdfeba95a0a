"""``targets studio``: the workspace's compute targets, runs, logs and metrics in a browser.

This module parses and prints; the web application is :mod:`targets.studio`.
"""

from __future__ import annotations

import contextlib
import os
import sys

import click

from targets.cli._common import err_console, warn, workspace_of
from targets.errors import UsageError


def _can_open_browser() -> bool:
    """A graphical session to open a browser in (never a text browser in this terminal)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _say(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()  # the URL must reach a pipe (a script, a test) at once


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="The port to listen on (0 picks a free one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; beyond loopback only with --allow-remote.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other machines can reach (anyone with the URL's token gets in).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
@click.pass_context
def studio(ctx: click.Context, port: int, host: str, allow_remote: bool, no_browser: bool) -> None:
    """Serve the studio: targets, runs, logs and metrics of this workspace in a browser.

    It listens on 127.0.0.1 and prints its URL with a random access token; every request
    needs that token (then kept in a cookie).

    \b
      targets studio
      targets studio --port 8765 --no-browser
    """
    try:
        import jinja2  # noqa: F401
        import uvicorn  # noqa: F401

        from targets.studio.server import is_loopback, serve
    except ImportError as exc:
        raise UsageError(
            f"the studio needs its extra ({exc.name} is not installed)",
            hint="pip install 'compute-targets[studio]'",
        ) from None

    if not is_loopback(host):
        if not allow_remote:
            raise UsageError(
                f"--host {host} can be reached from other machines",
                hint="add --allow-remote to serve beyond this machine, or leave --host out",
            )
        warn(
            f"the studio listens on {host}: anyone who can reach it and has the URL's token "
            "controls this workspace's targets; the traffic is not encrypted"
        )
    ws = workspace_of(ctx)
    console = err_console()
    with contextlib.suppress(KeyboardInterrupt):
        serve(
            ws.root,
            host=host,
            port=port,
            open_browser=not no_browser and _can_open_browser(),
            say=_say,
        )
    console.print("studio stopped", highlight=False)
