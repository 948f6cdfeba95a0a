"""``azureml.pipeline.steps.databricks_step``: :class:`DatabricksStep`.

A Python script from ``source_directory`` (``python_script_name``) runs on a target of
kind ``databricks`` (attached with ``DatabricksCompute.attach_configuration`` or
``targets attach --type databricks``), as a one-time Databricks run, exactly as
``targets run`` runs a script there. As v1 does, each input and output is passed to the
script as ``-<name> <path>`` after ``python_script_params``.

Refused, each with the reason: ``notebook_path`` (a notebook lives in the Databricks
workspace; the kind runs scripts), ``python_script_path`` (a DBFS path: the script is not
in a snapshot ``targets`` controls), ``main_class_name`` (JAR tasks), and egg, jar and
CRAN libraries. The step's cluster settings (``existing_cluster_id``, or
``spark_version``, ``node_type``, ``num_workers``/``min_workers``+``max_workers``, ...)
become the run's ``environment.databricks.cluster`` and win over the cluster given when
the target was attached, as in v1; a target attached without a cluster needs them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from targets.azureml.pipeline.core.builder import (
    PipelineData,
    PipelineStep,
    StepPlan,
    compute_name_of,
)
from targets.errors import UsageError
from targets.runconfig.model import DatabricksSection, RunConfiguration

__all__ = ["DatabricksStep"]

_CLUSTER_SETTINGS = (
    "existing_cluster_id",
    "spark_version",
    "node_type",
    "instance_pool_id",
    "num_workers",
    "min_workers",
    "max_workers",
    "spark_conf",
    "init_scripts",
    "cluster_log_dbfs_path",
    "permit_cluster_restart",
)


def _library(item: Any, field: str) -> dict[str, Any]:
    """A v1 library object (``PyPiLibrary(package=...)``, ``MavenLibrary(coordinates=...)``),
    a dict, or a string, as the Databricks API's library dict."""
    if isinstance(item, dict):
        return dict(item)
    if isinstance(item, str):
        return {field: item}
    found = {
        key: getattr(item, key)
        for key in (field, "repo", "repository", "exclusions")
        if getattr(item, key, None) is not None
    }
    if field not in found:
        raise UsageError(f"library {item!r} has no {field!r}")
    if "repository" in found:
        found["repo"] = found.pop("repository")
    return found


