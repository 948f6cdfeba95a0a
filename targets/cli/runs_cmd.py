"""``targets runs``: list, show, logs, download, cancel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from targets.agent import protocol
from targets.cli._common import (
    STATUS_STYLE,
    emit_json,
    err_console,
    fmt_duration,
    fmt_time,
    output_option,
    print_mapping,
    print_table,
    say,
    workspace_of,
)
from targets.errors import UsageError
from targets.ledger import RunRecord


@click.group()
def runs() -> None:
    """List, inspect, follow, download and cancel runs."""


@runs.command("list")
@click.option("--experiment", "-e", help="Only runs of this experiment.")
@click.option("--target", "-t", help="Only runs on this target.")
@click.option("--status", "-s", help="Only runs with this status (e.g. Failed).")
@click.option("--parent", help="Only the child runs of this run (a sweep's trials, say).")
@click.option(
    "--all",
    "-a",
    "all_",
    is_flag=True,
    help="Also the child runs of sweeps and pipelines, each under its parent.",
)
@click.option(
    "--limit",
    "-n",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many runs, newest first (children of a listed run not counted).",
)
@output_option
@click.pass_context
def list_(
    ctx: click.Context,
    experiment: str | None,
    target: str | None,
    status: str | None,
    parent: str | None,
    all_: bool,
    limit: int,
    output: str,
) -> None:
    """List runs, newest first.

    The trials of a sweep and the steps of a pipeline are child runs: they are left
    out, and their parent is listed. `--all` lists each parent's children right under
    it (indented in the table), `--parent RUN` lists the children of one run. JSON
    output (`-o json`) holds the same runs, in the same order, each with its
    `parent_id`.

    Run ids are never cut nor wrapped, so they can be copied. ENTRY (the script and
    its arguments, or the command) is cut to fit on one line; `runs show RUN` and
    `-o json` give it whole.
    """
    ws = workspace_of(ctx)
    if status:
        status = status.capitalize()
    if ws.ledger.open_runs():  # only then is the orchestration (and pydantic) imported
        from targets.runs import refresh_open_runs

        refresh_open_runs(ws, warn=lambda text: say(text, fg="yellow"))

    def select(**more: Any) -> list[RunRecord]:
        return ws.ledger.list(experiment=experiment, target=target, status=status, **more)

    listed: list[tuple[RunRecord, int]] = []  # (run, depth)
    hidden = 0
    if parent is not None:
        listed = [(r, 0) for r in select(parent_id=parent, limit=limit)]
    else:
        tops = select(top_level=True, limit=limit)
        counts = ws.ledger.child_counts([r.id for r in tops])
        for top in tops:
            listed.append((top, 0))
            if all_ and counts.get(top.id):
                children = select(parent_id=top.id, limit=None)
                listed.extend((child, 1) for child in reversed(children))  # oldest first
            elif not all_:
                hidden += counts.get(top.id, 0)
    if output == "json":
        emit_json([r.to_json() for r, _ in listed])
        return
    if not listed:
        say("no runs yet - start one with: targets run SCRIPT.py")
        return
    rows = []
    for r, depth in listed:
        style = STATUS_STYLE.get(r.status, "")
        rows.append(
            [
                "  " * depth + r.id,
                r.target,
                (r.status, style),
                fmt_time(r.created_at, short=True),
                fmt_duration(r.duration),
                r.entry or "",
            ]
        )
    print_table(
        ["RUN", "TARGET", "STATUS", "CREATED", "DURATION", "ENTRY"],
        rows,
        keep=("RUN",),
        clip=("ENTRY",),
    )
    if hidden:
        say(
            f"{hidden} child run{'s' * (hidden != 1)} of sweeps and pipelines not shown: "
            "targets runs list --all, or --parent RUN",
            dim=True,
        )


@runs.command()
@click.argument("run_id", metavar="RUN")
@output_option
@click.pass_context
def show(ctx: click.Context, run_id: str, output: str) -> None:
    """Show a run: status, timings, what ran, where its files are."""
    from targets.runs import Run

    run = Run(workspace_of(ctx), run_id)
    details = run.get_details()
    details["files"] = list(run._iter_files())
    if output == "json":
        emit_json(details)
        return
    rc = details.get("runconfig") or {}
    shown = {
        "run": details["id"],
        "experiment": details["experiment"],
        "target": f"{details['target']} ({details['kind']})",
        "status": details["status"],
        "exit code": details["exit_code"],
        "message": details["message"],
        "collection": f"failed: {details['collection_error']} (tried again by the next "
        "command about this run)"
        if details.get("collection_error")
        else None,
        "entry": details["entry"],
        "created": fmt_time(details["created_at"]),
        "duration": fmt_duration(details["duration_seconds"]),
        "phases": ", ".join(f"{k} {fmt_duration(v)}" for k, v in details["phases"].items()),
        "environment": (details.get("environment") or {}).get("hash"),
        "python": "{path} ({source})".format(**details["python"]) if details["python"] else None,
        "snapshot": "{files} files, digest {digest}".format(**details["snapshot"])
        if details.get("snapshot")
        else None,
        "git": _git_text(details.get("git")),
        "params": ", ".join(f"{k}={v}" for k, v in sorted(details["params"].items())) or None,
        "metrics": ", ".join(f"{k}={v:g}" for k, v in sorted(details["metrics"].items())) or None,
        "folder": details["folder"],
        "files": ", ".join(details["files"]) or "-",
    }
    if shown["collection"] is None:
        del shown["collection"]  # the row is there only while a collection failed
    if details.get("tags"):
        shown["tags"] = ", ".join(f"{k}={v}" for k, v in sorted(details["tags"].items()))
    if rc.get("max_run_duration_seconds"):
        shown["max duration"] = f"{rc['max_run_duration_seconds']}s"
    print_mapping(shown)


def _git_text(git: object) -> str | None:
    """``main @ 1a2b3c4d (uncommitted changes), origin URL`` from the run's git state."""
    if not isinstance(git, dict):
        return None if git is None else str(git)
    commit = git.get("commit")
    parts = [str(git.get("branch") or "detached HEAD")]
    parts.append(f"@ {str(commit)[:12]}" if commit else "(no commit yet)")
    if git.get("dirty"):
        parts.append("(uncommitted changes)")
    text = " ".join(parts)
    return f"{text}, {git['remote']}" if git.get("remote") else text


