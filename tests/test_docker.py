"""Docker environments on the local target (Docker SDK) and on a VM over SSH (docker
CLI driven by the agent), against the real Docker engine started by the test setup."""

from __future__ import annotations

import json
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import wait_until
from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

# One engine serves the whole session, and `envs prune` removes every image of ours that
# no run uses: these tests run on one worker, one after the other.
pytestmark = pytest.mark.xdist_group("docker")


def rc(
    script: str,
    image: str,
    *,
    extra: str = "",
    docker_extra: str = "",
    python: str = "",
    target: str = "local",
) -> str:
    return (
        f"script: {script}\ntarget: {target}\n{extra}"
        "environment:\n"
        f"{python or '  python: {user_managed_dependencies: true}'}\n"
        "  docker:\n    enabled: true\n"
        f"    base_image: {image}\n{docker_extra}"
    )


def last(project: Path) -> dict:
    return Workspace(project).ledger.list(limit=1)[0].to_json()


def containers_named(engine: DockerEngine, run_id: str) -> list[str]:
    out = engine.run("ps", "-a", "--filter", f"name=targets-{run_id}", "--format", "{{.Names}}")
    return [line for line in out.stdout.split() if line]


def test_a_run_in_a_container_on_the_local_target(docker_engine, project, write, cli):
    write(
        project / "c.py",
        """
import os, pathlib, sys
print("in container", os.path.exists("/.dockerenv"), os.environ["GREETING"])
st = os.statvfs("/dev/shm")
print("shm MiB", st.f_blocks * st.f_frsize // 2**20)
pathlib.Path("outputs").mkdir()
pathlib.Path("outputs/o.txt").write_text("from the container")
""",
    )
    write(
        project / "rc.yml",
        rc(
            "c.py",
            docker_engine.image,
            extra="environment_variables: {GREETING: bonjour}\n",
            docker_extra="    shm_size: 256m\n",
        ),
    )
    result = cli("run", "rc.yml")
    assert result.code == 0, result
    assert "in container True bonjour" in result.out
    assert "shm MiB 256" in result.out
    run = last(project)
    folder = project / ".targets" / "runs" / run["id"]
    assert (folder / "outputs" / "o.txt").read_text() == "from the container"
    assert containers_named(docker_engine, run["id"]) == []  # removed after the run


def test_the_environment_image_is_built_once_then_reused_and_pruned(
    docker_engine, project, write, cli, shared_wheels
):
    write(
        project / "use.py",
        "import tinypkg, sys\nprint('tinypkg', tinypkg.VERSION, sys.executable)\n",
    )
    python = (
        "  python:\n    conda_dependencies:\n      dependencies:\n        - pip:\n"
        f"          - --no-index\n          - --find-links {shared_wheels}\n"
        "          - tinypkg==1.0\n"
    )
    write(project / "rc.yml", rc("use.py", docker_engine.image, python=python))
    first = cli("run", "rc.yml")
    assert first.code == 0, first
    assert "tinypkg 1.0 /opt/targets-env/bin/python" in first.out
    assert "# preparing image targets-env:" in first.out
    second = cli("run", "rc.yml")
    assert second.code == 0, second
    assert "# reusing image targets-env:" in second.out
    assert "Step 1/" not in second.out  # nothing was built the second time
    listed = cli("envs", "list", "-o", "json").json()
    images = [e for e in listed if e["builder"] == "docker"]
    assert len(images) >= 1
    mine = json.loads(
        (project / ".targets" / "runs" / last(project)["id"] / "run.json").read_text()
    )["environment"]["hash"]
    assert mine in {e["hash"] for e in images}
    pruned = cli("envs", "prune", "--yes", "-o", "json").json()
    assert mine in pruned["removed"]
    assert (
        docker_engine.run("image", "inspect", docker_engine.image, check=False).returncode == 0
    )  # prune removes only our images


def test_base_dockerfile(docker_engine, project, write, cli):
    dockerfile = f"FROM {docker_engine.image}\\nRUN echo made-by-dockerfile > /marker.txt\\n"
    write(project / "m.py", "print(open('/marker.txt').read().strip())\n")
    write(
        project / "rc.yml",
        "script: m.py\nenvironment:\n  python: "
        "{user_managed_dependencies: true}\n  docker:\n    enabled: true\n"
        f'    base_dockerfile: "{dockerfile}"\n',
    )
    result = cli("run", "rc.yml")
    assert result.code == 0, result
    assert "made-by-dockerfile" in result.out


