"""A user-managed local run uses the user's Python, not the one that runs `targets`.

The shapes come from users' machines: `targets` installed on its own (here: the test
venv, or a tool venv of its own) while the libraries live in a virtualenv under
``~/.virtualenvs`` or a conda env that the shell has activated (``VIRTUAL_ENV`` or
``CONDA_PREFIX`` set, its ``bin`` first on PATH); or nothing activated, and ``python``
on PATH. ``conftest.isolated_home`` activates the test venv; each test here builds its
own shape from that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import VENV_BIN, CLIResult
from tests.test_environments import make_wheel

# What a run reports: its interpreter, prefix, activation and whether userlib imports.
REPORT = """\
import json, os, sys
try:
    import userlib
    lib = userlib.__file__
except ImportError:
    lib = None
print("REPORT " + json.dumps({
    "executable": sys.executable,
    "prefix": sys.prefix,
    "userlib": lib,
    "virtual_env": os.environ.get("VIRTUAL_ENV"),
    "conda_prefix": os.environ.get("CONDA_PREFIX"),
    "conda_default_env": os.environ.get("CONDA_DEFAULT_ENV"),
    "path": os.environ["PATH"].split(os.pathsep),
}))
"""


def report(result: CLIResult) -> dict[str, Any]:
    assert result.code == 0, result
    lines = [line for line in result.out.splitlines() if line.startswith("REPORT ")]
    assert lines, result
    found: dict[str, Any] = json.loads(lines[-1][len("REPORT ") :])
    return found


def deactivated_path() -> str:
    """PATH without virtualenvs' bin folders (the test venv's, or one a test activated):
    the shell of a user who activated none."""
    return os.pathsep.join(
        p
        for p in os.environ["PATH"].split(os.pathsep)
        if p and not (Path(p).parent / "pyvenv.cfg").is_file()
    )


def make_venv(where: Path, *, pip: bool = True) -> Path:
    """A virtualenv (``python -m venv``) holding ``userlib``, which the test venv lacks,
    installed by pip from a local wheel (no index)."""
    args = [sys.executable, "-m", "venv", str(where)]
    subprocess.run(args if pip else [*args, "--without-pip"], check=True, timeout=300)
    wheel = make_wheel(where.parent / f"{where.name}-wheels", "userlib", "1.0")
    install = [sys.executable, "-m", "pip", "--python", str(where / "bin" / "python")]
    subprocess.run(
        [*install, "install", "--no-index", "--quiet", str(wheel)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return where


def activate(monkeypatch: pytest.MonkeyPatch, venv: Path) -> None:
    """What `source ~/.virtualenvs/proj/bin/activate` leaves in a shell."""
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv / "bin"), deactivated_path()]))


def base_python() -> str:
    """A Python that belongs to no virtualenv: ``python3`` on the deactivated PATH."""
    for name in ("python3", "python"):
        found = shutil.which(name, path=deactivated_path())
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("no python3 on PATH outside the test venv")
    pytest.skip("no python3 on PATH outside the test venv")


def prefix_of(python: str) -> str:
    """sys.prefix of ``python`` started with no environment active (pyenv's shims, for
    one, choose their interpreter by VIRTUAL_ENV)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    return subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "PATH": deactivated_path()},
    ).stdout.strip()


@pytest.fixture(scope="module")
def venv_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("template") / "proj", pip=False)


@pytest.fixture
def user_venv(isolated_home: Path, venv_template: Path) -> Path:
    """``~/.virtualenvs/proj``, holding ``userlib``. A copy of one venv made per module
    (creating a venv takes seconds); a venv's files name no absolute path of its own that
    ``python`` needs."""
    where = isolated_home / ".virtualenvs" / "proj"
    shutil.copytree(venv_template, where, symlinks=True)
    return where


def shown_python(cli: Callable[..., CLIResult]) -> tuple[dict[str, str], str]:
    """The interpreter `runs show` reports for the newest run: JSON and table."""
    runs = cli("runs", "list", "-o", "json").json()
    assert isinstance(runs, list) and runs
    run_id = runs[0]["id"]
    details = cli("runs", "show", run_id, "-o", "json").json()
    assert isinstance(details, dict)
    table = cli("runs", "show", run_id)
    assert table.code == 0, table
    return details["python"], table.out


