"""The studio's test fixtures: a ``targets studio`` server started as a user starts it, and
Debian's Chromium driven by Playwright (its own browser download is never used).

    from tests.studio_browser import browser_fixture, page_fixture, studio_fixture  # noqa: F401

``studio`` serves the test's project (the current directory) on a free loopback port and
gives its URL with the access token; ``page`` is a fresh browser tab (its own cookies)
that has opened that URL. Without Chromium or Playwright the tests skip with the reason,
and fail when ``CI`` is set (``bash scripts/test-services.sh`` installs Chromium).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest

from targets.testing.fixtures import TARGETS
from targets.testing.sshd import skip_or_fail

CHROMIUM = Path(os.environ.get("TARGETS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI: Chromium's sandbox needs a user namespace it may not get
    "--disable-gpu",
    "--disable-background-networking",  # no traffic beyond the studio on loopback
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@dataclass
class Studio:
    """A running ``targets studio``: ``url`` has the token, ``base`` has not."""

    proc: subprocess.Popen[str]
    url: str
    base: str
    token: str
    cwd: Path
    errors: IO[str]
    """Its stderr (a file)."""
    _said: str = ""

    @property
    def port(self) -> int:
        return int(urlsplit(self.base).port or 0)

    @property
    def cookie(self) -> str:
        return f"targets_studio_{self.port}"

    def stop(self) -> str:
        """Stop it (Ctrl-C, as a user does); returns what it printed on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.errors.closed:
            self.errors.seek(0)
            self._said = self.errors.read()
            self.errors.close()
        return self._said


def start_studio(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Studio:
    """``targets studio --port 0 --no-browser ARGS`` in ``cwd``; waits for its URL."""
    # stderr to a file: a pipe nobody reads would fill and stop the server.
    errors = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by Studio.stop
        "w+", prefix="studio-stderr-", suffix=".log"
    )
    proc = subprocess.Popen(
        [*TARGETS, "studio", "--port", "0", "--no-browser", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+)\?token=(\S+)", line)
    if not match:
        proc.kill()
        proc.wait()
        errors.seek(0)
        raise AssertionError(f"targets studio printed no URL: {line!r}\n{errors.read()}")
    base = match.group(1).rstrip("/")
    return Studio(proc, f"{base}/?token={match.group(2)}", base, match.group(2), cwd, errors)


@pytest.fixture(name="studio")
def studio_fixture(project: Path) -> Iterator[Studio]:
    """``targets studio`` serving the test's project."""
    server = start_studio(project)
    try:
        yield server
    finally:
        server.stop()


def chromium_unavailable() -> str | None:
    if not CHROMIUM.exists():
        return (
            f"Chromium is not installed ({CHROMIUM} missing): `apt-get install chromium` as "
            "root (in the targets repository: `bash scripts/test-services.sh`)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: pip install -e '.[test]'"
    return None


_BROWSER: Any = None
"""One Chromium per test process: every module that imports the fixture is its own
fixture definition to pytest, and Playwright's sync API starts once per thread."""


def _close_browser(pw: Any, browser: Any) -> None:
    try:
        browser.close()
    finally:
        pw.stop()


@pytest.fixture(name="browser", scope="session")
def browser_fixture() -> Any:
    """The headless Chromium of this test worker (started on first use, closed at exit)."""
    global _BROWSER
    reason = chromium_unavailable()
    if reason:
        skip_or_fail(reason)
    if _BROWSER is None:
        import atexit

        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        _BROWSER = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        atexit.register(_close_browser, pw, _BROWSER)
    return _BROWSER


@pytest.fixture(name="page")
def page_fixture(browser: Any, studio: Studio, tmp_path: Path) -> Iterator[Any]:
    """A new tab with its own cookies that has opened the studio's URL (so it holds the
    access cookie). Console errors of the page fail the test."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: _console(msg, errors))
    page.goto(studio.url)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page reported errors: {errors}"


_EXPECTED = (
    # An answer with the library's message (a 400 for bad input, a 404 for no such run)
    # is what the page shows; the browser and htmx log it all the same.
    "the server responded with a status of 4",
    "htmx:responseError",
    "Response Status Error Code 4",
)


def _console(msg: Any, errors: list[str]) -> None:
    if msg.type == "error" and not any(text in msg.text for text in _EXPECTED):
        errors.append(msg.text)


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


__all__ = [
    "CHROMIUM",
    "Studio",
    "browser_fixture",
    "chromium_unavailable",
    "page_fixture",
    "start_studio",
    "studio_fixture",
    "wait_for",
]
