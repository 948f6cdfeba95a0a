"""The Python API with the names Azure ML v1 users know.

>>> from targets import Workspace, Experiment, ScriptRunConfig, RunConfiguration
>>> ws = Workspace.from_dir(".")
>>> rc = RunConfiguration(); rc.environment.python.user_managed_dependencies = True
>>> src = ScriptRunConfig(source_directory=".", script="train.py", run_config=rc)
>>> run = Experiment(ws, "demo").submit(src)
>>> run.wait_for_completion(show_output=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from targets.compute.base import ComputeTarget
from targets.errors import UsageError
from targets.ledger import RunRecord
from targets.runconfig.model import EnvironmentSection, RunConfiguration
from targets.runs import Run, submit_run
from targets.workspace import Workspace, sanitize_experiment

__all__ = ["Environment", "Experiment", "ScriptRunConfig"]


class Environment(EnvironmentSection):
    """An environment definition, as Azure ML v1's ``Environment``."""

    def __init__(self, name: str | None = None, **data: Any) -> None:
        super().__init__(name=name, **data)

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str | Path) -> Environment:
        """An environment whose dependencies are the conda file at ``file_path``."""
        from targets.runconfig.conda import load_conda_file

        env = cls(name)
        env.python.conda_dependencies = load_conda_file(Path(file_path))
        return env

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str | Path) -> Environment:
        """An environment with the packages of a ``requirements.txt``."""
        from targets.runconfig.model import CondaSpec, PipBlock

        lines = []
        for raw in Path(file_path).read_text().splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
        env = cls(name)
        env.python.conda_dependencies = CondaSpec(dependencies=[PipBlock(pip=lines)])
        return env


class ScriptRunConfig:
    """What to run (a script with arguments, or a command) from which folder, and how."""

    def __init__(
        self,
        source_directory: str | Path = ".",
        script: str | None = None,
        arguments: Sequence[Any] | None = None,
        run_config: RunConfiguration | None = None,
        compute_target: str | ComputeTarget | None = None,
        environment: EnvironmentSection | None = None,
        command: str | list[str] | None = None,
        max_run_duration_seconds: int | None = None,
        node_count: int | None = None,
    ) -> None:
        self.source_directory = str(source_directory)
        self.run_config = (
            run_config.model_copy(deep=True) if run_config is not None else RunConfiguration()
        )
        rc = self.run_config
        if script is not None:
            rc.script = script
        if arguments is not None:
            rc.arguments = [str(a) for a in arguments]
        if command is not None:
            rc.command = command
        if compute_target is not None:
            rc.target = (
                compute_target.name
                if isinstance(compute_target, ComputeTarget)
                else str(compute_target)
            )
        if environment is not None:
            rc.environment = environment
        if max_run_duration_seconds is not None:
            rc.max_run_duration_seconds = max_run_duration_seconds
        if node_count is not None:
            rc.node_count = node_count

    @property
    def script(self) -> str | None:
        return self.run_config.script

    @property
    def arguments(self) -> list[str]:
        return self.run_config.arguments


class Experiment:
    """A named group of runs in a workspace."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        cleaned = sanitize_experiment(name)
        if not cleaned or cleaned != name:
            raise UsageError(
                f"invalid experiment name {name!r}: use letters, digits, '-' and '_' "
                "(at most 64 characters)"
            )
        self.workspace = workspace
        self.name = name

    def __repr__(self) -> str:
        return f"Experiment({self.name!r})"

    def submit(
        self,
        config: ScriptRunConfig | RunConfiguration | Any,
        tags: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Run:
        """Start a run (detached) and return it without waiting.

        Besides a ``ScriptRunConfig`` or a ``RunConfiguration``, ``config`` may be any
        object with a ``_targets_submit(experiment, tags, **kwargs) -> Run`` method (v1's
        ``Pipeline`` and ``HyperDriveConfig`` under :mod:`targets.azureml`)."""
        own_submit = getattr(config, "_targets_submit", None)
        if own_submit is not None and not isinstance(config, ScriptRunConfig | RunConfiguration):
            run: Run = own_submit(self, dict(tags or {}), **kwargs)
            return run
        if isinstance(config, RunConfiguration):
            config = ScriptRunConfig(run_config=config)
        source = Path(config.source_directory)
        if not source.is_absolute():
            source = Path.cwd() / source
        return submit_run(
            self.workspace,
            config.run_config,
            source_dir=source,
            experiment=self.name,
            origin={"api": "Experiment.submit", "tags": dict(tags or {})},
        )

    def get_runs(self) -> list[Run]:
        """This experiment's runs, newest first."""
        records: list[RunRecord] = self.workspace.ledger.list(experiment=self.name, limit=None)
        return [Run(self.workspace, r.id) for r in records]
