"""``make bench``: measure the overhead of ``targets`` on this machine.

Usage::

    .venv/bin/python benchmarks/run.py [--quick] [--reps N] [--write docs/performance.md]

Four measurements, each a ratio against a reference measured in the same run (see
README.md in this folder): the local target's overhead for a one-line script (CLI and
API), re-submitting a 95 MB project unchanged and after a one-byte change, ``targets runs
list`` over 10,000 runs, and CLI start-up; plus one ``-X importtime`` profile of
``targets run``. Prints a table; ``--write`` renders the Markdown report.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _cluster import cluster_targets
from _harness import BenchError, Sandbox
from _report import markdown, text
from _scenarios import (
    Context,
    import_profile,
    large_project,
    ledger_listing,
    local_overhead,
    startup,
)
from _ssh import ssh_targets
from _studio import studio_pages

REPO = Path(__file__).resolve().parent.parent

# Run in this order; reported in REPORT_ORDER.
STEPS = {
    "startup": startup,
    "local": local_overhead,
    "project": large_project,
    "ledger": ledger_listing,
    "ssh": ssh_targets,
    "cluster": cluster_targets,
    "studio": studio_pages,
}
REPORT_ORDER = ["local", "project", "ledger", "startup", "ssh", "cluster", "studio"]


def _targets_executable() -> str:
    beside = Path(sys.executable).parent / "targets"
    if beside.exists():
        return str(beside)
    found = shutil.which("targets")
    if found is None:
        raise SystemExit("no `targets` command: run `make install` first")
    return found


def _machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    from targets import __version__

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(usable),
        "cpu": cpu,
        "machine (uname -m)": platform.machine(),
        "kernel": platform.release(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "targets": f"{__version__}, commit {commit}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 10")
    parser.add_argument("--reps", type=int, help="timed repetitions per command")
    parser.add_argument("--write", metavar="PATH", help="write the Markdown report here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--only",
        choices=sorted(STEPS),
        action="append",
        help="run only this measurement (repeatable; the table only, no --write)",
    )
    args = parser.parse_args(argv)
    if args.only and args.write:
        parser.error("--write needs every measurement: drop --only")
    reps = args.reps or (3 if args.quick else 10)

    sandbox = Sandbox(keep=args.keep)
    ctx = Context(sandbox=sandbox, python=sys.executable, targets=_targets_executable(), reps=reps)
    started = time.perf_counter()
    try:
        sections = []
        for key, step in STEPS.items():
            if args.only and key not in args.only:
                continue
            t0 = time.perf_counter()
            print(f"[bench] {step.__doc__.splitlines()[0]}", file=sys.stderr, flush=True)
            sections.append(step(ctx))
            print(f"[bench]   {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        imports = import_profile(ctx) if not args.only else None
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        sandbox.close()
    sections.sort(key=lambda s: REPORT_ORDER.index(s.key))
    print(text(sections, imports))
    print(f"total benchmark time: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.write:
        path = Path(args.write)
        path.write_text(markdown(sections, imports, _machine(), reps))
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
