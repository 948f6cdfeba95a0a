"""``targets attach | detach | list | show | kinds``.

``attach`` is generic: the options after ``--type KIND`` are validated against that kind's
options model (a pydantic model with ``extra="forbid"``), so a plugin gets its attach
options, their validation and their help without writing CLI code. ``--some-option value``
sets the field ``some_option``; a boolean field takes a bare flag (``--use-agent``); a field
whose name ends in ``_stdin`` reads its value from standard input (``--password-stdin``).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from targets.cli._common import (
    emit_json,
    err_console,
    fmt_time,
    output_option,
    print_mapping,
    print_table,
    shown_facts,
    workspace_of,
)
from targets.errors import ConfigError, PluginLoadError, UsageError


def _parse_kind_options(fields: dict[str, Any], raw: list[str]) -> dict[str, Any]:
    """``['--ssh-port', '2222', '--use-agent']`` -> ``{'ssh_port': '2222', 'use_agent': True}``."""
    values: dict[str, Any] = {}
    i = 0
    while i < len(raw):
        token = raw[i]
        if not token.startswith("--"):
            raise UsageError(
                f"unexpected argument {token!r}", hint="options look like --name value"
            )
        key, eq, inline = token[2:].partition("=")
        field = key.replace("-", "_")
        if field not in fields:
            import difflib

            choices = sorted(n.replace("_", "-") for n in fields)
            close = difflib.get_close_matches(key, choices, n=1)
            hint = (
                f"did you mean --{close[0]}?"
                if close
                else ("options of this kind: " + (", ".join("--" + c for c in choices) or "none"))
            )
            raise UsageError(f"unknown option --{key} for this target kind", hint=hint)
        annotation = str(fields[field].annotation)
        if eq:
            values[field] = inline
        elif "bool" in annotation and (i + 1 >= len(raw) or raw[i + 1].startswith("--")):
            values[field] = True
        elif i + 1 < len(raw):
            values[field] = raw[i + 1]
            i += 1
        else:
            raise UsageError(f"option --{key} needs a value")
        i += 1
    return values


def _split_secret_flags(
    raw: list[str], secret_names: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """Take ``--<secret>-stdin`` flags out of the kind's options."""
    flags = {f"--{n.replace('_', '-')}-stdin": n for n in secret_names}
    rest, wanted = [], []
    for token in raw:
        if token in flags:
            wanted.append(flags[token])
        else:
            rest.append(token)
    return rest, wanted


def _ask_host_key(host: str, key_type: str, fingerprint: str) -> bool:
    click.echo(f"The authenticity of host {host} can't be established.", err=True)
    click.echo(f"{key_type} key fingerprint is {fingerprint}.", err=True)
    return click.confirm(
        "Accept this key and remember it for this workspace?", err=True, default=False
    )


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name")
@click.option(
    "--type",
    "kind",
    default=None,
    help="The target kind (see `targets kinds`); `vm` when --address is given.",
)
@click.option("--force", is_flag=True, help="Replace a target of the same name.")
@click.option(
    "--accept-host-key",
    is_flag=True,
    help="Accept an unknown SSH host key (it is shown; a changed key is never accepted).",
)
@output_option
@click.pass_context
def attach(
    ctx: click.Context, name: str, kind: str | None, force: bool, accept_host_key: bool, output: str
) -> None:
    """Attach the compute target NAME: connect once, record what is there.

    Options depend on the kind (`targets kinds --output json` lists them). Secrets are
    read from standard input with `--password-stdin` or `--ssh-key-passphrase-stdin` and
    kept in the OS keyring, never in files.

    \b
      targets attach dsvm --address vm.example.com --username azureuser \\
          --ssh-key ~/.ssh/id_ed25519
      targets attach gpubox --address 10.1.2.3 --ssh-port 2222 --username me \\
          --password-stdin < pw.txt
    """
    from targets.attachment import HostKeyPolicy, attach_target, check_new_name
    from targets.registry import load_kind, resolve_kind_name

    ws = workspace_of(ctx)
    check_new_name(ws, name, replace=force)
    extra = list(ctx.args)
    if kind is None:
        kind = "vm" if any(a.split("=")[0] == "--address" for a in extra) else None
    if kind is None:
        raise UsageError(
            "say which kind of target this is with --type KIND",
            hint="targets kinds lists the installed kinds",
        )
    kind = resolve_kind_name(kind)
    cls = load_kind(kind)
    extra, wanted_secrets = _split_secret_flags(extra, cls.secret_names)
    values = _parse_kind_options(dict(cls.options_model.model_fields), extra)
    secrets: dict[str, str] = {}
    if wanted_secrets:
        if len(wanted_secrets) > 1:
            raise UsageError(
                "only one secret can be read from standard input per attach",
                hint="use an SSH agent or an unencrypted key for the other",
            )
        from targets.secrets import check_backend

        check_backend()  # before reading: nothing is asked for when it cannot be stored
        value = sys.stdin.read().rstrip("\r\n")
        if not value:
            raise UsageError(
                f"--{wanted_secrets[0].replace('_', '-')}-stdin read nothing from standard input"
            )
        secrets[wanted_secrets[0]] = value
    if accept_host_key:
        accept: HostKeyPolicy = True
    elif sys.stdin.isatty() and sys.stderr.isatty():
        accept = _ask_host_key
    else:
        accept = False
    record = attach_target(
        ws, name, kind, values, secrets=secrets, accept_host_key=accept, replace=force
    )
    if output == "json":
        emit_json({"name": name, **record.to_yaml()})
    else:
        err_console().print(f"attached [bold]{name}[/] ({record.kind})", highlight=False)


