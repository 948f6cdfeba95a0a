"""Compute names in job files -> attached targets (``targets compute map``).

Real Azure ML jobs name the workspace's clusters: ``compute: azureml:cpu-cluster``,
``azureml:gpu-cluster``, ``azureml:serverless``. The workspace keeps a mapping from
those names to attached targets, so the files run unchanged on the user's targets::

    targets compute map cpu-cluster=pool serverless=local

It lives in ``.targets/compute-map.yml`` (beside ``targets.yml`` and ``datastores.yml``)
and is read by :func:`resolve_compute`, which every v2 job, sweep trial and pipeline
step goes through (``targets.jobs.execute.compute_name``).

Resolution of a written name (``azureml:`` is dropped first, as Azure ML does):

1. absent -> ``local``;
2. a mapped name -> its target (the mapping wins over a target of the same name: the
   user asked for it explicitly);
3. an attached target's name -> that target;
4. anything else -> :class:`~targets.errors.ConfigError` (exit 2) naming
   ``targets compute map NAME=TARGET``, raised before anything is queued.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from targets.errors import ConfigError, UsageError
from targets.workspace import LOCAL, Workspace

__all__ = [
    "MAP_FILE",
    "compute_map",
    "map_computes",
    "parse_mapping",
    "resolve_compute",
    "unmap_computes",
]

MAP_FILE = "compute-map.yml"
_PREFIX = "azureml:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def _file(ws: Workspace) -> Path:
    return ws.dir / MAP_FILE


def _bare(name: str) -> str:
    return name.strip().removeprefix(_PREFIX)


def compute_map(ws: Workspace) -> dict[str, str]:
    """The stored mapping, compute name -> target name (empty when there is none).

    Reading creates nothing. Raises ConfigError when the file is not a mapping of names."""
    path = _file(ws)
    if not path.exists():
        return {}
    from targets.runconfig.yaml_lines import load_yaml_file

    data = load_yaml_file(path, MAP_FILE) or {}
    found = data.get("compute") if isinstance(data, dict) else None
    if found is None:
        return {}
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise ConfigError(
            "expected 'compute:' with NAME: TARGET entries",
            path=str(path),
            hint="fix or delete the file, then: targets compute map NAME=TARGET",
        )
    return dict(found)


def parse_mapping(text: str) -> tuple[str, str]:
    """``"cpu-cluster=pool"`` (or ``"azureml:cpu-cluster=pool"``) -> ``("cpu-cluster",
    "pool")``. Raises UsageError for anything else."""
    name, sep, target = text.partition("=")
    name, target = _bare(name), target.strip()
    if not sep or not name or not target:
        raise UsageError(
            f"expected NAME=TARGET, got {text!r}",
            hint="e.g. targets compute map cpu-cluster=pool serverless=local",
        )
    if not _NAME.match(name):
        raise UsageError(
            f"invalid compute name {name!r}: use letters, digits, '.', '_' and '-'",
            hint="give the name the job files use, e.g. cpu-cluster for azureml:cpu-cluster",
        )
    return name, target


def map_computes(ws: Workspace, pairs: Mapping[str, str]) -> dict[str, str]:
    """Add or replace mappings; every target must be attached (UsageError otherwise, and
    nothing is written). Returns the whole mapping as stored."""
    attached = ws.targets()
    for name, target in pairs.items():
        if target not in attached:
            raise UsageError(
                f"cannot map {name!r} to {target!r}: no target {target!r} is attached "
                f"(attached: {', '.join(sorted(attached))})",
                hint=f"attach it first (targets attach {target} --type KIND ...), or map "
                f"{name} to one of the attached targets",
            )
    current = compute_map(ws)
    current.update(pairs)
    _write(ws, current)
    return current


def unmap_computes(ws: Workspace, names: Iterable[str]) -> dict[str, str]:
    """Remove mappings; a name that is not mapped is a UsageError (nothing is written)."""
    current = compute_map(ws)
    wanted = [_bare(n) for n in names]
    unknown = [n for n in wanted if n not in current]
    if unknown:
        mapped = ", ".join(sorted(current)) or "none"
        raise UsageError(f"not mapped: {', '.join(unknown)} (mapped: {mapped})")
    for name in wanted:
        del current[name]
    _write(ws, current)
    return current


def _write(ws: Workspace, mapping: Mapping[str, str]) -> None:
    ws.ensure()
    text = (
        "# Compute names of job files -> attached targets. Written by `targets compute map`.\n"
        + yaml.safe_dump({"compute": dict(sorted(mapping.items()))}, sort_keys=False)
    )
    fd, tmp = tempfile.mkstemp(dir=ws.dir, prefix=f".{MAP_FILE}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, _file(ws))


def resolve_compute(ws: Workspace, written: str | None) -> str:
    """The attached target a job's ``compute`` value names (see the module doc).

    Raises ConfigError (exit 2) when the name is neither mapped nor attached, or is
    mapped to a target that was detached since."""
    if not written or not written.strip():
        return LOCAL
    name = _bare(written)
    attached = ws.targets()
    mapped = compute_map(ws).get(name)
    if mapped is not None:
        if mapped not in attached:
            raise ConfigError(
                f"compute {written!r} is mapped to the target {mapped!r}, which is not "
                f"attached any more (attached: {', '.join(sorted(attached))})",
                key_path="compute",
                hint=f"targets compute map {name}=TARGET with an attached target",
            )
        return mapped
    if name in attached:
        return name
    if not _NAME.match(name):  # `azureml:<your-compute-name>`: a template's placeholder
        raise ConfigError(
            f"compute {written!r} is a placeholder, not a compute name "
            f"(attached: {', '.join(sorted(attached))})",
            key_path="compute",
            hint="pass --target TARGET, or --set compute=TARGET",
        )
    raise ConfigError(
        f"compute {written!r} is not a target of this workspace "
        f"(attached: {', '.join(sorted(attached))})",
        key_path="compute",
        hint=f"map it once to one of yours: targets compute map {name}=TARGET "
        f"(e.g. targets compute map {name}=local), or pass --target",
    )


def runs_on_one_machine(ws: Workspace, target: str) -> bool:
    """Whether the attached ``target`` runs each run on one machine (its kind lacks
    ``Capability.MULTI_NODE``). Imports only that kind; raises UnknownTargetError."""
    from targets.compute.base import Capability
    from targets.registry import load_kind

    kind = load_kind(ws.target_record(target).kind)
    return Capability.MULTI_NODE not in kind.capabilities
