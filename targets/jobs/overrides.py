"""``--set key.path=value`` overrides of a job file, applied before validation (as the
SDK's ``params_override``), so an override is validated like the file itself."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import yaml

from targets.errors import ConfigError
from targets.runconfig.io import YamlLimitError, load_yaml

__all__ = ["apply_overrides", "parse_override"]


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"inputs.lr=0.01"`` -> ``(("inputs", "lr"), 0.01)``.

    The value is read as YAML (``0.01`` a float, ``true`` a boolean, ``azureml:x`` a
    string; an empty value is null; text that is not valid YAML stays a string).
    Raises ConfigError for a missing ``=`` or an empty key segment.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set {shorten(text)}: expected KEY=VALUE, e.g. inputs.learning_rate=0.01",
        )
    parts = tuple(p.strip() for p in key.split("."))
    if any(not p for p in parts):
        raise ConfigError(f"--set {shorten(text)}: empty segment in key path {shorten(key)}")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except YamlLimitError as exc:
        raise ConfigError(
            f"--set {shorten(text)}: value refused: {exc.problem}",
            key_path=".".join(parts),
        ) from exc
    except yaml.YAMLError:
        value = raw
    return parts, value


def shorten(text: str, limit: int = 80) -> str:
    """``repr(text)``, cut to about ``limit`` characters (a value may be huge)."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``key.path=value`` set, in order (later ones win).

    Missing mapping keys (and null values) on the way are created as mappings.
    Descending through a value that is not a mapping (a string reference such as
    ``environment: azureml:env@latest``, a number, a list) is refused: the error names
    the key path and what is there. ``data`` is not modified. Raises ConfigError.
    """
    result = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        current: dict[str, Any] = result
        for depth, part in enumerate(parts[:-1]):
            child = current.get(part)
            if child is None:
                child = {}
                current[part] = child
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"--set {shorten(text)}: cannot set a key inside {where}, which is "
                    f"{_describe(child)}, not a mapping",
                    key_path=where,
                    hint=f"set {where} itself, e.g. --set {where}=...",
                )
            current = child
        current[parts[-1]] = value
    return result


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 50 else value[:47] + "..."
        return f"the string {shown!r}"
    if isinstance(value, bool):
        return f"the boolean {value}"
    return f"the number {value}"
