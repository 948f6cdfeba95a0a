"""Azure ML's own v1 get-started scripts (Azure/MachineLearningNotebooks,
``tutorials/get-started-day1/IDE-users``, MIT; copied byte for byte in
``tests/data/migrate/day1-ide-users``, see its SOURCES.md) run as a user runs them:
``targets migrate --write`` rewrites their imports, then each script runs as its own
Python process — the workspace is made, the CPU cluster is created (docker provider,
the workspace's ``config.json``), and the hello-world script runs on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from targets.migrate import migrate
from targets.testing.fixtures import CLIResult
from tests.cluster_nodes import NodeImage, node_image_fixture  # noqa: F401
from tests.dockerd import docker_engine_fixture  # noqa: F401

CLI = Callable[..., CLIResult]
DAY1 = Path(__file__).parent / "data" / "migrate" / "day1-ide-users"


def python(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one of the tutorial's scripts as the user does: ``python 0N-....py``."""
    return subprocess.run(
        [sys.executable, script],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.xdist_group("docker")
def test_the_get_started_scripts_run_after_targets_migrate(
    node_image: NodeImage, project: Path, cli: CLI
) -> None:
    for item in DAY1.iterdir():
        copy = shutil.copytree if item.is_dir() else shutil.copy2
        copy(item, project / item.name)
    report = migrate(project, write=True)
    assert {f.path for f in report.files if f.written} >= {
        "01-create-workspace.py",
        "02-create-compute.py",
        "03-run-hello.py",
    }

    made = python("01-create-workspace.py", project)
    assert made.returncode == 0, made.stderr
    written = project / ".azureml" / ".azureml" / "config.json"  # v1's write_config(path=...)
    assert json.loads(written.read_text())["workspace_name"] == "<my_workspace_name>"

    # The user says which provider makes AmlCompute clusters, next to the workspace labels.
    (project / ".azureml" / "config.json").write_text(
        json.dumps(
            {
                "subscription_id": "<azure-subscription-id>",
                "resource_group": "<myresourcegroup>",
                "workspace_name": "<my_workspace_name>",
                "cluster_provider": "docker",
                "cluster_provider_options": {"image": node_image.name},
            }
        )
    )
    try:
        created = python("02-create-compute.py", project)
        assert created.returncode == 0, created.stderr
        assert "Succeeded" in created.stdout
        again = python("02-create-compute.py", project)
        assert again.returncode == 0, again.stderr
        assert "Found existing cluster, use it." in again.stdout

        hello = python("03-run-hello.py", project)
        assert hello.returncode == 0, hello.stderr
        url = hello.stdout.strip().splitlines()[-1]
        assert url.startswith("file://") and "day1-experiment-hello" in url
        run_id = url.rsplit("/", 1)[-1]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            shown = cli("runs", "show", run_id, "-o", "json").json()
            assert isinstance(shown, dict)
            if shown["status"] in ("Completed", "Failed", "Canceled"):
                break
            time.sleep(1)
        assert shown["status"] == "Completed", cli("runs", "logs", run_id).out
        assert shown["target"] == "cpu-cluster"
        assert "hello world!" in cli("runs", "logs", run_id).out
    finally:
        cli("delete", "cpu-cluster", "--force")
