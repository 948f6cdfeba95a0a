"""The cluster kind: its scheduling policy, and the whole flow (create, queue, scale up,
run, collect, scale down, delete) with the `ssh` provider on the real test sshd."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from targets.clusters.model import ClusterSpec
from targets.clusters.provider import NodeState
from targets.clusters.scheduler import NodeView, QueuedRun, decide
from tests.conftest import wait_for_status, wait_until
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.test_vm import attach_args

R, C = NodeState.RUNNING, NodeState.CREATING


def spec(**kw: object) -> ClusterSpec:
    values: dict[str, object] = {"provider": "docker", "max_nodes": 4}
    values.update(kw)
    return ClusterSpec.model_validate(values)


# -- the policy -------------------------------------------------------------------------


def test_an_empty_cluster_grows_by_what_the_oldest_run_lacks() -> None:
    d = decide(spec(), [], [QueuedRun("a", 2), QueuedRun("b", 1)], now=100)
    assert d.add == 2 and d.start == [] and d.remove == []


def test_nodes_on_their_way_are_counted() -> None:
    d = decide(spec(), [NodeView("n1", C), NodeView("n2", R)], [QueuedRun("a", 2)], now=1)
    assert d.add == 0 and d.start == []


def test_growth_stops_at_max_nodes() -> None:
    d = decide(spec(max_nodes=3), [NodeView("n1", R, busy_run="x")], [QueuedRun("a", 3)], 1)
    assert d.add == 2


def test_runs_start_first_in_first_out_without_overtaking() -> None:
    nodes = [NodeView("n1", R, idle_since=0), NodeView("n2", R, idle_since=0)]
    d = decide(spec(), nodes, [QueuedRun("big", 3), QueuedRun("small", 1)], now=1)
    assert d.start == []  # small does not overtake big
    assert d.add == 1
    d = decide(spec(), nodes, [QueuedRun("a", 1), QueuedRun("b", 1)], now=1)
    assert d.start == [("a", ["n1"]), ("b", ["n2"])]


def test_idle_nodes_go_after_the_idle_time_down_to_min_nodes() -> None:
    s = spec(min_nodes=1, idle_seconds_before_scaledown=60)
    nodes = [NodeView("n1", R, idle_since=0), NodeView("n2", R, idle_since=30)]
    early = decide(s, nodes, [], now=59)
    assert early.remove == [] and early.next_check == 60
    later = decide(s, nodes, [], now=95)
    assert later.remove == ["n1"]  # n2 stays: min_nodes is 1


def test_busy_nodes_are_never_removed_and_broken_ones_always_are() -> None:
    s = spec(idle_seconds_before_scaledown=0)
    nodes = [
        NodeView("n1", R, busy_run="a"),
        NodeView("n2", NodeState.PREEMPTED, busy_run="b"),
        NodeView("n3", NodeState.FAILED),
    ]
    d = decide(s, nodes, [], now=10)
    assert sorted(d.remove) == ["n2", "n3"]


def test_a_lowered_maximum_removes_free_nodes_at_once() -> None:
    nodes = [NodeView("n1", R, idle_since=5), NodeView("n2", R, busy_run="a")]
    assert decide(spec(max_nodes=1), nodes, [], now=6).remove == ["n1"]


def test_min_nodes_are_kept_up() -> None:
    assert decide(spec(min_nodes=2), [NodeView("n1", R, idle_since=0)], [], now=1).add == 1


def test_cluster_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="min_nodes"):
        spec(min_nodes=5, max_nodes=2)
    with pytest.raises(ValueError, match="subnet_name"):
        spec(vnet_name="v", vnet_resource_group="rg")


# -- the flow on the test sshd --------------------------------------------------------------


@pytest.fixture
def lab(sshd: SSHServer, project: Path, cli) -> str:
    result = cli(*attach_args(sshd, "box1", "--ssh-key", str(sshd.key), "--accept-host-key"))
    assert result.code == 0, result
    result = cli(
        "create",
        "lab",
        "--type",
        "cluster",
        "--provider",
        "ssh",
        "--hosts",
        "box1",
        "--max-nodes",
        "1",
        "--idle-seconds-before-scaledown",
        "3",
    )
    assert result.code == 0, result
    yield "lab"
    cli("delete", "lab", "--force")


def test_a_run_on_a_cluster_scales_it_up_runs_and_scales_it_back_down(
    lab: str, project: Path, write, cli
) -> None:
    write(
        project / "train.py",
        "import os, socket\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/model.txt', 'w').write('weights')\n"
        "print('trained on', socket.gethostname(), os.environ.get('GREETING'))\n",
    )
    shown = cli("show", lab, "-o", "json").json()
    assert shown["status"]["nodes"] == []
    write(
        project / "train.yml",
        "script: train.py\ntarget: lab\nenvironment_variables:\n  GREETING: hi\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n",
    )
    result = cli("run", "train.yml")
    assert result.code == 0, result
    assert "trained on" in result.out and "hi" in result.out
    runs = cli("runs", "list", "-o", "json").json()
    run_id = runs[0]["id"]
    assert runs[0]["status"] == "Completed"
    folder = project / ".targets" / "runs" / run_id
    assert (folder / "outputs" / "model.txt").read_text() == "weights"
    assert (folder / "logs" / "nodes" / "0" / "driver.log").exists()
    events = [e["text"] for e in cli("show", lab, "-o", "json").json()["status"]["events"]]
    assert any("scaling up" in e for e in events), events
    # The client is gone; the reconcile process removes the idle node after 3 s.
    wait_until(
        lambda: cli("show", lab, "-o", "json").json()["status"]["nodes"] == [],
        timeout=30,
        what="the idle node to be removed",
    )
    status = cli("show", lab, "-o", "json").json()["status"]
    assert any("scaling down" in e["text"] for e in status["events"])
    wait_until(
        lambda: cli("show", lab, "-o", "json").json()["status"]["reconciler"] == "stopped",
        timeout=15,
        what="the reconcile process to stop once the cluster is at rest",
    )


def test_a_run_too_big_for_the_cluster_is_refused_before_anything_is_sent(
    lab: str, project: Path, write, cli
) -> None:
    write(project / "train.py", "print(1)\n")
    write(
        project / "big.yml", "script: train.py\ntarget: lab\nnode_count: 3\ncommunicator: OpenMpi\n"
    )
    result = cli("run", "big.yml")
    assert result.code == 2, result
    assert "at most 1" in result.err and "targets update lab --max-nodes 3" in result.err
    assert cli("runs", "list", "-o", "json").json() == []


def test_a_queued_run_can_be_canceled(lab: str, project: Path, write, cli) -> None:
    write(project / "wait.py", "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    first = cli("run", "wait.py", "--target", lab, "--detach", "-o", "json")
    assert first.code == 0, first
    second = cli("run", "wait.py", "--target", lab, "--detach", "-o", "json")
    assert second.code == 0, second
    first_id, second_id = first.json()["id"], second.json()["id"]
    wait_for_status(cli, first_id, "Running", timeout=60, what="the first run to run")
    assert cli("runs", "show", second_id, "-o", "json").json()["status"] == "Queued"
    assert cli("runs", "cancel", second_id).code == 0
    assert cli("runs", "show", second_id, "-o", "json").json()["status"] == "Canceled"
    assert cli("runs", "cancel", first_id).code == 0
    wait_for_status(cli, first_id, "Canceled", timeout=30, what="the running run to be canceled")


def test_create_refuses_bad_settings_and_creates_nothing(project: Path, cli) -> None:
    result = cli("create", "c1", "--type", "cluster", "--provider", "ssh", "--hosts", "nope")
    assert result.code == 2 and "--max-nodes" in result.err, result
    result = cli("create", "c1", "--type", "cluster", "--provider", "nope", "--max-nodes", "1")
    assert result.code == 2 and "unknown cluster provider" in result.err, result
    result = cli(
        "create", "c1", "--type", "cluster", "--provider", "ssh", "--hosts", "nope",
        "--max-nodes", "1",
    )  # fmt: skip
    assert result.code == 2 and "nope" in result.err, result
    result = cli(
        "create", "c1", "--type", "cluster", "--provider", "ssh", "--hosts", "x",
        "--max-nodes", "1", "--min-nodes", "2",
    )  # fmt: skip
    assert result.code == 2 and "min_nodes" in result.err, result
    assert [t["name"] for t in cli("list", "-o", "json").json()] == ["local"]
    data = json.loads(cli("list", "-o", "json").out)
    assert len(data) == 1
    _ = time


def test_a_killed_reconcile_process_is_restarted_and_catches_up(
    lab: str, project: Path, write, cli
) -> None:
    import os
    import signal

    write(project / "nap.py", "import time\ntime.sleep(8)\nprint('woke up', flush=True)\n")
    write(
        project / "nap.yml",
        f"script: nap.py\ntarget: {lab}\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n",
    )
    started = cli("run", "nap.yml", "--detach", "-o", "json")
    assert started.code == 0, started
    run_id = started.json()["id"]
    pid_file = project / ".targets" / "clusters" / lab / "reconciler.pid"
    wait_for_status(cli, run_id, "Running", timeout=60, what="the run to start")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    # Any command that asks about the run starts a new one, which picks the run up.
    wait_for_status(
        cli, run_id, "Completed", timeout=60, what="the run to complete under a new reconciler"
    )
    assert "woke up" in cli("runs", "logs", run_id).out


def test_a_follower_waits_for_news_of_a_cluster_run_instead_of_polling(
    lab: str, project: Path, write, cli
) -> None:
    """wait_news blocks until the run has news and returns it: the new log bytes, a new
    status, the end with complete logs; with none, it returns after its timeout."""
    from targets.compute.base import RunStatus
    from targets.runs import Run
    from targets.workspace import Workspace

    write(
        project / "steps.py",
        "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second', flush=True)\n",
    )
    write(
        project / "steps.yml",
        f"script: steps.py\ntarget: {lab}\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n",
    )
    started = cli("run", "steps.yml", "--detach", "-o", "json")
    assert started.code == 0, started
    ws = Workspace(project)
    run = Run(ws, started.json()["id"])
    handle = run.handle
    assert handle is not None
    target = ws.get_target(lab)
    offsets: dict[str, int] = {}
    text = b""
    known: str | None = None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            news = target.wait_news(handle, offsets, known, timeout=1.0)
            assert news is not None, "the cluster kind waits (it does not leave it to polling)"
            state, chunks = news
            for chunk in chunks:
                assert chunk.offset == offsets.get(chunk.name, 0)
                offsets[chunk.name] = chunk.offset + len(chunk.data)
                if chunk.name == "driver.log":
                    text += chunk.data
            if state.status.value != known:
                seen.append(state.status.value)
                known = state.status.value
            if state.status.terminal:
                break
        assert known == RunStatus.COMPLETED.value, (seen, text)
        # The end comes with the complete logs, in order.
        assert b"first" in text and b"second" in text
        assert text.index(b"first") < text.index(b"second")
        assert RunStatus.RUNNING.value in seen, seen
        # Nothing new: it waits its timeout and says so with no chunks.
        state, chunks = target.wait_news(handle, offsets, known, timeout=0.2) or (None, [])
        assert state is not None and state.status is RunStatus.COMPLETED and chunks == []
    finally:
        target.close()
    assert cli("runs", "show", run.id, "-o", "json").json()["status"] == "Completed"
