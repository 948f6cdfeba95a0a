"""Issue 16's last "Done when": of the real v2 job files collected from public repositories,
every one that is not automl/finetuning/preview syntax either runs to completion on the
local target with local data, or stops with exit code 2 before anything is queued, naming
exactly what it needs.

`tests/data/jobs-real/corpus/expected.yml` lists every job file of the corpus (the new
files under `tests/data/jobs-real/corpus/<owner>__<repo>/`, each folder with its
SOURCES.md, plus the real files already kept in `tests/data/azureml-corpus/v2` and
`tests/data/jobs-real/*`) with its expected outcome:

- `runs`: `targets job create -f FILE --stream` completes, with the entry's `setup`
  commands (a datastore, a data asset, ...), `--set` overrides that point cloud data at
  local data, and our own stand-in scripts (`tests/data/jobs-real/corpus-scripts/`);
- `refused`: `targets job validate -f` and `targets job create -f` both exit 2 with the
  entry's `message` in the error, no traceback, and nothing queued: the ledger has no
  run, there is no run folder, and nothing was written into the workspace or the target;
- `validates` (with `covered_by` or `heavy`): the file is valid and ready to run; its run is
  either tested elsewhere (`covered_by`) or needs a large environment (tensorflow,
  pytorch, ...) that is outside this test's time budget.

Entries with `pending: spark|parallel|sweepstep|buildctx` depend on work in progress and
are expected failures (not strict) until that work lands.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from targets.testing.fixtures import CLIResult
from targets.workspace import Workspace
from tests.conftest import REPO

DATA = REPO / "tests" / "data"
CORPUS = DATA / "jobs-real" / "corpus"
MANIFEST: dict[str, Any] = yaml.safe_load((CORPUS / "expected.yml").read_text())
SCRIPTS = DATA / "jobs-real" / "corpus-scripts"
# The generic stand-in, kept once and laid at each path the jobs run it under (its output
# names the file it runs as).
STAND_IN = SCRIPTS / "stand_in.py"
STAND_IN_PATHS = (SCRIPTS / "stand-ins.txt").read_text().split()
NO_DOCKER = "unix:///nonexistent/docker.sock"
CLI = Callable[..., CLIResult]


def _root(file: str) -> str:
    """The folder that is copied for ``file`` (the longest root that holds it)."""
    roots: list[str] = [r for r in MANIFEST["roots"] if file.startswith(r + "/")]
    return max(roots, key=len)


def _params() -> list[Any]:
    params = []
    for entry in MANIFEST["jobs"]:
        marks: list[Any] = []
        if entry.get("pending"):
            marks.append(pytest.mark.xfail(reason=f"pending: {entry['pending']}", strict=False))
        params.append(pytest.param(entry, id=entry["file"], marks=marks))
    return params


def _tree(*folders: Path) -> set[str]:
    """Every file under ``folders`` (to show that a refused job wrote nothing)."""
    found: set[str] = set()
    for folder in folders:
        for parent, _dirs, files in os.walk(folder):  # not into the shared envs link
            found |= {os.path.join(parent, name) for name in files}
    return found


@pytest.fixture(scope="session")
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One environment store (and package cache) for every run of this module, shared by
    the xdist workers: most real files name the same curated environment, which is then
    built once (the agent locks each environment while it builds it)."""
    base = tmp_path_factory.getbasetemp()
    # under xdist each worker's base is popen-gwN inside the session's folder
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "corpus-envs"
    (shared / "envs").mkdir(parents=True, exist_ok=True)
    (shared / "uv-cache").mkdir(exist_ok=True)
    return shared


