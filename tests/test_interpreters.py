"""Real Azure ML v1 files that pin an old Python or ask for Docker (issue 16, parts 3 and 4).

A conda file's ``python=3.6.2`` gets an interpreter of that version found on the target
(PATH, pyenv, uv's); where there is none, ``targets run`` refuses before the run is queued
(exit 2) with the versions the target has and the override (``--python-version`` /
``TARGETS_PYTHON_VERSION``). A ``docker.enabled: true`` run on a target without a usable
engine is refused the same way, naming ``--no-docker`` / ``TARGETS_NO_DOCKER``, which runs
the same conda environment without Docker.

Against the local target (this machine's pyenv, ``/root/.pyenv``, holds 2.7 and 3.6 to
3.13), the suite's sshd VM (Debian's Python only) and the suite's Docker engine.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401 - fixture
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "azureml-corpus" / "v1"
REAL = REPO / "tests" / "data" / "jobs-real" / "interpreters"
PYENV = Path(os.environ.get("TARGETS_TEST_PYENV_ROOT", "/root/.pyenv"))
TRAIN = (
    "import os, sys\n"
    "print('python', '%d.%d.%d' % sys.version_info[:3])\n"
    "print('executable', sys.executable)\n"
    "print('var', os.environ.get('EXAMPLE_ENV_VAR'))\n"
)
NO_DOCKER_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def pyenv_version(minor: str) -> Path:
    """The pyenv installation of Python ``minor`` (e.g. ``3.6``) on this machine."""
    found = sorted((PYENV / "versions").glob(minor + ".*"))
    if not found:
        pytest.skip(f"this machine's pyenv ({PYENV}) has no Python {minor}")
    return found[-1]


def copy_project(source: Path, project: Path) -> None:
    """A real project's aml_config (byte for byte) plus our own train.py."""
    shutil.copytree(source / "aml_config", project / "aml_config")
    (project / "train.py").write_text(TRAIN)


@pytest.fixture
def with_pyenv(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's pyenv, as a shell with ``pyenv init`` has it (the test HOME is empty)."""
    pyenv_version("3.6")
    monkeypatch.setenv("PYENV_ROOT", str(PYENV))
    return PYENV


@pytest.fixture
def without_pyenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine whose only Pythons are the system's (and the test venv, which is a
    virtual environment and so no base for a build)."""
    empty = tmp_path / "no-pyenv"
    (empty / "versions").mkdir(parents=True)
    monkeypatch.setenv("PYENV_ROOT", str(empty))
    monkeypatch.setenv(
        "PATH", os.pathsep.join([os.path.join(sys.prefix, "bin"), "/usr/bin", "/bin"])
    )


def queued_nothing(project: Path, home: Path) -> None:
    assert Workspace(project).ledger.count() == 0
    objects = home / ".targets" / "objects"
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))


def last_run(project: Path) -> Path:
    runs = sorted((project / ".targets" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    return runs[-1]


# -- part 3: the Python a conda file pins ------------------------------------------------


@pytest.mark.parametrize(
    "repo", ["Azure__MachineLearningNotebooks", "microsoft__solution-accelerator-many-models"]
)
def test_a_real_runconfig_pinning_python_3_6_runs_with_pyenvs_3_6(repo, project, cli, with_pyenv):
    copy_project(CORPUS / repo, project)
    result = cli("run", "aml_config/local.runconfig", timeout=300)
    assert result.code == 0, result
    version = pyenv_version("3.6").name
    assert f"python {version}" in result.out and "var EXAMPLE_VALUE" in result.out
    prepare = (last_run(project) / "prepare.log").read_text()
    assert f"/versions/{version}/bin/python" in prepare


def test_python_3_8_from_a_conda_file_comes_from_pyenv(project, cli, write, with_pyenv):
    version = pyenv_version("3.8").name
    write(project / "train.py", TRAIN)
    write(project / "env.yml", "dependencies:\n  - python=3.8\n")
    write(
        project / "rc.yml",
        "script: train.py\nenvironment:\n  python:\n    conda_dependencies_file: env.yml\n",
    )
    result = cli("run", "rc.yml", timeout=300)
    assert result.code == 0, result
    assert f"python {version}" in result.out


def test_a_python_the_target_lacks_is_refused_before_the_run_is_queued(
    project, cli, without_pyenv, isolated_home
):
    copy_project(CORPUS / "Azure__MachineLearningNotebooks", project)
    result = cli("run", "aml_config/local.runconfig")
    assert result.code == 2, result
    assert "needs Python 3.6, which target 'local' does not have" in result.err
    system = "{}.{}".format(*sys.version_info[:2])
    assert f"it has: {system}" in result.err
    assert "--python-version nearest" in result.err and "TARGETS_PYTHON_VERSION" in result.err
    assert "environment preparation failed" not in result.err
    queued_nothing(project, isolated_home)


def test_nearest_takes_the_nearest_version_the_target_has_with_a_warning(
    project, cli, without_pyenv
):
    copy_project(CORPUS / "Azure__MachineLearningNotebooks", project)
    result = cli("run", "aml_config/local.runconfig", "--python-version", "nearest", timeout=300)
    assert result.code == 0, result
    system = "{}.{}".format(*sys.version_info[:2])
    assert f"python {system}." in result.out
    assert f"pins Python 3.6; the environment is built with Python {system}" in result.err


def test_the_override_is_a_runconfig_setting_too(project, cli, write, without_pyenv):
    """TARGETS_PYTHON_VERSION among a v1 file's environmentVariables, no option needed."""
    copy_project(CORPUS / "Azure__MachineLearningNotebooks", project)
    rc = project / "aml_config" / "local.runconfig"
    text = rc.read_text().replace(
        "    EXAMPLE_ENV_VAR: EXAMPLE_VALUE\n",
        "    EXAMPLE_ENV_VAR: EXAMPLE_VALUE\n    TARGETS_PYTHON_VERSION: nearest\n",
    )
    rc.write_text(text)
    result = cli("run", "aml_config/local.runconfig", timeout=300)
    assert result.code == 0, result
    assert "[python-version]" in result.err