@pytest.mark.parametrize(
    ("docker", "expected"),
    [
        ("    base_image: a\n    base_dockerfile: FROM b\n", "not both"),
        ("", "no image is named"),
    ],
)
def test_image_settings_are_checked_before_anything_runs(
    docker_engine, project, write, cli, docker, expected
):
    write(project / "t.py", "print(1)\n")
    write(project / "rc.yml", "script: t.py\nenvironment:\n  docker:\n    enabled: true\n" + docker)
    result = cli("run", "rc.yml")
    assert result.code == 2, result
    assert expected in result.err
    assert Workspace(project).ledger.count() == 0


def test_a_target_without_docker_says_so_before_uploading(project, write, cli, isolated_home):
    write(project / "t.py", "print(1)\n")
    write(project / "rc.yml", rc("t.py", "some/image:1"))
    result = cli("run", "rc.yml", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.code == 2, result
    assert "cannot run this Docker environment" in result.err
    objects = isolated_home / ".targets" / "objects"
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))


def test_gpu_without_gpus_is_refused(docker_engine, project, write, cli):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has GPUs")
    write(project / "t.py", "print(1)\n")
    write(project / "rc.yml", rc("t.py", docker_engine.image, docker_extra="    gpu: true\n"))
    result = cli("run", "rc.yml")
    assert result.code == 2, result
    assert "GPU" in result.err


def test_an_image_that_cannot_be_pulled_fails_with_advice(docker_engine, project, write, cli):
    write(project / "t.py", "print(1)\n")
    write(project / "rc.yml", rc("t.py", "127.0.0.1:9/nowhere/image:1"))  # loopback only
    result = cli("run", "rc.yml")
    assert result.code == 1, result
    assert "could not pull 127.0.0.1:9/nowhere/image:1" in result.err
    assert "base_image" in result.err


def test_cancel_removes_the_container(docker_engine, project, write, cli):
    write(project / "sleepy.py", "import time\nprint('up', flush=True)\ntime.sleep(300)\n")
    write(project / "rc.yml", rc("sleepy.py", docker_engine.image))
    run_id = cli("run", "rc.yml", "--detach").out.strip()
    wait_until(lambda: containers_named(docker_engine, run_id), what="the container")
    wait_until(lambda: "up" in cli("runs", "logs", run_id).out, what="the run's output")
    result = cli("runs", "cancel", run_id)
    assert result.code == 0, result
    assert last(project)["status"] == "Canceled"
    wait_until(
        lambda: not containers_named(docker_engine, run_id),
        timeout=30,
        what="the container to be removed",
    )


def test_max_duration_stops_the_container(docker_engine, project, write, cli):
    write(project / "sleepy.py", "import time\ntime.sleep(300)\n")
    write(
        project / "rc.yml",
        rc("sleepy.py", docker_engine.image, extra="max_run_duration_seconds: 2\n"),
    )
    result = cli("run", "rc.yml")
    assert result.code == 1, result
    run = last(project)
    assert "max_run_duration_seconds=2" in run["message"]
    assert containers_named(docker_engine, run["id"]) == []


def test_unsupported_docker_arguments_are_named(docker_engine, project, write, cli):
    write(project / "t.py", "print(1)\n")
    write(
        project / "rc.yml",
        rc("t.py", docker_engine.image, docker_extra="    arguments: [--ipc=host, --frobnicate]\n"),
    )
    result = cli("run", "rc.yml")
    assert result.code == 1, result
    assert "--frobnicate" in result.err


@pytest.fixture
def docker_vm(docker_engine, sshd: SSHServer, project: Path, cli) -> str:
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


