"""Azure ML v1's ``Estimator`` (``azureml.train.estimator``) and its framework helpers
(``azureml.train.dnn.PyTorch``/``TensorFlow``/``Mpi``), as run configurations.

>>> est = Estimator(source_directory="src", compute_target="cpu-cluster",
...                 entry_script="train.py", script_params={"--epochs": 3},
...                 node_count=2, process_count_per_node=2, distributed_backend="mpi",
...                 pip_packages=["torch==2.13.0"])
>>> run = Experiment(ws, "demo").submit(est)

An Estimator is a :class:`~targets.experiment.ScriptRunConfig`: ``est.run_config`` is an
ordinary :class:`RunConfiguration` (``communicator``, ``node_count``, the ``mpi`` /
``pytorch`` / ``tensorflow`` sections), so it runs on every target like a runconfig file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from targets.compute.base import ComputeTarget
from targets.errors import UsageError
from targets.experiment import ScriptRunConfig
from targets.runconfig.model import CondaSpec, EnvironmentSection, PipBlock, RunConfiguration

__all__ = ["Estimator", "Mpi", "PyTorch", "TensorFlow"]

_BACKENDS = ("mpi", "gloo", "nccl", "ps")


def _arguments(script_params: Mapping[str, Any] | Sequence[Any] | None) -> list[str]:
    """Azure ML v1's ``script_params``: ``{"--epochs": 3, "--verbose": ""}`` becomes
    ``--epochs 3 --verbose`` (an empty value is a bare flag); a list is taken as is."""
    if script_params is None:
        return []
    if isinstance(script_params, Mapping):
        args: list[str] = []
        for key, value in script_params.items():
            args.append(str(key))
            if value is not None and value != "":
                args.append(str(value))
        return args
    return [str(a) for a in script_params]


class Estimator(ScriptRunConfig):
    """A script with its dependencies and its distribution, in Azure ML v1's names."""

    def __init__(
        self,
        source_directory: str | Path,
        compute_target: str | ComputeTarget | None = None,
        entry_script: str | None = None,
        script_params: Mapping[str, Any] | Sequence[Any] | None = None,
        node_count: int = 1,
        process_count_per_node: int = 1,
        distributed_backend: str | None = None,
        conda_packages: Sequence[str] | None = None,
        pip_packages: Sequence[str] | None = None,
        custom_docker_base_image: str | None = None,
        use_gpu: bool = False,
        use_docker: bool | None = None,
        environment_variables: Mapping[str, str] | None = None,
        environment_definition: EnvironmentSection | None = None,
        conda_dependencies_file: str | None = None,
        pip_requirements_file: str | None = None,
        max_run_duration_seconds: int | None = None,
        user_managed: bool = False,
        interpreter_path: str | None = None,
        shm_size: str | None = None,
        worker_count: int | None = None,
        parameter_server_count: int | None = None,
        inputs: Any = None,
    ) -> None:
        if not entry_script:
            raise UsageError("an Estimator needs entry_script", hint="entry_script='train.py'")
        if inputs:
            raise UsageError(
                "Estimator inputs (data references) are not supported",
                hint="read the data from the source directory or a path the script opens",
            )
        backend = distributed_backend.lower() if distributed_backend else None
        if backend is not None and backend not in _BACKENDS:
            raise UsageError(
                f"distributed_backend {distributed_backend!r} is not known",
                hint="use one of " + ", ".join(_BACKENDS) + " (or leave it out)",
            )
        multi = node_count > 1 or process_count_per_node > 1
        if backend is None and multi:
            raise UsageError(
                f"node_count {node_count} and process_count_per_node {process_count_per_node} "
                "need a distributed_backend",
                hint="distributed_backend='mpi' (mpirun) or 'gloo'/'nccl' (torchrun)",
            )
        config = RunConfiguration(script=entry_script, arguments=_arguments(script_params))
        config.node_count = node_count
        if backend == "mpi":
            config.communicator = "OpenMpi"
            config.mpi.process_count_per_node = process_count_per_node
        elif backend in ("gloo", "nccl"):
            config.communicator = backend.capitalize()
            config.pytorch.communication_backend = backend  # type: ignore[assignment]
            config.pytorch.process_count = node_count * process_count_per_node
        elif backend == "ps":
            workers = worker_count if worker_count is not None else node_count
            ps = parameter_server_count if parameter_server_count is not None else 1
            config.communicator = "ParameterServer"
            config.tensorflow.worker_count = workers
            config.tensorflow.parameter_server_count = ps
            config.node_count = workers + ps
        if environment_definition is not None:
            if conda_packages or pip_packages or custom_docker_base_image:
                raise UsageError(
                    "environment_definition and conda_packages/pip_packages/"
                    "custom_docker_base_image exclude each other",
                    hint="put the packages into the environment definition",
                )
            config.environment = environment_definition.model_copy(deep=True)
        else:
            python = config.environment.python
            python.user_managed_dependencies = user_managed
            python.interpreter_path = interpreter_path
            if conda_dependencies_file:
                python.conda_dependencies_file = conda_dependencies_file
            if conda_packages or pip_packages or pip_requirements_file:
                if conda_dependencies_file:
                    raise UsageError(
                        "conda_dependencies_file and conda_packages/pip_packages exclude "
                        "each other",
                        hint="list the packages in the conda file",
                    )
                pip = list(pip_packages or [])
                if pip_requirements_file:
                    pip += _requirements(Path(source_directory) / pip_requirements_file)
                deps: list[str | PipBlock] = list(conda_packages or [])
                if pip:
                    deps.append(PipBlock(pip=pip))
                python.conda_dependencies = CondaSpec(dependencies=deps)
            docker = config.environment.docker
            if custom_docker_base_image or use_docker:
                docker.enabled = True
            if custom_docker_base_image:
                docker.base_image = custom_docker_base_image
            if use_gpu:
                docker.gpu = True
            if shm_size:
                docker.shm_size = shm_size
        if environment_variables:
            config.environment_variables = {
                str(k): str(v) for k, v in environment_variables.items()
            }
        super().__init__(
            source_directory=source_directory,
            run_config=config,
            compute_target=compute_target,
            max_run_duration_seconds=max_run_duration_seconds,
        )
        from targets.distributed import distribution_of

        distribution_of(self.run_config)  # contradictions are refused here, not at submit


