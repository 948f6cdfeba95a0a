"""Shared pieces of the CLI: workspace lookup, error mapping, JSON/table output."""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from targets.agent import protocol
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


def fmt_time(ts: float | None, *, short: bool = False) -> str:
    """Local time; ``short`` (for tables at 80 columns): hours and minutes today, month
    and day too this year, the date alone before."""
    if ts is None:
        return "-"
    when = _dt.datetime.fromtimestamp(ts)
    if not short:
        return when.strftime("%Y-%m-%d %H:%M:%S")
    now = _dt.datetime.now()
    if when.date() == now.date():
        return when.strftime("%H:%M")
    if when.year == now.year:
        return when.strftime("%m-%d %H:%M")
    return when.strftime("%Y-%m-%d")


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
    protocol.COMPLETED: "green",
    protocol.FAILED: "red",
    protocol.CANCELED: "yellow",
    protocol.RUNNING: "cyan",
    protocol.PREPARING: "blue",
    protocol.QUEUED: "white",
    protocol.FINALIZING: "cyan",
}


def shown_facts(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What attach found on a target, as ``targets show`` and the studio show it: sizes
    in KiB..TiB (``disk_free_bytes`` -> ``disk free``), lists joined (``none`` when
    empty), mappings as ``key: value``, missing values as ``-``."""
    rows = []
    for key, value in facts.items():
        if key.endswith("_bytes") and isinstance(value, int) and not isinstance(value, bool):
            key, value = key.removesuffix("_bytes"), fmt_size(value)  # "23.5 GiB"
        elif isinstance(value, list):  # gpus: one per line of nvidia-smi, or none
            value = ", ".join(str(v) for v in value) or "none"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif value is None:
            value = "-"
        rows.append((key.replace("_", " "), str(value)))
    return rows


def _stdout_console() -> Console:
    from rich.console import Console

    # Piped output is read by scripts and people alike: don't fold it at 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 250)


Cell = Any  # a value, or (text, style) for a styled cell


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    keep: Collection[str] = (),
    clip: Collection[str] = (),
) -> None:
    """A table on stdout: aligned columns, one line per row, or a rich table on a
    terminal when no column is ``keep`` or ``clip``.

    Cells of the ``keep`` columns (ids) are never wrapped nor cut, so they can be copied
    whole. Cells of the ``clip`` columns are cut with an ellipsis to what the terminal
    leaves them (at least 8 characters; ``CLIP_WIDTH`` when stdout is not a terminal).
    No line ends in spaces. Plain output is also fast for 10,000 rows, and easy for
    other programs to read.
    """
    tty = sys.stdout.isatty()
    if tty and not keep and not clip and len(rows) <= 500:
        _rich_table(columns, rows, title=title)
        return

    def text(cell: Cell) -> str:
        value = cell[0] if isinstance(cell, tuple) else cell
        return "-" if value is None else " ".join(str(value).splitlines())

    cells = [[text(c) for c in row] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    clipped = [i for i, col in enumerate(columns) if col in clip]
    if clipped:
        import shutil

        fixed = sum(w for i, w in enumerate(widths) if i not in clipped)
        room = shutil.get_terminal_size().columns if tty else CLIP_WIDTH * len(clipped)
        room -= (fixed + 2 * (len(columns) - 1)) if tty else 0
        share = max(8, room // len(clipped))
        for i in clipped:
            widths[i] = min(widths[i], share)
            for r in cells:
                r[i] = _clip(r[i], widths[i])
    out = [title] if title else []
    header = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
    out.append(click.style(header, bold=True) if tty else header)
    for row, texts in zip(rows, cells, strict=True):
        parts = []
        for cell, value, width in zip(row, texts, widths, strict=True):
            style = cell[1] if isinstance(cell, tuple) else None
            pad = " " * (width - len(value))
            parts.append((click.style(value, fg=style) if tty and style else value) + pad)
        out.append("  ".join(parts).rstrip())
    click.echo("\n".join(out))


def _rich_table(
    columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, title: str | None
) -> None:
    from rich.markup import escape
    from rich.table import Table

    def text(cell: Cell) -> str:
        value = cell[0] if isinstance(cell, tuple) else cell
        return "-" if value is None else str(value)

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


CLIP_WIDTH = 60
"""Where a ``clip`` column is cut when the output is not a terminal."""


def _clip(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "\u2026"


def print_mapping(data: dict[str, Any], *, title: str | None = None) -> None:
    """``key  value`` lines on stdout, keys aligned and bold on a terminal. No line ends
    in spaces; on a terminal a long value wraps with its continuation lines indented
    (words are never split, so ids and paths stay whole)."""
    import shutil
    import textwrap

    shown = {}
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, default=str)
        shown[key] = "-" if value is None else str(value)
    tty = sys.stdout.isatty()
    key_width = max((len(k) for k in shown), default=0) + 2
    width = shutil.get_terminal_size().columns if tty else 0
    lines = [title] if title else []
    for key, value in shown.items():
        head = click.style(key, bold=True) if tty else key
        pad = " " * (key_width - len(key))
        if width - key_width >= 20:
            wrapped = textwrap.wrap(
                value,
                width - key_width,
                break_long_words=False,
                break_on_hyphens=False,
            ) or [""]
        else:
            wrapped = value.splitlines() or [""]
        lines.append((head + pad + wrapped[0]).rstrip())
        lines.extend((" " * key_width + more).rstrip() for more in wrapped[1:])
    click.echo("\n".join(lines))


class Progress:
    """Rich progress bars on stderr for long phases, silent for short ones and when
    stderr is not a terminal. Phases: ``snapshot`` (files hashed) and ``upload`` (bytes
    sent).

    Hashing shows at once when there are many files, and otherwise once it has taken
    ``SLOW_SECONDS``: a snapshot of a few large files reports too rarely for a count to
    tell (one 2 GB file calls back twice), so a timer puts the bar up meanwhile, and
    rich refreshes its elapsed time by itself. ``TARGETS_PROGRESS_DELAY`` (seconds)
    changes that wait.
    """

    SLOW_SECONDS = 0.2

    def __init__(self, enabled: bool = True) -> None:
        import threading

        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._seen: dict[str, tuple[int, int]] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if phase == "upload-files":  # shown with the bytes of the upload
            self._files = (done, total)
            return
        with self._lock:
            self._seen[phase] = (done, total)
            if phase not in self._tasks:
                big = total >= (1 << 20) if phase == "upload" else total >= 200
                if not big:
                    if phase == "snapshot" and done < total and phase not in self._timers:
                        self._start_later(phase)
                    return
                self._add_task(phase)
            self._update(phase)

    def _start_later(self, phase: str) -> None:
        import threading

        def late() -> None:
            with self._lock:
                done, total = self._seen[phase]
                if done < total and phase not in self._tasks and self.enabled:
                    self._add_task(phase)
                    self._update(phase)

        try:
            delay = float(os.environ.get("TARGETS_PROGRESS_DELAY", self.SLOW_SECONDS))
        except ValueError:
            delay = self.SLOW_SECONDS
        timer = threading.Timer(delay, late)
        timer.daemon = True
        self._timers[phase] = timer
        timer.start()

    def _add_task(self, phase: str) -> None:
        if self._progress is None:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=err_console(),
                transient=True,
            )
            self._progress.start()
        label = {"snapshot": "hashing files", "upload": "sending files"}.get(phase, phase)
        self._tasks[phase] = self._progress.add_task(label, total=None, detail="")

    def _update(self, phase: str) -> None:
        done, total = self._seen[phase]
        if phase == "upload":
            files, count = getattr(self, "_files", (0, 0))
            detail = f"{fmt_size(done)} / {fmt_size(total)}, {files}/{count} files"
        else:
            detail = f"{done}/{total} files"
        self._progress.update(self._tasks[phase], completed=done, total=total, detail=detail)

    def close(self) -> None:
        """Stop the bars (idempotent)."""
        with self._lock:
            self.enabled = False
            for timer in self._timers.values():
                timer.cancel()
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
