"""docs/studio.md's screenshots are what scripts/studio-screenshots.py makes: the script
builds a demo workspace with real runs (MLflow metrics, the v1 HyperDrive and pipeline
examples), serves it with `targets studio` and photographs every page in Chromium."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from targets.testing.sshd import skip_or_fail
from tests.studio_browser import chromium_unavailable

REPO = Path(__file__).resolve().parent.parent


def test_the_screenshot_script_photographs_every_page_the_docs_show(tmp_path: Path) -> None:
    reason = chromium_unavailable()
    if reason:
        skip_or_fail(reason)
    shown = set(
        re.findall(r"\]\(studio/([\w-]+)\.png\)", (REPO / "docs" / "studio.md").read_text())
    )
    assert shown, "docs/studio.md shows no screenshot"
    for name in shown:
        assert (REPO / "docs" / "studio" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "studio-screenshots.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    made = {p.stem for p in tmp_path.glob("*.png")}
    assert made == shown
    for path in tmp_path.glob("*.png"):
        assert path.stat().st_size > 5_000, path  # a page, not a blank
