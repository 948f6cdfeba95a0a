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
    the key path and what is there. ``inputs.NAME`` and ``outputs.NAME`` (of the job or
    of a pipeline step, ``jobs.STEP.inputs.NAME``) must name a declared input or output:
    a typo is refused with the nearest declared name (as ``az ml`` users expect a typo
    to fail, not to be ignored). ``data`` is not modified. Raises ConfigError.
    """
    result = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        current: dict[str, Any] = result
        for depth, part in enumerate(parts[:-1]):
            if part in _PORTS and _is_body(parts[:depth]):
                _check_declared(text, parts, depth, current.get(part))
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


_PORTS = {"inputs": "input", "outputs": "output"}


def _is_body(prefix: tuple[str, ...]) -> bool:
    """Whether ``prefix`` leads to a job or a pipeline step, whose ``inputs`` and
    ``outputs`` are declarations (the top level, or ``jobs.<node>``)."""
    return not prefix or (len(prefix) == 2 and prefix[0] == "jobs")


def _check_declared(text: str, parts: tuple[str, ...], depth: int, ports: Any) -> None:
    """Refuse ``--set inputs.NAME...`` (or outputs) for a NAME the job does not declare:
    a typo would otherwise add a new, unused input and the run would silently use the
    file's value. The error names the nearest declared name."""
    kind = _PORTS[parts[depth]]
    name = parts[depth + 1]
    declared = [str(k) for k in ports] if isinstance(ports, dict) else []
    # Pipeline parameter groups have dotted input names ("group.lr").
    if name in declared or any(d.startswith(name + ".") for d in declared):
        return
    where = ".".join(parts[: depth + 2])
    if not declared:
        raise ConfigError(
            f"--set {shorten(text)}: the job declares no {kind}s, so there is no {kind} "
            f"{name!r} to set",
            key_path=where,
            hint=f"declare it under {'.'.join(parts[: depth + 1])}: in the job file first",
        )
    import difflib

    close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        f"--set {shorten(text)}: no {kind} named {name!r} is declared{guess}",
        key_path=where,
        hint=f"declared {kind}s: {', '.join(declared)}",
    )


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 50 else value[:47] + "..."
        return f"the string {shown!r}"
    if isinstance(value, bool):
        return f"the boolean {value}"
    return f"the number {value}"
