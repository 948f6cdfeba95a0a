"""Loading and saving our runconfig YAML: round trips, errors that name file/line/key,
format detection, the SDK-style search, source-directory and conda-file resolution."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from targets.errors import ConfigError
from targets.runconfig import (
    LoadedRunConfig,
    RunConfiguration,
    dump_runconfig,
    load_runconfig,
    save_runconfig,
)
from targets.runconfig.model import (
    SCHEMA_URL,
    AmlComputeSection,
    CondaSpec,
    DatabricksSection,
    DockerSection,
    EnvironmentSection,
    HdiSection,
    HistorySection,
    MpiSection,
    PipBlock,
    PythonSection,
    PyTorchSection,
    RegistrySection,
    SparkConfigSection,
    SparkEnvSection,
    SparkPackage,
    TensorFlowSection,
)

TRICKY_ARGUMENTS = [
    "--msg",
    'it\'s a "quoted" value',
    "two words",
    "a; rm -rf /",
    "$(whoami)",
    "`id`",
    "0.5",
    "1.10",
    "010",
    "true",
    "null",
    "~",
    "- dash",
    "key: value",
    "#not-a-comment",
    "",
    " leading and trailing ",
    "tab\there",
    "ünïcödé",
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def full_config(src: str = "src", conda: str | None = None) -> RunConfiguration:
    """A configuration with every section set to something other than its default."""
    python = PythonSection(
        user_managed_dependencies=False,
        interpreter_path="/opt/py/bin/python3",
        base_conda_environment="base-env",
    )
    if conda is None:
        python.conda_dependencies = CondaSpec(
            name="train",
            channels=["conda-forge", "defaults"],
            dependencies=["python=3.11", "numpy>=1.26", PipBlock(pip=["--index-url x", "rich"])],
            variables={"OMP_NUM_THREADS": "4"},
            prefix="/opt/envs/train",
        )
    else:
        python.conda_dependencies_file = conda
    return RunConfiguration(
        script="train.py",
        arguments=["--alpha", "0.5", "--name", "two words"],
        source_directory=src,
        target="gpu-box",
        experiment_name="exp",
        framework="pyspark",
        communicator="OpenMpi",
        node_count=3,
        max_run_duration_seconds=3600,
        priority=5,
        environment_variables={"A": "1", "lower_case": "kept", "EMPTY": ""},
        environment=EnvironmentSection(
            name="my-env",
            version="10",
            environment_variables={"X": "y"},
            python=python,
            docker=DockerSection(
                enabled=True,
                base_image="python:3.11-slim",
                base_dockerfile="FROM python:3.11\nRUN pip install rich\n",
                base_image_registry=RegistrySection(address="reg.example", username="me"),
                shm_size="8g",
                arguments=["--cap-add", "SYS_PTRACE"],
                gpu=True,
                shared_volumes=False,
                platform={"os": "Linux", "architecture": "arm64"},
            ),
            spark=SparkEnvSection(
                repositories=["https://repo.example/maven"],
                packages=[SparkPackage(group="g", artifact="a", version="1.0")],
                precache_packages=False,
            ),
            databricks=DatabricksSection(
                pypi_libraries=[{"package": "rich"}], cluster={"existingClusterId": "c-1"}
            ),
        ),
        history=HistorySection(
            output_collection=False, snapshot_project=False, directories_to_watch=["logs", "x"]
        ),
        spark=SparkConfigSection(configuration={"spark.executor.cores": "2"}),
        hdi=HdiSection(yarn_deploy_mode="client"),
        mpi=MpiSection(process_count_per_node=4, node_count=2),
        pytorch=PyTorchSection(communication_backend="gloo", process_count=8, node_count=2),
        tensorflow=TensorFlowSection(worker_count=3, parameter_server_count=2),
        amlcompute=AmlComputeSection(
            vm_size="Standard_D2",
            vm_priority="lowpriority",
            cluster_max_node_count=4,
            retain_cluster=True,
            name="cl",
        ),
    )


def round_trip(config: RunConfiguration, tmp_path: Path) -> LoadedRunConfig:
    path = tmp_path / "rc" / "run.yml"
    save_runconfig(config, path)
    return load_runconfig(path, project_dir=tmp_path)


# ------------------------------------------------------------------ round trips -------


def test_round_trip_of_a_config_with_every_section_set(tmp_path: Path) -> None:
    (tmp_path / "rc" / "src").mkdir(parents=True)
    config = full_config()
    loaded = round_trip(config, tmp_path)
    assert loaded.config == config
    assert loaded.format == "targets"
    assert loaded.warnings == ()
    assert loaded.source_directory == (tmp_path / "rc" / "src").resolve()


def test_round_trip_with_a_conda_file_and_a_command(tmp_path: Path) -> None:
    (tmp_path / "rc" / "src" / "envs").mkdir(parents=True)
    (tmp_path / "rc" / "src" / "envs" / "conda.yml").write_text("dependencies: [python=3.11]\n")
    config = full_config(conda="envs/conda.yml")
    config.script = None
    config.arguments = []
    config.command = "python -m train --epochs 3 && echo done"
    assert round_trip(config, tmp_path).config == config
    config.command = ["python", "-c", "print('hi; there')"]
    assert round_trip(config, tmp_path).config == config


@pytest.mark.parametrize(
    "config",
    [
        RunConfiguration(),
        RunConfiguration(script="a.py"),
        RunConfiguration(
            script="a.py",
            environment=EnvironmentSection(
                docker=DockerSection(shm_size=None, base_image_registry=RegistrySection())
            ),
        ),
        RunConfiguration(
            script="a.py", communicator="None", history=HistorySection(directories_to_watch=[])
        ),
        RunConfiguration(script="a.py", mpi=MpiSection(node_count=None)),
        RunConfiguration(
            script="a.py", environment=EnvironmentSection(databricks=DatabricksSection())
        ),
    ],
    ids=["defaults", "script", "null-shm-and-empty-registry", "empty-watch", "mpi", "empty-db"],
)
def test_round_trip_of_edge_values(config: RunConfiguration, tmp_path: Path) -> None:
    assert round_trip(config, tmp_path).config == config


def test_arguments_with_quotes_spaces_and_shell_syntax_survive_verbatim(tmp_path: Path) -> None:
    config = RunConfiguration(script="a.py", arguments=TRICKY_ARGUMENTS)
    loaded = round_trip(config, tmp_path)
    assert loaded.config.arguments == TRICKY_ARGUMENTS
    env = {f"V{i}": value for i, value in enumerate(TRICKY_ARGUMENTS)}
    config = RunConfiguration(script="a.py", environment_variables=env)
    assert round_trip(config, tmp_path).config.environment_variables == env


def test_saved_file_starts_with_the_schema_line_and_omits_defaults(tmp_path: Path) -> None:
    config = RunConfiguration(script="train.py", arguments=["--alpha", "0.5"])
    config.environment.docker.enabled = True
    text = dump_runconfig(config)
    assert text.splitlines()[0] == f"# yaml-language-server: $schema={SCHEMA_URL}"
    assert text.splitlines()[1:] == [
        "script: train.py",
        "arguments:",
        "  - --alpha",
        "  - '0.5'",
        "environment:",
        "  docker:",
        "    enabled: true",
    ]
    save_runconfig(config, tmp_path / "a.yml", schema="../docs/schemas/runconfig.schema.json")
    first = (tmp_path / "a.yml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../docs/schemas/runconfig.schema.json"


def test_a_dockerfile_is_written_as_a_literal_block(tmp_path: Path) -> None:
    config = RunConfiguration(script="a.py")
    config.environment.docker.base_dockerfile = "FROM python:3.11\nRUN echo 'hi'\n"
    assert "base_dockerfile: |\n      FROM python:3.11\n" in dump_runconfig(config)
    assert round_trip(config, tmp_path).config == config


def test_model_save_and_load_use_our_format(tmp_path: Path) -> None:
    config = RunConfiguration(script="a.py", target="box")
    config.save(tmp_path / "x.yml")
    assert RunConfiguration.load(tmp_path / "x.yml") == config


# --------------------------------------------------------------- scalars as written -----


def test_plain_numbers_in_string_fields_keep_their_spelling(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rc.yml",
        """
        script: a.py
        arguments: [--lr, 1.10, --n, 007, --big, 1_000, --f, 0.5, --flag, true]
        environment_variables: {V: 010, W: 1.50}
        environment:
          version: 1.0
          docker: {shm_size: 1024}
        spark:
          configuration: {spark.executor.cores: 2, yes: no}
        """,
    )
    config = load_runconfig(path).config
    assert config.arguments == [
        "--lr",
        "1.10",
        "--n",
        "007",
        "--big",
        "1_000",
        "--f",
        "0.5",
        "--flag",
        "true",
    ]
    assert config.environment_variables == {"V": "010", "W": "1.50"}
    assert config.environment.version == "1.0"
    assert config.environment.docker.shm_size == "1024"
    assert config.spark.configuration == {"spark.executor.cores": "2", "yes": "false"}


# ------------------------------------------------------------------------ errors ------


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_runconfig(tmp_path / "nope.yml")
    assert str(tmp_path / "nope.yml") in str(info.value)
    assert "not found" in str(info.value)
    assert info.value.exit_code == 2


def test_a_directory_without_a_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="found a directory"):
        load_runconfig(tmp_path)


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "rc.yml", "script: a.py\narguments: [--a\ntarget: local\n")
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    assert info.value.path == str(path)
    assert info.value.line == 3
    assert "invalid YAML" in str(info.value)


def test_unknown_key_names_it_its_line_and_the_nearest_key(tmp_path: Path) -> None:
    path = write(tmp_path / "rc.yml", "target: local\nscirpt: train.py\n")
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    error = info.value
    assert error.line == 2
    assert error.key_path == "scirpt"
    assert "unknown key 'scirpt' (did you mean 'script'?)" in str(error)
    assert str(error).startswith(f"{path}:2: scirpt: ")


def test_nested_unknown_key_suggests_from_its_own_section(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rc.yml",
        """
        script: a.py
        environment:
          docker:
            enabled: true
            shm_sise: 2g
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    assert info.value.line == 5
    assert info.value.key_path == "environment.docker.shm_sise"
    assert "did you mean 'shm_size'?" in str(info.value)


