"""Environments users actually name in v2 jobs: Azure ML's curated environments (by
workspace name and by registry URI), Azure's mcr.microsoft.com/azureml build images, Docker
build contexts, and isolation from targets' own Python when an image is set aside."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from targets.errors import ConfigError, UsageError
from targets.workspace import Workspace
from tests.conftest import REPO
from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401

REAL = REPO / "tests" / "data" / "jobs-real" / "environments" / "cli" / "jobs" / "single-step"
NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
SCHEMA = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"


def prepared(project: Path, text: str, docker_ok: str | None = None):  # type: ignore[no-untyped-def]
    """The RunConfiguration and warnings that the job ``text`` becomes (the library
    function `targets run` uses)."""
    from targets.jobs.execute import prepare_command
    from targets.jobs.reader import load_job

    (project / "job.yml").write_text(text)
    loaded = load_job(project / "job.yml")
    return prepare_command(
        Workspace(project), loaded, loaded.job, target_name="local", docker_ok=docker_ok
    )


def pip_of(config) -> list[str]:  # type: ignore[no-untyped-def]
    spec = config.environment.python.conda_dependencies
    assert spec is not None
    return [p for item in spec.dependencies if not isinstance(item, str) for p in item.pip]


@pytest.mark.parametrize(
    "reference",
    [
        "azureml:AzureML-sklearn-1.5@latest",
        "azureml:AzureML-sklearn-1.5:33",
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        "azureml://registries/azureml/environments/sklearn-1.5/versions/33",
    ],
)
def test_curated_sklearn_resolves_to_the_published_packages(project, reference):
    job = prepared(project, f"command: echo hi\nenvironment: {reference}\n")
    config = job.config
    conda = config.environment.python.conda_dependencies
    assert conda is not None and not config.environment.docker.enabled
    assert "python=3.10" in conda.dependencies
    pip = pip_of(config)
    assert "scikit-learn~=1.5.0" in pip and "azureml-mlflow" in pip
    # Azure-only packages are left out, and the job is told which list it got and why.
    assert not any(p.startswith(("azureml-telemetry", "azureml-inference-server")) for p in pip)
    [note] = [w for w in job.warnings if "curated environment AzureML-sklearn-1.5" in w]
    assert "Azure/azureml-assets" in note and "sklearn-1.5/context/conda_dependencies.yaml" in note
    assert "azureml-telemetry" in note and "Azure only" in note
    if reference.endswith("33"):
        assert "version 33 is not distinguished" in note


def test_gpu_curated_environments_build_on_a_cpu_target(project):
    for reference, kept in (
        ("azureml:AzureML-tensorflow-2.16-cuda12@latest", "tensorflow==2.16.2"),
        ("azureml:AzureML-acpt-pytorch-2.8-cuda12.6@latest", "torch==2.10.0"),
        ("azureml:AzureML-lightgbm-3.3@latest", "lightgbm>=4.6.0"),
    ):
        job = prepared(project, f"command: echo hi\nenvironment: {reference}\n")
        pip = pip_of(job.config)
        assert kept in pip, (reference, pip)
        assert not any("+cu" in p or "and-cuda" in p or p.startswith("nvidia-") for p in pip)
        note = "\n".join(job.warnings)
        assert "GPU only" in note or "Azure only" in note


def test_every_catalogue_entry_names_its_source_and_is_a_valid_environment(project):
    from targets.curated import curated
    from targets.environments import _managed

    for name, entry in curated().items():
        assert {"repository", "path", "commit"} <= set(entry.source), name
        if entry.registry_name:  # the azureml-assets entries also give the date
            assert entry.source["date"] and entry.python, name
        _managed(entry.conda, project, name)  # raises ConfigError for a bad spec


def test_a_registered_environment_wins_over_the_curated_one(project, cli, write):
    write(project / "env.yml", "name: AzureML-sklearn-1.5\nversion: '2'\nconda_file: c.yml\n")
    write(project / "c.yml", "dependencies:\n- python=3.11\n")
    assert cli("envs", "create", "--file", "env.yml").code == 0
    job = prepared(project, "command: echo hi\nenvironment: azureml:AzureML-sklearn-1.5@latest\n")
    assert job.config.environment.python.conda_dependencies_file.endswith("2.conda.yml")


def test_an_unknown_environment_is_refused_before_anything_is_queued(project, cli, write):
    write(
        project / "job.yml", "command: echo hi\nenvironment: azureml:AzureML-sklearn-9.9@latest\n"
    )
    result = cli("run", "job.yml")
    assert result.code == 2, result
    assert "'AzureML-sklearn-9.9' is not registered in this workspace" in result.err
    assert "curated" in result.err and "targets envs create" in result.err
    assert Workspace(project).ledger.list(limit=None) == []


def test_the_v1_front_end_reads_the_same_catalogue(project):
    from targets.azureml.core import Environment
    from targets.azureml.core import Workspace as V1Workspace

    ws = V1Workspace.from_config()
    env = Environment.get(ws, "AzureML-lightgbm-3.3")
    conda = env.python.conda_dependencies
    assert conda is not None and "python=3.10" in conda.dependencies
    assert "AzureML-sklearn-1.5" in Environment.list(ws)
    assert "AzureML-Minimal" in Environment.list(ws)


def test_a_curated_environment_builds_and_runs_on_the_local_target(project, cli, write):
    write(
        project / "job.yml",
        'command: >-\n  python -c "import azure.identity, numpy, sys;\n'
        "  print('ok', sys.version_info[:2])\"\n"
        "environment: azureml:AzureML-minimal-py311-inference@latest\n",
    )
    result = cli("run", "job.yml", "--stream", timeout=900)
    assert result.code == 0, result
    assert "ok (3, 11)" in result.out
    assert "curated environment AzureML-minimal-py311-inference" in result.err


# -- mcr.microsoft.com/azureml images ---------------------------------------------------------


def test_azureml_build_images_map_to_the_local_equivalent(project, monkeypatch):
    monkeypatch.delenv("TARGETS_DEFAULT_CPU_IMAGE", raising=False)
    monkeypatch.delenv("TARGETS_AZUREML_IMAGES", raising=False)
    image = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    text = f"command: echo hi\nenvironment:\n  image: {image}\n"
    job = prepared(project, text)
    major_minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert job.config.environment.docker.base_image == f"python:{major_minor}-slim"
    assert any("Azure ML's build image" in w for w in job.warnings)
    monkeypatch.setenv("TARGETS_DEFAULT_CPU_IMAGE", "my-mirror/base:1")
    assert prepared(project, text).config.environment.docker.base_image == "my-mirror/base:1"
    monkeypatch.setenv("TARGETS_AZUREML_IMAGES", "pull")
    assert prepared(project, text).config.environment.docker.base_image.startswith("mcr.")
    other = "command: echo hi\nenvironment:\n  image: python:3.11-slim\n"
    assert prepared(project, other).config.environment.docker.base_image == "python:3.11-slim"


@pytest.mark.xdist_group("docker")
def test_a_job_on_an_azureml_image_runs_in_the_local_equivalent(
    docker_engine: DockerEngine, project, cli, write
):
    write(
        project / "src" / "where.py",
        "import os\nprint('container', os.path.exists('/.dockerenv'))\n",
    )
    write(
        project / "job.yml",
        "code: src\ncommand: python where.py\n"
        "environment:\n  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n",
    )
    result = cli(
        "run", "job.yml", "--stream", env={"TARGETS_DEFAULT_CPU_IMAGE": docker_engine.image}
    )
    assert result.code == 0, result
    assert "container True" in result.out
    assert docker_engine.image in result.err


# -- build contexts ----------------------------------------------------------------------------


@pytest.mark.xdist_group("docker")
def test_a_build_context_is_built_by_the_docker_engine_and_the_job_runs_in_it(
    docker_engine: DockerEngine, project, cli, write
):
    marker = hashlib.sha256(str(project).encode()).hexdigest()[:12]
    write(
        project / "docker-context" / "Dockerfile",
        f"FROM {docker_engine.image}\nRUN echo built-{marker} > /marker.txt\n",
    )
    write(project / "src" / "run.sh", "cat /marker.txt\n")
    write(
        project / "job.yml",
        SCHEMA
        + "code: src\ncommand: sh run.sh\nenvironment:\n  build:\n    path: docker-context\n",
    )
    result = cli("run", "job.yml", "--stream", timeout=600)
    assert result.code == 0, result
    assert f"built-{marker}" in result.out


def test_a_build_context_without_docker_is_refused_naming_it(project, cli, write):
    write(project / "ctx" / "Dockerfile", "FROM scratch\n")
    write(
        project / "job.yml",
        SCHEMA + "command: echo ran-in-the-host\nenvironment:\n  build:\n    path: ctx\n",
    )
    result = cli("run", "job.yml", env=NO_DOCKER)
    assert result.code == 2, result
    assert "build context 'ctx' needs a Docker engine" in result.err
    assert "ran-in-the-host" not in result.out
    assert Workspace(project).ledger.list(limit=None) == []


@pytest.fixture
def real(project: Path) -> Path:
    """The real build-context jobs, with an empty `code` folder for each (their sources
    are not copied: nothing of them runs before the environment is built)."""
    root = project / "single-step"
    shutil.copytree(REAL, root)
    for job in root.glob("*/*/job.yml"):
        (job.parent / "src").mkdir(exist_ok=True)
    (root / "r" / "accidents" / "data").mkdir(exist_ok=True)
    return root


@pytest.mark.parametrize("job", ["julia/iris", "r/accidents", "scikit-learn/iris-notebook"])
def test_real_build_context_jobs_without_docker_stop_with_exit_2(real, cli, project, job):
    result = cli("run", f"single-step/{job}/job.yml", "--target", "local", env=NO_DOCKER)
    assert result.code == 2, result
    assert "build context 'docker-context'" in result.err
    assert "not found" not in result.out  # never `julia: not found` in the host shell
    assert Workspace(project).ledger.list(limit=None) == []


# -- isolation from targets' own environment ---------------------------------------------------


def make_wheel(folder: Path, name: str) -> Path:
    """A tiny pure-Python wheel (no index needed to install it)."""
    dist = f"{name}-1.0.dist-info"
    files = {
        f"{name}.py": b"VALUE = 1\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as out:
        for path, data in files.items():
            out.writestr(path, data)
        out.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


def installed_in_targets_venv(name: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "show", name], capture_output=True, text=True
    )
    return done.returncode == 0


def test_a_job_whose_image_is_set_aside_never_installs_into_targets_venv(project, cli, write):
    name = "targets_isolation_probe"
    (project / "src").mkdir()
    wheel = make_wheel(project / "src", name)
    write(
        project / "job.yml",
        "code: src\n"
        "command: >-\n"
        "  python -c 'import sys; print(\"prefix\", sys.prefix)' &&\n"
        f"  pip install --no-index --no-deps {wheel.name} &&\n"
        f"  python -c 'import {name}; print(\"imported\", {name}.VALUE)'\n"
        "environment:\n  image: python:3.11-slim\n",
    )
    try:
        result = cli("run", "job.yml", "--stream", env=NO_DOCKER, timeout=600)
        assert result.code == 0, result
        assert "imported 1" in result.out
        assert "isolated, empty environment" in result.err
        prefix = next(
            line.split(" ", 1)[1] for line in result.out.splitlines() if line.startswith("prefix ")
        )
        assert Path(prefix).resolve() != Path(sys.prefix).resolve()
        assert not installed_in_targets_venv(name)
    finally:  # the old behaviour installed it here: leave the venv as it was
        if installed_in_targets_venv(name):
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", name], check=False)


def test_the_isolated_environment_is_reused_between_jobs(project):
    first = prepared(project, "command: echo a\nenvironment:\n  image: x/y:1\n", docker_ok="no")
    second = prepared(project, "command: echo b\nenvironment:\n  image: x/z:2\n", docker_ok="no")
    from targets.environments import resolve_environment

    one = resolve_environment(first.config, first.source_dir)
    two = resolve_environment(second.config, second.source_dir)
    assert one.managed and one.hash == two.hash
    assert json.dumps(one.to_json())  # nothing but pip, and no interpreter of ours
    assert one.interpreter is None and one.pip_packages == ("pip",)


def test_bad_references_exit_2(project):
    with pytest.raises(ConfigError, match="not a reference targets understands"):
        prepared(project, "command: echo\nenvironment: azureml:a:b:c\n")
    with pytest.raises(UsageError, match="not a local folder"):
        prepared(project, "command: echo\nenvironment:\n  build:\n    path: https://x/y.git\n")


def test_the_real_lightgbm_job_names_a_curated_environment_targets_knows(real, project):
    from targets.jobs.job_environment import resolve_reference
    from targets.jobs.reader import load_job

    loaded = load_job(real / "lightgbm" / "iris" / "job.yml")
    assert loaded.job.environment == "azureml:AzureML-lightgbm-3.3@latest"
    resolved = resolve_reference(Workspace(project), loaded.job.environment)
    assert resolved.python == "3.10" and resolved.image is None
    assert "lightgbm-3.3/context/conda_dependencies.yaml" in resolved.warnings[0]
    assert "adlfs" in resolved.warnings[0]  # left out, and said so