class DatabricksStep(PipelineStep):
    """Run a Python script on a Databricks target (see the module doc)."""

    def __init__(
        self,
        name: str,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        existing_cluster_id: str | None = None,
        spark_version: str | None = None,
        node_type: str | None = None,
        instance_pool_id: str | None = None,
        num_workers: int | None = None,
        min_workers: int | None = None,
        max_workers: int | None = None,
        spark_env_variables: Mapping[str, str] | None = None,
        spark_conf: Mapping[str, str] | None = None,
        init_scripts: Sequence[str] | None = None,
        cluster_log_dbfs_path: str | None = None,
        notebook_path: str | None = None,
        notebook_params: Mapping[str, Any] | None = None,
        python_script_path: str | None = None,
        python_script_params: Sequence[Any] | None = None,
        main_class_name: str | None = None,
        jar_params: Sequence[Any] | None = None,
        python_script_name: str | None = None,
        source_directory: str | Path | None = None,
        hash_paths: Sequence[str] | None = None,
        run_name: str | None = None,
        timeout_seconds: int | None = None,
        runconfig: RunConfiguration | None = None,
        maven_libraries: Sequence[Any] | None = None,
        pypi_libraries: Sequence[Any] | None = None,
        egg_libraries: Sequence[Any] | None = None,
        jar_libraries: Sequence[Any] | None = None,
        rcran_libraries: Sequence[Any] | None = None,
        compute_target: Any = None,
        allow_reuse: bool = True,
        version: str | None = None,
        permit_cluster_restart: bool | None = None,
    ) -> None:
        given = [
            key
            for key, value in (
                ("notebook_path", notebook_path),
                ("python_script_path", python_script_path),
                ("python_script_name", python_script_name),
                ("main_class_name", main_class_name),
            )
            if value
        ]
        if len(given) != 1:
            raise UsageError(
                f"DatabricksStep {name!r}: give exactly one of notebook_path, "
                f"python_script_path, python_script_name and main_class_name (got "
                f"{', '.join(given) or 'none'})"
            )
        how = "export the code as a .py file into source_directory and give python_script_name"
        if notebook_path:
            raise UsageError(
                f"DatabricksStep {name!r}: notebook_path is not supported: targets runs "
                "Python scripts on Databricks, not workspace notebooks",
                hint=f"{how}; notebook_params become python_script_params (read them with "
                "argparse instead of dbutils.widgets)",
            )
        if python_script_path:
            raise UsageError(
                f"DatabricksStep {name!r}: python_script_path ({python_script_path}) is not "
                "supported: targets ships the step's script in its snapshot",
                hint="copy the script into a local folder, give it as source_directory "
                "and name the script with python_script_name",
            )
        if main_class_name:
            raise UsageError(
                f"DatabricksStep {name!r}: JAR tasks (main_class_name) are not supported",
                hint="run a Python script with python_script_name",
            )
        for label, libraries in (
            ("egg_libraries", egg_libraries),
            ("jar_libraries", jar_libraries),
            ("rcran_libraries", rcran_libraries),
        ):
            if libraries:
                raise UsageError(
                    f"DatabricksStep {name!r}: {label} are not supported",
                    hint="use pypi_libraries or maven_libraries",
                )
        if source_directory is None:
            raise UsageError(
                f"DatabricksStep {name!r}: python_script_name needs source_directory "
                "(the folder holding the script)"
            )
        if compute_target is None:
            raise UsageError(
                f"DatabricksStep {name!r} needs compute_target: the Databricks target "
                "(ComputeTarget(workspace=ws, name=NAME) or its name)"
            )
        if runconfig is not None and not isinstance(runconfig, RunConfiguration):
            raise UsageError(
                f"runconfig must be a RunConfiguration, got {type(runconfig).__name__}"
            )
        for item in inputs or []:
            if not isinstance(item, PipelineData):
                raise UsageError(
                    f"DatabricksStep {name!r}: input {item!r} is not a PipelineData",
                    hint="pass another step's PipelineData; put local files in source_directory",
                )
        values = locals()
        self._cluster = {
            key: values[key]
            for key in _CLUSTER_SETTINGS
            if values[key] is not None and key != "permit_cluster_restart"
        }
        if self._cluster:
            from targets.compute.databricks import run_cluster

            try:
                run_cluster(self._cluster)  # a bad cluster is refused before anything runs
            except UsageError as exc:
                raise UsageError(f"DatabricksStep {name!r}: {exc}", hint=exc.hint) from None
        if permit_cluster_restart is not None:
            warnings.warn(
                f"DatabricksStep {name!r}: permit_cluster_restart not applied (the Jobs API "
                "starts the cluster when it is stopped)",
                stacklevel=2,
            )
        super().__init__(name, inputs=inputs, outputs=outputs, allow_reuse=allow_reuse)
        self.python_script_name = python_script_name
        self.source_directory = str(source_directory)
        self.python_script_params = list(python_script_params or [])
        self.compute_target = compute_target
        self.run_name = run_name
        self._spark_env = dict(spark_env_variables or {})
        self._timeout = timeout_seconds
        self._runconfig = runconfig
        self._pypi = [_library(i, "package") for i in pypi_libraries or []]
        self._maven = [_library(i, "coordinates") for i in maven_libraries or []]

    def _plan(self, workspace: Any, parameters: Mapping[str, Any]) -> StepPlan:
        compute = compute_name_of(self.compute_target)
        from targets.errors import TargetsError

        try:
            kind = workspace.target_record(compute).kind
        except TargetsError as exc:
            raise UsageError(f"step {self.name!r}: {exc}", hint=exc.hint) from exc
        if kind != "databricks":
            raise UsageError(
                f"DatabricksStep {self.name!r}: the target {compute!r} is of kind {kind!r}, "
                "not databricks",
                hint="attach a Databricks workspace (DatabricksCompute.attach_configuration) "
                "and pass it as compute_target, or use a PythonScriptStep",
            )
        if self._runconfig is not None:
            config = self._runconfig.model_copy(deep=True)
        else:
            config = RunConfiguration()
            config.environment.python.user_managed_dependencies = True  # the cluster's Python
        arguments = self._arguments_text(self.python_script_params, parameters)
        for data in self._data_inputs():
            arguments += [f"-{data.name}", "${{inputs." + data.name + "}}"]
        for data in self.outputs:
            arguments += [f"-{data.name}", "${{outputs." + data.name + "}}"]
        config.script = self.python_script_name
        config.command = None
        config.arguments = arguments
        config.environment_variables = {
            **config.environment_variables,
            **self._spark_env,
            "AZUREML_SCRIPT_DIRECTORY_NAME": ".",
        }
        if self._timeout:
            config.max_run_duration_seconds = self._timeout
        if self._pypi or self._maven or self._cluster:
            section = config.environment.databricks or DatabricksSection()
            if self._cluster:  # the step's cluster wins over the target's (v1's order)
                section.cluster = dict(self._cluster)
            section.pypi_libraries = [*section.pypi_libraries, *self._pypi]
            section.maven_libraries = [*section.maven_libraries, *self._maven]
            config.environment.databricks = section
        return StepPlan(
            kind="databricks",
            runconfig=config,
            source_dir=Path(self.source_directory),
            compute=compute,
        )
