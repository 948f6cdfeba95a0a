"""Problems in configuration files, and pydantic's errors translated into them.

One job: turning what is wrong with a file into messages a user can act on, each at the
file, line and key path it is about. Shared by every file reader (runconfigs, Azure ML
v1 files, conda files, v2 job files):

- :class:`Problem` and :func:`raise_problems` (one ConfigError carrying them all);
- :func:`validation_problems`: a pydantic ``ValidationError`` as located problems
  (unknown keys with the nearest valid key, union branches merged into "expected A or
  B", a misspelt required key reported once);
- :func:`dotted`, :func:`suggest`, :func:`describe_value`, :func:`validation_message`.

Design choice: pydantic's ``loc`` mixes data keys and union tags (``command``, ``str``,
``list[str]``); the model is walked alongside the data (:func:`data_path`), so a tag that
is also a key of the data is still recognised as a tag.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Tag, ValidationError

from targets.errors import ConfigError
from targets.runconfig.yaml_lines import KeyPath, plain

__all__ = [
    "PathMapper",
    "Problem",
    "data_path",
    "describe_value",
    "dotted",
    "model_at",
    "raise_problems",
    "suggest",
    "validation_message",
    "validation_problems",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file, located as precisely as we can."""

    message: str
    path: Path | None = None
    line: int | None = None
    key_path: str | None = None

    def render(self) -> str:
        where = str(self.path) if self.path else ""
        if self.path and self.line:
            where += f":{self.line}"
        if self.key_path:
            where = f"{where}: {self.key_path}" if where else self.key_path
        return f"{where}: {self.message}" if where else self.message


def raise_problems(problems: list[Problem], path: Path) -> None:
    """Raise one ConfigError carrying every problem, one per line (no-op when empty)."""
    if not problems:
        return
    problems = sorted(problems, key=lambda p: (str(p.path or ""), p.line or 0))
    first = problems[0]
    message = first.message
    if len(problems) > 1:
        message += "\n" + "\n".join(p.render() for p in problems[1:])
    raise ConfigError(
        message,
        path=str(first.path or path),
        line=first.line,
        key_path=first.key_path,
    )


def dotted(key_path: KeyPath) -> str:
    """``("environment", "docker", "shm_size")`` -> ``environment.docker.shm_size``;
    list indexes render as ``arguments[2]``."""
    text = ""
    for part in key_path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def suggest(key: str, valid: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid key, or an empty string."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not close:
        lowered = {v.lower().replace("_", ""): v for v in valid}
        match = lowered.get(key.lower().replace("_", "").replace("-", ""))
        close = [match] if match else []
    return f" (did you mean {close[0]!r}?)" if close else ""


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list[str]": "a list of strings",
    "PipBlock": "a mapping {pip: [...]}",
}


def describe_value(value: Any) -> str:
    """A short description of a value that failed validation, for error messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("greater than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def validation_message(error: Any, key_path: KeyPath = ()) -> str:
    """One pydantic error as a sentence a user can act on (shared by every file reader).
    ``key_path`` is where it happened, to name a missing key."""
    kind = error["type"]
    got = describe_value(error.get("input"))
    ctx = error.get("ctx") or {}
    if kind == "missing":
        if key_path:
            return f"required key {str(key_path[-1])!r} is missing"
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return "required key 'type' is missing"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer, got {got}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {got}"
    if kind == "string_type":
        return f"expected a string, got {got}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '?')}, got {got}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}, got {got}"
    return f"{error['msg']}, got {got}"


# ------------------------------------------------------------------ model walk -------


def _unwrap(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    metadata: tuple[Any, ...] = ()
    while typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        annotation, metadata = args[0], metadata + tuple(args[1:])
    return annotation, metadata


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _step(annotation: Any, part: str | int) -> tuple[Any, bool]:
    """Follow one pydantic ``loc`` part through an annotation: (next annotation, whether
    ``part`` indexed the data rather than naming a union member)."""
    annotation, _ = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if _is_model(annotation):
        info = annotation.model_fields.get(str(part))
        return (info.annotation if info is not None else None), True
    if origin is dict:
        return typing.get_args(annotation)[1], True
    if origin is list:
        return typing.get_args(annotation)[0], True
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        for member in members:
            base, metadata = _unwrap(member)
            tags = [m.tag for m in metadata if isinstance(m, Tag)]
            if part in tags or getattr(base, "__name__", None) == part or str(base) == part:
                return member, False
        if len(members) == 1:
            return _step(members[0], part)
        for member in members:
            base, _ = _unwrap(member)
            if typing.get_origin(base) is dict or (
                _is_model(base) and str(part) in base.model_fields
            ):
                return _step(member, part)
    return None, True


def model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model at pydantic location ``loc`` inside ``model`` (None when the
    location is not a model, or is a union of several)."""
    annotation: Any = model
    for part in loc:
        if annotation is None:
            return None
        annotation, _ = _step(annotation, part)
    base, _ = _unwrap(annotation)
    if typing.get_origin(base) in (typing.Union, types.UnionType):
        models = [m for m in (_unwrap(a)[0] for a in typing.get_args(base)) if _is_model(m)]
        base = models[0] if len(models) == 1 else None
    return base if _is_model(base) else None


