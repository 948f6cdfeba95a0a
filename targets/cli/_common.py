"""Shared pieces of the CLI: workspace lookup, error mapping, JSON/table output."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from targets.errors import TargetsError

if TYPE_CHECKING:
    from rich.console import Console

    from targets.workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])

_stderr: Console | None = None


def err_console() -> Console:
    """A rich console on stderr (progress, warnings, summaries)."""
    global _stderr
    if _stderr is None:
        from rich.console import Console

        _stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    return _stderr


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn our errors into a message and an exit code; never a traceback."""
    try:
        yield
    except TargetsError as exc:
        text = str(exc)
        head, _, rest = text.partition("\n")
        click.echo(click.style("error: ", fg="red", bold=True) + head, err=True)
        if rest:
            click.echo(rest, err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def workspace_of(ctx: click.Context) -> Workspace:
    from targets.workspace import Workspace

    root = ctx.find_root()
    explicit = (root.obj or {}).get("workspace")
    return Workspace.find(explicit=explicit)


def output_option(func: F) -> F:
    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def warn(message: str) -> None:
    click.echo(click.style("warning: ", fg="yellow") + message, err=True)


def say(message: str, *, fg: str | None = None, dim: bool = False) -> None:
    """One line of status on stderr (plain click: no rich import on the hot path)."""
    click.echo(click.style(message, fg=fg, dim=dim), err=True)


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


STATUS_STYLE = {
    "Completed": "green",
    "Failed": "red",
    "Canceled": "yellow",
    "Running": "cyan",
    "Preparing": "blue",
    "Queued": "white",
    "Finalizing": "cyan",
}


def _stdout_console() -> Console:
    from rich.console import Console

    # Piped output is read by scripts and people alike: don't fold it at 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 250)


Cell = Any  # a value, or (text, style) for a styled cell


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, title: str | None = None
) -> None:
    """A table on stdout: rich on a terminal, plain aligned columns otherwise (fast for
    10,000 rows, and easy for other programs to read)."""

    def text(cell: Cell) -> str:
        value = cell[0] if isinstance(cell, tuple) else cell
        return "-" if value is None else str(value)

    if not sys.stdout.isatty() or len(rows) > 500:
        table = [list(columns)] + [[text(c) for c in row] for row in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
        out = []
        if title:
            out.append(title)
        for r in table:
            out.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        click.echo("\n".join(out))
        return
    from rich.markup import escape
    from rich.table import Table

    rich_table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for col in columns:
        rich_table.add_column(col, overflow="fold")
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, tuple) and cell[1]:
                cells.append(f"[{cell[1]}]{escape(text(cell))}[/]")
            else:
                cells.append(escape(text(cell)))
        rich_table.add_row(*cells)
    _stdout_console().print(rich_table)


def print_mapping(data: dict[str, Any], *, title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, default=str)
        table.add_row(key, "-" if value is None else str(value))
    _stdout_console().print(table)


class Progress:
    """Rich progress bars on stderr for long phases, silent for short ones and when
    stderr is not a terminal. Phases: ``snapshot`` (files hashed) and ``upload`` (bytes
    sent)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if phase == "upload-files":  # shown with the bytes of the upload
            self._files = (done, total)
            return
        if phase not in self._tasks:
            big = total >= (1 << 20) if phase == "upload" else total >= 200
            if not big:
                return
            if self._progress is None:
                from rich.progress import BarColumn, TextColumn
                from rich.progress import Progress as RichProgress

                self._progress = RichProgress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.fields[detail]}"),
                    console=err_console(),
                    transient=True,
                )
                self._progress.start()
            label = {"snapshot": "hashing files", "upload": "sending files"}.get(phase, phase)
            self._tasks[phase] = self._progress.add_task(label, total=total, detail="")
        if phase == "upload":
            files, count = getattr(self, "_files", (0, 0))
            detail = f"{fmt_size(done)} / {fmt_size(total)}, {files}/{count} files"
        else:
            detail = f"{done}/{total} files"
        self._progress.update(self._tasks[phase], completed=done, total=total, detail=detail)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
