"""Azure ML v1 and 2017 Workbench run configurations: the real corpus files and the
SDK's keys, one by one, with the warnings a user sees for what is not kept."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from targets.errors import ConfigError, UsageError
from targets.runconfig import (
    CondaDependencies,
    LoadedRunConfig,
    RunConfiguration,
    convert_runconfig,
    load_runconfig,
)
from targets.runconfig.model import SparkPackage

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "azureml-corpus" / "v1"
SHARED_CORPUS = REPO / ".." / "shared" / "azureml" / "corpus" / "v1"
IRIS = CORPUS / "Azure-Samples__MachineLearningSamples-Iris"
IRIS_JSON = CORPUS / "Azure-Samples__MachineLearningSamples-Iris@b3cda96"
NOTEBOOKS = CORPUS / "Azure__MachineLearningNotebooks"
MANY_MODELS = CORPUS / "microsoft__solution-accelerator-many-models"


def corpus_files(pattern: str) -> list[Path]:
    """``pattern`` files of the repo's corpus copy, plus the shared corpus when present."""
    files = sorted(CORPUS.rglob(pattern))
    if SHARED_CORPUS.is_dir():
        files += sorted(SHARED_CORPUS.resolve().rglob(pattern))
    return files


def is_runconfig(path: Path) -> bool:
    if path.suffix == ".runconfig":
        return True
    return path.suffix == "" and path.parent.name in (".azureml", "aml_config")


ALL_RUNCONFIGS = [p for p in corpus_files("*") if p.is_file() and is_runconfig(p)]
ALL_CONDA_FILES = [
    p for p in corpus_files("*.yml") if "conda" in p.name and p.parent.name != "outputs"
]


