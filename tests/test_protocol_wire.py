"""The agent protocol's rules, as a client meets them: the agent refuses store keys and
manifest rows that break the rule with a clear error and stores nothing, and handles that
older versions wrote (``run.json``, ``runs.db``) still load through the typed views."""

from __future__ import annotations

import hashlib
import json

import pytest

from targets.agent.protocol import ManifestRow, check_object_key, object_key, parse_object_key
from targets.agent.server import read_frame, write_frame
from targets.compute import (
    AgentClient,
    AgentError,
    AgentTarget,
    LocalAgentClient,
    RunHandle,
    agent_handle_data,
)
from tests.test_agent_protocol import _raw_agent, _upload

DATA = b"print('hello')\n"
DIGEST = hashlib.sha256(DATA).hexdigest()

BAD_KEYS = [
    DIGEST + ".y",  # an unknown suffix
    DIGEST + "x",
    DIGEST.upper(),  # a digest is lowercase
    "-" + DIGEST[1:],  # what int(..., 16) would take
    DIGEST[:63],
    "../../" + DIGEST,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_the_agent_refuses_a_put_with_a_bad_key_and_stores_nothing(tmp_path, key):
    proc = _raw_agent(tmp_path)
    assert proc.stdin and proc.stdout
    _upload(proc, [(key, DATA, False)])
    header, _ = read_frame(proc.stdout)
    assert header["ok"] is False
    assert "bad object key" in header["error"] and "64" in header["error"]
    # The connection stays in step: the next request is answered.
    write_frame(proc.stdin, {"op": "hello", "args": {}})
    header, _ = read_frame(proc.stdout)
    assert header["ok"] is True
    proc.stdin.close()
    proc.wait(10)
    stored = [p for p in (tmp_path / "r").rglob("*") if p.is_file() and DIGEST in p.name.lower()]
    assert stored == []


def test_the_local_agent_refuses_a_bad_key_before_writing_anything(tmp_path):
    root = tmp_path / "root"
    source = tmp_path / "main.py"
    source.write_bytes(DATA)
    client = LocalAgentClient(root)
    with pytest.raises(AgentError, match="bad object key"):
        client.put([("../../../escaped", source, len(DATA))], lambda *a: None)
    assert not (tmp_path / "escaped").exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [source]


def test_a_malformed_manifest_row_is_refused_by_name(tmp_path):
    proc = _raw_agent(tmp_path)
    assert proc.stdin and proc.stdout
    row = ["main.py", "fifteen", 0o644, DIGEST, None]
    write_frame(proc.stdin, {"op": "missing", "args": {"rows": [row]}})
    header, _ = read_frame(proc.stdout)
    assert header["ok"] is False
    assert "bad manifest row" in header["error"] and "fifteen" in header["error"]
    proc.stdin.close()
    proc.wait(10)


def test_a_good_key_round_trips_through_the_rule():
    assert parse_object_key(object_key(DIGEST, True)) == (DIGEST, True)
    assert check_object_key(DIGEST) == DIGEST
    row = ManifestRow("bin/run", len(DATA), 0o755, DIGEST, None)
    assert row.key == DIGEST + ".x"
    assert json.loads(json.dumps(row)) == ["bin/run", len(DATA), 0o755, DIGEST, None]
    assert ManifestRow.from_wire(json.loads(json.dumps(row))) == row


# -- handles older versions wrote ------------------------------------------------------------


OLD_ROWS = [
    # local/vm before the typed protocol: root and uploaded only.
    {"kind": "vm", "target": "box", "run_id": "r1", "data": {"root": "/h/.targets", "uploaded": 3}},
    # slurm: the job id was stored as written by the plugin (a string) ...
    {"kind": "slurm", "target": "hpc", "run_id": "r2", "data": {"job_id": "42", "run_dir": "/d"}},
    # ... or as a number by hand-edited or older ledgers; no data at all in the oldest.
    {"kind": "slurm", "target": "hpc", "run_id": "r3", "data": {"job_id": 43}},
    {"kind": "local", "target": "local", "run_id": "r4"},
    {"kind": "local", "target": "local", "run_id": "r5", "data": None},
]


@pytest.mark.parametrize("raw", OLD_ROWS, ids=lambda r: r["run_id"])
def test_an_old_ledger_rows_handle_still_loads(raw):
    handle = RunHandle.from_json(json.loads(json.dumps(raw)))
    assert handle.run_id == raw["run_id"]
    assert RunHandle.from_json(handle.to_json()) == handle
    typed = agent_handle_data(handle)
    for key, value in (raw.get("data") or {}).items():
        assert typed[key] == (str(value) if key == "job_id" else value)


def test_a_handle_with_wrong_types_loads_without_them():
    handle = RunHandle.from_json(
        {"kind": "slurm", "target": "hpc", "run_id": "r6", "data": {"job_id": True, "root": 7}}
    )
    assert agent_handle_data(handle) == {}


def test_a_kind_written_against_the_old_hook_name_still_connects(tmp_path):
    class OldStyle(AgentTarget):
        kind = "old-style"

        def _connect_agent(self) -> AgentClient:
            return LocalAgentClient(tmp_path / "old-root")

    target = OldStyle("old")
    with pytest.warns(DeprecationWarning, match="connect_agent"):
        agent = target.agent()
    assert agent.root == str(tmp_path / "old-root")
    target.close()


def test_old_cluster_handles_still_load():
    from targets.clusters.target import cluster_handle_data

    queued = RunHandle.from_json(
        {"kind": "cluster", "target": "c", "run_id": "r7", "data": {"nodes": 2}}
    )
    assert cluster_handle_data(queued) == {"nodes": 2}
    run_based = RunHandle.from_json(
        {
            "kind": "cluster",
            "target": "aml",
            "run_id": "r8",
            "data": {"nodes": 1, "cluster": "aml-1234", "spec": {"provider": "docker"}},
        }
    )
    assert cluster_handle_data(run_based)["cluster"] == "aml-1234"
    assert cluster_handle_data(RunHandle("cluster", "c", "r9")) == {}
