"""Node providers (`targets.providers`) load through the same loader as target kinds: a
broken, foreign, misnamed or doubly claimed provider is refused by name, with its
distribution, and nothing is created."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

from tests.conftest import TARGETS

GOOD = """
from targets.clusters.provider import NodeProvider


class Toy(NodeProvider):
    name = "toy"

    def list_nodes(self):
        return []

    def add_nodes(self, count):
        return []

    def remove_nodes(self, ids):
        pass
"""


def make_provider_plugin(site: Path, dist: str, name: str, value: str, code: str | None) -> None:
    """A real installed distribution with a `targets.providers` entry point."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[targets.providers]\n{name} = {value}\n")
    if code is not None:
        (site / f"{value.split(':')[0]}.py").write_text(textwrap.dedent(code))


def create(site: Path, provider: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [
            *TARGETS,
            "create",
            "pool",
            "--type",
            "cluster",
            "--provider",
            provider,
            "--max-nodes",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def nothing_created(project: Path) -> bool:
    targets_yml = project / ".targets" / "targets.yml"
    return "pool" not in (targets_yml.read_text() if targets_yml.exists() else "")


def test_a_provider_that_fails_to_import_is_named_with_its_distribution(
    tmp_path: Path, project: Path
) -> None:
    site = tmp_path / "site"
    make_provider_plugin(site, "targets-cloudy", "cloudy", "cloudy:Cloudy", "import no_such_sdk\n")
    result = create(site, "cloudy")
    assert result.returncode == 1, result
    assert "cluster provider 'cloudy' (from distribution 'targets-cloudy') failed to load" in (
        result.stderr
    )
    assert "No module named 'no_such_sdk'" in result.stderr
    assert "Traceback" not in result.stderr
    assert nothing_created(project)


def test_a_provider_claimed_by_two_distributions_is_refused(tmp_path: Path, project: Path) -> None:
    site = tmp_path / "site"
    make_provider_plugin(site, "targets-toy-a", "toy", "toy_a:Toy", GOOD)
    make_provider_plugin(site, "targets-toy-b", "toy", "toy_b:Toy", GOOD)
    result = create(site, "toy")
    assert result.returncode == 1, result
    assert "provided by more than one distribution" in result.stderr
    assert "targets-toy-a" in result.stderr and "targets-toy-b" in result.stderr
    assert nothing_created(project)


def test_a_class_that_is_not_a_provider_is_refused(tmp_path: Path, project: Path) -> None:
    site = tmp_path / "site"
    make_provider_plugin(site, "targets-odd", "odd", "odd:Thing", "class Thing: pass\n")
    result = create(site, "odd")
    assert result.returncode == 1, result
    assert "odd:Thing is not a subclass of NodeProvider" in result.stderr
    assert nothing_created(project)


def test_a_provider_whose_name_is_not_its_entry_point_is_refused(
    tmp_path: Path, project: Path
) -> None:
    site = tmp_path / "site"
    make_provider_plugin(site, "targets-toy", "toyish", "toy_c:Toy", GOOD)
    result = create(site, "toyish")
    assert result.returncode == 1, result
    assert "toy_c:Toy declares name 'toy', not 'toyish'" in result.stderr
    assert nothing_created(project)


def test_an_unknown_provider_lists_the_installed_ones(tmp_path: Path, project: Path) -> None:
    site = tmp_path / "site"
    make_provider_plugin(site, "targets-toy", "toy", "toy_d:Toy", GOOD)
    result = create(site, "nosuch")
    assert result.returncode == 2, result
    assert "unknown cluster provider 'nosuch'" in result.stderr
    assert "docker" in result.stderr and "toy" in result.stderr