@runs.command()
@click.argument("run_id", metavar="RUN")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming until the run ends.")
@click.option(
    "--node",
    type=int,
    default=None,
    metavar="N",
    help="Only node N's own output (multi-node runs on a cluster; after it is collected).",
)
@click.pass_context
def logs(ctx: click.Context, run_id: str, follow: bool, node: int | None) -> None:
    """Print a run's output; with --follow, stream it until the run ends."""
    from targets.runs import Run

    run = Run(workspace_of(ctx), run_id)
    if node is not None:
        if follow:
            raise UsageError("--node prints what has arrived so far; drop --follow")
        run.get_file_names()  # brings the newest log bytes of every node
        run.close()
        folder = run.folder / "logs" / "nodes" / str(node)
        if not folder.is_dir():
            nodes = sorted((run.folder / "logs" / "nodes").glob("*"))
            known = ", ".join(p.name for p in nodes) or "none (not a cluster run, or not yet)"
            raise UsageError(f"run {run.id} has no logs of node {node}; nodes: {known}")
        for name in ("prepare.log", "driver.log"):
            if (folder / name).is_file():
                sys.stdout.buffer.write((folder / name).read_bytes())
        sys.stdout.flush()
        return
    try:
        record = run.stream(sys.stdout.buffer, follow=follow, from_start=True)
    except KeyboardInterrupt:
        err_console().print(
            f"\nstopped streaming; resume with: targets runs logs {run.id} -f", highlight=False
        )
        sys.exit(130)
    finally:
        run.close()
    if follow:
        err_console().print(f"{record.status}", highlight=False)
        sys.exit(0 if record.status == protocol.COMPLETED else 1)


@runs.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--dest", type=click.Path(file_okay=False), help="Folder to write to (default: ./RUN)."
)
@click.option(
    "--prefix", default="", help="Only files whose names start with this (e.g. outputs/)."
)
@output_option
@click.pass_context
def download(ctx: click.Context, run_id: str, dest: str | None, prefix: str, output: str) -> None:
    """Copy a run's outputs/, logs/ and output logs to a folder.

    Nothing below the folder is followed: a link in the way of a file is replaced (what
    it points to is left untouched), and a folder on the way that is a link is refused
    before anything is written."""
    from targets.runs import Run

    run = Run(workspace_of(ctx), run_id)
    target_dir = Path(dest or run.id)
    written = run.download_files(prefix=prefix, output_directory=target_dir)
    run.close()
    if output == "json":
        emit_json({"run": run.id, "dest": str(target_dir), "files": [str(p) for p in written]})
        return
    err_console().print(f"{len(written)} files written to {target_dir}", highlight=False)


@runs.command()
@click.argument("run_id", metavar="RUN")
@output_option
@click.pass_context
def cancel(ctx: click.Context, run_id: str, output: str) -> None:
    """Cancel a run: stops it and its whole process tree."""
    import time

    from targets.runs import Run

    run = Run(workspace_of(ctx), run_id)
    record = run.cancel()
    deadline = time.monotonic() + 30
    while record.status not in protocol.TERMINAL and time.monotonic() < deadline:
        time.sleep(0.1)
        record = run.refresh()
    run.close()
    if output == "json":
        emit_json(record.to_json())
        return
    err_console().print(f"{run.id}: {record.status}", highlight=False)


@runs.command("submit-again")
@click.argument("run_id", metavar="RUN")
@output_option
@click.pass_context
def submit_again(ctx: click.Context, run_id: str, output: str) -> None:
    """Submit a run again as a new run; prints the new run's id.

    A run of a v2 job file submits the job file again (with the overrides and target
    recorded for it); any other run submits its recorded run configuration again from
    the same source folder. A sweep's trial or a pipeline's step cannot be submitted on
    its own (submit its parent again). Follow the new run with `targets runs logs NEW -f`.
    """
    from targets.cli._common import warn
    from targets.resubmit import submit_again as again

    new = again(workspace_of(ctx), run_id, warn=warn)
    new.close()
    if output == "json":
        emit_json(new.record.to_json())
        return
    click.echo(new.id)
    say(f"follow it with: targets runs logs {new.id} --follow", dim=True)


@runs.command()
@click.argument("run_id", metavar="RUN")
@click.pass_context
def delete(ctx: click.Context, run_id: str) -> None:
    """Forget a finished run and delete its folder in the workspace."""
    from targets.runs import Run

    run = Run(workspace_of(ctx), run_id)
    kept = run.delete()
    if kept:
        say(kept)
    err_console().print(f"deleted {run.id}", highlight=False)
