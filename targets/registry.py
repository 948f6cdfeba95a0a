"""Plugins, discovered through entry-point groups: one loader for every group.

Two groups exist: target kinds (``targets.compute``, :data:`KINDS`) and cluster node
providers (``targets.providers``, declared in :mod:`targets.clusters.provider`). Both go
through :func:`load_plugin`, with the same rules:

- listing a group reads entry-point metadata only and imports nothing;
- using a plugin imports that plugin's module alone (unlike pluggy, which imports every
  entry point of a group at once), so a broken plugin never stops the others;
- a plugin that fails to import, is not a subclass of the group's base class, declares a
  name other than its entry point's, or is claimed by two distributions, is refused with
  :class:`~targets.errors.PluginLoadError` naming it, its distribution and what is wrong;
- an unknown name raises the group's own error, listing what is installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar, cast

from targets.compute.base import ComputeTarget
from targets.errors import PluginLoadError, TargetsError, UnknownKindError

__all__ = [
    "GROUP",
    "KINDS",
    "KindInfo",
    "PluginGroup",
    "PluginInfo",
    "available_kinds",
    "available_plugins",
    "clear_cache",
    "find_kind",
    "load_kind",
    "load_plugin",
    "resolve_kind_name",
    "where",
]

T = TypeVar("T")

GROUP = "targets.compute"


@dataclass(frozen=True)
class PluginGroup(Generic[T]):
    """An entry-point group and the rules its plugins follow."""

    group: str
    """The entry-point group (``targets.compute``)."""
    base: type
    """The class every plugin of the group subclasses (typed ``type[T]``; ``type`` here
    because the bases are abstract, which ``type[T]`` does not accept)."""
    name_attr: str
    """The class attribute that must equal the entry point's name (``kind``, ``name``)."""
    noun: str
    """What a plugin of the group is called in messages (``target kind``)."""
    unknown: Callable[[str, Sequence[str]], TargetsError]
    """The error for a name no installed plugin provides, given the installed names."""


KINDS: PluginGroup[ComputeTarget] = PluginGroup(
    group=GROUP,
    base=ComputeTarget,
    name_attr="kind",
    noun="target kind",
    unknown=UnknownKindError,
)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """An installed plugin, known from metadata alone (nothing imported)."""

    name: str
    value: str
    distribution: str | None
    version: str | None


KindInfo = PluginInfo
"""An installed kind (the name :func:`available_kinds` has always returned)."""


class _LoadError(PluginLoadError):
    """:class:`PluginLoadError` worded for the group (``cluster provider 'x'``)."""

    def __init__(
        self, group: PluginGroup[Any], name: str, distribution: str | None, error: str
    ) -> None:
        super().__init__(name, distribution, error)
        dist = f" (from distribution {distribution!r})" if distribution else ""
        self.message = f"{group.noun} {name!r}{dist} failed to load: {error}"
        self.hint = f"reinstall or fix that plugin; every other {group.noun} still works"
        self.args = (self.message,)


def _dist_of(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


@cache
def _entry_points(group: str) -> dict[str, tuple[EntryPoint, ...]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=group):
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


def available_plugins(group: PluginGroup[Any]) -> list[PluginInfo]:
    """Every installed plugin of ``group``, sorted by name. Imports no plugin."""
    plugins = []
    for name, eps in sorted(_entry_points(group.group).items()):
        dist, version = _dist_of(eps[0])
        plugins.append(
            PluginInfo(name=name, value=eps[0].value, distribution=dist, version=version)
        )
    return plugins


@cache
def load_plugin(group: PluginGroup[T], name: str) -> type[T]:
    """Import and return the class registered as ``name`` in ``group``.

    Raises the group's ``unknown`` error when no plugin provides it, and
    :class:`PluginLoadError` when the plugin is broken: its import fails, it is not a
    subclass of the group's base, its ``name_attr`` is not ``name``, or two
    distributions claim the name.
    """
    eps = _entry_points(group.group)
    if name not in eps:
        raise group.unknown(name, sorted(eps))
    candidates = eps[name]
    dist, _ = _dist_of(candidates[0])
    if len(candidates) > 1:
        owners = ", ".join(filter(None, (_dist_of(ep)[0] for ep in candidates)))
        raise _LoadError(group, name, dist, f"provided by more than one distribution ({owners})")
    ep = candidates[0]
    try:
        module_name, _, attr = ep.value.partition(":")
        obj: object = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except Exception as exc:  # any import-time failure of a plugin is that plugin's fault
        raise _LoadError(group, name, dist, f"{type(exc).__name__}: {exc}") from exc
    base = group.base.__name__
    if not (isinstance(obj, type) and issubclass(obj, group.base)):
        raise _LoadError(group, name, dist, f"{ep.value} is not a subclass of {base}")
    declared = getattr(obj, group.name_attr, None)
    if declared != name:
        raise _LoadError(
            group, name, dist, f"{ep.value} declares {group.name_attr} {declared!r}, not {name!r}"
        )
    return cast("type[T]", obj)


def available_kinds() -> list[PluginInfo]:
    """Every installed kind, sorted by name. Imports no plugin."""
    return available_plugins(KINDS)


def load_kind(kind: str) -> type[ComputeTarget]:
    """Import and return the class of ``kind`` (see :func:`load_plugin`)."""
    return load_plugin(KINDS, kind)


def find_kind(kind: str) -> type[ComputeTarget] | None:
    """The class of ``kind``, or None when its plugin is missing or broken: listings
    (``targets list``, the studio) then show what is stored, and the other kinds work."""
    try:
        return load_kind(kind)
    except TargetsError:
        return None


def where(kind: str, options: Mapping[str, Any]) -> str:
    """Where a target of ``kind`` with ``options`` is, in a few words (its kind's
    ``summary``: an address, ``this machine``); empty when its plugin is broken."""
    cls = find_kind(kind)
    return str(cls.summary(options)) if cls is not None else ""


def resolve_kind_name(kind: str) -> str:
    """The canonical name for ``kind``: itself when installed, else the kind that lists it
    as an alias. Aliases are declared on the classes, so resolving one imports kinds until
    it is found; broken plugins are skipped here."""
    eps = _entry_points(GROUP)
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


def clear_cache() -> None:
    """Forget discovered entry points (after installing or removing a plugin in-process)."""
    _entry_points.cache_clear()
    load_plugin.cache_clear()
