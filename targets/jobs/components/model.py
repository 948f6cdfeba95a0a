"""Typed models of Azure ML v2 component YAML files: command and pipeline components.

They follow the SDK's schemas (``azure-ai-ml`` 1.35: ``_schema/component/``): a component
declares typed ``inputs`` (parameters ``string``/``integer``/``number``/``boolean`` with
``default``, ``optional``, ``min``, ``max``, ``enum``; data and model ports ``uri_file``,
``uri_folder``, ``mltable``, ``mlflow_model``, ``custom_model``, ``triton_model``) and
typed ``outputs``. A command component carries its own ``command``, ``code`` and
``environment``; a pipeline component carries ``jobs`` (steps, kept as raw mappings here:
they are read like a pipeline job's steps when the component is used).

Unknown keys are errors, as in the SDK. ``additional_includes`` is refused (targets does
not assemble code from several folders).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, field_validator, model_validator

from targets.jobs.model import (
    ASSET_INPUT_TYPES,
    Distribution,
    EnvironmentValue,
    LiteralValue,
    Resources,
    StrMap,
    TagMap,
    _Model,
    _normalizer,
    literal_matches,
)

__all__ = [
    "PARAMETER_TYPES",
    "STEP_KEYS",
    "CommandComponent",
    "Component",
    "ComponentInput",
    "ComponentOutput",
    "PipelineComponent",
]

STEP_KEYS = (
    "type",
    "component",
    "compute",
    "inputs",
    "outputs",
    "name",
    "display_name",
    "description",
    "tags",
    "properties",
    "comment",
)
"""Keys every step that uses a component may have, whatever the component's type."""

PARAMETER_TYPES = ("string", "integer", "number", "boolean")
"""Literal-valued input types (the others are data or model ports, given a ``path``)."""

PortType = Literal[
    "uri_file",
    "uri_folder",
    "mltable",
    "mlflow_model",
    "custom_model",
    "triton_model",
    "string",
    "integer",
    "number",
    "boolean",
]
PortMode = Literal[
    "ro_mount", "rw_mount", "download", "direct", "eval_mount", "eval_download", "mount", "upload"
]


def _port_type(value: Any) -> Any:
    # `path` is the SDK's legacy name of a folder input.
    if isinstance(value, str) and value.strip().lower() == "path":
        return "uri_folder"
    return _normalizer(get_args(PortType))(value)


def _version(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return getattr(value, "yaml_source", None) or str(value)
    return value


class ComponentInput(_Model):
    """One declared input of a component."""

    type: Annotated[PortType, BeforeValidator(_port_type)]
    description: str | None = None
    optional: bool = False
    """True: the component runs without it (its ``$[[ ... ]]`` segments are dropped)."""
    default: LiteralValue | None = None
    """Used when the step gives no value (for a data port: a path, relative to the component)."""
    min: float | None = None
    max: float | None = None
    enum: list[LiteralValue] | None = None
    mode: Annotated[PortMode | None, BeforeValidator(_normalizer(get_args(PortMode)))] = None

    @property
    def is_asset(self) -> bool:
        return self.type in ASSET_INPUT_TYPES

    @model_validator(mode="after")
    def _consistent(self) -> ComponentInput:
        if self.is_asset:
            for key in ("min", "max", "enum"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key!r} applies to parameters, not to a {self.type} input")
            if self.default is not None and not isinstance(self.default, str):
                raise ValueError(f"the default of a {self.type} input is a path")
            return self
        if self.default is not None:
            problem = self.problem_with(self.default)
            if problem:
                raise ValueError(f"default {problem}")
        return self

    def problem_with(self, value: Any) -> str | None:
        """Why the literal ``value`` does not fit this parameter, or None when it does."""
        if not literal_matches(self.type, value):
            return f"{value!r} is not a valid {self.type}"
        if self.enum is not None and str(value) not in [str(e) for e in self.enum]:
            return f"{value!r} is not one of {', '.join(repr(str(e)) for e in self.enum)}"
        if self.type in ("integer", "number") and (self.min is not None or self.max is not None):
            number = float(value)
            if math.isfinite(number):
                if self.min is not None and number < self.min:
                    return f"{value!r} is less than the minimum {self.min:g}"
                if self.max is not None and number > self.max:
                    return f"{value!r} is more than the maximum {self.max:g}"
        return None


class ComponentOutput(_Model):
    """One declared output of a component."""

    type: Annotated[PortType, BeforeValidator(_port_type)] = "uri_folder"
    description: str | None = None
    mode: Annotated[PortMode | None, BeforeValidator(_normalizer(get_args(PortMode)))] = None
    is_control: bool | None = None
    """A parameter output that controls a pipeline's flow (not supported by targets)."""


class _ComponentMeta(_Model):
    name: str | None = None
    version: Annotated[str | None, BeforeValidator(_version)] = None
    display_name: str | None = None
    description: str | None = None
    tags: TagMap = Field(default_factory=dict)
    is_deterministic: bool | None = None
    properties: TagMap = Field(default_factory=dict)
    inputs: dict[str, ComponentInput] = Field(default_factory=dict)
    outputs: dict[str, ComponentOutput] = Field(default_factory=dict)


class CommandComponent(_ComponentMeta):
    """``type: command`` (or no ``type``): a command with its own code and environment."""

    type: Literal["command"] = "command"
    command: str
    code: str | None = None
    environment: EnvironmentValue
    environment_variables: StrMap = Field(default_factory=dict)
    distribution: Distribution | None = None
    resources: Resources | None = None
    instance_count: int | None = Field(default=None, ge=1)
    additional_includes: list[str] | None = None

    @field_validator("additional_includes")
    @classmethod
    def _no_includes(cls, value: Any) -> Any:
        if value:
            raise ValueError(
                "additional_includes is not supported by targets; copy those files into "
                "the component's code folder"
            )
        return value

    @field_validator("command", mode="before")
    @classmethod
    def _command_text(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("command is empty")
        return value


class PipelineComponent(_ComponentMeta):
    """``type: pipeline``: steps under ``jobs:``, wired to the component's own inputs and
    outputs by ``${{parent.inputs.x}}`` / ``${{parent.outputs.y}}``."""

    type: Literal["pipeline"]
    jobs: dict[str, Any] = Field(min_length=1)
    settings: dict[str, Any] | None = None


Component = CommandComponent | PipelineComponent
