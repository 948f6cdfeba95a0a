"""Build contexts of v2 jobs (`environment.build`): the context folder (less its
.dockerignore) is built by the target's Docker engine before the job is queued, on the
local target and on a VM over SSH; an unchanged context is not built again; a base image
the engine neither has nor can pull stops the job with exit 2 naming it; remote contexts
are refused. Also `--no-docker` on a job with an image: an isolated environment, never
targets' own virtualenv nor the user's active one.

The engine here has no registry: a Dockerfile's FROM image is provided by tagging the
suite's base image under that name, as a user would with `docker tag` or `docker load`."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.jobs.build_context import read_context
from targets.workspace import Workspace
from tests.conftest import REPO
from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401 - fixture
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401 - fixture
from tests.test_jobs_environments import make_wheel

REAL = REPO / "tests" / "data" / "jobs-real" / "buildctx" / "cli" / "jobs" / "single-step"
# julia/iris, r/accidents and scikit-learn/iris-notebook are kept once, with the
# environment tests' real files.
REAL_ENVIRONMENTS = (
    REPO / "tests" / "data" / "jobs-real" / "environments" / "cli" / "jobs" / "single-step"
)
SCHEMA = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"

# One engine serves the session, and other modules prune images of ours: one worker.
pytestmark = pytest.mark.xdist_group("docker")


def nothing_queued(project: Path) -> bool:
    return Workspace(project).ledger.count() == 0


@pytest.fixture
def standin(docker_engine: DockerEngine) -> Iterator[str]:
    """A base image name no registry serves (unique to the test); the test tags the
    suite's base image under it when it wants the engine to have it."""
    name = f"buildctx-standin-{uuid.uuid4().hex[:10]}:1"
    yield name
    docker_engine.run("image", "rm", name, check=False)


def tag(engine: DockerEngine, name: str) -> None:
    engine.run("tag", engine.image, name)


def untag(engine: DockerEngine, name: str) -> None:
    engine.run("image", "rm", name)


def context_project(project: Path, base: str, greeting: str = "hello") -> None:
    """A job whose Dockerfile copies a script and data of its context and runs the
    script at build time; its .dockerignore leaves a secret and a data folder out (one
    file of it kept by an exception)."""
    ctx = project / "ctx"
    (ctx / "tools").mkdir(parents=True, exist_ok=True)
    (ctx / "data").mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\n"
        "COPY tools/greet.sh /opt/greet.sh\n"
        "RUN sh /opt/greet.sh > /built.txt\n"
        "COPY . /ctx/\n"
    )
    (ctx / "tools" / "greet.sh").write_text(f"echo {greeting} from the build\n")
    (ctx / ".dockerignore").write_text("# not for the image\nsecret.txt\ndata\n!data/keep.txt\n")
    (ctx / "secret.txt").write_text("do not ship\n")
    (ctx / "data" / "big.bin").write_bytes(b"x" * 1000)
    (ctx / "data" / "keep.txt").write_text("kept\n")
    (project / "src").mkdir(exist_ok=True)
    (project / "job.yml").write_text(
        SCHEMA + "code: src\n"
        "command: cat /built.txt && find /ctx -type f | sort\n"
        "environment:\n  build:\n    path: ctx\n"
    )


def test_a_context_that_copies_files_builds_once_and_the_job_runs_in_it(
    docker_engine: DockerEngine, project: Path, cli, standin: str
):
    context_project(project, standin)
    # The base image is absent and no registry serves it: refused before anything is queued.
    refused = cli("run", "job.yml", "--stream", timeout=300)
    assert refused.code == 2, refused
    assert f"the build context 'ctx' starts FROM '{standin}'" in refused.err
    assert "does not have and cannot pull" in refused.err
    assert f"docker pull {standin}" in refused.err and "docker load" in refused.err
    assert f"docker tag IMAGE {standin}" in refused.err
    assert nothing_queued(project)

    tag(docker_engine, standin)
    first = cli("run", "job.yml", "--stream", timeout=600)
    assert first.code == 0, first
    assert "hello from the build" in first.out
    shipped = [line for line in first.out.split() if line.startswith("/ctx/")]
    assert "/ctx/tools/greet.sh" in shipped and "/ctx/data/keep.txt" in shipped
    assert "/ctx/secret.txt" not in shipped and "/ctx/data/big.bin" not in shipped

    # Without the base image, only an unchanged context can run: it is not built again.
    untag(docker_engine, standin)
    (project / "ctx" / "secret.txt").write_text("changed, and still left out\n")
    again = cli("run", "job.yml", "--stream", timeout=600)
    assert again.code == 0, again
    assert "hello from the build" in again.out

    # A changed file of the context is a new image (built again, from the base image).
    (project / "ctx" / "tools" / "greet.sh").write_text("echo changed from the build\n")
    rebuilt = cli("run", "job.yml", "--stream", timeout=600)
    assert rebuilt.code == 2, rebuilt
    assert f"starts FROM '{standin}'" in rebuilt.err
    tag(docker_engine, standin)
    rebuilt = cli("run", "job.yml", "--stream", timeout=600)
    assert rebuilt.code == 0, rebuilt
    assert "changed from the build" in rebuilt.out