def corpus_id(path: Path) -> str:
    for root in (CORPUS, SHARED_CORPUS.resolve()):
        if path.is_relative_to(root):
            return ("shared/" if root != CORPUS else "") + path.relative_to(root).as_posix()
    return str(path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def v1(tmp_path: Path, text: str, name: str = "train.runconfig") -> LoadedRunConfig:
    return load_runconfig(write(tmp_path / ".azureml" / name, text))


def warned(loaded: LoadedRunConfig, key: str) -> list[str]:
    return [w for w in loaded.warnings if key in w]


# ---------------------------------------------------------------- the corpus ---------


def test_the_corpus_is_there() -> None:
    assert len(ALL_RUNCONFIGS) >= 5
    assert len(ALL_CONDA_FILES) >= 3


@pytest.mark.parametrize("path", ALL_RUNCONFIGS, ids=corpus_id)
def test_every_corpus_runconfig_loads(path: Path) -> None:
    loaded = load_runconfig(path)
    assert loaded.format in ("azureml-v1", "azureml-workbench")
    assert loaded.source_directory == path.parent.parent.resolve()
    # What was loaded saves and loads back in our format.
    assert RunConfiguration.model_validate(loaded.config.model_dump()) == loaded.config


@pytest.mark.parametrize("path", ALL_CONDA_FILES, ids=corpus_id)
def test_every_corpus_conda_file_loads(path: Path) -> None:
    deps = CondaDependencies(path)
    assert deps.get_python_version()
    assert deps.as_spec().dependencies
    assert deps.serialize_to_string() == path.read_bytes().decode("utf-8-sig")


def test_notebooks_sdk_1_0_file(tmp_path: Path) -> None:
    loaded = load_runconfig(NOTEBOOKS / "aml_config" / "local.runconfig")
    rc = loaded.config
    assert loaded.format == "azureml-v1"
    assert loaded.source_directory == NOTEBOOKS.resolve()
    assert rc.script == "train.py"
    assert rc.arguments == []
    assert rc.target == "local"
    assert rc.framework == "python"
    assert rc.communicator == "None"
    assert rc.node_count == 1
    assert rc.max_run_duration_seconds is None
    env = rc.environment
    assert env.environment_variables == {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}
    assert env.python.user_managed_dependencies is False
    assert env.python.interpreter_path == "python"
    assert env.python.conda_dependencies_file == "aml_config/conda_dependencies.yml"
    assert env.docker.enabled is False
    assert env.docker.base_image == "mcr.microsoft.com/azureml/base:0.2.0"
    assert env.docker.shm_size == "2g"  # not in this file: our default
    assert env.docker.gpu is False
    assert env.spark.repositories == ["https://mmlspark.azureedge.net/maven"]
    assert env.spark.packages == [
        SparkPackage(group="com.microsoft.ml.spark", artifact="mmlspark_2.11", version="0.12")
    ]
    assert env.databricks is None
    assert rc.spark.configuration == {
        "spark.app.name": "Azure ML Experiment",
        "spark.yarn.maxAppAttempts": "1",
    }
    assert rc.hdi.yarn_deploy_mode == "cluster"
    assert rc.tensorflow.worker_count == 1
    assert rc.mpi.process_count_per_node == 1
    assert rc.amlcompute.cluster_max_node_count == 1
    assert rc.history.output_collection is True
    assert len(loaded.warnings) == 2
    (auto,) = warned(loaded, "autoPrepareEnvironment")
    assert "local.runconfig:12: autoPrepareEnvironment: obsolete" in auto
    (gpu,) = warned(loaded, "gpuSupport")
    assert ":41: environment.docker.gpuSupport: obsolete" in gpu


def test_many_models_file_keeps_the_old_shm_size() -> None:
    loaded = load_runconfig(MANY_MODELS / "aml_config" / "local.runconfig")
    rc = loaded.config
    assert rc.script == "train.py"
    assert rc.environment.docker.base_image == "mcr.microsoft.com/azureml/base:0.2.3"
    assert rc.environment.docker.shm_size == "1g"
    assert rc.environment.python.conda_dependencies_file == "aml_config/conda_dependencies.yml"
    assert [w.split(": ")[1] for w in loaded.warnings] == [
        "autoPrepareEnvironment",
        "environment.docker.gpuSupport",
    ]


def test_loading_by_project_dir_and_name_like_the_sdk() -> None:
    loaded = load_runconfig(MANY_MODELS, "local")
    assert loaded.path == MANY_MODELS / "aml_config" / "local.runconfig"
    assert loaded.config.script == "train.py"


@pytest.mark.parametrize(("name", "target"), [("local", "local"), ("docker-python", "docker")])
def test_iris_workbench_files(name: str, target: str) -> None:
    loaded = load_runconfig(IRIS / "aml_config" / f"{name}.runconfig")
    rc = loaded.config
    assert loaded.format == "azureml-workbench"
    assert loaded.source_directory == IRIS.resolve()
    assert rc.script is None  # "$file": given on the command line
    assert rc.target == target
    assert rc.framework == "python"
    assert rc.environment_variables == {"EXAMPLE_ENV_VAR": "Example Value"}
    assert rc.environment.python.conda_dependencies_file == "aml_config/conda_dependencies.yml"
    assert rc.environment.python.user_managed_dependencies is False
    # From SparkDependenciesFile: aml_config/spark_dependencies.yml
    assert rc.spark.configuration == {
        "spark.app.name": "Classifying Iris",
        "spark.yarn.maxAppAttempts": "1",
    }
    assert rc.environment.spark.repositories == ["https://mmlspark.azureedge.net/maven"]
    assert [p.coordinate for p in rc.environment.spark.packages] == [
        "com.microsoft.ml.spark:mmlspark_2.11:0.7.91",
        "com.microsoft.sqlserver:mssql-jdbc:6.2.1.jre8",
    ]
    (file_warning,) = loaded.warnings
    assert ":2: ArgumentVector[0]: " in file_warning
    assert "targets run SCRIPT --runconfig FILE" in file_warning


def test_iris_json_workbench_file() -> None:
    loaded = load_runconfig(IRIS_JSON / "aml_config" / "local.runconfig")
    rc = loaded.config
    assert loaded.format == "azureml-workbench"
    assert rc.script is None
    assert rc.target == "local"
    assert rc.environment.python.conda_dependencies_file is None  # "CondaFile": null
    assert rc.environment.python.user_managed_dependencies is False  # ManagedEnvironment
    assert len(loaded.warnings) == 2
    assert warned(loaded, "ArgumentVector[0]")
    assert warned(loaded, "local.runconfig:2: Description: not kept")


@pytest.mark.parametrize("name", ["local.compute", "docker.compute"])
def test_compute_files_are_refused_with_an_explanation(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_runconfig(IRIS / "aml_config" / name)
    assert "describes a compute target" in str(info.value)
    assert info.value.path == str(IRIS / "aml_config" / name)


def test_spark_dependencies_file_alone_is_refused() -> None:
    with pytest.raises(ConfigError, match="Spark dependencies file, not a run configuration"):
        load_runconfig(IRIS / "aml_config" / "spark_dependencies.yml")


# -------------------------------------------------------- what SDK 1.61 writes --------

SDK_161_DEFAULT = """
script: train.py
arguments: [--alpha, '0.5']
target: cpu-cluster
framework: Python
communicator: None
maxRunDurationSeconds:
nodeCount: 1
priority:
environment:
  name: default-environment
  version:
  environmentVariables:
    EXAMPLE_ENV_VAR: EXAMPLE_VALUE
  python:
    userManagedDependencies: false
    interpreterPath: python
    condaDependenciesFile: .azureml/conda_dependencies.yml
    baseCondaEnvironment:
  docker:
    enabled: false
    baseImage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1
    baseDockerfile:
    buildContext:
    sharedVolumes: true
    shmSize: 2g
    arguments: []
    baseImageRegistry:
      address:
      username:
      password:
      registryIdentity:
    platform:
      os: Linux
      architecture: amd64
  spark:
    repositories: []
    packages: []
    precachePackages: true
  databricks:
    mavenLibraries: []
    pypiLibraries: []
    rcranLibraries: []
    jarLibraries: []
    eggLibraries: []
  r:
  inferencingStackVersion:
  assetId:
history:
  outputCollection: true
  snapshotProject: true
  directoriesToWatch:
  - logs
spark:
  configuration:
    spark.app.name: Azure ML Experiment
    spark.yarn.maxAppAttempts: 1
docker:
  useDocker: false
  sharedVolumes: true
  arguments: []
  shmSize: 2g
hdi:
  yarnDeployMode: cluster
tensorflow:
  workerCount: 1
  parameterServerCount: 1
mpi:
  processCountPerNode: 1
  nodeCount: 1
pytorch:
  communicationBackend: nccl
  processCount:
  nodeCount: 1
paralleltask:
  maxRetriesPerWorker: 0
  workerCountPerNode: 1
  terminalExitCodes:
dataReferences: {}
data: {}
datacaches: []
outputData: {}
sourceDirectoryDataStore:
amlcompute:
  vmSize:
  vmPriority:
  retainCluster: false
  name:
  clusterMaxNodeCount:
autoClusterComputeSpecification:
kubernetescompute:
  instanceType:
credentialPassthrough: false
command: ''
environmentVariables: {}
applicationEndpoints: {}
"""


def sdk_project(tmp_path: Path, text: str = SDK_161_DEFAULT) -> Path:
    write(tmp_path / ".azureml" / "conda_dependencies.yml", "dependencies: [python=3.10]\n")
    return write(tmp_path / ".azureml" / "cpu", text)


def test_an_sdk_1_61_file_loads_quietly(tmp_path: Path) -> None:
    loaded = load_runconfig(sdk_project(tmp_path))
    rc = loaded.config
    assert loaded.warnings == ()
    assert loaded.format == "azureml-v1"
    assert loaded.source_directory == tmp_path.resolve()
    assert rc.script == "train.py"
    assert rc.arguments == ["--alpha", "0.5"]
    assert rc.target == "cpu-cluster"
    assert rc.command is None
    assert rc.environment.name == "default-environment"
    assert rc.environment.python.conda_dependencies_file == ".azureml/conda_dependencies.yml"
    assert rc.environment.docker.platform is None
    assert rc.environment.docker.base_image_registry is None  # all of its keys were empty
    assert rc.mpi.node_count == 1
    assert rc.pytorch.communication_backend == "nccl"
    assert rc.history.directories_to_watch == ["logs"]


def test_the_same_file_in_snake_case_loads_the_same(tmp_path: Path) -> None:
    from targets.runconfig.azureml_v1 import KNOWN_V1_CAMEL_KEYS

    snake = SDK_161_DEFAULT
    for key in sorted(KNOWN_V1_CAMEL_KEYS, key=len, reverse=True):
        snake_key = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        snake = snake.replace(f"{key}:", f"{snake_key}:")
    assert "maxRunDurationSeconds" not in snake
    camel = load_runconfig(sdk_project(tmp_path / "camel"))
    loaded = load_runconfig(sdk_project(tmp_path / "snake", snake))
    assert loaded.warnings == ()
    assert loaded.config == camel.config


# -------------------------------------------------------------- key by key -------------


def test_top_level_keys(tmp_path: Path) -> None:
    loaded = v1(
        tmp_path,
        """
        script: train.py
        arguments: [--lr, 1.10, --epochs, 3]
        target: gpu
        framework: pyspark
        communicator: openmpi
        maxRunDurationSeconds: 600
        nodeCount: 2
        priority: 3
        environmentVariables: {my_var: a, MixedCase_Key: 1}
        history: {outputCollection: false, directoriesToWatch: [logs, out]}
        spark: {configuration: {spark.executor.cores: 4}}
        hdi: {yarnDeployMode: Client}
        tensorflow: {workerCount: 4, parameterServerCount: 2}
        mpi: {processCountPerNode: 8, nodeCount: 2}
        pytorch: {communicationBackend: Gloo, processCount: 16, nodeCount: 2}
        amlcompute: {vmSize: STANDARD_D2, vmPriority: lowpriority, retainCluster: true,
                     name: c, clusterMaxNodeCount: 4}
        """,
    )
    rc = loaded.config
    assert loaded.warnings == ()
    assert (rc.script, rc.target, rc.framework) == ("train.py", "gpu", "pyspark")
    assert rc.arguments == ["--lr", "1.10", "--epochs", "3"]
    assert rc.communicator == "OpenMpi"
    assert (rc.max_run_duration_seconds, rc.node_count, rc.priority) == (600, 2, 3)
    assert rc.environment_variables == {"my_var": "a", "MixedCase_Key": "1"}
    assert rc.history.output_collection is False
    assert rc.history.directories_to_watch == ["logs", "out"]
    assert rc.spark.configuration == {"spark.executor.cores": "4"}
    assert rc.hdi.yarn_deploy_mode == "client"
    assert (rc.tensorflow.worker_count, rc.tensorflow.parameter_server_count) == (4, 2)
    assert (rc.mpi.process_count_per_node, rc.mpi.node_count) == (8, 2)
    assert rc.pytorch.communication_backend == "gloo"
    assert (rc.pytorch.process_count, rc.pytorch.node_count) == (16, 2)
    assert rc.amlcompute.vm_size == "STANDARD_D2"
    assert rc.amlcompute.vm_priority == "lowpriority"
    assert rc.amlcompute.retain_cluster is True
    assert rc.amlcompute.cluster_max_node_count == 4


def test_environment_variable_keys_are_kept_verbatim_in_snake_case_files(tmp_path: Path) -> None:
    # The SDK camelCases every key of a file that has any snake_case key; not these.
    loaded = v1(
        tmp_path,
        """
        script: a.py
        max_run_duration_seconds: 60
        environment_variables: {my_input_data: x, SOME_VAR: y}
        environment:
          environment_variables: {inner_var: z}
        """,
    )
    assert loaded.config.environment_variables == {"my_input_data": "x", "SOME_VAR": "y"}
    assert loaded.config.environment.environment_variables == {"inner_var": "z"}


def test_command_instead_of_script(tmp_path: Path) -> None:
    rc = v1(tmp_path, "command: python train.py --epochs 3\nnodeCount: 1\n").config
    assert rc.command == "python train.py --epochs 3"
    assert rc.script is None


@pytest.mark.parametrize("framework", ["TensorFlow", "PyTorch", "CNTK"])
def test_deep_learning_frameworks_run_as_python_with_a_warning(
    tmp_path: Path, framework: str
) -> None:
    loaded = v1(tmp_path, f"script: a.py\nframework: {framework}\n")
    assert loaded.config.framework == "python"
    (warning,) = loaded.warnings
    assert f"framework: framework {framework!r} runs as 'python'" in warning


@pytest.mark.parametrize("framework", ["Python", "python", "PYTHON", "PySpark", "pyspark"])
def test_python_and_pyspark_in_any_case(tmp_path: Path, framework: str) -> None:
    assert v1(tmp_path, f"framework: {framework}\n").config.framework == framework.lower()


def test_unknown_framework_is_an_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        v1(tmp_path, "script: a.py\nframework: Julia\n")
    assert info.value.line == 2
    assert info.value.key_path == "framework"


def test_bad_value_is_reported_with_the_files_own_key_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        v1(
            tmp_path,
            """
            script: a.py
            nodeCount: many
            environment:
              docker:
                shmSize: lots
            """,
        )
    lines = str(info.value).splitlines()
    assert info.value.line == 2
    assert "nodeCount: expected an integer, got 'many'" in lines[0]
    assert ":5: environment.docker.shmSize: shm_size 'lots'" in lines[1]


def test_environment_docker_section(tmp_path: Path) -> None:
    loaded = v1(
        tmp_path,
        """
        environment:
          docker:
            enabled: true
            baseImage: myreg.azurecr.io/img:1
            baseDockerfile: "FROM python:3.11\\n"
            sharedVolumes: false
            shmSize: 16g
            arguments: [--ipc, host]
            gpuSupport: true
            platform: {os: Linux, architecture: arm64}
            baseImageRegistry:
              address: myreg.azurecr.io
              username: robot
              password: hunter2
        """,
    )
    docker = loaded.config.environment.docker
    assert docker.enabled is True
    assert docker.base_image == "myreg.azurecr.io/img:1"
    assert docker.base_dockerfile == "FROM python:3.11\n"
    assert docker.shared_volumes is False
    assert docker.shm_size == "16g"
    assert docker.arguments == ["--ipc", "host"]
    assert docker.gpu is True
    assert docker.platform == {"os": "Linux", "architecture": "arm64"}
    assert docker.base_image_registry is not None
    assert docker.base_image_registry.address == "myreg.azurecr.io"
    assert docker.base_image_registry.username == "robot"
    assert "hunter2" not in loaded.config.model_dump_json()
    assert "hunter2" not in "\n".join(loaded.warnings)
    (gpu,) = warned(loaded, "gpuSupport")
    assert "mapped to docker.gpu" in gpu
    (password,) = warned(loaded, "password")
    assert "was not imported" in password
    assert "keyring" in password


def test_top_level_docker_section_is_merged(tmp_path: Path) -> None:
    loaded = v1(
        tmp_path,
        """
        environment:
          docker: {enabled: false, shmSize: 2g, sharedVolumes: true}
        docker:
          useDocker: true
          sharedVolumes: false
          arguments: [--network, host]
          shmSize: 8g
        """,
    )
    docker = loaded.config.environment.docker
    assert (docker.enabled, docker.shared_volumes, docker.shm_size) == (True, False, "8g")
    assert docker.arguments == ["--network", "host"]


def test_top_level_docker_defaults_do_not_override_the_environment(tmp_path: Path) -> None:
    rc = v1(
        tmp_path,
        """
        environment:
          docker: {enabled: true, shmSize: 4g, arguments: [--ipc, host]}
        docker: {useDocker: false, sharedVolumes: true, arguments: [], shmSize: 2g}
        """,
    ).config
    docker = rc.environment.docker
    assert (docker.enabled, docker.shm_size, docker.arguments) == (True, "4g", ["--ipc", "host"])


def test_inline_conda_dependencies(tmp_path: Path) -> None:
    rc = v1(
        tmp_path,
        """
        environment:
          python:
            userManagedDependencies: false
            condaDependencies:
              name: inline
              channels: [conda-forge]
              dependencies:
                - python=3.11
                - pip:
                    - --extra-index-url https://example.org/simple
                    - rich
        """,
    ).config
    conda = rc.environment.python.conda_dependencies
    assert conda is not None
    assert conda.name == "inline"
    assert conda.dependencies[0] == "python=3.11"


def test_user_managed_python(tmp_path: Path) -> None:
    rc = v1(
        tmp_path,
        """
        environment:
          python: {userManagedDependencies: true, interpreterPath: /opt/conda/bin/python}
        """,
    ).config
    assert rc.environment.python.user_managed_dependencies is True
    assert rc.environment.python.interpreter_path == "/opt/conda/bin/python"


def test_environment_given_as_a_path_to_its_own_file(tmp_path: Path) -> None:
    write(
        tmp_path / ".azureml" / "environment.yml",
        """
        name: separate
        environmentVariables: {A: b}
        python:
          userManagedDependencies: true
        docker:
          baseImage: python:3.11
          gpuSupport: false
        """,
    )
    loaded = v1(tmp_path, "script: a.py\nenvironment: .azureml/environment.yml\n")
    env = loaded.config.environment
    assert env.name == "separate"
    assert env.environment_variables == {"A": "b"}
    assert env.python.user_managed_dependencies is True
    assert env.docker.base_image == "python:3.11"
    (warning,) = loaded.warnings
    assert "environment.yml:7: docker.gpuSupport" in warning


def test_missing_environment_file_names_both_places(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        v1(tmp_path, "environment: envs/missing.yml\n")
    assert "environment file 'envs/missing.yml' not found" in str(info.value)
    assert str(tmp_path.resolve() / "envs" / "missing.yml") in str(info.value)
    assert str(tmp_path / ".azureml" / "envs" / "missing.yml") in str(info.value)


def test_a_registered_environment_reference_warns(tmp_path: Path) -> None:
    loaded = v1(tmp_path, "script: a.py\nenvironment: {name: AzureML-Minimal, version: '3'}\n")
    assert loaded.config.environment.name == "AzureML-Minimal"
    assert loaded.config.environment.version == "3"
    (warning,) = loaded.warnings
    assert "registered environment" in warning


def test_databricks_and_environment_spark(tmp_path: Path) -> None:
    rc = v1(
        tmp_path,
        """
        environment:
          spark:
            repositories: [https://repo]
            packages: [{group: g, artifact: a, version: 2.0}]
            precachePackages: false
          databricks:
            pypiLibraries: [{package: rich}]
            cluster: {existingClusterId: abc}
        """,
    ).config
    assert rc.environment.spark.packages[0].coordinate == "g:a:2.0"
    assert rc.environment.spark.precache_packages is False
    assert rc.environment.databricks is not None
    assert rc.environment.databricks.pypi_libraries == [{"package": "rich"}]
    assert rc.environment.databricks.cluster == {"existingClusterId": "abc"}


@pytest.mark.parametrize(
    "text",
    [
        "dataReferences: {}\ndata: {}\noutputData: {}\ndatacaches: []\n",
        "paralleltask: {maxRetriesPerWorker: 0, workerCountPerNode: 1, terminalExitCodes:}\n",
        "kubernetescompute: {instanceType:}\ncredentialPassthrough: false\n",
        "applicationEndpoints: {}\nautoClusterComputeSpecification:\n",
        "sourceDirectoryDataStore:\n",
        "environment: {r:, inferencingStackVersion:, assetId:, docker: {buildContext:}}\n",
        "history: {ambientAuthentication:}\n",
    ],
)
def test_unsupported_keys_holding_defaults_are_dropped_quietly(tmp_path: Path, text: str) -> None:
    assert v1(tmp_path, "script: a.py\n" + text).warnings == ()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "dataReferences:\n  my_input:\n    dataStoreName: blobs\n    mode: mount\n",
            "dataReferences",
        ),
        ("data: {d: {mechanism: mount}}\n", "data"),
        ("outputData: {out: {mechanism: upload}}\n", "outputData"),
        ("datacaches: [{datacacheId: x}]\n", "datacaches"),
        ("sourceDirectoryDataStore: store\n", "sourceDirectoryDataStore"),
        ("paralleltask: {workerCountPerNode: 4}\n", "paralleltask"),
        ("kubernetescompute: {instanceType: big}\n", "kubernetescompute"),
        ("credentialPassthrough: true\n", "credentialPassthrough"),
        ("applicationEndpoints: {jupyter: {type: Jupyter, port: 8888}}\n", "applicationEndpoints"),
        ("autoClusterComputeSpecification: {vmSize: x}\n", "autoClusterComputeSpecification"),
        ("environment: {r: {rVersion: '4.0'}}\n", "environment.r"),
        ("environment: {inferencingStackVersion: latest}\n", "environment.inferencingStackVersion"),
        ("environment: {assetId: azureml://x}\n", "environment.assetId"),
        (
            "environment: {docker: {buildContext: {locationType: git, location: x}}}\n",
            "environment.docker.buildContext",
        ),
        (
            "environment: {docker: {baseImageRegistry: {registryIdentity: {clientId: c}}}}\n",
            "environment.docker.baseImageRegistry.registryIdentity",
        ),
        ("history: {ambientAuthentication: {method: aadtoken}}\n", "history.ambientAuthentication"),
    ],
)
def test_unsupported_keys_with_values_warn(tmp_path: Path, text: str, key: str) -> None:
    loaded = v1(tmp_path, "script: a.py\n" + text)
    (warning,) = loaded.warnings
    assert f": {key}: not supported by targets" in warning