def test_wrong_type_names_the_expected_type(tmp_path: Path) -> None:
    path = write(tmp_path / "rc.yml", "script: a.py\nnode_count: many\n")
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    assert info.value.line == 2
    assert info.value.key_path == "node_count"
    assert "expected an integer, got 'many'" in str(info.value)


def test_bad_value_inside_a_list_names_the_item(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rc.yml",
        """
        script: a.py
        environment:
          spark:
            packages:
              - {group: g, artifact: a, version: 1}
              - {group: g, artifact: b}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    assert info.value.key_path == "environment.spark.packages[1].version"
    assert info.value.line == 6
    assert "required key 'version' is missing" in str(info.value)


def test_several_errors_are_all_reported_one_per_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rc.yml",
        """
        script: a.py
        node_count: 0
        framework: tensorflw
        environment:
          docker:
            shm_size: huge
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{path}:2: node_count: must be at least 1")
    assert lines[1].startswith(f"{path}:3: framework: expected one of 'python' or 'pyspark'")
    assert lines[2].startswith(f"{path}:6: environment.docker.shm_size: shm_size 'huge'")


def test_union_type_error_says_what_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "rc.yml", "command: {run: x}\n")
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    assert "command: expected a string or a list of strings, got a mapping" in str(info.value)


def test_script_and_command_together_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "rc.yml", "script: a.py\ncommand: python a.py\n")
    with pytest.raises(ConfigError, match="either script or command"):
        load_runconfig(path)


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "rc.yml", "script: a.py\ntarget: a\ntarget: b\n")
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    assert info.value.line == 3
    assert "duplicate key 'target'" in str(info.value)


