"""7. The studio (``targets studio``, issue 17): the runs page over 10,000 runs and a run
page with a 50 MB log, against ``targets runs list`` and ``targets runs logs`` measured in
the same run.

- **Runs page.** A workspace whose ledger holds 10,000 runs (``Ledger.insert_many``, as
  section 3). A real ``targets studio`` serves it; the server time is a whole HTTP
  ``GET`` on loopback with the access cookie (urllib, request to last byte): ``/runs``
  (page 1 of 50 rows), the last page, and a search (done in SQL). In Chromium (Debian's,
  driven by Playwright, a fresh browser context each time): the first contentful paint
  (``performance.getEntriesByType('paint')``, the browser's own clock from the start of
  the navigation) and the wall time from ``page.goto`` to the table being visible.
- **50 MB log.** One Completed, collected run whose ``driver.log`` is 50 MB (written
  directly). Chromium opens its page ``/runs/{id}`` and waits until the log view
  (``<pre id="log">``) says it has shown the end of the file (``data-caught-up="true"``,
  the run page's contract); the DOM text the page keeps is reported too. The reference
  is ``targets runs logs RUN > /dev/null`` (the whole file through the CLI).

Every measurement repeats ``ctx.reps`` times, interleaved, after one warm-up. Without the
studio extra (starlette, uvicorn, jinja2) the section is skipped; without Chromium or
Playwright its browser rows are, and the note says what is missing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _harness import BenchError, Sample, run_checked
from _scenarios import LEDGER_RUNS, Context, Row, Section, ledger_records

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The suite's Chromium and its flags (no sandbox as root, no GPU, no traffic beyond loopback).
from tests.studio_browser import CHROMIUM, CHROMIUM_ARGS

__all__ = ["studio_markdown", "studio_pages", "studio_summary"]

LOG_BYTES = 50 * 1000 * 1000
LOG_RUN = "bench_big_log"
SEARCH = "epochs 7"
LOG_TIMEOUT_MS = 300_000


def _studio_missing() -> str | None:
    absent = [m for m in ("starlette", "uvicorn", "jinja2") if importlib.util.find_spec(m) is None]
    if absent:
        return (
            f"skipped: the studio extra is not installed ({', '.join(absent)} missing): "
            "pip install -e '.[studio]'"
        )
    return None


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium is missing ({CHROMIUM}; as root: `bash scripts/test-services.sh`)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is missing (pip install -e '.[test]')"
    return None


# --------------------------------------------------------------------------- workspace


def _fill(ws: Path) -> float:
    """10,000 runs like section 3's and one with a 50 MB log; returns the fill time."""
    from targets.ledger import RunRecord
    from targets.workspace import Workspace

    records = ledger_records()
    start = records[0].created_at
    workspace = Workspace(ws)
    try:
        t0 = time.perf_counter()
        workspace.ledger.insert_many(records)
        fill_s = time.perf_counter() - t0
        created = start - 3600  # the oldest: page 1 of /runs stays the 10,000 above
        workspace.ledger.insert(
            RunRecord(
                id=LOG_RUN,
                experiment="big-log",
                target="local",
                kind="local",
                status="Completed",
                created_at=created,
                entry="train.py --verbose",
                started_at=created + 0.1,
                ended_at=created + 1800,
                exit_code=0,
                collected=True,
            )
        )
        folder = workspace.run_dir(LOG_RUN)
        folder.mkdir(parents=True)
        manifest = {"run_id": LOG_RUN, "experiment": "big-log", "target": "local"}
        (folder / "run.json").write_text(json.dumps({**manifest, "kind": "local", "origin": {}}))
        _write_log(folder / "driver.log")
    finally:
        workspace.close()
    return fill_s


def _write_log(path: Path) -> None:
    """LOG_BYTES of training-log lines (about 70 bytes each), the last one known."""
    lines = []
    size = 0
    step = 0
    with path.open("w") as out:
        while size < LOG_BYTES - 100:
            line = (
                f"2026-06-30 12:{step // 60 % 60:02d}:{step % 60:02d} step {step:8d} "
                f"loss={1 / (1 + step):.6f} lr=0.001 throughput={900 + step % 97} it/s\n"
            )
            lines.append(line)
            size += len(line)
            step += 1
            if len(lines) == 10_000:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))
        out.write("training done: the last line of the log\n")


# --------------------------------------------------------------------------- server