def test_unknown_keys_warn_with_a_suggestion(tmp_path: Path) -> None:
    loaded = v1(
        tmp_path,
        """
        scirpt: train.py
        target: local
        environment:
          docker: {baseImagee: x}
        """,
    )
    assert loaded.config.script is None
    assert len(loaded.warnings) == 2
    assert ":1: scirpt: unknown key, ignored (did you mean 'script'?)" in loaded.warnings[0]
    assert (
        "environment.docker.baseImagee: unknown key, ignored (did you mean 'baseImage'?)"
        in (loaded.warnings[1])
    )


def test_empty_values_mean_default(tmp_path: Path) -> None:
    rc = v1(
        tmp_path,
        """
        script:
        arguments:
        target:
        framework:
        nodeCount:
        environment:
          docker:
            shmSize:
            arguments:
        """,
    ).config
    assert rc == RunConfiguration()


def test_a_missing_conda_file_in_a_v1_file_names_both_places(tmp_path: Path) -> None:
    path = write(
        tmp_path / "aml_config" / "local.runconfig",
        "environment:\n  python:\n    condaDependenciesFile: aml_config/conda.yml\n",
    )
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    assert info.value.line == 3
    assert info.value.key_path == "environment.python.condaDependenciesFile"
    assert str(tmp_path.resolve() / "aml_config" / "conda.yml") in str(info.value)
    assert str(tmp_path / "aml_config" / "aml_config" / "conda.yml") in str(info.value)