@pytest.mark.parametrize(("text", "got"), [("", "an empty file"), ("- a\n- b\n", "a list")])
def test_a_file_that_is_not_a_mapping_is_an_error(tmp_path: Path, text: str, got: str) -> None:
    path = tmp_path / "rc.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"expected a mapping of runconfig keys, got {got}"):
        load_runconfig(path)


def test_conda_or_spark_files_passed_as_runconfig_are_explained(tmp_path: Path) -> None:
    conda = write(tmp_path / "conda_dependencies.yml", "name: x\ndependencies: [python]\n")
    with pytest.raises(ConfigError, match="conda environment file"):
        load_runconfig(conda)
    spark = write(tmp_path / "spark_dependencies.yml", "configuration: {}\nrepositories: []\n")
    with pytest.raises(ConfigError, match="Spark dependencies file"):
        load_runconfig(spark)


# --------------------------------------------------------------- format detection ----


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("run.yml", "script: a.py\n", "targets"),
        ("run.yml", "script: a.py\nnodeCount: 2\n", "azureml-v1"),
        ("run.yml", "script: a.py\nenvironment:\n  docker:\n    baseImage: x\n", "azureml-v1"),
        ("run.yml", "script: a.py\nauto_prepare_environment: true\n", "azureml-v1"),
        ("run.yml", "script: a.py\ndocker: {use_docker: true}\n", "azureml-v1"),
        ("run.runconfig", "script: a.py\n", "azureml-v1"),
        (".azureml/local", "script: a.py\n", "azureml-v1"),
        ("aml_config/local", "script: a.py\n", "azureml-v1"),
        (".azureml/ours.yml", "script: a.py\n", "targets"),
        ("x.runconfig", 'Target: "local"\nArgumentVector: [a.py]\n', "azureml-workbench"),
        ("x.json", '{"Target": "local", "TrackedRun": true}', "azureml-workbench"),
    ],
)
def test_format_detection(tmp_path: Path, relative: str, text: str, expected: str) -> None:
    path = write(tmp_path / relative, text)
    assert load_runconfig(path, project_dir=tmp_path).format == expected


