"""Typed models of Azure ML CLI v2 job YAML files: command, sweep and pipeline jobs.

The models follow the SDK's marshmallow schemas (``azure-ai-ml`` 1.35, see
``/work/shared/azureml/jobs-v2.md``): unknown keys are errors (``extra="forbid"``) except
under a pipeline's ``settings``, where extra keys are kept as the SDK keeps them. Enum
values (input ``type``/``mode``, ``distribution.type``, ``goal``, search-space and
early-termination types, ...) are case-insensitive, ignore ``_`` vs camel case
(``TruncationSelection``) and surrounding spaces (the corpus has ``type: uri_file ``); the
stored value is the canonical lower-case spelling.

These models only describe a job. Reading a file (line numbers, ``file:`` references,
``--set`` overrides, read-only keys, local-path checks, binding checks) is
:mod:`targets.jobs.reader`; the ``${{...}}`` language is :mod:`targets.jobs.bindings`.

Design choice: one :class:`JobInput` model for every mapping-form input (data, model,
mltable, ``{value: ...}`` literal wrapper and typed parameter declarations) instead of one
model per form: the SDK tries its forms in order, and a single model with a per-type check
gives one precise error instead of "matches none of four schemas". A ``type``-less input
with a ``path`` gets the SDK's default ``uri_folder``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeAlias, Union, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    field_validator,
    model_validator,
)

__all__ = [
    "ASSET_INPUT_TYPES",
    "JOB_TYPES",
    "NODE_TYPES",
    "BanditPolicy",
    "BayesianSampling",
    "Build",
    "Choice",
    "CommandJob",
    "CommandNode",
    "Distribution",
    "EarlyTermination",
    "GridSampling",
    "InlineEnvironment",
    "Job",
    "JobInput",
    "JobOutput",
    "Limits",
    "LiteralValue",
    "LogNormal",
    "LogUniform",
    "MedianStoppingPolicy",
    "MpiDistribution",
    "Normal",
    "Objective",
    "ParallelNode",
    "ParallelTask",
    "PipelineJob",
    "PipelineNode",
    "PipelineSettings",
    "PyTorchDistribution",
    "QLogNormal",
    "QLogUniform",
    "QNormal",
    "QUniform",
    "RandInt",
    "RandomSampling",
    "RayDistribution",
    "Resources",
    "RetrySettings",
    "SamplingAlgorithm",
    "SearchSpace",
    "SparkEntry",
    "SparkJob",
    "SparkNode",
    "SparkResources",
    "SweepJob",
    "SweepLimits",
    "SweepNode",
    "TensorFlowDistribution",
    "Trial",
    "TruncationSelectionPolicy",
    "Uniform",
    "literal_matches",
]

JOB_TYPES = ("command", "sweep", "pipeline", "spark")
"""The job types targets runs (the SDK also knows automl, import, finetuning and
distillation; those are refused with a message naming these)."""

NODE_TYPES = ("command", "sweep", "spark", "parallel")
"""The pipeline node types targets runs."""

NAME_PATTERN = re.compile(r"[a-zA-Z_]+[a-zA-Z0-9_]*")
"""Input, output and search-space names (the SDK's ``validate_key_contains_allowed_characters``)."""

PIPELINE_INPUT_PATTERN = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)*")
"""Pipeline-level input names: dots allowed, for parameter groups."""


def _normalizer(allowed: tuple[str, ...]) -> Callable[[Any], Any]:
    canonical = {a.replace("_", "").lower(): a for a in allowed}

    def normalize(value: Any) -> Any:
        if isinstance(value, str):
            stripped = value.strip()
            return canonical.get(stripped.replace("_", "").lower(), stripped)
        return value

    return normalize


def _tag_of(allowed: tuple[str, ...]) -> Callable[[Any], str | None]:
    """A discriminator callable: the canonical ``type`` of a mapping, or None when absent."""
    normalize = _normalizer(allowed)

    def tag(value: Any) -> str | None:
        raw = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        if raw is None:
            return None
        return str(normalize(raw))

    return tag


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# ------------------------------------------------------------------ literals ---------


