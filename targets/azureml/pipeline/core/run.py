"""``azureml.pipeline.core.run``: :class:`PipelineRun` and :class:`StepRun`.

A pipeline run is the parent run the v2 pipeline driver follows; its steps are its child
runs in the ledger. Both are :class:`targets.runs.Run`, so ``wait_for_completion``,
``get_status``, ``cancel`` and the rest behave as for any run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from targets.errors import UsageError
from targets.runs import Run

__all__ = ["PipelineRun", "PortDataReference", "StepRun"]


class PortDataReference:
    """A step's PipelineData output, as v1's ``step_run.get_output_data(name)`` returns it:
    the folder ``outputs/<name>`` of the step's run (``path_on_datastore``)."""

    def __init__(self, run: StepRun, name: str) -> None:
        self.name = name
        self._run = run
        self.path_on_datastore = f"outputs/{name}"

    @property
    def path(self) -> Path:
        """The folder in the workspace."""
        return self._run.folder / "outputs" / self.name

    def download(
        self, local_path: str | Path, overwrite: bool = False, show_progress: bool = True
    ) -> str:
        """Copy the folder to ``local_path/outputs/<name>`` (v1 keeps the datastore path
        under ``local_path``); returns that folder."""
        dest = Path(local_path) / self.path_on_datastore
        if dest.exists() and not overwrite:
            raise UsageError(f"{dest} exists", hint="pass overwrite=True to replace it")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(self.path, dest)
        return str(dest)


class StepRun(Run):
    """One step of a pipeline run (a child run)."""

    def _parent_class(self) -> type[Run]:
        return PipelineRun

    @property
    def name(self) -> str:
        """The step's name."""
        return self.record.display_name or self.id

    @property
    def reused_from(self) -> str | None:
        """The earlier run whose outputs this step reused (``allow_reuse``), or None."""
        try:
            data = json.loads((self.folder / "run.json").read_text())
        except (OSError, ValueError):
            return None
        value = (data.get("origin") or {}).get("reused_from")
        return str(value) if value else None

    def get_output_data(self, name: str) -> PortDataReference:
        """The step's PipelineData output ``name``."""
        ref = PortDataReference(self, name)
        if not ref.path.is_dir():
            self.refresh()
        if not ref.path.is_dir():
            raise UsageError(
                f"step {self.name!r} has no output {name!r} (yet)",
                hint="wait for the step to complete; outputs are folders the step writes "
                "under outputs/",
            )
        return ref


class PipelineRun(Run):
    """The run of a submitted pipeline; its steps are its children."""

    def _child_class(self) -> type[Run]:
        return StepRun

    def get_steps(self) -> list[StepRun]:
        """The runs of the steps that started (a step not run because an earlier one
        failed has none), in the order they started."""
        records = self.workspace.ledger.list(parent_id=self.id, limit=None)
        return [StepRun(self.workspace, r.id) for r in sorted(records, key=lambda r: r.created_at)]

    def find_step_run(self, name: str) -> list[StepRun]:
        """The runs of the step named ``name``."""
        return [s for s in self.get_steps() if s.name == name]
