"""Every public v1 name that issue 15 promises exists under ``targets.azureml`` at the
module path the real SDK has it at, with the methods a v1 control script calls: after
``from azureml.X import N`` became ``from targets.azureml.X import N``, the import and
the calls resolve."""

from __future__ import annotations

import importlib

import pytest

# v1 module path -> the names that module has in the real SDK (and in targets.azureml).
NAMES: dict[str, list[str]] = {
    "azureml.core": [
        "Workspace",
        "Experiment",
        "ScriptRunConfig",
        "RunConfiguration",
        "Environment",
        "Run",
        "ComputeTarget",
    ],
    "azureml.core.workspace": ["Workspace"],
    "azureml.core.experiment": ["Experiment"],
    "azureml.core.script_run_config": ["ScriptRunConfig"],
    "azureml.core.environment": ["Environment", "DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE"],
    "azureml.core.runconfig": [
        "RunConfiguration",
        "DockerConfiguration",
        "DEFAULT_CPU_IMAGE",
        "DEFAULT_GPU_IMAGE",
    ],
    "azureml.core.conda_dependencies": ["CondaDependencies"],
    "azureml.core.run": ["Run"],
    "azureml.core.compute": [
        "ComputeTarget",
        "RemoteCompute",
        "HDInsightCompute",
        "DatabricksCompute",
        "AmlCompute",
    ],
    "azureml.core.compute_target": ["ComputeTargetException"],
    "azureml.pipeline.core": ["Pipeline", "PipelineData", "PipelineParameter", "StepSequence"],
    "azureml.pipeline.core.graph": ["PipelineData", "PipelineParameter"],
    "azureml.pipeline.core.run": ["PipelineRun", "StepRun"],
    "azureml.pipeline.steps": [
        "MpiStep",
        "PythonScriptStep",
        "DatabricksStep",
        "ParallelRunStep",
        "ParallelRunConfig",
    ],
    "azureml.train.hyperdrive": [
        "HyperDriveConfig",
        "HyperDriveRun",
        "RandomParameterSampling",
        "GridParameterSampling",
        "BayesianParameterSampling",
        "BanditPolicy",
        "MedianStoppingPolicy",
        "TruncationSelectionPolicy",
        "PrimaryMetricGoal",
        "choice",
        "randint",
        "uniform",
        "quniform",
        "loguniform",
        "qloguniform",
        "normal",
        "qnormal",
        "lognormal",
        "qlognormal",
    ],
    "azureml.train.hyperdrive.parameter_expressions": [
        "choice",
        "uniform",
        "loguniform",
        "normal",
        "quniform",
    ],
}

# (v1 module, class) -> the methods and attributes v1 code calls on it.
METHODS: dict[tuple[str, str], list[str]] = {
    ("azureml.core", "Workspace"): [
        "from_config",
        "get",
        "create",
        "write_config",
        "get_mlflow_tracking_uri",
        "compute_targets",
    ],
    ("azureml.core.compute", "ComputeTarget"): [
        "attach",
        "create",
        "list",
        "wait_for_completion",
        "get_status",
        "detach",
        "delete",
    ],
    ("azureml.core.compute", "RemoteCompute"): ["attach_configuration"],
    ("azureml.core.compute", "HDInsightCompute"): ["attach_configuration"],
    ("azureml.core.compute", "DatabricksCompute"): ["attach_configuration"],
    ("azureml.core.compute", "AmlCompute"): [
        "provisioning_configuration",
        "supported_vmsizes",
        "update",
    ],
    ("azureml.core", "Environment"): [
        "from_conda_specification",
        "from_pip_requirements",
        "from_existing_conda_environment",
        "register",
        "get",
        "list",
        "save_to_directory",
        "load_from_directory",
    ],
    ("azureml.core", "RunConfiguration"): ["load", "save"],
    ("azureml.core", "Experiment"): ["submit"],
    ("azureml.core", "Run"): [
        "get_context",
        "get_portal_url",
        "get_metrics",
        "get_details",
        "get_file_names",
        "download_file",
        "download_files",
        "get_children",
        "cancel",
        "wait_for_completion",
    ],
    ("azureml.train.hyperdrive", "HyperDriveRun"): [
        "get_best_run_by_primary_metric",
        "get_children_sorted_by_primary_metric",
    ],
    ("azureml.train.hyperdrive", "PrimaryMetricGoal"): ["MAXIMIZE", "MINIMIZE"],
}


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in NAMES.items() for n in names])
def test_v1_name_exists_under_targets_azureml(module: str, name: str) -> None:
    ours = importlib.import_module(f"targets.{module}")
    assert hasattr(ours, name), f"targets.{module} has no {name} (v1 has {module}.{name})"


@pytest.mark.parametrize(("where", "methods"), list(METHODS.items()))
def test_v1_methods_exist(where: tuple[str, str], methods: list[str]) -> None:
    module, name = where
    cls = getattr(importlib.import_module(f"targets.{module}"), name)
    missing = [m for m in methods if not hasattr(cls, m)]
    assert not missing, f"targets.{module}.{name} lacks {missing}"


def test_the_same_class_under_every_v1_path() -> None:
    """v1 code mixes ``from azureml.core import Run`` and ``from azureml.core.run import
    Run``; isinstance checks across them must hold, so each name is one class."""
    for module, names in NAMES.items():
        for name in names:
            here = getattr(importlib.import_module(f"targets.{module}"), name)
            for other, other_names in NAMES.items():
                if name in other_names and other != module:
                    there = getattr(importlib.import_module(f"targets.{other}"), name)
                    same = here is there if isinstance(here, type) else here == there
                    assert same, f"{module}.{name} is not {other}.{name}"
