"""System-managed environments on the local target, end to end through `targets run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.test_environments import make_wheel


@pytest.fixture(autouse=True)
def _isolated_uv(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.mktemp("uv-cache")))
    monkeypatch.setenv("UV_LINK_MODE", "copy")


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    make_wheel(folder, "tinypkg", "1.0")
    return folder


def conda_file(wheels: Path, *pip: str) -> str:
    lines = [
        "name: project_environment",
        "dependencies:",
        "- pip:",
        "  - --no-index",
        f"  - --find-links {wheels}",
    ]
    lines += [f"  - {p}" for p in pip]
    return "\n".join(lines) + "\n"


def local_envs(cli) -> list[dict]:
    """Environments built on this machine (Docker images of the shared engine aside)."""
    return [e for e in cli("envs", "list", "-o", "json").json() if e["builder"] != "docker"]


def last(project: Path) -> dict:
    return Workspace(project).ledger.list(limit=1)[0].to_json()


@pytest.mark.xdist_group("docker")  # its prune also removes unused images of the shared engine
def test_conda_dependencies_are_prepared_once_and_reused(project, cli, write, wheels):
    write(project / "conda_dependencies.yml", conda_file(wheels, "tinypkg==1.0"))
    write(
        project / "use.py",
        "import sys, tinypkg\nprint('tinypkg', tinypkg.VERSION)\nprint(sys.prefix)\n",
    )
    write(
        project / "rc.yml",
        "script: use.py\nenvironment:\n  python:\n"
        "    conda_dependencies_file: conda_dependencies.yml\n",
    )
    first = cli("run", "rc.yml")
    assert first.code == 0, first
    assert "tinypkg 1.0" in first.out
    assert "# preparing environment" in first.out  # preparation streams live
    run1 = last(project)
    assert "preparing" in run1["phases"]
    folder1 = project / ".targets" / "runs" / run1["id"]
    assert "preparing environment" in (folder1 / "prepare.log").read_text()

    second = cli("run", "rc.yml")
    assert second.code == 0, second
    assert "# reusing environment" in second.out
    # both runs ran in the same cached environment (the printed sys.prefix)
    assert first.out.strip().splitlines()[-1] == second.out.strip().splitlines()[-1]

    envs = local_envs(cli)
    assert len(envs) == 1 and envs[0]["ready"]
    pruned = cli("envs", "prune", "--yes", "-o", "json").json()
    assert envs[0]["hash"] in pruned["removed"]
    assert local_envs(cli) == []


def test_a_package_that_cannot_be_had_fails_preparation_and_names_it(project, cli, write, wheels):
    write(project / "env.yml", conda_file(wheels, "no-such-package-xyz==9.9"))
    write(project / "t.py", "print('never')\n")
    write(
        project / "rc.yml",
        "script: t.py\nenvironment:\n  python:\n    conda_dependencies_file: env.yml\n",
    )
    result = cli("run", "rc.yml")
    assert result.code == 1, result
    assert "no-such-package-xyz" in result.err
    run = last(project)
    assert run["status"] == "Failed"
    assert "environment preparation failed" in run["message"]
    assert "never" not in result.out
    assert local_envs(cli) == []  # nothing left marked ready


def test_a_malformed_conda_file_is_refused_before_anything_runs(project, cli, write):
    write(project / "env.yml", "dependencies:\n- numpy==\n")
    write(project / "t.py", "print(1)\n")
    write(
        project / "rc.yml",
        "script: t.py\nenvironment:\n  python:\n    conda_dependencies_file: env.yml\n",
    )
    result = cli("run", "rc.yml")
    assert result.code == 2, result
    assert "env.yml" in result.err
    assert Workspace(project).ledger.count() == 0


def test_python_api_with_conda_dependencies_object(project, write, wheels):
    from targets import CondaDependencies, Environment, Experiment, ScriptRunConfig, Workspace

    write(project / "use.py", "import tinypkg\nprint('api sees tinypkg', tinypkg.VERSION)\n")
    env = Environment("tiny")
    deps = CondaDependencies.create(pip_packages=["tinypkg==1.0"])
    deps.set_pip_option("--no-index")
    deps.set_pip_option(f"--find-links {wheels}")
    env.python.conda_dependencies = deps
    run = Experiment(Workspace.from_dir("."), "api").submit(
        ScriptRunConfig(source_directory=".", script="use.py", environment=env)
    )
    run.wait_for_completion()
    assert "api sees tinypkg 1.0" in (run.folder / "driver.log").read_text()


def test_preparation_that_hangs_is_stopped_with_its_reason(project, cli, write):
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    try:
        write(
            project / "env.yml",
            "dependencies:\n- pip:\n"
            f"  - --index-url http://127.0.0.1:{port}/simple\n  - somepackage\n",
        )
        write(project / "t.py", "print('never')\n")
        write(
            project / "rc.yml",
            "script: t.py\nenvironment:\n  python:\n    conda_dependencies_file: env.yml\n",
        )
        result = cli("run", "rc.yml", env={"TARGETS_PREPARE_TIMEOUT": "3"})
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for conn in accepted:
            conn.close()
    assert result.code == 1, result
    assert "took longer than 3 s" in result.err
    assert "TARGETS_PREPARE_TIMEOUT" in result.err
    assert local_envs(cli) == []


def test_a_bad_prepare_timeout_is_refused_before_anything_is_written(project, cli, write):
    write(project / "t.py", "print(1)\n")
    result = cli("run", "t.py", env={"TARGETS_PREPARE_TIMEOUT": "soon"})
    assert result.code == 2 and "TARGETS_PREPARE_TIMEOUT" in result.err
    assert Workspace(project).ledger.count() == 0
