"""``azureml.pipeline.steps.mpi_step``: :class:`MpiStep`, a PythonScriptStep whose
run configuration asks for OpenMPI (``communicator: OpenMpi``, ``node_count``,
``mpi.process_count_per_node``): on one machine ``mpirun`` starts the processes; several
nodes need a target that runs multi-node jobs (a cluster), as for any MPI run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from targets.azureml.pipeline.steps.python_script_step import PythonScriptStep
from targets.errors import UsageError
from targets.runconfig.model import CondaSpec, EnvironmentSection, PipBlock, RunConfiguration

__all__ = ["MpiStep"]


class MpiStep(PythonScriptStep):
    """v1's (deprecated) MPI step. The environment is ``environment_definition``, or
    ``pip_packages`` / ``conda_packages``, or the target's Python. ``use_docker`` and
    ``custom_docker_image`` map to the run configuration's docker section."""

    def __init__(
        self,
        name: str | None = None,
        source_directory: str | Path | None = None,
        script_name: str | None = None,
        arguments: Sequence[Any] | None = None,
        compute_target: Any = None,
        node_count: int | None = None,
        process_count_per_node: int | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: Sequence[str] | None = None,
        use_gpu: bool = False,
        use_docker: bool = False,
        custom_docker_image: str | None = None,
        pip_packages: Sequence[str] | None = None,
        conda_packages: Sequence[str] | None = None,
        environment_definition: EnvironmentSection | None = None,
        environment_variables: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if not script_name:
            raise UsageError(f"MpiStep {name!r} needs a script_name")
        if node_count is None or process_count_per_node is None:
            raise UsageError(
                f"MpiStep {name or script_name!r} needs node_count and process_count_per_node"
            )
        rc = RunConfiguration(communicator="OpenMpi", node_count=node_count)
        rc.mpi.process_count_per_node = process_count_per_node
        if environment_definition is not None:
            rc.environment = environment_definition.model_copy(deep=True)
        elif pip_packages or conda_packages:
            deps: list[str | PipBlock] = [*(conda_packages or [])]
            if pip_packages:
                deps.append(PipBlock(pip=list(pip_packages)))
            rc.environment.python.conda_dependencies = CondaSpec(dependencies=["python", *deps])
        else:
            rc.environment.python.user_managed_dependencies = True
        if use_docker or custom_docker_image:
            rc.environment.docker.enabled = True
            rc.environment.docker.base_image = custom_docker_image
            rc.environment.docker.gpu = bool(use_gpu)
        rc.environment_variables = dict(environment_variables or {})
        super().__init__(
            script_name,
            name=name,
            arguments=arguments,
            compute_target=compute_target,
            runconfig=rc,
            inputs=inputs,
            outputs=outputs,
            source_directory=source_directory,
            allow_reuse=allow_reuse,
        )