def test_a_camelcase_typo_in_our_format_is_an_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path / "rc.yml", "scriptName: a.py\n")
    with pytest.raises(ConfigError, match="unknown key 'scriptName'"):
        load_runconfig(path)


# ---------------------------------------------------------------- SDK-style search ---


def test_load_by_directory_and_name_finds_azureml_files(tmp_path: Path) -> None:
    write(tmp_path / ".azureml" / "local", "script: a.py\n")
    write(tmp_path / ".azureml" / "gpu.runconfig", "script: b.py\n")
    write(tmp_path / "top.runconfig", "script: c.py\n")
    assert load_runconfig(tmp_path, "local").config.script == "a.py"
    assert load_runconfig(tmp_path, "gpu").config.script == "b.py"
    loaded = load_runconfig(tmp_path, "top")
    assert loaded.config.script == "c.py"
    assert loaded.path == tmp_path / "top.runconfig"
    assert loaded.source_directory == tmp_path.resolve()


def test_aml_config_wins_when_it_exists(tmp_path: Path) -> None:
    write(tmp_path / ".azureml" / "local.runconfig", "script: new.py\n")
    write(tmp_path / "aml_config" / "local.runconfig", "script: old.py\n")
    assert load_runconfig(tmp_path, "local").config.script == "old.py"


def test_name_not_found_lists_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_runconfig(tmp_path, "cpu")
    message = str(info.value)
    for place in (".azureml/cpu", ".azureml/cpu.runconfig", "aml_config/cpu", "cpu.runconfig"):
        assert str(tmp_path / place) in message


# -------------------------------------------------------------- source directory ------


