"""Target kinds, discovered through the entry-point group ``targets.compute``.

Listing kinds reads entry-point metadata only and imports nothing; using a kind imports
that kind's module alone. A plugin that fails to import is reported by name, with its
distribution and the error, and every other kind keeps working (unlike pluggy, which
imports every entry point of a group at once).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.metadata import EntryPoint, entry_points

from targets.compute.base import ComputeTarget
from targets.errors import PluginLoadError, UnknownKindError

__all__ = ["GROUP", "KindInfo", "available_kinds", "load_kind", "resolve_kind_name"]

GROUP = "targets.compute"


@dataclass(frozen=True, slots=True)
class KindInfo:
    """An installed kind, known from metadata alone (nothing imported)."""

    name: str
    value: str
    distribution: str | None
    version: str | None


def _dist_of(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, tuple[EntryPoint, ...]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, []).append(ep)
    # The same distribution can appear twice (an editable install next to a regular
    # one on sys.path); collapse identical values and keep genuine conflicts.
    result: dict[str, tuple[EntryPoint, ...]] = {}
    for name, eps in found.items():
        unique: dict[str, EntryPoint] = {}
        for ep in eps:
            unique.setdefault(ep.value, ep)
        result[name] = tuple(unique.values())
    return result


def available_kinds() -> list[KindInfo]:
    """Every installed kind, sorted by name. Imports no plugin."""
    kinds = []
    for name, eps in sorted(_entry_points().items()):
        dist, version = _dist_of(eps[0])
        kinds.append(KindInfo(name=name, value=eps[0].value, distribution=dist, version=version))
    return kinds


def resolve_kind_name(kind: str) -> str:
    """The canonical name for ``kind``: itself when installed, else the kind that lists it
    as an alias. Aliases are declared on the classes, so resolving one imports kinds until
    it is found; broken plugins are skipped here."""
    eps = _entry_points()
    if kind in eps:
        return kind
    for name in sorted(eps):
        try:
            cls = load_kind(name)
        except PluginLoadError:
            continue
        if kind in cls.aliases:
            return name
    raise UnknownKindError(kind, sorted(eps))


@cache
def load_kind(kind: str) -> type[ComputeTarget]:
    """Import and return the class of ``kind``.

    Raises UnknownKindError when no plugin provides it, PluginLoadError when the plugin is
    broken (import error, not a ComputeTarget subclass, two distributions claiming it).
    """
    eps = _entry_points()
    if kind not in eps:
        raise UnknownKindError(kind, sorted(eps))
    candidates = eps[kind]
    dist, _ = _dist_of(candidates[0])
    if len(candidates) > 1:
        owners = ", ".join(filter(None, (_dist_of(ep)[0] for ep in candidates)))
        raise PluginLoadError(kind, dist, f"provided by more than one distribution ({owners})")
    ep = candidates[0]
    try:
        module_name, _, attr = ep.value.partition(":")
        obj: object = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except Exception as exc:  # any import-time failure of a plugin is that plugin's fault
        raise PluginLoadError(kind, dist, f"{type(exc).__name__}: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, ComputeTarget)):
        raise PluginLoadError(kind, dist, f"{ep.value} is not a subclass of ComputeTarget")
    if getattr(obj, "kind", None) != kind:
        raise PluginLoadError(
            kind, dist, f"{ep.value} declares kind {getattr(obj, 'kind', None)!r}, not {kind!r}"
        )
    return obj


def clear_cache() -> None:
    """Forget discovered entry points (after installing or removing a plugin in-process)."""
    _entry_points.cache_clear()
    load_kind.cache_clear()
