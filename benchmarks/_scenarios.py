"""The four measurements of ``make bench``. Each returns a :class:`Section`: rows of
samples, each compared with a reference sample measured in the same run.

See README.md in this folder for what each one measures and why.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import Case, Sample, Sandbox, age, run_checked, run_round_robin

__all__ = [
    "Context",
    "Row",
    "Section",
    "import_profile",
    "large_project",
    "ledger_listing",
    "local_overhead",
    "startup",
]

ONE_LINE = 'print("hello from one_line.py")\n'
BIG_FILES = 200
BIG_BYTES = 95 * 1000 * 1000
LEDGER_RUNS = 10_000


@dataclass(slots=True)
class Context:
    sandbox: Sandbox
    python: str
    targets: str
    reps: int
    rng: random.Random = field(default_factory=lambda: random.Random(20260630))


@dataclass(slots=True)
class Row:
    sample: Sample
    ref: Sample | None = None
    note: str = ""


@dataclass(slots=True)
class Section:
    key: str
    title: str
    how: str
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    """Derived numbers for the interpretation (and extra tables)."""


def _one_line_workspace(ctx: Context, name: str) -> Path:
    ws = ctx.sandbox.folder(name)
    script = ws / "one_line.py"
    script.write_text(ONE_LINE)
    age([script])
    return ws


def _latest_record(workspace: Path) -> Any:
    from targets.ledger import Ledger

    ledger = Ledger(workspace / ".targets" / "runs.db")
    try:
        return ledger.list(limit=1)[0]
    finally:
        ledger.close()


# --------------------------------------------------------------------------- 1


def local_overhead(ctx: Context) -> Section:
    """1. ``targets run one_line.py`` on the local target vs ``python one_line.py``."""
    ws = _one_line_workspace(ctx, "one-line")
    env = ctx.sandbox.env(ws)
    phases: dict[str, list[float]] = {
        "client start-up, imports, snapshot, ledger insert": [],
        "run folder made, supervisor launched": [],
        "environment check and the script (python one_line.py)": [],
        "end noticed, logs and outputs collected, client exit": [],
    }
    names = list(phases)

    # Wall-clock stamps (the ledger's are time.time()); a clock step during one run
    # spoils that run's phases only, and the medians absorb it.
    def record_phases(wall0: float, wall1: float) -> None:
        r = _latest_record(ws)
        if r.started_at is None or r.ended_at is None:
            return
        for name, value in zip(
            names,
            (
                r.created_at - wall0,
                r.started_at - r.created_at,
                r.ended_at - r.started_at,
                wall1 - r.ended_at,
            ),
            strict=True,
        ):
            phases[name].append(value)

    python_case = Case("python one_line.py", [ctx.python, "one_line.py"], ws, env)
    run_case = Case(
        "targets run one_line.py", [ctx.targets, "run", "one_line.py"], ws, env, after=record_phases
    )
    cold_case = Case(
        "targets run one_line.py, TARGETS_SERVER_PERSIST=0",
        [ctx.targets, "run", "one_line.py"],
        ws,
        dict(env, TARGETS_SERVER_PERSIST="0"),
    )
    ctx.sandbox.serve(ctx.python, ctx.targets, env)
    py, run, cold = run_round_robin([python_case, run_case, cold_case], ctx.reps)

    api = _api(ctx, ws)
    section = Section(
        "local",
        "1. Local target: a one-line script, warm",
        "The project is one file, `one_line.py` (`print(...)`). One warm-up run of each "
        "command fills the snapshot hash cache, the object store and the bytecode cache, "
        "and starts the command server (`targets.commandserver`: later commands run in a "
        "fork of a process that has imported `targets`); "
        f"then {ctx.reps} timed repetitions, interleaved. `targets run` is the whole CLI "
        "process: start-up, snapshot, submit to the local target (a detached supervisor "
        "process that starts the script), streaming the output until the run completes, "
        "collecting logs. The row with `TARGETS_SERVER_PERSIST=0` is the same command "
        "without the command server, as the first command of a session runs. "
        "The API rows are timed inside one Python process that already "
        "imported `targets` and submitted once, so they exclude interpreter start-up and "
        "imports.",
    )
    section.rows += [Row(py), Row(run, py), Row(cold, py, "no command server: cold start")]
    section.rows += [Row(s, py, note) for s, note in api["rows"]]
    section.facts.update(
        python=py,
        run=run,
        cold=cold,
        api_import_s=api["import_s"],
        api_first_run_s=api["first_run_s"],
        api_total=api["totals"],
        phases={name: statistics.median(v) for name, v in phases.items() if v},
    )
    return section


def _api(ctx: Context, ws: Path) -> dict[str, Any]:
    result_path = ctx.sandbox.root / "api-result.json"
    worker = Path(__file__).with_name("_api_worker.py")
    run_checked(
        [ctx.python, str(worker), str(ws), "one_line.py", str(ctx.reps), str(result_path)],
        cwd=ws,
        env=ctx.sandbox.env(ws),
    )
    data = json.loads(result_path.read_text())
    rows: list[tuple[Sample, str]] = []
    totals: dict[str, Sample] = {}
    for mode, parts in data["modes"].items():
        total = Sample(
            f"API: submit() + {mode}",
            [a + b for a, b in zip(parts["submit"], parts["wait"], strict=True)],
        )
        totals[mode] = total
        rows.append((total, "in-process"))
        rows.append((Sample("  of which submit()", parts["submit"]), "snapshot, store, launch"))
        rows.append((Sample(f"  of which {mode}", parts["wait"]), "poll until ended, collect"))
    return {
        "rows": rows,
        "import_s": data["import_s"],
        "first_run_s": data["first_run_s"],
        "totals": totals,
    }


# --------------------------------------------------------------------------- 2


def large_project(ctx: Context) -> Section:
    """2. Re-submitting an unchanged 95 MB project, and after a one-byte change."""
    proj = ctx.sandbox.folder("project-95mb")
    data = proj / "data"
    data.mkdir()
    files = []
    size = BIG_BYTES // BIG_FILES
    for i in range(BIG_FILES):
        path = data / f"part_{i:03d}.bin"
        path.write_bytes(ctx.rng.randbytes(size))
        files.append(path)
    script = proj / "one_line.py"
    script.write_text(ONE_LINE)
    age([*files, script])
    small = _one_line_workspace(ctx, "one-line-ref")
    env = ctx.sandbox.env(proj)
    argv = [ctx.targets, "run", "one_line.py"]

    t0 = time.perf_counter()
    run_checked(argv, cwd=proj, env=env)
    cold = Sample("targets run, first submit (hash + store 95 MB)", [time.perf_counter() - t0])
    uploaded: dict[str, list[int]] = {"unchanged": [], "changed": []}

    def count_uploads(key: str) -> Callable[[float, float], None]:
        def after(_wall0: float, _wall1: float) -> None:
            handle = _latest_record(proj).handle or {}
            uploaded[key].append(int((handle.get("data") or {}).get("uploaded", -1)))

        return after

    changes = iter(range(10**9))

    def change_one_byte() -> None:
        # A different file each time, so every change yields content never stored before.
        path = files[next(changes) % len(files)]
        offset = ctx.rng.randrange(size)
        with open(path, "r+b") as fh:
            fh.seek(offset)
            old = fh.read(1)
            fh.seek(offset)
            fh.write(bytes([old[0] ^ 0xFF]))

    ref = Case("targets run one_line.py (1-file project)", argv, small, ctx.sandbox.env(small))
    unchanged = Case(
        "targets run, 95 MB project unchanged",
        argv,
        proj,
        env,
        after=count_uploads("unchanged"),
        warmups=0,
    )
    changed = Case(
        "targets run, 95 MB project, one byte changed",
        argv,
        proj,
        env,
        before=change_one_byte,
        after=count_uploads("changed"),
        warmups=0,
    )
    ref_s, unchanged_s, changed_s = run_round_robin([ref, unchanged, changed], ctx.reps)
    total = sum(p.stat().st_size for p in files) + script.stat().st_size
    section = Section(
        "project",
        "2. Re-submitting a 95 MB project",
        f"A project of {BIG_FILES} files of random bytes ({total / 1e6:.1f} MB in all) plus "
        "`one_line.py`; the files are dated a minute back, like a checkout. The first "
        "submit hashes every file and copies it into the content-addressed object store. "
        "Then, interleaved: the 1-file project (reference), the unchanged 95 MB project, "
        "and the 95 MB project after flipping one byte of a different file before each "
        "run (the change is not timed). The run's handle records how many objects were "
        "copied into the store.",
    )
    section.rows += [
        Row(ref_s),
        Row(cold, ref_s, "one run"),
        Row(unchanged_s, ref_s, f"objects copied per run: {_counts(uploaded['unchanged'])}"),
        Row(changed_s, ref_s, f"objects copied per run: {_counts(uploaded['changed'])}"),
    ]
    section.facts.update(
        ref=ref_s,
        cold=cold,
        unchanged=unchanged_s,
        changed=changed_s,
        total_bytes=total,
        uploaded=uploaded,
    )
    return section


def _counts(values: list[int]) -> str:
    distinct = sorted(set(values))
    return ", ".join(str(v) for v in distinct) if distinct else "?"


# --------------------------------------------------------------------------- 3


def ledger_records(count: int = LEDGER_RUNS) -> list[Any]:
    """``count`` completed runs (every 50th failed), one a minute up to now, as the
    ledger benchmarks store them."""
    from targets.ledger import RunRecord

    start = time.time() - count * 60
    records = []
    for i in range(count):
        created = start + i * 60
        run_id = f"bench_{time.strftime('%Y%m%d_%H%M%S', time.gmtime(created))}_{i:06d}"
        records.append(
            RunRecord(
                id=run_id,
                experiment=f"exp-{i % 7}",
                target="local",
                kind="local",
                status="Failed" if i % 50 == 0 else "Completed",
                created_at=created,
                entry=f"train.py --epochs {i % 30} --lr 0.001",
                started_at=created + 0.1,
                ended_at=created + 12.5,
                exit_code=1 if i % 50 == 0 else 0,
                handle={
                    "kind": "local",
                    "target": "local",
                    "run_id": run_id,
                    "data": {"root": "/home/user/.targets", "uploaded": 1},
                },
                phases={"preparing": 0.03, "running": 12.4},
                collected=True,
            )
        )
    return records


def ledger_listing(ctx: Context) -> Section:
    """3. ``targets runs list`` with 10,000 runs in the ledger."""
    from targets.ledger import Ledger

    ws = ctx.sandbox.folder("ledger-10k")
    records = ledger_records()
    ledger = Ledger(ws / ".targets" / "runs.db")
    t0 = time.perf_counter()
    ledger.insert_many(records)
    fill_s = time.perf_counter() - t0
    ledger.close()

    env = ctx.sandbox.env(ws)
    cases = [
        Case("targets --version", [ctx.targets, "--version"], ws, env),
        Case("targets runs list", [ctx.targets, "runs", "list"], ws, env),
        Case(
            "targets runs list --limit 10000 --output json",
            [ctx.targets, "runs", "list", "--limit", "10000", "--output", "json"],
            ws,
            env,
        ),
        # ~10 s each on a 2-core machine: a warm-up and two timed runs fit the budget.
        Case(
            "targets runs list --limit 10000 (table)",
            [ctx.targets, "runs", "list", "--limit", "10000"],
            ws,
            env,
            warmups=0,
            max_reps=2,
        ),
    ]
    version, short, json_all, table_all = run_round_robin(cases, ctx.reps)
    section = Section(
        "ledger",
        "3. Listing runs with 10,000 runs in the ledger",
        f"A workspace whose ledger (`.targets/runs.db`, SQLite) holds {LEDGER_RUNS:,} "
        "completed runs, written with `Ledger.insert_many` "
        f"({fill_s * 1000:.0f} ms for all of them). Every command runs "
        f"{ctx.reps} times, interleaved, after one warm-up; the reference is "
        "`targets --version` (interpreter start-up plus the CLI's top-level imports).",
    )
    section.rows += [
        Row(version),
        Row(short, version, "default --limit 20"),
        Row(json_all, version),
        Row(table_all, version, "rich table"),
    ]
    section.facts.update(
        version=version, short=short, json_all=json_all, table_all=table_all, fill_s=fill_s
    )
    return section


# --------------------------------------------------------------------------- 4


def startup(ctx: Context) -> Section:
    """4. CLI start-up: ``targets --version`` and ``--help`` vs ``python -c pass``."""
    ws = ctx.sandbox.folder("startup")
    env = ctx.sandbox.env(ws)
    cases = [
        Case("python -c pass", [ctx.python, "-c", "pass"], ws, env),
        Case("targets --version", [ctx.targets, "--version"], ws, env),
        Case("targets --help", [ctx.targets, "--help"], ws, env),
        Case(
            "targets --help, TARGETS_SERVER_PERSIST=0",
            [ctx.targets, "--help"],
            ws,
            dict(env, TARGETS_SERVER_PERSIST="0"),
        ),
        Case("python -c 'import targets.cli'", [ctx.python, "-c", "import targets.cli"], ws, env),
    ]
    ctx.sandbox.serve(ctx.python, ctx.targets, env)
    bare, version, help_, cold_help, imp = run_round_robin(cases, ctx.reps)
    section = Section(
        "startup",
        "4. CLI start-up",
        f"{ctx.reps} interleaved repetitions after one warm-up each. `python -c pass` is the "
        "interpreter alone (same venv, with its `site` and the editable-install finder). "
        "`targets --version` is answered by the console script itself; `targets --help` by "
        "a worker of the command server, or, with `TARGETS_SERVER_PERSIST=0`, in-process.",
    )
    section.rows += [
        Row(bare),
        Row(version, bare),
        Row(help_, bare),
        Row(cold_help, bare, "no command server"),
        Row(imp, bare),
    ]
    section.facts.update(bare=bare, version=version, help=help_, cold_help=cold_help)
    return section


# --------------------------------------------------------------------------- imports


@dataclass(frozen=True, slots=True)
class ImportLine:
    name: str
    self_us: int
    cumulative_us: int
    depth: int


def import_profile(ctx: Context) -> dict[str, Any]:
    """``python -X importtime targets run one_line.py`` once, without the command server:
    the modules a cold command imports (what the server imports once)."""
    ws = _one_line_workspace(ctx, "importtime")
    env = dict(ctx.sandbox.env(ws), TARGETS_SERVER_PERSIST="0")
    argv = [ctx.targets, "run", "one_line.py"]
    run_checked(argv, cwd=ws, env=env)  # warm: bytecode, hash cache
    proc = subprocess.run(
        [ctx.python, "-X", "importtime", *argv], cwd=ws, env=env, capture_output=True, check=True
    )
    lines = []
    for raw in proc.stderr.decode("utf-8", "replace").splitlines():
        if not raw.startswith("import time:") or "imported package" in raw:
            continue
        self_us, cumulative_us, name = raw[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        lines.append(ImportLine(name.strip(), int(self_us), int(cumulative_us), depth))
    by_package: dict[str, int] = {}
    for line in lines:
        top = line.name.split(".")[0]
        by_package[top] = by_package.get(top, 0) + line.self_us
    return {
        "total_us": sum(line.self_us for line in lines),
        "modules": len(lines),
        # A module can appear twice (its package's __init__ imports it while the outer
        # import is pending): keep its largest entry.
        "top_cumulative": _unique_by_name(sorted(lines, key=lambda x: -x.cumulative_us))[:10],
        "top_packages": sorted(by_package.items(), key=lambda kv: -kv[1])[:10],
    }


def _unique_by_name(lines: list[ImportLine]) -> list[ImportLine]:
    seen: set[str] = set()
    out = []
    for line in lines:
        if line.name not in seen:
            seen.add(line.name)
            out.append(line)
    return out
