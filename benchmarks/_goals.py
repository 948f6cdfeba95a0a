"""The goals of issue 18, judged from one run's sections: each is a ratio (or, for the
local run, milliseconds over the reference) of medians measured in the same run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from _harness import Sample
from _scenarios import Section

__all__ = ["Goal", "goals", "goals_markdown", "goals_text"]


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    run: Sample | None
    ref: Sample | None
    limit: float
    plus_ms: bool = False
    """The goal bounds ``run - ref`` in seconds (else ``run / ref``)."""
    why_missing: str = ""

    @property
    def value(self) -> float | None:
        if self.run is None or self.ref is None:
            return None
        if self.plus_ms:
            return self.run.median - self.ref.median
        return self.run.median / self.ref.median

    @property
    def verdict(self) -> str:
        value = self.value
        if value is None:
            return "not measured"
        return "met" if value <= self.limit else "missed"

    @property
    def shown(self) -> str:
        value = self.value
        if value is None:
            return "-"
        return f"+{value * 1000:.0f} ms" if self.plus_ms else f"{value:.2f}x"

    @property
    def wanted(self) -> str:
        return f"<= +{self.limit * 1000:.0f} ms" if self.plus_ms else f"<= {self.limit:g}x"


def _get(facts: Mapping[str, Any], *path: str) -> Any:
    value: Any = facts
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def goals(by: Mapping[str, Section]) -> list[Goal]:
    """Every goal of the issue, from the sections that were run (missing ones: not
    measured, with the reason)."""
    local = by["local"].facts if "local" in by else {}
    start = by["startup"].facts if "startup" in by else {}
    ssh = by["ssh"].facts if "ssh" in by else {}
    cluster = by["cluster"].facts if "cluster" in by else {}
    skipped = str(cluster.get("skipped") or "")
    return [
        Goal(
            "local warm `targets run one_line.py` vs `python one_line.py`",
            local.get("run"),
            local.get("python"),
            0.120,
            plus_ms=True,
        ),
        Goal(
            "`targets --version` vs `python -c pass`", start.get("version"), start.get("bare"), 1.5
        ),
        Goal(
            "(a) warm `targets run t.py --target vm1` vs bare `ssh host python3 -c 'print(1)'`",
            _get(ssh, "warm", "run"),
            _get(ssh, "warm", "ssh"),
            1.5,
        ),
        Goal(
            "(b) one file changed in the 2000-file, 100 MB project vs `rsync -a` + ssh",
            _get(ssh, "reupload", "run"),
            _get(ssh, "reupload", "rsync"),
            1.0,
            why_missing=str(_get(ssh, "reupload", "rsync_missing") or ""),
        ),
        Goal(
            "(c) first upload of that project vs `tar c | ssh tar x`",
            _get(ssh, "first", "run"),
            _get(ssh, "first", "tar"),
            1.2,
        ),
        Goal(
            "managed cluster: warm one-node `targets run` vs bare `ssh` to the node",
            _get(cluster, "warm", "run"),
            _get(cluster, "warm", "ssh"),
            2.0,
            why_missing=skipped,
        ),
    ]


def goals_text(by: Mapping[str, Section]) -> list[str]:
    out = ["", "goals (issue 18), median over median in this run:"]
    for goal in goals(by):
        extra = (
            f" ({goal.why_missing})" if goal.verdict == "not measured" and goal.why_missing else ""
        )
        out.append(
            f"  {goal.verdict:>12}  {goal.shown:>9} (goal {goal.wanted})  {goal.name}{extra}"
        )
    return out


def goals_markdown(by: Mapping[str, Section]) -> list[str]:
    def ms(sample: Sample | None) -> str:
        return "-" if sample is None else f"{sample.median * 1000:,.0f}"

    lines = [
        "| goal (issue 18) | targets ms | reference ms | measured | goal | met? |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for goal in goals(by):
        verdict = f"**{goal.verdict}**" if goal.verdict != "not measured" else goal.verdict
        lines.append(
            f"| {goal.name} | {ms(goal.run)} | {ms(goal.ref)} | {goal.shown} | "
            f"{goal.wanted} | {verdict} |"
        )
    return lines