def test_docker_on_a_vm_outputs_belong_to_the_user_and_builds_happen_once(
    docker_vm, docker_engine, project, write, cli, sshd, shared_wheels
):
    write(
        project / "c.py",
        """
import os, pathlib, tinypkg
print("vm container", os.path.exists("/.dockerenv"), os.getuid(), tinypkg.VERSION)
pathlib.Path("outputs").mkdir()
pathlib.Path("outputs/o.txt").write_text("x")
""",
    )
    python = (
        "  python:\n    conda_dependencies:\n      dependencies:\n        - pip:\n"
        f"          - --no-index\n          - --find-links {shared_wheels}\n"
        "          - tinypkg==1.0\n"
    )
    write(
        project / "rc.yml",
        rc("c.py", docker_engine.image, python=python, target=docker_vm).replace(
            "base_image:", "base_image:", 1
        ),
    )
    uid = pwd.getpwnam(sshd.user).pw_uid
    first = cli("run", "rc.yml")
    assert first.code == 0, first
    assert f"vm container True {uid} 1.0" in first.out
    run_id = last(project)["id"]
    remote = sshd.home / ".targets" / "runs" / run_id / "wd" / "outputs" / "o.txt"
    assert remote.stat().st_uid == uid  # not root-owned
    assert (project / ".targets" / "runs" / run_id / "outputs" / "o.txt").read_text() == "x"
    second = cli("run", "rc.yml")
    assert second.code == 0, second
    assert "# reusing image" in second.out


# -- private registries ----------------------------------------------------------------

from tests.registry import LocalRegistry, local_registry_fixture  # noqa: E402, F401


def registry_rc(reg: LocalRegistry, script: str, interpreter: str = "python3") -> str:
    """A runconfig pulling from the test registry. A different ``interpreter`` makes a
    different environment (its own image), so its first run must pull again."""
    return (
        f"script: {script}\nenvironment:\n  python: {{user_managed_dependencies: true, "
        f"interpreter_path: {interpreter}}}\n"
        f"  docker:\n    enabled: true\n    base_image: {reg.image}\n"
        f"    base_image_registry: {{address: '{reg.address}', "
        f"username: {reg.username}}}\n"
    )


def forget_images(engine: DockerEngine, reg: LocalRegistry, project: Path) -> None:
    """Remove the pulled base and the environment image of project/rc.yml, whoever built
    them, so that the next run has to pull."""
    from targets.environments import resolve_environment
    from targets.runconfig.io import load_runconfig

    loaded = load_runconfig(project / "rc.yml", project_dir=project)
    env_hash = resolve_environment(loaded.config, loaded.source_directory).hash
    engine.run("image", "rm", f"targets-env:{env_hash}", check=False)
    engine.run("image", "rm", reg.image, check=False)


def test_private_registry_password_from_the_keyring(
    docker_engine, local_registry, project, write, cli
):
    reg = local_registry
    write(project / "p.py", "print('pulled and ran')\n")
    write(project / "rc.yml", registry_rc(reg, "p.py"))
    forget_images(docker_engine, reg, project)  # a pull must be needed
    missing = cli("run", "rc.yml")
    assert missing.code == 2, missing
    assert f"targets registry login {reg.address} --username {reg.username}" in missing.err
    login = cli(
        "registry",
        "login",
        reg.address,
        "--username",
        reg.username,
        "--password-stdin",
        input=reg.password,
    )
    assert login.code == 0, login
    reg.clear_requests()
    first = cli("run", "rc.yml")
    assert first.code == 0, first
    assert "pulled and ran" in first.out
    assert reg.count(kind="manifests") >= 1  # it was pulled, with the stored password
    reg.clear_requests()
    second = cli("run", "rc.yml")
    assert second.code == 0, second
    assert reg.count(kind="manifests") == 0  # present now: pulling happens only when absent
    for path in project.rglob("*"):
        if path.is_file():
            assert reg.password.encode() not in path.read_bytes(), path
    docker_engine.run("image", "rm", reg.image, check=False)


def test_private_registry_wrong_password_is_a_clear_failure(
    docker_engine, local_registry, project, write, cli
):
    reg = local_registry
    write(project / "p.py", "print('never')\n")
    write(project / "rc.yml", registry_rc(reg, "p.py", interpreter="/usr/bin/python3"))
    forget_images(docker_engine, reg, project)
    assert (
        cli(
            "registry",
            "login",
            reg.address,
            "--username",
            reg.username,
            "--password-stdin",
            input="not-the-password",
        ).code
        == 0
    )
    result = cli("run", "rc.yml")
    assert result.code != 0
    assert "refused" in result.err or "could not pull" in result.err, result
    assert "not-the-password" not in result.err


def test_a_v2_job_runs_in_its_image_where_docker_is_usable(docker_engine, project, write, cli):
    write(
        project / "job.yml",
        f"""
command: python3 -c "import os; print('in image', os.path.exists('/.dockerenv'))"
environment:
  image: {docker_engine.image}
""",
    )
    result = cli("run", "job.yml")
    assert result.code == 0, result
    assert "in image True" in result.out
    assert "set aside" not in result.err