def _literal(value: Any) -> str | int | float | bool:
    # Plain types only: the YAML reader tags numbers with their source text (YamlInt).
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    kind = (
        "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else "null"
    )
    raise ValueError(f"expected a string, a number or true/false, got {kind}")


LiteralValue: TypeAlias = Annotated[str | int | float | bool, PlainValidator(_literal)]
"""A literal input value as written: string, integer, float or boolean."""


def _str_map(value: Any) -> Any:
    """``{k: 1}`` -> ``{k: "1"}`` (tags, environment variables); keeps ``010`` as written."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            out[key] = str(item).lower()
        elif isinstance(item, int | float):
            out[key] = getattr(item, "yaml_source", None) or str(item)
        else:
            out[key] = item
    return out


StrMap: TypeAlias = Annotated[dict[str, str], BeforeValidator(_str_map)]


def _tag_map(value: Any) -> Any:
    """As :func:`_str_map`, and a tag without a value (``empty_tag:``) is the empty
    string, as the SDK sends it (tags and properties only)."""
    value = _str_map(value)
    if isinstance(value, dict):
        return {key: "" if item is None else item for key, item in value.items()}
    return value


TagMap: TypeAlias = Annotated[dict[str, str], BeforeValidator(_tag_map)]
"""``tags``/``properties``: strings, a key without a value kept as ``""``."""

# ------------------------------------------------------------------ inputs/outputs ---

InputType = Literal[
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
ASSET_INPUT_TYPES = (
    "uri_file",
    "uri_folder",
    "mltable",
    "mlflow_model",
    "custom_model",
    "triton_model",
)
"""Input types whose value is a ``path`` (the others are typed literals)."""
InputMode = Literal["ro_mount", "rw_mount", "download", "direct", "eval_mount", "eval_download"]
OutputType = Literal[
    "uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"
]
OutputMode = Literal["mount", "rw_mount", "upload", "direct"]

_DATA_INPUT_MODES = ("ro_mount", "download", "direct")
_MLTABLE_INPUT_MODES = (*_DATA_INPUT_MODES, "eval_mount", "eval_download")


class JobInput(_Model):
    """A mapping-form input: ``{type, path, mode}`` for data and models, ``{value}`` for a
    wrapped literal, ``{type: string|integer|number|boolean, default, optional}`` for a
    typed parameter."""

    type: Annotated[InputType | None, BeforeValidator(_normalizer(get_args(InputType)))] = None
    """Asset or parameter type. Default: ``uri_folder`` when a ``path`` is given."""
    path: str | None = None
    """Local path (relative to the YAML's folder), ``http(s)://``, ``wasbs://``,
    ``azureml://datastores/<ds>/paths/<p>``, ``azureml:<asset>@latest`` or a binding."""
    mode: Annotated[InputMode | None, BeforeValidator(_normalizer(get_args(InputMode)))] = None
    """How the data reaches the job. Default: ``ro_mount`` (chosen by the executor)."""
    value: LiteralValue | None = None
    """A literal value (the ``{value: ...}`` wrapper)."""
    default: LiteralValue | None = None
    """Default of a typed parameter."""
    optional: bool | None = None
    """True: the job may run without this input (``[ ... ]`` segments are dropped)."""
    description: str | None = None
    path_on_compute: str | None = None
    """Where the data appears on the compute (data and mltable inputs)."""
    datastore: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") is None and data.get("path") is not None:
            return {**data, "type": "uri_folder"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> JobInput:
        if self.type in ASSET_INPUT_TYPES:
            if self.path is None:
                raise ValueError(f"a {self.type} input needs a 'path'")
            if self.value is not None:
                raise ValueError(f"a {self.type} input takes a 'path', not a 'value'")
            allowed = _MLTABLE_INPUT_MODES if self.type == "mltable" else _DATA_INPUT_MODES
            if self.mode is not None and self.mode not in allowed:
                raise ValueError(
                    f"mode {self.mode!r} is not valid for a {self.type} input; "
                    f"expected one of {', '.join(allowed)}"
                )
        elif self.type is None:
            if self.value is None and not self.optional and self.default is None:
                raise ValueError("an input mapping needs a 'path' or a 'value'")
        else:
            for name in ("value", "default"):
                given = getattr(self, name)
                if given is not None and not literal_matches(self.type, given):
                    raise ValueError(f"{name} {given!r} is not a valid {self.type}")
        return self

    @property
    def is_asset(self) -> bool:
        """True for data and model inputs (their value is a ``path``)."""
        return self.type in ASSET_INPUT_TYPES


def literal_matches(kind: str, value: Any) -> bool:
    """True when the literal ``value`` is a valid ``kind`` (``string``, ``integer``,
    ``number``, ``boolean``), as the service reads it."""
    if kind == "boolean":
        return isinstance(value, bool) or str(value).lower() in ("true", "false")
    if kind == "integer":
        return not isinstance(value, bool) and (
            isinstance(value, int) or bool(re.fullmatch(r"[+-]?\d+", str(value)))
        )
    if kind == "number":
        if isinstance(value, bool):
            return False
        try:
            return not math.isnan(float(value))
        except ValueError:
            return False
    return True  # string: anything prints


def _input_tag(value: Any) -> str:
    return "input" if isinstance(value, dict | JobInput) else "literal"


InputValue: TypeAlias = Annotated[
    Union[Annotated[JobInput, Tag("input")], Annotated[LiteralValue, Tag("literal")]],  # noqa: UP007
    Discriminator(_input_tag),
]
"""An input: a literal (``epochs: 1``, ``x: ${{parent.inputs.y}}``) or a mapping."""


class JobOutput(_Model):
    """A named output. ``outputs: {x: }`` (null) means a ``uri_folder`` the executor picks."""

    type: Annotated[OutputType, BeforeValidator(_normalizer(get_args(OutputType)))] = "uri_folder"
    path: str | None = None
    """Where the output goes (may use the ``${{name}}`` macro); default chosen by the executor."""
    mode: Annotated[OutputMode | None, BeforeValidator(_normalizer(get_args(OutputMode)))] = None
    name: str | None = None
    """Register the output as a data asset with this name (Azure ML; not done by targets)."""
    version: str | None = None
    description: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


def _output_tag(value: Any) -> str:
    return "binding" if isinstance(value, str) else "output"


NodeOutputValue: TypeAlias = Annotated[
    Union[Annotated[JobOutput, Tag("output")], Annotated[str, Tag("binding")]],  # noqa: UP007
    Discriminator(_output_tag),
]
"""A pipeline node's output: a mapping, null, or ``${{parent.outputs.x}}``."""

# ------------------------------------------------------------------ environment ------


class Build(_Model):
    """``environment.build``: a Docker build context."""

    path: str
    """Local folder (relative to the YAML's folder) or URL of the build context."""
    dockerfile_path: str = "Dockerfile"
    """Dockerfile path inside the context."""


class InlineEnvironment(_Model):
    """An anonymous environment written in the job (``environment: {image: ...}``)."""

    image: str | None = None
    """Docker image, e.g. ``library/python:latest``."""
    conda_file: str | dict[str, Any] | None = None
    """Path of a conda YAML (relative to the job's folder) or an inline conda mapping."""
    build: Build | None = None
    os_type: Annotated[
        Literal["linux", "windows"] | None, BeforeValidator(_normalizer(("linux", "windows")))
    ] = None
    inference_config: dict[str, Any] | None = None
    datastore: str | None = None
    description: str | None = None
    tags: TagMap = Field(default_factory=dict)
    name: str | None = None
    """Dropped by the SDK with a warning (the reader warns too)."""
    version: str | None = None
    """Dropped by the SDK with a warning (the reader warns too)."""

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )

    @model_validator(mode="after")
    def _image_or_build(self) -> InlineEnvironment:
        if self.image is None and self.build is None:
            raise ValueError("an inline environment needs an 'image' or a 'build'")
        if self.image is not None and self.build is not None:
            raise ValueError("give either 'image' or 'build', not both")
        return self


def _environment_tag(value: Any) -> str:
    return "reference" if isinstance(value, str) else "inline"


EnvironmentValue: TypeAlias = Annotated[
    Union[Annotated[str, Tag("reference")], Annotated[InlineEnvironment, Tag("inline")]],  # noqa: UP007
    Discriminator(_environment_tag),
]
"""``azureml:<name>[:<version>|@<label>]``, ``azureml://registries/...``, or inline."""

# ------------------------------------------------------------------ distribution -----


class MpiDistribution(_Model):
    type: Annotated[Literal["mpi"], BeforeValidator(_normalizer(("mpi",)))]
    process_count_per_instance: int | None = Field(default=None, ge=1)


class PyTorchDistribution(_Model):
    type: Annotated[Literal["pytorch"], BeforeValidator(_normalizer(("pytorch",)))]
    process_count_per_instance: int | None = Field(default=None, ge=1)


class TensorFlowDistribution(_Model):
    type: Annotated[Literal["tensorflow"], BeforeValidator(_normalizer(("tensorflow",)))]
    worker_count: int | None = Field(default=None, ge=0)
    parameter_server_count: int | None = Field(default=None, ge=0)


class RayDistribution(_Model):
    """Experimental in the SDK; read so the executor can refuse it with a clear message."""

    type: Annotated[Literal["ray"], BeforeValidator(_normalizer(("ray",)))]
    port: int | None = None
    address: str | None = None
    include_dashboard: bool | None = None
    dashboard_port: int | None = None
    head_node_additional_args: str | None = None
    worker_node_additional_args: str | None = None


_DISTRIBUTIONS = ("mpi", "pytorch", "tensorflow", "ray")
Distribution: TypeAlias = Annotated[
    Union[  # noqa: UP007
        Annotated[MpiDistribution, Tag("mpi")],
        Annotated[PyTorchDistribution, Tag("pytorch")],
        Annotated[TensorFlowDistribution, Tag("tensorflow")],
        Annotated[RayDistribution, Tag("ray")],
    ],
    Discriminator(_tag_of(_DISTRIBUTIONS)),
]

# ------------------------------------------------------------------ resources/limits -


class Resources(_Model):
    instance_count: int | None = Field(default=None, ge=1)
    """Number of nodes (the service default is 1)."""
    instance_type: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    locations: list[str] = Field(default_factory=list)
    shm_size: str | None = None
    """Size of /dev/shm: ``<number><b|k|m|g>``."""
    max_instance_count: int | None = Field(default=None, ge=1)
    docker_args: str | list[str] | None = None

    @field_validator("shm_size", mode="before")
    @classmethod
    def _shm_size(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not re.fullmatch(r"\d+[bkmgBKMG]?", value.strip()):
            raise ValueError(f"shm_size {value!r} is not a size like '2g', '512m' or '1024k'")
        return value.strip() if isinstance(value, str) else value


class Limits(_Model):
    """A command job's ``limits``."""

    timeout: int | None = Field(default=None, ge=1)
    """Maximum run time in seconds."""


class SweepLimits(_Model):
    max_total_trials: int = Field(ge=1)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    timeout: int | None = Field(default=None, ge=1)
    """Maximum time for the whole sweep, in seconds."""
    trial_timeout: int | None = Field(default=None, ge=1)
    """Maximum time for one trial, in seconds."""


# ------------------------------------------------------------------ command ----------


class _CommandBody(_Model):
    command: str
    """The shell command; may hold ``${{inputs.x}}``, ``${{outputs.y}}`` and ``[ ... ]``."""
    code: str | None = None
    """Local folder or file (relative to the YAML's folder) copied to the run, or a remote
    reference (``azureml:...``, ``http(s)://``, ``git+...``)."""
    environment: EnvironmentValue
    environment_variables: StrMap = Field(default_factory=dict)
    distribution: Distribution | None = None
    resources: Resources | None = None
    queue_settings: dict[str, Any] | None = None
    """Accepted and ignored (Azure ML scheduling tiers)."""

    @field_validator("command", mode="before")
    @classmethod
    def _command_text(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("command is empty")
        return value


class _JobMeta(_Model):
    name: str | None = None
    display_name: str | None = None
    description: str | None = None
    tags: TagMap = Field(default_factory=dict)
    properties: TagMap = Field(default_factory=dict)
    compute: str | None = None
    """``azureml:<name>``, a bare name or ``local``; absent: the workspace default."""


class _CommandFields(_CommandBody, _JobMeta):
    inputs: dict[str, InputValue | None] = Field(default_factory=dict)
    limits: Limits | None = None
    services: dict[str, Any] | None = None
    """Accepted and ignored (interactive services: ssh, jupyter_lab, ...)."""
    identity: dict[str, Any] | None = None
    """Accepted and ignored (Azure identities)."""


class CommandJob(_CommandFields):
    """``type: command`` (or no ``type``)."""

    type: Literal["command"] = "command"
    outputs: dict[str, JobOutput | None] = Field(default_factory=dict)
    experiment_name: str | None = None
    parent_job_name: str | None = None


class CommandNode(_CommandFields):
    """An inline command step under a pipeline's ``jobs:``; ``name`` is its key."""

    type: Literal["command"] = "command"
    outputs: dict[str, NodeOutputValue | None] = Field(default_factory=dict)
    comment: str | None = None


# ------------------------------------------------------------------ sweep ------------


class Trial(_CommandBody):
    """A sweep's ``trial``: a command body whose command may use ``${{search_space.x}}``."""


class _Q(_Model):
    q: float = Field(gt=0)


class Choice(_Model):
    type: Annotated[Literal["choice"], BeforeValidator(_normalizer(("choice",)))]
    values: list[Any] = Field(min_length=1)
    """Items: numbers, strings, or mappings of nested sub-spaces."""


class _MinMax(_Model):
    min_value: float
    max_value: float

    @model_validator(mode="after")
    def _ordered(self) -> _MinMax:
        if self.min_value >= self.max_value:
            raise ValueError(
                f"min_value ({self.min_value:g}) must be less than max_value ({self.max_value:g})"
            )
        return self


class Uniform(_MinMax):
    type: Annotated[Literal["uniform"], BeforeValidator(_normalizer(("uniform",)))]


class LogUniform(_MinMax):
    """``min_value``/``max_value`` are bounds of the *log* of the value."""

    type: Annotated[Literal["loguniform"], BeforeValidator(_normalizer(("loguniform",)))]


class QUniform(_MinMax, _Q):
    type: Annotated[Literal["quniform"], BeforeValidator(_normalizer(("quniform",)))]


class QLogUniform(_MinMax, _Q):
    type: Annotated[Literal["qloguniform"], BeforeValidator(_normalizer(("qloguniform",)))]


class _MuSigma(_Model):
    mu: float
    sigma: float = Field(gt=0)


class Normal(_MuSigma):
    type: Annotated[Literal["normal"], BeforeValidator(_normalizer(("normal",)))]


class LogNormal(_MuSigma):
    type: Annotated[Literal["lognormal"], BeforeValidator(_normalizer(("lognormal",)))]


class QNormal(_MuSigma, _Q):
    type: Annotated[Literal["qnormal"], BeforeValidator(_normalizer(("qnormal",)))]


class QLogNormal(_MuSigma, _Q):
    type: Annotated[Literal["qlognormal"], BeforeValidator(_normalizer(("qlognormal",)))]


class RandInt(_Model):
    """An integer in ``[0, upper)``."""

    type: Annotated[Literal["randint"], BeforeValidator(_normalizer(("randint",)))]
    upper: int = Field(ge=1)


SEARCH_SPACE_TYPES = (
    "choice",
    "uniform",
    "loguniform",
    "quniform",
    "qloguniform",
    "normal",
    "lognormal",
    "qnormal",
    "qlognormal",
    "randint",
)
SearchSpace: TypeAlias = Annotated[
    Union[  # noqa: UP007
        Annotated[Choice, Tag("choice")],
        Annotated[Uniform, Tag("uniform")],
        Annotated[LogUniform, Tag("loguniform")],
        Annotated[QUniform, Tag("quniform")],
        Annotated[QLogUniform, Tag("qloguniform")],
        Annotated[Normal, Tag("normal")],
        Annotated[LogNormal, Tag("lognormal")],
        Annotated[QNormal, Tag("qnormal")],
        Annotated[QLogNormal, Tag("qlognormal")],
        Annotated[RandInt, Tag("randint")],
    ],
    Discriminator(_tag_of(SEARCH_SPACE_TYPES)),
]
"""One hyperparameter's distribution."""


class RandomSampling(_Model):
    type: Annotated[Literal["random"], BeforeValidator(_normalizer(("random",)))] = "random"
    seed: int | None = None
    rule: Annotated[
        Literal["random", "sobol"] | None, BeforeValidator(_normalizer(("random", "sobol")))
    ] = None
    logbase: float | Literal["e"] | None = None


class GridSampling(_Model):
    type: Annotated[Literal["grid"], BeforeValidator(_normalizer(("grid",)))]


class BayesianSampling(_Model):
    type: Annotated[Literal["bayesian"], BeforeValidator(_normalizer(("bayesian",)))]


def _sampling_from_str(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


SamplingAlgorithm: TypeAlias = Annotated[
    Union[  # noqa: UP007
        Annotated[RandomSampling, Tag("random")],
        Annotated[GridSampling, Tag("grid")],
        Annotated[BayesianSampling, Tag("bayesian")],
    ],
    Discriminator(_tag_of(("random", "grid", "bayesian"))),
    BeforeValidator(_sampling_from_str),
]
"""``random`` / ``grid`` / ``bayesian`` (a string is read as ``{type: <string>}``)."""


class Objective(_Model):
    primary_metric: str
    """The metric each trial logs (e.g. with ``mlflow.log_metric``)."""
    goal: Annotated[
        Literal["maximize", "minimize"], BeforeValidator(_normalizer(("maximize", "minimize")))
    ]


class _Policy(_Model):
    evaluation_interval: int | None = Field(default=None, ge=1)
    delay_evaluation: int | None = Field(default=None, ge=0)


class BanditPolicy(_Policy):
    type: Annotated[Literal["bandit"], BeforeValidator(_normalizer(("bandit",)))]
    slack_factor: float | None = Field(default=None, ge=0)
    slack_amount: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_slack(self) -> BanditPolicy:
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise ValueError("a bandit policy needs exactly one of slack_factor or slack_amount")
        return self


class MedianStoppingPolicy(_Policy):
    type: Annotated[Literal["median_stopping"], BeforeValidator(_normalizer(("median_stopping",)))]


class TruncationSelectionPolicy(_Policy):
    type: Annotated[
        Literal["truncation_selection"], BeforeValidator(_normalizer(("truncation_selection",)))
    ]
    truncation_percentage: int = Field(ge=1, le=99)


EarlyTermination: TypeAlias = Annotated[
    Union[  # noqa: UP007
        Annotated[BanditPolicy, Tag("bandit")],
        Annotated[MedianStoppingPolicy, Tag("median_stopping")],
        Annotated[TruncationSelectionPolicy, Tag("truncation_selection")],
    ],
    Discriminator(_tag_of(("bandit", "median_stopping", "truncation_selection"))),
]


class _SweepFields(_JobMeta):
    trial: Trial
    inputs: dict[str, InputValue | None] = Field(default_factory=dict)
    sampling_algorithm: SamplingAlgorithm = Field(default_factory=RandomSampling)
    search_space: dict[str, SearchSpace] = Field(default_factory=dict)
    objective: Objective
    limits: SweepLimits
    early_termination: EarlyTermination | None = None
    resources: Resources | None = None
    queue_settings: dict[str, Any] | None = None
    services: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None


class SweepJob(_SweepFields):
    """``type: sweep``: trials of ``trial`` over ``search_space``."""

    type: Literal["sweep"]
    outputs: dict[str, JobOutput | None] = Field(default_factory=dict)
    experiment_name: str | None = None


class SweepNode(_SweepFields):
    """A sweep step in a pipeline. Design choice: the SDK wants the trial as a component
    reference; targets also accepts an inline trial, like a sweep job's."""

    type: Literal["sweep"]
    outputs: dict[str, NodeOutputValue | None] = Field(default_factory=dict)
    comment: str | None = None


# ------------------------------------------------------------------ spark ------------


class SparkEntry(_Model):
    """A spark job's ``entry``: a Python file (``file``) or a JVM main class
    (``class_name``, found in ``jars``)."""

    file: str | None = None
    """The Python file spark-submit runs, relative to ``code``."""
    class_name: str | None = None
    """A JVM main class (``com.example.Main``) in one of ``jars``."""

    @model_validator(mode="after")
    def _one(self) -> SparkEntry:
        if (self.file is None) == (self.class_name is None):
            raise ValueError("an entry needs exactly one of 'file' or 'class_name'")
        for name in ("file", "class_name"):
            given = getattr(self, name)
            if given is not None and not given.strip():
                raise ValueError(f"entry.{name} is empty")
        return self


class SparkResources(_Model):
    """``resources`` of a spark job: Azure ML's serverless Spark pool settings."""

    instance_type: str | None = None
    runtime_version: str | None = None
    """Azure ML's Spark runtime (``"3.4"``)."""

    @field_validator("runtime_version", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return getattr(value, "yaml_source", None) or str(value)
        return value


class _SparkBody(_Model):
    """What a spark job, step and component share (the SDK's ``ParameterizedSpark``)."""

    code: str | None = None
    """Local folder (relative to the YAML's folder) holding the entry file, py_files,
    jars, files and archives; or a remote reference."""
    entry: SparkEntry
    py_files: list[str] = Field(default_factory=list)
    """``.py``, ``.zip`` or ``.egg`` files put on the driver's and executors' path."""
    jars: list[str] = Field(default_factory=list)
    """Jars on the driver's and executors' class path."""
    files: list[str] = Field(default_factory=list)
    """Files copied to each executor's working directory."""
    archives: list[str] = Field(default_factory=list)
    """Archives extracted into each executor's working directory (``a.zip#alias``)."""
    conf: StrMap = Field(default_factory=dict)
    """Spark properties (``spark.driver.memory: 2g``), values kept as strings."""
    args: str | None = None
    """The entry's command-line arguments; may hold ``${{inputs.x}}``/``${{outputs.y}}``."""
    environment: EnvironmentValue | None = None
    """The conda environment of the driver and the executors."""

    @field_validator("py_files", "jars", "files", "archives", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("args", mode="before")
    @classmethod
    def _args_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return getattr(value, "yaml_source", None) or str(value)
        return value


class _SparkFields(_SparkBody, _JobMeta):
    inputs: dict[str, InputValue | None] = Field(default_factory=dict)
    resources: SparkResources | None = None
    identity: dict[str, Any] | None = None
    """Accepted and ignored (Azure identities)."""


class SparkJob(_SparkFields):
    """``type: spark``: ``entry`` run by spark-submit with ``conf`` and ``args``."""

    type: Literal["spark"]
    outputs: dict[str, JobOutput | None] = Field(default_factory=dict)
    experiment_name: str | None = None


class SparkNode(_SparkFields):
    """A spark step in a pipeline; ``name`` is its key under ``jobs:``."""

    type: Literal["spark"]
    outputs: dict[str, NodeOutputValue | None] = Field(default_factory=dict)
    comment: str | None = None


# ------------------------------------------------------------------ parallel ---------

MINI_BATCH_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
"""A parallel step's ``mini_batch_size``: a number of files, or a size (``10kb``)."""
LOGGING_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return getattr(value, "yaml_source", None) or str(value)
    return value


class RetrySettings(_Model):
    """A parallel step's ``retry_settings``."""

    max_retries: int = Field(default=2, ge=0)
    """Tries of a mini-batch after the first one fails or times out."""
    timeout: int = Field(default=60, ge=1)
    """Seconds one ``run(mini_batch)`` call may take."""


class ParallelTask(_Model):
    """A parallel step's ``task``: the entry script's ``init()``/``run(mini_batch)``."""

    type: Annotated[Literal["run_function"], BeforeValidator(_normalizer(("run_function",)))] = (
        "run_function"
    )
    code: str | None = None
    """Local folder holding the entry script (relative to the YAML's folder)."""
    entry_script: str
    """The script, relative to ``code``."""
    environment: EnvironmentValue
    program_arguments: Annotated[str | None, BeforeValidator(_text)] = None
    """Arguments given to the entry script (its ``sys.argv``); may hold bindings."""
    append_row_to: str | None = None
    """``${{outputs.x}}``: where the rows ``run`` returns are collected."""
    model: Any = None
    """Accepted and ignored (an Azure ML model reference)."""

    @field_validator("entry_script")
    @classmethod
    def _script(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("entry_script is empty")
        return value


class ParallelNode(_JobMeta):
    """A ``type: parallel`` step: ``task.entry_script`` over mini-batches of
    ``input_data`` (a folder's files or an MLTable's rows)."""

    type: Literal["parallel"]
    inputs: dict[str, InputValue | None] = Field(default_factory=dict)
    outputs: dict[str, NodeOutputValue | None] = Field(default_factory=dict)
    comment: str | None = None
    input_data: str
    """``${{inputs.x}}``: the input cut into mini-batches."""
    mini_batch_size: Annotated[str, BeforeValidator(_text)] = "1"
    """Files per mini-batch (``"10"``), or for an MLTable about this many bytes
    (``"100kb"``, ``"1mb"``)."""
    partition_keys: list[str] | None = None
    """MLTable columns: one mini-batch per combination of their values."""
    resources: Resources | None = None
    max_concurrency_per_instance: int = Field(default=1, ge=1)
    error_threshold: int = Field(default=-1, ge=-1)
    """Failed items (files or rows) tolerated; -1: any number."""
    mini_batch_error_threshold: int = Field(default=-1, ge=-1)
    """Failed mini-batches tolerated; -1: any number."""
    logging_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
    ] = "INFO"
    retry_settings: RetrySettings | None = None
    environment_variables: StrMap = Field(default_factory=dict)
    task: ParallelTask
    identity: dict[str, Any] | None = None
    """Accepted and ignored (Azure identities)."""

    @field_validator("mini_batch_size")
    @classmethod
    def _size(cls, value: str) -> str:
        match = MINI_BATCH_SIZE.match(value)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(
                f"mini_batch_size {value!r} is neither a number of files ('10') nor a size "
                "for tabular input ('100kb', '1mb')"
            )
        return value.strip()

    @property
    def code(self) -> str | None:
        """``task.code``: the step's source folder."""
        return self.task.code

    @property
    def environment(self) -> Any:
        """``task.environment``: what the entry script runs in."""
        return self.task.environment


# ------------------------------------------------------------------ pipeline ---------


class PipelineSettings(BaseModel):
    """``settings:`` of a pipeline. Unknown keys are kept (``model_extra``), as in the SDK."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    default_compute: str | None = None
    """Compute of nodes that name none (after the pipeline's own ``compute``)."""
    default_datastore: str | None = None
    continue_on_step_failure: bool | None = None
    """True: independent steps keep running after a step fails."""
    force_rerun: bool | None = None


def _node_tag(value: Any) -> str:
    raw = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return raw if raw in ("sweep", "spark", "parallel") else "command"


PipelineNode: TypeAlias = Annotated[
    Union[  # noqa: UP007
        Annotated[CommandNode, Tag("command")],
        Annotated[SweepNode, Tag("sweep")],
        Annotated[SparkNode, Tag("spark")],
        Annotated[ParallelNode, Tag("parallel")],
    ],
    Discriminator(_node_tag),
]


class PipelineJob(_JobMeta):
    """``type: pipeline``: steps under ``jobs:`` wired by ``${{parent...}}`` bindings."""

    type: Literal["pipeline"]
    jobs: dict[str, PipelineNode] = Field(min_length=1)
    inputs: dict[str, InputValue | None] = Field(default_factory=dict)
    outputs: dict[str, JobOutput | None] = Field(default_factory=dict)
    settings: PipelineSettings = Field(default_factory=PipelineSettings)
    experiment_name: str | None = None
    identity: dict[str, Any] | None = None

    def node_compute(self, node: str) -> str | None:
        """The compute a node runs on: its own, else the pipeline's ``compute``, else
        ``settings.default_compute`` (the SDK's order); None: the workspace default."""
        return self.jobs[node].compute or self.compute or self.settings.default_compute


Job: TypeAlias = CommandJob | SweepJob | PipelineJob | SparkJob
"""Any job the reader returns."""
