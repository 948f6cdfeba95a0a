"""Workspaces and environments from Azure ML v1 code (issue 15, part 2): a control script
written against ``targets.azureml.core`` registers environments, gets them back by name
and version, lists them, resolves Azure ML's curated names to their published package
lists and runs with them on the local target; ``RunConfiguration.save/load`` keep v1's
``.azureml/<name>.runconfig`` convention. See docs/azureml-v1.md."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from targets.errors import UsageError
from targets.workspace import Workspace
from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401

TRAIN = """\
import os, sys
print("GREETING=" + os.environ.get("GREETING", "<unset>"))
print("PREFIX=" + sys.prefix)
"""


def control(project: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run a v1-style control script in ``project`` as a user would: its own process."""
    script = project / "control.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def lines_with(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_a_v1_control_script_registers_gets_lists_and_runs_an_environment(project, write):
    write(project / "train.py", TRAIN)
    done = control(
        project,
        """
        from targets.azureml.core import Environment, Experiment, ScriptRunConfig, Workspace

        ws = Workspace.from_config()
        env = Environment("train-env")
        env.python.user_managed_dependencies = True
        env.environment_variables = {"GREETING": "hello from version 1"}
        print("registered", env.register(ws).version)
        print("again", env.register(workspace=ws).version)
        env.environment_variables["GREETING"] = "hello from version 2"
        print("registered", env.register(ws).version)

        first = Environment.get(ws, "train-env", version="1")
        latest = Environment.get(workspace=ws, name="train-env")
        print("got", first.version, latest.version, latest.environment_variables["GREETING"])
        envs = Environment.list(workspace=ws)
        print("listed", envs["train-env"].version, "AzureML-Minimal" in envs)

        src = ScriptRunConfig(source_directory=".", script="train.py", environment=first)
        run = Experiment(workspace=ws, name="env-demo").submit(src)
        run.wait_for_completion(show_output=True)
        print("status", run.get_status())
        """,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # An unchanged definition keeps its version; a changed one gets the next.
    assert lines_with(out, "registered") == ["registered 1", "registered 2"]
    assert "again 1" in out
    assert "got 1 2 hello from version 2" in out
    assert "listed 2 True" in out
    # The run used version 1 of the environment, not the latest.
    assert "GREETING=hello from version 1" in out
    assert "status Completed" in out
    # Stored in the workspace's one environment store, where v2 references find it too.
    folder = project / ".targets" / "environments" / "train-env"
    assert sorted(p.name for p in folder.glob("*.yml")) == ["1.yml", "2.yml"]
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    from targets.assets import get_environment

    assert get_environment(Workspace(project), "train-env", None).version == "2"


def test_an_existing_conda_environment_is_the_run_interpreter(project, write, isolated_home):
    # A conda environment as conda leaves it: a prefix under <root>/envs with bin/python,
    # listed in ~/.conda/environments.txt.
    prefix = isolated_home / "miniconda3" / "envs" / "v1conda"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    (isolated_home / ".conda").mkdir()
    (isolated_home / ".conda" / "environments.txt").write_text(f"{prefix}\n")
    write(project / "train.py", TRAIN)
    done = control(
        project,
        """
        from targets.azureml.core import Environment, Experiment, ScriptRunConfig, Workspace

        ws = Workspace.from_config()
        env = Environment.from_existing_conda_environment("mine", "v1conda")
        run = Experiment(ws, "conda").submit(
            ScriptRunConfig(source_directory=".", script="train.py", environment=env)
        )
        run.wait_for_completion(show_output=True)
        print("status", run.get_status())
        """,
    )
    assert done.returncode == 0, done.stderr
    assert f"PREFIX={prefix}" in done.stdout
    assert "status Completed" in done.stdout
    from targets.experiment import Environment

    with pytest.raises(UsageError, match=r"no conda environment named 'nope'.*v1conda"):
        Environment.from_existing_conda_environment("x", "nope")


def test_curated_names_resolve_to_the_published_package_lists(project):
    from targets.azureml.core import Environment, Workspace

    ws = Workspace.from_config()
    minimal = Environment.get(ws, "AzureML-Minimal")
    conda = minimal.python.conda_dependencies
    assert conda is not None and minimal.name == "AzureML-Minimal"
    assert conda.channels == ["conda-forge"]
    assert conda.dependencies[0] == "python=3.6.2"
    assert conda.dependencies[1].pip == ["azureml-core==1.8.0", "azureml-defaults==1.8.0"]
    assert not minimal.python.user_managed_dependencies
    # v1 code spells the framework names in both cases.
    torch = Environment.get(ws, "AzureML-pytorch-1.5-cpu").python.conda_dependencies
    assert torch is not None and "torch==1.5.0" in torch.dependencies[-1].pip
    sklearn = Environment.get(ws, "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu")
    assert "scikit-learn~=1.0.0" in sklearn.python.conda_dependencies.dependencies[-1].pip
    # Every entry of the catalogue names where its package list comes from.
    catalogue = json.loads(
        (Path(__file__).parents[1] / "targets/curated/catalogue.json").read_text()
    )
    for name, entry in catalogue["environments"].items():
        source = catalogue["sources"][entry["source"]]
        assert {"repository", "path", "commit"} <= set(source), name
    assert "AzureML-Tutorial" in Environment.list(ws)


def test_an_unknown_curated_name_lists_the_known_ones(project):
    from targets.azureml.core import Environment, Workspace

    ws = Workspace.from_config()
    with pytest.raises(UsageError) as caught:
        Environment.get(ws, "AzureML-Minimalist")
    message = str(caught.value)
    assert "'AzureML-Minimalist' is not a curated environment" in message
    assert "AzureML-Minimal" in message and "AzureML-Tutorial" in message


def test_an_unregistered_name_says_to_register_it_and_nothing_is_written(project):
    from targets.azureml.core import Environment, Workspace

    ws = Workspace.from_config()
    with pytest.raises(UsageError) as caught:
        Environment.get(ws, "my-env")
    assert "not registered" in str(caught.value) and "env.register(ws)" in str(caught.value)
    with pytest.raises(UsageError, match="curated"):
        Environment("AzureML-Mine").register(ws)
    with pytest.raises(UsageError, match="cannot register"):
        Environment().register(ws)
    assert not (project / ".targets" / "environments").exists()


def test_runconfiguration_save_and_load_use_the_dot_azureml_folder(project, cli):
    from targets.azureml.core import Environment, RunConfiguration
    from targets.azureml.core.conda_dependencies import CondaDependencies
    from targets.azureml.core.runconfig import DockerConfiguration

    rc = RunConfiguration()
    rc.script = "train.py"
    rc.arguments = ["--alpha", "0.5"]
    rc.node_count = 2
    rc.environment = Environment("saved")
    rc.environment.environment_variables = {"A": "1"}
    rc.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["tiny"])
    DockerConfiguration(use_docker=True, shm_size="1g").apply(rc)
    rc.environment.docker.base_image = "my-image:1"
    rc.save(path=str(project), name="train")

    saved = project / ".azureml" / "train.runconfig"
    assert saved.is_file()
    loaded = RunConfiguration.load(path=str(project), name="train")
    assert loaded.model_dump() == rc.model_dump()
    assert cli("runconfig", "validate", str(saved)).code == 0
    # The legacy aml_config/ folder is used when the project has one, as in v1.
    (project / "aml_config").mkdir()
    rc.save(str(project), "train")
    assert (project / "aml_config" / "train.runconfig").is_file()
    assert RunConfiguration.load(str(project), "train").node_count == 2
    with pytest.raises(UsageError, match="needs a file"):
        rc.save()