def test_conda_file_next_to_a_runconfig_loaded_by_path(tmp_path: Path) -> None:
    # SDK >= 1.4x saved to a file path: condaDependenciesFile is next to the file.
    write(tmp_path / "configs" / "conda_dependencies.yml", "dependencies: [python=3.10]\n")
    path = write(
        tmp_path / "configs" / "job.runconfig",
        "environment:\n  python:\n    condaDependenciesFile: conda_dependencies.yml\n",
    )
    loaded = load_runconfig(path, project_dir=tmp_path)
    assert loaded.source_directory == tmp_path.resolve()
    assert loaded.config.environment.python.conda_dependencies_file == (
        "configs/conda_dependencies.yml"
    )


# ---------------------------------------------------------------- Workbench -----------


def test_workbench_with_a_script_arguments_and_unmanaged_environment(tmp_path: Path) -> None:
    write(tmp_path / "aml_config" / "conda.yml", "dependencies: [python=3.5.2]\n")
    loaded = load_runconfig(
        write(
            tmp_path / "aml_config" / "remote.runconfig",
            """
            {
              "ArgumentVector": ["train.py", "--epochs", 3],
              "Target": "remote-vm",
              "Framework": "TensorFlow",
              "CondaFile": "aml_config/conda.yml",
              "ManagedEnvironment": false,
              "TrackedRun": false,
              "PrepareEnvironment": false,
              "Colour": "blue"
            }
            """,
        )
    )
    rc = loaded.config
    assert rc.script == "train.py"
    assert rc.arguments == ["--epochs", "3"]
    assert rc.target == "remote-vm"
    assert rc.framework == "python"
    assert rc.environment.python.conda_dependencies_file == "aml_config/conda.yml"
    assert rc.environment.python.user_managed_dependencies is True
    named = [w.split(": ")[1] for w in loaded.warnings]
    assert named == ["Colour", "Framework", "PrepareEnvironment", "TrackedRun"]


