"""targets installed on its own, the way the README says, used from a project under ~/code.

This is the shape most users have: `pipx install ./targets` (or a tool venv of its own),
and a project in `~/code/` with its own virtualenv. The install is real: a fresh venv,
`pip install <checkout>` (not editable, dependencies from the package index this machine's
pip is configured for), then the installed `targets` runs the project.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.xdist_group("install")


def test_readme_says_how_to_install_from_a_checkout() -> None:
    readme = (REPO / "README.md").read_text()
    # The distribution is not published: the README must not send users to PyPI for it
    # without saying so, and must give the commands that work from a checkout.
    assert re.search(r"pipx install \./targets", readme)
    assert re.search(r"pip install \./targets", readme)
    assert "not published" in readme or "not on PyPI" in readme


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def installed_targets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`targets` installed from this checkout into a venv of its own (what pipx does)."""
    tool = tmp_path_factory.mktemp("tool") / "venv"
    _run([sys.executable, "-m", "venv", str(tool)], check=True)
    done = _run(
        [str(tool / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO)],
        timeout=900,
    )
    if done.returncode != 0:
        message = f"pip install of the checkout failed:\n{done.stdout}\n{done.stderr}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return tool / "bin" / "targets"


def test_an_installed_targets_runs_a_project_under_code_with_its_own_venv(
    installed_targets: Path, isolated_home: Path
) -> None:
    home = isolated_home
    project = home / "code" / "proj"
    project.mkdir(parents=True)
    _run(["git", "init", "-q", str(project)], check=True)
    # The user's project venv, inside the project (left out of the snapshot), with a
    # module of their own that targets' venv does not have.
    venv = project / ".venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    (site / "userlib_install_check.py").write_text("VALUE = 'from the user venv'\n")
    (project / "train.py").write_text(
        "import os, sys, userlib_install_check\n"
        "print('prefix', sys.prefix)\n"
        "print(userlib_install_check.VALUE)\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.txt', 'w').write('ok')\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "TARGETS_WORKSPACE"}
    }
    # Activated as `source .venv/bin/activate` does; targets' own venv is not on PATH.
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p != str(Path(sys.prefix) / "bin")]
    env.update(VIRTUAL_ENV=str(venv), PATH=os.pathsep.join([str(venv / "bin"), *path]))

    done = _run([str(installed_targets), "run", "train.py"], cwd=project, env=env, timeout=300)
    assert done.returncode == 0, done
    assert f"prefix {venv}" in done.stdout
    assert "from the user venv" in done.stdout

    shown = _run(
        [str(installed_targets), "runs", "list", "-o", "json"], cwd=project, env=env, timeout=60
    )
    runs = json.loads(shown.stdout)
    assert len(runs) == 1
    folder = project / ".targets" / "runs" / runs[0]["id"]
    assert (folder / "outputs" / "model.txt").read_text() == "ok"
    # The project's history is its own; the agent's home is not a workspace.
    assert (project / ".targets" / ".gitignore").is_file()
    assert not (home / ".targets" / "runs.db").exists()
    status = _run(["git", "status", "--porcelain"], cwd=project, check=True).stdout
    assert ".targets" not in status
