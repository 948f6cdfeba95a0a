"""What a real project holds and a snapshot must cope with: a virtualenv, caches, and
symlinks that point outside the project (issue 12, item 3).

End to end through the real `targets` command on the local target, and once over SSH to
the test sshd; the finer rules through `take_snapshot` on real files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from targets.errors import SnapshotError
from targets.snapshot import SnapshotLimits, take_snapshot
from targets.workspace import Workspace
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.test_vm import attach_args

# Writes what the run sees of the paths given as arguments to outputs/seen.json.
REPORT = """
import json, os, pathlib, sys
seen = {}
for path in sys.argv[1:]:
    p = pathlib.Path(path)
    seen[path] = {
        "exists": p.exists(),
        "link": p.is_symlink(),
        "text": p.read_text() if p.is_file() else None,
    }
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/seen.json").write_text(json.dumps(seen))
print("ran", len(seen))
"""


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_venv(path: Path) -> None:
    """A real virtual environment, as `python -m venv` makes it (without pip: small)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    assert (path / "pyvenv.cfg").is_file()


def paths(root: Path, **kwargs: Any) -> list[str]:
    return [f.path for f in take_snapshot(root, **kwargs).files]


def last_run(project: Path) -> tuple[dict, dict]:
    """(files of the last run's snapshot manifest by path, what the run saw)."""
    ws = Workspace(project)
    record = ws.ledger.list(limit=1)[0]
    folder = ws.run_dir(record.id)
    manifest = json.loads((folder / "run.json").read_text())
    files = {row[0]: row for row in manifest["snapshot"]["files"]}
    seen_file = folder / "outputs" / "seen.json"
    seen = json.loads(seen_file.read_text()) if seen_file.exists() else {}
    return files, seen


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the project: a shared data set, a checkout of a library."""
    root = tmp_path / "shared"
    write(root / "config.yml", "lr: 0.1\n")
    write(root / "data" / "train.csv", "a,b\n1,2\n")
    write(root / "data" / "more" / "test.csv", "a,b\n3,4\n")
    return root


# --------------------------------------------------------------------------- virtualenvs


def test_a_project_holding_its_virtualenv_runs_on_the_local_target(project, cli):
    make_venv(project / ".venv")
    write(project / "report.py", REPORT)
    result = cli("run", "report.py", "--target", "local", "--", ".venv", "report.py")
    assert result.code == 0, result
    assert "ran 2" in result.out
    files, seen = last_run(project)
    assert not [p for p in files if p.startswith(".venv/")]
    assert seen[".venv"]["exists"] is False and seen["report.py"]["exists"] is True


def test_a_virtualenvs_files_do_not_count_against_the_limit(tmp_path):
    # Why leaving it out matters: pip alone is about a thousand files. With the file limit
    # below what the venv holds, the project still fits: the venv is not even listed.
    venv = tmp_path / "proj" / ".venv"
    make_venv(venv)
    write(venv / "lib" / "site-packages" / "pkg" / "__init__.py")
    for i in range(30):
        write(venv / "lib" / "site-packages" / "pkg" / f"m{i}.py")
    write(tmp_path / "proj" / "main.py")
    held = sum(len(files) for _, _, files in os.walk(venv))
    limits = SnapshotLimits(max_files=held - 1)
    assert paths(tmp_path / "proj", limits=limits) == ["main.py"]


def test_env_is_left_out_only_when_it_is_an_environment(tmp_path):
    a = tmp_path / "a"
    make_venv(a / "env")
    write(a / "main.py")
    assert paths(a) == ["main.py"]
    b = tmp_path / "b"
    write(b / "env" / "__init__.py")  # a package named env: ordinary source
    write(b / "env" / "settings.py")
    write(b / "main.py")
    assert paths(b) == ["env/__init__.py", "env/settings.py", "main.py"]


def test_environments_are_recognised_by_their_marker_at_any_depth(tmp_path):
    write(tmp_path / "main.py")
    write(tmp_path / "tools" / "py312" / "pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path / "tools" / "py312" / "lib" / "x.py")
    write(tmp_path / "envs" / "train" / "conda-meta" / "history")
    write(tmp_path / "envs" / "train" / "bin" / "python")
    write(tmp_path / "envs" / "notes.md")
    write(tmp_path / "conda-meta.txt")  # only a folder named conda-meta marks an env
    assert paths(tmp_path) == ["conda-meta.txt", "envs/notes.md", "main.py"]


def test_a_virtualenv_reached_through_a_symlink_is_left_out(tmp_path):
    make_venv(tmp_path / "elsewhere" / "proj-venv")
    root = tmp_path / "proj"
    write(root / "main.py")
    (root / ".venv").symlink_to(tmp_path / "elsewhere" / "proj-venv")
    for policy in ("follow", "skip", "refuse"):
        assert paths(root, symlinks=policy) == ["main.py"]


def test_caches_are_left_out_at_any_depth(tmp_path):
    write(tmp_path / "main.py")
    for cache in (
        "__pycache__/main.cpython-311.pyc",
        "pkg/__pycache__/m.cpython-311.pyc",
        "web/node_modules/left-pad/index.js",
        "notebooks/.ipynb_checkpoints/a-checkpoint.ipynb",
        ".mypy_cache/3.11/main.meta.json",
        ".pytest_cache/v/cache/lastfailed",
    ):
        write(tmp_path / cache)
    write(tmp_path / "pkg" / "m.py")
    write(tmp_path / "notebooks" / "a.ipynb")
    assert paths(tmp_path) == ["main.py", "notebooks/a.ipynb", "pkg/m.py"]


def test_the_defaults_come_back_with_a_bang_pattern(tmp_path):
    write(tmp_path / "main.py")
    write(tmp_path / ".venv" / "pyvenv.cfg")
    write(tmp_path / ".venv" / "lib" / "x.py")
    write(tmp_path / "__pycache__" / "m.pyc")
    write(tmp_path / "web" / "node_modules" / "m.js")
    write(tmp_path / ".targetsignore", "!.venv/\n")
    write(tmp_path / "web" / ".amlignore", "!node_modules\n")
    assert paths(tmp_path) == [
        ".targetsignore",
        ".venv/lib/x.py",
        ".venv/pyvenv.cfg",
        "main.py",
        "web/.amlignore",
        "web/node_modules/m.js",
    ]
    # .git and the workspace folder never come back.
    write(tmp_path / ".git" / "HEAD")
    write(tmp_path / ".targets" / "runs.db")
    write(tmp_path / ".targetsignore", "!.venv/\n!.git/\n!.targets/\n!__pycache__/\n")
    got = paths(tmp_path)
    assert "__pycache__/m.pyc" in got
    assert not [p for p in got if p.startswith((".git/", ".targets/"))]


# --------------------------------------------------------------------------- symlinks out


def test_an_outside_symlink_is_followed_by_default_and_its_content_arrives(project, cli, outside):
    (project / "config.yml").symlink_to(outside / "config.yml")
    (project / "data").symlink_to(outside / "data")
    write(project / "report.py", REPORT)
    args = ("config.yml", "data/train.csv", "data/more/test.csv")
    result = cli("run", "report.py", "--target", "local", "--", *args)
    assert result.code == 0, result
    files, seen = last_run(project)
    for path in args:
        assert seen[path]["exists"] and not seen[path]["link"], seen
        assert seen[path]["text"] == (outside / path).read_text()
        assert files[path][4] is None  # a regular file in the manifest, not a link
    assert seen["config.yml"]["text"] == "lr: 0.1\n"


def test_skip_leaves_an_outside_symlink_out_with_a_warning(project, cli, outside):
    (project / "config.yml").symlink_to(outside / "config.yml")
    write(project / "report.py", REPORT)
    env = {"TARGETS_SNAPSHOT_SYMLINKS": "skip"}
    result = cli("run", "report.py", "--target", "local", "--", "config.yml", env=env)
    assert result.code == 0, result
    assert "warning:" in result.err and "config.yml" in result.err, result
    files, seen = last_run(project)
    assert "config.yml" not in files
    assert seen["config.yml"]["exists"] is False


def test_refuse_stops_before_anything_is_recorded(project, cli, outside):
    (project / "config.yml").symlink_to(outside / "config.yml")
    write(project / "report.py", REPORT)
    env = {"TARGETS_SNAPSHOT_SYMLINKS": "refuse"}
    result = cli("run", "report.py", "--target", "local", env=env)
    assert result.code == 2, result
    assert f"config.yml -> {outside / 'config.yml'}" in result.err
    assert "TARGETS_SNAPSHOT_SYMLINKS=follow" in result.err  # the way out is named
    assert "Traceback" not in result.err
    assert Workspace(project).ledger.count() == 0


def test_a_bad_symlink_policy_lists_the_valid_ones(project, cli, outside):
    write(project / "report.py", REPORT)
    result = cli("run", "report.py", env={"TARGETS_SNAPSHOT_SYMLINKS": "copy"})
    assert result.code == 2, result
    assert "TARGETS_SNAPSHOT_SYMLINKS='copy'" in result.err
    assert "follow, skip, refuse" in result.err
    assert Workspace(project).ledger.count() == 0
    with pytest.raises(SnapshotError):
        take_snapshot(project, symlinks="copy")  # type: ignore[arg-type]


def test_a_symlink_loop_outside_is_cut_and_does_not_hang(project, cli, outside):
    (outside / "data" / "more" / "up").symlink_to(outside)  # shared/data/more/up -> shared
    (project / "data").symlink_to(outside / "data")
    write(project / "report.py", REPORT)
    result = cli("run", "report.py", "--", "data/more/test.csv", timeout=60)
    assert result.code == 0, result
    assert "loop" in result.err, result
    files, seen = last_run(project)
    assert seen["data/more/test.csv"]["text"] == "a,b\n3,4\n"
    # shared/ itself is copied once under data/more/up/, and not again below that.
    assert "data/more/up/config.yml" in files
    assert not [p for p in files if "/up/data/more/up/" in p]


def test_over_the_limit_the_error_names_the_symlink_that_brought_the_files(project, cli, tmp_path):
    big = tmp_path / "dataset"
    for i in range(40):
        write(big / f"part-{i:03}.csv", "1,2\n" * 10)
    (project / "inputs").symlink_to(big)
    write(project / "report.py", REPORT)
    result = cli("run", "report.py", env={"TARGETS_SNAPSHOT_MAX_FILES": "20"})
    assert result.code == 2, result
    assert f"inputs -> {big}" in result.err
    assert "TARGETS_SNAPSHOT_SYMLINKS=skip" in result.err
    assert Workspace(project).ledger.count() == 0


def test_a_dangling_outside_symlink_is_kept_as_a_link_with_a_warning(tmp_path):
    root = tmp_path / "proj"
    write(root / "main.py")
    (root / "scratch").symlink_to("/mnt/nonexistent-scratch")
    got: list[str] = []
    snap = take_snapshot(root, warn=got.append)
    link = {f.path: f.link for f in snap.files}["scratch"]
    assert link == "/mnt/nonexistent-scratch"
    assert got and "scratch" in got[0]


def test_a_changed_followed_file_is_hashed_again(tmp_path, outside):
    root = tmp_path / "proj"
    write(root / "main.py")
    (root / "config.yml").symlink_to(outside / "config.yml")
    cache = tmp_path / "cache.db"
    first = take_snapshot(root, cache_path=cache)
    (outside / "config.yml").write_text("lr: 0.2\n")  # same size, other content
    os.utime(outside / "config.yml", ns=(1, 1))  # old enough to be cached
    second = take_snapshot(root, cache_path=cache)
    assert first.digest != second.digest
    (outside / "config.yml").unlink()
    write(outside / "config.yml", "lr: 0.3\n")  # a new file behind the same link
    os.utime(outside / "config.yml", ns=(1, 1))
    third = take_snapshot(root, cache_path=cache)
    assert third.digest not in (first.digest, second.digest)


def test_ignore_rules_apply_inside_a_followed_folder(tmp_path, outside):
    root = tmp_path / "proj"
    write(root / "main.py")
    (root / "data").symlink_to(outside / "data")
    write(root / ".targetsignore", "data/more/\n")
    assert paths(root) == [".targetsignore", "data/train.csv", "main.py"]
    write(root / ".targetsignore", "data/\n")  # a folder pattern leaves the link out
    assert paths(root) == [".targetsignore", "main.py"]


def test_a_link_inside_a_followed_folder_back_into_the_project_stays_a_link(tmp_path, outside):
    root = tmp_path / "proj"
    write(root / "main.py")
    (outside / "data" / "settings.yml").symlink_to(root / "main.py")
    (root / "data").symlink_to(outside / "data")
    links = {f.path: f.link for f in take_snapshot(root).files}
    assert links["data/settings.yml"] == "../main.py"  # relative to where it lands
    assert links["data/train.csv"] is None


def test_the_docs_list_every_default_and_every_policy():
    from targets.snapshot import DEFAULT_EXCLUDED_DIRS, SYMLINK_POLICIES

    text = (Path(__file__).parent.parent / "docs" / "snapshots.md").read_text()
    for name in (*DEFAULT_EXCLUDED_DIRS, "pyvenv.cfg", "conda-meta/", *SYMLINK_POLICIES):
        assert f"`{name}" in text, name
    assert "TARGETS_SNAPSHOT_SYMLINKS" in text


# --------------------------------------------------------------------------- over SSH


def test_a_followed_symlinks_content_reaches_the_vm(sshd: SSHServer, project, cli, outside):
    attach = cli(
        *attach_args(sshd, "dsvm", "--ssh-key", str(sshd.key), "--accept-host-key"),
    )
    assert attach.code == 0, attach
    (project / "data").symlink_to(outside / "data")
    (project / "config.yml").symlink_to(outside / "config.yml")
    write(project / "report.py", REPORT)
    args = ("config.yml", "data/more/test.csv")
    result = cli("run", "report.py", "--target", "dsvm", "--", *args)
    assert result.code == 0, result
    _, seen = last_run(project)
    for path in args:
        assert seen[path]["exists"] and not seen[path]["link"], seen
        assert seen[path]["text"] == (outside / path).read_text()