def test_save_to_directory_and_back(project):
    from targets.azureml.core import Environment

    (project / "requirements.txt").write_text("tiny==1.0  # pinned\n")
    env = Environment.from_pip_requirements("pip-env", project / "requirements.txt")
    env.save_to_directory(project / "envdir")
    assert (project / "envdir" / "conda_dependencies.yml").is_file()
    back = Environment.load_from_directory(project / "envdir")
    assert back.model_dump() == env.model_dump()
    with pytest.raises(UsageError, match="already exists"):
        env.save_to_directory(project / "envdir")


def test_default_cpu_image_builds_on_the_target(
    docker_engine: DockerEngine, project, write, monkeypatch
):
    # v1's mcr.microsoft.com image cannot be pulled here; the name maps to an image the
    # target has (TARGETS_DEFAULT_CPU_IMAGE), and a v1 Docker run builds on it.
    monkeypatch.setenv("TARGETS_DEFAULT_CPU_IMAGE", docker_engine.image)
    write(project / "train.py", TRAIN)
    done = control(
        project,
        """
        from targets.azureml.core import Environment, Experiment, ScriptRunConfig, Workspace
        from targets.azureml.core.runconfig import DEFAULT_CPU_IMAGE, DockerConfiguration

        ws = Workspace.from_config()
        env = Environment("in-docker")
        env.python.user_managed_dependencies = True
        env.docker.base_image = DEFAULT_CPU_IMAGE
        env.environment_variables = {"GREETING": "from a container"}
        src = ScriptRunConfig(
            source_directory=".",
            script="train.py",
            environment=env,
            docker_runtime_config=DockerConfiguration(use_docker=True),
        )
        run = Experiment(ws, "docker").submit(src)
        run.wait_for_completion(show_output=True)
        print("image", DEFAULT_CPU_IMAGE, "status", run.get_status())
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "GREETING=from a container" in done.stdout
    assert f"image {docker_engine.image} status Completed" in done.stdout


def test_default_images_without_a_mapping_are_a_python_image(monkeypatch):
    monkeypatch.delenv("TARGETS_DEFAULT_CPU_IMAGE", raising=False)
    monkeypatch.delenv("TARGETS_DEFAULT_GPU_IMAGE", raising=False)
    from targets.azureml.core.environment import DEFAULT_GPU_IMAGE
    from targets.azureml.core.runconfig import DEFAULT_CPU_IMAGE

    python = f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"
    assert {DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE} == {python}


def test_the_environment_examples_run_with_only_their_imports_changed(project, cli):
    example = Path(__file__).parents[1] / "examples" / "azureml-v1" / "environments"
    for path in example.glob("*.py"):
        (project / path.name).write_text(path.read_text())
    done = subprocess.run(
        [sys.executable, "register_and_run.py"], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "MODE: first" in done.stdout and "status: Completed" in done.stdout
    for script in ("curated.py", "runconfig_files.py"):
        done = subprocess.run([sys.executable, script], cwd=project, capture_output=True, text=True)
        assert done.returncode == 0, (script, done.stderr)
    ran = cli("run", ".azureml/example.runconfig")
    assert ran.code == 0, ran.err
    assert "MODE: from a runconfig file" in ran.out
