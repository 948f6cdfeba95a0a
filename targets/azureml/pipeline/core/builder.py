"""``azureml.pipeline.core.builder``: the pieces a v1 pipeline is built from.

- :class:`PipelineData`: a folder one step writes and later steps read. Under ``targets``
  it is the producing step's ``outputs/<name>`` folder; a consuming step receives a copy
  of it in its snapshot (``_inputs/<name>``), on whatever target it runs.
- :class:`PipelineParameter`: a value given when the pipeline is submitted.
- :class:`StepSequence`: steps that run one after another without passing data.
- :class:`PipelineStep`: what every step class shares (name, inputs, outputs, reuse,
  ``run_after``); each step class says how it runs by returning a :class:`StepPlan`.

Nothing here touches the workspace: building a pipeline does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from targets.errors import UsageError

if TYPE_CHECKING:
    from targets.runconfig.model import RunConfiguration

__all__ = [
    "PipelineData",
    "PipelineParameter",
    "PipelineStep",
    "StepPlan",
    "StepSequence",
    "compute_name_of",
]

_PORT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


class PipelineData:
    """Intermediate data: a folder written by the step that lists it in ``outputs`` and
    read by the steps that list it in ``inputs`` (or pass it in ``arguments``).

    In a step's arguments it becomes a path relative to the run's working folder:
    ``outputs/<name>`` for the producing step (create it, as v1 scripts do with
    ``os.makedirs(path, exist_ok=True)``), ``_inputs/<name>`` for a consumer.
    ``datastore``, ``output_mode``, ``output_path_on_compute`` and the like are
    accepted and not used: the data travels with the runs' snapshots and outputs."""

    def __init__(
        self,
        name: str,
        datastore: Any = None,
        output_name: str | None = None,
        output_mode: str = "mount",
        output_path_on_compute: str | None = None,
        output_overwrite: bool | None = None,
        data_type: str | None = None,
        is_directory: bool | None = None,
        pipeline_output_name: str | None = None,
        training_output: Any = None,
    ) -> None:
        if not isinstance(name, str) or not _PORT.fullmatch(name):
            raise UsageError(
                f"invalid PipelineData name {name!r}: use letters, digits and underscores, "
                "starting with a letter or underscore",
            )
        self.name = name
        self.datastore = datastore
        self.output_mode = output_mode
        self._producers: list[PipelineStep] = []

    def __repr__(self) -> str:
        return f"PipelineData(name={self.name!r})"

    # v1 spells how a consumer sees the data; here every form is the same folder.
    def as_dataset(self) -> PipelineData:
        """The folder as a file dataset (v1's ``PipelineOutputFileDataset``): the same folder."""
        return self

    def as_mount(self) -> PipelineData:
        return self

    def as_download(
        self, path_on_compute: str | None = None, overwrite: bool = False
    ) -> PipelineData:
        return self

    def as_input(self, input_name: str | None = None) -> PipelineData:
        return self