class _Studio:
    """A ``targets studio`` process serving ``ws`` on a free loopback port. Its output
    goes to a file: a pipe nobody reads would stop it once full."""

    def __init__(self, ctx: Context, ws: Path, env: dict[str, str]) -> None:
        self.log = ctx.sandbox.root / "studio.log"
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [ctx.targets, "studio", "--port", "0", "--no-browser"],
                cwd=ws,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"(http://\S+?)/?\?token=(\S+)", line)
        if not match:
            self.stop()
            raise BenchError(f"targets studio printed no URL: {line!r}\n{self.log.read_text()}")
        self.base = match.group(1)
        self.token = match.group(2)
        port = urllib.parse.urlsplit(self.base).port
        self.cookie = f"targets_studio_{port}"

    def get(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.base + path, headers={"Cookie": f"{self.cookie}={self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def timed_get(self, path: str) -> float:
        t0 = time.perf_counter()
        status, _ = self.get(path)
        seconds = time.perf_counter() - t0
        if status != 200:
            raise BenchError(f"GET {path} answered {status}:\n{self.log.read_text()[-1500:]}")
        return seconds

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # as a user stops it
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def _chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def _tab(browser: Any, studio: _Studio) -> Iterator[Any]:
    """A fresh context (empty cache) holding the studio's cookie."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_cookies([{"name": studio.cookie, "value": studio.token, "url": studio.base}])
    try:
        yield context.new_page()
    finally:
        context.close()


def _runs_page_in_chromium(browser: Any, studio: _Studio) -> tuple[float, float]:
    """(first contentful paint, goto to the table visible), in seconds."""
    with _tab(browser, studio) as page:
        t0 = time.perf_counter()
        page.goto(studio.base + "/runs", wait_until="commit")
        page.wait_for_selector("#runs-table table", state="visible", timeout=120_000)
        visible = time.perf_counter() - t0
        # Polled with evaluate(): wait_for_function evaluates a string in the page, which
        # the studio's CSP (no 'unsafe-eval') refuses.
        deadline = time.monotonic() + 60
        while True:
            fcp_ms = page.evaluate(
                "(performance.getEntriesByType('paint')"
                ".find(e => e.name === 'first-contentful-paint') || {}).startTime ?? null"
            )
            if fcp_ms is not None:
                return float(fcp_ms) / 1000, visible
            if time.monotonic() > deadline:
                raise BenchError("Chromium reported no first contentful paint of /runs")
            time.sleep(0.05)


def _log_page_in_chromium(browser: Any, studio: _Studio) -> tuple[float, int]:
    """(goto to ``data-caught-up="true"``, characters the log view keeps)."""
    with _tab(browser, studio) as page:
        t0 = time.perf_counter()
        page.goto(f"{studio.base}/runs/{LOG_RUN}", wait_until="commit")
        page.wait_for_selector(
            '#log[data-caught-up="true"]', state="attached", timeout=LOG_TIMEOUT_MS
        )
        seconds = time.perf_counter() - t0
        kept = int(page.evaluate("document.getElementById('log').textContent.length"))
        shows_end = bool(
            page.evaluate(
                "document.getElementById('log').textContent"
                ".includes('training done: the last line of the log')"
            )
        )
        if not shows_end:
            raise BenchError(f"/runs/{LOG_RUN} says it caught up but does not show the end")
        return seconds, kept


def _cli(argv: list[str], cwd: Path, env: dict[str, str], *, devnull: bool = False) -> float:
    t0 = time.perf_counter()
    if devnull:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-1500:]!r}")
    else:
        run_checked(argv, cwd=cwd, env=env)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- section


def studio_pages(ctx: Context) -> Section:
    """7. The studio: the runs page over 10,000 runs, and a 50 MB log."""
    section = Section(
        "studio",
        "7. The studio: the runs page with 10,000 runs, a run page with a 50 MB log",
        "",
    )
    missing = _studio_missing()
    if missing:
        section.facts["skipped"] = missing
        return section
    no_browser = _browser_missing()
    ws = ctx.sandbox.folder("studio-10k")
    fill_s = _fill(ws)
    env = ctx.sandbox.env(ws)
    last_page = (LEDGER_RUNS + 1 + 49) // 50
    search = "/runs?" + urllib.parse.urlencode({"q": SEARCH})

    samples = {
        name: Sample(name)
        for name in (
            "targets runs list",
            "targets runs list --limit 10000 --output json",
            "GET /runs (server)",
            f"GET /runs?page={last_page} (server)",
            f"GET /runs?q={SEARCH} (server)",
            "Chromium: first contentful paint of /runs",
            "Chromium: /runs until the table is visible",
            "targets runs logs RUN > /dev/null",
            "Chromium: /runs/RUN until the end of the log shows",
        )
    }
    kept: list[int] = []
    notes: list[str] = []
    studio = _Studio(ctx, ws, env)
    try:
        log_page = studio.get(f"/runs/{LOG_RUN}")
        has_log_view = log_page[0] == 200 and b'id="log"' in log_page[1]
        if not has_log_view:
            notes.append(
                f"the run page (/runs/{LOG_RUN}) answered {log_page[0]} without a log view "
                '(<pre id="log">): its row is left out'
            )
        steps: list[tuple[str, Callable[[], float]]] = [
            ("targets runs list", lambda: _cli([ctx.targets, "runs", "list"], ws, env)),
            (
                "targets runs list --limit 10000 --output json",
                lambda: _cli(
                    [ctx.targets, "runs", "list", "--limit", "10000", "--output", "json"], ws, env
                ),
            ),
            ("GET /runs (server)", lambda: studio.timed_get("/runs")),
            (
                f"GET /runs?page={last_page} (server)",
                lambda: studio.timed_get(f"/runs?page={last_page}"),
            ),
            (f"GET /runs?q={SEARCH} (server)", lambda: studio.timed_get(search)),
            (
                "targets runs logs RUN > /dev/null",
                lambda: _cli([ctx.targets, "runs", "logs", LOG_RUN], ws, env, devnull=True),
            ),
        ]
        with _chromium() if no_browser is None else _nothing() as browser:
            for rep in range(ctx.reps + 1):  # the first round is the warm-up
                measured: dict[str, float] = {}
                for name, step in steps:
                    measured[name] = step()
                if browser is not None:
                    fcp, visible = _runs_page_in_chromium(browser, studio)
                    measured["Chromium: first contentful paint of /runs"] = fcp
                    measured["Chromium: /runs until the table is visible"] = visible
                    if has_log_view:
                        seconds, chars = _log_page_in_chromium(browser, studio)
                        measured["Chromium: /runs/RUN until the end of the log shows"] = seconds
                        if rep:
                            kept.append(chars)
                if rep:
                    for name, value in measured.items():
                        samples[name].seconds.append(value)
    finally:
        studio.stop()
    if no_browser:
        notes.append(f"browser rows skipped: {no_browser}")

    cli_list = samples["targets runs list"]
    logs = samples["targets runs logs RUN > /dev/null"]
    section.how = (
        f"A workspace whose ledger holds {LEDGER_RUNS:,} completed runs (written with "
        f"`Ledger.insert_many` in {fill_s * 1000:.0f} ms) and one run with a "
        f"{LOG_BYTES / 1e6:.0f} MB `driver.log`, served by a real `targets studio` on "
        "127.0.0.1. Server rows: one HTTP GET with the access cookie (urllib, to the last "
        "byte; the page is 50 rows, paged and searched in SQLite). Chromium rows: Debian's "
        "Chromium through Playwright, a fresh browser context (empty cache) per repetition; "
        "first contentful paint is the browser's own `performance` entry, the other rows "
        "are wall time from `page.goto` to the table visible, or to the log view's "
        '`data-caught-up="true"` (it has shown the end of the file). References: '
        "`targets runs list` (default `--limit 20`) and `targets runs logs RUN` with its "
        f"output to /dev/null, in the same run. {ctx.reps} repetitions, interleaved, after "
        "one warm-up."
    )
    for name in (
        "GET /runs (server)",
        f"GET /runs?page={last_page} (server)",
        f"GET /runs?q={SEARCH} (server)",
        "targets runs list --limit 10000 --output json",
        "Chromium: first contentful paint of /runs",
        "Chromium: /runs until the table is visible",
    ):
        if samples[name].n:
            section.rows.append(Row(samples[name], cli_list))
    section.rows.insert(0, Row(cli_list, note="; ".join(notes)))
    section.rows.append(Row(logs, note=f"{LOG_BYTES / 1e6:.0f} MB"))
    caught_up = samples["Chromium: /runs/RUN until the end of the log shows"]
    if caught_up.n:
        note = f"the page keeps {max(kept):,} characters of the log" if kept else ""
        section.rows.append(Row(caught_up, logs, note))
    section.facts.update(
        samples=samples,
        fill_s=fill_s,
        log_bytes=LOG_BYTES,
        kept_chars=max(kept) if kept else None,
        notes=notes,
        last_page=last_page,
    )
    return section


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


# --------------------------------------------------------------------------- report


def studio_summary(section: Section) -> str:
    """One line for the report's summary."""
    if section.facts.get("skipped"):
        return f"- The studio: {section.facts['skipped']}"
    samples: dict[str, Sample] = section.facts["samples"]
    server = samples["GET /runs (server)"]
    cli = samples["targets runs list"]
    text = (
        f"- The studio's runs page with 10,000 runs: **{_ms(server.median)} ms** on the "
        f"server ({server.median / cli.median:.2f}x `targets runs list`, {_ms(cli.median)} ms)"
    )
    fcp = samples["Chromium: first contentful paint of /runs"]
    if fcp.n:
        text += f", first paint in Chromium after {_ms(fcp.median)} ms"
    caught = samples["Chromium: /runs/RUN until the end of the log shows"]
    if caught.n:
        logs = samples["targets runs logs RUN > /dev/null"]
        text += (
            f"; a 50 MB log's end shows after {_ms(caught.median)} ms "
            f"(`targets runs logs`: {_ms(logs.median)} ms), the page keeping "
            f"{section.facts['kept_chars']:,} characters"
        )
    return text + "."


def studio_markdown(section: Section) -> list[str]:
    """Lines after the section's table: the notes (what was skipped and why)."""
    if section.facts.get("skipped"):
        return []
    return [f"- {note}" for note in section.facts.get("notes", [])]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if abs(seconds) >= 0.0995 else f"{seconds * 1000:.1f}"
