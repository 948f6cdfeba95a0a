"""What ``targets.azureml`` provides, asked of the installed package at run time.

The v1 modules under ``targets.azureml`` grow release by release, so the migration never
keeps its own list of them: it imports ``targets.azureml.<module>`` and looks the names up
with :mod:`importlib`. The answers are cached for the life of the process.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

__all__ = ["has_name", "hint_for", "module_exists"]

_HINTS: dict[str, str] = {
    "azureml.core.Dataset": (
        "datasets live in the Azure ML service: register a folder with "
        "`targets datastores add` and pass its path to the script as an argument"
    ),
    "azureml.core.Datastore": (
        "register a folder with `targets datastores add` and refer to it as "
        "azureml://datastores/NAME/paths/..."
    ),
    "azureml.core.dataset": "see azureml.core.Dataset",
    "azureml.core.datastore": "see azureml.core.Datastore",
    "azureml.data": (
        "datasets live in the Azure ML service: register a folder with "
        "`targets datastores add` and pass its path to the script as an argument"
    ),
    "azureml.core.Model": (
        "keep model files in ./outputs; `targets runs download RUN` brings them back"
    ),
    "azureml.core.model": (
        "keep model files in ./outputs; `targets runs download RUN` brings them back"
    ),
    "azureml.core.webservice": "deploying web services is not part of targets",
    "azureml.core.Webservice": "deploying web services is not part of targets",
    "azureml.core.image": "deploying web services is not part of targets",
    "azureml.train.automl": "AutoML runs inside the Azure ML service; targets has no equivalent",
    "azureml.widgets": (
        "follow a run with run.wait_for_completion(show_output=True) or "
        "`targets runs logs RUN --follow`"
    ),
    "azureml.core.Workspace.create": (
        "a targets workspace is the project's .targets/ folder, created on first use"
    ),
}


@functools.cache
def module_exists(v1_module: str) -> bool:
    """Whether ``targets.<v1_module>`` (e.g. ``azureml.core.compute``) can be imported.

    Finding a submodule imports its parent packages, not the submodule itself.
    """
    try:
        return importlib.util.find_spec(f"targets.{v1_module}") is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def has_name(v1_module: str, name: str) -> bool:
    """Whether ``from targets.<v1_module> import <name>`` works: an attribute of the
    module (lazy ones included) or a submodule."""
    if not module_exists(v1_module):
        return False
    if module_exists(f"{v1_module}.{name}"):
        return True
    try:
        module = importlib.import_module(f"targets.{v1_module}")
    except ImportError:
        return False
    try:
        return hasattr(module, name)
    except ImportError:
        # A lazy attribute whose module does not import: not provided in this install.
        return False


def hint_for(dotted: str) -> str:
    """What to do instead of the v1 name ``dotted`` (longest known prefix), or ``""``."""
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        hint = _HINTS.get(".".join(parts[:end]))
        if hint:
            return hint
    return ""
