"""CondaDependencies behaves like Azure ML v1's, minus the injected Azure packages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from targets.errors import ConfigError
from targets.runconfig import CondaDependencies
from targets.runconfig.conda import load_conda_file
from targets.runconfig.model import CondaSpec, PipBlock

CORPUS = Path(__file__).resolve().parent / "data" / "azureml-corpus" / "v1"
IRIS_CONDA = CORPUS / "Azure-Samples__MachineLearningSamples-Iris" / "aml_config"
NOTEBOOKS_CONDA = CORPUS / "Azure__MachineLearningNotebooks" / "aml_config"
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def copy_of(tmp_path: Path, source: Path) -> Path:
    target = tmp_path / source.name
    target.write_bytes(source.read_bytes())
    return target


def test_reads_the_iris_workbench_file() -> None:
    deps = CondaDependencies(IRIS_CONDA / "conda_dependencies.yml")
    assert deps.conda_packages == ["python=3.5.2", "scikit-learn"]
    assert deps.pip_packages == [
        "notebook",
        "matplotlib",
        "azure-ml-api-sdk==0.1.0a11",
        "azureml-model-management-sdk==1.0.1b6",
    ]
    assert deps.pip_options == []
    assert deps.get_python_version() == "3.5.2"


def test_unchanged_file_is_saved_byte_for_byte(tmp_path: Path) -> None:
    # This corpus file has CR CR LF line ends and comments everywhere.
    source = NOTEBOOKS_CONDA / "conda_dependencies.yml"
    deps = CondaDependencies(source)
    assert deps.pip_packages == ["azureml-defaults"]
    out = tmp_path / "out.yml"
    assert deps.save(out) == str(out)
    assert out.read_bytes() == source.read_bytes()


def test_a_changed_file_keeps_its_header_comments(tmp_path: Path) -> None:
    path = copy_of(tmp_path, IRIS_CONDA / "conda_dependencies.yml")
    deps = CondaDependencies(path)
    deps.add_pip_package("rich==13.0")
    deps.save()
    text = path.read_text()
    assert text.startswith("# Conda environment specification.")
    assert "# For Spark packages and configuration, see spark_dependencies.yml.\n\nname:" in text
    again = CondaDependencies(path)
    assert again.pip_packages[-1] == "rich==13.0"
    assert again.conda_packages == ["python=3.5.2", "scikit-learn"]


def test_default_template_uses_the_running_python_and_injects_nothing() -> None:
    deps = CondaDependencies()
    assert deps.get_python_version() == RUNNING
    assert deps.pip_packages == []
    assert deps.pip_options == []
    assert deps.conda_channels == ["conda-forge"]


def test_create() -> None:
    deps = CondaDependencies.create(
        pip_packages=["scikit-learn==1.4", "rich"],
        conda_packages=["numpy=1.26"],
        python_version="3.10",
        pin_sdk_version=True,
    )
    assert deps.conda_packages == ["python=3.10", "numpy=1.26"]
    assert deps.pip_packages == ["scikit-learn==1.4", "rich"]
    assert deps.pip_options == []
    assert "azureml" not in deps.serialize_to_string()
    spec = deps.as_spec()
    assert spec.dependencies == [
        "python=3.10",
        PipBlock(pip=["scikit-learn==1.4", "rich"]),
        "numpy=1.26",
    ]
    assert CondaDependencies.create().get_python_version() == RUNNING


def test_adding_a_package_again_replaces_its_version() -> None:
    deps = CondaDependencies.create(pip_packages=["torch==2.0"], conda_packages=["numpy"])
    deps.add_pip_package("Torch>=2.1")
    deps.add_conda_package("numpy=1.26")
    deps.add_conda_package("conda-forge::scipy")
    assert deps.pip_packages == ["Torch>=2.1"]
    assert deps.conda_packages == [f"python={RUNNING}", "numpy=1.26", "conda-forge::scipy"]
    deps.remove_pip_package("torch")
    deps.remove_conda_package("scipy")
    assert deps.pip_packages == []
    assert deps.conda_packages == [f"python={RUNNING}", "numpy=1.26"]


def test_pip_options_are_not_packages() -> None:
    deps = CondaDependencies.create(pip_packages=["rich"])
    deps.set_pip_option("--index-url https://a.example/simple")
    deps.set_pip_option("--extra-index-url https://b.example/simple")
    deps.set_pip_option("--index-url https://c.example/simple")  # replaces the first
    assert deps.pip_packages == ["rich"]
    assert deps.pip_options == [
        "--extra-index-url https://b.example/simple",
        "--index-url https://c.example/simple",
    ]
    deps.remove_pip_package("rich")
    assert len(deps.pip_options) == 2


def test_pip_options_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text(
        "dependencies:\n  - python=3.11\n  - pip:\n"
        "    - --find-links ./wheels\n    - -f other\n    - -i https://idx\n    - requests\n"
    )
    deps = CondaDependencies(path)
    assert deps.pip_packages == ["requests"]
    assert deps.pip_options == ["--find-links ./wheels", "-f other", "-i https://idx"]


def test_channels_and_python_version() -> None:
    deps = CondaDependencies.create(python_version="3.9")
    deps.add_channel("pytorch")
    deps.add_channel("pytorch")
    assert deps.conda_channels == ["conda-forge", "pytorch"]
    deps.set_python_version("3.12.1")
    assert deps.get_python_version() == "3.12.1"


def test_save_to_file(tmp_path: Path) -> None:
    deps = CondaDependencies.create(pip_packages=["rich"])
    written = deps.save_to_file(tmp_path)
    assert written == str(tmp_path / "conda_dependencies.yml")
    assert CondaDependencies(written).pip_packages == ["rich"]
    other = deps.save_to_file(tmp_path, "envs/train.yml")
    assert Path(other) == tmp_path / "envs" / "train.yml"


def test_save_without_a_path_needs_a_file() -> None:
    with pytest.raises(ConfigError, match="no file to save to"):
        CondaDependencies.create().save()


def test_unknown_top_level_key_is_refused_like_the_sdk(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("name: x\ndependencies: [python]\npip: [rich]\n")
    with pytest.raises(ConfigError) as info:
        CondaDependencies(path)
    assert info.value.line == 3
    assert info.value.key_path == "pip"
    assert "unknown key 'pip'" in str(info.value)
    assert "name, channels, dependencies, prefix, variables" in str(info.value)


def test_load_conda_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("dependencies:\n  - python\n  - [nested]\n")
    with pytest.raises(ConfigError) as info:
        load_conda_file(path)
    assert info.value.key_path is not None
    assert info.value.key_path.startswith("dependencies[1]")
    assert info.value.line == 3
    path.write_text("dependencies: [python\n")
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load_conda_file(path)
    assert info.value.line == 2
    path.write_text("- python\n")
    with pytest.raises(ConfigError, match="expected a conda environment mapping, got a list"):
        load_conda_file(path)
    with pytest.raises(ConfigError, match="not found"):
        load_conda_file(tmp_path / "missing.yml")


def test_load_conda_file_returns_the_model() -> None:
    spec = load_conda_file(IRIS_CONDA / "conda_dependencies.yml")
    assert isinstance(spec, CondaSpec)
    assert spec.name == "project_environment"
    assert spec.dependencies[:2] == ["python=3.5.2", "scikit-learn"]
    pip = spec.dependencies[2]
    assert isinstance(pip, PipBlock)
    assert "notebook" in pip.pip
