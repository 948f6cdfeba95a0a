"""``targets migrate``: a v1 project's control scripts and notebooks get their imports
rewritten to ``targets.azureml``, its training scripts stay byte for byte as they were
(issue 15, "The promise"; docs/azureml-v1.md).

The projects are copies of real v1 code (tests/data/migrate/SOURCES.md) and one written
for this suite; every test migrates a copy in a temporary folder.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from targets.migrate import migrate
from targets.testing.fixtures import CLIResult

DATA = Path(__file__).resolve().parent / "data" / "migrate"
CLI = Callable[..., CLIResult]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A copy of the real v1 folders: the get-started scripts and the remote-VM notebook."""
    root = tmp_path / "v1"
    for name in ("day1-ide-users", "train-on-remote-vm"):
        shutil.copytree(DATA / name, root / name)
    return root


@pytest.fixture
def own(tmp_path: Path) -> Path:
    root = tmp_path / "own"
    shutil.copytree(DATA / "own-project", root)
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def by_path(result: CLIResult) -> dict[str, Any]:
    data = result.json()
    assert isinstance(data, dict)
    return {f["path"]: f for f in data["files"]}


def test_dry_run_shows_the_diff_and_writes_nothing(corpus: Path, cli: CLI) -> None:
    before = snapshot(corpus)
    result = cli("migrate", str(corpus))
    assert result.code == 1, result  # something to change
    assert "-from azureml.core.compute import ComputeTarget, AmlCompute\n" in result.out
    assert "+from targets.azureml.core.compute import ComputeTarget, AmlCompute\n" in result.out
    assert '+        "import targets.azureml.core\\n",\n' in result.out  # the notebook's JSON
    assert "--write" in result.err
    assert snapshot(corpus) == before
    assert not [p for p in corpus.rglob("*") if "targets-migrate" in p.name]


def test_write_rewrites_control_code_and_leaves_training_scripts(corpus: Path, cli: CLI) -> None:
    training = (corpus / "train-on-remote-vm" / "train.py").read_bytes()
    untouched = (corpus / "day1-ide-users" / "src" / "train.py").read_bytes()
    result = cli("migrate", str(corpus), "--write")
    assert result.code == 0, result
    assert result.out == ""
    compute = (corpus / "day1-ide-users" / "02-create-compute.py").read_text()
    assert compute.splitlines()[1:4] == [
        "from targets.azureml.core import Workspace",
        "from targets.azureml.core.compute import ComputeTarget, AmlCompute",
        "from targets.azureml.core.compute_target import ComputeTargetException",
    ]
    assert "azureml" not in compute.replace("targets.azureml", "")
    # The script the notebook submits runs inside the run, unchanged.
    assert (corpus / "train-on-remote-vm" / "train.py").read_bytes() == training
    assert (corpus / "day1-ide-users" / "src" / "train.py").read_bytes() == untouched
    assert "left alone train-on-remote-vm/train.py: training script (named as the script" in (
        result.err
    )
    assert "rewrote day1-ide-users/02-create-compute.py (3 lines)" in result.err


def test_a_second_write_changes_nothing(corpus: Path, cli: CLI) -> None:
    assert cli("migrate", str(corpus), "--write").code == 0
    after_first = snapshot(corpus)
    again = cli("migrate", str(corpus), "--write")
    assert again.code == 0, again
    assert "rewrote 0 files" in again.err
    assert snapshot(corpus) == after_first
    dry = cli("migrate", str(corpus))
    assert dry.code == 0, dry
    assert dry.out == ""


def test_the_notebook_stays_the_same_json_with_only_code_changed(corpus: Path, cli: CLI) -> None:
    path = corpus / "train-on-remote-vm" / "train-on-remote-vm.ipynb"
    original = path.read_text(encoding="utf-8")
    assert cli("migrate", str(corpus), "--write").code == 0
    migrated = path.read_text(encoding="utf-8")
    # Byte for byte the same file but for the inserted prefixes: same indentation (two
    # spaces), key order, escapes and no final newline.
    assert "targets.azureml" not in original
    assert migrated.replace("targets.azureml", "azureml") == original
    assert not migrated.endswith("\n")
    old, new = json.loads(original), json.loads(migrated)
    assert old.keys() == new.keys() and old["metadata"] == new["metadata"]
    assert len(old["cells"]) == len(new["cells"])
    changed = 0
    for before, after in zip(old["cells"], new["cells"], strict=True):
        assert {k: v for k, v in before.items() if k != "source"} == {
            k: v for k, v in after.items() if k != "source"
        }
        if before["source"] != after["source"]:
            assert before["cell_type"] == "code"
            changed += 1
    assert changed == 7
    code = ["".join(c["source"]) for c in new["cells"] if c["cell_type"] == "code"]
    assert "from targets.azureml.core.compute import ComputeTarget, RemoteCompute\n" in code[10]
    assert 'print("SDK version:", targets.azureml.core.VERSION)' in code[0]
    # Left alone: the module targets has no, and the cell that does not parse.
    assert "from azureml.widgets import RunDetails\n" in "".join(code)
    assert " from azureml.exceptions import ActivityFailedException\n" in "".join(code)


