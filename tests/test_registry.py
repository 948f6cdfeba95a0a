"""Target kinds come from the `targets.compute` entry-point group, loaded lazily."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import TARGETS


def make_plugin(site: Path, dist: str, kind: str, value: str, module_code: str | None) -> None:
    """A real installed distribution: a dist-info folder with an entry_points.txt."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[targets.compute]\n{kind} = {value}\n")
    if module_code is not None:
        module = value.split(":")[0]
        (site / f"{module}.py").write_text(textwrap.dedent(module_code))


def run_with(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([*TARGETS, *args], capture_output=True, text=True, env=env, timeout=60)


GOOD_PLUGIN = """
from targets.compute import ComputeTarget, Capability
class Toy(ComputeTarget):
    kind = "toy"
    aliases = ("plaything",)
    description = "a toy kind"
    capabilities = frozenset({Capability.GPU})
    def submit(self, request, progress=None): raise NotImplementedError
    def status(self, handle): raise NotImplementedError
    def read_logs(self, handle, offsets): return []
    def fetch_outputs(self, handle, dest): pass
"""


def test_kinds_lists_builtin_and_third_party_kinds(tmp_path, project):
    make_plugin(tmp_path / "site", "targets-toy", "toy", "toy_plugin:Toy", GOOD_PLUGIN)
    result = run_with(tmp_path / "site", "kinds", "--output", "json")
    assert result.returncode == 0, result.stderr
    kinds = {k["name"]: k for k in __import__("json").loads(result.stdout)}
    assert kinds["local"]["distribution"] == "compute-targets"
    assert "cancel" in kinds["local"]["capabilities"]
    assert kinds["toy"]["distribution"] == "targets-toy"
    assert kinds["toy"]["capabilities"] == ["gpu"]
    assert kinds["toy"]["aliases"] == ["plaything"]


def test_a_broken_plugin_is_named_and_the_others_keep_working(tmp_path, project, write):
    make_plugin(
        tmp_path / "site",
        "targets-broken",
        "broken",
        "broken_plugin:Nope",
        "raise ImportError('needs libfoo')\n",
    )
    listed = run_with(tmp_path / "site", "kinds")
    assert listed.returncode == 0, listed.stderr
    assert "broken" in listed.stdout and "targets-broken" in listed.stdout
    assert "needs libfoo" in listed.stdout
    write(project / "t.py", "print('still fine')\n")
    ran = run_with(tmp_path / "site", "run", "t.py")
    assert ran.returncode == 0, ran.stderr
    assert "still fine" in ran.stdout
    attach = run_with(tmp_path / "site", "attach", "bx", "--type", "broken")
    assert attach.returncode == 1
    assert "'broken' (from distribution 'targets-broken') failed to load" in attach.stderr
    assert "needs libfoo" in attach.stderr


def test_unknown_kind_lists_the_installed_ones(project, cli):
    result = cli("attach", "box1", "--type", "nosuchkind")
    assert result.code == 2
    assert "unknown target kind 'nosuchkind'; installed kinds: " in result.err
    assert "local" in result.err


def test_listing_kinds_imports_no_plugin(tmp_path):
    make_plugin(tmp_path / "site", "targets-toy", "toy", "toy_plugin:Toy", GOOD_PLUGIN)
    code = (
        "import sys\nfrom targets.registry import available_kinds\n"
        "names = [k.name for k in available_kinds()]\n"
        "print(names, 'toy_plugin' in sys.modules, 'targets.compute.local' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert "'toy'" in out and "'local'" in out
    assert out.strip().endswith("False False")


def test_loading_a_kind_imports_only_that_kind(tmp_path):
    make_plugin(tmp_path / "site", "targets-toy", "toy", "toy_plugin:Toy", GOOD_PLUGIN)
    code = (
        "import sys\nfrom targets.registry import load_kind\nload_kind('local')\n"
        "print('toy_plugin' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert out.strip() == "False"


def test_a_class_that_is_not_a_target_is_rejected_with_its_name(tmp_path, project):
    make_plugin(tmp_path / "site", "targets-odd", "odd", "odd_plugin:Thing", "class Thing: pass\n")
    result = run_with(tmp_path / "site", "attach", "ox", "--type", "odd")
    assert result.returncode == 1
    assert "odd_plugin:Thing is not a subclass of ComputeTarget" in result.stderr


@pytest.mark.parametrize("alias", ["plaything", "toy"])
def test_aliases_resolve_to_the_kind(tmp_path, project, alias):
    make_plugin(tmp_path / "site", "targets-toy", "toy", "toy_plugin:Toy", GOOD_PLUGIN)
    result = run_with(tmp_path / "site", "attach", "toybox", "--type", alias)
    assert result.returncode == 0, result.stderr
    listed = run_with(tmp_path / "site", "list", "--output", "json")
    names = {t["name"]: t["type"] for t in __import__("json").loads(listed.stdout)}
    assert names["toybox"] == "toy"
