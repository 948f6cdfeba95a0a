"""``azureml.pipeline.steps.parallel_run_step``: :class:`ParallelRunStep`.

The step runs the parallel driver (:mod:`targets.parallel.driver`, shared with v2's
``type: parallel`` steps and added to the step's snapshot as ``_targets_parallel_run.py``)
on the step's target: it cuts the input folders' files into mini-batches and calls the
entry script's ``init()`` / ``run(mini_batch)`` in ``process_count_per_node`` worker
processes; see that module.
"""

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
from targets.azureml.pipeline.steps.parallel_run_config import ParallelRunConfig
from targets.errors import UsageError
from targets.parallel import DRIVER_NAME, driver_text
from targets.runconfig.model import RunConfiguration

__all__ = ["ParallelRunStep"]

DRIVER = DRIVER_NAME


class ParallelRunStep(PipelineStep):
    """Run ``parallel_run_config``'s entry script over the files of ``inputs`` (PipelineData
    of earlier steps, or local folders or files given as paths). ``output`` (a
    PipelineData) receives the ``append_row`` file; without it the file goes to the
    step's ``outputs/``. ``side_inputs`` are shipped too, not cut into mini-batches; pass
    them to the script in ``arguments``."""

    def __init__(
        self,
        name: str,
        parallel_run_config: ParallelRunConfig,
        inputs: Sequence[Any],
        output: PipelineData | None = None,
        side_inputs: Sequence[Any] | None = None,
        arguments: Sequence[Any] | None = None,
        allow_reuse: bool = True,
    ) -> None:
        if not isinstance(parallel_run_config, ParallelRunConfig):
            raise UsageError(f"ParallelRunStep {name!r} needs a ParallelRunConfig")
        if output is not None and not isinstance(output, PipelineData):
            raise UsageError(f"ParallelRunStep {name!r}: output must be a PipelineData")
        items = list(inputs or [])
        if not items:
            raise UsageError(f"ParallelRunStep {name!r} needs inputs: the data to process")
        self._ports: list[tuple[str, Any]] = []
        self._local: dict[str, Path] = {}
        for index, item in enumerate([*items, *(side_inputs or [])]):
            if isinstance(item, PipelineData):
                port = item.name
            elif isinstance(item, str | Path):
                port = f"input{index}"
                self._local[port] = Path(item)
            else:
                raise UsageError(
                    f"ParallelRunStep {name!r}: input {item!r} is neither a PipelineData nor "
                    "a local folder",
                    hint="Azure ML datasets need the service: pass the folder's path, or "
                    "another step's PipelineData",
                )
            self._ports.append((port, item))
        self._batched = [port for port, _ in self._ports[: len(items)]]
        super().__init__(
            name,
            inputs=[i for i in [*items, *(side_inputs or [])] if isinstance(i, PipelineData)],
            outputs=[output] if output is not None else [],
            arguments=arguments,
            allow_reuse=allow_reuse,
        )
        self.parallel_run_config = parallel_run_config
        self.output = output

    def _plan(self, workspace: Any, parameters: Mapping[str, Any]) -> StepPlan:
        prc = self.parallel_run_config
        config = RunConfiguration()
        if prc.environment is not None:
            config.environment = prc.environment.model_copy(deep=True)
        config.environment_variables = dict(prc.environment_variables)
        output = "${{outputs." + self.output.name + "}}" if self.output else "outputs"
        arguments = [
            "--entry_script", prc.entry_script,
            "--output", output,
            "--mini_batch_size", str(prc.mini_batch_size),
            "--process_count_per_node", str(prc.process_count_per_node or 0),
            "--error_threshold", str(prc.error_threshold),
            "--run_max_try", str(prc.run_max_try),
            "--timeout", str(prc.run_invocation_timeout),
            "--output_action", prc.output_action,
            "--append_row_file_name", prc.append_row_file_name,
        ]  # fmt: skip
        for port in self._batched:
            arguments += ["--input", "${{inputs." + port + "}}"]
        config.script = DRIVER
        config.arguments = [*arguments, "--", *self._arguments_text(self._arguments, parameters)]
        source = Path(prc.source_directory)
        if not (source / prc.entry_script).is_file():
            raise UsageError(
                f"ParallelRunStep {self.name!r}: the entry script {prc.entry_script!r} does "
                f"not exist in {source.resolve()}"
            )
        return StepPlan(
            kind="parallel",
            runconfig=config,
            source_dir=source,
            compute=compute_name_of(prc.compute_target),
            added_files={DRIVER: driver_text()},
            local_inputs=dict(self._local),
        )