def data_path(
    model: type[BaseModel], loc: tuple[str | int, ...], data: Any, kind: str
) -> tuple[KeyPath, list[str]]:
    """Split a pydantic ``loc`` into the key path that indexes ``data`` and the rest
    (union tags such as ``str``, ``list[str]``, ``command``), walking the model alongside,
    since a tag can also be a key of the data."""
    path: list[str | int] = []
    tags: list[str] = []
    annotation: Any = model
    current = data
    for position, part in enumerate(loc):
        indexes = True
        if annotation is not None:
            annotation, indexes = _step(annotation, part)
        if not indexes:
            tags.append(str(part))
            continue
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif position == len(loc) - 1 and kind in ("missing", "extra_forbidden"):
            # A missing or extra key: the path still names it.
            path.append(part)
            current = None
        else:
            tags.append(str(part))
    return tuple(path), tags


# ------------------------------------------------------------------ translation ------

PathMapper = Callable[[KeyPath], tuple[Path, KeyPath, int | None]]
"""Maps a key path in the validated data to (file, key path as written there, line)."""


def validation_problems(
    exc: ValidationError,
    model: type[BaseModel],
    data: Any,
    locate: PathMapper,
    *,
    note: Callable[[KeyPath], str] | None = None,
) -> list[Problem]:
    """Turn a pydantic ValidationError into located problems, one per key path.

    ``locate`` maps a key path in ``data`` to where it was written. Union branches for
    one value are merged into one "expected A or B" problem; a misspelt required key is
    reported once, as the unknown key with its suggestion. ``note(key_path)`` is appended
    to each message (e.g. which ``--set`` produced the value).
    """
    grouped: dict[KeyPath, list[tuple[Any, list[str]]]] = {}
    for error in exc.errors():
        key_path, tags = data_path(model, error["loc"], data, error["type"])
        grouped.setdefault(key_path, []).append((error, tags))
    explained: set[KeyPath] = set()
    for key_path, errors in grouped.items():
        first = errors[0][0]
        if first["type"] == "extra_forbidden" and key_path:
            close = difflib.get_close_matches(
                str(key_path[-1]), _valid_keys(model, first), n=1, cutoff=0.6
            )
            if close:
                explained.add((*key_path[:-1], close[0]))
    problems: list[Problem] = []
    for key_path, errors in grouped.items():
        if key_path in explained and all(e["type"] == "missing" for e, _ in errors):
            continue
        file, shown, line = locate(key_path)
        first, _ = errors[0]
        if first["type"] == "extra_forbidden" and key_path:
            key = str(key_path[-1])
            message = f"unknown key {key!r}{suggest(key, _valid_keys(model, first))}"
        elif len(errors) > 1 and any(tags for _, tags in errors):
            kinds: list[str] = []
            for _, tags in errors:
                word = _TYPE_WORDS.get(tags[0], tags[0]) if tags else "?"
                if word not in kinds:
                    kinds.append(word)
            message = f"expected {' or '.join(kinds)}, got {describe_value(first.get('input'))}"
        else:
            message = " or ".join(dict.fromkeys(validation_message(e, key_path) for e, _ in errors))
        if note is not None:
            message += note(key_path)
        problems.append(Problem(message, file, line, dotted(shown) or None))
    return problems


def _valid_keys(model: type[BaseModel], error: Any) -> list[str]:
    section = model_at(model, tuple(error["loc"][:-1]))
    return list(section.model_fields) if section is not None else []
