"""The workspace folder, attached targets, the naming rule and the run ledger."""

from __future__ import annotations

import multiprocessing
import re
import time
from pathlib import Path

import pytest

from targets.errors import InvalidNameError
from targets.ledger import Ledger, RunRecord
from targets.workspace import Workspace, new_run_id, validate_target_name


@pytest.mark.parametrize("name", ["ab", "gpu-box1", "A1", "dsvm", "a" * 16, "x-y-z9"])
def test_valid_target_names(name):
    assert validate_target_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a", "1 characters"),
        ("a" * 17, "17 characters"),
        ("1box", "start with a letter"),
        ("box-", "end with a hyphen"),
        ("my_box", "'_'"),
        ("bad name", "' '"),
        ("", "0 characters"),
    ],
)
def test_invalid_target_names_say_what_is_wrong(name, why):
    with pytest.raises(InvalidNameError) as info:
        validate_target_name(name)
    assert why in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "name", ["x", "9lives", "trailing-", "has_underscore", "seventeen-chars-x"]
)
def test_attach_refuses_a_bad_name_and_writes_nothing(project, cli, name):
    result = cli("attach", name, "--type", "local")
    assert result.code == 2, result
    assert "invalid target name" in result.err
    assert not (project / ".targets" / "targets.yml").exists()


def test_attach_list_show_detach(project, cli):
    assert cli("attach", "second", "--type", "local").code == 0
    listed = cli("list", "-o", "json").json()
    assert {t["name"] for t in listed} == {"local", "second"}
    shown = cli("show", "second", "-o", "json").json()
    assert shown["kind"] == "local" and "python_version" in shown["facts"]
    again = cli("attach", "second", "--type", "local")
    assert again.code == 2 and "already attached" in again.err
    assert cli("detach", "second").code == 0
    assert {t["name"] for t in cli("list", "-o", "json").json()} == {"local"}
    assert cli("detach", "local").code == 2


def test_attach_rejects_unknown_options_with_a_suggestion(project, cli):
    result = cli("attach", "box", "--type", "local", "--adress", "x")
    assert result.code == 2
    assert "unknown option --adress" in result.err


def test_workspace_is_found_upwards_like_git(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    Workspace(root).ensure()  # a real workspace (an empty .targets/ is not one)
    deep = root / "src" / "pkg"
    deep.mkdir(parents=True)
    assert Workspace.find(deep).root == root
    monkeypatch.setenv("TARGETS_WORKSPACE", str(tmp_path / "elsewhere"))
    assert Workspace.find(deep).root == tmp_path / "elsewhere"


def test_without_targets_folder_the_git_top_is_used(tmp_path):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "sub").mkdir()
    assert Workspace.find(tmp_path / "repo" / "sub").root == tmp_path / "repo"


def test_first_run_creates_the_workspace(tmp_path, monkeypatch, cli):
    folder = tmp_path / "fresh"
    folder.mkdir()
    (folder / "t.py").write_text("print('first')\n")
    result = cli("run", "t.py", cwd=folder)
    assert result.code == 0, result
    assert (folder / ".targets" / "runs.db").exists()
    assert (folder / ".targets" / ".gitignore").read_text().strip().endswith("*")


def test_run_ids_are_unique_and_readable():
    ids = {new_run_id("my exp!") for _ in range(500)}
    assert len(ids) == 500
    for run_id in ids:
        assert re.fullmatch(r"my-exp_\d{8}_\d{6}_[a-z0-9]{6}", run_id), run_id


def _insert_many(path: str, worker: int) -> None:
    ledger = Ledger(Path(path))
    for i in range(50):
        ledger.insert(
            RunRecord(
                id=f"w{worker}-{i}",
                experiment="e",
                target="local",
                kind="local",
                status="Queued",
                created_at=time.time(),
            )
        )
        ledger.update(f"w{worker}-{i}", status="Completed")
    ledger.close()


def test_ledger_is_safe_for_concurrent_processes(tmp_path):
    db = tmp_path / "runs.db"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_insert_many, args=(str(db), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ledger = Ledger(db)
    assert ledger.count() == 200
    assert {r.status for r in ledger.list(limit=None)} == {"Completed"}


def test_ledger_filters_and_orders_newest_first(tmp_path):
    ledger = Ledger(tmp_path / "runs.db")
    for i in range(5):
        ledger.insert(
            RunRecord(
                id=f"r{i}",
                experiment="a" if i % 2 else "b",
                target="local",
                kind="local",
                status="Completed",
                created_at=1000.0 + i,
            )
        )
    assert [r.id for r in ledger.list()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.id for r in ledger.list(experiment="a")] == ["r3", "r1"]
    assert [r.id for r in ledger.find("r")][:2] == ["r4", "r3"]
    assert ledger.find("r_") == []  # LIKE wildcards are literal in prefixes
