"""``azureml.pipeline.steps.python_script_step``: :class:`PythonScriptStep`."""

from __future__ import annotations

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
from targets.runconfig.model import RunConfiguration

__all__ = ["PythonScriptStep"]


class PythonScriptStep(PipelineStep):
    """Run ``script_name`` from ``source_directory`` with ``arguments`` on
    ``compute_target`` (a target name or a v1 ``ComputeTarget``; default: the
    runconfig's target, else ``local``), in the environment of ``runconfig`` (a
    ``RunConfiguration``). ``params`` become environment variables ``AML_PARAMETER_<name>``
    as in v1. ``inputs`` and ``outputs`` are PipelineData."""

    def __init__(
        self,
        script_name: str,
        name: str | None = None,
        arguments: Sequence[Any] | None = None,
        compute_target: Any = None,
        runconfig: RunConfiguration | None = None,
        runconfig_pipeline_params: Mapping[str, Any] | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        params: Mapping[str, Any] | None = None,
        source_directory: str | Path | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(script_name, str) or not script_name:
            raise UsageError(f"PythonScriptStep needs a script_name, got {script_name!r}")
        if runconfig is not None and not isinstance(runconfig, RunConfiguration):
            raise UsageError(
                f"runconfig must be a RunConfiguration, got {type(runconfig).__name__}"
            )
        if runconfig_pipeline_params:
            raise UsageError(
                "runconfig_pipeline_params is not supported",
                hint="set the RunConfiguration's fields before building the step",
            )
        for item in inputs or []:
            if not isinstance(item, PipelineData):
                raise UsageError(
                    f"step {name or script_name!r}: input {item!r} is not a PipelineData",
                    hint="pass another step's PipelineData; for a local file or folder, "
                    "put it in the source directory or pass its path as an argument",
                )
        super().__init__(
            name or script_name,
            inputs=inputs,
            outputs=outputs,
            arguments=arguments,
            allow_reuse=allow_reuse,
        )
        self.script_name = script_name
        self.source_directory = str(source_directory) if source_directory is not None else "."
        self.runconfig = runconfig.model_copy(deep=True) if runconfig else RunConfiguration()
        self.compute_target = compute_target
        self.params = dict(params or {})

    def _plan(self, workspace: Any, parameters: Mapping[str, Any]) -> StepPlan:
        config = self.runconfig.model_copy(deep=True)
        config.script = self.script_name
        config.command = None
        config.arguments = self._arguments_text(self._arguments, parameters)
        variables = dict(config.environment_variables)
        for key, value in self.params.items():
            if isinstance(value, PipelineData):
                raise UsageError(f"step {self.name!r}: params[{key!r}] cannot be a PipelineData")
            variables[f"AML_PARAMETER_{key}"] = self._argument_text(value, parameters)
        config.environment_variables = variables
        return StepPlan(
            kind="python",
            runconfig=config,
            source_dir=Path(self.source_directory),
            compute=compute_name_of(self.compute_target, config.target),
        )