def _requirements(path: Path) -> list[str]:
    if not path.is_file():
        raise UsageError(f"pip_requirements_file {path} does not exist")
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


class PyTorch(Estimator):
    """``azureml.train.dnn.PyTorch``: torchrun with ``distributed_backend`` gloo or nccl
    (default nccl when several processes run, as Azure ML's ``distributed_training=Nccl``)."""

    def __init__(self, source_directory: str | Path, **kwargs: Any) -> None:
        multi = kwargs.get("node_count", 1) > 1 or kwargs.get("process_count_per_node", 1) > 1
        if multi:
            kwargs.setdefault("distributed_backend", "nccl")
        super().__init__(source_directory, **kwargs)


class TensorFlow(Estimator):
    """``azureml.train.dnn.TensorFlow`` with parameter servers: ``worker_count`` workers and
    ``parameter_server_count`` parameter servers, each on its own node (TF_CONFIG)."""

    def __init__(
        self,
        source_directory: str | Path,
        worker_count: int = 1,
        parameter_server_count: int = 1,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("distributed_backend", "ps")
        super().__init__(
            source_directory,
            worker_count=worker_count,
            parameter_server_count=parameter_server_count,
            **kwargs,
        )


class Mpi(Estimator):
    """``azureml.train.dnn.Mpi``: mpirun with ``process_count_per_node`` on each node."""

    def __init__(self, source_directory: str | Path, **kwargs: Any) -> None:
        kwargs.setdefault("distributed_backend", "mpi")
        super().__init__(source_directory, **kwargs)