def test_run_uses_the_activated_virtualenv(project, cli, write, user_venv, monkeypatch):
    assert shutil.which("python", path=VENV_BIN)  # targets' own venv lacks userlib:
    assert subprocess.run([sys.executable, "-c", "import userlib"]).returncode != 0
    activate(monkeypatch, user_venv)
    write(project / "train.py", REPORT)

    seen = report(cli("run", "train.py"))

    assert seen["prefix"] == str(user_venv)
    assert str(seen["userlib"]).startswith(str(user_venv))
    # The run's environment looks activated.
    assert seen["virtual_env"] == str(user_venv)
    assert seen["path"][0] == str(user_venv / "bin")
    python, table = shown_python(cli)
    assert python["path"] == str(user_venv / "bin" / "python")
    assert python["source"] == "VIRTUAL_ENV"
    assert str(user_venv / "bin" / "python") in table


def test_without_an_active_environment_python_on_path_runs(project, cli, write, monkeypatch):
    monkeypatch.delenv("VIRTUAL_ENV")
    monkeypatch.setenv("PATH", deactivated_path())
    python = shutil.which("python", path=deactivated_path()) or base_python()
    write(project / "train.py", REPORT)

    seen = report(cli("run", "train.py"))

    assert seen["prefix"] != sys.prefix  # not targets' own venv
    assert seen["prefix"] == prefix_of(python)
    assert seen["virtual_env"] is None
    assert VENV_BIN not in seen["path"]
    shown, _ = shown_python(cli)
    assert shown == {"path": python, "source": "PATH", "venv": None, "conda": None}


def test_python_option_wins_over_the_active_virtualenv(project, cli, write, user_venv, monkeypatch):
    activate(monkeypatch, user_venv)
    other = base_python()
    write(project / "train.py", REPORT)

    seen = report(cli("run", "train.py", "--python", other))

    assert seen["prefix"] == prefix_of(other)
    assert seen["userlib"] is None
    # The virtualenv that was active but not chosen is deactivated in the run.
    assert seen["virtual_env"] is None
    assert str(user_venv / "bin") not in seen["path"]
    shown, _ = shown_python(cli)
    assert shown["path"] == other and shown["source"] == "interpreter_path"


def test_python_option_works_for_a_command_job(project, cli, write, user_venv, monkeypatch):
    activate(monkeypatch, user_venv)
    other = base_python()
    write(project / "report.py", REPORT)
    write(
        project / "job.yml",
        "type: command\ncode: .\ncommand: python report.py\n"
        "environment:\n  image: library/python:latest\n",
    )
    # No Docker: the job's image is set aside and it runs in a user-managed Python.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")

    seen = report(cli("run", "job.yml", "--target", "local", "--python", other))

    assert seen["prefix"] == prefix_of(other)


@pytest.mark.parametrize("bad", ["missing/bin/python", "not-python.sh", "/etc/hostname"])
def test_a_bad_python_option_is_refused_before_anything_is_written(
    project, cli, write, user_venv, monkeypatch, bad
):
    activate(monkeypatch, user_venv)
    write(project / "train.py", REPORT)
    write(project / "not-python.sh", "#!/bin/sh\necho 'not python' >&2\nexit 3\n").chmod(0o755)

    result = cli("run", "train.py", "--python", bad)

    assert result.code == 2, result
    assert "Python interpreter" in result.err and Path(bad).name in result.err
    assert not list(project.glob(".targets/runs/*"))  # no run folder, no snapshot cache
    assert not list(project.glob(".targets/cache/*"))
    assert cli("runs", "list", "-o", "json").json() == []
    assert not (Path(os.environ["TARGETS_HOME"]) / "runs").exists()


def test_runconfig_interpreter_path_wins_and_is_activated(
    project, cli, write, user_venv, monkeypatch
):
    """The user chose targets' own venv in the runconfig: allowed, and it is activated
    there like any other venv; the active one is not."""
    activate(monkeypatch, user_venv)
    write(project / "train.py", REPORT)
    write(
        project / "rc.yml",
        "script: train.py\nenvironment:\n  python:\n    user_managed_dependencies: true\n"
        f"    interpreter_path: {VENV_BIN}/python\n",
    )

    seen = report(cli("run", "rc.yml"))

    assert seen["prefix"] == sys.prefix
    assert seen["virtual_env"] == sys.prefix
    assert seen["path"][0] == VENV_BIN
    assert str(user_venv / "bin") not in seen["path"]
    shown, _ = shown_python(cli)
    assert shown["path"] == f"{VENV_BIN}/python" and shown["source"] == "interpreter_path"


