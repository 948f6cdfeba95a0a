"""The SSH section of the report (section 5): terminal lines, Markdown, summary bullet.

Every sentence of the interpretation is built from numbers of the same run; where a
claim depends on what was measured (which function leads the profile, how many times
the client connected), the text follows the measurement instead of assuming it.
"""

from __future__ import annotations

from typing import Any

from _scenarios import Section
from _ssh import GOALS

__all__ = ["ssh_markdown", "ssh_summary", "ssh_text"]

GOAL_NAMES = {
    "warm": "(a) warm submit, 1-file project, vs bare `ssh ... python3 -c 'print(1)'`",
    "reupload": "(b) one file changed in the 2000-file project, vs `rsync -a`",
    "first": "(c) first upload of the 2000-file project, vs `tar c | ssh tar x`",
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if seconds >= 0.0995 else f"{seconds * 1000:.1f}"


def _verdict(key: str, ratio: float | None) -> str:
    if ratio is None:
        return "not measured"
    return "met" if ratio <= GOALS[key] else "missed"


def _pairs(f: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """(targets sample, reference sample) per goal; the reference may be missing."""
    return {
        "warm": (f["warm"]["run"], f["warm"]["ssh"]),
        "reupload": (f["reupload"]["run"], f["reupload"].get("rsync")),
        "first": (f["first"]["run"], f["first"]["tar"]),
    }


def _find(rows: list[dict[str, Any]], needle: str) -> dict[str, Any] | None:
    return next((r for r in rows if needle in r["function"]), None)


# --------------------------------------------------------------------------- terminal


def ssh_text(section: Section) -> list[str]:
    f = section.facts
    out = ["  goals (issue 18), targets / reference, median over median:"]
    for key, (run, ref) in _pairs(f).items():
        if ref is None:
            out.append(f"    {GOAL_NAMES[key]}: not measured ({f['reupload']['rsync_missing']})")
            continue
        ratio = run.median / ref.median
        out.append(
            f"    {GOAL_NAMES[key]}: {ratio:.2f}x (goal <= {GOALS[key]:g}x): {_verdict(key, ratio)}"
        )
    for key in ("warm", "reupload", "first"):
        out.append(f"  phases, {key} (median ms; client CPU {_ms(f[key]['cpu'])} ms):")
        for name, value in f[key]["phases"].items():
            out.append(f"    {_ms(value):>7}  {name}")
    for key in ("first", "reupload"):
        p = f["profiles"][key]
        out.append(f"  cProfile, one {key} run ({p['wall_s']:.2f} s wall), top self time:")
        for row in p["top_self"][:6]:
            out.append(f"    {row['self_s']:7.3f} s  {row['calls']:>8}  {row['function']}")
    return out


# --------------------------------------------------------------------------- Markdown


def _table(header: list[str], rows: list[list[str]], right: tuple[int, ...] = ()) -> list[str]:
    aligns = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]


def ssh_summary(section: Section) -> str:
    f = section.facts
    if f.get("skipped"):
        return f"- SSH targets: {f['skipped']}."
    parts = []
    for key, (run, ref) in _pairs(f).items():
        label = GOAL_NAMES[key].split(",")[0].split(" (")[0]
        if ref is None:
            parts.append(f"{label} not measured")
            continue
        ratio = run.median / ref.median
        parts.append(
            f"{label} **{ratio:.1f}x** ({_ms(run.median)} vs {_ms(ref.median)} ms; goal "
            f"<= {GOALS[key]:g}x: **{_verdict(key, ratio)}**)"
        )
    shared = ""
    if "own" in f["warm"]:
        w = f["warm"]
        shared = (
            f" Without the shared connection (`TARGETS_SSH_PERSIST=0`) (a) takes "
            f"{_ms(w['own'].median)} ms; OpenSSH with ControlPersist "
            f"{_ms(w['shared_ssh'].median)} ms."
        )
    return (
        "- SSH target on a local sshd, `targets run` vs OpenSSH tools: "
        + "; ".join(parts)
        + "."
        + shared
    )


def ssh_markdown(section: Section, rows_md: list[str]) -> list[str]:
    """The section: ``rows_md`` is the generic table of its rows (from _report)."""
    f = section.facts
    out = ["", f"## {section.title}", ""]
    if f.get("skipped"):
        return [*out, f"Not measured on this machine: {f['skipped']}."]
    out += [section.how, "", *rows_md, "", "### The issue's goals", ""]
    unchanged = f["reupload"]["unchanged"]
    goal_rows = []
    for key, (run, ref) in _pairs(f).items():
        if ref is None:
            goal_rows.append(
                [GOAL_NAMES[key], _ms(run.median), "-", "-", f"<= {GOALS[key]:g}x", "not measured"]
            )
            continue
        ratio = run.median / ref.median
        goal_rows.append(
            [
                GOAL_NAMES[key],
                _ms(run.median),
                _ms(ref.median),
                f"{ratio:.2f}x",
                f"<= {GOALS[key]:g}x",
                f"**{_verdict(key, ratio)}**",
            ]
        )
    out += _table(
        ["comparison", "targets ms", "reference ms", "ratio", "goal", "goal met?"],
        goal_rows,
        right=(1, 2, 3),
    )
    first, reup = f["first"], f["reupload"]
    upload_first = first["run"].median - unchanged.median
    upload_one = reup["run"].median - unchanged.median
    out += [
        "",
        "Ratios are medians over medians of whole commands: `targets run` includes starting "
        "the CLI, the snapshot, the run itself and collecting its logs, which the "
        "reference tools do not do. The part that is the upload alone is the difference "
        f"with the same project run unchanged ({_ms(unchanged.median)} ms, nothing "
        f"uploaded): {_ms(upload_first)} ms for the first upload "
        f"({upload_first / first['tar'].median:.2f}x `tar | ssh`)"
        + (
            f", {upload_one * 1000:+,.0f} ms for the one changed file (rsync: "
            f"{_ms(reup['rsync'].median)} ms; the unchanged runs themselves spread by "
            f"{_ms(unchanged.p90 - unchanged.median)} ms, p90 - median)."
            if reup.get("rsync")
            else f", {upload_one * 1000:+,.0f} ms for the one changed file."
        ),
        "",
        "### Where the time of `targets run` goes",
        "",
        "Median of each phase over the timed runs (wall-clock stamps: the CLI's start and "
        "exit, the run's `created_at` written after the snapshot, and `started_at` / "
        "`ended_at` written by the supervisor on the target); client CPU is user + system "
        "time of the `targets` process.",
        "",
    ]
    cols = [("warm", "(a) 1-file project"), ("reupload", "(b) one file changed")]
    cols += [("unchanged", "2000 files, unchanged"), ("first", "(c) first upload")]
    phases = {
        "warm": f["warm"]["phases"],
        "reupload": reup["phases"],
        "unchanged": reup["unchanged_phases"],
        "first": first["phases"],
    }
    cpu = {
        "warm": f["warm"]["cpu"],
        "reupload": reup["cpu"],
        "unchanged": reup["unchanged_cpu"],
        "first": first["cpu"],
    }
    names = list(phases["warm"])
    table = [[name, *(_ms(phases[k].get(name, float("nan"))) for k, _ in cols)] for name in names]
    table.append(["client CPU (user + sys)", *(_ms(cpu[k]) for k, _ in cols)])
    out += _table(["phase (ms)", *(label for _, label in cols)], table, right=(1, 2, 3, 4))
    out += ["", "### Profile of the slowest path", ""]
    out += _profile_md(f["profiles"]["first"], "(c) first upload", 10)
    out += _profile_md(f["profiles"]["reupload"], "(b) one file changed", 6)
    out += ["", *_interpretation(f)]
    return out


def _profile_md(p: dict[str, Any], what: str, n: int) -> list[str]:
    rows = [
        [f"`{r['function']}`", str(r["calls"]), f"{r['self_s']:.3f}", f"{r['cumulative_s']:.3f}"]
        for r in p["top_self"][:n]
    ]
    ours = [
        [f"`{r['function']}`", str(r["calls"]), f"{r['cumulative_s']:.3f}"]
        for r in p["top_targets"][1:13]  # [0] is the whole command
    ]
    return [
        "`TARGETS_SSH_PERSIST=0 python -m cProfile -m targets run t.py --target vm1` (the "
        f"run makes its own connection, so the SSH work is in this process), one {what} run: "
        f"{p['wall_s']:.2f} s wall, {p['profiled_s']:.2f} s in the profiled (main) thread. "
        "The main thread is where the upload is read, compressed, encrypted and sent "
        "(paramiko packs and encrypts in the sending thread); paramiko's reader thread and "
        "the agent and sshd on the target are not in it. Waiting shows up as "
        "`_thread.lock.acquire` (for a reply, or for SSH window space).",
        "",
        "Top functions by self time:",
        "",
        *_table(["function", "calls", "self s", "cumulative s"], rows, right=(1, 2, 3)),
        "",
        "`targets` functions by cumulative time:",
        "",
        *_table(["function", "calls", "cumulative s"], ours, right=(1, 2)),
        "",
    ]


def _interpretation(f: dict[str, Any]) -> list[str]:
    warm, first, reup = f["warm"], f["first"], f["reupload"]
    prof_c, prof_b = f["profiles"]["first"], f["profiles"]["reupload"]
    wp = list(warm["phases"].values())
    lines = ["### Interpretation", ""]

    # (a)
    opened = _find(prof_b["top_targets"], "_open_agent")
    twice = ""
    if opened and opened["calls"] > 1:
        twice = (
            f" The profile of (b) shows why the middle and the end phases each cost about a "
            "bare `ssh`: "
            f"`vm.py:_open_agent` ran {opened['calls']} times in one `targets run` "
            f"({opened['cumulative_s'] * 1000:.0f} ms under the profiler): `submit_run` "
            "closes its target after submitting (`with target:`), and the `Run` that then "
            "streams the logs opens a second SSH connection and starts a second agent."
        )
    lines += [
        f"**(a) Warm submit.** Bare `ssh` takes {_ms(warm['ssh'].median)} ms (key exchange, "
        "authentication, a session, `python3` start-up on the target). `targets run` takes "
        f"{_ms(warm['run'].median)} ms: {_ms(wp[0])} ms in the client before the run is "
        f"recorded (interpreter, imports, snapshot), {_ms(wp[1])} ms to the script's start "
        "(SSH connection, agent start, `missing`, `start`, the supervisor), "
        f"{_ms(wp[2])} ms of script, and {_ms(wp[3])} ms from its end to the CLI's exit "
        f"(polling the status, the last logs, fetching outputs).{twice}",
        "",
    ]
    if "own" in warm:
        lines += [
            "**Connection sharing.** With a connection of its own for every command "
            f"(`TARGETS_SSH_PERSIST=0`), `targets run` takes {_ms(warm['own'].median)} ms; "
            f"through the target's shared connection, {_ms(warm['run'].median)} ms "
            f"({_ms(warm['own'].median - warm['run'].median)} ms less). OpenSSH with a "
            f"master connection (ControlPersist) runs the bare command in "
            f"{_ms(warm['shared_ssh'].median)} ms: like for like, both sharing, `targets run` "
            f"is {warm['run'].median / warm['shared_ssh'].median:.1f}x it, which is the "
            "client's start-up, the agent and the run's own bookkeeping.",
            "",
        ]

    # (c)
    named = prof_c["named"]
    total_mb = f["total_bytes"] / 1e6
    compress = named["zlib compression"]
    pieces = [
        f"zlib compression in the main thread {compress:.2f} s (the client compresses only "
        "objects whose first 4 KiB shrink, so the random half is sent as it is, and it "
        "compresses in a separate thread that the profile does not show; the text half "
        f"compresses to {f['text_ratio'] * 100:.0f}%)",
        f"socket sends {named['socket send']:.2f} s",
        f"waiting on locks (SSH window, replies) {named['waiting on locks']:.2f} s",
        f"encryption {named['AES (cryptography)']:.2f} s and MACs {named['HMAC']:.2f} s",
        f"file reads {named['file reads']:.2f} s",
    ]
    lines += [
        f"**(c) First upload.** `tar | ssh` moves the {total_mb:.0f} MB in "
        f"{_ms(first['tar'].median)} ms; `targets run` needs {_ms(first['run'].median)} ms, "
        f"of which {_ms(first['phases'][next(iter(first['phases']))])} ms before the "
        "connection and "
        f"{_ms(list(first['phases'].values())[1])} ms from the record to the script's start "
        f"(connect, send {first['uploaded'][0] if first['uploaded'] else '?'} objects, "
        f"start). The client is CPU-bound: {_ms(first['cpu'])} ms of client CPU. In the "
        f"profile ({prof_c['profiled_s']:.2f} s): {'; '.join(pieces)}. Snapshot hashing is "
        "not in it: the local hash "
        "cache was warm (the one-run row with a cold cache shows what hashing adds).",
        "",
    ]

    # (b)
    upload_one = reup["run"].median - reup["unchanged"].median
    noise = reup["unchanged"].p90 - reup["unchanged"].median
    rs = reup.get("rsync")
    lines += [
        f"**(b) One file changed.** Only that file travels (objects uploaded per run: "
        f"{', '.join(str(v) for v in sorted(set(reup['uploaded'])))}); against the "
        f"unchanged project ({_ms(reup['unchanged'].median)} ms) the run costs "
        f"{'+' if upload_one >= 0 else '-'}{_ms(abs(upload_one))} ms, while the spread of "
        f"the unchanged runs (p90 - median) is {_ms(noise)} ms. The run's fixed costs "
        "decide the ratio: "
        f"those of (a) ({_ms(warm['run'].median)} ms) plus what 2000 files add to every "
        "run (a stat of each file and the hash cache in the client, a 2000-row manifest "
        "sent twice, `missing` checks 2000 objects, the run folder gets 2000 hard links)"
        + (
            f"; `rsync -a` ({_ms(rs.median)} ms) only compares sizes and dates and sends "
            "the changed blocks."
            if rs
            else "."
        ),
        "",
    ]
    return lines