@click.command()
@click.argument("name")
@click.pass_context
def detach(ctx: click.Context, name: str) -> None:
    """Detach the compute target NAME (its runs stay in the history)."""
    from targets.attachment import detach_target

    record = detach_target(workspace_of(ctx), name)
    err_console().print(f"detached {record.name} ({record.kind})", highlight=False)


@click.command("list")
@output_option
@click.pass_context
def list_targets(ctx: click.Context, output: str) -> None:
    """List the attached compute targets (`local` is always there)."""
    from targets.registry import where

    ws = workspace_of(ctx)
    records = ws.targets()
    if output == "json":
        emit_json([{"name": r.name, **r.to_yaml()} for r in records.values()])
        return
    rows = [
        [r.name, r.kind, where(r.kind, r.options), fmt_time(r.attached_at)]
        for r in records.values()
    ]
    print_table(["NAME", "KIND", "WHERE", "ATTACHED"], rows)


@click.command()
@click.argument("name")
@output_option
@click.pass_context
def show(ctx: click.Context, name: str, output: str) -> None:
    """Show an attached target: its options and what was found when it was attached."""
    ws = workspace_of(ctx)
    record = ws.target_record(name)
    from targets.errors import TargetsError

    facts = dict(record.facts)
    live: dict[str, Any] = {}
    try:
        with ws.get_target(name) as target:
            if not facts:  # never attached (`local`): what is there now
                facts = target.probe()
            live = target.describe()
    except TargetsError:
        pass  # a broken plugin: show what is stored
    facts.update(_package_facts_now(ws, name))  # pip.conf may have changed since attach
    data = {
        "name": record.name,
        "kind": record.kind,
        "options": dict(record.options),
        "facts": facts,
        "attached_at": record.attached_at,
        "secrets": list(record.secrets),
    }
    if live:
        data["status"] = live
    if output == "json":
        emit_json(data)
        return
    shown: dict[str, Any] = {"name": record.name, "kind": record.kind}
    from targets.registry import find_kind

    cls = find_kind(record.kind)
    options = cls.shown_options(record.options) if cls is not None else dict(record.options)
    shown.update({k.replace("_", " "): v for k, v in options.items()})
    shown.update(shown_facts(facts))
    if record.secrets:
        shown["secrets"] = ", ".join(f"{s} (in keyring)" for s in record.secrets)
    print_mapping(shown)
    if live:
        from targets.cli.clusters_cmd import print_cluster_status

        print_cluster_status(live)


def _package_facts_now(ws: Any, name: str) -> dict[str, Any]:
    """Which package index and certificate bundle an environment build on the target
    would use now (asked of its agent; masked); nothing when it cannot be asked, and
    then ``show`` keeps what was recorded at attach."""
    from targets.compute import AgentTarget
    from targets.errors import TargetsError

    try:
        with ws.get_target(name) as target:
            if isinstance(target, AgentTarget):
                return dict(target.agent().call("package_settings"))
    except TargetsError:
        pass
    return {}


@click.command()
@output_option
def kinds(output: str) -> None:
    """List the installed target kinds, their distribution and capabilities."""
    from targets.registry import available_kinds, load_kind

    rows = []
    data = []
    for info in available_kinds():
        entry: dict[str, Any] = {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
        }
        try:
            cls = load_kind(info.name)
        except (PluginLoadError, ConfigError) as exc:
            entry["error"] = str(exc).splitlines()[0]
            rows.append([info.name, info.distribution, "-", (f"broken: {entry['error']}", "red")])
            data.append(entry)
            continue
        caps = sorted(c.value for c in cls.capabilities)
        entry.update(
            {
                "aliases": list(cls.aliases),
                "description": cls.description,
                "capabilities": caps,
                "options": {
                    n: str(f.annotation) for n, f in cls.options_model.model_fields.items()
                },
            }
        )
        data.append(entry)
        name = info.name + (f" ({', '.join(cls.aliases)})" if cls.aliases else "")
        rows.append([name, f"{info.distribution} {info.version}", ", ".join(caps), cls.description])
    if output == "json":
        emit_json(data)
        return
    print_table(["KIND", "DISTRIBUTION", "CAPABILITIES", "DESCRIPTION"], rows)
