"""A HOME with several projects in it, as on a user's machine: the local agent's own
``~/.targets`` sits above every project and is never taken for a workspace; commands
that only read leave a fresh repository exactly as it was."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from targets.workspace import MARKER, Workspace
from tests.conftest import CLIResult


def git_repo(folder: Path) -> Path:
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True, timeout=30)
    return folder


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` (``.git`` included) with its size and mtime."""
    found = {}
    for path in sorted(folder.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def home(isolated_home: Path) -> Path:
    """A fresh HOME whose agent home is the default ``~/.targets`` (TARGETS_HOME says
    so too, as the suite sets it), with two git projects in it."""
    assert os.environ["TARGETS_HOME"] == str(isolated_home / ".targets")
    for name in ("p1", "p2"):
        git_repo(isolated_home / name)
        (isolated_home / name / "main.py").write_text(f"print('hello from {name}')\n")
    return isolated_home


def test_two_projects_under_home_each_run_locally_in_their_own_workspace(
    home: Path, cli: Callable[..., CLIResult]
) -> None:
    for name in ("p1", "p2", "p1"):
        result = cli("run", "main.py", "--target", "local", cwd=home / name)
        assert result.code == 0, result
        assert f"hello from {name}" in result.out
    for name, count in (("p1", 2), ("p2", 1)):
        ws = home / name / ".targets"
        assert (ws / MARKER).is_file() and (ws / ".gitignore").is_file()
        runs = sorted(p.name for p in (ws / "runs").iterdir())
        assert len(runs) == count and all(r.startswith(f"{name}_") for r in runs), runs
        listed = cli("runs", "list", "-o", "json", cwd=home / name).json()
        assert {r["experiment"] for r in listed} == {name}
    agent = home / ".targets"
    assert (agent / "objects").is_dir()  # the agent's home is used by the runs...
    assert not (agent / MARKER).exists()  # ...and never became a workspace
    assert not (agent / "runs.db").exists()
    for name in ("p1", "p2"):  # each run has two folders, the workspace's and the agent's
        for folder in (home / name / ".targets" / "runs").iterdir():
            theirs = agent / "runs" / folder.name
            assert theirs.is_dir() and theirs.resolve() != folder.resolve()
            assert (folder / "run.json").is_file() and not (theirs / "run.json").exists()


def test_a_home_left_by_an_earlier_version_is_not_a_workspace(
    home: Path, cli: Callable[..., CLIResult]
) -> None:
    # What the earlier version left: the agent's store and a ledger in the same folder.
    agent = home / ".targets"
    (agent / "objects").mkdir(parents=True)
    (agent / "runs").mkdir()
    (agent / "runs.db").write_bytes(b"")
    (agent / "targets.yml").write_text("targets: {}\n")
    result = cli("run", "main.py", cwd=home / "p2")
    assert result.code == 0, result
    assert (home / "p2" / ".targets" / MARKER).is_file()
    assert cli("runs", "list", "-o", "json", cwd=home / "p2").json()[0]["experiment"] == "p2"


def test_workspaces_of_earlier_versions_are_still_found(tmp_path: Path) -> None:
    project = tmp_path / "old"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    (project / ".targets").mkdir()
    (project / ".targets" / "targets.yml").write_text("targets: {}\n")  # no marker yet
    assert Workspace.find(deep).root == project
    bare = tmp_path / "bare"
    (bare / ".targets").mkdir(parents=True)  # an empty folder is nobody's workspace
    (bare / "sub").mkdir()
    assert Workspace.find(bare / "sub").root == bare / "sub"


def test_a_closer_workspace_inside_the_repository_wins_and_none_above_it_does(
    home: Path, tmp_path: Path
) -> None:
    outer = tmp_path / "outer"
    Workspace(outer).ensure()  # a real workspace above the repository...
    repo = git_repo(outer / "repo")
    (repo / "a" / "b").mkdir(parents=True)
    assert Workspace.find(repo / "a" / "b").root == repo  # ...is not the repository's
    Workspace(repo / "a").ensure()  # one between the folder and the git top is
    assert Workspace.find(repo / "a" / "b").root == repo / "a"


def test_in_home_itself_outside_git_a_workspace_command_stops_and_says_why(
    home: Path, cli: Callable[..., CLIResult]
) -> None:
    (home / "main.py").write_text("print('never')\n")
    before = tree(home)
    for args in (("run", "main.py"), ("runs", "list"), ("attach", "box", "--type", "local")):
        result = cli(*args, cwd=home)
        assert result.code == 2, result
        assert "agent" in result.err and "--workspace" in result.err, result
        assert "Traceback" not in result.err
    assert tree(home) == before  # nothing written
    # The fix the message gives works.
    inside = cli("--workspace", str(home / "p1"), "runs", "list", "-o", "json", cwd=home)
    assert inside.code == 0 and inside.json() == [], inside


def test_the_agent_home_cannot_be_made_a_workspace_through_the_api(home: Path) -> None:
    from targets.errors import UsageError

    with pytest.raises(UsageError) as info:
        Workspace(home).ensure()
    assert info.value.exit_code == 2
    assert not (home / ".targets" / MARKER).exists()


READ_ONLY = [
    ("list",),
    ("list", "-o", "json"),
    ("show", "local"),
    ("show", "local", "-o", "json"),
    ("runs", "list"),
    ("runs", "list", "-o", "json"),
    ("runs", "list", "--all"),
    ("runs", "show", "nosuchrun"),
    ("kinds",),
    ("schema", "runconfig"),
    ("runconfig", "validate", "rc.yml"),
    ("runconfig", "validate", "rc.yml", "-o", "json"),
]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_write_nothing_in_a_fresh_repository(
    home: Path, cli: Callable[..., CLIResult], args: tuple[str, ...]
) -> None:
    repo = home / "p1"
    (repo / "rc.yml").write_text("script: main.py\n")
    before = tree(repo)
    result = cli(*args, cwd=repo)
    assert result.code in (0, 2) and "Traceback" not in result.err, result
    if args[:2] != ("runs", "show"):
        assert result.code == 0, result
    assert tree(repo) == before, f"targets {' '.join(args)} wrote into the repository"


def test_the_first_run_creates_the_workspace_whole(
    home: Path, cli: Callable[..., CLIResult]
) -> None:
    repo = home / "p1"
    assert cli("runs", "list", cwd=repo).code == 0
    assert not (repo / ".targets").exists()
    assert cli("run", "main.py", cwd=repo).code == 0
    made = repo / ".targets"
    assert (made / MARKER).is_file() and (made / "runs.db").is_file()
    assert (made / ".gitignore").read_text().strip().endswith("*")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".targets" not in status.stdout  # the whole workspace stays out of git