# ---------------------------------------------------------------- convert -------------


def test_convert_writes_our_format_that_loads_back_the_same(tmp_path: Path) -> None:
    project = tmp_path / "iris"
    shutil.copytree(IRIS, project)
    dst = project / "runconfigs" / "local.yml"
    loaded = convert_runconfig(project / "aml_config" / "local.runconfig", dst)
    assert loaded.warnings  # the "$file" warning, for the caller to show
    text = dst.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "source_directory: ..\n" in text
    again = load_runconfig(dst, project_dir=tmp_path / "somewhere-else")
    assert again.format == "targets"
    assert again.source_directory == project.resolve()
    assert again.warnings == ()
    expected = loaded.config.model_copy(update={"source_directory": ".."})
    assert again.config == expected


def test_convert_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    project = tmp_path / "nb"
    shutil.copytree(NOTEBOOKS, project)
    dst = write(project / "train.yml", "# mine\n")
    with pytest.raises(UsageError, match="already exists"):
        convert_runconfig(project / "aml_config" / "local.runconfig", dst)
    assert dst.read_text() == "# mine\n"
    from targets.runconfig.io import convert_runconfig as convert_via_io  # the CLI's import

    convert_via_io(project / "aml_config" / "local.runconfig", dst, overwrite=True)
    rc = load_runconfig(dst).config
    assert rc.script == "train.py"
    assert rc.source_directory == "."
    assert rc.environment.python.conda_dependencies_file == "aml_config/conda_dependencies.yml"
