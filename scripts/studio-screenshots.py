"""Regenerate the screenshots of docs/studio.md: build a demo workspace with real runs,
serve it with `targets studio`, and photograph each page in Debian's Chromium.

    .venv/bin/python scripts/studio-screenshots.py            # writes docs/studio/*.png
    .venv/bin/python scripts/studio-screenshots.py --out DIR  # somewhere else

The demo workspace is made the way a user makes one, in a temporary folder with its own
HOME: a training script that logs metrics with MLflow (three runs and one that fails),
the repository's v1 HyperDrive example (a sweep of six trials) and its v1 pipeline example
(two steps), all on the local target. Needs the test extra (`make test` installs it) and
/usr/bin/chromium. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.studio_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 - the suite's browser

TRAIN = '''\
"""Train a (pretend) model: log loss and accuracy per epoch with MLflow."""
import argparse, math, os, time
from pathlib import Path
import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--fail", action="store_true")
args = parser.parse_args()
mlflow.log_param("lr", args.lr)
mlflow.log_param("epochs", args.epochs)
for epoch in range(args.epochs):
    loss = math.exp(-args.lr * epoch) + 0.05 * math.sin(epoch)
    acc = 1 - loss / 2
    mlflow.log_metric("loss", loss, step=epoch)
    mlflow.log_metric("accuracy", acc, step=epoch)
    print(f"epoch {epoch:3d}  loss {loss:.4f}  accuracy {acc:.4f}", flush=True)
    time.sleep(0.02)
    if args.fail and epoch == 7:
        raise SystemExit("diverged: loss is NaN")
Path("outputs").mkdir(exist_ok=True)
Path("outputs/model.txt").write_text(f"lr={args.lr}\\n")
Path("outputs/metrics.json").write_text('{"loss": %f}\\n' % loss)
'''


def sh(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def build_demo(root: Path, env: dict[str, str]) -> dict[str, str]:
    """The demo workspace; returns the ids the pages show."""
    targets = [sys.executable, "-m", "targets"]
    project = root / "code" / "demo"
    project.mkdir(parents=True)
    (project / ".targets").mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / "train.py").write_text(TRAIN)
    (project / "hd").mkdir()
    for name in ("tune.py", "train.py"):
        shutil.copy(REPO / "examples" / "azureml-v1" / "hyperdrive" / name, project / "hd" / name)
    ids: dict[str, str] = {}
    sh([*targets, "attach", "cpu-box", "--type", "local"], project, env)
    for lr in ("0.05", "0.1", "0.2"):
        out = sh([*targets, "run", "train.py", "--output", "json", "--", "--lr", lr], project, env)
        ids[f"train-{lr}"] = json.loads(out)["id"]
    failed = subprocess.run(
        [*targets, "run", "train.py", "--output", "json", "--", "--fail"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    ids["failed"] = json.loads(failed.stdout)["id"]
    hd = project / "hd"
    tuned = sh([sys.executable, "tune.py"], hd, {**env, "TARGETS_WORKSPACE": str(project)})
    best = re.search(r"^best run (\S+)$", tuned, re.M)
    ids["sweep"] = best.group(1).rsplit("_", 1)[0] if best else ""
    (project / ".azureml").mkdir()
    (project / ".azureml" / "config.json").write_text(
        json.dumps({"subscription_id": "0000", "resource_group": "rg", "workspace_name": "ws"})
    )
    sh(
        [sys.executable, str(REPO / "examples" / "azureml-v1" / "pipeline" / "pipeline.py")],
        project,
        env,
    )
    runs = json.loads(sh([*targets, "runs", "list", "--all", "--output", "json"], project, env))
    pipelines = [r["id"] for r in runs if r.get("kind") == "pipeline"]
    ids["pipeline"] = pipelines[0] if pipelines else ""
    ids["project"] = str(project)
    return ids


def shoot(out: Path, ids: dict[str, str], env: dict[str, str]) -> list[Path]:
    from playwright.sync_api import sync_playwright

    project = Path(ids["project"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "targets", "studio", "--port", "0", "--no-browser"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+?)/\?token=(\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"targets studio printed no URL: {line!r} {proc.communicate()[1]}")
    base, token = match.group(1), match.group(2)
    compared = "&".join(f"run={ids[k]}" for k in ids if k.startswith("train-"))
    # (file name, page, what to wait for, the element to photograph: None = the window)
    shots: list[tuple[str, str, str | None, str | None]] = [
        ("runs", "/runs", None, None),
        ("run", f"/runs/{ids['train-0.1']}", None, None),
        ("run-metrics", f"/runs/{ids['train-0.1']}", ".uplot", "#metrics"),
        ("run-failed", f"/runs/{ids['failed']}", None, None),
        ("sweep", f"/runs/{ids['sweep']}", "#children .uplot", "#children"),
        ("pipeline", f"/runs/{ids['pipeline']}", "#children svg", "#children"),
        ("compare", "/compare?" + compared, ".uplot", None),
        ("experiments", "/experiments", None, None),
        ("compute", "/compute", None, None),
        ("attach", "/compute/attach?kind=vm", None, None),
        ("create-cluster", "/compute/create", None, None),
    ]
    written = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.goto(f"{base}/?token={token}")
            for name, path, ready, element in shots:
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                if ready is not None:
                    page.wait_for_selector(ready, timeout=20_000)
                time.sleep(0.5)  # let htmx settle the lazily loaded parts
                target = out / f"{name}.png"
                if element is None:
                    page.screenshot(path=str(target))
                else:
                    page.locator(element).screenshot(path=str(target))
                written.append(target)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "studio")
    parser.add_argument("--keep", action="store_true", help="keep the demo workspace")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(
            f"{CHROMIUM} is missing: apt-get install chromium (or bash scripts/test-services.sh)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="studio-demo-"))
    home = root / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "TARGETS_HOME": str(home / ".targets"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "VIRTUAL_ENV": sys.prefix,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    env.pop("TARGETS_WORKSPACE", None)
    try:
        ids = build_demo(root, env)
        for path in shoot(args.out, ids, env):
            print(path)
    finally:
        if args.keep:
            print(f"demo workspace kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
