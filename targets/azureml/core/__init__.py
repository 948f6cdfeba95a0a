"""``azureml.core`` for ``targets``: the workspace and compute targets (see
``docs/azureml-v1.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from targets.azureml.core.compute import ComputeTarget
    from targets.azureml.core.workspace import Workspace

__all__ = ["ComputeTarget", "Workspace"]

_LAZY = {
    "ComputeTarget": "targets.azureml.core.compute",
    "Workspace": "targets.azureml.core.workspace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
