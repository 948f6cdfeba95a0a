"""``Environment.get`` and ``Environment.list``: registered environments first, then
Azure ML's curated ones.

A name that is neither gives an error that says what to do: an ``AzureML-...`` name lists
the curated environments known here; any other name names ``env.register(ws)`` and the
environments the workspace has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets.azureml.core._curated import (
    CuratedEnvironment,
    curated,
    find_curated,
    is_reserved_name,
    unknown_curated,
)
from targets.azureml.core._env_store import get_registered, latest_registered
from targets.errors import UsageError
from targets.workspace import Workspace

if TYPE_CHECKING:
    from targets.experiment import Environment

__all__ = ["listing", "lookup"]


def _of_curated(entry: CuratedEnvironment) -> Environment:
    from targets.experiment import Environment

    env = Environment(entry.name)
    env.python.conda_dependencies = entry.conda.model_copy(deep=True)
    return env


def lookup(ws: Workspace, name: str, version: str | None) -> Environment:
    """See :meth:`targets.experiment.Environment.get`. Reads the workspace; writes
    nothing. Raises UsageError when ``name`` (at ``version``) is not found."""
    found = get_registered(ws, name, version)
    if found is not None:
        return found
    entry = find_curated(name)
    if entry is not None:
        # Curated environments have one version here: the published list.
        return _of_curated(entry)
    if is_reserved_name(name):
        raise unknown_curated(name)
    registered = latest_registered(ws)
    if version not in (None, "latest") and name in registered:
        raise UsageError(
            f"the environment {name!r} has no version {version!r} in this workspace "
            f"(latest: {registered[name].version})",
            hint=f"Environment.get(ws, {name!r}) gives the latest version",
        )
    known = ", ".join(registered) or "none yet"
    raise UsageError(
        f"the environment {name!r} is not registered in this workspace (registered: {known})",
        hint=f"create it and register it first: env = Environment({name!r}); ...; env.register(ws)",
    )


def listing(ws: Workspace) -> dict[str, Environment]:
    """See :meth:`targets.experiment.Environment.list`."""
    found = {name: _of_curated(entry) for name, entry in curated().items()}
    found.update(latest_registered(ws))
    return found