class PipelineParameter:
    """A value of the pipeline, set at submission with
    ``submit(pipeline, pipeline_parameters={name: value})``, else ``default_value``. In a
    step's arguments it becomes the value's text."""

    def __init__(self, name: str, default_value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise UsageError(f"invalid PipelineParameter name {name!r}")
        self.name = name
        self.default_value = default_value

    def __repr__(self) -> str:
        return f"PipelineParameter(name={self.name!r}, default_value={self.default_value!r})"


@dataclass
class StepPlan:
    """How one step runs: what the submitter of :mod:`targets.azureml.pipeline._submit`
    turns into a run. ``runconfig.arguments`` hold ``${{inputs.<name>}}`` and
    ``${{outputs.<name>}}`` where PipelineData paths go."""

    kind: str
    runconfig: RunConfiguration
    source_dir: Path
    compute: str
    added_files: dict[str, str] = field(default_factory=dict)
    """Files ``targets`` adds to the step's snapshot (name -> text)."""
    local_inputs: dict[str, Path] = field(default_factory=dict)
    """Inputs that are local folders or files (port -> path), not another step's output."""


def compute_name_of(compute_target: Any, default: str | None = None) -> str:
    """A step's ``compute_target``: a name, or a v1 ``ComputeTarget`` (its ``.name``)."""
    if compute_target is None:
        return default or "local"
    if isinstance(compute_target, str):
        return compute_target
    name = getattr(compute_target, "name", None)
    if isinstance(name, str):
        return name
    raise UsageError(
        f"compute_target {compute_target!r} is neither a target name nor a ComputeTarget",
        hint="pass ComputeTarget(workspace=ws, name=NAME) or the name of an attached target",
    )


class PipelineStep:
    """What every step shares. Subclasses implement :meth:`_plan`."""

    def __init__(
        self,
        name: str,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        arguments: Sequence[Any] | None = None,
        allow_reuse: bool = True,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"a step needs a name, got {name!r}")
        self.name = name
        self.allow_reuse = bool(allow_reuse)
        self._arguments = list(arguments or [])
        outs = list(outputs or [])
        for out in outs:
            if not isinstance(out, PipelineData):
                raise UsageError(
                    f"step {name!r}: output {out!r} is not a PipelineData",
                    hint="list PipelineData('name') objects in outputs",
                )
        self._outputs: list[PipelineData] = outs
        self._inputs: list[Any] = list(inputs or [])
        # PipelineData passed only in the arguments is an input too, as in v1.
        for arg in self._arguments:
            if isinstance(arg, PipelineData) and arg not in outs and arg not in self._inputs:
                self._inputs.append(arg)
        for out in outs:
            out._producers.append(self)
        self._after: list[PipelineStep] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def inputs(self) -> list[Any]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[PipelineData]:
        return list(self._outputs)

    def run_after(self, step: PipelineStep) -> None:
        """Run this step only after ``step`` completed (no data passes between them)."""
        if not isinstance(step, PipelineStep):
            raise UsageError(f"run_after takes a step, got {step!r}")
        self._after.append(step)

    def _data_inputs(self) -> list[PipelineData]:
        return [i for i in self._inputs if isinstance(i, PipelineData)]

    def _argument_text(self, value: Any, parameters: Mapping[str, Any]) -> str:
        """One argument as the script receives it (PipelineData as a placeholder)."""
        if isinstance(value, PipelineData):
            scope = "outputs" if value in self._outputs else "inputs"
            return "${{" + f"{scope}.{value.name}" + "}}"
        if isinstance(value, PipelineParameter):
            return str(parameters.get(value.name, value.default_value))
        if isinstance(value, str | int | float | bool | Path):
            return str(value)
        raise UsageError(
            f"step {self.name!r}: argument {value!r} ({type(value).__name__}) cannot be "
            "passed to a script",
            hint="pass strings, numbers, PipelineData or PipelineParameter",
        )

    def _arguments_text(self, values: Iterable[Any], parameters: Mapping[str, Any]) -> list[str]:
        return [self._argument_text(v, parameters) for v in values]

    def _plan(self, workspace: Any, parameters: Mapping[str, Any]) -> StepPlan:
        """How this step runs. Raises UsageError for a step that cannot run here."""
        raise NotImplementedError


class StepSequence:
    """Steps that run in the given order: each starts after the previous one completed.
    An item may also be a list of steps that run side by side."""

    def __init__(
        self, steps: Sequence[PipelineStep | Sequence[PipelineStep]] | None = None
    ) -> None:
        self._groups: list[list[PipelineStep]] = []
        for item in steps or []:
            group = [item] if isinstance(item, PipelineStep) else list(item)
            for step in group:
                if not isinstance(step, PipelineStep):
                    raise UsageError(f"StepSequence takes steps, got {step!r}")
            self._groups.append(group)
        for before, after in zip(self._groups, self._groups[1:], strict=False):
            for step in after:
                for earlier in before:
                    if earlier not in step._after:
                        step._after.append(earlier)

    @property
    def steps(self) -> list[PipelineStep]:
        return [s for group in self._groups for s in group]
