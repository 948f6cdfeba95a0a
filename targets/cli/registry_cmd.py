"""``targets registry login | logout``: passwords of private image registries, kept in
the OS keyring (runconfigs name the registry's address and username only)."""

from __future__ import annotations

import sys

import click

from targets.cli._common import say, workspace_of
from targets.errors import UsageError


@click.group()
def registry() -> None:
    """Store or forget the password of a private image registry."""


def _name(address: str, username: str) -> str:
    return f"registry:{address}|{username}"


@registry.command()
@click.argument("address")
@click.option("--username", "-u", required=True, help="The registry user name.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (for scripts and CI). Without it, the "
    "password is asked for on the terminal, without echo.",
)
@click.pass_context
def login(ctx: click.Context, address: str, username: str, password_stdin: bool) -> None:
    """Keep the password for USERNAME at the registry ADDRESS in the keyring.

    The password is never an argument (it would show in `ps` and the shell's history):
    it is asked for on the terminal, or read from standard input with --password-stdin
    (`echo "$TOKEN" | targets registry login ADDRESS -u USER --password-stdin`).

    Runs whose environment.docker.base_image_registry names this address and username
    use it to pull their base image; it is sent to the target with the pull request and
    never written to a file there.
    """
    from targets.secrets import check_backend, set_secret

    check_backend()
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin read nothing from standard input")
    elif sys.stdin.isatty():
        password = click.prompt(
            f"Password for {username}@{address}", hide_input=True, default="", err=True
        ).rstrip("\r\n")
        if not password:
            raise UsageError("no password was given")
    else:
        raise UsageError(
            "no terminal to ask for the password on",
            hint="pipe the password in and add --password-stdin, e.g. "
            f'`echo "$TOKEN" | targets registry login {address} -u {username} --password-stdin`',
        )
    ws = workspace_of(ctx)
    ws.ensure()
    set_secret(ws.secret_ref("registry", _name(address, username)), password)
    say(f"stored the password of {username}@{address} in the keyring")


@registry.command()
@click.argument("address")
@click.option("--username", "-u", required=True)
@click.pass_context
def logout(ctx: click.Context, address: str, username: str) -> None:
    """Forget the stored password of USERNAME at ADDRESS."""
    from targets.secrets import delete_secret

    ws = workspace_of(ctx)
    delete_secret(ws.secret_ref("registry", _name(address, username)))
    say(f"forgot the password of {username}@{address}")
