"""Azure ML's curated environments (``AzureML-Minimal``, ``AzureML-Tutorial``,
``AzureML-PyTorch-1.5-CPU``, ...): the conda specifications Microsoft published for
them, kept in ``_curated.json`` beside this module with the source of each entry
(repository, path and commit).

``Environment.get(ws, "AzureML-Minimal")`` resolves a name here when the workspace has no
registered environment of that name. Names are matched exactly, then ignoring case
(v1 code spells them both ``AzureML-PyTorch-1.5-CPU`` and ``AzureML-pytorch-1.5-cpu``).
A name with the reserved prefix that is not in the catalogue is an error listing the
known ones.

Design choice: only the conda specification is kept. The images that back the curated
environments in Azure (``mcr.microsoft.com/azureml/...``) are not named, so a curated
environment runs in the target's own Python tooling like any other conda specification.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from targets.errors import UsageError
from targets.runconfig.model import CondaSpec

__all__ = [
    "RESERVED_PREFIXES",
    "CuratedEnvironment",
    "curated",
    "curated_names",
    "find_curated",
    "is_reserved_name",
    "unknown_curated",
]

CATALOGUE = Path(__file__).with_name("_curated.json")
RESERVED_PREFIXES = ("azureml", "microsoft")
"""Name prefixes Azure ML keeps for its own environments (compared without case)."""


@dataclass(frozen=True, slots=True)
class CuratedEnvironment:
    """One catalogue entry: its published name, conda specification and source."""

    name: str
    conda: CondaSpec
    source: dict[str, str]
    note: str | None = None


@cache
def _catalogue() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    return data


def curated() -> dict[str, CuratedEnvironment]:
    """Every curated environment by its published name."""
    data = _catalogue()
    sources: dict[str, dict[str, str]] = data["sources"]
    found = {}
    for name, entry in data["environments"].items():
        conda = CondaSpec(name=name, channels=entry["channels"], dependencies=entry["dependencies"])
        found[name] = CuratedEnvironment(name, conda, sources[entry["source"]], entry.get("note"))
    return found


def curated_names() -> list[str]:
    return sorted(_catalogue()["environments"], key=str.lower)


def is_reserved_name(name: str) -> bool:
    """Does ``name`` start with a prefix Azure ML reserves for curated environments?"""
    return name.lower().startswith(RESERVED_PREFIXES)


def find_curated(name: str) -> CuratedEnvironment | None:
    """The curated environment called ``name`` (exact, then case-insensitive), or None."""
    known = curated()
    if name in known:
        return known[name]
    for candidate, entry in known.items():
        if candidate.lower() == name.lower():
            return entry
    return None


def unknown_curated(name: str) -> UsageError:
    """The error for a reserved name that is not in the catalogue."""
    names = curated_names()
    close = [n for n in names if n.lower().startswith(name.lower().rsplit("-", 1)[0])]
    return UsageError(
        f"{name!r} is not a curated environment targets knows; the known ones are: "
        + ", ".join(names),
        hint=(f"did you mean {close[0]!r}? " if close else "")
        + "or build your own: Environment.from_conda_specification(name, file) "
        "then env.register(ws)",
    )
