"""Azure ML's curated environments, kept in the package: one catalogue for both front
ends (v1 ``Environment.get(ws, "AzureML-Minimal")`` and v2 jobs'
``environment: azureml:AzureML-sklearn-1.5@latest`` or
``azureml://registries/azureml/environments/sklearn-1.5/labels/latest``).

``catalogue.json`` beside this module holds, for each environment, the Python version
and the conda/pip packages Microsoft published for it, with its source (repository,
path, commit and date). The v1 names (``AzureML-Minimal``, ``AzureML-PyTorch-1.5-CPU``,
...) come from the 2020 curated-environments page; the current ones (``AzureML-sklearn-1.5``,
``AzureML-lightgbm-3.3``, ``AzureML-tensorflow-2.16-cuda12``, ``AzureML-acpt-pytorch-...``)
from Azure/azureml-assets. GPU-only and Azure-only packages are left out, and each
entry lists them in ``dropped`` with the reason, so a curated environment builds on a
CPU target.

Names are matched exactly, then ignoring case (v1 code spells them both
``AzureML-PyTorch-1.5-CPU`` and ``AzureML-pytorch-1.5-cpu``). In the ``azureml``
registry an environment has its asset name (``sklearn-1.5``); in a workspace, the same
environment is ``AzureML-sklearn-1.5``.

Design choice: one entry per name, not per version. Azure publishes a new version of a
curated environment every few weeks (``AzureML-sklearn-1.5:33``) with the same package
list and newer patch releases; the catalogue keeps the list as of its source commit, and
a job that names a version is told which list it gets (:func:`describe`).
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
    "AZUREML_REGISTRY",
    "RESERVED_PREFIXES",
    "CuratedEnvironment",
    "curated",
    "curated_names",
    "describe",
    "find_curated",
    "find_in_registry",
    "is_reserved_name",
    "unknown_curated",
]

CATALOGUE = Path(__file__).with_name("catalogue.json")
RESERVED_PREFIXES = ("azureml", "microsoft")
"""Name prefixes Azure ML keeps for its own environments (compared without case)."""
AZUREML_REGISTRY = "azureml"
"""The registry that publishes the curated environments (``azureml://registries/azureml``)."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """A package of the published environment that the catalogue leaves out, and why."""

    package: str
    reason: str


@dataclass(frozen=True, slots=True)
class CuratedEnvironment:
    """One catalogue entry: its published name, conda specification and source.

    ``registry_name`` is its name in the ``azureml`` registry (None for the 2020 v1
    names, which were never in a registry); ``published_base_image`` the image Azure
    builds it on (informational: targets builds the packages on the target's own Python
    or on the job's image)."""

    name: str
    conda: CondaSpec
    source: dict[str, str]
    note: str | None = None
    registry_name: str | None = None
    python: str | None = None
    dropped: tuple[Dropped, ...] = ()
    published_base_image: str | None = None


@cache
def _catalogue() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    return data


@cache
def curated() -> dict[str, CuratedEnvironment]:
    """Every curated environment by its published (workspace) name."""
    data = _catalogue()
    sources: dict[str, dict[str, str]] = data["sources"]
    found = {}
    for name, entry in data["environments"].items():
        conda = CondaSpec(name=name, channels=entry["channels"], dependencies=entry["dependencies"])
        found[name] = CuratedEnvironment(
            name=name,
            conda=conda,
            source=sources[entry["source"]],
            note=entry.get("note"),
            registry_name=entry.get("registry_name"),
            python=entry.get("python"),
            dropped=tuple(Dropped(d["package"], d["reason"]) for d in entry.get("dropped", ())),
            published_base_image=entry.get("published_base_image"),
        )
    return found


def curated_names() -> list[str]:
    return sorted(_catalogue()["environments"], key=str.lower)


def is_reserved_name(name: str) -> bool:
    """Does ``name`` start with a prefix Azure ML reserves for curated environments?"""
    return name.lower().startswith(RESERVED_PREFIXES)


def find_curated(name: str) -> CuratedEnvironment | None:
    """The curated environment called ``name`` in a workspace (exact, then
    case-insensitive), or None."""
    known = curated()
    if name in known:
        return known[name]
    for candidate, entry in known.items():
        if candidate.lower() == name.lower():
            return entry
    return None


def find_in_registry(registry: str, name: str) -> CuratedEnvironment | None:
    """The environment ``azureml://registries/<registry>/environments/<name>`` stands
    for, or None. Only the ``azureml`` registry publishes curated environments; its
    names are the asset names (``sklearn-1.5``); the workspace spelling
    (``AzureML-sklearn-1.5``) is accepted too."""
    if registry.lower() != AZUREML_REGISTRY:
        return None
    for entry in curated().values():
        if entry.registry_name and entry.registry_name.lower() == name.lower():
            return entry
    return find_curated(name)


def describe(entry: CuratedEnvironment, version: str | None = None) -> str:
    """One line saying which package list a reference resolved to, for the job's
    warnings: the source, its date, the version asked for and what was left out."""
    source = entry.source
    where = f"{source.get('repository')} {source.get('path')} @ {str(source.get('commit'))[:12]}"
    if source.get("date"):
        where += f" ({source['date']})"
    asked = (
        f"; version {version} is not distinguished: the catalogue keeps one package list per name"
        if version not in (None, "latest")
        else ""
    )
    dropped = (
        "; left out: " + ", ".join(f"{d.package} ({d.reason})" for d in entry.dropped)
        if entry.dropped
        else ""
    )
    python = f"Python {entry.python}, " if entry.python else ""
    return (
        f"curated environment {entry.name}: {python}the packages published in {where}"
        f"{asked}{dropped}"
    )


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