@pytest.fixture
def corpus_ws(project: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch, shared_envs: Path) -> Path:
    """A workspace whose compute names (`cpu-cluster`, `serverless`, ...) map to the local
    target, without Docker (images are set aside, never pulled)."""
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    monkeypatch.setenv("UV_CACHE_DIR", str(shared_envs / "uv-cache"))
    home = Path(os.environ["TARGETS_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "envs").symlink_to(shared_envs / "envs", target_is_directory=True)
    monkeypatch.delenv("TARGETS_REGISTRY_PATH", raising=False)
    mapped = cli("compute", "map", *MANIFEST["compute_map"])
    assert mapped.code == 0, mapped
    return project


def _lay_out(project: Path, entry: dict[str, Any]) -> Path:
    """Copy the job's repository folder (YAML files only, byte for byte) and our stand-in
    scripts and data into the project; return the job file's path there."""
    root = _root(entry["file"])
    dest = project / "src"
    shutil.copytree(DATA / root, dest, dirs_exist_ok=True)
    for overlay in MANIFEST["roots"][root] or []:
        source, _, into = overlay.partition(" -> ")
        shutil.copytree(DATA / source, dest / into, dirs_exist_ok=True)
        for path in STAND_IN_PATHS:
            script = SCRIPTS / path
            if script.is_relative_to(DATA / source):
                target = dest / into / script.relative_to(DATA / source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(STAND_IN, target)
    return dest / str(entry["file"])[len(root) + 1 :]


def _arguments(entry: dict[str, Any], project: Path) -> list[str]:
    args = [str(a) for a in entry.get("args", [])]
    for item in entry.get("set", []):
        args += ["--set", item.format(src=project / "src", project=project)]
    return args


def _setup(entry: dict[str, Any], project: Path, cli: CLI) -> None:
    for command in entry.get("setup", []):
        words = shlex.split(command.format(src=project / "src", project=project))
        result = cli(*words)
        assert result.code == 0, (command, result)


@pytest.mark.parametrize("entry", _params())
def test_corpus_file(entry: dict[str, Any], corpus_ws: Path, cli: CLI) -> None:
    project = corpus_ws
    job = _lay_out(project, entry)
    before = job.read_bytes()
    _setup(entry, project, cli)
    args = _arguments(entry, project)
    outcome = entry["outcome"]

    if outcome == "refused":
        watched = (project / ".targets", Path(os.environ["TARGETS_HOME"]))
        written = _tree(*watched)
        for command in (("job", "validate", "-f"), ("job", "create", "-f")):
            result = cli(*command, str(job), *args, timeout=300)
            assert result.code == 2, result
            assert entry["message"] in result.err, result
            assert "Traceback" not in result.err, result
        assert Workspace(project).ledger.count() == 0  # nothing queued
        runs = project / ".targets" / "runs"
        assert not runs.exists() or not any(runs.iterdir())  # no run folder
        assert _tree(*watched) - written == set()  # nothing uploaded or written
    elif outcome == "validates":
        assert entry.get("covered_by") or entry.get("heavy"), entry
        result = cli("job", "validate", "-f", str(job), *args)
        assert result.code == 0, result
        assert Workspace(project).ledger.count() == 0
    else:
        assert outcome == "runs", entry
        result = cli("job", "create", "-f", str(job), "--stream", *args, timeout=600)
        assert result.code == 0, result
        listed = cli("runs", "list", "--all", "-o", "json").json()
        assert isinstance(listed, list) and listed
        assert {r["status"] for r in listed} == {"Completed"}, listed
        for text in entry.get("output", []):
            assert text in result.out + result.err, result
    assert job.read_bytes() == before  # the real file is used unchanged


def test_manifest_lists_every_job_file_of_the_corpus() -> None:
    """Every job file kept under tests/data/jobs-real/corpus (SOURCES.md rows of kind
    `job`) has an entry, and every entry's file exists."""
    listed = {e["file"] for e in MANIFEST["jobs"]}
    for sources in CORPUS.glob("*/SOURCES.md"):
        for line in sources.read_text().splitlines():
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 3 and cells[2] == "job":
                rel = f"jobs-real/corpus/{sources.parent.name}/{cells[1].strip('`')}"
                assert rel in listed, rel
    for file in listed:
        assert (DATA / file).is_file(), file
    outcomes = {e["outcome"] for e in MANIFEST["jobs"]}
    assert outcomes <= {"runs", "refused", "validates"}
    for entry in MANIFEST["jobs"]:
        assert entry.get("class"), entry
        if entry["outcome"] == "refused":
            assert entry.get("message"), entry