def test_source_directory_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    path = write(tmp_path / "runconfigs" / "rc.yml", "script: a.py\nsource_directory: ../code\n")
    loaded = load_runconfig(path, project_dir=tmp_path / "elsewhere")
    assert loaded.source_directory == (tmp_path / "code").resolve()
    assert loaded.config.source_directory == "../code"
    assert loaded.path == path


def test_source_directory_defaults_to_project_dir_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "runconfigs" / "rc.yml", "script: a.py\n")
    assert load_runconfig(path, project_dir=tmp_path).source_directory == tmp_path.resolve()
    monkeypatch.chdir(tmp_path / "runconfigs")
    loaded = load_runconfig("rc.yml")
    assert loaded.source_directory == (tmp_path / "runconfigs").resolve()
    assert loaded.path == path.absolute()


def test_missing_source_directory_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "rc.yml", "script: a.py\nsource_directory: nowhere\n")
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    assert info.value.line == 2
    assert "source_directory 'nowhere' is not a directory" in str(info.value)


# ------------------------------------------------------------------ conda file ---------


def conda_rc(tmp_path: Path, value: str, source: str = "code") -> Path:
    return write(
        tmp_path / "runconfigs" / "rc.yml",
        f"""
        script: a.py
        source_directory: ../{source}
        environment:
          python:
            conda_dependencies_file: {value}
        """,
    )


def test_conda_file_relative_to_the_source_directory(tmp_path: Path) -> None:
    write(tmp_path / "code" / "envs" / "conda.yml", "dependencies: [python=3.11]\n")
    loaded = load_runconfig(conda_rc(tmp_path, "envs/conda.yml"))
    assert loaded.config.environment.python.conda_dependencies_file == "envs/conda.yml"


def test_conda_file_falls_back_to_the_runconfig_folder(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    write(tmp_path / "runconfigs" / "conda.yml", "dependencies: [python=3.11]\n")
    loaded = load_runconfig(conda_rc(tmp_path, "conda.yml"))
    # Outside the source directory: stored absolute.
    expected = str((tmp_path / "runconfigs" / "conda.yml").resolve())
    assert loaded.config.environment.python.conda_dependencies_file == expected


def test_conda_file_found_via_runconfig_folder_inside_source_is_relative(tmp_path: Path) -> None:
    write(tmp_path / "runconfigs" / "conda.yml", "dependencies: [python=3.11]\n")
    loaded = load_runconfig(conda_rc(tmp_path, "conda.yml", source=""))
    assert loaded.config.environment.python.conda_dependencies_file == "runconfigs/conda.yml"


def test_missing_conda_file_names_both_places(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    path = conda_rc(tmp_path, "envs/missing.yml")
    with pytest.raises(ConfigError) as info:
        load_runconfig(path)
    message = str(info.value)
    assert "conda dependencies file 'envs/missing.yml' not found" in message
    assert str(tmp_path.resolve() / "code" / "envs" / "missing.yml") in message
    assert str(tmp_path / "runconfigs" / "envs" / "missing.yml") in message
    assert info.value.line == 5
    assert info.value.key_path == "environment.python.conda_dependencies_file"


def test_an_invalid_conda_file_is_reported_at_load(tmp_path: Path) -> None:
    write(tmp_path / "code" / "conda.yml", "name: x\npackages: [numpy]\n")
    with pytest.raises(ConfigError) as info:
        load_runconfig(conda_rc(tmp_path, "conda.yml"))
    assert info.value.path == str((tmp_path / "code" / "conda.yml").resolve())
    assert "unknown key 'packages'" in str(info.value)


# ------------------------------------------------------------------ package -----------


def test_importing_the_package_does_not_import_yaml() -> None:
    code = "import sys, targets.runconfig; print('yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names() -> None:
    import targets.runconfig as rc

    assert sorted(rc.__all__) == [
        "CondaDependencies",
        "LoadedRunConfig",
        "RunConfiguration",
        "convert_runconfig",
        "dump_runconfig",
        "load_runconfig",
        "runconfig_json_schema",
        "save_runconfig",
    ]
    for name in rc.__all__:
        assert getattr(rc, name) is not None
