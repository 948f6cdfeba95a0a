"""``azureml.train.hyperdrive.run``: ``HyperDriveRun``, the parent run of a HyperDrive
sweep, with v1's ways to read its trials.

It is a :class:`targets.runs.Run` (status, ``wait_for_completion(show_output=True)``
follows the driver's log, ``cancel()`` stops the sweep and its running trials). Its
trials are ordinary runs named ``<id>_<n>``; their metrics are what the training script
logged with ``Run.get_context().log(...)`` (or MLflow), read from each trial's
collected MLflow store.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from targets.errors import TargetsError, UsageError
from targets.ledger import RunRecord
from targets.runs import Run
from targets.workspace import Workspace

if TYPE_CHECKING:
    from targets.azureml.train.hyperdrive._submit import TrialSpec
    from targets.azureml.train.hyperdrive.runconfig import HyperDriveConfig
    from targets.experiment import Experiment

__all__ = ["HyperDriveRun"]

_TERMINAL = ("Completed", "Failed", "Canceled")


def trial_metrics(run: Run) -> dict[str, Any]:
    """What a trial logged, as v1's ``get_metrics()`` shows it: one value, or the list of
    values of a metric logged several times (numbers only)."""
    from targets.tracking import read_run_metrics

    found: dict[str, Any] = {}
    for mlflow_run in read_run_metrics(run.folder).get("runs", []):
        if mlflow_run.get("child"):
            continue  # run.child_run() of the trial: not the trial's own metrics
        for name, values in mlflow_run.get("history", {}).items():
            if name not in found:
                found[name] = values[0] if len(values) == 1 else list(values)
    return found


class HyperDriveRun(Run):
    """The parent run of a HyperDrive sweep.

    ``HyperDriveRun(experiment, run_id)`` (an :class:`~targets.experiment.Experiment` or
    a workspace) opens one started earlier; ``Experiment.submit(hyperdrive_config)``
    returns one. Raises UsageError when ``run_id`` is not a HyperDrive run.
    """

    RUN_TYPE = "hyperdrive"

    def __init__(
        self,
        experiment: Experiment | Workspace,
        run_id: str,
        hyperdrive_config: HyperDriveConfig | None = None,
    ) -> None:
        workspace = experiment if isinstance(experiment, Workspace) else experiment.workspace
        super().__init__(workspace, run_id)
        self._spec = self._read_spec()
        self._hyperdrive_config = hyperdrive_config

    def _read_spec(self) -> TrialSpec:
        from targets.azureml.train.hyperdrive._submit import TrialSpec

        try:
            info = json.loads((self.folder / "run.json").read_text())
        except (OSError, ValueError):
            info = {}
        if not isinstance(info, dict) or "hyperdrive" not in info:
            raise UsageError(
                f"run {self.id} is not a HyperDrive run",
                hint="HyperDriveRun(experiment, run_id) opens the run that "
                "Experiment.submit(HyperDriveConfig(...)) returned",
            )
        return TrialSpec.model_validate(info["hyperdrive"])

    @property
    def hyperdrive_config(self) -> HyperDriveConfig:
        """The configuration of this run (rebuilt from the run's record when the run was
        opened by id)."""
        if self._hyperdrive_config is None:
            from targets.azureml.train.hyperdrive._rehydrate import config_of

            self._hyperdrive_config = config_of(self._spec)
        return self._hyperdrive_config

    # -- trials ----------------------------------------------------------------------------

    def _trials(self) -> list[Run]:
        """The trials started so far, in the order they were started."""
        records = self.workspace.ledger.list(parent_id=self.id, limit=None)

        def number(record: RunRecord) -> tuple[int, str]:
            tail = record.id.removeprefix(f"{self.id}_")
            return (int(tail), record.id) if tail.isdigit() else (1 << 30, record.id)

        return [Run(self.workspace, r.id) for r in sorted(records, key=number)]

    @staticmethod
    def _status(run: Run) -> str:
        """The trial's status, collecting it if it ended (a target that cannot be reached
        leaves the last recorded status)."""
        with contextlib.suppress(TargetsError):
            run.refresh()
        run.close()
        return run.record.status

    def get_hyperparameters(self) -> dict[str, str]:
        """Trial id -> the JSON of the values it ran with (keys as given in the search
        space), as v1."""
        found: dict[str, str] = {}
        for run in self._trials():
            try:
                origin = json.loads((run.folder / "run.json").read_text()).get("origin") or {}
            except (OSError, ValueError):
                continue
            found[run.id] = json.dumps(origin.get("hyperparameters") or {})
        return found

    def get_metrics(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Trial id -> that trial's metrics (``{name: value or [values]}``), as v1's
        ``HyperDriveRun.get_metrics()``. Arguments are accepted and unused (v1's takes
        none)."""
        found: dict[str, Any] = {}
        for run in self._trials():
            self._status(run)
            found[run.id] = trial_metrics(run)
        return found

    def get_children_sorted_by_primary_metric(
        self, top: int = 0, reverse: bool = False, discard_no_metric: bool = False
    ) -> list[dict[str, Any]]:
        """The trials, best first by their best value of the primary metric: dicts of
        ``run_id``, ``hyperparameters`` (JSON text), ``best_primary_metric``, ``status``.
        Trials without the metric come last (or not at all with ``discard_no_metric``);
        ``reverse`` turns the order of the others; ``top`` > 0 keeps that many."""
        if isinstance(top, bool) or not isinstance(top, int) or top < 0:
            raise UsageError(f"top must be 0 or a positive whole number, got {top!r}")
        maximize = self._spec.goal == "maximize"
        pick = max if maximize else min
        hyperparameters = self.get_hyperparameters()
        with_metric: list[dict[str, Any]] = []
        without: list[dict[str, Any]] = []
        for run in self._trials():
            status = self._status(run)
            value = trial_metrics(run).get(self._spec.primary_metric)
            best = pick(value) if isinstance(value, list) and value else value
            child = {
                "run_id": run.id,
                "hyperparameters": hyperparameters.get(run.id),
                "best_primary_metric": best,
                "status": status,
            }
            if best is not None:
                with_metric.append(child)
            elif not discard_no_metric:
                without.append(child)
        with_metric.sort(key=lambda c: c["best_primary_metric"], reverse=maximize != reverse)
        ordered = with_metric + without
        return ordered[:top] if top else ordered

    def get_best_run_by_primary_metric(
        self,
        include_failed: bool = True,
        include_canceled: bool = True,
        include_resume_from_runs: bool = True,
    ) -> Run | None:
        """The trial with the best value of the primary metric (ties: the first), or None
        when no trial logged it."""
        for child in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            status = child["status"]
            if (
                status not in ("Failed", "Canceled")
                or (include_failed and status == "Failed")
                or (include_canceled and status == "Canceled")
            ):
                return Run(self.workspace, child["run_id"])
        return None

    # -- lifecycle -------------------------------------------------------------------------

    def cancel(self, timeout: float = 60.0) -> RunRecord:
        """Stop the sweep: no new trial starts and the running ones are canceled. Blocks
        until the driver has recorded the end and the trials it canceled have ended (at
        most ``timeout`` seconds in all). Idempotent."""
        record = super().cancel()
        deadline = time.monotonic() + timeout
        while record.status not in _TERMINAL and time.monotonic() < deadline:
            time.sleep(0.2)
            record = self.refresh()
        for trial in self._trials():
            # The driver asked each running trial to stop; its target reports the end
            # once the trial's processes are gone.
            while self._status(trial) not in _TERMINAL and time.monotonic() < deadline:
                time.sleep(0.2)
        return record

    def fail(self, *args: Any, **kwargs: Any) -> None:
        """Not supported for a HyperDrive run (as in v1): cancel it instead."""
        raise UsageError(
            "fail() is not supported for a HyperDrive run", hint="use hyperdrive_run.cancel()"
        )
