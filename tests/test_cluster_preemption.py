"""A low-priority node taken back mid-run: the run goes back to the queue and completes on
a fresh node. The nodes are real docker-provider containers; the preemption comes from a
provider plugin (an installed distribution with a `targets.providers` entry point, as a
third party would ship one) that reports a node PREEMPTED when asked, the way the azure
provider reports an evicted Spot VM."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster_nodes import NodeImage, node_image_fixture, remove_cluster_containers  # noqa: F401
from tests.conftest import wait_for_status, wait_until
from tests.dockerd import docker_engine_fixture  # noqa: F401

pytestmark = pytest.mark.xdist_group("docker")

PLUGIN = """
from targets.clusters.provider import NodeState
from targets.clusters.providers.docker import DockerProvider


class SpotDocker(DockerProvider):
    name = "spotdocker"
    supports_low_priority = True

    def list_nodes(self):
        # A node named in `evict` is taken back once: that node, not a later one that
        # gets the same name.
        ask, taken = self.context.state_dir / "evict", self.context.state_dir / "evicted"
        nodes = super().list_nodes()
        if ask.exists():
            wanted = ask.read_text().strip()
            for n in nodes:
                if n.id == wanted:
                    taken.write_text(f"{n.id} {n.created_at}")
            ask.unlink()
        gone = taken.read_text().split() if taken.exists() else []
        return [
            n.with_state(NodeState.PREEMPTED, "evicted (Spot)")
            if gone == [n.id, str(n.created_at)]
            else n
            for n in nodes
        ]
"""


@pytest.fixture
def spot_cluster(
    node_image: NodeImage, project: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    site = tmp_path / "site"
    info = site / "spotdocker-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spotdocker\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[targets.providers]\nspotdocker = spotdocker:SpotDocker\n"
    )
    (site / "spotdocker.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.setenv("PYTHONPATH", str(site))  # the CLI and the reconcile process see it
    name = "s" + uuid.uuid4().hex[:8]
    created = cli(
        "create", name, "--type", "cluster", "--provider", "spotdocker",
        "--image", node_image.name, "--vm-priority", "lowpriority", "--max-nodes", "1",
        "--idle-seconds-before-scaledown", "0",
    )  # fmt: skip
    assert created.code == 0, created
    yield name
    cli("delete", name, "--force")
    remove_cluster_containers(node_image.engine, name)


def test_a_preempted_run_goes_back_to_the_queue_and_completes_on_a_new_node(
    spot_cluster: str, project: Path, write, cli
) -> None:
    write(
        project / "work.py",
        "import os, socket, time\n"
        "print('attempt on', socket.gethostname(), flush=True)\n"
        "time.sleep(float(os.environ.get('NAP', '0')))\n"
        "print('done', flush=True)\n",
    )
    write(
        project / "work.yml",
        f"script: work.py\ntarget: {spot_cluster}\nenvironment_variables:\n  NAP: '8'\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n"
        "    interpreter_path: python3\n",
    )
    started = cli("run", "work.yml", "--detach", "-o", "json")
    assert started.code == 0, started
    run_id = started.json()["id"]

    def first_node() -> str | None:
        shown = cli("runs", "show", run_id, "-o", "json").json()
        nodes = cli("show", spot_cluster, "-o", "json").json()["status"]["nodes"]
        busy = [n["id"] for n in nodes if n["run"] == run_id]
        return busy[0] if shown["status"] == "Running" and busy else None

    # The node is taken from the same look that saw the run start: under load a second
    # look may come after the first attempt has already finished.
    node = wait_until(first_node, timeout=60, what="the run to start")
    evict = project / ".targets" / "clusters" / spot_cluster / "provider" / "evict"
    evict.write_text(node)

    wait_for_status(cli, run_id, "Completed", timeout=120, what="the requeued run to complete")
    logs = cli("runs", "logs", run_id).out
    assert "was preempted: the run goes back to the queue" in logs, logs
    assert logs.count("attempt on") == 2 and "done" in logs, logs
    events = [e["text"] for e in cli("show", spot_cluster, "-o", "json").json()["status"]["events"]]
    assert any(f"node {node}" in e and "preempted" in e for e in events), events
