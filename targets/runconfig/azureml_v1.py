"""Azure ML v1 run configurations (SDK 1.x ``.runconfig`` files and 2017 Workbench files).

Every key ``azureml-core`` 1.61 knows is mapped onto :class:`RunConfiguration`; keys may be
camelCase or snake_case, as the SDK accepts both. Nothing is dropped silently:

- a key with no place in our model (``dataReferences``, ``paralleltask``, ``r``, ...) is
  dropped quietly when it holds the SDK's default (every SDK-written file has them), and
  otherwise becomes a warning saying it is not supported;
- obsolete keys (``autoPrepareEnvironment``, ``docker.gpuSupport`` from SDK 1.0.x) warn;
- unknown keys warn, with the nearest known key as a suggestion;
- an empty value (``key:``) means "the default", as in the SDK.

Differences from the SDK, on purpose:

- ``environmentVariables`` keys are kept verbatim everywhere, and so are user-chosen keys
  elsewhere (the SDK camelCases ``data_references: {my_input: ...}`` into ``myInput``);
- 2017 Workbench files (``ArgumentVector``, ``Target``, ...) are really read; the SDK
  camelCases their keys first and then finds none of them;
- ``docker.baseImageRegistry.password`` is never kept: secrets belong in the keyring;
- the framework ``TensorFlow``/``PyTorch``/``CNTK`` runs as ``python`` (with a warning);
  distribution is configured by ``communicator`` and the ``mpi``/``pytorch`` sections.

Where the top-level ``docker`` section (SDK >= 1.2x) and ``environment.docker`` disagree:
``useDocker: true`` or ``enabled: true`` turns Docker on; ``sharedVolumes``, ``arguments``
and ``shmSize`` from the top-level section win when they differ from the SDK's defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from targets.runconfig.files import CONFIG_DIRS, read_text, resolve_file
from targets.runconfig.loaded import LoadedRunConfig, RunConfigFormat
from targets.runconfig.model import RunConfiguration
from targets.runconfig.ours import resolve_conda_file
from targets.runconfig.problems import (
    Problem,
    dotted,
    raise_problems,
    suggest,
    validation_problems,
)
from targets.runconfig.yaml_lines import KeyPath, YamlDocument, parse_yaml

__all__ = [
    "KNOWN_V1_CAMEL_KEYS",
    "WORKBENCH_KEYS",
    "load_v1_document",
    "to_camel_case",
]

WORKBENCH_KEYS = frozenset(
    {
        "ArgumentVector",
        "Target",
        "Framework",
        "EnvironmentVariables",
        "CondaDependenciesFile",
        "CondaFile",
        "SparkDependenciesFile",
        "PrepareEnvironment",
        "TrackedRun",
        "ManagedEnvironment",
        "Description",
    }
)
"""The top-level keys of 2017 Workbench files (used to recognise them, and to warn)."""


def to_camel_case(key: str) -> str:
    """The SDK's key normalisation: ``max_run_duration_seconds`` -> ``maxRunDurationSeconds``;
    a key that is already camelCase is unchanged."""
    first, *rest = key.split("_")
    return first[:1].lower() + first[1:] + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass(frozen=True)
class _Spec:
    """How one v1 section maps: ``fields`` camelCase key -> our key; ``special`` keys are
    handled by the caller; ``unsupported`` keys carry the SDK default they may hold
    quietly; ``obsolete`` keys always warn with their explanation."""

    fields: Mapping[str, str] = field(default_factory=dict)
    special: frozenset[str] = frozenset()
    unsupported: Mapping[str, Any] = field(default_factory=dict)
    obsolete: Mapping[str, str] = field(default_factory=dict)

    def known(self) -> list[str]:
        return [*self.fields, *self.special, *self.unsupported, *self.obsolete]


_TOP = _Spec(
    fields={
        "script": "script",
        "arguments": "arguments",
        "target": "target",
        "communicator": "communicator",
        "maxRunDurationSeconds": "max_run_duration_seconds",
        "nodeCount": "node_count",
        "priority": "priority",
        "environmentVariables": "environment_variables",
    },
    special=frozenset(
        {
            "framework",
            "command",
            "environment",
            "history",
            "spark",
            "docker",
            "hdi",
            "tensorflow",
            "mpi",
            "pytorch",
            "amlcompute",
        }
    ),
    unsupported={
        "dataReferences": {},
        "data": {},
        "datacaches": [],
        "outputData": {},
        "sourceDirectoryDataStore": None,
        "paralleltask": {"maxRetriesPerWorker": 0, "workerCountPerNode": 1},
        "kubernetescompute": {"instanceType": None},
        "credentialPassthrough": False,
        "applicationEndpoints": {},
        "autoClusterComputeSpecification": None,
    },
    obsolete={
        "autoPrepareEnvironment": "obsolete SDK 1.0.x key, ignored "
        "(targets always prepares the environment unless "
        "environment.python.user_managed_dependencies is true)",
    },
)
_SECTIONS: dict[str, _Spec] = {
    "history": _Spec(
        fields={
            "outputCollection": "output_collection",
            "snapshotProject": "snapshot_project",
            "directoriesToWatch": "directories_to_watch",
        },
        unsupported={"ambientAuthentication": None},
    ),
    "spark": _Spec(fields={"configuration": "configuration"}),
    "hdi": _Spec(fields={"yarnDeployMode": "yarn_deploy_mode"}),
    "tensorflow": _Spec(
        fields={"workerCount": "worker_count", "parameterServerCount": "parameter_server_count"}
    ),
    "mpi": _Spec(
        fields={"processCountPerNode": "process_count_per_node", "nodeCount": "node_count"}
    ),
    "pytorch": _Spec(
        fields={
            "communicationBackend": "communication_backend",
            "processCount": "process_count",
            "nodeCount": "node_count",
        }
    ),
    "amlcompute": _Spec(
        fields={
            "vmSize": "vm_size",
            "vmPriority": "vm_priority",
            "retainCluster": "retain_cluster",
            "name": "name",
            "clusterMaxNodeCount": "cluster_max_node_count",
        }
    ),
}
_TOP_DOCKER = _Spec(special=frozenset({"useDocker", "sharedVolumes", "arguments", "shmSize"}))
_ENVIRONMENT = _Spec(
    fields={"name": "name", "version": "version", "environmentVariables": "environment_variables"},
    special=frozenset({"python", "docker", "spark", "databricks"}),
    unsupported={"r": None, "inferencingStackVersion": None, "assetId": None},
)
_PYTHON = _Spec(
    fields={
        "userManagedDependencies": "user_managed_dependencies",
        "interpreterPath": "interpreter_path",
        "condaDependenciesFile": "conda_dependencies_file",
        "baseCondaEnvironment": "base_conda_environment",
    },
    special=frozenset({"condaDependencies"}),
)
_DOCKER = _Spec(
    fields={
        "enabled": "enabled",
        "baseImage": "base_image",
        "baseDockerfile": "base_dockerfile",
        "sharedVolumes": "shared_volumes",
        "shmSize": "shm_size",
        "arguments": "arguments",
    },
    special=frozenset({"gpuSupport", "baseImageRegistry", "platform"}),
    unsupported={"buildContext": None},
)
_REGISTRY = _Spec(
    fields={"address": "address", "username": "username"},
    special=frozenset({"password"}),
    unsupported={"registryIdentity": None},
)
_ENV_SPARK = _Spec(
    fields={
        "repositories": "repositories",
        "packages": "packages",
        "precachePackages": "precache_packages",
    }
)
_DATABRICKS = _Spec(
    fields={
        "mavenLibraries": "maven_libraries",
        "pypiLibraries": "pypi_libraries",
        "rcranLibraries": "rcran_libraries",
        "jarLibraries": "jar_libraries",
        "eggLibraries": "egg_libraries",
        "cluster": "cluster",
    }
)
_SPARK_DEPENDENCIES = _Spec(
    fields={
        "configuration": "configuration",
        "repositories": "repositories",
        "packages": "packages",
    }
)
_WORKBENCH_RUNS_AS_PYTHON = ("tensorflow", "pytorch", "cntk")
_DEFAULT_PLATFORM = {"os": "Linux", "architecture": "amd64"}

KNOWN_V1_CAMEL_KEYS = frozenset(
    key
    for spec in (
        _TOP,
        *_SECTIONS.values(),
        _TOP_DOCKER,
        _ENVIRONMENT,
        _PYTHON,
        _DOCKER,
        _REGISTRY,
        _ENV_SPARK,
        _DATABRICKS,
    )
    for key in spec.known()
    if any(c.isupper() for c in key)
)
"""Every camelCase key of the SDK's run configuration (used to recognise v1 files)."""


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _is_empty(value: Any) -> bool:
    if value is None or value is False or value in ("", [], {}):
        return True
    return isinstance(value, dict) and all(_is_empty(v) for v in value.values())


