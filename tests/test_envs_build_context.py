"""Registered environments with a build context: Azure ML's own
`cli/assets/environment/docker-context.yml` is registered with `targets envs create
--file`, its context folder is copied into the workspace, and a job naming
`azureml:docker-context-example@latest` is built and run in it exactly as an inline
`environment.build`, also after the source folder is gone; where the target has no Docker
engine the job stops with exit 2 naming the environment and its build context, and nothing
is queued.

The engine here reaches no registry or index: the copy the tests register starts FROM a
stand-in tagged on the engine (as a user would with `docker tag`; its pip may install into
the system Python, as python:3.8's does), and its requirements.txt names a wheel served
on 127.0.0.1. The environment YAML is the real file, byte for byte."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.jobs.build_context import read_context
from targets.workspace import Workspace
from tests.conftest import REPO
from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401 - fixture
from tests.test_jobs_environments import make_wheel

REAL = REPO / "tests" / "data" / "jobs-real" / "buildctx" / "cli" / "assets" / "environment"
ENV_FILE = "docker-context.yml"
CONTEXT = Path("docker-contexts") / "python-and-pip"
SCHEMA = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"

# One engine serves the session, and other modules prune images of ours: one worker.
pytestmark = pytest.mark.xdist_group("docker")


def nothing_queued(project: Path) -> bool:
    return Workspace(project).ledger.count() == 0


@pytest.fixture
def standin(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[str]:
    """A base image no registry serves (unique to the test): the suite's base image with
    pip allowed to install into its system Python, as in python:3.8."""
    name = f"envbuild-standin-{uuid.uuid4().hex[:10]}:1"
    folder = tmp_path / "standin"
    folder.mkdir()
    (folder / "Dockerfile").write_text(
        f"FROM {docker_engine.image}\nENV PIP_BREAK_SYSTEM_PACKAGES=1\n"
        "RUN ln -sf /usr/bin/python3 /usr/local/bin/python\n"
    )
    docker_engine.run("build", "--network", "none", "-t", name, str(folder))
    yield name
    docker_engine.run("image", "rm", name, check=False)


@pytest.fixture
def wheel_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(package name, URL of its wheel on 127.0.0.1)."""
    name = f"envbuild_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheel = make_wheel(folder, name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield name, f"http://127.0.0.1:{server.server_address[1]}/{wheel.name}"
    server.shutdown()
    server.server_close()


def copy_real(project: Path, base: str | None = None, requirement: str | None = None) -> Path:
    """The real environment file and its context folder in ``project/env``; ``base``
    replaces the Dockerfile's FROM image, ``requirement`` its requirements.txt."""
    folder = project / "env"
    shutil.copytree(REAL, folder)
    dockerfile = folder / CONTEXT / "Dockerfile"
    if base is not None:
        text = dockerfile.read_text().replace("FROM python:3.8\n", f"FROM {base}\n")
        assert f"FROM {base}" in text
        dockerfile.write_text(text)
    if requirement is not None:
        (folder / CONTEXT / "requirements.txt").write_text(requirement + "\n")
    assert (folder / ENV_FILE).read_bytes() == (REAL / ENV_FILE).read_bytes()
    return folder


def job(project: Path, reference: str, command: str) -> None:
    (project / "src").mkdir(exist_ok=True)
    (project / "job.yml").write_text(
        SCHEMA + f"code: src\ncommand: {command}\nenvironment: {reference}\n"
    )


def test_registering_the_real_file_stores_its_context_and_show_names_it(project: Path, cli):
    folder = copy_real(project)
    created = cli("envs", "create", "--file", str(folder / ENV_FILE))
    assert created.code == 0, created
    assert "registered environment docker-context-example:1" in created.err
    stored = project / ".targets" / "environments" / "docker-context-example" / "1.build"
    assert (stored / "Dockerfile").read_bytes() == (REAL / CONTEXT / "Dockerfile").read_bytes()
    assert (stored / "requirements.txt").is_file()

    shown = cli("envs", "show", "docker-context-example")
    assert shown.code == 0, shown
    assert f"build_context: {stored}" in shown.out
    assert "dockerfile: Dockerfile" in shown.out
    described = cli("envs", "show", "azureml:docker-context-example:1", "-o", "json").json()
    assert described["build_context"] == str(stored)  # type: ignore[index]

    # A second registration is version 2; a context that is not there is refused.
    assert cli("envs", "create", "--file", str(folder / ENV_FILE)).code == 0
    assert (stored.parent / "2.build" / "Dockerfile").is_file()
    shutil.rmtree(folder / CONTEXT)
    missing = cli("envs", "create", "--file", str(folder / ENV_FILE))
    assert missing.code == 2, missing
    assert "the build context 'docker-contexts/python-and-pip' is not a folder" in missing.err
    assert not (stored.parent / "3.yml").exists()


def test_a_job_naming_it_is_built_and_runs_in_it_after_the_source_is_gone(
    docker_engine: DockerEngine, project: Path, cli, standin: str, wheel_server
):
    package, url = wheel_server
    folder = copy_real(project, base=standin, requirement=f"{package} @ {url}")
    assert cli("envs", "create", "--file", str(folder / ENV_FILE)).code == 0
    job(
        project,
        "azureml:docker-context-example@latest",
        f"python -c \"import {package}; print('installed', {package}.VALUE)\" "
        "&& test ! -e requirements.txt && echo built-by-the-dockerfile",
    )
    first = cli("run", "job.yml", "--stream", timeout=600)
    assert first.code == 0, first
    assert "installed 1" in first.out and "built-by-the-dockerfile" in first.out

    # The registered version keeps its own copy: with the source folder gone and the
    # built image removed, the job is built again from that copy and runs.
    shutil.rmtree(folder)
    stored = project / ".targets" / "environments" / "docker-context-example" / "1.build"
    docker_engine.run("image", "rm", read_context("ctx", stored, "Dockerfile").tag)
    again = cli("run", "job.yml", "--stream", timeout=600)
    assert again.code == 0, again
    assert "installed 1" in again.out


def test_without_docker_a_job_naming_it_stops_naming_the_build_context(
    project: Path, cli, tmp_path: Path
):
    folder = copy_real(project)
    assert cli("envs", "create", "--file", str(folder / ENV_FILE)).code == 0
    job(project, "azureml:docker-context-example@latest", "echo ran")
    nowhere = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    for command in (("job", "validate", "--file", "job.yml"), ("run", "job.yml")):
        result = cli(*command, env=nowhere, timeout=120)
        assert result.code == 2, result
        assert "azureml:docker-context-example@latest" in result.err
        assert "build context" in result.err and "needs a Docker engine" in result.err
        assert "ran" not in result.out
    assert nothing_queued(project)
    no_docker = cli("run", "job.yml", "--no-docker", timeout=120)
    assert no_docker.code == 2, no_docker
    assert "needs a Docker engine to build it: --no-docker" in no_docker.err
    assert nothing_queued(project)