def test_a_dockerfile_elsewhere_in_the_context_and_a_failing_build(
    docker_engine: DockerEngine, project: Path, cli, standin: str
):
    tag(docker_engine, standin)
    (project / "ctx" / "docker").mkdir(parents=True)
    (project / "ctx" / "run.sh").write_text("echo from-run-sh\n")
    (project / "ctx" / "docker" / "train.Dockerfile").write_text(
        f"FROM {standin}\nCOPY run.sh /run.sh\n"
    )
    (project / "job.yml").write_text(
        SCHEMA + "command: sh /run.sh\n"
        "environment:\n  build:\n    path: ctx\n    dockerfile_path: docker/train.Dockerfile\n"
    )
    result = cli("run", "job.yml", "--stream", timeout=600)
    assert result.code == 0, result
    assert "from-run-sh" in result.out

    (project / "ctx" / "docker" / "train.Dockerfile").write_text(
        f"FROM {standin}\nCOPY missing.txt /missing.txt\n"
    )
    failed = cli("run", "job.yml", timeout=600)
    assert failed.code == 2, failed
    assert "building the build context 'ctx'" in failed.err
    assert "missing.txt" in failed.err
    assert Workspace(project).ledger.count() == 1  # the first run only: nothing queued


@pytest.mark.parametrize(
    ("job", "base"),
    [
        ("julia/iris/job.yml", "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04"),
        ("r/accidents/job.yml", "rocker/tidyverse:latest"),
        ("scikit-learn/iris-notebook/job.yml", "python:3.8"),
        ("scikit-learn/iris/job-docker-context.yml", "python:3.8"),
    ],
)
def test_real_build_contexts_stop_before_queueing_naming_their_base_image(
    docker_engine: DockerEngine, project: Path, cli, job: str, base: str
):
    if docker_engine.run("image", "inspect", base, check=False).returncode == 0:
        pytest.fail(f"{base} is on the test engine: this test needs it absent")
    root = project / "single-step"
    shutil.copytree(REAL_ENVIRONMENTS, root)
    shutil.copytree(REAL, root, dirs_exist_ok=True)
    for folder in root.glob("*/*"):
        (folder / "src").mkdir(exist_ok=True)
        (folder / "data").mkdir(exist_ok=True)
    (project / "iris.csv").write_text("a,b\n1,2\n")
    extra = ["--set", f"inputs.iris_csv.path={project / 'iris.csv'}"] if "iris/job-" in job else []
    result = cli("run", f"single-step/{job}", "--target", "local", *extra, timeout=300)
    assert result.code == 2, result
    assert f"the build context 'docker-context' starts FROM '{base}'" in result.err
    assert f"docker pull {base}" in result.err and "docker load" in result.err
    if base.startswith("mcr.microsoft.com/azureml/"):
        # Azure ML's build images have a documented local equivalent (docs/jobs.md).
        assert "Azure ML's build image: `docker tag " in result.err
    assert "not found" not in result.out  # never `julia: not found` in the host shell
    assert nothing_queued(project)


def test_a_remote_build_context_is_refused_naming_the_url(project: Path, cli):
    url = "https://github.com/Azure/azureml-examples.git#main:cli/jobs/single-step/r/iris"
    (project / "job.yml").write_text(
        SCHEMA + f"command: echo ran\nenvironment:\n  build:\n    path: {url}\n"
    )
    result = cli("run", "job.yml", timeout=120)
    assert result.code == 2, result
    assert f"build context '{url}' is not a local folder" in result.err
    assert f"git clone {url}" in result.err and "environment.build.path" in result.err
    assert "ran" not in result.out
    assert nothing_queued(project)


def test_no_docker_refuses_a_build_context_naming_it(
    docker_engine: DockerEngine, project: Path, cli, standin: str
):
    context_project(project, standin)
    result = cli("run", "job.yml", "--no-docker", timeout=120)
    assert result.code == 2, result
    assert "build context 'ctx' needs a Docker engine to build it: --no-docker" in result.err
    assert nothing_queued(project)


def test_the_context_sent_honours_dockerignore_and_its_hash_ignores_left_out_files(
    project: Path,
):
    context_project(project, "base:1")
    ctx = project / "ctx"
    (ctx / "node_modules" / "x").mkdir(parents=True)
    (ctx / "node_modules" / "x" / "index.js").write_text("1")
    (ctx / ".dockerignore").write_text(
        "secret.txt\ndata\n!data/keep.txt\n**/*.pyc\nnode_modules\nDockerfile\n"
    )
    (ctx / "tools" / "cache.pyc").write_bytes(b"\0")
    packed = read_context("ctx", ctx, "Dockerfile")
    with tarfile.open(fileobj=io.BytesIO(packed.archive)) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    # The Dockerfile and .dockerignore are always sent, as Docker does.
    assert names == [".dockerignore", "Dockerfile", "data/keep.txt", "tools/greet.sh"]
    (ctx / "secret.txt").write_text("other")
    (ctx / "tools" / "cache.pyc").write_bytes(b"\1")
    assert read_context("ctx", ctx, "Dockerfile").tag == packed.tag
    (ctx / "data" / "keep.txt").write_text("other")
    assert read_context("ctx", ctx, "Dockerfile").tag != packed.tag


