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
    """An environment definition, as Azure ML v1's ``Environment``.

    ``register``/``get``/``list`` keep environments in the workspace (see
    :mod:`targets.azureml.core._env_store`); ``get`` also knows Azure ML's curated
    environments (see :mod:`targets.azureml.core._curated`).
    """

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
    def from_pip_requirements(
        cls, name: str, file_path: str | Path, pip_version: str | None = None
    ) -> Environment:
        """An environment with the packages of a ``requirements.txt`` (``pip_version``
        pins pip, as in v1)."""
        from targets.runconfig.files import read_text
        from targets.runconfig.model import CondaSpec, PipBlock

        lines = []
        for raw in read_text(Path(file_path), "pip requirements").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
        env = cls(name)
        conda: list[str | PipBlock] = [f"pip={pip_version}"] if pip_version else []
        env.python.conda_dependencies = CondaSpec(dependencies=[*conda, PipBlock(pip=lines)])
        return env

    @classmethod
    def from_existing_conda_environment(cls, name: str, conda_environment_name: str) -> Environment:
        """A user-managed environment that runs in the conda environment
        ``conda_environment_name`` of this machine (its ``bin/python`` becomes the
        ``interpreter_path``; on another target the same path must exist there).

        Design choice: v1 exported the conda environment's package list into a new
        environment that Azure built again; here the environment itself is used, so
        nothing is built and the run sees exactly the packages you have. Raises
        UsageError when no conda environment of that name is found."""
        from targets.azureml.core._conda_envs import conda_python

        env = cls(name)
        env.python.user_managed_dependencies = True
        env.python.interpreter_path = str(conda_python(conda_environment_name))
        return env

    def register(self, workspace: Workspace) -> Environment:
        """Register this environment in ``workspace`` as the next version of its name
        and return the registered copy (its ``version`` set). An unchanged definition
        returns the latest version instead of adding one."""
        from targets.azureml.core._env_store import register

        return register(workspace, self)

    @classmethod
    def get(
        cls,
        workspace: Workspace,
        name: str,
        version: str | int | None = None,
        label: str | None = None,
    ) -> Environment:
        """The registered environment ``name`` (the latest version, or ``version``), else
        the curated environment of that name. Raises UsageError naming what exists."""
        from targets.azureml.core._environment_lookup import lookup

        if label not in (None, "latest"):
            raise UsageError(
                f"environment labels are not supported (label={label!r})",
                hint="give a version, or leave both out for the latest",
            )
        return lookup(workspace, name, None if version is None else str(version))

    def save_to_directory(self, path: str | Path, overwrite: bool = False) -> None:
        """Write this definition to the folder ``path`` (``azureml_environment.json``, and
        ``conda_dependencies.yml`` when it has inline conda dependencies), as v1 does.
        Refuses to replace existing files unless ``overwrite``."""
        from targets.azureml.core._env_files import save_environment

        save_environment(self, Path(path), overwrite=overwrite)

    @classmethod
    def load_from_directory(cls, path: str | Path) -> Environment:
        """The environment :meth:`save_to_directory` wrote to ``path``."""
        from targets.azureml.core._env_files import load_environment

        return load_environment(Path(path))

    # Last: inside this class body, `list` names this method from here on.
    @classmethod
    def list(cls, workspace: Workspace) -> dict[str, Environment]:
        """Every environment ``get`` can give, by name: the latest version of each
        registered environment, and the curated ones."""
        from targets.azureml.core._environment_lookup import listing

        return listing(workspace)


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
        docker_runtime_config: Any = None,
    ) -> None:
        """``docker_runtime_config`` is v1's ``DockerConfiguration``
        (:mod:`targets.azureml.core.runconfig`): it sets ``environment.docker``."""
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
            rc.environment = environment.model_copy(deep=True)
        if max_run_duration_seconds is not None:
            rc.max_run_duration_seconds = max_run_duration_seconds
        if node_count is not None:
            rc.node_count = node_count
        if docker_runtime_config is not None:
            docker_runtime_config.apply(rc)

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
