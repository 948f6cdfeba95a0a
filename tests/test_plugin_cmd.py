"""`targets plugin new NAME` makes a plugin that installs, lists itself and passes the
contract suite as generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_a_generated_plugin_installs_lists_itself_and_passes_the_contract(
    cli, tmp_path: Path
) -> None:
    made = cli("plugin", "new", "pbs-lite", "--dest", str(tmp_path / "targets-pbs-lite"))
    assert made.code == 0, made
    folder = tmp_path / "targets-pbs-lite"
    assert (folder / "targets_pbs_lite" / "target.py").is_file()
    site = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    kinds = cli("kinds", env=env)
    assert kinds.code == 0, kinds
    line = next(x for x in kinds.out.splitlines() if x.startswith("pbs-lite"))
    assert "targets-pbs-lite 0.1.0" in line and "virtualenv" in line
    assert "pbs-lite" not in cli("kinds").out  # not installed where the env var is not set
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
        env={**os.environ, **env},
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    # Every test of the contract suite ran and passed (none skipped): as many as it has.
    from targets.testing import ComputeTargetContract

    expected = sum(1 for name in dir(ComputeTargetContract) if name.startswith("test_"))
    assert f"{expected} passed" in tests.stdout, tests.stdout[-2000:]


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
