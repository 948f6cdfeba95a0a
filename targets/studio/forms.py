"""HTML forms generated from the pydantic options models of target kinds and cluster
providers, and the values a submitted form gives back, in the shape the library takes.

A kind's (or provider's) ``options_model`` is the one description of its options: the
CLI turns it into ``--flags`` (:mod:`targets.cli.targets_cmd`), the studio turns it into
form fields here, so a plugin kind gets a form without writing any web code.

- :func:`form_fields` reads ``model_fields``: the type picks the widget (``bool`` a
  checkbox, ``int``/``float`` a number, ``Literal``/``Enum`` a select, a list a
  comma-separated text, a mapping ``KEY=VALUE`` pairs, anything else a text), the
  field's description (or attribute docstring) is its help, ``is_required()`` its marker.
- :func:`form_values` turns the submitted strings back into option values. Scalars stay
  strings, as the CLI passes them, so that pydantic converts and refuses them exactly as
  it does for ``targets attach`` (the same messages); an empty field is left out (the
  model's default applies).
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["FormField", "Widget", "form_fields", "form_values"]

Widget = Literal["text", "number", "checkbox", "tristate", "select", "list", "mapping"]
"""How a field is entered: ``tristate`` is a select of (default), yes, no for an
optional boolean; ``list`` and ``mapping`` are texts split on commas or new lines."""

_SPLIT = re.compile(r"[,\n]")


@dataclass(frozen=True, slots=True)
class FormField:
    """One input of a generated form."""

    name: str
    """The option's field name (``ssh_port``)."""
    input_name: str
    """The name of the HTML input: ``prefix + name``."""
    label: str
    """``ssh port``: the field name as the CLI's flag reads, without dashes."""
    widget: Widget
    required: bool
    value: str
    """What the input starts with: the default, as text ('' when there is none)."""
    checked: bool = False
    """For a checkbox: its default."""
    help: str = ""
    choices: tuple[str, ...] = ()
    """For a select: the allowed values."""
    step: str = "1"
    """For a number: ``1`` for integers, ``any`` for floats."""

    @property
    def flag(self) -> str:
        """The CLI's name for it (``--ssh-port``), as the library's messages write it."""
        return "--" + self.name.replace("_", "-")


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(annotation, False)``. A union of
    several types other than None stays as it is."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        return annotation, optional
    return annotation, False


def _is_subclass(value: Any, base: type) -> bool:
    return isinstance(value, type) and issubclass(value, base)


def _widget(annotation: Any, optional: bool) -> tuple[Widget, tuple[str, ...], str]:
    """The widget for a field's (unwrapped) type, its choices and its number step."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return ("tristate" if optional else "checkbox"), (), "1"
    if annotation is int:
        return "number", (), "1"
    if annotation is float:
        return "number", (), "any"
    if origin is Literal:
        return "select", tuple(str(a) for a in typing.get_args(annotation)), "1"
    if _is_subclass(annotation, enum.Enum):
        return "select", tuple(str(m.value) for m in annotation), "1"
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        return "list", (), "1"
    if _is_subclass(origin, Sequence) and not _is_subclass(origin, str):
        return "list", (), "1"
    if origin is dict or annotation is dict or _is_subclass(origin, Mapping):
        return "mapping", (), "1"
    return "text", (), "1"


def _as_text(value: Any) -> str:
    """A default as the input shows it."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _field(name: str, info: FieldInfo, prefix: str) -> FormField:
    annotation, optional = _unwrap_optional(info.annotation)
    widget, choices, step = _widget(annotation, optional)
    required = info.is_required()
    default = None if required else info.get_default(call_default_factory=True)
    help_text = " ".join((info.description or "").split())
    if widget == "select" and (optional or default is None) and "" not in choices:
        choices = ("", *choices)  # "(default)": leave it out
    return FormField(
        name=name,
        input_name=prefix + name,
        label=name.replace("_", " "),
        widget=widget,
        required=required,
        value="" if widget in ("checkbox", "tristate") else _as_text(default),
        checked=bool(default) if widget == "checkbox" else False,
        help=help_text,
        choices=choices,
        step=step,
    )


def form_fields(
    model: type[BaseModel],
    *,
    prefix: str = "",
    exclude: Sequence[str] = (),
) -> list[FormField]:
    """The inputs for ``model``'s fields (in the model's order), but ``exclude``. Each
    input is named ``prefix + field name``, so that two models can share one form."""
    return [
        _field(name, info, prefix)
        for name, info in model.model_fields.items()
        if name not in exclude
    ]


def _pairs(text: str) -> dict[str, str] | str:
    """``"A=1, B=2"`` -> ``{"A": "1", "B": "2"}``; text that is not all pairs is returned
    as it is, for the model to parse or refuse."""
    parts = [p.strip() for p in _SPLIT.split(text) if p.strip()]
    if not all("=" in p for p in parts):
        return text
    return {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in parts)}


def form_values(fields: Sequence[FormField], form: Mapping[str, Any]) -> dict[str, Any]:
    """The option values of a submitted form (``form``: the request's form data), keyed
    by field name, for :func:`targets.attachment.attach_target` or
    :func:`targets.clusters.lifecycle.cluster_spec`.

    Empty inputs are left out (the default applies); a checkbox is True when sent, else
    False; numbers and texts stay strings (the model converts and checks them, with the
    CLI's messages); a list is split on commas and new lines; a mapping is ``KEY=VALUE``
    pairs (or the text as typed when it is not, for a model that parses its own)."""
    values: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f.input_name)
        if f.widget == "checkbox":
            values[f.name] = raw is not None and str(raw) not in ("", "false", "off")
            continue
        text = "" if raw is None else str(raw).strip()
        if not text:
            continue
        if f.widget == "tristate":
            values[f.name] = text
        elif f.widget == "list":
            values[f.name] = [p.strip() for p in _SPLIT.split(text) if p.strip()]
        elif f.widget == "mapping":
            values[f.name] = _pairs(text)
        else:
            values[f.name] = text
    return values