def _matches_default(value: Any, default: Any) -> bool:
    """True when ``value`` is what the SDK writes by default (or empty)."""
    if _is_empty(value):
        return True
    if isinstance(value, dict) and isinstance(default, dict):
        return all(
            _matches_default(v, default.get(to_camel_case(str(k)))) for k, v in value.items()
        )
    return bool(value == default)


class _Mapper:
    """Builds the snake_case dict for RunConfiguration from one v1/Workbench file,
    recording where each value came from (for error lines) and what was not kept."""

    def __init__(self, doc: YamlDocument, source: Path) -> None:
        self.doc = doc
        self.source = source
        self.out: dict[str, Any] = {}
        self.origins: dict[KeyPath, tuple[YamlDocument, KeyPath]] = {}
        self.warnings: list[str] = []
        self.problems: list[Problem] = []

    # -- recording ------------------------------------------------------------------

    def put(self, dst: KeyPath, value: Any, doc: YamlDocument, src: KeyPath) -> None:
        node = self.out
        for part in dst[:-1]:
            node = node.setdefault(str(part), {})
        node[str(dst[-1])] = value
        self.origins[dst] = (doc, src)

    def warn(self, doc: YamlDocument, src: KeyPath, message: str) -> None:
        line = doc.line_of(src)
        where = _display(doc.path) + (f":{line}" if line else "")
        self.warnings.append(f"{where}: {dotted(src)}: {message}")

    def problem(self, doc: YamlDocument, src: KeyPath, message: str) -> None:
        self.problems.append(Problem(message, doc.path, doc.line_of(src), dotted(src) or None))

    def locate(self, key_path: KeyPath) -> tuple[Path, KeyPath, int | None]:
        for end in range(len(key_path), 0, -1):
            origin = self.origins.get(key_path[:end])
            if origin is not None:
                doc, src = origin
                shown = (*src, *key_path[end:])
                return doc.path, shown, doc.line_of(shown)
        return self.doc.path, key_path, None

    # -- generic section walk ---------------------------------------------------------

    def section(
        self,
        doc: YamlDocument,
        src: KeyPath,
        value: Any,
        dst: KeyPath,
        spec: _Spec,
    ) -> dict[str, tuple[str, Any]]:
        """Map the plain fields of one section; return its special keys (camelCase ->
        (key as written, value)) for the caller. Null values mean "default"."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(doc, src, f"expected a mapping, got {_describe(value)}")
            return {}
        special: dict[str, tuple[str, Any]] = {}
        for raw_key, item in value.items():
            written = str(raw_key)
            key = to_camel_case(written)
            here = (*src, written)
            if key in spec.fields:
                if item is not None:
                    self.put((*dst, spec.fields[key]), item, doc, here)
            elif key in spec.special:
                special[key] = (written, item)
            elif key in spec.unsupported:
                if not _matches_default(item, spec.unsupported[key]):
                    self.warn(doc, here, "not supported by targets; its value is ignored")
            elif key in spec.obsolete:
                self.warn(doc, here, spec.obsolete[key])
            else:
                self.warn(doc, here, f"unknown key, ignored{suggest(key, spec.known())}")
        return special

    # -- Azure ML v1 -----------------------------------------------------------------

    def map_v1(self) -> None:
        doc = self.doc
        special = self.section(doc, (), doc.data, (), _TOP)
        if "framework" in special:
            written, value = special["framework"]
            self.framework(doc, (written,), value)
        if "command" in special:
            written, value = special["command"]
            if value not in (None, "", []):
                self.put(("command",), value, doc, (written,))
        for name, spec in _SECTIONS.items():
            if name in special:
                written, value = special[name]
                self.section(doc, (written,), value, (name,), spec)
        if "environment" in special:
            written, value = special["environment"]
            self.environment(doc, (written,), value)
        if "docker" in special:
            written, value = special["docker"]
            self.top_docker(doc, (written,), value)

    def framework(self, doc: YamlDocument, src: KeyPath, value: Any) -> None:
        if value is None:
            return
        lowered = str(value).lower()
        if lowered in _WORKBENCH_RUNS_AS_PYTHON:
            self.warn(
                doc,
                src,
                f"framework {value!r} runs as 'python'; configure distribution with "
                "communicator and the mpi/pytorch/tensorflow sections",
            )
            value = "python"
        self.put(("framework",), value, doc, src)

    def environment(self, doc: YamlDocument, src: KeyPath, value: Any) -> None:
        if isinstance(value, str):
            # `save(separate_environment_yaml=True)` writes the environment to its own file.
            env_file = resolve_file(
                value,
                self.source,
                doc.path,
                what="environment file",
                key_path=dotted(src),
                line=doc.line_of(src),
            )
            doc = parse_yaml(read_text(env_file, "environment"), env_file)
            src, value = (), doc.data
            if not isinstance(value, dict):
                self.problem(doc, src, f"expected an environment mapping, got {_describe(value)}")
                return
        if (
            isinstance(value, dict)
            and value
            and {to_camel_case(str(k)) for k in value}
            <= {
                "name",
                "version",
            }
        ):
            self.warn(
                doc,
                src,
                "only name/version given: in Azure ML this refers to a registered environment, "
                "which targets cannot fetch; describe python/docker here instead",
            )
        special = self.section(doc, src, value, ("environment",), _ENVIRONMENT)
        env: KeyPath = ("environment",)
        if "python" in special:
            written, python = special["python"]
            here = (*src, written)
            inner = self.section(doc, here, python, (*env, "python"), _PYTHON)
            if "condaDependencies" in inner:
                key, conda = inner["condaDependencies"]
                if conda is not None:
                    has_file = (*env, "python", "conda_dependencies_file") in self.origins
                    if has_file:
                        self.warn(
                            doc,
                            (*here, key),
                            "ignored: condaDependenciesFile is given too, and wins",
                        )
                    else:
                        self.put((*env, "python", "conda_dependencies"), conda, doc, (*here, key))
        if "docker" in special:
            written, docker = special["docker"]
            self.env_docker(doc, (*src, written), docker)
        if "spark" in special:
            written, spark = special["spark"]
            self.section(doc, (*src, written), spark, (*env, "spark"), _ENV_SPARK)
        if "databricks" in special:
            written, databricks = special["databricks"]
            if not _is_empty(databricks):
                self.section(doc, (*src, written), databricks, (*env, "databricks"), _DATABRICKS)

    def env_docker(self, doc: YamlDocument, src: KeyPath, value: Any) -> None:
        dst: KeyPath = ("environment", "docker")
        special = self.section(doc, src, value, dst, _DOCKER)
        if "gpuSupport" in special:
            written, gpu = special["gpuSupport"]
            if gpu:
                self.put((*dst, "gpu"), gpu, doc, (*src, written))
                self.warn(doc, (*src, written), "obsolete SDK 1.0.x key; mapped to docker.gpu")
            else:
                self.warn(doc, (*src, written), "obsolete SDK 1.0.x key, ignored")
        if "platform" in special:
            written, platform = special["platform"]
            if not _matches_default(platform, _DEFAULT_PLATFORM):
                self.put((*dst, "platform"), platform, doc, (*src, written))
        if "baseImageRegistry" in special:
            written, registry = special["baseImageRegistry"]
            here = (*src, written)
            inner = self.section(doc, here, registry, (*dst, "base_image_registry"), _REGISTRY)
            if "password" in inner and inner["password"][1] not in (None, ""):
                self.warn(
                    doc,
                    (*here, inner["password"][0]),
                    "the registry password was not imported (secrets never live in "
                    "runconfig files); store it in the keyring with `targets secrets set` "
                    "and remove it from this file",
                )

    def top_docker(self, doc: YamlDocument, src: KeyPath, value: Any) -> None:
        dst: KeyPath = ("environment", "docker")
        special = self.section(doc, src, value, dst, _TOP_DOCKER)
        if "useDocker" in special:
            written, use = special["useDocker"]
            if use:
                self.put((*dst, "enabled"), use, doc, (*src, written))
        if "sharedVolumes" in special:
            written, shared = special["sharedVolumes"]
            if shared is not None and shared is not True:
                self.put((*dst, "shared_volumes"), shared, doc, (*src, written))
        if "arguments" in special:
            written, arguments = special["arguments"]
            if arguments:
                self.put((*dst, "arguments"), arguments, doc, (*src, written))
        if "shmSize" in special:
            written, shm = special["shmSize"]
            if shm is not None and str(shm) != "2g":
                self.put((*dst, "shm_size"), shm, doc, (*src, written))

    # -- 2017 Workbench -----------------------------------------------------------------

    def map_workbench(self) -> None:
        doc = self.doc
        data: dict[str, Any] = {str(k): v for k, v in doc.data.items()}
        for key in data:
            if key not in WORKBENCH_KEYS:
                known = sorted(WORKBENCH_KEYS)
                self.warn(doc, (key,), f"unknown Workbench key, ignored{suggest(key, known)}")
        vector = data.get("ArgumentVector")
        if vector is not None:
            if not isinstance(vector, list):
                vector = [vector]
            if vector:
                first = str(vector[0])
                if first == "$file":
                    self.warn(
                        doc,
                        ("ArgumentVector", 0),
                        '"$file" means the script is chosen when the run is started: '
                        "pass it as `targets run SCRIPT --runconfig FILE`",
                    )
                else:
                    self.put(("script",), first, doc, ("ArgumentVector", 0))
                if len(vector) > 1:
                    self.put(("arguments",), vector[1:], doc, ("ArgumentVector",))
        if data.get("Target") is not None:
            self.put(("target",), data["Target"], doc, ("Target",))
        self.framework(doc, ("Framework",), data.get("Framework"))
        if data.get("EnvironmentVariables") is not None:
            self.put(
                ("environment_variables",),
                data["EnvironmentVariables"],
                doc,
                ("EnvironmentVariables",),
            )
        conda_keys = [k for k in ("CondaDependenciesFile", "CondaFile") if data.get(k)]
        if conda_keys:
            conda_dst = ("environment", "python", "conda_dependencies_file")
            self.put(conda_dst, data[conda_keys[0]], doc, (conda_keys[0],))
            if len(conda_keys) > 1:
                self.warn(doc, (conda_keys[1],), f"ignored: {conda_keys[0]} is given too")
        if data.get("ManagedEnvironment") is False:
            self.put(
                ("environment", "python", "user_managed_dependencies"),
                True,
                doc,
                ("ManagedEnvironment",),
            )
        if data.get("PrepareEnvironment") is False:
            self.warn(
                doc,
                ("PrepareEnvironment",),
                "ignored: targets prepares the environment unless "
                "environment.python.user_managed_dependencies is true",
            )
        if data.get("TrackedRun") is False:
            self.warn(doc, ("TrackedRun",), "ignored: targets records every run")
        if data.get("Description"):
            self.warn(doc, ("Description",), "not kept: runconfigs have no description")
        if data.get("SparkDependenciesFile"):
            self.spark_dependencies(doc, ("SparkDependenciesFile",), data["SparkDependenciesFile"])

    def spark_dependencies(self, doc: YamlDocument, src: KeyPath, value: Any) -> None:
        spark_file = resolve_file(
            str(value),
            self.source,
            doc.path,
            what="Spark dependencies file",
            key_path=dotted(src),
            line=doc.line_of(src),
        )
        spark_doc = parse_yaml(read_text(spark_file, "Spark dependencies"), spark_file)
        if spark_doc.data is None:
            return
        if not isinstance(spark_doc.data, dict):
            self.problem(spark_doc, (), f"expected a mapping, got {_describe(spark_doc.data)}")
            return
        for raw_key, item in spark_doc.data.items():
            key = str(raw_key)
            if item is None:
                continue
            if key == "configuration":
                self.put(("spark", "configuration"), item, spark_doc, (key,))
            elif key in ("repositories", "packages"):
                self.put(("environment", "spark", key), item, spark_doc, (key,))
            else:
                known = list(_SPARK_DEPENDENCIES.fields)
                self.warn(spark_doc, (key,), f"unknown key, ignored{suggest(key, known)}")


def load_v1_document(doc: YamlDocument, fmt: RunConfigFormat, project: Path) -> LoadedRunConfig:
    """Map a parsed v1 or Workbench file (``doc.data`` is a mapping) onto RunConfiguration.

    The source directory is the folder holding ``.azureml/``/``aml_config/`` when the file
    is in one, else ``project``. Raises ConfigError with every problem found.
    """
    file = doc.path
    source = file.parent.parent.resolve() if file.parent.name in CONFIG_DIRS else project
    mapper = _Mapper(doc, source)
    if fmt == "azureml-workbench":
        mapper.map_workbench()
    else:
        mapper.map_v1()
    problems = list(mapper.problems)
    for key_path, _line in doc.duplicates:
        mapper.warn(doc, key_path, "duplicate key; the last value is used")
    raise_problems(problems, file)
    try:
        config = RunConfiguration.model_validate(mapper.out)
    except ValidationError as exc:
        problems = validation_problems(exc, RunConfiguration, mapper.out, mapper.locate)
        raise_problems(problems, file)
        raise  # unreachable: problems is not empty
    conda_path: KeyPath = ("environment", "python", "conda_dependencies_file")
    conda_file, shown, conda_line = mapper.locate(conda_path)
    resolve_conda_file(config, source, conda_file, key_path=dotted(shown), line=conda_line)
    return LoadedRunConfig(config, file, source, fmt, tuple(mapper.warnings))