def test_a_migrated_control_script_imports_from_targets(corpus: Path, cli: CLI) -> None:
    assert cli("migrate", str(corpus), "--write").code == 0
    # Run every import statement of the migrated scripts, as Python would at their top.
    program = (
        "import ast, sys\n"
        "for name in sys.argv[1:]:\n"
        "    tree = ast.parse(open(name).read(), name)\n"
        "    body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]\n"
        "    exec(compile(ast.Module(body=body, type_ignores=[]), name, 'exec'), {})\n"
        "    print('imported', name)\n"
    )
    scripts = [
        corpus / "day1-ide-users" / "02-create-compute.py",
        corpus / "day1-ide-users" / "03-run-hello.py",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", program, *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("imported") == 2
    # And nothing of the real SDK was needed: the names are targets' own.
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "from targets.azureml.core.compute import ComputeTarget, AmlCompute;"
            "print(ComputeTarget.__module__, AmlCompute.__module__)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert all(m.startswith("targets.azureml.") for m in check.stdout.split())


def test_training_scripts_are_recognised_and_can_be_forced(own: Path, cli: CLI) -> None:
    files = by_path(cli("migrate", str(own), "-o", "json"))
    assert files["steps/prep.py"]["role"] == "training"
    assert files["steps/prep.py"]["reason"] == "named as the script of a run in pipeline.py:19"
    assert files["steps/batch.py"]["reason"] == "named as the script of a run in pipeline.py:20"
    assert files["helpers/metrics.py"]["reason"] == "calls Run.get_context()"
    assert files["helpers/offline.py"]["reason"] == "uses no azureml name but Run"
    assert files["forced.py"]["role"] == "control"  # its own comment says so
    assert files["forced.py"]["reason"] == "# targets-migrate: control"
    assert files["kept.py"]["role"] == "excluded"

    before = (own / "pipeline.py").read_bytes()
    result = cli(
        "migrate",
        str(own),
        "--write",
        "--include",
        "helpers/off*.py",
        "--exclude",
        "pipeline.py",
        "--exclude",
        "legacy.py",
        "-o",
        "json",
    )
    assert result.code == 0, result
    files = by_path(result)
    assert files["helpers/offline.py"]["reason"] == "--include helpers/off*.py"
    assert (own / "helpers/offline.py").read_text().count("from targets.azureml.core.run") == 1
    assert files["pipeline.py"] | {"role": "excluded", "status": "skipped"} == files["pipeline.py"]
    assert (own / "pipeline.py").read_bytes() == before
    assert (own / "steps" / "prep.py").read_text().startswith("# A pipeline step")
    assert "from azureml.core import Dataset, Run\n" in (own / "steps" / "prep.py").read_text()


def test_an_unparsable_file_is_reported_and_left_alone(own: Path, cli: CLI) -> None:
    legacy = (own / "legacy.py").read_bytes()
    result = cli("migrate", str(own), "--write")
    assert result.code == 1, result  # the migration is not complete
    assert "error: legacy.py: does not parse (line 3: Missing parentheses" in result.err
    assert (own / "legacy.py").read_bytes() == legacy
    # The others were migrated all the same.
    assert "import targets.azureml.core as core\n" in (own / "pipeline.py").read_text()


def test_names_targets_lacks_are_noted_with_their_line(own: Path, cli: CLI) -> None:
    # AksCompute (a Kubernetes inference cluster) and azureml.core.webservice are
    # deployment, which targets does not do.
    result = cli("migrate", str(own), "--write", "--exclude", "legacy.py", "-o", "json")
    notes = {
        (n["line"], n["message"].split(":")[0]) for n in by_path(result)["pipeline.py"]["notes"]
    }
    assert (8, "azureml.core.compute.AksCompute") in notes
    assert (9, "azureml.core.webservice") in notes
    text = (own / "pipeline.py").read_text().splitlines()
    assert text[7] == "from targets.azureml.core.compute import ComputeTarget, AksCompute"
    assert text[8] == "from azureml.core.webservice import AciWebservice"  # module absent: kept
    assert text[4:7] == [
        "import targets.azureml.core",
        "import targets.azureml.core as core",
        "from targets.azureml.core import Workspace, Experiment  # trailing comment stays",
    ]
    assert text[14] == "ws = targets.azureml.core.Workspace.from_config()"
    assert text[15] == 'print(core.VERSION if hasattr(core, "VERSION") else "targets")'
    # Still said on the next run, which has nothing left to change.
    again = cli("migrate", str(own), "--exclude", "legacy.py", "-o", "json")
    assert again.code == 0
    assert (8, "azureml.core.compute.AksCompute") in {
        (n["line"], n["message"].split(":")[0]) for n in by_path(again)["pipeline.py"]["notes"]
    }


def test_json_output_lists_files_changes_and_notes(corpus: Path, cli: CLI) -> None:
    result = cli("migrate", str(corpus), "-o", "json")
    data = result.json()
    assert isinstance(data, dict)
    assert set(data) == {"root", "write", "files", "summary", "environment_note", "exit_code"}
    assert data["root"] == str(corpus.resolve()) and data["write"] is False
    assert data["exit_code"] == result.code == 1
    assert data["summary"] == {
        "files": 8,
        "changed": 7,
        "changed_lines": sum(len(f["changes"]) for f in data["files"]),
        "unchanged": 0,
        "training": 1,
        "excluded": 0,
        "errors": 0,
        "notes": sum(len(f["notes"]) for f in data["files"]),
    }
    notebook = by_path(result)["train-on-remote-vm/train-on-remote-vm.ipynb"]
    assert notebook["kind"] == "notebook" and notebook["status"] == "changed"
    assert {
        "cell": 28,
        "line": 1,
        "before": "from azureml.core import ScriptRunConfig",
        "after": "from targets.azureml.core import ScriptRunConfig",
    } in notebook["changes"]
    assert {"cell": 36, "line": 1} | {
        "message": "does not parse as Python (line 1: unexpected indent); "
        "this cell is left unchanged"
    } in notebook["notes"]
    assert notebook["diff"].startswith("--- a/train-on-remote-vm/train-on-remote-vm.ipynb\n")
    assert notebook["diff"].endswith("\\ No newline at end of file\n") is False
    for entry in data["files"]:
        assert set(entry) == {
            "path",
            "kind",
            "role",
            "status",
            "reason",
            "written",
            "changes",
            "notes",
            "diff",
        }


def test_the_walk_stays_inside_path_and_skips_tool_folders(tmp_path: Path, cli: CLI) -> None:
    root = tmp_path / "proj"
    line = "from azureml.core import Workspace\n"
    outside = tmp_path / "outside.py"
    outside.write_text(line)
    for rel in (
        ".git/hooks/x.py",
        ".venv/lib/y.py",
        "node_modules/z.py",
        ".targets/runs/r.py",
        "env/lib/w.py",
        "nb/.ipynb_checkpoints/c.py",
        "control.py",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(line)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "linked.py").symlink_to(outside)
    (root / "linked_dir").symlink_to(tmp_path, target_is_directory=True)
    result = cli("migrate", str(root), "--write", "-o", "json")
    assert result.code == 0, result
    assert list(by_path(result)) == ["control.py"]
    assert (root / "control.py").read_text() == "from targets.azureml.core import Workspace\n"
    assert outside.read_text() == line
    for rel in (".git/hooks/x.py", ".venv/lib/y.py", "node_modules/z.py", "env/lib/w.py"):
        assert (root / rel).read_text() == line


def test_writing_keeps_mode_encoding_and_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "submit.py"
    source = "\ufeff# café\r\nimport azureml.core\r\nws = azureml.core.Workspace.from_config()"
    path.write_bytes(source.encode("utf-8"))
    path.chmod(0o751)
    report = migrate(tmp_path, write=True)
    assert report.exit_code == 0
    assert [f.written for f in report.files] == [True]
    assert path.read_bytes() == (
        "\ufeff# café\r\nimport targets.azureml.core\r\n"
        "ws = targets.azureml.core.Workspace.from_config()"
    ).encode("utf-8")
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert [p.name for p in tmp_path.iterdir()] == ["submit.py"]


def test_attribute_uses_follow_the_import_that_bound_azureml(tmp_path: Path) -> None:
    (tmp_path / "mixed.py").write_text(
        "import azureml.core\n"
        "import azureml.core.webservice\n"
        "ws = azureml.core.Workspace.from_config()\n"
        "svc = azureml.core.webservice.AciWebservice\n"
    )
    report = migrate(tmp_path, write=True)
    assert (tmp_path / "mixed.py").read_text() == (
        "import targets.azureml.core\n"
        "import azureml.core.webservice\n"
        "ws = targets.azureml.core.Workspace.from_config()\n"
        "svc = azureml.core.webservice.AciWebservice\n"
    )
    assert [n.line for n in report.files[0].notes] == [2]


def test_notebook_magics_escapes_and_cell_magics(tmp_path: Path) -> None:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["from azureml.core import X"]},
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": [
                    "%matplotlib inline\n",
                    "!pip install azureml-sdk\n",
                    "print('caf\u00e9 \U0001f600'); import azureml.core\n",
                    "ws = azureml.core.Workspace.from_config()",
                ],
            },
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": "%%bash\necho from azureml.core import Workspace\n",
            },
        ],
        "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "nb.ipynb"
    # Jupyter's own layout: one space of indentation, escaped non-ASCII, a final newline.
    original = json.dumps(notebook, indent=1, sort_keys=True) + "\n"
    path.write_text(original)
    report = migrate(tmp_path, write=True)
    migrated = path.read_text()
    assert (
        migrated.replace("targets.azureml.core\\n", "azureml.core\\n").replace(
            "= targets.azureml", "= azureml"
        )
        == original
    )
    cells = json.loads(migrated)["cells"]
    assert cells[1]["source"] == [
        "%matplotlib inline\n",
        "!pip install azureml-sdk\n",
        "print('caf\u00e9 \U0001f600'); import targets.azureml.core\n",
        "ws = targets.azureml.core.Workspace.from_config()",
    ]
    assert cells[0] == notebook["cells"][0] and cells[2] == notebook["cells"][2]
    assert [(n.cell, n.message) for n in report.files[0].notes] == [
        (3, "a %% cell magic: not Python, left unchanged")
    ]


