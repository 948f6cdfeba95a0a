"""``targets migrate PATH``: rewrite a v1 project's imports to ``targets.azureml``."""

from __future__ import annotations

import sys

import click

from targets.cli._common import emit_json, output_option, say


@click.command()
@click.argument("path", type=click.Path(), default=".")
@click.option("--write", is_flag=True, help="Change the files (default: show the diff only).")
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Migrate matching files even if they look like training scripts (repeatable).",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Leave matching files alone (repeatable; wins over --include).",
)
@output_option
def migrate(
    path: str, write: bool, include: tuple[str, ...], exclude: tuple[str, ...], output: str
) -> None:
    """Rewrite the azureml imports of PATH's control scripts and notebooks to
    targets.azureml; training scripts stay as they are.

    Without --write nothing changes: the diff goes to stdout and the exit code is 1
    when there is something to change (0 when there is nothing). GLOBs are
    gitignore-style patterns relative to PATH.
    """
    from targets.migrate import migrate as run_migration

    report = run_migration(path, write=write, include=include, exclude=exclude)
    if output == "json":
        emit_json(report.to_json())
        sys.exit(report.exit_code)
    for item in report.files:
        if item.diff and not write:
            click.echo(item.diff, nl=False)
    for item in report.files:
        if item.status == "changed":
            verb = "rewrote" if item.written else "would rewrite"
            lines = len(item.changes)
            say(f"{verb} {item.path} ({lines} line{'s' if lines != 1 else ''})")
        elif item.status == "error":
            say(f"error: {item.path}: {item.reason}", fg="red")
        elif item.role == "training":
            say(f"left alone {item.path}: training script ({item.reason})", dim=True)
        elif item.role == "excluded":
            say(f"left alone {item.path}: excluded ({item.reason})", dim=True)
        for note in item.notes:
            say(f"note: {note.where(item.path)}: {note.message}", fg="yellow")
    say(_summary(report.summary(), write=write))
    if report.environment_note:
        say(f"note: {report.environment_note}", fg="yellow")
    sys.exit(report.exit_code)


def _summary(counts: dict[str, int], *, write: bool) -> str:
    changed = counts["changed"]
    parts = [
        f"{'rewrote' if write else 'would rewrite'} {changed} file{'s' if changed != 1 else ''}"
        f" ({counts['changed_lines']} lines)",
        f"{counts['unchanged']} already fine",
        f"{counts['training']} training script{'s' if counts['training'] != 1 else ''} left alone",
    ]
    if counts["excluded"]:
        parts.append(f"{counts['excluded']} excluded")
    if counts["notes"]:
        parts.append(f"{counts['notes']} note{'s' if counts['notes'] != 1 else ''}")
    if counts["errors"]:
        parts.append(f"{counts['errors']} error{'s' if counts['errors'] != 1 else ''}")
    text = "; ".join(parts) + "."
    if changed and not write:
        text += " Run again with --write to change the files."
    return text
