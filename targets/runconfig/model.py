"""The one `RunConfiguration` model every target kind takes.

Our own YAML uses snake_case keys; the Azure ML v1 reader (``azureml_v1.py``) maps the
SDK's camelCase files onto this same model. Every section forbids unknown keys, so a typo
is an error that names the key (and ``problems.py`` suggests the nearest valid one).

Design choice: the Python objects are mutable (``validate_assignment=True``) because Azure
ML v1 users write ``rc.environment.python.user_managed_dependencies = True``; every
assignment is still validated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SCHEMA_URL",
    "AmlComputeSection",
    "CondaSpec",
    "DatabricksSection",
    "DockerSection",
    "EnvironmentSection",
    "HdiSection",
    "HistorySection",
    "MpiSection",
    "PipBlock",
    "PyTorchSection",
    "PythonSection",
    "RegistrySection",
    "RunConfiguration",
    "SparkConfigSection",
    "SparkEnvSection",
    "SparkPackage",
    "TensorFlowSection",
]

SCHEMA_URL = "https://compute-targets.dev/schemas/runconfig.json"

COMMUNICATORS = ("None", "ParameterServer", "OpenMpi", "IntelMpi", "Gloo", "Nccl")


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )


class PipBlock(_Section):
    """The ``- pip: [...]`` item of a conda ``dependencies`` list."""

    pip: list[str] = Field(default_factory=list)
    """pip requirements; items starting with `-` are pip options (`--index-url URL`)."""


class CondaSpec(_Section):
    """An inline conda environment (the content of a ``conda_dependencies.yml``)."""

    name: str | None = None
    """Environment name (informational; environments are keyed by their content hash)."""
    channels: list[str] = Field(default_factory=list)
    """Conda channels, in priority order."""
    dependencies: list[str | PipBlock] = Field(default_factory=list)
    """Conda specs (`python=3.11`, `numpy>=1.26`) and at most one `pip:` block."""
    variables: dict[str, str] = Field(default_factory=dict)
    """Environment variables set when the environment is active."""
    prefix: str | None = None
    """Ignored (conda's install prefix); kept so conda files load unchanged."""

    @field_validator("dependencies", mode="before")
    @classmethod
    def _coerce_scalars(cls, value: Any) -> Any:
        # YAML turns `- 3.10` style items into numbers; conda specs are strings.
        return _stringify_items(value)

    @field_validator("variables", mode="before")
    @classmethod
    def _variables_str(cls, value: Any) -> Any:
        return _stringify_values(value)

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env_names(value)


class PythonSection(_Section):
    user_managed_dependencies: bool = False
    """True: run with ``interpreter_path`` (or the current interpreter) as it is.
    False: build an isolated environment from the conda dependencies."""
    interpreter_path: str | None = None
    """Interpreter for user-managed runs (a path or a name on PATH).
    Default: the target's default Python."""
    conda_dependencies_file: str | None = None
    """Path of a ``conda_dependencies.yml``, relative to the source directory."""
    conda_dependencies: CondaSpec | None = None
    """An inline conda environment (instead of conda_dependencies_file)."""
    base_conda_environment: str | None = None
    """Azure ML v1: a conda environment to clone as the base. Kept for compatibility."""

    @field_validator("conda_dependencies", mode="before")
    @classmethod
    def _from_conda_dependencies(cls, value: Any) -> Any:
        # Azure ML v1 code assigns a CondaDependencies object here.
        as_spec = getattr(value, "as_spec", None)
        return as_spec() if callable(as_spec) else value

    @field_validator("conda_dependencies_file", "interpreter_path")
    @classmethod
    def _file_path(cls, value: str | None) -> str | None:
        return _check_path(value, "the path")

    @model_validator(mode="after")
    def _one_conda_source(self) -> PythonSection:
        if self.conda_dependencies_file and self.conda_dependencies is not None:
            raise ValueError(
                "give either conda_dependencies_file or inline conda_dependencies, not both"
            )
        return self


class RegistrySection(_Section):
    """A private image registry. The password is never written here: it lives in the
    keyring (see ``targets secrets``)."""

    address: str | None = None
    """Registry host, e.g. `myregistry.azurecr.io`."""
    username: str | None = None
    """Registry user; the password is looked up in the keyring."""


class DockerSection(_Section):
    """How the run is containerised. ``enabled`` false: the run uses the target's host."""

    enabled: bool = False
    """Run inside a Docker container."""
    base_image: str | None = None
    """Image to run in (or to build the environment on)."""
    base_dockerfile: str | None = None
    """Dockerfile text to build the base image from (instead of base_image)."""
    base_image_registry: RegistrySection | None = None
    """A private registry for base_image."""
    shm_size: str | None = "2g"
    """Size of /dev/shm: a number with an optional unit b, k, m or g (`2g`)."""
    arguments: list[str] = Field(default_factory=list)
    """Extra arguments for `docker run`."""
    gpu: bool = False
    """Give the container the host's GPUs."""
    shared_volumes: bool = True
    """Mount the run folder from the host (false: copy it in)."""
    platform: dict[str, str] | None = None
    """Image platform, e.g. `{os: Linux, architecture: arm64}`."""

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_str(cls, value: Any) -> Any:
        return _stringify_items(value)

    @field_validator("platform", mode="before")
    @classmethod
    def _platform_str(cls, value: Any) -> Any:
        return _stringify_values(value)

    @field_validator("shm_size", mode="before")
    @classmethod
    def _shm_size_str(cls, value: Any) -> Any:
        # `shm_size: 1024` is a YAML int; docker reads it as bytes.
        return (
            _scalar_str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        )

    @field_validator("shm_size")
    @classmethod
    def _shm_size(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+[bkmgBKMG]?", str(value)):
            raise ValueError(f"shm_size {value!r} is not a size like '2g', '512m' or '1024k'")
        return value


class SparkPackage(_Section):
    group: str
    artifact: str
    version: str

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        return _scalar_str(value)

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"


class SparkEnvSection(_Section):
    repositories: list[str] = Field(default_factory=list)
    """Extra Maven repositories for `spark-submit --repositories`."""
    packages: list[SparkPackage] = Field(default_factory=list)
    """Maven packages for `spark-submit --packages`."""
    precache_packages: bool = True
    """Resolve the packages while preparing the environment."""


class DatabricksSection(_Section):
    """Databricks libraries, kept as written (each item a mapping as in Azure ML v1)."""

    maven_libraries: list[dict[str, Any]] = Field(default_factory=list)
    pypi_libraries: list[dict[str, Any]] = Field(default_factory=list)
    rcran_libraries: list[dict[str, Any]] = Field(default_factory=list)
    jar_libraries: list[dict[str, Any]] = Field(default_factory=list)
    egg_libraries: list[dict[str, Any]] = Field(default_factory=list)
    cluster: dict[str, Any] | None = None


class EnvironmentSection(_Section):
    name: str | None = None
    """Environment name (informational)."""
    version: str | None = None
    """Environment version (informational)."""
    environment_variables: dict[str, str] = Field(default_factory=dict)
    """Variables set in the run's environment (Azure ML v1's older place for them)."""
    python: PythonSection = Field(default_factory=PythonSection)
    """The Python environment."""
    docker: DockerSection = Field(default_factory=DockerSection)
    """The container, if any."""
    spark: SparkEnvSection = Field(default_factory=SparkEnvSection)
    """Spark packages, for framework pyspark."""
    databricks: DatabricksSection | None = None
    """Databricks libraries and cluster, for Databricks targets."""

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        return _scalar_str(value)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env_str(cls, value: Any) -> Any:
        return _stringify_values(value)

    @field_validator("environment_variables")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env_names(value)


class HistorySection(_Section):
    output_collection: bool = True
    """Bring ./outputs back when the run ends."""
    snapshot_project: bool = True
    """Record the source snapshot with the run."""
    directories_to_watch: list[str] = Field(default_factory=lambda: ["logs"])
    """Folders whose files are streamed while the run goes."""


class SparkConfigSection(_Section):
    configuration: dict[str, str] = Field(default_factory=dict)
    """Spark properties passed as `--conf key=value`."""

    @field_validator("configuration", mode="before")
    @classmethod
    def _conf_str(cls, value: Any) -> Any:
        return _stringify_values(value)


class HdiSection(_Section):
    yarn_deploy_mode: Literal["cluster", "client"] = "cluster"
    """YARN deploy mode for spark-submit."""

    @field_validator("yarn_deploy_mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class MpiSection(_Section):
    process_count_per_node: int = Field(default=1, ge=1)
    """Processes started on each node."""
    node_count: int | None = Field(default=None, ge=1)
    """Nodes (default: the run's node_count)."""


class PyTorchSection(_Section):
    communication_backend: Literal["nccl", "gloo"] = "nccl"
    """torch.distributed backend."""
    process_count: int | None = Field(default=None, ge=1)
    """Total processes (default: one per node)."""
    node_count: int | None = Field(default=None, ge=1)
    """Nodes (default: the run's node_count)."""

    @field_validator("communication_backend", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class TensorFlowSection(_Section):
    worker_count: int = Field(default=1, ge=0)
    """TensorFlow workers (communicator ParameterServer)."""
    parameter_server_count: int = Field(default=1, ge=0)
    """TensorFlow parameter servers."""


class AmlComputeSection(_Section):
    vm_size: str | None = None
    """VM size for clusters created per run."""
    vm_priority: Literal["dedicated", "lowpriority"] | None = None
    """VM priority for clusters created per run."""
    cluster_max_node_count: int | None = Field(default=None, ge=1)
    """Largest cluster size."""
    retain_cluster: bool = False
    """Keep the cluster after the run."""
    name: str | None = None
    """Cluster name."""


class RunConfiguration(_Section):
    """What to run and where.

    Exactly one of ``script`` or ``command`` says what runs. ``source_directory`` is the
    folder that is snapshotted (relative paths are resolved against the runconfig file's
    folder; when absent, the project folder is used).
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
        json_schema_extra={"$id": SCHEMA_URL, "title": "targets RunConfiguration"},
    )

    script: str | None = None
    """The Python script to run, relative to the source directory."""
    command: str | list[str] | None = None
    """A command to run instead of a script (a string for the shell, or a list of arguments)."""
    arguments: list[str] = Field(default_factory=list)
    """Arguments for the script, passed verbatim (no shell)."""
    source_directory: str | None = None
    """The folder to snapshot, relative to this file's folder. Default: the project folder."""
    target: str = "local"
    """Name of the attached compute target."""
    experiment_name: str | None = None
    """Groups runs in the ledger."""
    framework: Literal["python", "pyspark"] = "python"
    """python, or pyspark (run with spark-submit)."""
    communicator: str = "None"
    """Distribution: None, ParameterServer, OpenMpi, IntelMpi, Gloo or Nccl."""
    node_count: int = Field(default=1, ge=1)
    """Nodes for a multi-node run."""
    max_run_duration_seconds: int | None = Field(default=None, gt=0)
    """The run is cancelled after this many seconds."""
    priority: int | None = None
    """Scheduling priority, for targets that queue runs."""
    environment_variables: dict[str, str] = Field(default_factory=dict)
    """Variables set for the run."""
    environment: EnvironmentSection = Field(default_factory=EnvironmentSection)
    """The environment the run executes in."""
    history: HistorySection = Field(default_factory=HistorySection)
    """What is recorded and brought back."""
    spark: SparkConfigSection = Field(default_factory=SparkConfigSection)
    """Spark configuration."""
    hdi: HdiSection = Field(default_factory=HdiSection)
    """HDInsight / YARN settings."""
    mpi: MpiSection = Field(default_factory=MpiSection)
    """MPI settings (communicator OpenMpi or IntelMpi)."""
    pytorch: PyTorchSection = Field(default_factory=PyTorchSection)
    """torch.distributed settings."""
    tensorflow: TensorFlowSection = Field(default_factory=TensorFlowSection)
    """TensorFlow parameter-server settings."""
    amlcompute: AmlComputeSection = Field(default_factory=AmlComputeSection)
    """Azure ML v1 per-run cluster settings (kept for compatibility)."""

    @field_validator("target", mode="before")
    @classmethod
    def _target_name(cls, value: Any) -> Any:
        """v1 code assigns a compute target object (``run_config.target = cluster``)."""
        name = getattr(value, "name", None)
        return name if not isinstance(value, str) and isinstance(name, str) else value

    @field_validator("framework", mode="before")
    @classmethod
    def _framework(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("communicator", mode="before")
    @classmethod
    def _communicator(cls, value: Any) -> Any:
        if value is None:
            return "None"
        if isinstance(value, str):
            # The v1 SDK's enum also has "Mpi" (MpiConfiguration's communicator): the
            # target's mpirun, which is what OpenMpi means here.
            if value.strip().lower() == "mpi":
                return "OpenMpi"
            for known in COMMUNICATORS:
                if known.lower() == value.lower():
                    return known
        raise ValueError(f"communicator must be one of {', '.join(COMMUNICATORS)} or Mpi")

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_str(cls, value: Any) -> Any:
        # `- 0.5` in YAML is a float; scripts receive strings, exactly as written.
        return _stringify_items(value)

    @field_validator("command", mode="before")
    @classmethod
    def _command_str(cls, value: Any) -> Any:
        return _stringify_items(value)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env_str(cls, value: Any) -> Any:
        return _stringify_values(value)

    @field_validator("environment_variables")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env_names(value)

    @field_validator("arguments", "command")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and "\x00" in item for item in items):
            raise ValueError("contains a NUL character, which no command line can hold")
        return value

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str | None) -> str | None:
        return _check_path(value, "script")

    @field_validator("source_directory")
    @classmethod
    def _source_path(cls, value: str | None) -> str | None:
        return _check_path(value, "source_directory")

    @model_validator(mode="after")
    def _script_or_command(self) -> RunConfiguration:
        if self.script and self.command:
            raise ValueError("give either script or command, not both")
        if self.command and self.arguments:
            raise ValueError(
                "arguments go with script; with command, put them in the command itself"
            )
        return self

    # -- Azure ML v1 names -------------------------------------------------------------

    @property
    def effective_node_count(self) -> int:
        return self.node_count

    def save(
        self,
        path: str | Path | None = None,
        name: str | None = None,
        separate_environment_yaml: bool = False,
    ) -> None:
        """Write this configuration in our YAML format (with the schema comment line),
        atomically.

        ``save(file)`` writes that file. ``save(folder, name)`` follows Azure ML v1's
        project-folder convention: ``folder/.azureml/<name>.runconfig`` (or
        ``folder/aml_config/<name>.runconfig`` when that legacy folder exists);
        ``folder`` defaults to the current directory. ``load(folder, name)`` reads it
        back. Raises UsageError for ``separate_environment_yaml=True`` (the environment
        is always kept inline) or when neither a path nor a name is given."""
        _file_io().save(self, runconfig_file(path, name, separate_environment_yaml))

    @classmethod
    def load(cls, path: str | Path, name: str | None = None) -> RunConfiguration:
        """Load a runconfig: our YAML, an Azure ML v1 ``.runconfig`` or ``.azureml/<name>``.

        ``load(dir, name)`` searches ``dir/.azureml/name``, ``dir/aml_config/name`` (with and
        without ``.runconfig``) and ``dir/name.runconfig``, as Azure ML v1 does.
        """
        return _file_io().load(path, name)


class RunConfigurationFiles(Protocol):
    """What :meth:`RunConfiguration.load` and :meth:`RunConfiguration.save` call.

    Design choice: the readers and writers import this model, so the model does not
    import them; the package (``targets/runconfig/__init__.py``, which Python runs before
    this module is used) installs them with :func:`use_files`.
    """

    def load(self, path: str | Path, name: str | None) -> RunConfiguration: ...

    def save(self, config: RunConfiguration, path: str | Path) -> None: ...


_FILES: RunConfigurationFiles | None = None


def use_files(files: RunConfigurationFiles) -> None:
    """Install the readers and writers behind ``RunConfiguration.load``/``save``."""
    global _FILES
    _FILES = files


V1_CONFIG_DIRS = (".azureml", "aml_config")
"""Azure ML v1's project config folders; ``aml_config`` is the legacy one."""


def runconfig_file(
    path: str | Path | None, name: str | None, separate_environment_yaml: bool = False
) -> Path:
    """The file ``RunConfiguration.save(path, name)`` writes (see its docstring)."""
    from targets.errors import UsageError

    if separate_environment_yaml:
        raise UsageError(
            "separate_environment_yaml=True is not supported: the environment is kept "
            "inline in the run configuration",
            hint="drop separate_environment_yaml; save a conda file with "
            "CondaDependencies.save() if you need one",
        )
    if name is None:
        if path is None:
            raise UsageError(
                "RunConfiguration.save() needs a file, or a project folder and a name",
                hint="rc.save(path='.', name='train') writes .azureml/train.runconfig",
            )
        return Path(path)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise UsageError(
            f"invalid run configuration name {name!r}",
            hint="a name is a file name without folders, e.g. 'train'",
        )
    folder = Path(path) if path is not None else Path.cwd()
    if folder.is_file():
        raise UsageError(
            f"{folder} is a file; with a name, the path is the project folder",
            hint="pass the project folder, or the file alone without a name",
        )
    legacy = folder / V1_CONFIG_DIRS[1]
    config_dir = legacy if legacy.is_dir() else folder / V1_CONFIG_DIRS[0]
    file_name = name if name.endswith(".runconfig") else f"{name}.runconfig"
    return config_dir / file_name


def _file_io() -> RunConfigurationFiles:
    if _FILES is None:  # the package installs them on import; nothing else can run first
        raise RuntimeError("targets.runconfig installed no file readers")
    return _FILES


def _scalar_str(value: Any) -> Any:
    """A YAML scalar where a string is expected, as the user wrote it.

    The YAML reader in ``yaml_lines.py`` tags plain numbers with their source text
    (``yaml_source``), so ``- 1.10`` stays ``"1.10"`` rather than becoming ``"1.1"``.
    """
    source = getattr(value, "yaml_source", None)
    if isinstance(source, str):
        return source
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _stringify_items(value: Any) -> Any:
    if isinstance(value, list):
        return [_scalar_str(v) for v in value]
    return value


def _stringify_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): (_scalar_str(v) if v is not None else "") for k, v in value.items()}
    return value


MAX_PATH_BYTES = 4096
"""Longest path accepted for a script or folder (Linux's PATH_MAX)."""
MAX_NAME_BYTES = 255
"""Longest single path component (NAME_MAX on Linux, macOS and Windows)."""


def _check_env_names(value: dict[str, str]) -> dict[str, str]:
    """Environment variable names as every OS accepts them: not empty, no ``=`` (it ends
    the name in ``NAME=VALUE``), no NUL (it ends the C string)."""
    for name, text in value.items():
        if not name:
            raise ValueError("an environment variable name is empty")
        if "=" in name:
            raise ValueError(
                f"environment variable name {name[:60]!r} contains '=': names cannot hold "
                "'='; put it in the value instead (NAME: 'a=b')"
            )
        if "\x00" in name or "\x00" in text:
            raise ValueError(f"environment variable {name[:60]!r} contains a NUL character")
    return value


def _check_path(value: str | None, what: str) -> str | None:
    """A path the OS can open: at most ``MAX_PATH_BYTES`` bytes, each component at most
    ``MAX_NAME_BYTES``, no NUL. Longer names fail later with ENAMETOOLONG, after the run
    folder exists; checking here keeps bad input to exit 2 with nothing written."""
    if value is None:
        return None
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character")
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > MAX_PATH_BYTES:
        raise ValueError(f"{what} is {size} bytes long; a path may have at most {MAX_PATH_BYTES}")
    for part in value.replace("\\", "/").split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise ValueError(
                f"{what} has a name of more than {MAX_NAME_BYTES} bytes ({part[:40]!r}...)"
            )
    return value