# -- a VM over SSH ------------------------------------------------------------------------------


@pytest.fixture
def docker_vm(docker_engine: DockerEngine, sshd: SSHServer, project: Path, cli) -> str:
    """The test sshd attached as `dockvm`, its user allowed to use Docker."""
    subprocess.run(["usermod", "-aG", "docker", sshd.user], check=True)
    result = cli(
        "attach",
        "dockvm",
        "--address",
        sshd.host,
        "--ssh-port",
        str(sshd.port),
        "--username",
        sshd.user,
        "--ssh-key",
        str(sshd.key),
        "--accept-host-key",
    )
    assert result.code == 0, result
    return "dockvm"


def test_a_context_is_sent_to_a_vm_and_built_by_its_engine(
    docker_vm: str, docker_engine: DockerEngine, project: Path, cli, standin: str
):
    context_project(project, standin, greeting="hi-vm")
    refused = cli("run", "job.yml", "--target", docker_vm, timeout=300)
    assert refused.code == 2, refused
    assert f"starts FROM '{standin}'" in refused.err and "target 'dockvm'" in refused.err
    assert nothing_queued(project)

    tag(docker_engine, standin)
    result = cli("run", "job.yml", "--target", docker_vm, "--stream", timeout=600)
    assert result.code == 0, result
    assert "hi-vm from the build" in result.out
    shipped = result.out.split()
    assert "/ctx/data/keep.txt" in shipped and "/ctx/secret.txt" not in shipped


# -- --no-docker on a job with an image ---------------------------------------------------------


def pip_show(python: Path, name: str) -> bool:
    done = subprocess.run([str(python), "-m", "pip", "show", name], capture_output=True)
    return done.returncode == 0


def test_no_docker_on_a_docker_target_gives_an_isolated_environment(
    docker_engine: DockerEngine, project: Path, cli, tmp_path: Path
):
    """The user's own virtualenv is active; the job asks for an image and has no conda
    file; --no-docker sets the image aside: its `pip install` lands in neither targets'
    virtualenv nor the user's."""
    user_venv = tmp_path / "user-venv"
    subprocess.run([sys.executable, "-m", "venv", str(user_venv)], check=True)
    name = f"targets_nodocker_probe_{uuid.uuid4().hex[:8]}"
    (project / "src").mkdir()
    wheel = make_wheel(project / "src", name)
    (project / "job.yml").write_text(
        "code: src\n"
        "command: >-\n"
        "  python -c 'import sys; print(\"prefix\", sys.prefix)' &&\n"
        f"  pip install --no-index --no-deps {wheel.name} &&\n"
        f"  python -c 'import {name}; print(\"imported\", {name}.VALUE)'\n"
        f"environment:\n  image: {docker_engine.image}\n"
    )
    env = {
        "VIRTUAL_ENV": str(user_venv),
        "PATH": f"{user_venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    }
    result = cli("run", "job.yml", "--no-docker", "--stream", env=env, timeout=600)
    assert result.code == 0, result
    assert "imported 1" in result.out
    assert "[no-docker]" in result.err and "isolated, empty environment" in result.err
    prefix = Path(
        next(
            line.split(" ", 1)[1] for line in result.out.splitlines() if line.startswith("prefix ")
        )
    ).resolve()
    assert prefix not in (Path(sys.prefix).resolve(), user_venv.resolve())
    assert not pip_show(user_venv / "bin" / "python", name)
    assert not pip_show(Path(sys.executable), name)


@pytest.mark.parametrize(
    ("path", "left_out"),
    [
        ("somedir/temporary.txt", True),
        ("temp.txt", False),
        ("a/b/temp.x", True),
        ("tempa", True),
        ("tempab", False),
        ("x/y/z.go", True),
        ("z.go", True),
        ("notes.md", True),
        ("README-x.md", False),
        ("abs/x/y", True),
        ("build/out/a", True),
        ("builder", False),
    ],
)
def test_dockerignore_follows_dockers_documented_examples(path: str, left_out: bool):
    """The examples of Docker's .dockerignore reference, and a leading slash and a
    folder pattern."""
    from targets.jobs.dockerignore import parse

    rules = parse(
        "# comment\n*/temp*\n*/*/temp*\ntemp?\n**/*.go\n*.md\n!README*.md\n/abs/x\nbuild/\n"
    )
    assert rules.excluded(path) is left_out