def test_a_2017_file_pinning_python_3_5_names_what_this_machine_has(
    project, cli, with_pyenv, isolated_home
):
    """Azure-Samples' Iris (a Workbench "$file" runconfig) pins python=3.5.2."""
    copy_project(CORPUS / "Azure-Samples__MachineLearningSamples-Iris", project)
    result = cli("run", "train.py", "-r", "aml_config/local.runconfig")
    assert result.code == 2, result
    assert "needs Python 3.5" in result.err
    assert "3.6, 3.7, 3.8" in result.err  # pyenv's versions, listed
    assert "nearest version it has (3.6)" in result.err
    queued_nothing(project, isolated_home)


@pytest.mark.parametrize("value", ["3", "3.x", "latest"])
def test_a_malformed_python_version_is_refused(project, cli, write, value):
    write(project / "train.py", TRAIN)
    result = cli("run", "train.py", "--python-version", value)
    assert result.code == 2, result
    assert "is not a Python version" in result.err


# -- the same on the sshd VM (Debian's Python 3 only) -------------------------------------


@pytest.fixture
def dsvm(sshd: SSHServer, project: Path, cli) -> str:
    result = cli(
        "attach", "dsvm", "--address", sshd.host, "--ssh-port", str(sshd.port),
        "--username", sshd.user, "--ssh-key", str(sshd.key), "--accept-host-key",
    )  # fmt: skip
    assert result.code == 0, result
    return "dsvm"


def test_on_a_vm_a_missing_python_is_refused_and_nearest_runs(dsvm, project, cli, isolated_home):
    copy_project(CORPUS / "Azure__MachineLearningNotebooks", project)
    refused = cli("run", "aml_config/local.runconfig", "--target", dsvm)
    assert refused.code == 2, refused
    assert "needs Python 3.6, which target 'dsvm' does not have (it has: 3." in refused.err
    assert Workspace(project).ledger.count() == 0
    ran = cli(
        "run", "aml_config/local.runconfig", "--target", dsvm, "--python-version", "nearest",
        timeout=300,
    )  # fmt: skip
    assert ran.code == 0, ran
    assert "python 3." in ran.out and "[python-version]" in ran.err


# -- part 4: docker.enabled where Docker is unusable --------------------------------------


def test_a_real_docker_runconfig_without_an_engine_is_refused_naming_no_docker(
    project, cli, isolated_home
):
    """microsoft/solution-accelerator-many-models' aml_config/docker.runconfig."""
    copy_project(REAL / "many-models", project)
    result = cli("run", "aml_config/docker.runconfig", env=NO_DOCKER_ENGINE)
    assert result.code == 2, result
    assert "target 'local' cannot run this Docker environment" in result.err
    assert "mcr.microsoft.com/azureml/base:0.2.3" in result.err
    assert "--no-docker" in result.err and "TARGETS_NO_DOCKER" in result.err
    queued_nothing(project, isolated_home)


def test_no_docker_builds_the_same_conda_environment_without_an_engine(
    project, cli, write, with_pyenv, isolated_home
):
    """The conda file of the many-models project (python=3.6.2) in a docker.enabled
    runconfig: with --no-docker it runs in a uv environment with pyenv's 3.6."""
    copy_project(REAL / "many-models", project)
    write(
        project / "rc.yml",
        "script: train.py\n"
        "environment_variables:\n  EXAMPLE_ENV_VAR: from-rc\n"
        "environment:\n"
        "  python:\n    conda_dependencies_file: aml_config/conda_dependencies.yml\n"
        "  docker:\n    enabled: true\n    base_image: mcr.microsoft.com/azureml/base:0.2.3\n",
    )
    result = cli("run", "rc.yml", "--no-docker", env=NO_DOCKER_ENGINE, timeout=300)
    assert result.code == 0, result
    assert "[no-docker] environment.docker (image mcr.microsoft.com/azureml/base:0.2.3)" in (
        result.err
    )
    assert f"python {pyenv_version('3.6').name}" in result.out
    # Built on this machine, in the agent's environment cache (not in an image).
    assert f"executable {isolated_home / '.targets' / 'envs'}" in result.out


def test_no_docker_as_a_runconfig_setting_skips_a_working_engine(
    docker_engine: DockerEngine, project, cli, write
):
    """TARGETS_NO_DOCKER: 1 among the variables: Docker is set aside even where it works."""
    write(project / "train.py", TRAIN)
    write(
        project / "rc.yml",
        "script: train.py\n"
        "environment_variables:\n  TARGETS_NO_DOCKER: '1'\n"
        "environment:\n"
        f"  docker:\n    enabled: true\n    base_image: {docker_engine.image}\n",
    )
    result = cli("run", "rc.yml", timeout=300)
    assert result.code == 0, result
    # The user's Python on this machine (the test venv), not the image's.
    assert f"executable {sys.prefix}" in result.out
    assert "[no-docker]" in result.err and "default Python" in result.err
