"""``targets gc``: free the storage that targets keep for runs already collected."""

from __future__ import annotations

from typing import Any

import click

from targets.cli._common import (
    emit_json,
    err_console,
    fmt_size,
    fmt_time,
    output_option,
    print_table,
    workspace_of,
)


def _cap(value: str) -> int | None:
    from targets.gc import parse_size

    if value.strip().lower() in ("off", "none"):
        return None
    return parse_size(value, what="--set-cap")


@click.command()
@click.argument("target", required=False)
@click.option("--all", "every", is_flag=True, help="Every attached target (default: local).")
@click.option("--dry-run", is_flag=True, help="List what would go and how much; remove nothing.")
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Keep collected runs that ended within this many days.",
)
@click.option(
    "--max-size",
    metavar="SIZE",
    default=None,
    help="Only remove until the target's storage is at most SIZE (e.g. 5GB, 500MB).",
)
@click.option(
    "--set-cap",
    metavar="SIZE|off",
    default=None,
    help="Record the target's cap (default 5GB): above it the target removes its oldest "
    "collected runs after each collection. Collects nothing.",
)
@output_option
@click.pass_context
def gc(
    ctx: click.Context,
    target: str | None,
    every: bool,
    dry_run: bool,
    keep_days: float | None,
    max_size: str | None,
    set_cap: str | None,
    output: str,
) -> None:
    """Remove run folders already collected and stored files no kept run needs.

    A run that is still going, or whose logs and outputs have not been brought back,
    keeps its folder and its files. TARGET defaults to local; --all does every attached
    target. See docs/storage.md.
    """
    from targets.errors import TargetsError
    from targets.gc import collect_many, gc_target_names, parse_size, set_storage_cap

    limit = parse_size(max_size, what="--max-size") if max_size is not None else None
    cap = _cap(set_cap) if set_cap is not None else None
    workspace = workspace_of(ctx)
    names = gc_target_names(workspace, target, every=every)
    if set_cap is not None:
        caps = {name: set_storage_cap(workspace, name, cap) for name in names}
        if output == "json":
            emit_json([{"target": n, "cap_bytes": c} for n, c in caps.items()])
            return
        for name, value in caps.items():
            shown = "off" if value is None else fmt_size(value)
            err_console().print(f"{name}: storage cap {shown}", highlight=False)
        return
    results = collect_many(workspace, names, keep_days=keep_days, max_size=limit, dry_run=dry_run)
    if not every:  # one target asked for by name: its error is the command's
        for result in results:
            if isinstance(result, TargetsError):
                raise result
    failed = [r for r in results if _failed(r)]
    if output == "json":
        emit_json(
            [
                r.to_json()
                if not isinstance(r, TargetsError)
                else {"target": n, ("failed" if _failed(r) else "skipped"): str(r)}
                for n, r in zip(names, results, strict=True)
            ]
        )
    else:
        _render(names, results)
    if failed:
        ctx.exit(1)


def _failed(result: object) -> bool:
    from targets.errors import TargetsError, UnsupportedOperation

    return isinstance(result, TargetsError) and not isinstance(result, UnsupportedOperation)


def _render(names: list[str], results: list[Any]) -> None:
    from targets.errors import TargetsError

    console = err_console()
    for name, report in zip(names, results, strict=True):
        if isinstance(report, TargetsError):
            word = "failed" if _failed(report) else "skipped"
            console.print(f"{name}: {word} ({report})", highlight=False)
            continue
        verb = "would remove" if report.dry_run else "removed"
        if report.runs:
            print_table(
                ["TARGET", "RUN FOLDER", "ENDED", "SIZE"],
                [[name, r.run_id, fmt_time(r.ended_at), fmt_size(r.bytes)] for r in report.runs],
            )
        cap_text = "no cap" if report.cap_bytes is None else f"cap {fmt_size(report.cap_bytes)}"
        console.print(
            f"{name}: {verb} {len(report.runs)} run folder(s) ({fmt_size(report.run_bytes)}) "
            f"and {report.objects} stored file(s) ({fmt_size(report.object_bytes)}): "
            f"{fmt_size(report.freed_bytes)} in all; "
            f"{fmt_size(report.usage_before)} -> {fmt_size(report.usage_after)} ({cap_text})",
            highlight=False,
        )