def test_bad_input_is_refused_with_exit_code_2(tmp_path: Path, cli: CLI) -> None:
    missing = cli("migrate", str(tmp_path / "nope"))
    assert missing.code == 2 and "no such file or folder" in missing.err
    (tmp_path / "a.py").write_text("from azureml.core import Workspace\n")
    bad = cli("migrate", str(tmp_path), "--exclude", "!", "--write")
    assert bad.code == 2 and "--exclude '!' is not a valid pattern" in bad.err
    assert (tmp_path / "a.py").read_text() == "from azureml.core import Workspace\n"


def test_nothing_to_do_exits_0(tmp_path: Path, cli: CLI) -> None:
    (tmp_path / "plain.py").write_text("print('no azure here')\n")
    result = cli("migrate", str(tmp_path))
    assert result.code == 0, result
    assert result.out == ""


def test_a_single_file_can_be_migrated(corpus: Path, cli: CLI) -> None:
    script = corpus / "day1-ide-users" / "03-run-hello.py"
    result = cli("migrate", str(script), "--write")
    assert result.code == 0, result
    assert script.read_text().splitlines()[1] == (
        "from targets.azureml.core import Workspace, Experiment, ScriptRunConfig"
    )
    assert "azureml.core import" in (corpus / "day1-ide-users" / "04-run-pytorch.py").read_text()
    assert ast.parse(script.read_text())


def test_an_active_environment_without_targets_is_told_to_install_it(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """targets installed on its own (pipx-style), the project's virtualenv active: the
    migrated control scripts import targets, so the user is told to install it there;
    once it can import targets, the note goes."""
    venv = tmp_path / "project-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    report = migrate(corpus / "day1-ide-users")
    assert report.environment_note is not None
    assert str(venv) in report.environment_note
    assert "-m pip install compute-targets" in report.environment_note
    assert report.to_json()["environment_note"] == report.environment_note

    (site,) = venv.glob("lib/python*/site-packages")
    (site / "targets-source.pth").write_text(str(Path(__file__).resolve().parents[1]) + "\n")
    assert migrate(corpus / "day1-ide-users").environment_note is None