def test_an_active_conda_env_is_used_and_activated(project, cli, write, monkeypatch):
    # A conda env's shape: a prefix under .../envs/NAME with conda-meta/ and bin/python
    # (built with venv here: no conda needed).
    prefix = make_venv(Path(os.environ["HOME"]) / "miniconda3" / "envs" / "ml", pip=False)
    (prefix / "conda-meta").mkdir()
    monkeypatch.delenv("VIRTUAL_ENV")
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    monkeypatch.setenv("CONDA_DEFAULT_ENV", "ml")
    monkeypatch.setenv("PATH", os.pathsep.join([str(prefix / "bin"), deactivated_path()]))
    write(project / "train.py", REPORT)

    seen = report(cli("run", "train.py"))

    assert seen["executable"] == str(prefix / "bin" / "python")
    assert str(seen["userlib"]).startswith(str(prefix))
    assert seen["conda_prefix"] == str(prefix)
    assert seen["conda_default_env"] == "ml"
    assert seen["path"][0] == str(prefix / "bin")
    shown, _ = shown_python(cli)
    assert shown["source"] == "CONDA_PREFIX" and shown["conda"] == str(prefix)


def test_a_jobs_pip_install_does_not_land_in_targets_own_venv(
    project, write, isolated_home, monkeypatch, tmp_path
):
    """`targets` in a tool venv of its own (which sees the test venv's packages through a
    .pth file, so that nothing here can change the test venv): a run's
    `python -m pip install` goes into the user's active venv."""
    tool = tmp_path / "tool-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tool)], check=True)
    tool_site = Path(sysconfig.get_path("purelib", vars={"base": str(tool)}))
    test_site = sysconfig.get_path("purelib")
    (tool_site / "test_venv.pth").write_text(f"import site; site.addsitedir({test_site!r})\n")
    user_venv = make_venv(isolated_home / ".virtualenvs" / "proj")  # with pip in it
    activate(monkeypatch, user_venv)
    wheel = make_wheel(project / "wheels", "jobpkg", "2.0")
    command = f"python -m pip install --no-index --quiet wheels/{wheel.name}"

    done = subprocess.run(
        [str(tool / "bin" / "python"), "-m", "targets", "run", "-c", command],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done
    assert list(Path(sysconfig.get_path("purelib", vars={"base": str(user_venv)})).glob("jobpkg*"))
    assert not list(tool_site.glob("jobpkg*"))
    assert not list(Path(test_site).glob("jobpkg*"))


def test_the_shells_order_virtualenv_then_conda_then_path(tmp_path: Path) -> None:
    """`python` in a shell: the active virtualenv (a stale VIRTUAL_ENV without an
    interpreter is skipped, as the shell would skip it), then conda, then PATH."""
    from targets.compute._python import find_user_python

    conda = tmp_path / "conda"
    (conda / "bin").mkdir(parents=True)
    (conda / "bin" / "python").symlink_to(sys.executable)
    venv = Path(sys.prefix)
    stale = tmp_path / "removed-venv"
    path = deactivated_path()

    both = find_user_python({"VIRTUAL_ENV": str(venv), "CONDA_PREFIX": str(conda), "PATH": path})
    assert (both.path, both.source, both.venv) == (f"{VENV_BIN}/python", "VIRTUAL_ENV", sys.prefix)
    assert find_user_python({"VIRTUAL_ENV": str(stale), "CONDA_PREFIX": str(conda)}).conda == str(
        conda
    )
    on_path = find_user_python({"VIRTUAL_ENV": str(stale), "PATH": path})
    assert on_path.source == "PATH" and on_path.venv is None


def test_a_library_call_runs_with_the_callers_python(project, write, user_venv, monkeypatch):
    """A notebook kernel (or a script) that imports targets: its interpreter is the user's
    Python even though no environment is activated on PATH, as for a Jupyter kernel
    registered with ipykernel. The kernel's venv sees targets through a .pth file."""
    kernel_site = Path(sysconfig.get_path("purelib", vars={"base": str(user_venv)}))
    (kernel_site / "test_venv.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n"
    )
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("PATH", deactivated_path())
    write(project / "report.py", REPORT)
    control = (
        "from targets import Experiment, RunConfiguration, ScriptRunConfig, Workspace\n"
        "rc = RunConfiguration()\n"
        "rc.environment.python.user_managed_dependencies = True\n"
        "run = Experiment(Workspace.from_dir('.'), 'nb').submit(\n"
        "    ScriptRunConfig(source_directory='.', script='report.py', run_config=rc))\n"
        "run.wait_for_completion(show_output=True)\n"
    )
    done = subprocess.run(
        [str(user_venv / "bin" / "python"), "-c", control],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project,
    )
    assert done.returncode == 0, done
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, done
    seen = json.loads(lines[-1][len("REPORT ") :])
    assert seen["executable"] == str(user_venv / "bin" / "python")
    assert seen["userlib"] is not None  # the kernel's own package
