"""Which reader a run configuration file needs (:func:`detect_format`).

First rule that matches wins:

1. A ``*.compute`` file is refused: it describes a compute target, not a run. So are a
   conda environment file and a Workbench Spark dependencies file, with a hint.
2. Workbench: every top-level key starts with an upper-case letter and at least one of
   them is a known Workbench key (``ArgumentVector``, ``Target``, ``Framework``, ...).
3. Azure ML v1: the file name ends in ``.runconfig``; or it has no extension and sits
   directly in ``.azureml/`` or ``aml_config/`` (where the SDK writes ``.azureml/<name>``);
   or one of its structural keys (top level, the keys of a top-level section, the keys of
   ``environment.python``/``docker``/``spark``/``databricks``) is a camelCase key the
   SDK knows (``nodeCount``, ``baseImage``, ...); or it has a top-level key that only the
   SDK has (``auto_prepare_environment``, ``data_references``, ``paralleltask``, ...).
4. Anything else is our format.

Design choice: content wins over location for files with a ``.yml``/``.yaml``
extension, so one of our files kept in ``.azureml/`` still reads as ours; camelCase is
decided per known key, so a camelCase typo in our format (``scriptName``) is reported as
an unknown key instead of silently switching readers. The SDK's key tables live with the
v1 reader (:mod:`targets.runconfig.azureml_v1`); this module only asks them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from targets.errors import ConfigError
from targets.runconfig.azureml_v1 import KNOWN_V1_CAMEL_KEYS, WORKBENCH_KEYS
from targets.runconfig.files import CONFIG_DIRS
from targets.runconfig.loaded import RunConfigFormat

__all__ = ["detect_format"]

# Top-level keys (snake_case spelling) that exist in Azure ML v1 files and not in ours.
_V1_ONLY_TOP_KEYS = frozenset(
    {
        "auto_prepare_environment",
        "data_references",
        "output_data",
        "datacaches",
        "source_directory_data_store",
        "paralleltask",
        "kubernetescompute",
        "credential_passthrough",
        "application_endpoints",
        "auto_cluster_compute_specification",
    }
)
_CONDA_KEYS = frozenset({"name", "channels", "dependencies", "prefix", "variables"})
_SPARK_DEPENDENCY_KEYS = frozenset({"configuration", "repositories", "packages"})


def _is_camel(key: str) -> bool:
    return key[:1].islower() and any(c.isupper() for c in key) and "_" not in key


def _structural_keys(data: dict[Any, Any]) -> Iterator[str]:
    for key, value in data.items():
        yield str(key)
        if not isinstance(value, dict) or str(key) in ("environmentVariables",):
            continue
        for sub_key, sub_value in value.items():
            yield str(sub_key)
            nested = str(sub_key) in ("python", "docker", "spark", "databricks")
            if str(key) == "environment" and nested and isinstance(sub_value, dict):
                yield from (str(k) for k in sub_value)


def detect_format(path: Path, data: Any) -> RunConfigFormat:
    """Which reader ``data`` (read from ``path``) needs; see the module docstring."""
    if path.suffix == ".compute":
        raise ConfigError(
            "this file describes a compute target (an Azure ML Workbench .compute file), not a run",
            path=str(path),
            hint="attach the machine with `targets attach NAME --type KIND ...` and pass "
            "the .runconfig file instead",
        )
    if isinstance(data, dict) and data:
        keys = [str(k) for k in data]
        if "dependencies" in keys and set(keys) <= _CONDA_KEYS:
            raise ConfigError(
                "this is a conda environment file, not a run configuration",
                path=str(path),
                hint="name it in a runconfig: environment.python.conda_dependencies_file",
            )
        if set(keys) <= _SPARK_DEPENDENCY_KEYS:
            raise ConfigError(
                "this is a Workbench Spark dependencies file, not a run configuration",
                path=str(path),
                hint="it is read through the SparkDependenciesFile key of a .runconfig",
            )
        if all(k[:1].isupper() for k in keys) and WORKBENCH_KEYS.intersection(keys):
            return "azureml-workbench"
    if path.suffix == ".runconfig":
        return "azureml-v1"
    if path.suffix == "" and path.parent.name in CONFIG_DIRS:
        return "azureml-v1"
    if isinstance(data, dict):
        for key in _structural_keys(data):
            if _is_camel(key) and key in KNOWN_V1_CAMEL_KEYS:
                return "azureml-v1"
        if any(str(k) in _V1_ONLY_TOP_KEYS for k in data):
            return "azureml-v1"
        docker = data.get("docker")
        if isinstance(docker, dict) and "use_docker" in docker:
            return "azureml-v1"
    return "targets"
