"""`targets plugin new NAME` makes a plugin that installs with a light test extra, lists
itself, passes the contract suite as generated, and tests a backend of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.xdist_group("install")

TEST_EXTRA_LIMIT = 50 * 1024 * 1024
"""What the generated plugin's test extra may add to an installation of targets."""


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def _disk_usage(folder: Path) -> int:
    """Bytes the files under ``folder`` take on disk (what ``du`` counts)."""
    return sum(
        os.lstat(os.path.join(dirpath, name)).st_blocks * 512
        for dirpath, _dirs, names in os.walk(folder)
        for name in names
    )


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with targets installed from this checkout (its dependencies only)."""
    venv = tmp_path_factory.mktemp("plugin-dev") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = _pip(venv, str(REPO))
    if done.returncode != 0:
        message = f"pip install of the checkout failed:\n{done.stdout}\n{done.stderr}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return venv


def test_a_generated_plugin_installs_a_light_test_extra_and_passes_its_suite(
    cli, tmp_path: Path, core_venv: Path
) -> None:
    folder = tmp_path / "targets-pbs-lite"
    made = cli("plugin", "new", "pbs-lite", "--dest", str(folder))
    assert made.code == 0, made
    assert 'test = ["compute-targets[testing]"]' in (folder / "pyproject.toml").read_text()
    site = next((core_venv / "lib").glob("python3.*/site-packages"))
    before = _disk_usage(site)
    installed = _pip(core_venv, "-e", f"{folder}[test]")
    assert installed.returncode == 0, installed.stderr
    added = _disk_usage(site) - before
    print(f"the test extra added {added / 2**20:.1f} MiB")
    assert added < TEST_EXTRA_LIMIT, f"the test extra added {added / 2**20:.1f} MiB"
    for heavy in ("torch", "pyspark", "azure", "mlflow", "optuna"):
        assert not list(site.glob(f"{heavy}*")), f"the test extra pulled in {heavy}"

    kinds = subprocess.run(
        [str(core_venv / "bin" / "targets"), "kinds"], capture_output=True, text=True, timeout=120
    )
    assert kinds.returncode == 0, kinds.stderr
    line = next(x for x in kinds.stdout.splitlines() if x.startswith("pbs-lite"))
    assert "targets-pbs-lite 0.1.0" in line and "virtualenv" in line
    assert "pbs-lite" not in cli("kinds").out  # not installed in the suite's own venv

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    tests = subprocess.run(
        [str(core_venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=folder,
        env={**env, "PATH": f"{core_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"},
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    # Every test of the contract suite ran and passed, and the two tests of the backend.
    from targets.testing import ComputeTargetContract

    expected = sum(1 for name in dir(ComputeTargetContract) if name.startswith("test_"))
    assert f"{expected + 2} passed" in tests.stdout, tests.stdout[-2000:]


def test_the_generated_backend_test_fails_when_the_backend_does_not_run_the_job(
    cli, tmp_path: Path
) -> None:
    """The generated tests prove something about the kind's own backend: a kind whose
    runs skip the backend (the agent's default launch) fails them."""
    folder = tmp_path / "targets-pbs-lite"
    assert cli("plugin", "new", "pbs-lite", "--dest", str(folder)).code == 0
    target = folder / "targets_pbs_lite" / "target.py"
    text = target.read_text()
    # Without its start_run, the kind lets the agent launch runs itself, as before.
    target.write_text(
        text[: text.index("    def start_run(")] + text[text.index("    def status(") :]
    )
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "backend"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])},
    )
    assert tests.returncode != 0, tests.stdout[-3000:]
    assert "1 failed" in tests.stdout, tests.stdout[-3000:]


def test_a_bad_kind_name_is_refused_and_nothing_is_written(cli, tmp_path: Path) -> None:
    refused = cli("plugin", "new", "My Kind", "--dest", str(tmp_path / "x"))
    assert refused.code == 2, refused
    assert "cannot be the name of a target kind" in refused.err
    assert not (tmp_path / "x").exists()


def test_an_existing_folder_is_not_overwritten(cli, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    refused = cli("plugin", "new", "pbs", "--dest", str(folder))
    assert refused.code == 2, refused
    assert "already exists" in refused.err
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
